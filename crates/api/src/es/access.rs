//! Authorization of Elasticsearch API requests under the roles of `roles.rs`: which action each
//! request is (Elasticsearch's and OpenSearch's action names, such as `indices:data/read/search`
//! or `cluster:monitor/health`), on which indices, and whether the sender's grants allow it.
//!
//! As Elasticsearch does, a wildcard expression (`*`, `logs-*`, `_all`, none) expands only to the
//! indices the sender may act on (to none at all, answered as an empty result, when it may act on
//! none), while a name given explicitly that the sender may not act on is a 403. Requests that
//! carry their indices in their bodies (`_bulk`, `_mget`, `_msearch`, `_aliases`, `_reindex`)
//! are checked item by item where those bodies are read, through [`allowed`].

use hyper::{Method, StatusCode};
use sluice_node::Node;
use sluice_search::IndicesOptions;

use super::EsError;
use crate::http::Request;
use crate::roles::Grants;

/// Searches' action: what DLS queries restrict.
pub(crate) const SEARCH: &str = "indices:data/read/search";
pub(crate) const GET: &str = "indices:data/read/get";
pub(crate) const MGET: &str = "indices:data/read/mget";
pub(crate) const INDEX: &str = "indices:data/write/index";
pub(crate) const UPDATE: &str = "indices:data/write/update";
pub(crate) const DELETE: &str = "indices:data/write/delete";
pub(crate) const CREATE_INDEX: &str = "indices:admin/create";
pub(crate) const ALIASES: &str = "indices:admin/aliases";

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    /// Only to be authenticated (its body's items are checked where they are read, or it
    /// touches nothing but the sender's own things).
    Authenticated,
    Cluster(&'static str),
    /// An index action on the expression in path segment `segment` (`None`: every index).
    Indices {
        action: &'static str,
        segment: Option<usize>,
    },
    /// A document action on the index or alias in segment 0, which creates the index when it
    /// does not exist yet.
    Document {
        action: &'static str,
        creates: bool,
    },
}

fn need(request: &Request) -> Need {
    use Need::*;
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let method = &request.method;
    let reads = matches!(*method, Method::GET | Method::HEAD);
    let deletes = *method == Method::DELETE;
    let on = |action: &'static str, segment: usize| Indices {
        action,
        segment: Some(segment),
    };
    let all = |action: &'static str| Indices {
        action,
        segment: None,
    };
    let templates = |kind: &'static str| -> Need {
        Cluster(match (kind, reads, deletes) {
            ("index", true, _) => "indices:admin/index_template/get",
            ("index", _, true) => "indices:admin/index_template/delete",
            ("index", _, _) => "indices:admin/index_template/put",
            ("legacy", true, _) => "indices:admin/template/get",
            ("legacy", _, true) => "indices:admin/template/delete",
            ("legacy", _, _) => "indices:admin/template/put",
            (_, true, _) => "cluster:admin/component_template/get",
            (_, _, true) => "cluster:admin/component_template/delete",
            _ => "cluster:admin/component_template/put",
        })
    };
    match segments.as_slice() {
        [] => Cluster("cluster:monitor/main"),
        ["_cluster", "health"] => Cluster("cluster:monitor/health"),
        ["_cluster", "health", _] => on("indices:monitor/health", 2),
        ["_cat", "indices"] => on("indices:monitor/stats", 2),
        ["_cat", "indices", _] => on("indices:monitor/stats", 2),
        // Each action of the body is checked by the handler.
        ["_aliases"] if !reads => Authenticated,
        ["_alias" | "_aliases"] => all("indices:admin/aliases/get"),
        ["_alias", _] => all("indices:admin/aliases/get"),
        [_, "_alias" | "_aliases", ..] if reads => on("indices:admin/aliases/get", 0),
        [_, "_alias" | "_aliases", _] => on(ALIASES, 0),
        ["_index_template", ..] => templates("index"),
        ["_template", ..] => templates("legacy"),
        ["_component_template", ..] => templates("component"),
        [_, "_delete_by_query"] => on("indices:data/write/delete/byquery", 0),
        [_, "_update_by_query"] => on("indices:data/write/update/byquery", 0),
        ["_reindex"] => Cluster("indices:data/write/reindex"),
        ["_tasks", _] => Cluster("cluster:monitor/task/get"),
        ["_tasks", _, "_cancel"] => Cluster("cluster:admin/tasks/cancel"),
        // Each search of the body is checked by the handler.
        ["_msearch"] | [_, "_msearch"] => Authenticated,
        ["_field_caps"] => all("indices:data/read/field_caps"),
        [_, "_field_caps"] => on("indices:data/read/field_caps", 0),
        ["_mapping", "field", _] => all("indices:admin/mappings/fields/get"),
        [_, "_mapping", "field", _] => on("indices:admin/mappings/fields/get", 0),
        ["_resolve", "index", _] => on("indices:admin/resolve/index", 2),
        // A scroll or point in time continues a search that was checked when it began.
        ["_search", "scroll", ..] => Authenticated,
        ["_pit"] => Authenticated,
        [_, "_pit"] => on("indices:data/read/open_point_in_time", 0),
        ["_search"] | ["_count"] => all(SEARCH),
        [_, "_search" | "_count"] => on(SEARCH, 0),
        ["_analyze"] => Authenticated,
        [_, "_analyze"] => on("indices:admin/analyze", 0),
        // Each item is checked by the handler.
        ["_bulk"] | [_, "_bulk"] | ["_mget"] | [_, "_mget"] => Authenticated,
        ["_refresh"] => all("indices:admin/refresh"),
        [_, "_refresh"] => on("indices:admin/refresh", 0),
        ["_mapping"] => all("indices:admin/mappings/get"),
        [_, "_mapping"] if reads => on("indices:admin/mappings/get", 0),
        [_, "_mapping"] => on("indices:admin/mapping/put", 0),
        [_, "_settings"] if reads => on("indices:monitor/settings/get", 0),
        [_, "_settings"] => on("indices:admin/settings/update", 0),
        [_, "_doc" | "_source", _] if reads => Document {
            action: GET,
            creates: false,
        },
        [_, "_doc", _] if deletes => Document {
            action: DELETE,
            creates: false,
        },
        [_, "_doc", ..] | [_, "_create", _] => Document {
            action: INDEX,
            creates: true,
        },
        [_, "_update", _] => Document {
            action: UPDATE,
            creates: true,
        },
        [_] if *method == Method::PUT => on(CREATE_INDEX, 0),
        [_] if deletes => on("indices:admin/delete", 0),
        [_] => on("indices:admin/get", 0),
        // `_security` checks its own; anything else is answered 400 or 405 by routing.
        _ => Authenticated,
    }
}

