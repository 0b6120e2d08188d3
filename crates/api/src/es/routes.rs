//! The routes of the Elasticsearch API as one table: the methods and query parameters each path
//! accepts, as Elasticsearch's REST handlers declare them, so that a wrong method answers 405
//! with `Allow` and a misspelt parameter (`?refesh=true`) answers 400 instead of being silently
//! ignored; and which methods read a body, and as what, so that a body sent where none is read
//! answers 400 as in Elasticsearch. Tests that send hostile bodies to every endpoint are
//! generated from [`ROUTES`], so a new route is covered as soon as it is listed, and a route that
//! is not listed gets no body.

/// Parameters every endpoint accepts.
const COMMON: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "source",
    "source_content_type",
];

const WRITE: &[&str] = &[
    "version",
    "version_type",
    "if_seq_no",
    "if_primary_term",
    "op_type",
    "refresh",
    "routing",
    "timeout",
    "pipeline",
    "wait_for_active_shards",
    "require_alias",
    "require_data_stream",
];
const GET: &[&str] = &[
    "_source",
    "_source_includes",
    "_source_excludes",
    "stored_fields",
    "realtime",
    "refresh",
    "routing",
    "preference",
    "version",
    "version_type",
];
const DOC: &[&str] = &[
    "version",
    "version_type",
    "if_seq_no",
    "if_primary_term",
    "op_type",
    "refresh",
    "routing",
    "timeout",
    "pipeline",
    "wait_for_active_shards",
    "require_alias",
    "require_data_stream",
    "_source",
    "_source_includes",
    "_source_excludes",
    "stored_fields",
    "realtime",
    "preference",
];
const UPDATE: &[&str] = &[
    "if_seq_no",
    "if_primary_term",
    "refresh",
    "retry_on_conflict",
    "routing",
    "timeout",
    "wait_for_active_shards",
    "_source",
    "_source_includes",
    "_source_excludes",
    "lang",
    "require_alias",
    "version",
    "version_type",
];
const BULK: &[&str] = &[
    "refresh",
    "routing",
    "timeout",
    "pipeline",
    "wait_for_active_shards",
    "_source",
    "_source_includes",
    "_source_excludes",
    "require_alias",
    "require_data_stream",
    "list_executed_pipelines",
];
const SEARCH: &[&str] = &[
    "from",
    "size",
    "track_total_hits",
    "_source",
    "_source_includes",
    "_source_excludes",
    "q",
    "df",
    "analyzer",
    "default_operator",
    "analyze_wildcard",
    "lenient",
    "timeout",
    "allow_no_indices",
    "ignore_unavailable",
    "expand_wildcards",
    "preference",
    "routing",
    "search_type",
    "request_cache",
    "typed_keys",
    "rest_total_hits_as_int",
    "batched_reduce_size",
    "ccs_minimize_roundtrips",
    "track_scores",
    "version",
    "seq_no_primary_term",
    "sort",
    "explain",
    "stored_fields",
    "docvalue_fields",
    "scroll",
    "allow_partial_search_results",
    "max_concurrent_shard_requests",
    "pre_filter_shard_size",
    "terminate_after",
    "stats",
    "ignore_throttled",
    "include_named_queries_score",
    "min_score",
];
const BY_QUERY: &[&str] = &[
    "q",
    "df",
    "analyzer",
    "default_operator",
    "analyze_wildcard",
    "lenient",
    "conflicts",
    "max_docs",
    "refresh",
    "wait_for_completion",
    "scroll_size",
    "slices",
    "scroll",
    "timeout",
    "wait_for_active_shards",
    "allow_no_indices",
    "ignore_unavailable",
    "expand_wildcards",
];
const REINDEX: &[&str] = &[
    "refresh",
    "wait_for_completion",
    "slices",
    "max_docs",
    "scroll",
    "timeout",
    "wait_for_active_shards",
    "require_alias",
];
const ANALYZE: &[&str] = &["index", "text", "analyzer", "field"];
const MGET: &[&str] = &[
    "_source",
    "_source_includes",
    "_source_excludes",
    "stored_fields",
    "realtime",
    "refresh",
    "routing",
    "preference",
];
const INDICES: &[&str] = &[
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "timeout",
    "master_timeout",
    "wait_for_active_shards",
    "include_defaults",
    "flat_settings",
    "local",
    "features",
    "write_index_only",
    "preserve_existing",
    "reopen",
];
const CAT: &[&str] = &[
    "format",
    "h",
    "help",
    "v",
    "s",
    "bytes",
    "time",
    "health",
    "pri",
    "include_unloaded_segments",
    "expand_wildcards",
    "master_timeout",
    "local",
];
const HEALTH: &[&str] = &[
    "wait_for_status",
    "timeout",
    "master_timeout",
    "level",
    "local",
    "wait_for_active_shards",
    "wait_for_nodes",
    "wait_for_events",
    "wait_for_no_relocating_shards",
    "wait_for_no_initializing_shards",
    "expand_wildcards",
];

