//! Roles, role mappings and action groups, as OpenSearch's security plugin models them, and what
//! they grant a principal ([`Grants`]).
//!
//! A role holds cluster permissions (action names such as `cluster:monitor/health`,
//! `indices:data/write/bulk`, or the AWS-style `kinesis:PutRecord`, and action groups such as
//! `cluster_monitor`) and index permissions (index patterns with `*`, the actions allowed on
//! them, and an optional document-level security query). A principal's roles are the ones given
//! to it directly (a user's, an access key's, an API key's snapshot of its owner's) and the ones
//! whose mapping names it: by user name (wildcards allowed) or by one of its backend roles (an
//! IAM role ARN, for example). `${user.name}` in an index pattern or a DLS query stands for the
//! principal's name.
//!
//! On the AWS-compatible port a request is an IAM action (`kinesis:PutRecord`) on resources
//! (the stream's ARN). A cluster permission matching the action allows it on every resource;
//! a role's `aws_permissions`, IAM policy statements (`{"Effect": "Allow"|"Deny", "Action": …,
//! "Resource": …}` with `*` and `?` wildcards, actions matched without regard to case), allow
//! it on the resources they name, and a matching `Deny` refuses it whatever else allows it.
//!
//! The static action groups and roles (`all_access`, `readall`, `crud`, `read`, …) are built in
//! and read-only; the ones users define live in `DATA_DIR/security/roles.json`:
//! `{"format_version":1,"roles":{…},"roles_mapping":{…},"action_groups":{…}}`, each entry in the
//! `_plugins/_security/api` shape, replaced whole by `identities::write_atomically` (temporary
//! file, fsync, rename, directory fsync) before a change is acknowledged. A file of a later
//! version is refused.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identities::{IDENTITIES_DIR, IdentityError, parse_versioned, write_atomically};

/// The version written in the file; a reader refuses a later one.
pub const ROLES_FORMAT_VERSION: u32 = 1;
const ROLES_FILE: &str = "roles.json";
/// Most roles, mappings or action groups of each kind a node keeps; the file is rewritten whole
/// on every change, so this bounds that write.
pub const ENTRIES_MAX: usize = 10_000;
/// Longest role, mapping or action group name.
pub const NAME_BYTES_MAX: usize = 256;
/// Most entries in one list of a role, mapping or action group (patterns, actions, users).
pub const LIST_ITEMS_MAX: usize = 1_000;
/// Deepest nesting of action groups naming action groups; deeper (or a cycle) is cut off.
const GROUP_DEPTH_MAX: usize = 16;
/// The placeholder of the principal's name in index patterns and DLS queries.
pub const USER_NAME: &str = "${user.name}";

/// A role: what its holders may do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub cluster_permissions: Vec<String>,
    #[serde(default)]
    pub index_permissions: Vec<IndexPermission>,
    /// Dashboards tenants; kept as given, Sluice's dashboard has a single tenant.
    #[serde(default)]
    pub tenant_permissions: Vec<Value>,
    /// IAM policy statements for the AWS-compatible port (a Sluice extension of the plugin's
    /// role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws_permissions: Vec<AwsStatement>,
}

/// Whether an IAM statement allows or denies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// One IAM policy statement: actions on resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsStatement {
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(rename = "Effect", default)]
    pub effect: Effect,
    #[serde(rename = "Action", deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    #[serde(
        rename = "Resource",
        default = "every_resource",
        deserialize_with = "one_or_many"
    )]
    pub resource: Vec<String>,
}

fn every_resource() -> Vec<String> {
    vec!["*".to_owned()]
}

/// IAM's "a string or a list of strings".
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// Actions allowed on the indices (and aliases) whose names match a pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexPermission {
    #[serde(default)]
    pub index_patterns: Vec<String>,
    /// Document-level security: a Query DSL query, as a JSON string, that reads see documents
    /// through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dls: Option<String>,
    /// Field-level security: the fields reads show (`title`, `customer.*`), or, each prefixed
    /// with `~`, the fields they hide; a field shown or hidden brings the fields beneath it.
    #[serde(default)]
    pub fls: Vec<String>,
    /// Field masking; refused when not empty.
    #[serde(default)]
    pub masked_fields: Vec<String>,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
}

/// Who holds a role beyond those given it directly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub backend_roles: Vec<String>,
    /// Kept as given; Sluice maps by identity, not by client address.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub and_backend_roles: Vec<String>,
}

/// A named set of actions and action groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    /// `cluster`, `index` or `all`, as the plugin labels groups.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Everything a node's roles file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesFile {
    pub format_version: u32,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDefinition>,
    #[serde(default)]
    pub roles_mapping: BTreeMap<String, RoleMapping>,
    #[serde(default)]
    pub action_groups: BTreeMap<String, ActionGroup>,
}

/// The static action groups: name, type, actions.
const STATIC_ACTION_GROUPS: &[(&str, &str, &[&str])] = &[
    ("unlimited", "all", &["*"]),
    ("cluster_all", "cluster", &["cluster:*"]),
    ("cluster_monitor", "cluster", &["cluster:monitor/*"]),
    (
        "cluster_composite_ops_ro",
        "cluster",
        &[
            "indices:data/read/mget",
            "indices:data/read/msearch",
            "indices:data/read/mtv",
            "indices:admin/aliases/exists*",
            "indices:admin/aliases/get*",
            "indices:data/read/scroll",
            "indices:admin/resolve/index",
        ],
    ),
    (
        "cluster_composite_ops",
        "cluster",
        &[
            "indices:data/write/bulk",
            "indices:admin/aliases*",
            "indices:data/write/reindex",
            "cluster_composite_ops_ro",
        ],
    ),
    (
        "manage_snapshots",
        "cluster",
        &["cluster:admin/snapshot/*", "cluster:admin/repository/*"],
    ),
    (
        "cluster_manage_pipelines",
        "cluster",
        &["cluster:admin/ingest/pipeline/*"],
    ),
    (
        "cluster_manage_index_templates",
        "cluster",
        &[
            "indices:admin/template/*",
            "indices:admin/index_template/*",
            "cluster:admin/component_template/*",
        ],
    ),
    ("indices_all", "index", &["indices:*"]),
    (
        "get",
        "index",
        &["indices:data/read/get*", "indices:data/read/mget*"],
    ),
    (
        "read",
        "index",
        &[
            "indices:data/read*",
            "indices:admin/mappings/fields/get*",
            "indices:admin/resolve/index",
        ],
    ),
    (
        "write",
        "index",
        &["indices:data/write*", "indices:admin/mapping/put"],
    ),
    ("delete", "index", &["indices:data/write/delete*"]),
    ("crud", "index", &["read", "write"]),
    (
        "search",
        "index",
        &[
            "indices:data/read/search*",
            "indices:data/read/msearch*",
            "indices:admin/resolve/index",
            "suggest",
        ],
    ),
    ("suggest", "index", &["indices:data/read/suggest*"]),
    (
        "create_index",
        "index",
        &["indices:admin/create", "indices:admin/mapping/put"],
    ),
    ("indices_monitor", "index", &["indices:monitor/*"]),
    (
        "index",
        "index",
        &[
            "indices:data/write/index*",
            "indices:data/write/update*",
            "indices:admin/mapping/put",
            "indices:data/write/bulk*",
        ],
    ),
    ("data_access", "index", &["indices:data/*", "crud"]),
    ("manage_aliases", "index", &["indices:admin/aliases*"]),
    ("manage", "index", &["indices:monitor/*", "indices:admin/*"]),
];

