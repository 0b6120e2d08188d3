//! Authentication: who a request is (`Principal`), checked by the `Authenticator` against the
//! identity store, the API keys and the roles (`roles.rs`), which also say what it may do
//! ([`Grants`]); and the parsing of the `Authorization` header's Basic and ApiKey schemes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;

use crate::api_keys::{ApiKeyRefusal, ApiKeys};
use crate::audit::AuditLog;
use crate::identities::{
    Identities, IdentityError, IdentityStore, generate_access_key_id, generate_secret,
    verify_password,
};
use crate::rates::Rates;
pub use crate::roles::Grants;
use crate::roles::{Roles, Subject};

/// Longest `Authorization` header value read; a longer one is refused as malformed (a basic
/// credential of the longest name and password fits in well under it).
pub const AUTHORIZATION_BYTES_MAX: usize = 4096;

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// An internal user with HTTP basic auth.
    Password,
    /// An AWS access key with a SigV4 signature.
    AccessKey,
    /// An Elasticsearch API key (`Authorization: ApiKey`); the principal's name is its owner.
    ApiKey { id: String, name: String },
    /// Sluice's own work on behalf of a resource (a delivery stream assuming its role ARN).
    Service,
    /// A temporary access key the dashboard's login handed out; the principal is its user.
    Session { key_id: String },
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user name, the access key id, or the API key's owner.
    pub name: String,
    /// The roles given to it directly; role mappings add more (see [`Authenticator::grants`]).
    pub roles: Vec<String>,
    /// What role mappings may map from (a user's backend roles, a delivery stream's role ARN).
    pub backend_roles: Vec<String>,
    pub authentication: Authentication,
    /// An API key's role descriptors, which limit it below its owner's roles.
    pub limits: Option<Arc<Vec<crate::roles::RoleDefinition>>>,
}

impl Principal {
    /// A principal for Sluice's own work on behalf of an IAM role ARN (a delivery stream's
    /// `RoleARN`): it holds what role mappings give that ARN as a backend role.
    pub fn service(role_arn: &str) -> Principal {
        Principal {
            name: role_arn.to_owned(),
            roles: Vec::new(),
            backend_roles: vec![role_arn.to_owned()],
            authentication: Authentication::Service,
            limits: None,
        }
    }
}

/// Delivery streams writing into Sluice's own search act as their role ARN: the roles mapped to
/// it as a backend role must allow `indices:data/write/index` on the index, and
/// `indices:admin/create` when it does not exist yet.
impl sluice_delivery::IndexAuthorizer for Authenticator {
    fn may_index(&self, role_arn: Option<&str>, index: &str, exists: bool) -> Result<(), String> {
        let Some(role_arn) = role_arn else {
            return Err(format!(
                "the delivery stream has no RoleARN, so it holds no role that may write into [{index}]"
            ));
        };
        let grants = self.grants(&Principal::service(role_arn));
        for (action, needed) in [
            ("indices:data/write/index", true),
            ("indices:admin/create", !exists),
        ] {
            if needed && !grants.index_allows(action, index) {
                return Err(format!(
                    "action [{action}] is unauthorized for role [{role_arn}] with effective roles [{}] on indices [{index}]",
                    grants.roles.join(",")
                ));
            }
        }
        Ok(())
    }
}

/// What a request's `Authorization` header offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// A SigV4 signature (`AWS4-HMAC-SHA256 …`), checked by [`Authenticator::verify_signature`].
    Signature,
    Credentials(Credentials),
    /// No header, or one that cannot be read.
    Nothing,
}

