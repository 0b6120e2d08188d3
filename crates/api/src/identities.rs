//! The identity store: internal users (argon2id password hashes, never the passwords) and AWS
//! access keys (id and secret: SigV4 needs the secret itself to compute signatures), each with
//! the roles given it directly (`roles.rs` maps more), kept in
//! `DATA_DIR/security/identities.json`.
//!
//! Format (version [`IDENTITIES_FORMAT_VERSION`]): one JSON object
//! `{"format_version":2,"users":{NAME:{"hash":PHC,"roles":[ROLE…],"backend_roles":[…],"attributes":{…}}},"access_keys":{ID:{"secret":S,"roles":[ROLE…]}}}`.
//! Format 1 held one `"role"` per user and key; it is read as a one-role list.
//! A change writes the whole file to `identities.json.partial`, fsyncs it, renames it over the
//! old one and fsyncs the directory: a crash leaves the old file or the new one, never a mix
//! (a stale `.partial` is ignored and overwritten). The file is the owner's alone (0600, from the
//! process's umask). A file of a later version is refused rather than misread.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The version written in the file; a reader refuses a later one.
pub const IDENTITIES_FORMAT_VERSION: u32 = 2;
/// The store's directory under the data directory, and its file.
pub const IDENTITIES_DIR: &str = "security";
const IDENTITIES_FILE: &str = "identities.json";
/// Longest user name or access key id; a longer one is refused.
pub const NAME_BYTES_MAX: usize = 128;
/// Longest password accepted; a longer one is refused (argon2 would hash it, but a megabyte of
/// password is an attack on CPU, not a credential).
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Bytes of randomness in a generated password or secret: 24 bytes is 192 bits, printed as 32
/// base64url characters.
pub const GENERATED_SECRET_BYTES: usize = 24;
/// argon2id cost: OWASP's minimum recommendation (19 MiB, 2 passes, 1 lane), about 20-50 ms a
/// hash on one core; a basic-auth request pays it once per verification.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a security file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} has format version {found}, newer than this build's {newest}")]
    NewerFormat {
        path: PathBuf,
        found: u32,
        newest: u32,
    },
    #[error("invalid name [{0}]: 1 to {NAME_BYTES_MAX} letters, digits, '-', '_', '.' or '@'")]
    InvalidName(String),
    #[error("the password must be 8 to {PASSWORD_BYTES_MAX} bytes")]
    InvalidPassword,
    #[error("user [{0}] already exists")]
    UserExists(String),
    #[error("user [{0}] not found")]
    UserNotFound(String),
    #[error("access key [{0}] not found")]
    AccessKeyNotFound(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The argon2id hash as a PHC string (`$argon2id$v=19$m=…`).
    pub hash: String,
    /// The roles given to the user directly (OpenSearch's `opendistro_security_roles`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Names role mappings may map from (OpenSearch's `backend_roles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Format 1's single role, moved into `roles` on load.
    #[serde(default, skip_serializing)]
    role: Option<String>,
}

impl User {
    pub fn new(hash: String, roles: Vec<String>) -> User {
        User {
            hash,
            roles,
            backend_roles: Vec::new(),
            attributes: BTreeMap::new(),
            role: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub secret: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Format 1's single role, moved into `roles` on load.
    #[serde(default, skip_serializing)]
    role: Option<String>,
}

/// Moves a format 1 `role` to the front of `roles`.
fn upgrade(role: &mut Option<String>, roles: &mut Vec<String>) {
    if let Some(role) = role.take()
        && !roles.contains(&role)
    {
        roles.insert(0, role);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    pub format_version: u32,
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub access_keys: BTreeMap<String, AccessKey>,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within their documented ranges.
    let params =
        Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `bytes` of system randomness.
pub fn random_bytes(bytes: usize) -> Result<Vec<u8>, IdentityError> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| IdentityError::Random)?;
    Ok(buffer)
}

/// A random password or secret of [`GENERATED_SECRET_BYTES`], base64url without padding.
pub fn generate_secret() -> Result<String, IdentityError> {
    use base64::Engine;
    let bytes = random_bytes(GENERATED_SECRET_BYTES)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// An access key id in AWS's shape: `AKIA` and 16 upper-case letters and digits.
pub fn generate_access_key_id() -> Result<String, IdentityError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = random_bytes(16)?;
    let tail: String = bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte % 32)]))
        .collect();
    Ok(format!("AKIA{tail}"))
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    if password.len() < 8 || password.len() > PASSWORD_BYTES_MAX {
        return Err(IdentityError::InvalidPassword);
    }
    let salt = SaltString::encode_b64(&random_bytes(16)?)
        .map_err(|error| IdentityError::Hash(error.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| IdentityError::Hash(error.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash too).
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn check_name(name: &str) -> Result<(), IdentityError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(IdentityError::InvalidName(name.to_owned()))
    }
}