/// The static roles' names.
pub const STATIC_ROLES: &[&str] = &["all_access", "readall"];
/// The cluster permission of the dashboard's own reads (saved objects, the pipeline monitor).
pub const DASHBOARD_READ: &str = "sluice:dashboard/read";

/// A static role by name.
pub fn static_role(name: &str) -> Option<RoleDefinition> {
    let (description, cluster, index_actions): (&str, &[&str], &[&str]) = match name {
        "all_access" => ("Allows everything on every port", &["*"], &["*"]),
        "readall" => (
            "Allows searching and reading every index, the cluster's health and information, and the dashboard's reads",
            &[
                "cluster_composite_ops_ro",
                "cluster_monitor",
                DASHBOARD_READ,
            ],
            &["read"],
        ),
        _ => return None,
    };
    Some(RoleDefinition {
        description: Some(description.to_owned()),
        cluster_permissions: cluster.iter().map(|s| (*s).to_owned()).collect(),
        index_permissions: vec![IndexPermission {
            index_patterns: vec!["*".to_owned()],
            allowed_actions: index_actions.iter().map(|s| (*s).to_owned()).collect(),
            ..IndexPermission::default()
        }],
        tenant_permissions: Vec::new(),
        aws_permissions: Vec::new(),
    })
}

/// A static action group by name.
pub fn static_action_group(name: &str) -> Option<ActionGroup> {
    STATIC_ACTION_GROUPS
        .iter()
        .find(|(group, _, _)| *group == name)
        .map(|(_, kind, actions)| ActionGroup {
            description: None,
            allowed_actions: actions.iter().map(|s| (*s).to_owned()).collect(),
            kind: Some((*kind).to_owned()),
        })
}

/// The names of the static action groups.
pub fn static_action_group_names() -> impl Iterator<Item = &'static str> {
    STATIC_ACTION_GROUPS.iter().map(|(name, _, _)| *name)
}

/// `*` matches any run of characters, `?` any one character.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Why a role, mapping or action group is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    #[error("Resource '{0}' is reserved.")]
    Reserved(String),
    #[error("{0}")]
    Invalid(String),
    #[error("there are already {ENTRIES_MAX} {0}: delete some first")]
    TooMany(&'static str),
    #[error("{0}")]
    Store(String),
}

impl From<IdentityError> for RolesError {
    fn from(error: IdentityError) -> RolesError {
        RolesError::Store(error.to_string())
    }
}

/// Checks a name of a role, mapping or action group.
pub fn check_name(name: &str) -> Result<(), RolesError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && !name.starts_with('_')
        && name.chars().all(|c| !c.is_control() && c != '/');
    if valid {
        Ok(())
    } else {
        Err(RolesError::Invalid(format!(
            "invalid name [{name}]: 1 to {NAME_BYTES_MAX} bytes, no '/' or control characters, not starting with '_'"
        )))
    }
}

fn check_list(what: &str, list: &[String]) -> Result<(), RolesError> {
    if list.len() > LIST_ITEMS_MAX {
        return Err(RolesError::Invalid(format!(
            "[{what}] has {} entries, more than {LIST_ITEMS_MAX}",
            list.len()
        )));
    }
    if let Some(blank) = list.iter().find(|item| item.trim().is_empty()) {
        return Err(RolesError::Invalid(format!(
            "[{what}] has a blank entry [{blank}]"
        )));
    }
    Ok(())
}

/// Checks what the Query-DSL-free part of a role can: sizes, field-level security lists, and the
/// feature Sluice refuses rather than ignores (field masking). The DLS query itself is parsed by
/// the search API, which owns the Query DSL.
pub fn validate_role(role: &RoleDefinition) -> Result<(), RolesError> {
    check_list("cluster_permissions", &role.cluster_permissions)?;
    if role.index_permissions.len() > LIST_ITEMS_MAX {
        return Err(RolesError::Invalid(format!(
            "[index_permissions] has more than {LIST_ITEMS_MAX} entries"
        )));
    }
    for permission in &role.index_permissions {
        check_list("index_patterns", &permission.index_patterns)?;
        check_list("allowed_actions", &permission.allowed_actions)?;
        check_list("fls", &permission.fls)?;
        let excluded = permission.fls.iter().filter(|f| f.starts_with('~')).count();
        if excluded != 0 && excluded != permission.fls.len() {
            return Err(RolesError::Invalid(format!(
                "[fls] {:?} mixes fields to show with fields to hide (prefixed with ~); give one kind per index permission",
                permission.fls
            )));
        }
        if let Some(empty) = permission
            .fls
            .iter()
            .find(|f| f.trim_start_matches('~').is_empty())
        {
            return Err(RolesError::Invalid(format!(
                "[fls] has an entry [{empty}] that names no field"
            )));
        }
        if !permission.masked_fields.is_empty() {
            return Err(RolesError::Invalid(
                "[masked_fields] field masking is not supported by Sluice yet".to_owned(),
            ));
        }
    }
    if role.aws_permissions.len() > LIST_ITEMS_MAX {
        return Err(RolesError::Invalid(format!(
            "[aws_permissions] has more than {LIST_ITEMS_MAX} statements"
        )));
    }
    for statement in &role.aws_permissions {
        check_list("Action", &statement.action)?;
        check_list("Resource", &statement.resource)?;
        if statement.action.is_empty() {
            return Err(RolesError::Invalid(
                "an [aws_permissions] statement needs an [Action]".to_owned(),
            ));
        }
    }
    Ok(())
}

pub fn validate_mapping(mapping: &RoleMapping) -> Result<(), RolesError> {
    check_list("backend_roles", &mapping.backend_roles)?;
    check_list("users", &mapping.users)?;
    check_list("hosts", &mapping.hosts)?;
    check_list("and_backend_roles", &mapping.and_backend_roles)
}

pub fn validate_action_group(name: &str, group: &ActionGroup) -> Result<(), RolesError> {
    check_list("allowed_actions", &group.allowed_actions)?;
    if group.allowed_actions.iter().any(|action| action == name) {
        return Err(RolesError::Invalid(format!(
            "action group [{name}] cannot contain itself"
        )));
    }
    if let Some(kind) = &group.kind
        && !matches!(kind.as_str(), "cluster" | "index" | "all" | "kibana")
    {
        return Err(RolesError::Invalid(format!(
            "[type] must be cluster, index, all or kibana, not [{kind}]"
        )));
    }
    Ok(())
}

