//! OpenSearch's security REST API under `_plugins/_security/api` (and its older
//! `_opendistro/_security/api` prefix): internal users, roles, role mappings and action groups,
//! each listed, read, created or replaced with PUT, and deleted; `account` (who the caller is,
//! and changing its own password); and `_plugins/_security/authinfo`. Answers and errors have
//! the plugin's shapes (`{"status": "CREATED", "message": "'x' created."}`). Managing a kind
//! needs the cluster permission `restapi:admin/{kind}` (which `all_access` holds); static roles
//! and action groups are read-only. Changes are durable before they are answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{EsApi, EsResult, blocking, json_response, parse_json_body};
use crate::http::{Request, Response};
use crate::identities::{IdentityError, User, check_name as check_user_name, hash_password};
use crate::roles::{
    ActionGroup, RoleDefinition, RoleMapping, RolesError, RolesFile, STATIC_ROLES, check_name,
    static_action_group, static_action_group_names, static_role, validate_action_group,
    validate_mapping, validate_role,
};
use crate::security::{Authentication, Authenticator, Principal};

/// The plugin's answer: `{"status": STATUS, "message": …}` with that HTTP status.
fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    let name = match status {
        StatusCode::OK => "OK",
        StatusCode::CREATED => "CREATED",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::INTERNAL_SERVER_ERROR => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    };
    json_response(
        status,
        &json!({"status": name, "message": message.into()}),
        false,
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    answer(StatusCode::BAD_REQUEST, message)
}

fn not_found(name: &str) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        format!("Resource '{name}' not found."),
    )
}

fn roles_error(error: RolesError) -> Response {
    match error {
        RolesError::Reserved(name) => answer(
            StatusCode::FORBIDDEN,
            format!("Resource '{name}' is read-only."),
        ),
        RolesError::Store(reason) => answer(StatusCode::INTERNAL_SERVER_ERROR, reason),
        other => bad_request(other.to_string()),
    }
}

fn identity_error(error: IdentityError) -> Response {
    match error {
        IdentityError::UserNotFound(name) => not_found(&name),
        IdentityError::InvalidName(_)
        | IdentityError::InvalidPassword
        | IdentityError::UserExists(_) => bad_request(error.to_string()),
        other => answer(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// The kinds of resources the API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InternalUsers,
    Roles,
    RolesMapping,
    ActionGroups,
}

impl Kind {
    fn parse(segment: &str) -> Option<Kind> {
        match segment {
            "internalusers" => Some(Kind::InternalUsers),
            "roles" => Some(Kind::Roles),
            "rolesmapping" => Some(Kind::RolesMapping),
            "actiongroups" => Some(Kind::ActionGroups),
            _ => None,
        }
    }

    /// Whether `name` is one of the kind's static, read-only resources.
    fn is_static(self, name: &str) -> bool {
        match self {
            Kind::Roles => static_role(name).is_some(),
            Kind::ActionGroups => static_action_group(name).is_some(),
            Kind::InternalUsers | Kind::RolesMapping => false,
        }
    }

    fn permission(self) -> &'static str {
        match self {
            Kind::InternalUsers => "restapi:admin/internalusers",
            Kind::Roles => "restapi:admin/roles",
            Kind::RolesMapping => "restapi:admin/rolesmapping",
            Kind::ActionGroups => "restapi:admin/actiongroups",
        }
    }
}

/// Whether the first segments are this API's (`_plugins/_security` or `_opendistro/_security`).
pub(super) fn is_security_api(segments: &[String]) -> bool {
    matches!(
        (
            segments.first().map(String::as_str),
            segments.get(1).map(String::as_str)
        ),
        (Some("_plugins" | "_opendistro"), Some("_security"))
    )
}

/// Serves a request of this API; `principal` is `None` when security is off.
pub(super) async fn route(
    api: &EsApi,
    request: &Request,
    principal: Option<&Principal>,
) -> EsResult {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let (body, authenticator, caller) = super::security::secured(api, request, principal)?;
    let (principal, grants) = (caller.principal, caller.grants);
    let method = request.method.as_str();
    let rest = segments.get(2..).unwrap_or_default();
    match (rest, method) {
        (["authinfo"], "GET") => Ok(authinfo(principal, grants)),
        (["api", "account"], "GET") => Ok(account(&authenticator, principal, grants)),
        (["api", "account"], "PUT") => change_password(&authenticator, principal, body).await,
        (["api", kind, ..], _) => {
            let Some(kind) = Kind::parse(kind) else {
                return Ok(bad_request(format!(
                    "[{kind}] is not a security API endpoint: internalusers, roles, rolesmapping, actiongroups or account"
                )));
            };
            if !grants.cluster_allows(kind.permission()) {
                return Err(super::access::cluster_refusal(grants, kind.permission()));
            }
            let name = rest.get(2).copied();
            match (method, name) {
                ("GET", name) => Ok(list(&authenticator, kind, name)),
                ("PUT", Some(name)) => put(&authenticator, kind, name, body).await,
                ("DELETE", Some(name)) => delete(&authenticator, kind, name).await,
                ("PATCH", Some(name)) => patch(&authenticator, kind, name, body).await,
                ("PATCH", None) => patch_collection(&authenticator, kind, body).await,
                _ => Ok(bad_request(format!(
                    "{method} needs a resource name: /_plugins/_security/api/{}/{{name}}",
                    rest.first().copied().unwrap_or_default()
                ))),
            }
        }
        _ => Ok(bad_request(format!(
            "no handler found for uri [{}] and method [{method}]",
            request.raw_path
        ))),
    }
}

/// `GET /_plugins/_security/authinfo`.
fn authinfo(principal: &Principal, grants: &crate::roles::Grants) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "user": format!("User [name={}, backend_roles={:?}, requestedTenant=null]", principal.name, principal.backend_roles),
            "user_name": principal.name,
            "user_requested_tenant": null,
            "remote_address": null,
            "backend_roles": principal.backend_roles,
            "custom_attribute_names": [],
            "roles": grants.roles,
            "tenants": {},
            "principal": null,
            "peer_certificates": "0",
            "sso_logout_url": null,
        }),
        false,
    )
}

