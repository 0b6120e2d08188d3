//! Authentication and authorization seams: who a request is (`Principal`), what it may do
//! (`authorize`), and the parsing of the `Authorization` header's Basic and ApiKey schemes.
//! Two built-in roles for now: `all_access` and `readall` (read-only search). Fine-grained roles
//! (index patterns, action groups, ledger and stream permissions) plug in behind `authorize`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::api_keys::{ApiKeyRefusal, ApiKeys};
use crate::identities::{Identities, verify_password};

/// Longest `Authorization` header value read; a longer one is refused as malformed (a basic
/// credential of the longest name and password fits in well under it).
pub const AUTHORIZATION_BYTES_MAX: usize = 4096;

/// The built-in roles, named as OpenSearch's security plugin names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, on every port.
    #[serde(rename = "all_access")]
    AllAccess,
    /// Search reads only: searches, gets, counts, mappings and cluster information.
    #[serde(rename = "readall")]
    ReadAll,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::AllAccess => "all_access",
            Role::ReadAll => "readall",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "all_access" => Some(Role::AllAccess),
            "readall" => Some(Role::ReadAll),
            _ => None,
        }
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// An internal user with HTTP basic auth.
    Password,
    /// An AWS access key with a SigV4 signature.
    AccessKey,
    /// An Elasticsearch API key (`Authorization: ApiKey`); the principal's name is its owner.
    ApiKey { id: String, name: String },
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name or the access key id.
    pub name: String,
    pub role: Role,
    pub authentication: Authentication,
}

/// What a request does, as coarse as the built-in roles need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads of the search API (GET/HEAD, and searches sent with POST).
    SearchRead,
    /// Every other search API request.
    SearchWrite,
    /// Any AWS API operation.
    Aws,
    /// Managing users, roles and keys.
    SecurityAdmin,
}

/// Whether `principal` may do `action` on `resource` (an index expression, a stream or ledger
/// name; unused by the built-in roles, there for the roles to come).
pub fn authorize(principal: &Principal, action: Action, _resource: &str) -> bool {
    match principal.role {
        Role::AllAccess => true,
        Role::ReadAll => action == Action::SearchRead,
    }
}

/// The credentials of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        user: String,
        password: String,
    },
    /// Elasticsearch's `ApiKey base64(id:key)`.
    ApiKey {
        id: String,
        key: String,
    },
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the authorization header is longer than {AUTHORIZATION_BYTES_MAX} bytes")]
    TooLong,
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    #[error("malformed {0} credentials")]
    Malformed(&'static str),
}

/// Reads a Basic or ApiKey `Authorization` value (schemes are case-insensitive).
pub fn parse_authorization(value: &[u8]) -> Result<Credentials, CredentialsError> {
    if value.len() > AUTHORIZATION_BYTES_MAX {
        return Err(CredentialsError::TooLong);
    }
    let text = std::str::from_utf8(value).map_err(|_| CredentialsError::UnsupportedScheme)?;
    let (scheme, rest) = text
        .trim()
        .split_once(' ')
        .ok_or(CredentialsError::UnsupportedScheme)?;
    let kind: &'static str = if scheme.eq_ignore_ascii_case("basic") {
        "basic"
    } else if scheme.eq_ignore_ascii_case("apikey") {
        "api key"
    } else {
        return Err(CredentialsError::UnsupportedScheme);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| CredentialsError::Malformed(kind))?;
    let decoded = String::from_utf8(decoded).map_err(|_| CredentialsError::Malformed(kind))?;
    let (first, second) = decoded
        .split_once(':')
        .ok_or(CredentialsError::Malformed(kind))?;
    let (first, second) = (first.to_owned(), second.to_owned());
    Ok(if kind == "basic" {
        Credentials::Basic {
            user: first,
            password: second,
        }
    } else {
        Credentials::ApiKey {
            id: first,
            key: second,
        }
    })
}

/// Most users whose last verified password is remembered (as a SHA-256), so basic auth costs
/// one argon2id hash per user and password rather than per request. When full it is emptied and
/// fills again.
pub const VERIFIED_PASSWORDS_MAX: usize = 1024;