/// The actions of an Elasticsearch index privilege (`read`, `write`, `create_index`, …), as
/// API keys' role descriptors name them; `None` for one Sluice does not know.
fn es_index_privilege(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "all" => &["indices:*"],
        "read" => &["read"],
        "write" => &["write"],
        "index" => &["index"],
        "create" | "create_doc" => &[
            "indices:data/write/index*",
            "indices:data/write/bulk*",
            "indices:admin/mapping/put",
        ],
        "delete" => &["delete"],
        "create_index" | "auto_configure" => &["create_index"],
        "delete_index" => &["indices:admin/delete"],
        "manage" => &["manage"],
        "monitor" => &["indices_monitor"],
        "maintenance" => &[
            "indices:admin/refresh*",
            "indices:admin/flush*",
            "indices:admin/forcemerge*",
        ],
        "view_index_metadata" => &[
            "indices:admin/get",
            "indices:admin/mappings/get",
            "indices:admin/mappings/fields/get*",
            "indices:admin/aliases/get",
            "indices:admin/resolve/index",
            "indices:data/read/field_caps*",
            "indices:monitor/settings/get",
        ],
        _ => return None,
    })
}

/// The actions of an Elasticsearch cluster privilege; `None` for one Sluice does not know.
fn es_cluster_privilege(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "all" => &["*"],
        "monitor" => &["cluster_monitor"],
        "manage" => &["cluster:*", "cluster_manage_index_templates"],
        "manage_index_templates" => &["cluster_manage_index_templates"],
        "manage_own_api_key" => &["cluster:admin/xpack/security/api_key/create"],
        "manage_api_key" => &["cluster:admin/xpack/security/api_key/*"],
        "manage_security" => &["cluster:admin/xpack/security/*", "restapi:admin/*"],
        _ => return None,
    })
}

/// The roles an Elasticsearch API key's `role_descriptors` describe (`{"name": {"cluster": […],
/// "indices": [{"names", "privileges", "query"}]}}`), which limit the key below its owner.
/// Privileges Sluice does not know, field-level security, `run_as` and application privileges
/// are refused rather than ignored.
pub fn from_role_descriptors(
    descriptors: &serde_json::Map<String, Value>,
) -> Result<Vec<RoleDefinition>, RolesError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Descriptor {
        #[serde(default)]
        cluster: Vec<String>,
        #[serde(default)]
        indices: Vec<Indices>,
        #[serde(default)]
        applications: Vec<Value>,
        #[serde(default)]
        run_as: Vec<String>,
        #[serde(default)]
        metadata: Option<Value>,
        #[serde(default)]
        transient_metadata: Option<Value>,
        #[serde(default)]
        description: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Indices {
        names: Vec<String>,
        privileges: Vec<String>,
        #[serde(default)]
        query: Option<Value>,
        #[serde(default)]
        field_security: Option<Value>,
        #[serde(default)]
        allow_restricted_indices: bool,
    }
    let expand =
        |names: &[String], known: fn(&str) -> Option<&'static [&'static str]>, what: &str| {
            let mut actions = Vec::new();
            for name in names {
                if name.contains(':') {
                    actions.push(name.clone());
                } else {
                    let listed = known(name).ok_or_else(|| {
                        RolesError::Invalid(format!(
                            "unknown {what} privilege [{name}] in an API key's role descriptor"
                        ))
                    })?;
                    actions.extend(listed.iter().map(|action| (*action).to_owned()));
                }
            }
            Ok::<_, RolesError>(actions)
        };
    let mut roles = Vec::with_capacity(descriptors.len());
    for (name, descriptor) in descriptors {
        let descriptor: Descriptor = serde_json::from_value(descriptor.clone())
            .map_err(|error| RolesError::Invalid(format!("role descriptor [{name}]: {error}")))?;
        let _ = (
            &descriptor.metadata,
            &descriptor.transient_metadata,
            &descriptor.description,
        );
        if !descriptor.run_as.is_empty() || !descriptor.applications.is_empty() {
            return Err(RolesError::Invalid(format!(
                "role descriptor [{name}]: [run_as] and [applications] are not supported by Sluice"
            )));
        }
        let mut role = RoleDefinition {
            cluster_permissions: expand(&descriptor.cluster, es_cluster_privilege, "cluster")?,
            ..RoleDefinition::default()
        };
        for indices in descriptor.indices {
            let _ = indices.allow_restricted_indices;
            let fls = match indices.field_security {
                None => Vec::new(),
                Some(security) => field_security_as_fls(&security).map_err(|reason| {
                    RolesError::Invalid(format!("role descriptor [{name}]: {reason}"))
                })?,
            };
            role.index_permissions.push(IndexPermission {
                fls,
                index_patterns: indices.names,
                allowed_actions: expand(&indices.privileges, es_index_privilege, "index")?,
                dls: match indices.query {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(text),
                    Some(query) => Some(query.to_string()),
                },
                ..IndexPermission::default()
            });
        }
        validate_role(&role)?;
        roles.push(role);
    }
    Ok(roles)
}

/// Elasticsearch's `field_security` (`{"grant": [...], "except": [...]}`) as an `fls` list: a
/// grant list alone shows those fields, `grant: ["*"]` with `except` hides the exceptions. Other
/// combinations cannot be said in one list and are refused.
fn field_security_as_fls(security: &Value) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FieldSecurity {
        #[serde(default)]
        grant: Option<Vec<String>>,
        #[serde(default)]
        except: Vec<String>,
    }
    let security: FieldSecurity = serde_json::from_value(security.clone())
        .map_err(|error| format!("[field_security]: {error}"))?;
    let grant = security.grant.unwrap_or_default();
    match (grant.as_slice(), security.except.is_empty()) {
        (_, true) if grant.iter().any(|field| field == "*") => Ok(Vec::new()),
        (_, true) if grant.is_empty() => {
            Err("[field_security] grants no field; give [grant] at least one".to_owned())
        }
        (_, true) => Ok(grant),
        ([all], false) if all == "*" => Ok(security
            .except
            .iter()
            .map(|field| format!("~{field}"))
            .collect()),
        _ => {
            Err("[field_security] with [except] is supported with [grant] [\"*\"] only".to_owned())
        }
    }
}

/// Which fields of an index one grant shows: those matching `show` (or everything when it is
/// `None`), minus those matching `hide`. A pattern covers the path it matches and every path
/// beneath (`title` covers `title.keyword`).
#[derive(Debug, Clone, PartialEq)]
struct FieldRule {
    show: Option<Vec<String>>,
    hide: Vec<String>,
}

impl FieldRule {
    fn of(fls: &[String]) -> Option<FieldRule> {
        if fls.is_empty() {
            return None;
        }
        let hide: Vec<String> = fls
            .iter()
            .filter_map(|field| field.strip_prefix('~').map(str::to_owned))
            .collect();
        Some(if hide.is_empty() {
            FieldRule {
                show: Some(fls.to_vec()),
                hide,
            }
        } else {
            FieldRule { show: None, hide }
        })
    }