/// What the `Authorization` header of `headers` offers.
pub fn offered(headers: &hyper::HeaderMap) -> Offered {
    let Some(value) = headers.get("authorization") else {
        return Offered::Nothing;
    };
    if value
        .as_bytes()
        .starts_with(crate::sigv4::ALGORITHM.as_bytes())
    {
        return Offered::Signature;
    }
    match parse_authorization(value.as_bytes()) {
        Ok(credentials) => Offered::Credentials(credentials),
        Err(_) => Offered::Nothing,
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

/// How long a dashboard login lasts.
pub const SESSION_TTL_MS: u64 = 8 * 3600 * 1000;
/// Most dashboard sessions live at once.
pub const SESSIONS_MAX: usize = 10_000;

/// A dashboard session's temporary access key.
#[derive(Debug)]
struct SessionKey {
    secret: String,
    principal: Principal,
    expires_ms: u64,
}

/// What a login hands the page, once.
#[derive(Debug, Clone)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub expiration_ms: u64,
}

/// Most users whose last verified password is remembered (as a SHA-256), so basic auth costs
/// one argon2id hash per user and password rather than per request. When full it is emptied and
/// fills again.
pub const VERIFIED_PASSWORDS_MAX: usize = 1024;

/// Checks credentials against the identities, the API keys and the roles, all of which change
/// while the server runs (through the security APIs).
#[derive(Debug)]
pub struct Authenticator {
    identities: RwLock<Identities>,
    /// Held by a change of the identities from its start to its adoption, so changes apply one
    /// at a time while requests keep reading the identities as they were until the store is
    /// written: `identities`' write lock is taken only to swap in the result.
    identity_changes: Mutex<()>,
    /// `None` when no data directory backs the identities (tests): changes stay in memory.
    store: Option<IdentityStore>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// `None` when no data directory backs this authenticator (tests): API keys are refused.
    api_keys: Option<ApiKeys>,
    roles: Roles,
    audit: AuditLog,
    rates: Rates,
    /// Temporary access keys of dashboard logins, by id; in memory only (a restart logs
    /// everyone out).
    sessions: Mutex<HashMap<String, SessionKey>>,
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
    /// An authenticator of `identities` held in memory, with only the static roles.
    pub fn new(identities: Identities) -> Arc<Authenticator> {
        Arc::new(Authenticator {
            identities: RwLock::new(identities),
            identity_changes: Mutex::new(()),
            store: None,
            verified: Mutex::new(HashMap::new()),
            api_keys: None,
            roles: Roles::in_memory(),
            audit: AuditLog::counting_only(Arc::new(sluice_log::SystemClock)),
            rates: Rates::default(),
            sessions: Mutex::new(HashMap::new()),
            clock: Arc::new(sluice_log::SystemClock),
        })
    }

    /// The authenticator of a data directory: its identities, API keys and roles, expiring
    /// keys on `clock`.
    pub fn open(
        store: IdentityStore,
        api_keys: ApiKeys,
        roles: Roles,
        audit: AuditLog,
        rates: Rates,
        clock: Arc<dyn sluice_log::Clock>,
    ) -> Result<Arc<Authenticator>, IdentityError> {
        Ok(Arc::new(Authenticator {
            identities: RwLock::new(store.load()?),
            identity_changes: Mutex::new(()),
            store: Some(store),
            verified: Mutex::new(HashMap::new()),
            api_keys: Some(api_keys),
            roles,
            audit,
            rates,
            sessions: Mutex::new(HashMap::new()),
            clock,
        }))
    }

    /// A temporary access key for `principal` (a user who just logged in to the dashboard),
    /// valid [`SESSION_TTL_MS`]. When [`SESSIONS_MAX`] are live the one expiring soonest ends.
    pub fn start_session(
        &self,
        principal: &Principal,
    ) -> Result<SessionCredentials, IdentityError> {
        let id = format!("ASIA{}", &generate_access_key_id()?[4..]);
        let secret = generate_secret()?;
        let now_ms = self.now_ms();
        let expiration_ms = now_ms.saturating_add(SESSION_TTL_MS);
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| IdentityError::Hash("the session table is unavailable".to_owned()))?;
        sessions.retain(|_, session| session.expires_ms > now_ms);
        if sessions.len() >= SESSIONS_MAX
            && let Some(soonest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires_ms)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&soonest);
        }
        let mut principal = principal.clone();
        principal.authentication = Authentication::Session { key_id: id.clone() };
        sessions.insert(
            id.clone(),
            SessionKey {
                secret: secret.clone(),
                principal,
                expires_ms: expiration_ms,
            },
        );
        Ok(SessionCredentials {
            access_key_id: id,
            secret_access_key: secret,
            expiration_ms,
        })
    }

    /// Ends a dashboard session; whether it was live.
    pub fn end_session(&self, key_id: &str) -> bool {
        self.sessions
            .lock()
            .is_ok_and(|mut sessions| sessions.remove(key_id).is_some())
    }

    /// Admits a request of `principal` with a body of `bytes` under its identity's rates, or
    /// says how long it should wait. An API key is an identity of its own.
    pub fn admit(&self, principal: &Principal, bytes: usize) -> Result<(), std::time::Duration> {
        let identity = match &principal.authentication {
            Authentication::ApiKey { id, .. } => id,
            _ => &principal.name,
        };
        self.rates.admit(identity, bytes)
    }

    /// The audit log every API records its security events in.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The API key store, when there is one.
    pub fn api_keys(&self) -> Option<&ApiKeys> {
        self.api_keys.as_ref()
    }

    /// The roles, role mappings and action groups.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A copy of the identities as they are now.
    pub fn identities(&self) -> Identities {
        self.identities
            .read()
            .map(|identities| identities.clone())
            .unwrap_or_default()
    }

    /// Applies `change` to the identities, durably when a store backs them, then adopts the
    /// result. Writes a file: call it off the async threads.
    pub fn change_identities<T>(
        &self,
        change: impl FnOnce(&mut Identities) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let unavailable = || IdentityError::Hash("the identity store is unavailable".to_owned());
        let _changing = self.identity_changes.lock().map_err(|_| unavailable())?;
        let (answer, fresh) = match &self.store {
            Some(store) => {
                let mut fresh = None;
                let answer = store.update(|stored| {
                    let answer = change(stored)?;
                    fresh = Some(stored.clone());
                    Ok(answer)
                })?;
                (answer, fresh)
            }
            None => {
                let mut copy = self.identities.read().map_err(|_| unavailable())?.clone();
                let answer = change(&mut copy)?;
                (answer, Some(copy))
            }
        };
        if let Some(fresh) = fresh {
            *self.identities.write().map_err(|_| unavailable())? = fresh;
        }
        // A changed or removed password must be verified again.
        if let Ok(mut verified) = self.verified.lock() {
            verified.clear();
        }
        Ok(answer)
    }

    /// What `principal` may do under the roles as they are now.
    pub fn grants(&self, principal: &Principal) -> Grants {
        self.roles.grants(Subject {
            name: &principal.name,
            roles: &principal.roles,
            backend_roles: &principal.backend_roles,
            mapped: !matches!(principal.authentication, Authentication::ApiKey { .. }),
            limits: principal.limits.as_deref().map(Vec::as_slice),
        })
    }

    /// The principal of an API key: its owner, with the roles the owner had when it was made.
    pub fn api_key(&self, id: &str, key: &str) -> Result<Principal, ApiKeyRefusal> {
        let keys = self
            .api_keys
            .as_ref()
            .ok_or_else(|| ApiKeyRefusal::Unknown(id.to_owned()))?;
        let record = keys.authenticate(id, key, self.now_ms())?;
        // Checked when the key was made; a descriptor that no longer converts limits to nothing.
        let limits = (!record.role_descriptors.is_empty()).then(|| {
            Arc::new(
                crate::roles::from_role_descriptors(&record.role_descriptors)
                    .unwrap_or_else(|_| vec![crate::roles::RoleDefinition::default()]),
            )
        });
        Ok(Principal {
            name: record.username,
            roles: record.roles,
            backend_roles: Vec::new(),
            authentication: Authentication::ApiKey {
                id: id.to_owned(),
                name: record.name,
            },
            limits,
        })
    }

    /// The principal of a user and password (argon2id on a cache miss: call it off the async
    /// threads).
    pub fn basic(&self, user: &str, password: &str) -> Option<Principal> {
        let stored = self.identities.read().ok()?.users.get(user)?.clone();
        let principal = Principal {
            name: user.to_owned(),
            roles: stored.roles.clone(),
            backend_roles: stored.backend_roles.clone(),
            authentication: Authentication::Password,
            limits: None,
        };
        // Of the password with the hash it is checked against: a password verified against a
        // hash that has since been replaced (a login in flight while the password changed) is
        // never taken for the new one.
        let fingerprint = {
            let mut checked = Vec::with_capacity(stored.hash.len() + 1 + password.len());
            checked.extend_from_slice(stored.hash.as_bytes());
            checked.push(0);
            checked.extend_from_slice(password.as_bytes());
            sha256(&checked)
        };
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

    /// Checks a request's SigV4 signature (header or presigned form) against the access keys,
    /// stored or a dashboard session's: the verified signature and its key's principal. `Err`
    /// carries the access key id when the request named one.
    pub fn verify_signature(
        &self,
        request: &crate::http::Request,
    ) -> Result<(crate::sigv4::Verified, Principal), (crate::sigv4::SigV4Error, Option<String>)>
    {
        let signed = crate::sigv4::SignedRequest {
            method: request.method.as_str(),
            raw_path: &request.raw_path,
            raw_query: &request.raw_query,
            headers: &request.headers,
            body: &request.body,
        };
        let mut principal = None;
        let mut key_id = None;
        let verified = crate::sigv4::verify(&signed, crate::sigv4::now_s(), |id| {
            key_id = Some(id.to_owned());
            let (secret, found) = self.access_key(id)?;
            principal = Some(found);
            Some(secret)
        })
        .map_err(|error| (error, key_id.clone()))?;
        match principal {
            Some(principal) => Ok((verified, principal)),
            None => Err((crate::sigv4::SigV4Error::UnknownAccessKey, key_id)),
        }
    }

    /// [`Authenticator::basic`] on a blocking thread (argon2id must not hold up the async ones).
    pub async fn basic_off_thread(
        self: &Arc<Self>,
        user: &str,
        password: &str,
    ) -> Option<Principal> {
        let checking = self.clone();
        let (user, password) = (user.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || checking.basic(&user, &password))
            .await
            .ok()
            .flatten()
    }

    /// The secret and principal of an access key, or of a live dashboard session's key.
    pub fn access_key(&self, id: &str) -> Option<(String, Principal)> {
        if id.starts_with("ASIA") {
            let now_ms = self.now_ms();
            let sessions = self.sessions.lock().ok()?;
            let session = sessions
                .get(id)
                .filter(|session| session.expires_ms > now_ms)?;
            return Some((session.secret.clone(), session.principal.clone()));
        }
        let identities = self.identities.read().ok()?;
        let key = identities.access_keys.get(id)?;
        Some((
            key.secret.clone(),
            Principal {
                name: id.to_owned(),
                roles: key.roles.clone(),
                backend_roles: Vec::new(),
                authentication: Authentication::AccessKey,
                limits: None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_password_verified_against_a_replaced_hash_is_not_remembered_for_the_new_one() {
        let user = |password: &str| {
            crate::identities::User::new(
                crate::identities::hash_password(password).unwrap(),
                Vec::new(),
            )
        };
        let mut identities = Identities::default();
        identities
            .users
            .insert("ana".to_owned(), user("old password"));
        let authenticator = Authenticator::new(identities.clone());
        assert!(authenticator.basic("ana", "old password").is_some());
        // As if a login with the old password, verified before the change, remembered it after
        // the change cleared the cache: the new hash is in place and the old fingerprint stays.
        identities
            .users
            .insert("ana".to_owned(), user("new password"));
        *authenticator.identities.write().unwrap() = identities;
        assert!(authenticator.basic("ana", "old password").is_none());
        assert!(authenticator.basic("ana", "new password").is_some());
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