/// Checks credentials against the identities loaded at start and the API keys, which change
/// while the server runs.
#[derive(Debug)]
pub struct Authenticator {
    identities: Identities,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// `None` when no data directory backs this authenticator (tests): API keys are refused.
    api_keys: Option<ApiKeys>,
    /// The clock of API keys' creation and expiry (the node's, so tests can move it).
    clock: Arc<dyn sluice_log::Clock>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl Authenticator {
    pub fn new(identities: Identities) -> Arc<Authenticator> {
        Arc::new(Authenticator {
            identities,
            verified: Mutex::new(HashMap::new()),
            api_keys: None,
            clock: Arc::new(sluice_log::SystemClock),
        })
    }

    /// An authenticator that also accepts (and manages) the API keys of `api_keys`, expiring
    /// them on `clock`.
    pub fn with_api_keys(
        identities: Identities,
        api_keys: ApiKeys,
        clock: Arc<dyn sluice_log::Clock>,
    ) -> Arc<Authenticator> {
        Arc::new(Authenticator {
            identities,
            verified: Mutex::new(HashMap::new()),
            api_keys: Some(api_keys),
            clock,
        })
    }

    /// The API key store, when there is one.
    pub fn api_keys(&self) -> Option<&ApiKeys> {
        self.api_keys.as_ref()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The role of an internal user.
    pub fn user_role(&self, user: &str) -> Option<Role> {
        self.identities.users.get(user).map(|stored| stored.role)
    }

    /// The principal of an API key: its owner, with the role the owner had when it was made.
    pub fn api_key(&self, id: &str, key: &str) -> Result<Principal, ApiKeyRefusal> {
        let keys = self
            .api_keys
            .as_ref()
            .ok_or_else(|| ApiKeyRefusal::Unknown(id.to_owned()))?;
        let record = keys.authenticate(id, key, self.now_ms())?;
        Ok(Principal {
            name: record.username,
            role: record.role,
            authentication: Authentication::ApiKey {
                id: id.to_owned(),
                name: record.name,
            },
        })
    }

    /// The principal of a user and password (argon2id on a cache miss: call it off the async
    /// threads).
    pub fn basic(&self, user: &str, password: &str) -> Option<Principal> {
        let stored = self.identities.users.get(user)?;
        let principal = Principal {
            name: user.to_owned(),
            role: stored.role,
            authentication: Authentication::Password,
        };
        let fingerprint = sha256(password.as_bytes());
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(user).copied());
        if remembered == Some(fingerprint) {
            return Some(principal);
        }
        if !verify_password(&stored.hash, password) {
            return None;
        }
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_PASSWORDS_MAX {
                verified.clear();
            }
            verified.insert(user.to_owned(), fingerprint);
        }
        Some(principal)
    }

    /// The secret and principal of an access key.
    pub fn access_key(&self, id: &str) -> Option<(String, Principal)> {
        let key = self.identities.access_keys.get(id)?;
        Some((
            key.secret.clone(),
            Principal {
                name: id.to_owned(),
                role: key.role,
                authentication: Authentication::AccessKey,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn principal(role: Role) -> Principal {
        Principal {
            name: "p".into(),
            role,
            authentication: Authentication::Password,
        }
    }

    #[test]
    fn the_built_in_roles() {
        let all = principal(Role::AllAccess);
        let read = principal(Role::ReadAll);
        for action in [
            Action::SearchRead,
            Action::SearchWrite,
            Action::Aws,
            Action::SecurityAdmin,
        ] {
            assert!(authorize(&all, action, "any"));
            assert_eq!(
                authorize(&read, action, "any"),
                action == Action::SearchRead
            );
        }
        assert_eq!(Role::parse("readall"), Some(Role::ReadAll));
        assert_eq!(Role::parse(Role::AllAccess.name()), Some(Role::AllAccess));
        assert_eq!(
            serde_json::to_string(&Role::ReadAll).unwrap(),
            "\"readall\""
        );
    }

    #[test]
    fn basic_and_api_key_headers() {
        assert_eq!(
            parse_authorization(b"Basic YWRtaW46cGE6c3M="),
            Ok(Credentials::Basic {
                user: "admin".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            parse_authorization(b"ApiKey aWQ6a2V5"),
            Ok(Credentials::ApiKey {
                id: "id".into(),
                key: "key".into()
            })
        );
        assert_eq!(
            parse_authorization(b"Bearer x"),
            Err(CredentialsError::UnsupportedScheme)
        );
        assert_eq!(
            parse_authorization(b"Basic !!!"),
            Err(CredentialsError::Malformed("basic"))
        );
        assert_eq!(
            parse_authorization(b"Basic YWRtaW4="),
            Err(CredentialsError::Malformed("basic"))
        );
        assert_eq!(
            parse_authorization(&[b'a'; AUTHORIZATION_BYTES_MAX + 1]),
            Err(CredentialsError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn any_header_is_parsed_or_refused_without_a_panic(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_authorization(&value);
        }

        #[test]
        fn any_basic_credential_round_trips(user in "[^:]{0,40}", password in ".{0,40}") {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            prop_assert_eq!(
                parse_authorization(format!("basic {encoded}").as_bytes()),
                Ok(Credentials::Basic { user, password })
            );
        }
    }
}