const ALIASES: &[&str] = &[
    "timeout",
    "master_timeout",
    "local",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
];
const TEMPLATES: &[&str] = &[
    "create",
    "cause",
    "master_timeout",
    "timeout",
    "order",
    "flat_settings",
    "local",
    "include_defaults",
];
const MSEARCH: &[&str] = &[
    "max_concurrent_searches",
    "max_concurrent_shard_requests",
    "pre_filter_shard_size",
    "typed_keys",
    "rest_total_hits_as_int",
    "ccs_minimize_roundtrips",
    "search_type",
    "allow_no_indices",
    "expand_wildcards",
    "ignore_throttled",
    "ignore_unavailable",
    "include_named_queries_score",
    "routing",
];
const FIELD_CAPS: &[&str] = &[
    "fields",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "include_unmapped",
    "filters",
    "types",
    "include_empty_fields",
];
const RESOLVE: &[&str] = &[
    "expand_wildcards",
    "ignore_unavailable",
    "allow_no_indices",
    "mode",
];

const NO_PARAMS: &[&str] = &[];
/// `GET /_security/api_key`'s filters, and `refresh` of the writes.
const API_KEYS: &[&str] = &[
    "id",
    "name",
    "owner",
    "realm_name",
    "username",
    "active_only",
    "with_limited_by",
    "with_profile_uid",
    "refresh",
];

/// One segment of a route's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// This exact text.
    Literal(&'static str),
    /// Any one segment: an index name or expression (`a,b`, `logs-*`, `_all`), a document id.
    Any,
    /// A segment that does not start with `_`: an index name at the root.
    Name,
}

/// How a body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// One JSON value, through `parse_json_body`.
    Json,
    /// Newline-delimited JSON (`_bulk`): action lines and sources.
    Ndjson,
}

/// One route: a path shape, the methods it serves, the query parameters it accepts beyond the
/// common ones, and the methods that read a body with its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub path: &'static [Segment],
    pub methods: &'static [&'static str],
    pub params: &'static [&'static str],
    pub bodies: &'static [(&'static str, Body)],
}

impl Route {
    pub fn matches(&self, segments: &[&str]) -> bool {
        self.path.len() == segments.len()
            && self
                .path
                .iter()
                .zip(segments)
                .all(|(part, segment)| match part {
                    Segment::Literal(literal) => literal == segment,
                    Segment::Any => true,
                    Segment::Name => !segment.starts_with('_'),
                })
    }

    /// How this route reads a body sent with `method`, or `None` when it reads none.
    pub fn body(&self, method: &str) -> Option<Body> {
        self.bodies
            .iter()
            .find(|(reading, _)| *reading == method)
            .map(|(_, body)| *body)
    }
}

use Segment::{Any, Literal, Name};