/// `GET /_plugins/_security/api/account`.
fn account(
    authenticator: &Authenticator,
    principal: &Principal,
    grants: &crate::roles::Grants,
) -> Response {
    let internal = principal.authentication == Authentication::Password;
    let attributes: Vec<String> = authenticator
        .identities()
        .users
        .get(&principal.name)
        .map(|user| user.attributes.keys().cloned().collect())
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({
            "user_name": principal.name,
            "is_reserved": false,
            "is_hidden": false,
            "is_internal_user": internal,
            "user_requested_tenant": null,
            "backend_roles": principal.backend_roles,
            "custom_attribute_names": attributes,
            "tenants": {},
            "roles": grants.roles,
        }),
        false,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: Option<String>,
    password: Option<String>,
}

/// `PUT /_plugins/_security/api/account`: an internal user changes its own password.
async fn change_password(
    authenticator: &Arc<Authenticator>,
    principal: &Principal,
    body: Value,
) -> EsResult {
    if principal.authentication != Authentication::Password {
        return Ok(answer(
            StatusCode::FORBIDDEN,
            "only an internal user logged in with its password can change it",
        ));
    }
    let change: PasswordChange = match serde_json::from_value(body) {
        Ok(change) => change,
        Err(error) => return Ok(bad_request(error.to_string())),
    };
    let (Some(current), Some(password)) = (change.current_password, change.password) else {
        return Ok(bad_request(
            "both [current_password] and [password] are required",
        ));
    };
    let checking = authenticator.clone();
    let name = principal.name.clone();
    blocking(move || {
        if checking.basic(&name, &current).is_none() {
            return Ok(bad_request("Could not validate your current password."));
        }
        let hash = match hash_password(&password) {
            Ok(hash) => hash,
            Err(error) => return Ok(identity_error(error)),
        };
        let changed = checking.change_identities(|identities| {
            let user = identities
                .users
                .get_mut(&name)
                .ok_or_else(|| IdentityError::UserNotFound(name.clone()))?;
            user.hash = hash;
            Ok(())
        });
        Ok(match changed {
            Ok(()) => answer(StatusCode::OK, format!("'{name}' updated.")),
            Err(error) => identity_error(error),
        })
    })
    .await
}

