//! Elasticsearch's API keys: created by an authenticated user (or granted for one), sent as
//! `Authorization: ApiKey base64(id:key)`, with an optional expiry, invalidated by id or name,
//! kept in `DATA_DIR/security/api_keys.json`.
//!
//! A key is 16 random bytes (128 bits), so it is stored as a salted SHA-256 (`ssha256`, a
//! fresh 16-byte salt per key), not argon2id: a slow hash protects guessable secrets such as
//! passwords, but nobody guesses 128 random bits however fast the hash, while argon2id would
//! cost every request carrying a key tens of milliseconds (Elasticsearch hashes API keys the
//! same fast way for the same reason). The salt keeps equal keys from hashing alike; the
//! comparison runs in constant time.
//!
//! Format (version [`API_KEYS_FORMAT_VERSION`]): one JSON object
//! `{"format_version":1,"api_keys":{ID:{"name","hash","creation","expiration","invalidated",
//! "invalidation","username","realm","roles","role_descriptors","metadata"}}}` (times in epoch
//! milliseconds), replaced whole by `identities::write_atomically` (temporary file, fsync,
//! rename, directory fsync) before a change is acknowledged: a crash leaves the old set or the
//! new one. A file of a later version is refused. Keys expired or invalidated more than
//! [`REMOVED_AFTER_MS`] ago are dropped at the next write, as Elasticsearch's retention period.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identities::{
    IDENTITIES_DIR, IdentityError, parse_versioned, random_bytes, write_atomically,
};

/// The version written in the file; a reader refuses a later one. Format 1 held the owner's
/// single `"role"`; it is read as a one-role list.
pub const API_KEYS_FORMAT_VERSION: u32 = 2;
const API_KEYS_FILE: &str = "api_keys.json";
/// Most keys kept (valid, expired or invalidated within the retention period); creating one
/// more is refused with a message saying to invalidate some. The file is rewritten whole on
/// every change, so this bounds that write (about 1 KB a key).
pub const API_KEYS_MAX: usize = 10_000;
/// Longest key name, as Elasticsearch allows.
pub const NAME_CHARS_MAX: usize = 1024;
/// Largest `metadata` or `role_descriptors` of a key, as JSON; a larger one is refused.
pub const KEY_DOCUMENT_BYTES_MAX: usize = 16 * 1024;
/// Random bytes of a key (128 bits, 22 base64url characters) and of its id (20 characters).
const KEY_BYTES: usize = 16;
const ID_BYTES: usize = 15;
const SALT_BYTES: usize = 16;
/// How long an expired or invalidated key stays listed before it is removed (Elasticsearch's
/// default `delete.retention_period`, 7 days).
pub const REMOVED_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;
/// The realm name of keys, as `_authenticate` shows it.
pub const API_KEY_REALM: &str = "_es_api_key";

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error(transparent)]
    Store(#[from] IdentityError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "there are already {API_KEYS_MAX} API keys: invalidate some (they are removed 7 days after)"
    )]
    TooMany,
}

/// A stored key; never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    pub name: String,
    /// `ssha256$<salt>$<sha256(salt ‖ key)>`, both base64url.
    pub hash: String,
    pub creation: u64,
    #[serde(default)]
    pub expiration: Option<u64>,
    #[serde(default)]
    pub invalidated: bool,
    #[serde(default)]
    pub invalidation: Option<u64>,
    /// The owner: the user who created it, or for whom it was granted.
    pub username: String,
    pub realm: String,
    /// The owner's effective roles when the key was made: what the key may do.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Format 1's single role, moved into `roles` on load.
    #[serde(default, skip_serializing)]
    role: Option<String>,
    #[serde(default)]
    pub role_descriptors: serde_json::Map<String, Value>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

impl ApiKeyRecord {
    fn expired(&self, now_ms: u64) -> bool {
        self.expiration
            .is_some_and(|expiration| expiration <= now_ms)
    }

    /// Whether the key is past its retention period and may be forgotten.
    fn removable(&self, now_ms: u64) -> bool {
        let ended = match (self.invalidation, self.expiration) {
            (Some(invalidation), _) if self.invalidated => Some(invalidation),
            (_, Some(expiration)) => Some(expiration),
            _ => None,
        };
        ended.is_some_and(|ended| ended.saturating_add(REMOVED_AFTER_MS) <= now_ms)
    }