    fn shows(&self, path: &str) -> bool {
        let covered = |patterns: &[String]| {
            patterns
                .iter()
                .any(|pattern| path_and_parents(path).any(|p| pattern_matches(pattern, p)))
        };
        self.show.as_deref().is_none_or(covered) && !covered(&self.hide)
    }

    fn shows_all_beneath(&self, path: &str) -> bool {
        let beneath = format!("{path}.");
        // Whether a hidden pattern could match some path under `path`: conservatively, when
        // its literal start and `path.` agree as far as both go.
        let may_hide_beneath = |pattern: &String| match pattern.find(['*', '?']) {
            Some(wild) => {
                let literal = &pattern[..wild];
                literal.starts_with(&beneath) || beneath.starts_with(literal)
            }
            None => pattern.starts_with(&beneath),
        };
        self.shows(path) && !self.hide.iter().any(may_hide_beneath)
    }
}

/// `a.b.c`, then `a.b`, then `a`.
fn path_and_parents(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('.').map(|dot| &p[..dot]))
}

/// The fields a reader sees of one index: those some of its grants' rules show (several roles
/// add up), and, for an API key, what its role descriptors show too.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldAccess {
    any_of: Vec<FieldRule>,
    /// `None`: no further limit.
    limit: Option<Box<FieldAccess>>,
}

impl FieldAccess {
    /// No field.
    pub fn nothing() -> FieldAccess {
        FieldAccess {
            any_of: Vec::new(),
            limit: None,
        }
    }
}

impl sluice_search::field_security::FieldFilter for FieldAccess {
    fn shows(&self, path: &str) -> bool {
        self.any_of.iter().any(|rule| rule.shows(path))
            && self.limit.as_deref().is_none_or(|limit| limit.shows(path))
    }

    fn shows_all_beneath(&self, path: &str) -> bool {
        self.any_of.iter().any(|rule| rule.shows_all_beneath(path))
            && self
                .limit
                .as_deref()
                .is_none_or(|limit| limit.shows_all_beneath(path))
    }
}

/// Who a request is, as far as roles care.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    /// Roles given directly.
    pub roles: &'a [String],
    pub backend_roles: &'a [String],
    /// Whether role mappings apply (not to API keys, whose roles were fixed at creation).
    pub mapped: bool,
    /// An API key's role descriptors: what it may do is also limited to what these allow.
    pub limits: Option<&'a [RoleDefinition]>,
}

/// What one principal may do, computed from its roles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Whom these are (named in refusals).
    pub user: String,
    /// The effective roles, sorted (named in refusals and `_authenticate`).
    pub roles: Vec<String>,
    pub backend_roles: Vec<String>,
    /// Cluster action patterns, action groups expanded.
    cluster: Vec<String>,
    indices: Vec<IndexGrant>,
    /// IAM statements, actions lower-cased.
    aws: Vec<AwsStatement>,
    /// What an API key's role descriptors allow: every check must pass these too.
    limit: Option<Box<Grants>>,
}

#[derive(Debug, Clone, PartialEq)]
struct IndexGrant {
    patterns: Vec<String>,
    actions: Vec<String>,
    /// The DLS query with `${user.name}` substituted (a JSON string), or `None`: every document.
    dls: Option<String>,
    /// Field-level security, or `None`: every field.
    fields: Option<FieldRule>,
}

/// What a read may see of an index it is allowed to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every document.
    All,
    /// Documents matching any of these DLS queries (JSON texts).
    Matching(Vec<String>),
}

impl Grants {
    /// Everything on everything (security off, or the node's own work).
    pub fn unrestricted() -> Grants {
        Grants {
            user: "_system".to_owned(),
            roles: vec!["all_access".to_owned()],
            backend_roles: Vec::new(),
            cluster: vec!["*".to_owned()],
            indices: vec![IndexGrant {
                patterns: vec!["*".to_owned()],
                actions: vec!["*".to_owned()],
                dls: None,
                fields: None,
            }],
            aws: Vec::new(),
            limit: None,
        }
    }

    /// Whether the limit (an API key's descriptors) allows what `check` asks, when there is one.
    fn within_limit(&self, check: impl Fn(&Grants) -> bool) -> bool {
        self.limit.as_deref().is_none_or(check)
    }

    /// Whether some IAM statement names `action`, so that its resources matter.
    pub fn aws_statements_name(&self, action: &str) -> bool {
        let lowered = action.to_ascii_lowercase();
        self.aws.iter().any(|statement| {
            statement
                .action
                .iter()
                .any(|pattern| pattern_matches(pattern, &lowered))
        }) || self
            .limit
            .as_deref()
            .is_some_and(|limit| limit.aws_statements_name(action))
    }

    /// Whether the IAM `action` is allowed on some resource: for the commands of a QLDB session,
    /// whose ledger was checked when the session started.
    pub fn aws_allows_somewhere(&self, action: &str) -> bool {
        let lowered = action.to_ascii_lowercase();
        let own = self.own_cluster_allows(action)
            || self.aws.iter().any(|statement| {
                statement.effect == Effect::Allow
                    && statement
                        .action
                        .iter()
                        .any(|pattern| pattern_matches(pattern, &lowered))
            });
        own && self.within_limit(|limit| limit.aws_allows_somewhere(action))
    }

    /// Whether the IAM `action` is allowed on every one of `resources` (ARNs; `*` for an
    /// operation on no particular resource): a cluster permission or an `Allow` statement
    /// allows it on each, and no `Deny` statement matches any.
    pub fn aws_allows(&self, action: &str, resources: &[String]) -> bool {
        let lowered = action.to_ascii_lowercase();
        let matching = |effect: Effect, resource: &str| {
            self.aws.iter().any(|statement| {
                statement.effect == effect
                    && statement
                        .action
                        .iter()
                        .any(|pattern| pattern_matches(pattern, &lowered))
                    && statement
                        .resource
                        .iter()
                        .any(|pattern| pattern_matches(pattern, resource))
            })
        };
        let everywhere = self.own_cluster_allows(action);
        let own = resources.iter().all(|resource| {
            !matching(Effect::Deny, resource) && (everywhere || matching(Effect::Allow, resource))
        });
        own && self.within_limit(|limit| limit.aws_allows(action, resources))
    }

    /// Whether a cluster permission allows `action`.
    pub fn cluster_allows(&self, action: &str) -> bool {
        self.own_cluster_allows(action) && self.within_limit(|limit| limit.cluster_allows(action))
    }

    fn own_cluster_allows(&self, action: &str) -> bool {
        self.cluster
            .iter()
            .any(|pattern| pattern_matches(pattern, action))
    }