const NO_BODY: &[(&str, Body)] = &[];
const JSON_GET_POST: &[(&str, Body)] = &[("GET", Body::Json), ("POST", Body::Json)];
const JSON_PUT_POST: &[(&str, Body)] = &[("PUT", Body::Json), ("POST", Body::Json)];
const JSON_POST: &[(&str, Body)] = &[("POST", Body::Json)];
const JSON_DELETE: &[(&str, Body)] = &[("DELETE", Body::Json)];
const JSON_GET_POST_DELETE: &[(&str, Body)] = &[
    ("GET", Body::Json),
    ("POST", Body::Json),
    ("DELETE", Body::Json),
];
/// `_search/scroll`: the next page of a scroll, or clearing scrolls.
const SCROLL: &[&str] = &["scroll", "scroll_id", "rest_total_hits_as_int"];
/// `POST /{index}/_pit`.
const OPEN_PIT: &[&str] = &[
    "keep_alive",
    "ignore_unavailable",
    "expand_wildcards",
    "allow_no_indices",
    "preference",
    "routing",
    "allow_partial_search_results",
];
const JSON_PUT: &[(&str, Body)] = &[("PUT", Body::Json)];
const JSON_PUT_PATCH: &[(&str, Body)] = &[("PUT", Body::Json), ("PATCH", Body::Json)];
const NDJSON: &[(&str, Body)] = &[("POST", Body::Ndjson), ("PUT", Body::Ndjson)];
const MSEARCH_BODY: &[(&str, Body)] = &[("GET", Body::Ndjson), ("POST", Body::Ndjson)];

