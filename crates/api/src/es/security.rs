//! The `_security` endpoints Sluice serves: `_authenticate` (who the request is) and API keys
//! (`POST|PUT /_security/api_key` to create, `GET` to list, `DELETE` to invalidate,
//! `POST /_security/api_key/grant` to create one for another user by that user's password),
//! in Elasticsearch 8's shapes. The request was authenticated before it got here (`mod.rs`);
//! these handlers only see its `Principal`.
//!
//! A key holds its owner's effective roles as they were when it was made, limited by its
//! `role_descriptors` when it has some (`roles::from_role_descriptors`: Elasticsearch's
//! privilege names; one Sluice does not know, or field-level security, is refused with 400 rather
//! than ignored); an empty `role_descriptors` is what Elasticsearch does with none.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{EsApi, EsError, EsResult, json_response, parse_json_body};
use crate::api_keys::{API_KEY_REALM, ApiKeyError, KeyFilter, NewApiKey};
use crate::http::Request;
use crate::roles::Grants;
use crate::security::{Authentication, Authenticator, Principal};

/// The realm of internal users, as `_authenticate` and API keys' owners name it.
pub const USER_REALM: &str = "default_native";
/// The realm of the dashboard's temporary keys (the user is looked up in the native realm).
pub const DASHBOARD_REALM: &str = "sluice_dashboard";
/// The realm of Sluice's own work on behalf of a resource's role ARN.
pub const SERVICE_REALM: &str = "sluice_service";
/// The realm of SigV4 access keys on the search port.
pub const SIGV4_REALM: &str = "aws_sigv4";

fn security_off() -> EsError {
    EsError::illegal_argument(
        "security is not enabled on this node: start sluice with --security to use the security APIs",
    )
}

fn key_error(error: ApiKeyError) -> EsError {
    match error {
        ApiKeyError::Invalid(reason) => EsError::illegal_argument(reason),
        ApiKeyError::TooMany => EsError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            error.to_string(),
        ),
        ApiKeyError::Store(store) => EsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("failed to store the API keys: {store}"),
        ),
    }
}

fn forbidden(reason: String) -> EsError {
    EsError::new(StatusCode::FORBIDDEN, "security_exception", reason)
}

/// Serves a `_security` request; `principal` is `None` when security is off.
pub(super) async fn route(
    api: &EsApi,
    request: &Request,
    principal: Option<&Principal>,
) -> EsResult {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    let (body, authenticator, caller) = secured(api, request, principal)?;
    let authenticator = &authenticator;
    let caller = &caller;
    match (segments.as_slice(), method) {
        (["_security", "_authenticate"], "GET") => Ok(authenticate(caller)),
        (["_security", "api_key"], "POST" | "PUT") => create(authenticator, caller, body).await,
        (["_security", "api_key"], "GET") => list(authenticator, caller, request),
        (["_security", "api_key"], "DELETE") => invalidate(authenticator, caller, body).await,
        (["_security", "api_key", "grant"], "POST") => grant(authenticator, caller, body).await,
        _ => Err(EsError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!(
                "no handler found for uri [{}] and method [{method}]",
                request.raw_path
            ),
        )),
    }
}

/// Who sent a security request, and what it may do.
pub(super) struct Caller<'a> {
    pub principal: &'a Principal,
    pub grants: &'a Grants,
}

/// What every security request (`_security`, `_plugins/_security`) starts with: its JSON body,
/// read first so a broken one is named whatever the node's security, then the node's
/// authenticator and the caller, or the error of a node without `--security`.
pub(super) fn secured<'a>(
    api: &EsApi,
    request: &'a Request,
    principal: Option<&'a Principal>,
) -> Result<(Value, Arc<Authenticator>, Caller<'a>), EsError> {
    let body = if request.body.is_empty() {
        Value::Null
    } else {
        parse_json_body(&request.body, "x_content_parse_exception")?
    };
    match (
        api.authenticator.clone(),
        principal,
        request.grants.as_deref(),
    ) {
        (Some(authenticator), Some(principal), Some(grants)) => {
            Ok((body, authenticator, Caller { principal, grants }))
        }
        _ => Err(security_off()),
    }
}

/// The cluster action that lets a caller see and invalidate every user's keys, not only its own.
const MANAGE_API_KEYS: &str = "cluster:admin/xpack/security/api_key/manage";
const GRANT_API_KEY: &str = "cluster:admin/xpack/security/api_key/grant";
/// Creating a key of one's own (Elasticsearch's `manage_own_api_key`).
const CREATE_API_KEY: &str = "cluster:admin/xpack/security/api_key/create";