    fn grants_for<'a>(
        &'a self,
        action: &'a str,
        index: &'a str,
    ) -> impl Iterator<Item = &'a IndexGrant> + 'a {
        self.indices.iter().filter(move |grant| {
            grant
                .actions
                .iter()
                .any(|pattern| pattern_matches(pattern, action))
                && grant
                    .patterns
                    .iter()
                    .any(|pattern| pattern_matches(pattern, index))
        })
    }

    /// Whether an index permission allows `action` on the index or alias `index`.
    pub fn index_allows(&self, action: &str, index: &str) -> bool {
        self.grants_for(action, index).next().is_some()
            && self.within_limit(|limit| limit.index_allows(action, index))
    }

    /// Whether `action` is allowed on some index (for requests that name none yet).
    pub fn any_index_allows(&self, action: &str) -> bool {
        self.indices.iter().any(|grant| {
            grant
                .actions
                .iter()
                .any(|pattern| pattern_matches(pattern, action))
        }) && self.within_limit(|limit| limit.any_index_allows(action))
    }

    /// What `action` may see of `index`: every document when one of the grants allowing it has
    /// no DLS query, else the documents matching any of their queries. `None`: not allowed.
    pub fn visibility(&self, action: &str, index: &str) -> Option<Visibility> {
        self.visibility_of(action, &[index])
    }

    /// [`Grants::visibility`] of an index known by several names (itself and its aliases):
    /// the grants on any of them add up.
    pub fn visibility_of(&self, action: &str, names: &[&str]) -> Option<Visibility> {
        let own = self.own_visibility(action, names)?;
        let Some(limit) = self.limit.as_deref() else {
            return Some(own);
        };
        Some(match (own, limit.visibility_of(action, names)?) {
            (Visibility::All, other) | (other, Visibility::All) => other,
            // Both restrict: a document must match one query of each.
            (Visibility::Matching(mine), Visibility::Matching(theirs)) => {
                let any = |queries: Vec<String>| {
                    let parsed: Vec<Value> = queries
                        .iter()
                        .map(|text| serde_json::from_str(text).unwrap_or(Value::Null))
                        .collect();
                    serde_json::json!({"bool": {"should": parsed, "minimum_should_match": 1}})
                };
                let both = serde_json::json!({"bool": {"filter": [any(mine), any(theirs)]}});
                Visibility::Matching(vec![both.to_string()])
            }
        })
    }

    /// The fields `action` may see of an index known by `names` (itself and its aliases):
    /// `None` when every field, because a grant allowing it has no field-level security. When
    /// no grant allows it, no field.
    pub fn field_access(&self, action: &str, names: &[&str]) -> Option<FieldAccess> {
        let own = self.own_field_access(action, names);
        let limit = self
            .limit
            .as_deref()
            .and_then(|limit| limit.field_access(action, names));
        match (own, limit) {
            (None, limit) => limit,
            (Some(own), None) => Some(own),
            (Some(own), Some(limit)) => Some(FieldAccess {
                limit: Some(Box::new(limit)),
                ..own
            }),
        }
    }

    fn own_field_access(&self, action: &str, names: &[&str]) -> Option<FieldAccess> {
        let mut any_of = Vec::new();
        for grant in self.grants_for_names(action, names) {
            any_of.push(grant.fields.clone()?);
        }
        Some(FieldAccess {
            any_of,
            limit: None,
        })
    }

    /// The grants allowing `action` on any of `names`.
    fn grants_for_names<'a>(
        &'a self,
        action: &'a str,
        names: &'a [&'a str],
    ) -> impl Iterator<Item = &'a IndexGrant> + 'a {
        names
            .iter()
            .flat_map(move |name| self.grants_for(action, name))
    }

    fn own_visibility(&self, action: &str, names: &[&str]) -> Option<Visibility> {
        let mut queries = Vec::new();
        let mut allowed = false;
        for grant in self.grants_for_names(action, names) {
            allowed = true;
            match &grant.dls {
                None => return Some(Visibility::All),
                Some(query) => queries.push(query.clone()),
            }
        }
        allowed.then_some(Visibility::Matching(queries))
    }
}

/// Expands action groups in `actions` (recursively, cycles and depth cut off) into patterns.
fn expand(
    actions: &[String],
    groups: &BTreeMap<String, ActionGroup>,
    out: &mut BTreeSet<String>,
    depth: usize,
) {
    for action in actions {
        if depth < GROUP_DEPTH_MAX
            && let Some(group) = groups
                .get(action)
                .cloned()
                .or_else(|| static_action_group(action))
        {
            expand(&group.allowed_actions, groups, out, depth + 1);
        } else {
            out.insert(action.clone());
        }
    }
}

/// Substitutes the principal's name for `${user.name}` (and the older `${user_name}`).
fn substitute(text: &str, name: &str) -> String {
    text.replace(USER_NAME, name).replace("${user_name}", name)
}

/// The JSON string form of `name`, without its quotes, for substitution inside a DLS query.
fn json_escaped(name: &str) -> String {
    let quoted = serde_json::to_string(name).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned()
}

impl RolesFile {
    fn empty() -> RolesFile {
        RolesFile {
            format_version: ROLES_FORMAT_VERSION,
            ..RolesFile::default()
        }
    }

    /// A role by name: a static one, or one of this file.
    pub fn role(&self, name: &str) -> Option<RoleDefinition> {
        static_role(name).or_else(|| self.roles.get(name).cloned())
    }

    /// The roles `subject` holds: its own, and those whose mapping names it.
    pub fn roles_of(&self, subject: Subject<'_>) -> Vec<String> {
        let mut roles: BTreeSet<String> = subject.roles.iter().cloned().collect();
        if subject.mapped {
            for (role, mapping) in &self.roles_mapping {
                let by_user = mapping
                    .users
                    .iter()
                    .any(|user| pattern_matches(user, subject.name));
                let by_backend = mapping.backend_roles.iter().any(|wanted| {
                    subject
                        .backend_roles
                        .iter()
                        .any(|held| pattern_matches(wanted, held))
                });
                let by_all_backends = !mapping.and_backend_roles.is_empty()
                    && mapping
                        .and_backend_roles
                        .iter()
                        .all(|wanted| subject.backend_roles.iter().any(|held| held == wanted));
                if by_user || by_backend || by_all_backends {
                    roles.insert(role.clone());
                }
            }
        }
        roles.into_iter().collect()
    }

    /// What `subject` may do.
    pub fn grants(&self, subject: Subject<'_>) -> Grants {
        let roles = self.roles_of(subject);
        let definitions: Vec<RoleDefinition> =
            roles.iter().filter_map(|name| self.role(name)).collect();
        let mut grants = self.grants_of(subject.name, &definitions);
        grants.roles = roles;
        grants.backend_roles = subject.backend_roles.to_vec();
        if let Some(limits) = subject.limits {
            grants.limit = Some(Box::new(self.grants_of(subject.name, limits)));
        }
        grants
    }