/// An internal user as the API shows it (never its hash).
fn user_json(user: &User) -> Value {
    json!({
        "hash": "",
        "reserved": false,
        "hidden": false,
        "backend_roles": user.backend_roles,
        "attributes": user.attributes,
        "opendistro_security_roles": user.roles,
        "static": false,
    })
}

/// A resource as the API shows it: its own fields and the plugin's flags.
fn resource_json<T: serde::Serialize>(value: &T, reserved: bool) -> Value {
    let mut shown = serde_json::to_value(value).unwrap_or_else(|_| json!({}));
    if let Some(object) = shown.as_object_mut() {
        object.insert("reserved".into(), json!(reserved));
        object.insert("hidden".into(), json!(false));
        object.insert("static".into(), json!(reserved));
    }
    shown
}

/// Every resource of `kind`, static ones included, by name.
fn all_of(authenticator: &Authenticator, kind: Kind) -> BTreeMap<String, Value> {
    let file: RolesFile = authenticator.roles().snapshot();
    let mut out = BTreeMap::new();
    match kind {
        Kind::InternalUsers => {
            for (name, user) in authenticator.identities().users {
                out.insert(name, user_json(&user));
            }
        }
        Kind::Roles => {
            for name in STATIC_ROLES {
                if let Some(role) = static_role(name) {
                    out.insert((*name).to_owned(), resource_json(&role, true));
                }
            }
            for (name, role) in &file.roles {
                out.insert(name.clone(), resource_json(role, false));
            }
        }
        Kind::RolesMapping => {
            for (name, mapping) in &file.roles_mapping {
                out.insert(name.clone(), resource_json(mapping, false));
            }
        }
        Kind::ActionGroups => {
            for name in static_action_group_names() {
                if let Some(group) = static_action_group(name) {
                    out.insert(name.to_owned(), resource_json(&group, true));
                }
            }
            for (name, group) in &file.action_groups {
                out.insert(name.clone(), resource_json(group, false));
            }
        }
    }
    out
}