/// Sets a member of a JSON object (the answers built here are objects).
fn set(body: &mut Value, key: &str, value: Value) {
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

/// `GET /_security/_authenticate`.
fn authenticate(caller: &Caller<'_>) -> super::Response {
    let principal = caller.principal;
    let realm = |name: &str, kind: &str| json!({"name": name, "type": kind});
    let mut body = json!({
        "username": principal.name,
        "roles": caller.grants.roles,
        "backend_roles": principal.backend_roles,
        "full_name": null,
        "email": null,
        "metadata": {},
        "enabled": true,
        "authentication_type": "realm",
    });
    let (authentication_realm, lookup_realm) = match &principal.authentication {
        Authentication::Password => (realm(USER_REALM, "native"), realm(USER_REALM, "native")),
        Authentication::AccessKey => (realm(SIGV4_REALM, "sigv4"), realm(SIGV4_REALM, "sigv4")),
        Authentication::Service => (
            realm(SERVICE_REALM, "service"),
            realm(SERVICE_REALM, "service"),
        ),
        Authentication::Session { .. } => (
            realm(DASHBOARD_REALM, "dashboard"),
            realm(USER_REALM, "native"),
        ),
        Authentication::ApiKey { id, name } => {
            set(&mut body, "authentication_type", json!("api_key"));
            // An API key's roles are its own (limited by its owner's), not the owner's list.
            set(&mut body, "roles", json!([]));
            set(&mut body, "api_key", json!({"id": id, "name": name}));
            (
                realm(API_KEY_REALM, API_KEY_REALM),
                realm(API_KEY_REALM, API_KEY_REALM),
            )
        }
    };
    set(&mut body, "authentication_realm", authentication_realm);
    set(&mut body, "lookup_realm", lookup_realm);
    json_response(StatusCode::OK, &body, false)
}

/// The key part of a create or grant request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    name: Option<String>,
    expiration: Option<String>,
    #[serde(default)]
    role_descriptors: Map<String, Value>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

fn read<T: for<'de> Deserialize<'de> + Default>(body: Value, what: &str) -> Result<T, EsError> {
    if body.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(body).map_err(|error| {
        EsError::bad_request(
            "x_content_parse_exception",
            format!("[{what}] failed to parse: {error}"),
        )
    })
}

impl KeyRequest {
    fn into_new(self, username: String, roles: Vec<String>) -> Result<NewApiKey, EsError> {
        let name = self.name.ok_or_else(|| {
            EsError::bad_request(
                "action_request_validation_exception",
                "Validation Failed: 1: api key name is required;",
            )
        })?;
        crate::roles::from_role_descriptors(&self.role_descriptors)
            .map_err(|error| EsError::illegal_argument(error.to_string()))?;
        let expires_in_ms = match self.expiration.as_deref() {
            None => None,
            Some(text) => {
                let duration = sluice_search::settings::parse_time_value(text)
                    .flatten()
                    .filter(|duration| !duration.is_zero())
                    .ok_or_else(|| {
                        EsError::illegal_argument(format!(
                            "failed to parse setting [expiration] with value [{text}] as a positive time value"
                        ))
                    })?;
                Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            }
        };
        Ok(NewApiKey {
            name,
            expires_in_ms,
            role_descriptors: self.role_descriptors,
            metadata: self.metadata,
            username,
            realm: USER_REALM.to_owned(),
            roles,
        })
    }
}

/// Creates a key on a blocking thread (the store writes its file) and renders Elasticsearch's
/// answer.
async fn store_key(authenticator: &Arc<Authenticator>, new: NewApiKey) -> EsResult {
    let now_ms = authenticator.now_ms();
    let storing = authenticator.clone();
    let created = blocking(move || {
        let keys = storing.api_keys().ok_or_else(security_off)?;
        keys.create(new, now_ms).map_err(key_error)
    })
    .await?;
    let mut body = json!({
        "id": created.id,
        "name": created.name,
        "api_key": created.key,
        "encoded": created.encoded(),
    });
    if let Some(expiration) = created.expiration {
        set(&mut body, "expiration", json!(expiration));
    }
    Ok(json_response(StatusCode::OK, &body, false))
}

/// Runs `work` on a blocking thread (argon2id, or a file write with fsync).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EsError> + Send + 'static,
) -> Result<T, EsError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        EsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("the security task failed: {error}"),
        )
    })?
}

/// `POST|PUT /_security/api_key`: a key owned by the caller, with the caller's role.
async fn create(authenticator: &Arc<Authenticator>, caller: &Caller<'_>, body: Value) -> EsResult {
    if !caller.grants.cluster_allows(CREATE_API_KEY) {
        return Err(forbidden(format!(
            "action [{CREATE_API_KEY}] is unauthorized for user [{}]",
            caller.principal.name
        )));
    }
    let request: KeyRequest = read(body, "create_api_key_request")?;
    let new = request.into_new(caller.principal.name.clone(), caller.grants.roles.clone())?;
    store_key(authenticator, new).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    api_key: Option<KeyRequest>,
    run_as: Option<String>,
}