    /// What `definitions` allow `name`, action groups expanded.
    fn grants_of(&self, name: &str, definitions: &[RoleDefinition]) -> Grants {
        let subject_name = name;
        let mut cluster = BTreeSet::new();
        let mut indices = Vec::new();
        let mut aws = Vec::new();
        for definition in definitions {
            for statement in &definition.aws_permissions {
                let mut statement = statement.clone();
                for action in &mut statement.action {
                    *action = action.to_ascii_lowercase();
                }
                aws.push(statement);
            }
            expand(
                &definition.cluster_permissions,
                &self.action_groups,
                &mut cluster,
                0,
            );
            for permission in &definition.index_permissions {
                let mut actions = BTreeSet::new();
                expand(
                    &permission.allowed_actions,
                    &self.action_groups,
                    &mut actions,
                    0,
                );
                indices.push(IndexGrant {
                    patterns: permission
                        .index_patterns
                        .iter()
                        .map(|pattern| substitute(pattern, subject_name))
                        .collect(),
                    actions: actions.into_iter().collect(),
                    dls: permission
                        .dls
                        .as_deref()
                        .filter(|query| !query.trim().is_empty())
                        .map(|query| substitute(query, &json_escaped(subject_name))),
                    fields: FieldRule::of(&permission.fls),
                });
            }
        }
        Grants {
            user: subject_name.to_owned(),
            roles: Vec::new(),
            backend_roles: Vec::new(),
            cluster: cluster.into_iter().collect(),
            indices,
            aws,
            limit: None,
        }
    }
}

/// The roles, mappings and action groups of a node, changed through the security API.
#[derive(Debug)]
pub struct Roles {
    /// `None`: not backed by a file (tests); changes stay in memory.
    directory: Option<PathBuf>,
    file: RwLock<RolesFile>,
    /// Held by a change from its copy to its adoption, so changes apply one at a time while
    /// readers (every authenticated request) keep the roles as they were until the file is
    /// written: `file`'s write lock is taken only to swap in the written copy.
    changes: Mutex<()>,
}

impl Roles {
    /// Roles held in memory only.
    pub fn in_memory() -> Roles {
        Roles {
            directory: None,
            file: RwLock::new(RolesFile::empty()),
            changes: Mutex::new(()),
        }
    }

    /// Opens the roles of `data_dir` (only the static ones when the file does not exist yet).
    pub fn open(data_dir: &Path) -> Result<Roles, IdentityError> {
        let directory = data_dir.join(IDENTITIES_DIR);
        let path = directory.join(ROLES_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => parse_versioned(&path, &bytes, ROLES_FORMAT_VERSION)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => RolesFile::empty(),
            Err(source) => return Err(IdentityError::Io { path, source }),
        };
        Ok(Roles {
            directory: Some(directory),
            file: RwLock::new(file),
            changes: Mutex::new(()),
        })
    }

    /// A copy of what the file holds now.
    pub fn snapshot(&self) -> RolesFile {
        self.file
            .read()
            .map(|file| file.clone())
            .unwrap_or_else(|_| RolesFile::empty())
    }

    /// What `subject` may do under the roles as they are now.
    pub fn grants(&self, subject: Subject<'_>) -> Grants {
        match self.file.read() {
            Ok(file) => file.grants(subject),
            Err(_) => Grants::default(),
        }
    }