/// Whether `grants` allow `action` on the index or alias `name`: by its own name, or, for an
/// alias, on every index it points to.
pub(crate) fn allowed(node: &Node, grants: &Grants, action: &str, name: &str) -> bool {
    if grants.index_allows(action, name) {
        return true;
    }
    let catalog = node.indices().catalog();
    let indices = catalog.alias_indices(name);
    !indices.is_empty()
        && indices
            .iter()
            .all(|(index, _)| grants.index_allows(action, index))
}

/// Elasticsearch's 403 for an index action.
pub(crate) fn index_refusal(grants: &Grants, action: &str, names: &[&str]) -> EsError {
    EsError::new(
        StatusCode::FORBIDDEN,
        "security_exception",
        format!(
            "action [{action}] is unauthorized for user [{}] with effective roles [{}] on indices [{}]",
            grants.user,
            grants.roles.join(","),
            names.join(",")
        ),
    )
}

/// Elasticsearch's 403 for a cluster action.
pub(crate) fn cluster_refusal(grants: &Grants, action: &str) -> EsError {
    EsError::new(
        StatusCode::FORBIDDEN,
        "security_exception",
        format!(
            "action [{action}] is unauthorized for user [{}] with effective roles [{}]",
            grants.user,
            grants.roles.join(",")
        ),
    )
}

/// The expression standing for no index at all: every index, then none (what Elasticsearch
/// itself searches when a wildcard leaves a user no index).
const NO_INDEX: &str = "*,-*";

fn is_wildcard(part: &str) -> bool {
    part == "_all" || part.contains('*') || part.contains('?')
}

/// Checks `request` against `grants` before it is routed. A wildcard expression in its path is
/// narrowed, in place, to the indices `grants` allow; `Err` is the 403.
pub(super) fn authorize(
    node: &Node,
    grants: &Grants,
    request: &mut Request,
    options: IndicesOptions,
) -> Result<(), EsError> {
    match need(request) {
        Need::Authenticated => Ok(()),
        Need::Cluster(action) if grants.cluster_allows(action) => Ok(()),
        Need::Cluster(action) => Err(cluster_refusal(grants, action)),
        Need::Document { action, creates } => {
            let name = request.segments.first().cloned().unwrap_or_default();
            if !allowed(node, grants, action, &name) {
                return Err(index_refusal(grants, action, &[&name]));
            }
            let exists = node.indices().exists(&name)
                || !node.indices().catalog().alias_indices(&name).is_empty();
            if creates && !exists && !grants.index_allows(CREATE_INDEX, &name) {
                return Err(index_refusal(grants, CREATE_INDEX, &[&name]));
            }
            Ok(())
        }
        Need::Indices { action, segment } => {
            let expression = segment.and_then(|n| request.segments.get(n)).cloned();
            if let Some(narrowed) = narrow(node, grants, action, expression.as_deref(), options)? {
                let segments = &mut request.segments;
                match segment {
                    Some(n) if n < segments.len() => segments[n] = narrowed,
                    // `GET /_cat/indices`: the list goes after the endpoint.
                    Some(n) => segments.insert(n.min(segments.len()), narrowed),
                    // `GET /_search` and friends: the list goes before the endpoint.
                    None => segments.insert(0, narrowed),
                }
            }
            Ok(())
        }
    }
}