/// Every route of the API, tried in order: the first whose path matches is the request's.
pub const ROUTES: &[Route] = &[
    route(
        &[Literal("_security"), Literal("_authenticate")],
        &["GET"],
        NO_PARAMS,
        NO_BODY,
    ),
    route(
        &[Literal("_security"), Literal("api_key")],
        &["GET", "POST", "PUT", "DELETE"],
        API_KEYS,
        &[
            ("POST", Body::Json),
            ("PUT", Body::Json),
            ("DELETE", Body::Json),
        ],
    ),
    route(
        &[Literal("_security"), Literal("api_key"), Literal("grant")],
        &["POST"],
        &["refresh"],
        JSON_POST,
    ),
    route(
        &[
            Literal("_plugins"),
            Literal("_security"),
            Literal("authinfo"),
        ],
        &["GET"],
        NO_PARAMS,
        NO_BODY,
    ),
    route(
        &[
            Literal("_plugins"),
            Literal("_security"),
            Literal("api"),
            Any,
        ],
        &["GET", "PUT", "PATCH"],
        NO_PARAMS,
        JSON_PUT_PATCH,
    ),
    route(
        &[
            Literal("_plugins"),
            Literal("_security"),
            Literal("api"),
            Any,
            Any,
        ],
        &["GET", "PUT", "DELETE", "PATCH"],
        NO_PARAMS,
        JSON_PUT_PATCH,
    ),
    route(
        &[
            Literal("_opendistro"),
            Literal("_security"),
            Literal("authinfo"),
        ],
        &["GET"],
        NO_PARAMS,
        NO_BODY,
    ),
    route(
        &[
            Literal("_opendistro"),
            Literal("_security"),
            Literal("api"),
            Any,
        ],
        &["GET", "PUT", "PATCH"],
        NO_PARAMS,
        JSON_PUT_PATCH,
    ),
    route(
        &[
            Literal("_opendistro"),
            Literal("_security"),
            Literal("api"),
            Any,
            Any,
        ],
        &["GET", "PUT", "DELETE", "PATCH"],
        NO_PARAMS,
        JSON_PUT_PATCH,
    ),
    route(&[], &["HEAD", "GET"], &[], NO_BODY),
    route(
        &[Literal("_cluster"), Literal("health")],
        &["GET"],
        HEALTH,
        NO_BODY,
    ),
    route(
        &[Literal("_cluster"), Literal("health"), Any],
        &["GET"],
        HEALTH,
        NO_BODY,
    ),
    route(
        &[Literal("_cat"), Literal("indices")],
        &["GET"],
        CAT,
        NO_BODY,
    ),
    route(
        &[Literal("_cat"), Literal("indices"), Any],
        &["GET"],
        CAT,
        NO_BODY,
    ),
    route(
        &[Literal("_aliases")],
        &["GET", "HEAD", "POST"],
        ALIASES,
        JSON_POST,
    ),
    route(&[Literal("_alias")], &["GET", "HEAD"], ALIASES, NO_BODY),
    route(
        &[Literal("_alias"), Any],
        &["GET", "HEAD"],
        ALIASES,
        NO_BODY,
    ),
    route(
        &[Any, Literal("_alias")],
        &["GET", "HEAD"],
        ALIASES,
        NO_BODY,
    ),
    route(
        &[Any, Literal("_aliases")],
        &["GET", "HEAD"],
        ALIASES,
        NO_BODY,
    ),
    route(
        &[Any, Literal("_alias"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        ALIASES,
        JSON_PUT_POST,
    ),
    route(
        &[Any, Literal("_aliases"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        ALIASES,
        JSON_PUT_POST,
    ),
    route(
        &[Literal("_index_template")],
        &["GET", "HEAD"],
        TEMPLATES,
        NO_BODY,
    ),
    route(
        &[Literal("_index_template"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        TEMPLATES,
        JSON_PUT_POST,
    ),
    route(
        &[Literal("_template")],
        &["GET", "HEAD"],
        TEMPLATES,
        NO_BODY,
    ),
    route(
        &[Literal("_template"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        TEMPLATES,
        JSON_PUT_POST,
    ),
    route(
        &[Literal("_component_template")],
        &["GET", "HEAD"],
        TEMPLATES,
        NO_BODY,
    ),
    route(
        &[Literal("_component_template"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        TEMPLATES,
        JSON_PUT_POST,
    ),
    route(
        &[Literal("_msearch")],
        &["GET", "POST"],
        MSEARCH,
        MSEARCH_BODY,
    ),
    route(
        &[Any, Literal("_msearch")],
        &["GET", "POST"],
        MSEARCH,
        MSEARCH_BODY,
    ),
    route(
        &[Literal("_field_caps")],
        &["GET", "POST"],
        FIELD_CAPS,
        JSON_GET_POST,
    ),
    route(
        &[Any, Literal("_field_caps")],
        &["GET", "POST"],
        FIELD_CAPS,
        JSON_GET_POST,
    ),
    route(
        &[Literal("_mapping"), Literal("field"), Any],
        &["GET"],
        INDICES,
        NO_BODY,
    ),
    route(
        &[Any, Literal("_mapping"), Literal("field"), Any],
        &["GET"],
        INDICES,
        NO_BODY,
    ),
    route(
        &[Literal("_resolve"), Literal("index"), Any],
        &["GET", "POST"],
        RESOLVE,
        JSON_GET_POST,
    ),
    route(
        &[Literal("_search"), Literal("scroll")],
        &["GET", "POST", "DELETE"],
        SCROLL,
        JSON_GET_POST_DELETE,
    ),
    route(
        &[Literal("_search"), Literal("scroll"), Any],
        &["GET", "POST", "DELETE"],
        SCROLL,
        JSON_GET_POST_DELETE,
    ),
    route(&[Literal("_pit")], &["DELETE"], &[], JSON_DELETE),
    route(&[Any, Literal("_pit")], &["POST"], OPEN_PIT, JSON_POST),
    route(
        &[Literal("_search")],
        &["GET", "POST"],
        SEARCH,
        JSON_GET_POST,
    ),
    route(
        &[Any, Literal("_search")],
        &["GET", "POST"],
        SEARCH,
        JSON_GET_POST,
    ),
    route(
        &[Literal("_count")],
        &["GET", "POST"],
        SEARCH,
        JSON_GET_POST,
    ),
    route(
        &[Any, Literal("_count")],
        &["GET", "POST"],
        SEARCH,
        JSON_GET_POST,
    ),
    route(
        &[Literal("_analyze")],
        &["GET", "POST"],
        ANALYZE,
        JSON_GET_POST,
    ),
    route(
        &[Any, Literal("_analyze")],
        &["GET", "POST"],
        ANALYZE,
        JSON_GET_POST,
    ),
    route(&[Literal("_bulk")], &["POST", "PUT"], BULK, NDJSON),
    route(&[Any, Literal("_bulk")], &["POST", "PUT"], BULK, NDJSON),
    route(&[Literal("_mget")], &["GET", "POST"], MGET, JSON_GET_POST),
    route(
        &[Any, Literal("_mget")],
        &["GET", "POST"],
        MGET,
        JSON_GET_POST,
    ),
    route(&[Literal("_refresh")], &["GET", "POST"], INDICES, NO_BODY),
    route(
        &[Any, Literal("_refresh")],
        &["GET", "POST"],
        INDICES,
        NO_BODY,
    ),
    route(&[Literal("_mapping")], &["GET"], INDICES, NO_BODY),
    route(
        &[Any, Literal("_mapping")],
        &["GET", "PUT", "POST"],
        INDICES,
        JSON_PUT_POST,
    ),
    route(
        &[Any, Literal("_settings")],
        &["GET", "PUT"],
        INDICES,
        JSON_PUT,
    ),
    route(
        &[Any, Literal("_doc"), Any],
        &["GET", "HEAD", "PUT", "POST", "DELETE"],
        DOC,
        JSON_PUT_POST,
    ),
    route(&[Any, Literal("_doc")], &["POST"], WRITE, JSON_POST),
    route(
        &[Any, Literal("_create"), Any],
        &["PUT", "POST"],
        WRITE,
        JSON_PUT_POST,
    ),
    route(
        &[Any, Literal("_source"), Any],
        &["GET", "HEAD"],
        GET,
        NO_BODY,
    ),
    route(
        &[Any, Literal("_update"), Any],
        &["POST"],
        UPDATE,
        JSON_POST,
    ),
    route(
        &[Any, Literal("_delete_by_query")],
        &["POST"],
        BY_QUERY,
        JSON_POST,
    ),
    route(
        &[Any, Literal("_update_by_query")],
        &["POST"],
        BY_QUERY,
        JSON_POST,
    ),
    route(&[Literal("_reindex")], &["POST"], REINDEX, JSON_POST),
    route(
        &[Literal("_tasks"), Any],
        &["GET"],
        &["wait_for_completion", "timeout"],
        NO_BODY,
    ),
    route(
        &[Literal("_tasks"), Any, Literal("_cancel")],
        &["POST"],
        &["wait_for_completion"],
        NO_BODY,
    ),
    route(
        &[Name],
        &["GET", "HEAD", "PUT", "DELETE"],
        INDICES,
        JSON_PUT,
    ),
];

const fn route(
    path: &'static [Segment],
    methods: &'static [&'static str],
    params: &'static [&'static str],
    bodies: &'static [(&'static str, Body)],
) -> Route {
    Route {
        path,
        methods,
        params,
        bodies,
    }
}

/// The route of a path, or `None` for a path no handler serves.
pub(super) fn route_of(segments: &[&str]) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.matches(segments))
}

/// The parameters of a request that its path does not accept.
pub(super) fn unrecognized<'a>(
    params: impl Iterator<Item = &'a String>,
    allowed: &[&str],
) -> Vec<&'a str> {
    let mut unknown: Vec<&str> = params
        .map(String::as_str)
        .filter(|p| !COMMON.contains(p) && !allowed.contains(p))
        .collect();
    unknown.sort_unstable();
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of the route's shape, with `x` for each placeholder.
    fn example(route: &Route) -> Vec<&'static str> {
        route
            .path
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => *text,
                Segment::Any | Segment::Name => "x",
            })
            .collect()
    }

    #[test]
    fn every_route_is_reachable_and_reads_bodies_only_with_its_methods() {
        for route in ROUTES {
            let found = route_of(&example(route)).expect("a route");
            assert_eq!(found, route, "an earlier route hides {:?}", route.path);
            for (method, _) in route.bodies {
                assert!(route.methods.contains(method), "{:?} {method}", route.path);
            }
        }
        assert_eq!(route_of(&["_unknown"]), None);
        assert_eq!(
            route_of(&["logs", "_bulk"]).and_then(|route| route.body("POST")),
            Some(Body::Ndjson)
        );
        assert_eq!(
            route_of(&["logs", "_doc", "1"]).and_then(|route| route.body("GET")),
            None
        );
    }
}