/// `POST /_security/api_key/grant`: a key for the user whose password is given, by a caller
/// that may manage keys (all_access).
async fn grant(authenticator: &Arc<Authenticator>, caller: &Caller<'_>, body: Value) -> EsResult {
    if !caller.grants.cluster_allows(GRANT_API_KEY) {
        return Err(forbidden(format!(
            "action [{GRANT_API_KEY}] is unauthorized for user [{}]",
            caller.principal.name
        )));
    }
    let request: GrantRequest = read(body, "grant_api_key_request")?;
    if request.grant_type.as_deref() != Some("password") {
        return Err(EsError::bad_request(
            "action_request_validation_exception",
            "Validation Failed: 1: grant_type must be [password] (Sluice has no access tokens);",
        ));
    }
    if request.run_as.is_some() {
        return Err(EsError::illegal_argument("[run_as] is not supported"));
    }
    let (Some(username), Some(password)) = (request.username, request.password) else {
        return Err(EsError::bad_request(
            "action_request_validation_exception",
            "Validation Failed: 1: username is required;2: password is required;",
        ));
    };
    let Some(owner) = authenticator.basic_off_thread(&username, &password).await else {
        return Err(EsError::new(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            format!("unable to authenticate user [{username}] for the api key grant"),
        ));
    };
    let key = request.api_key.unwrap_or_default();
    let roles = authenticator.grants(&owner).roles;
    let new = key.into_new(owner.name, roles)?;
    store_key(authenticator, new).await
}

/// The filter of a GET or DELETE, narrowed to the caller's own keys unless it may manage all.
fn narrowed(mut filter: KeyFilter, owner: bool, caller: &Caller<'_>) -> KeyFilter {
    let principal = caller.principal;
    if owner || !caller.grants.cluster_allows(MANAGE_API_KEYS) {
        filter.username = Some(principal.name.clone());
        if !matches!(principal.authentication, Authentication::ApiKey { .. }) {
            filter.realm = Some(USER_REALM.to_owned());
        }
    }
    filter
}

fn flag(request: &Request, name: &str) -> Result<bool, EsError> {
    match request.param(name) {
        None => Ok(false),
        Some("" | "true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(EsError::illegal_argument(format!(
            "Failed to parse value [{other}] as only [true] or [false] are allowed."
        ))),
    }
}

/// `GET /_security/api_key?id=&name=&username=&realm_name=&owner=&active_only=`.
fn list(authenticator: &Arc<Authenticator>, caller: &Caller<'_>, request: &Request) -> EsResult {
    let keys = authenticator.api_keys().ok_or_else(security_off)?;
    let filter = KeyFilter {
        ids: request.param("id").map(|id| vec![id.to_owned()]),
        name: request.param("name").map(str::to_owned),
        username: request.param("username").map(str::to_owned),
        realm: request.param("realm_name").map(str::to_owned),
        active_only: flag(request, "active_only")?,
    };
    let filter = narrowed(filter, flag(request, "owner")?, caller);
    let found: Vec<Value> = keys
        .list(&filter, authenticator.now_ms())
        .iter()
        .map(|(id, record)| record.to_json(id))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"api_keys": found}),
        false,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    id: Option<String>,
    ids: Option<Vec<String>>,
    name: Option<String>,
    username: Option<String>,
    realm_name: Option<String>,
    #[serde(default)]
    owner: bool,
}

/// `DELETE /_security/api_key` with `ids`, `name`, `username`, `realm_name` or `owner`.
async fn invalidate(
    authenticator: &Arc<Authenticator>,
    caller: &Caller<'_>,
    body: Value,
) -> EsResult {
    let request: InvalidateRequest = read(body, "invalidate_api_key_request")?;
    let ids = match (request.id, request.ids) {
        (Some(_), Some(_)) => {
            return Err(EsError::bad_request(
                "action_request_validation_exception",
                "Validation Failed: 1: only one of [api key id, api key ids] can be specified;",
            ));
        }
        (Some(id), None) => Some(vec![id]),
        (None, ids) => ids,
    };
    if ids.is_none()
        && request.name.is_none()
        && request.username.is_none()
        && request.realm_name.is_none()
        && !request.owner
    {
        return Err(EsError::bad_request(
            "action_request_validation_exception",
            "Validation Failed: 1: One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false;",
        ));
    }
    let filter = KeyFilter {
        ids,
        name: request.name,
        username: request.username,
        realm: request.realm_name,
        active_only: false,
    };
    let filter = narrowed(filter, request.owner, caller);
    let now_ms = authenticator.now_ms();
    let storing = authenticator.clone();
    let (invalidated, before) = blocking(move || {
        let keys = storing.api_keys().ok_or_else(security_off)?;
        keys.invalidate(&filter, now_ms).map_err(key_error)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "invalidated_api_keys": invalidated,
            "previously_invalidated_api_keys": before,
            "error_count": 0,
        }),
        false,
    ))
}