/// Checks an index expression for `action`: `Err` when it names an index or alias explicitly
/// that `grants` do not allow; `Ok(Some(list))` when wildcards reached indices that must be
/// left out, `list` being the expression to use instead; `Ok(None)` when it may run as it is.
pub(crate) fn narrow(
    node: &Node,
    grants: &Grants,
    action: &str,
    expression: Option<&str>,
    options: IndicesOptions,
) -> Result<Option<String>, EsError> {
    let text = expression.unwrap_or("").trim();
    let parts: Vec<&str> = if text.is_empty() {
        vec!["_all"]
    } else {
        text.split(',').filter(|part| !part.is_empty()).collect()
    };
    let mut seen_wildcard = false;
    let mut explicit = Vec::new();
    for part in &parts {
        if is_wildcard(part) {
            seen_wildcard = true;
        } else if !(seen_wildcard && part.starts_with('-')) {
            explicit.push(*part);
        }
    }
    let refused: Vec<&str> = explicit
        .iter()
        .copied()
        .filter(|name| !allowed(node, grants, action, name))
        .collect();
    if !refused.is_empty() {
        return Err(index_refusal(grants, action, &refused));
    }
    if !seen_wildcard {
        return Ok(None);
    }
    // What the expression reaches; an error (a missing explicit name) is the handler's to give.
    let Ok(resolved) = node.indices().resolve(Some(text), options) else {
        return Ok(None);
    };
    let catalog = node.indices().catalog();
    let through_explicit = |index: &str| {
        explicit.iter().any(|name| {
            *name == index
                || catalog
                    .alias_indices(name)
                    .iter()
                    .any(|(member, _)| *member == index)
        })
    };
    let left_out = resolved.iter().any(|target| {
        let name = target.index.name();
        !through_explicit(name) && !grants.index_allows(action, name)
    });
    if !left_out {
        return Ok(None);
    }
    let mut kept: Vec<String> = explicit.iter().map(|name| (*name).to_owned()).collect();
    for target in &resolved {
        let name = target.index.name();
        if !through_explicit(name) && grants.index_allows(action, name) {
            kept.push(name.to_owned());
        }
    }
    Ok(Some(if kept.is_empty() {
        NO_INDEX.to_owned()
    } else {
        kept.join(",")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            raw_path: path.to_owned(),
            raw_query: String::new(),
            query: Default::default(),
            headers: Default::default(),
            body: Default::default(),
            grants: None,
        }
    }

    #[test]
    fn every_route_has_an_action_or_checks_its_items() {
        let cases = [
            (Method::GET, "/", Need::Cluster("cluster:monitor/main")),
            (
                Method::POST,
                "/logs/_search",
                Need::Indices {
                    action: SEARCH,
                    segment: Some(0),
                },
            ),
            (
                Method::GET,
                "/_search",
                Need::Indices {
                    action: SEARCH,
                    segment: None,
                },
            ),
            (
                Method::PUT,
                "/logs/_doc/1",
                Need::Document {
                    action: INDEX,
                    creates: true,
                },
            ),
            (
                Method::HEAD,
                "/logs/_doc/1",
                Need::Document {
                    action: GET,
                    creates: false,
                },
            ),
            (
                Method::DELETE,
                "/logs",
                Need::Indices {
                    action: "indices:admin/delete",
                    segment: Some(0),
                },
            ),
            (
                Method::PUT,
                "/logs/_mapping",
                Need::Indices {
                    action: "indices:admin/mapping/put",
                    segment: Some(0),
                },
            ),
            (Method::POST, "/_bulk", Need::Authenticated),
            (
                Method::PUT,
                "/_index_template/t",
                Need::Cluster("indices:admin/index_template/put"),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(need(&request(method, path)), expected, "{path}");
        }
        // Every listed route is classified without a panic.
        for route in super::super::routes::ROUTES {
            let path: Vec<&str> = route
                .path
                .iter()
                .map(|segment| match segment {
                    super::super::routes::Segment::Literal(text) => *text,
                    _ => "x",
                })
                .collect();
            for method in route.methods {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let _ = need(&request(method, &format!("/{}", path.join("/"))));
            }
        }
    }
}