    /// The key as `GET /_security/api_key` shows it.
    pub fn to_json(&self, id: &str) -> Value {
        let mut shown = serde_json::json!({
            "id": id,
            "name": self.name,
            "type": "rest",
            "creation": self.creation,
            "invalidated": self.invalidated,
            "username": self.username,
            "realm": self.realm,
            "metadata": self.metadata,
            "role_descriptors": self.role_descriptors,
        });
        if let Some(object) = shown.as_object_mut() {
            if let Some(expiration) = self.expiration {
                object.insert("expiration".into(), expiration.into());
            }
            if let Some(invalidation) = self.invalidation {
                object.insert("invalidation".into(), invalidation.into());
            }
        }
        shown
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeysFile {
    format_version: u32,
    #[serde(default)]
    api_keys: BTreeMap<String, ApiKeyRecord>,
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    /// Milliseconds from now, or never.
    pub expires_in_ms: Option<u64>,
    pub role_descriptors: serde_json::Map<String, Value>,
    pub metadata: serde_json::Map<String, Value>,
    pub username: String,
    pub realm: String,
    pub roles: Vec<String>,
}

/// A created key: its secret part is shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub expiration: Option<u64>,
    pub key: String,
}

impl CreatedApiKey {
    /// `base64(id:key)`, what `Authorization: ApiKey` carries.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.id, self.key))
    }
}

/// Why a key did not authenticate, in words for the 401's `additional_unsuccessful_credentials`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyRefusal {
    #[error("unable to find apikey with id {0}")]
    Unknown(String),
    #[error("invalid credentials for API key [{0}]")]
    WrongKey(String),
    #[error("api key [{0}] has been invalidated")]
    Invalidated(String),
    #[error("api key is expired")]
    Expired,
}

/// Which keys a request names (`GET` and `DELETE /_security/api_key`); every given field must
/// match.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub ids: Option<Vec<String>>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub realm: Option<String>,
    pub active_only: bool,
}

impl KeyFilter {
    fn matches(&self, id: &str, record: &ApiKeyRecord, now_ms: u64) -> bool {
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|wanted| wanted == id))
            && self
                .name
                .as_ref()
                .is_none_or(|name| crate::es::wildcard_match(name, &record.name))
            && self
                .username
                .as_ref()
                .is_none_or(|username| *username == record.username)
            && self
                .realm
                .as_ref()
                .is_none_or(|realm| *realm == record.realm)
            && (!self.active_only || (!record.invalidated && !record.expired(now_ms)))
    }
}

/// The keys of a data directory, in memory and in their file.
#[derive(Debug)]
pub struct ApiKeys {
    directory: PathBuf,
    keys: Mutex<ApiKeysFile>,
    /// Held by a change from its copy to its adoption, so changes apply one at a time while
    /// `authenticate` keeps reading the keys as they were until the file is written.
    changes: Mutex<()>,
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn salted_hash(salt: &[u8], key: &str) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(salt);
    context.update(key.as_bytes());
    context.finish().as_ref().to_vec()
}

fn hash_key(key: &str) -> Result<String, IdentityError> {
    let salt = random_bytes(SALT_BYTES)?;
    Ok(format!(
        "ssha256${}${}",
        encode(&salt),
        encode(&salted_hash(&salt, key))
    ))
}

