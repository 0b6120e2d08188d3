//! The methods and query parameters each path accepts, as Elasticsearch's REST handlers declare
//! them, so that a wrong method answers 405 with `Allow` and a misspelt parameter
//! (`?refesh=true`) answers 400 instead of being silently ignored.

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

/// `(allowed methods, allowed parameters)` of a path, or `None` for a path no handler serves.
pub(super) fn rules(
    segments: &[&str],
) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match segments {
        [] => (&["HEAD", "GET"], &[]),
        ["_cluster", "health"] | ["_cluster", "health", _] => (&["GET"], HEALTH),
        ["_cat", "indices"] | ["_cat", "indices", _] => (&["GET"], CAT),
        ["_search"] | [_, "_search"] | ["_count"] | [_, "_count"] => (&["GET", "POST"], SEARCH),
        ["_bulk"] | [_, "_bulk"] => (&["POST", "PUT"], BULK),
        ["_analyze"] | [_, "_analyze"] => {
            (&["GET", "POST"], &["index", "text", "analyzer", "field"])
        }
        ["_mget"] | [_, "_mget"] => (&["GET", "POST"], MGET),
        ["_refresh"] | [_, "_refresh"] => (&["GET", "POST"], INDICES),
        ["_mapping"] => (&["GET"], INDICES),
        [_, "_mapping"] => (&["GET", "PUT", "POST"], INDICES),
        [_, "_settings"] => (&["GET", "PUT"], INDICES),
        [_, "_doc", _] => (&["GET", "HEAD", "PUT", "POST", "DELETE"], DOC),
        [_, "_doc"] => (&["POST"], WRITE),
        [_, "_create", _] => (&["PUT", "POST"], WRITE),
        [_, "_source", _] => (&["GET", "HEAD"], GET),
        [_, "_update", _] => (&["POST"], UPDATE),
        [name] if !name.starts_with('_') => (&["GET", "HEAD", "PUT", "DELETE"], INDICES),
        _ => return None,
    })
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