/// Replaces `directory/file` with `bytes`: written to `file.partial`, fsynced, renamed over the
/// old file, the directory fsynced, so a crash leaves the old file or the new one, never a mix.
pub(crate) fn write_atomically(
    directory: &Path,
    file: &str,
    bytes: &[u8],
) -> Result<(), IdentityError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Io { path, source }
    };
    std::fs::create_dir_all(directory).map_err(io(directory))?;
    let path = directory.join(file);
    let partial = directory.join(format!("{file}.partial"));
    let mut handle = std::fs::File::create(&partial).map_err(io(&partial))?;
    handle.write_all(bytes).map_err(io(&partial))?;
    handle.sync_all().map_err(io(&partial))?;
    drop(handle);
    std::fs::rename(&partial, &path).map_err(io(&path))?;
    std::fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(io(directory))?;
    Ok(())
}

/// Parses one of the security files (identities, API keys, roles): its `format_version` first,
/// so that a file of a format later than `newest` is named as such rather than as corrupt.
pub(crate) fn parse_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    newest: u32,
) -> Result<T, IdentityError> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let corrupt = |error: serde_json::Error| IdentityError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    let version: Version = serde_json::from_slice(bytes).map_err(corrupt)?;
    if version.format_version > newest {
        return Err(IdentityError::NewerFormat {
            path: path.to_path_buf(),
            found: version.format_version,
            newest,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// The store file of a data directory, read and written whole.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    directory: PathBuf,
}

impl IdentityStore {
    pub fn new(data_dir: &Path) -> IdentityStore {
        IdentityStore {
            directory: data_dir.join(IDENTITIES_DIR),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.directory.join(IDENTITIES_FILE)
    }

    /// The identities; an empty store when the file does not exist yet.
    pub fn load(&self) -> Result<Identities, IdentityError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Identities {
                    format_version: IDENTITIES_FORMAT_VERSION,
                    ..Identities::default()
                });
            }
            Err(source) => return Err(IdentityError::Io { path, source }),
        };
        let mut identities: Identities = parse_versioned(&path, &bytes, IDENTITIES_FORMAT_VERSION)?;
        for user in identities.users.values_mut() {
            upgrade(&mut user.role, &mut user.roles);
        }
        for key in identities.access_keys.values_mut() {
            upgrade(&mut key.role, &mut key.roles);
        }
        Ok(identities)
    }

    /// Replaces the file with `identities` atomically (see the module's commit protocol).
    pub fn save(&self, identities: &Identities) -> Result<(), IdentityError> {
        let path = self.path();
        let mut text =
            serde_json::to_vec_pretty(identities).map_err(|error| IdentityError::Corrupt {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        text.push(b'\n');
        write_atomically(&self.directory, IDENTITIES_FILE, &text)
    }

    /// Loads, applies `change`, saves; the change's answer is returned once saved.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Identities) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut identities = self.load()?;
        let answer = change(&mut identities)?;
        identities.format_version = IDENTITIES_FORMAT_VERSION;
        self.save(&identities)?;
        Ok(answer)
    }

    /// Adds a user, or replaces its password and roles when `replace`.
    pub fn put_user(
        &self,
        name: &str,
        password: &str,
        roles: Vec<String>,
        replace: bool,
    ) -> Result<(), IdentityError> {
        check_name(name)?;
        let hash = hash_password(password)?;
        self.update(|identities| {
            if !replace && identities.users.contains_key(name) {
                return Err(IdentityError::UserExists(name.to_owned()));
            }
            identities
                .users
                .insert(name.to_owned(), User::new(hash, roles));
            Ok(())
        })
    }

    pub fn remove_user(&self, name: &str) -> Result<(), IdentityError> {
        self.update(|identities| {
            identities
                .users
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| IdentityError::UserNotFound(name.to_owned()))
        })
    }

    /// Creates an access key with a generated id and secret, returned once.
    pub fn create_access_key(&self, roles: Vec<String>) -> Result<(String, String), IdentityError> {
        let id = generate_access_key_id()?;
        let secret = generate_secret()?;
        let key = AccessKey {
            secret: secret.clone(),
            roles,
            role: None,
        };
        self.update(|identities| {
            identities.access_keys.insert(id.clone(), key);
            Ok(())
        })?;
        Ok((id, secret))
    }

    pub fn delete_access_key(&self, id: &str) -> Result<(), IdentityError> {
        self.update(|identities| {
            identities
                .access_keys
                .remove(id)
                .map(|_| ())
                .ok_or_else(|| IdentityError::AccessKeyNotFound(id.to_owned()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stored_as_argon2id_hashes_and_verified() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsf"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(matches!(
            hash_password("short"),
            Err(IdentityError::InvalidPassword)
        ));
        // The same password hashes differently (a fresh salt each time).
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_format_1_store_is_read_with_its_single_roles() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join(IDENTITIES_DIR)).unwrap();
        let hash = hash_password("long-enough").unwrap();
        let v1 = serde_json::json!({
            "format_version": 1,
            "users": {"ann": {"hash": hash, "role": "readall"}},
            "access_keys": {"AKIAX": {"secret": "s", "role": "all_access"}}
        });
        std::fs::write(store.path(), v1.to_string()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.users["ann"].roles, roles(&["readall"]));
        assert_eq!(loaded.access_keys["AKIAX"].roles, roles(&["all_access"]));
        // Rewritten as format 2, without the old field.
        store.update(|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            text.contains("\"format_version\": 2") && !text.contains("\"role\""),
            "{text}"
        );
        assert_eq!(
            store.load().unwrap().users["ann"].roles,
            roles(&["readall"])
        );
    }

    #[test]
    fn users_and_keys_survive_a_reopen_and_the_file_holds_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        assert_eq!(store.load().unwrap().users.len(), 0);
        store
            .put_user("alice", "s3cret-password", roles(&["all_access"]), false)
            .unwrap();
        store
            .put_user("bob", "another-password", roles(&["readall"]), false)
            .unwrap();
        assert!(matches!(
            store.put_user("alice", "whatever-password", roles(&["readall"]), false),
            Err(IdentityError::UserExists(_))
        ));
        let (id, secret) = store.create_access_key(roles(&["all_access"])).unwrap();
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");

        let reopened = IdentityStore::new(dir.path()).load().unwrap();
        assert_eq!(reopened.format_version, IDENTITIES_FORMAT_VERSION);
        assert_eq!(reopened.users["bob"].roles, roles(&["readall"]));
        assert!(verify_password(
            &reopened.users["alice"].hash,
            "s3cret-password"
        ));
        assert_eq!(reopened.access_keys[&id].secret, secret);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("s3cret-password"));

        store.remove_user("alice").unwrap();
        store.delete_access_key(&id).unwrap();
        assert!(matches!(
            store.remove_user("alice"),
            Err(IdentityError::UserNotFound(_))
        ));
        let left = store.load().unwrap();
        assert_eq!(left.users.keys().collect::<Vec<_>>(), ["bob"]);
        assert!(left.access_keys.is_empty());
    }

    #[test]
    fn a_stale_partial_file_is_ignored_and_later_or_broken_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        store
            .put_user("carol", "carol-password", roles(&["readall"]), false)
            .unwrap();
        // A crash between writing the partial file and the rename leaves the old store.
        std::fs::write(
            dir.path()
                .join(IDENTITIES_DIR)
                .join("identities.json.partial"),
            b"{\"format_ver",
        )
        .unwrap();
        assert!(store.load().unwrap().users.contains_key("carol"));

        std::fs::write(store.path(), br#"{"format_version":3,"users":{}}"#).unwrap();
        assert!(matches!(
            store.load(),
            Err(IdentityError::NewerFormat { found: 3, .. })
        ));
        std::fs::write(store.path(), b"[1,2").unwrap();
        assert!(matches!(store.load(), Err(IdentityError::Corrupt { .. })));
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::new(dir.path());
        for bad in ["", "a b", "a:b", &"x".repeat(NAME_BYTES_MAX + 1)] {
            assert!(matches!(
                store.put_user(bad, "long-enough", roles(&["readall"]), false),
                Err(IdentityError::InvalidName(_))
            ));
        }
    }
}