fn verify_key(stored: &str, key: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("ssha256"), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let decode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text);
    match (decode(salt), decode(hash)) {
        (Ok(salt), Ok(hash)) => {
            // Without stopping at the first difference: the time leaks nothing of the hash.
            let computed = salted_hash(&salt, key);
            computed.len() == hash.len()
                && computed
                    .iter()
                    .zip(&hash)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

fn check_document(
    what: &str,
    document: &serde_json::Map<String, Value>,
) -> Result<(), ApiKeyError> {
    let bytes = serde_json::to_vec(document)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if bytes > KEY_DOCUMENT_BYTES_MAX {
        return Err(ApiKeyError::Invalid(format!(
            "{what} is {bytes} bytes, more than {KEY_DOCUMENT_BYTES_MAX}"
        )));
    }
    Ok(())
}

impl ApiKeys {
    /// Opens the keys of `data_dir` (none when the file does not exist yet).
    pub fn open(data_dir: &Path) -> Result<ApiKeys, ApiKeyError> {
        let directory = data_dir.join(IDENTITIES_DIR);
        let path = directory.join(API_KEYS_FILE);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => parse_file(&path, &bytes)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => ApiKeysFile {
                format_version: API_KEYS_FORMAT_VERSION,
                api_keys: BTreeMap::new(),
            },
            Err(source) => return Err(IdentityError::Io { path, source }.into()),
        };
        Ok(ApiKeys {
            directory,
            keys: Mutex::new(keys),
            changes: Mutex::new(()),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.directory.join(API_KEYS_FILE)
    }

    /// Runs `change` on a copy of the keys, writes the copy durably, and only then adopts it:
    /// a failed write changes nothing.
    fn change<T>(
        &self,
        now_ms: u64,
        change: impl FnOnce(&mut ApiKeysFile) -> Result<T, ApiKeyError>,
    ) -> Result<T, ApiKeyError> {
        let unavailable = || ApiKeyError::Invalid("the API key store is unavailable".into());
        let _changing = self.changes.lock().map_err(|_| unavailable())?;
        let mut changed = self.keys.lock().map_err(|_| unavailable())?.clone();
        changed
            .api_keys
            .retain(|_, record| !record.removable(now_ms));
        let answer = change(&mut changed)?;
        changed.format_version = API_KEYS_FORMAT_VERSION;
        let mut text =
            serde_json::to_vec_pretty(&changed).map_err(|error| IdentityError::Corrupt {
                path: self.path(),
                reason: error.to_string(),
            })?;
        text.push(b'\n');
        write_atomically(&self.directory, API_KEYS_FILE, &text)?;
        *self.keys.lock().map_err(|_| unavailable())? = changed;
        Ok(answer)
    }

    /// Creates a key at `now_ms` (writes the file: call it off the async threads).
    pub fn create(&self, new: NewApiKey, now_ms: u64) -> Result<CreatedApiKey, ApiKeyError> {
        if new.name.trim().is_empty() || new.name.chars().count() > NAME_CHARS_MAX {
            return Err(ApiKeyError::Invalid(format!(
                "api key name must be 1 to {NAME_CHARS_MAX} characters and not blank"
            )));
        }
        if let Some(key) = new.metadata.keys().find(|key| key.starts_with('_')) {
            return Err(ApiKeyError::Invalid(format!(
                "metadata keys may not start with [_]: [{key}]"
            )));
        }
        check_document("metadata", &new.metadata)?;
        check_document("role_descriptors", &new.role_descriptors)?;
        let id = encode(&random_bytes(ID_BYTES)?);
        let key = encode(&random_bytes(KEY_BYTES)?);
        let expiration = new
            .expires_in_ms
            .map(|expires_in| now_ms.saturating_add(expires_in));
        let record = ApiKeyRecord {
            name: new.name.clone(),
            hash: hash_key(&key)?,
            creation: now_ms,
            expiration,
            invalidated: false,
            invalidation: None,
            username: new.username,
            realm: new.realm,
            roles: new.roles,
            role: None,
            role_descriptors: new.role_descriptors,
            metadata: new.metadata,
        };
        self.change(now_ms, |keys| {
            if keys.api_keys.len() >= API_KEYS_MAX {
                return Err(ApiKeyError::TooMany);
            }
            keys.api_keys.insert(id.clone(), record);
            Ok(())
        })?;
        Ok(CreatedApiKey {
            id,
            name: new.name,
            expiration,
            key,
        })
    }

    /// The record of a key whose id and secret match, valid at `now_ms`.
    pub fn authenticate(
        &self,
        id: &str,
        key: &str,
        now_ms: u64,
    ) -> Result<ApiKeyRecord, ApiKeyRefusal> {
        let record = self
            .keys
            .lock()
            .ok()
            .and_then(|keys| keys.api_keys.get(id).cloned())
            .ok_or_else(|| ApiKeyRefusal::Unknown(id.to_owned()))?;
        if !verify_key(&record.hash, key) {
            return Err(ApiKeyRefusal::WrongKey(id.to_owned()));
        }
        if record.invalidated {
            return Err(ApiKeyRefusal::Invalidated(id.to_owned()));
        }
        if record.expired(now_ms) {
            return Err(ApiKeyRefusal::Expired);
        }
        Ok(record)
    }

    /// The keys `filter` names, by id.
    pub fn list(&self, filter: &KeyFilter, now_ms: u64) -> Vec<(String, ApiKeyRecord)> {
        self.keys
            .lock()
            .map(|keys| {
                keys.api_keys
                    .iter()
                    .filter(|(id, record)| filter.matches(id, record, now_ms))
                    .map(|(id, record)| (id.clone(), record.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Invalidates the keys `filter` names: the ids invalidated now, and those already were.
    pub fn invalidate(
        &self,
        filter: &KeyFilter,
        now_ms: u64,
    ) -> Result<(Vec<String>, Vec<String>), ApiKeyError> {
        self.change(now_ms, |keys| {
            let (mut now, mut before) = (Vec::new(), Vec::new());
            for (id, record) in keys.api_keys.iter_mut() {
                if !filter.matches(id, record, now_ms) {
                    continue;
                }
                if record.invalidated {
                    before.push(id.clone());
                } else {
                    record.invalidated = true;
                    record.invalidation = Some(now_ms);
                    now.push(id.clone());
                }
            }
            Ok((now, before))
        })
    }
}

fn parse_file(path: &Path, bytes: &[u8]) -> Result<ApiKeysFile, IdentityError> {
    let mut file: ApiKeysFile = parse_versioned(path, bytes, API_KEYS_FORMAT_VERSION)?;
    for record in file.api_keys.values_mut() {
        if let Some(role) = record.role.take() {
            record.roles.insert(0, role);
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_key(name: &str, expires_in_ms: Option<u64>) -> NewApiKey {
        NewApiKey {
            name: name.into(),
            expires_in_ms,
            role_descriptors: Default::default(),
            metadata: Default::default(),
            username: "alice".into(),
            realm: "default_native".into(),
            roles: vec!["readall".into()],
        }
    }

    #[test]
    fn keys_authenticate_until_they_expire_or_are_invalidated_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        let forever = keys.create(new_key("forever", None), 1_000).unwrap();
        let brief = keys.create(new_key("brief", Some(500)), 1_000).unwrap();
        assert_eq!(brief.expiration, Some(1_500));
        assert_eq!(forever.id.len(), 20);
        assert_eq!(forever.key.len(), 22);

        let file = std::fs::read_to_string(keys.path()).unwrap();
        assert!(!file.contains(&forever.key), "{file}");

        let reopened = ApiKeys::open(dir.path()).unwrap();
        let record = reopened
            .authenticate(&forever.id, &forever.key, 2_000)
            .unwrap();
        assert_eq!(
            (record.name.as_str(), record.roles.as_slice()),
            ("forever", ["readall".to_owned()].as_slice())
        );
        assert!(reopened.authenticate(&brief.id, &brief.key, 1_499).is_ok());
        assert_eq!(
            reopened.authenticate(&brief.id, &brief.key, 1_500),
            Err(ApiKeyRefusal::Expired)
        );
        assert_eq!(
            reopened.authenticate(&forever.id, &brief.key, 2_000),
            Err(ApiKeyRefusal::WrongKey(forever.id.clone()))
        );
        assert!(matches!(
            reopened.authenticate("nope", &brief.key, 2_000),
            Err(ApiKeyRefusal::Unknown(_))
        ));

        let by_name = KeyFilter {
            name: Some("for*".into()),
            ..KeyFilter::default()
        };
        assert_eq!(
            reopened.invalidate(&by_name, 3_000).unwrap(),
            (vec![forever.id.clone()], vec![])
        );
        assert_eq!(
            reopened.invalidate(&by_name, 3_001).unwrap(),
            (vec![], vec![forever.id.clone()])
        );
        let again = ApiKeys::open(dir.path()).unwrap();
        assert_eq!(
            again.authenticate(&forever.id, &forever.key, 3_002),
            Err(ApiKeyRefusal::Invalidated(forever.id.clone()))
        );
        let active = KeyFilter {
            active_only: true,
            ..KeyFilter::default()
        };
        assert!(
            again
                .list(&active, 1_200)
                .iter()
                .any(|(id, _)| *id == brief.id)
        );
        assert_eq!(again.list(&KeyFilter::default(), 3_002).len(), 2);

        // Past the retention period both are forgotten at the next write.
        again
            .create(new_key("later", None), 3_001 + REMOVED_AFTER_MS)
            .unwrap();
        let names: Vec<String> = again
            .list(&KeyFilter::default(), 3_001 + REMOVED_AFTER_MS)
            .into_iter()
            .map(|(_, record)| record.name)
            .collect();
        assert_eq!(names, ["later"]);
    }

    #[test]
    fn bad_names_metadata_and_later_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        assert!(matches!(
            keys.create(new_key(" ", None), 0),
            Err(ApiKeyError::Invalid(_))
        ));
        let mut with_metadata = new_key("m", None);
        with_metadata
            .metadata
            .insert("_reserved".into(), Value::Bool(true));
        assert!(matches!(
            keys.create(with_metadata, 0),
            Err(ApiKeyError::Invalid(_))
        ));
        keys.create(new_key("ok", None), 0).unwrap();
        std::fs::write(keys.path(), br#"{"format_version":3}"#).unwrap();
        assert!(matches!(
            ApiKeys::open(dir.path()),
            Err(ApiKeyError::Store(IdentityError::NewerFormat {
                found: 3,
                ..
            }))
        ));
    }

    #[test]
    fn a_stored_hash_of_another_shape_never_verifies() {
        assert!(!verify_key("", "k"));
        assert!(!verify_key("ssha256$!!$!!", "k"));
        assert!(!verify_key("argon2$a$b", "k"));
        let stored = hash_key("k").unwrap();
        assert!(verify_key(&stored, "k"));
        assert!(!verify_key(&stored, "K"));
    }
}