/// `GET …/{kind}` and `GET …/{kind}/{name}`.
fn list(authenticator: &Authenticator, kind: Kind, name: Option<&str>) -> Response {
    let all = all_of(authenticator, kind);
    match name {
        None => json_response(
            StatusCode::OK,
            &Value::Object(all.into_iter().collect::<Map<_, _>>()),
            false,
        ),
        Some(name) => match all.get(name) {
            Some(found) => json_response(StatusCode::OK, &json!({ name: found }), false),
            None => not_found(name),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    password: Option<String>,
    hash: Option<String>,
    #[serde(default)]
    opendistro_security_roles: Vec<String>,
    #[serde(default)]
    backend_roles: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Flags the plugin shows; accepted when false, as a GET's answer sent back.
    #[serde(default)]
    reserved: bool,
    #[serde(default)]
    hidden: bool,
    #[serde(default, rename = "static")]
    is_static: bool,
    #[serde(default)]
    description: Option<String>,
}

/// Reads a PUT body of `kind` into `T`, as the plugin's own parser refuses unknown fields.
fn read<T: for<'de> Deserialize<'de>>(body: Value) -> Result<T, Response> {
    let mut body = if body.is_null() { json!({}) } else { body };
    // The flags a GET shows may come back in a PUT: they are not the caller's to set.
    if let Some(object) = body.as_object_mut() {
        for flag in ["reserved", "hidden", "static"] {
            if object.get(flag).is_some_and(|value| value == &json!(false)) {
                object.remove(flag);
            }
        }
    }
    serde_json::from_value(body).map_err(|error| bad_request(error.to_string()))
}

/// Checks a DLS query parses as the Query DSL, the principal's name standing in for
/// `${user.name}`.
fn check_dls(role: &RoleDefinition) -> Result<(), Response> {
    for permission in &role.index_permissions {
        let Some(dls) = permission
            .dls
            .as_deref()
            .filter(|dls| !dls.trim().is_empty())
        else {
            continue;
        };
        let text = dls.replace(crate::roles::USER_NAME, "user");
        let parsed = parse_json_body(text.as_bytes(), "parsing_exception")
            .and_then(|value| super::search::parse_query(&value).map(|_| ()));
        if let Err(error) = parsed {
            return Err(bad_request(format!(
                "[dls] is not a valid query: {}",
                error.reason
            )));
        }
    }
    Ok(())
}

/// A role as a PUT sends it, checked (sizes, FLS lists, the DLS query).
fn role_from(body: Value) -> Result<RoleDefinition, Response> {
    let role: RoleDefinition = read(body)?;
    validate_role(&role).map_err(roles_error)?;
    check_dls(&role)?;
    Ok(role)
}

/// A role mapping as a PUT sends it, checked.
fn mapping_from(body: Value) -> Result<RoleMapping, Response> {
    let mapping: RoleMapping = read(body)?;
    validate_mapping(&mapping).map_err(roles_error)?;
    Ok(mapping)
}

/// An action group as a PUT sends it, checked (no group naming itself).
fn group_from(name: &str, body: Value) -> Result<ActionGroup, Response> {
    let group: ActionGroup = read(body)?;
    validate_action_group(name, &group).map_err(roles_error)?;
    Ok(group)
}

/// A change of the roles file answering whether it replaced an entry.
type RolesChange = Box<dyn FnOnce(&mut RolesFile) -> Result<bool, RolesError> + Send>;

/// `PUT …/{kind}/{name}`: creates (201) or replaces (200) a resource.
async fn put(authenticator: &Arc<Authenticator>, kind: Kind, name: &str, body: Value) -> EsResult {
    let name = name.to_owned();
    let authenticator = authenticator.clone();
    match kind {
        Kind::InternalUsers => {
            let user: UserBody = match read(body) {
                Ok(user) => user,
                Err(response) => return Ok(response),
            };
            let _ = (
                user.reserved,
                user.hidden,
                user.is_static,
                &user.description,
            );
            if let Err(error) = check_user_name(&name) {
                return Ok(identity_error(error));
            }
            blocking(move || {
                let hash = match (user.password, user.hash) {
                    (Some(password), _) => match hash_password(&password) {
                        Ok(hash) => Some(hash),
                        Err(error) => return Ok(identity_error(error)),
                    },
                    (None, Some(hash)) if hash.starts_with("$argon2id$") => Some(hash),
                    (None, Some(_)) => {
                        return Ok(bad_request(
                            "[hash] must be an argon2id PHC string; send [password] instead",
                        ));
                    }
                    (None, None) => None,
                };
                let changed = authenticator.change_identities(|identities| {
                    let existing = identities.users.get(&name).cloned();
                    let hash = match (hash, &existing) {
                        (Some(hash), _) => hash,
                        (None, Some(existing)) => existing.hash.clone(),
                        (None, None) => return Err(IdentityError::InvalidPassword),
                    };
                    let mut stored = User::new(hash, user.opendistro_security_roles);
                    stored.backend_roles = user.backend_roles;
                    stored.attributes = user.attributes;
                    identities.users.insert(name.clone(), stored);
                    Ok(existing.is_some())
                });
                Ok(match changed {
                    Ok(true) => answer(StatusCode::OK, format!("'{name}' updated.")),
                    Ok(false) => answer(StatusCode::CREATED, format!("'{name}' created.")),
                    Err(error) => identity_error(error),
                })
            })
            .await
        }
        Kind::Roles | Kind::RolesMapping | Kind::ActionGroups => {
            if let Err(error) = check_name(&name) {
                return Ok(roles_error(error));
            }
            if kind.is_static(&name) {
                return Ok(roles_error(RolesError::Reserved(name)));
            }
            let change: RolesChange = match kind {
                Kind::Roles => {
                    let role = match role_from(body) {
                        Ok(role) => role,
                        Err(response) => return Ok(response),
                    };
                    let name = name.clone();
                    Box::new(move |file| Ok(file.roles.insert(name, role).is_some()))
                }
                Kind::RolesMapping => {
                    let mapping = match mapping_from(body) {
                        Ok(mapping) => mapping,
                        Err(response) => return Ok(response),
                    };
                    let name = name.clone();
                    Box::new(move |file| {
                        if file.role(&name).is_none() {
                            return Err(RolesError::Invalid(format!(
                                "role '{name}' is not available for role-mapping."
                            )));
                        }
                        Ok(file.roles_mapping.insert(name, mapping).is_some())
                    })
                }
                _ => {
                    let group = match group_from(&name, body) {
                        Ok(group) => group,
                        Err(response) => return Ok(response),
                    };
                    let name = name.clone();
                    Box::new(move |file| Ok(file.action_groups.insert(name, group).is_some()))
                }
            };
            blocking(move || {
                Ok(match authenticator.roles().change(change) {
                    Ok(true) => answer(StatusCode::OK, format!("'{name}' updated.")),
                    Ok(false) => answer(StatusCode::CREATED, format!("'{name}' created.")),
                    Err(error) => roles_error(error),
                })
            })
            .await
        }
    }
}

/// `PATCH …/{kind}/{name}` with a JSON Patch: applied to the resource as a PUT would send it
/// (a user without its hash; `password` may be added), then stored as that PUT would store it.
async fn patch(
    authenticator: &Arc<Authenticator>,
    kind: Kind,
    name: &str,
    body: Value,
) -> EsResult {
    let file = authenticator.roles().snapshot();
    let current = match kind {
        Kind::InternalUsers => authenticator.identities().users.get(name).map(|user| {
            json!({
                "opendistro_security_roles": user.roles,
                "backend_roles": user.backend_roles,
                "attributes": user.attributes,
            })
        }),
        _ if kind.is_static(name) => {
            return Ok(roles_error(RolesError::Reserved(name.to_owned())));
        }
        Kind::Roles => file
            .roles
            .get(name)
            .and_then(|role| serde_json::to_value(role).ok()),
        Kind::RolesMapping => file
            .roles_mapping
            .get(name)
            .and_then(|mapping| serde_json::to_value(mapping).ok()),
        Kind::ActionGroups => file
            .action_groups
            .get(name)
            .and_then(|group| serde_json::to_value(group).ok()),
    };
    let Some(current) = current else {
        return Ok(not_found(name));
    };
    match crate::json_patch::apply(&current, &body) {
        Ok(patched) => put(authenticator, kind, name, patched).await,
        Err(reason) => Ok(bad_request(reason)),
    }
}

/// `PATCH …/{kind}` with a JSON Patch over the whole collection (`{"op": "add", "path":
/// "/name", "value": {…}}`, `{"op": "remove", "path": "/name"}`, `/name/field` paths): applied to
/// the collection as GET shows it without the static resources, then every resource it adds,
/// changes or removes is checked as its own PUT or DELETE would be before any is stored. The
/// roles file takes all its changes in one write; users are stored one by one (their passwords
/// hashed in turn) after all of them passed the checks.
async fn patch_collection(authenticator: &Arc<Authenticator>, kind: Kind, body: Value) -> EsResult {
    let file = authenticator.roles().snapshot();
    let to_map = |value: Option<Value>| match value {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let current = match kind {
        Kind::InternalUsers => authenticator
            .identities()
            .users
            .iter()
            .map(|(name, user)| {
                (
                    name.clone(),
                    json!({
                        "opendistro_security_roles": user.roles,
                        "backend_roles": user.backend_roles,
                        "attributes": user.attributes,
                    }),
                )
            })
            .collect(),
        Kind::Roles => to_map(serde_json::to_value(&file.roles).ok()),
        Kind::RolesMapping => to_map(serde_json::to_value(&file.roles_mapping).ok()),
        Kind::ActionGroups => to_map(serde_json::to_value(&file.action_groups).ok()),
    };
    let patched = match crate::json_patch::apply(&Value::Object(current.clone()), &body) {
        Ok(Value::Object(patched)) => patched,
        Ok(_) => {
            return Ok(bad_request(
                "the patched collection must stay an object of resources",
            ));
        }
        Err(reason) => return Ok(bad_request(reason)),
    };
    let removed: Vec<String> = current
        .keys()
        .filter(|name| !patched.contains_key(*name))
        .cloned()
        .collect();
    let changed: Vec<(String, Value)> = patched
        .into_iter()
        .filter(|(name, value)| current.get(name) != Some(value))
        .collect();
    for name in removed.iter().chain(changed.iter().map(|(name, _)| name)) {
        if kind.is_static(name) {
            return Ok(roles_error(RolesError::Reserved(name.clone())));
        }
    }
    match kind {
        Kind::InternalUsers => {
            let identities = authenticator.identities();
            for (name, value) in &changed {
                let user: UserBody = match read(value.clone()) {
                    Ok(user) => user,
                    Err(response) => return Ok(response),
                };
                if let Err(error) = check_user_name(name) {
                    return Ok(identity_error(error));
                }
                if user.password.is_none()
                    && user.hash.is_none()
                    && !identities.users.contains_key(name)
                {
                    return Ok(identity_error(IdentityError::InvalidPassword));
                }
            }
            drop(identities);
            for (name, value) in changed {
                let answered = put(authenticator, kind, &name, value).await?;
                if !answered.status.is_success() {
                    return Ok(answered);
                }
            }
            for name in removed {
                delete(authenticator, kind, &name).await?;
            }
        }
        Kind::Roles | Kind::RolesMapping | Kind::ActionGroups => {
            let mut roles = Vec::new();
            let mut mappings = Vec::new();
            let mut groups = Vec::new();
            for (name, value) in changed {
                if let Err(error) = check_name(&name) {
                    return Ok(roles_error(error));
                }
                let parsed = match kind {
                    Kind::Roles => role_from(value).map(|role| roles.push((name, role))),
                    Kind::RolesMapping => {
                        mapping_from(value).map(|mapping| mappings.push((name, mapping)))
                    }
                    _ => group_from(&name, value).map(|group| groups.push((name, group))),
                };
                if let Err(response) = parsed {
                    return Ok(response);
                }
            }
            let authenticator = authenticator.clone();
            let changed = blocking(move || {
                Ok(authenticator.roles().change(move |file| {
                    for name in &removed {
                        // Gone already (deleted meanwhile) is as good as removed.
                        match kind {
                            Kind::Roles => drop(file.roles.remove(name)),
                            Kind::RolesMapping => drop(file.roles_mapping.remove(name)),
                            _ => drop(file.action_groups.remove(name)),
                        }
                    }
                    for (name, role) in roles {
                        file.roles.insert(name, role);
                    }
                    for (name, mapping) in mappings {
                        if file.role(&name).is_none() {
                            return Err(RolesError::Invalid(format!(
                                "role '{name}' is not available for role-mapping."
                            )));
                        }
                        file.roles_mapping.insert(name, mapping);
                    }
                    for (name, group) in groups {
                        file.action_groups.insert(name, group);
                    }
                    Ok(true)
                }))
            })
            .await?;
            if let Err(error) = changed {
                return Ok(roles_error(error));
            }
        }
    }
    Ok(answer(StatusCode::OK, "Resource updated.".to_owned()))
}

/// `DELETE …/{kind}/{name}`.
async fn delete(authenticator: &Arc<Authenticator>, kind: Kind, name: &str) -> EsResult {
    let name = name.to_owned();
    let authenticator = authenticator.clone();
    if kind.is_static(&name) {
        return Ok(roles_error(RolesError::Reserved(name)));
    }
    blocking(move || {
        let deleted = match kind {
            Kind::InternalUsers => match authenticator
                .change_identities(|identities| Ok(identities.users.remove(&name).is_some()))
            {
                Ok(found) => found,
                Err(error) => return Ok(identity_error(error)),
            },
            _ => match authenticator.roles().change(|file| {
                Ok(match kind {
                    Kind::Roles => file.roles.remove(&name).is_some(),
                    Kind::RolesMapping => file.roles_mapping.remove(&name).is_some(),
                    _ => file.action_groups.remove(&name).is_some(),
                })
            }) {
                Ok(found) => found,
                Err(error) => return Ok(roles_error(error)),
            },
        };
        Ok(if deleted {
            answer(StatusCode::OK, format!("'{name}' deleted."))
        } else {
            not_found(&name)
        })
    })
    .await
}