    /// Runs `change` on a copy, writes the copy durably, and only then adopts it: a failed
    /// write changes nothing. Writes a file: call it off the async threads.
    pub fn change<T>(
        &self,
        change: impl FnOnce(&mut RolesFile) -> Result<T, RolesError>,
    ) -> Result<T, RolesError> {
        let unavailable = || RolesError::Store("the roles store is unavailable".to_owned());
        let _changing = self.changes.lock().map_err(|_| unavailable())?;
        let mut changed = self.file.read().map_err(|_| unavailable())?.clone();
        let answer = change(&mut changed)?;
        if changed.roles.len() > ENTRIES_MAX {
            return Err(RolesError::TooMany("roles"));
        }
        if changed.roles_mapping.len() > ENTRIES_MAX {
            return Err(RolesError::TooMany("role mappings"));
        }
        if changed.action_groups.len() > ENTRIES_MAX {
            return Err(RolesError::TooMany("action groups"));
        }
        changed.format_version = ROLES_FORMAT_VERSION;
        if let Some(directory) = &self.directory {
            let mut text = serde_json::to_vec_pretty(&changed)
                .map_err(|error| RolesError::Store(error.to_string()))?;
            text.push(b'\n');
            write_atomically(directory, ROLES_FILE, &text)?;
        }
        *self.file.write().map_err(|_| unavailable())? = changed;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subject<'a>(name: &'a str, roles: &'a [String], backend: &'a [String]) -> Subject<'a> {
        Subject {
            name,
            roles,
            backend_roles: backend,
            mapped: true,
            limits: None,
        }
    }

    #[test]
    fn role_descriptors_limit_a_key_below_its_owner() {
        let descriptors = serde_json::json!({
            "ingest": {
                "cluster": ["monitor"],
                "indices": [{"names": ["logs-*"], "privileges": ["create_doc", "view_index_metadata"]}]
            },
            "red": {
                "indices": [{"names": ["logs-*"], "privileges": ["read"], "query": {"term": {"team": "red"}}}]
            }
        });
        let limits = from_role_descriptors(descriptors.as_object().unwrap()).unwrap();
        let file = RolesFile::empty();
        let owner = ["all_access".to_owned()];
        let key = file.grants(Subject {
            limits: Some(&limits),
            ..subject("ops", &owner, &[])
        });
        assert!(key.index_allows("indices:data/write/index", "logs-2026"));
        assert!(key.index_allows("indices:admin/mappings/get", "logs-2026"));
        assert!(!key.index_allows("indices:data/write/delete", "logs-2026"));
        assert!(!key.index_allows("indices:data/write/index", "secrets"));
        assert!(key.cluster_allows("cluster:monitor/health"));
        assert!(!key.cluster_allows("restapi:admin/roles"));
        assert!(!key.aws_allows("kinesis:PutRecord", &["*".to_owned()]));
        assert_eq!(
            key.visibility("indices:data/read/search", "logs-1"),
            Some(Visibility::Matching(vec![
                r#"{"term":{"team":"red"}}"#.to_owned()
            ]))
        );
        // Both the owner and the key restricting reads: a document must pass both.
        let mut restricted = RolesFile::empty();
        restricted.roles.insert(
            "own".into(),
            serde_json::from_value(serde_json::json!({"index_permissions": [{
                "index_patterns": ["logs-*"], "allowed_actions": ["read"],
                "dls": "{\"term\": {\"owner\": \"ops\"}}"
            }]}))
            .unwrap(),
        );
        let own = ["own".to_owned()];
        let both = restricted.grants(Subject {
            limits: Some(&limits),
            ..subject("ops", &own, &[])
        });
        let Some(Visibility::Matching(queries)) =
            both.visibility("indices:data/read/search", "logs-1")
        else {
            panic!("both restrict reads");
        };
        assert_eq!(queries.len(), 1);
        assert!(
            queries[0].contains("owner") && queries[0].contains("red"),
            "{queries:?}"
        );
        for bad in [
            serde_json::json!({"r": {"indices": [{"names": ["x"], "privileges": ["nope"]}]}}),
            serde_json::json!({"r": {"cluster": ["read_ccr"]}}),
            serde_json::json!({"r": {"indices": [{"names": ["x"], "privileges": ["read"], "field_security": {}}]}}),
            serde_json::json!({"r": {"surprise": 1}}),
        ] {
            assert!(
                from_role_descriptors(bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    fn stock_writer() -> RoleDefinition {
        serde_json::from_value(serde_json::json!({
            "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
            "index_permissions": [{
                "index_patterns": ["stockdata*"],
                "allowed_actions": ["crud", "create_index", "manage"]
            }]
        }))
        .unwrap()
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("stockdata*", "stockdata-2026"));
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a?c", "abc"));
        assert!(!pattern_matches("a?c", "ac"));
        assert!(pattern_matches(
            "indices:data/read*",
            "indices:data/read/search"
        ));
        assert!(!pattern_matches("stockdata*", "stock"));
        assert!(pattern_matches("*a*b*", "xxaxxbxx"));
        assert!(!pattern_matches("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn a_role_limited_to_an_index_pattern() {
        let mut file = RolesFile::empty();
        file.roles.insert("firehose".into(), stock_writer());
        file.roles_mapping.insert(
            "firehose".into(),
            RoleMapping {
                backend_roles: vec!["arn:aws:iam::000000000000:role/firehose_*".into()],
                ..RoleMapping::default()
            },
        );
        let backend = vec!["arn:aws:iam::000000000000:role/firehose_delivery".to_owned()];
        let grants = file.grants(subject("delivery", &[], &backend));
        assert_eq!(grants.roles, vec!["firehose".to_owned()]);
        for action in [
            "indices:data/write/index",
            "indices:data/write/bulk[s]",
            "indices:admin/create",
            "indices:admin/mapping/put",
            "indices:data/read/search",
            "indices:admin/delete",
        ] {
            assert!(grants.index_allows(action, "stockdata"), "{action}");
            assert!(!grants.index_allows(action, "secrets"), "{action}");
        }
        assert!(grants.cluster_allows("indices:data/write/bulk"));
        assert!(grants.cluster_allows("cluster:monitor/health"));
        assert!(!grants.cluster_allows("cluster:admin/settings/update"));
        assert!(!grants.cluster_allows("restapi:admin/roles"));
        // Not mapped without the backend role.
        assert_eq!(file.grants(subject("delivery", &[], &[])).roles.len(), 0);
    }

    #[test]
    fn iam_statements_allow_and_deny_by_resource() {
        let mut file = RolesFile::empty();
        file.roles.insert(
            "orders".into(),
            serde_json::from_value(serde_json::json!({
                "cluster_permissions": ["kinesis:List*"],
                "aws_permissions": [
                    {"Effect": "Allow", "Action": ["kinesis:Put*", "kinesis:DescribeStream*"],
                     "Resource": "arn:aws:kinesis:*:*:stream/orders*"},
                    {"Effect": "Deny", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/orders-secret"},
                    {"Action": "firehose:PutRecord"}
                ]
            }))
            .unwrap(),
        );
        let grants = file.grants(subject("app", &["orders".to_owned()], &[]));
        let stream = |name: &str| {
            vec![format!(
                "arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
            )]
        };
        assert!(grants.aws_allows("kinesis:PutRecords", &stream("orders-eu")));
        assert!(grants.aws_allows("kinesis:putrecord", &stream("orders")));
        assert!(!grants.aws_allows("kinesis:PutRecord", &stream("payments")));
        assert!(!grants.aws_allows("kinesis:PutRecord", &stream("orders-secret")));
        assert!(!grants.aws_allows("kinesis:DeleteStream", &stream("orders")));
        // A cluster permission allows on every resource, but not past a Deny.
        assert!(grants.aws_allows("kinesis:ListShards", &stream("payments")));
        assert!(!grants.aws_allows("kinesis:ListShards", &stream("orders-secret")));
        assert!(grants.aws_allows("kinesis:ListStreams", &["*".to_owned()]));
        // `Resource` defaults to every resource.
        assert!(grants.aws_allows(
            "firehose:PutRecord",
            &["arn:aws:firehose:us-east-1:000000000000:deliverystream/x".to_owned()]
        ));
        assert!(grants.aws_statements_name("kinesis:PutRecord"));
        assert!(!grants.aws_statements_name("dynamodb:PutItem"));
        // Several resources: each must be allowed.
        let both = [stream("orders")[0].clone(), stream("payments")[0].clone()];
        assert!(!grants.aws_allows("kinesis:PutRecord", &both));
    }

    #[test]
    fn static_roles() {
        let file = RolesFile::empty();
        let all = file.grants(subject("root", &["all_access".to_owned()], &[]));
        assert!(all.cluster_allows("restapi:admin/roles"));
        assert!(all.cluster_allows("kinesis:PutRecord"));
        assert!(all.index_allows("indices:admin/delete", "anything"));
        let read = file.grants(subject("reader", &["readall".to_owned()], &[]));
        assert!(read.index_allows("indices:data/read/search", "logs"));
        assert!(read.index_allows("indices:admin/mappings/fields/get", "logs"));
        assert!(!read.index_allows("indices:data/write/index", "logs"));
        assert!(read.cluster_allows("indices:data/read/msearch"));
        assert!(read.cluster_allows(DASHBOARD_READ));
        assert!(!read.cluster_allows("kinesis:PutRecord"));
        // An unknown role grants nothing.
        let none = file.grants(subject("x", &["no-such-role".to_owned()], &[]));
        assert!(!none.any_index_allows("indices:data/read/search"));
    }

    #[test]
    fn dls_and_the_user_name() {
        let mut file = RolesFile::empty();
        file.roles.insert(
            "own".into(),
            serde_json::from_value(serde_json::json!({
                "index_permissions": [{
                    "index_patterns": ["orders", "home-${user.name}"],
                    "dls": "{\"term\": {\"owner\": \"${user.name}\"}}",
                    "allowed_actions": ["read"]
                }]
            }))
            .unwrap(),
        );
        file.roles_mapping.insert(
            "own".into(),
            RoleMapping {
                users: vec!["*".into()],
                ..RoleMapping::default()
            },
        );
        let grants = file.grants(subject("bo\"b", &[], &[]));
        assert_eq!(
            grants.visibility("indices:data/read/search", "orders"),
            Some(Visibility::Matching(vec![
                "{\"term\": {\"owner\": \"bo\\\"b\"}}".to_owned()
            ]))
        );
        assert!(grants.index_allows("indices:data/read/search", "home-bo\"b"));
        assert_eq!(grants.visibility("indices:data/read/search", "other"), None);
        // A second role without DLS on the same index lifts the restriction.
        file.roles
            .insert("reader".into(), static_role("readall").unwrap());
        let both = file.grants(subject("bob", &["reader".to_owned()], &[]));
        assert_eq!(
            both.visibility("indices:data/read/search", "orders"),
            Some(Visibility::All)
        );
    }

    #[test]
    fn field_level_security_adds_up_across_roles_and_narrows_under_a_key() {
        use sluice_search::field_security::FieldFilter;
        let role = |fls: &[&str]| -> RoleDefinition {
            serde_json::from_value(serde_json::json!({"index_permissions": [{
                "index_patterns": ["staff", "alias-*"], "fls": fls, "allowed_actions": ["read"]
            }]}))
            .unwrap()
        };
        let mut file = RolesFile::empty();
        file.roles
            .insert("hide".into(), role(&["~salary", "~contact.phone", "~x*y"]));
        file.roles.insert("show".into(), role(&["name", "team.*"]));
        let search = "indices:data/read/search";

        let hide = file.grants(subject("u", &["hide".to_owned()], &[]));
        let fields = hide.field_access(search, &["staff"]).unwrap();
        assert!(!fields.shows("salary") && !fields.shows("salary.keyword"));
        assert!(fields.shows("contact") && fields.shows("contact.email"));
        assert!(!fields.shows("contact.phone") && !fields.shows("xy") && !fields.shows("x.y"));
        assert!(fields.shows("name.keyword") && fields.shows("salaries"));
        // A flattened field stays only when nothing beneath it could be hidden.
        assert!(fields.shows_all_beneath("name") && !fields.shows_all_beneath("contact"));
        assert!(!fields.shows_all_beneath("x") && fields.shows_all_beneath("w"));

        let show = file.grants(subject("u", &["show".to_owned()], &[]));
        let fields = show.field_access(search, &["staff"]).unwrap();
        assert!(fields.shows("name") && fields.shows("name.keyword") && fields.shows("team.role"));
        assert!(!fields.shows("team") && !fields.shows("salary") && !fields.shows("named"));
        // Through an alias name the alias's grants count; without any grant, nothing shows.
        assert!(
            show.field_access(search, &["other", "alias-1"])
                .unwrap()
                .shows("name")
        );
        assert!(!show.field_access(search, &["other"]).unwrap().shows("name"));

        // Several roles add up; a role without FLS shows everything.
        let both = file.grants(subject("u", &["hide".to_owned(), "show".to_owned()], &[]));
        let fields = both.field_access(search, &["staff"]).unwrap();
        assert!(fields.shows("contact.email") && fields.shows("name") && !fields.shows("salary"));
        file.roles.insert("all".into(), role(&[]));
        let all = file.grants(subject("u", &["hide".to_owned(), "all".to_owned()], &[]));
        assert!(all.field_access(search, &["staff"]).is_none());

        // An API key's descriptors narrow further: a field must be shown by both.
        let limits = from_role_descriptors(
            serde_json::json!({"k": {"indices": [{"names": ["staff"], "privileges": ["read"],
                "field_security": {"grant": ["*"], "except": ["contact"]}}]}})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            limits[0].index_permissions[0].fls,
            vec!["~contact".to_owned()]
        );
        let key = file.grants(Subject {
            limits: Some(&limits),
            ..subject("u", &["all".to_owned()], &[])
        });
        let fields = key.field_access(search, &["staff"]).unwrap();
        assert!(fields.shows("salary") && !fields.shows("contact.email"));
        let key = file.grants(Subject {
            limits: Some(&limits),
            ..subject("u", &["hide".to_owned()], &[])
        });
        let fields = key.field_access(search, &["staff"]).unwrap();
        assert!(!fields.shows("salary") && !fields.shows("contact.email") && fields.shows("name"));
        for refused in [
            serde_json::json!({"grant": ["a"], "except": ["a.b"]}),
            serde_json::json!({"grant": []}),
            serde_json::json!({"except": ["a"]}),
        ] {
            assert!(field_security_as_fls(&refused).is_err(), "{refused}");
        }
        assert_eq!(
            field_security_as_fls(&serde_json::json!({"grant": ["a", "b.*"]})).unwrap(),
            vec!["a".to_owned(), "b.*".to_owned()]
        );
    }

    #[test]
    fn action_groups_nest_and_cycles_end() {
        let mut file = RolesFile::empty();
        file.action_groups.insert(
            "a".into(),
            ActionGroup {
                allowed_actions: vec!["b".into(), "indices:data/read/get".into()],
                ..ActionGroup::default()
            },
        );
        file.action_groups.insert(
            "b".into(),
            ActionGroup {
                allowed_actions: vec!["a".into(), "search".into()],
                ..ActionGroup::default()
            },
        );
        file.roles.insert(
            "r".into(),
            RoleDefinition {
                index_permissions: vec![IndexPermission {
                    index_patterns: vec!["*".into()],
                    allowed_actions: vec!["a".into()],
                    ..IndexPermission::default()
                }],
                ..RoleDefinition::default()
            },
        );
        let grants = file.grants(subject("u", &["r".to_owned()], &[]));
        assert!(grants.index_allows("indices:data/read/get", "x"));
        assert!(grants.index_allows("indices:data/read/search", "x"));
        assert!(!grants.index_allows("indices:data/write/index", "x"));
    }

    #[test]
    fn refused_definitions() {
        let mut role = stock_writer();
        role.index_permissions[0].fls = vec!["~salary".into()];
        assert!(validate_role(&role).is_ok());
        role.index_permissions[0].fls = vec!["~salary".into(), "name".into()];
        assert!(validate_role(&role).is_err());
        role.index_permissions[0].fls = vec!["~".into()];
        assert!(validate_role(&role).is_err());
        role.index_permissions[0].fls = Vec::new();
        role.index_permissions[0].masked_fields = vec!["salary".into()];
        assert!(validate_role(&role).is_err());
        assert!(check_name("_hidden").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("stock-writer").is_ok());
        assert!(
            validate_action_group(
                "g",
                &ActionGroup {
                    allowed_actions: vec!["g".into()],
                    ..ActionGroup::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn changes_are_durable_and_a_later_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        roles
            .change(|file| {
                file.roles.insert("stock".into(), stock_writer());
                Ok(())
            })
            .unwrap();
        let reopened = Roles::open(dir.path()).unwrap();
        assert_eq!(reopened.snapshot().roles["stock"], stock_writer());
        let path = dir.path().join(IDENTITIES_DIR).join(ROLES_FILE);
        std::fs::write(&path, br#"{"format_version": 99}"#).unwrap();
        assert!(Roles::open(dir.path()).is_err());
    }

    proptest! {
        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(a in "[a-z.-]{0,12}", b in "[a-z.-]{0,12}") {
            prop_assert_eq!(pattern_matches(&a, &b), a == b);
        }

        #[test]
        fn star_prefix_matches(prefix in "[a-z]{0,6}", rest in "[a-z]{0,6}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(pattern_matches(&pattern, &text));
        }
    }
}
