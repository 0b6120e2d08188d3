//! Index administration and cluster information: create, delete, exists, get, mappings,
//! settings, refresh, `_cat/indices`, `_cluster/health` and `GET /`.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::{CreateIndex, Index, IndexSettings, Mappings};

use super::{
    COMPATIBLE_VERSION, EsApi, EsError, EsResult, blocking, ok, parse_json_body, wildcard_match,
};
use crate::http::{Request, Response};

pub(super) fn root(_api: &EsApi, request: &Request) -> EsResult {
    ok(
        request,
        json!({
            "name": "sluice",
            "cluster_name": "sluice",
            "cluster_uuid": "sluice-single-node-cluster",
            "version": {
                "number": COMPATIBLE_VERSION,
                "build_flavor": "default",
                "build_type": "tar",
                "build_hash": env!("CARGO_PKG_VERSION"),
                "build_date": "2026-01-01T00:00:00.000Z",
                "build_snapshot": false,
                "lucene_version": "9.12.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "You Know, for Search"
        }),
    )
}

fn health_of(index: &Index) -> &'static str {
    if index.settings().number_of_replicas > 0 {
        "yellow"
    } else {
        "green"
    }
}

fn health_rank(status: &str) -> u8 {
    match status {
        "green" => 0,
        "yellow" => 1,
        _ => 2,
    }
}

/// Checks a health status parameter as Elasticsearch's `ClusterHealthStatus.fromString` does.
fn health_status_param(value: &str) -> Result<&'static str, EsError> {
    match value.to_ascii_lowercase().as_str() {
        "green" => Ok("green"),
        "yellow" => Ok("yellow"),
        "red" => Ok("red"),
        _ => Err(EsError::illegal_argument(format!(
            "unknown cluster health status [{value}]"
        ))),
    }
}

/// The detail `level` of `_cluster/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HealthLevel {
    Cluster,
    Indices,
    Shards,
}

/// One index's health: on a single node every primary is active and every replica unassigned.
fn index_health_json(index: &Index, level: HealthLevel) -> Value {
    let settings = index.settings();
    let shards = settings.number_of_shards;
    let replicas = settings.number_of_replicas;
    let status = health_of(index);
    let mut body = json!({
        "status": status,
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "active_primary_shards": shards,
        "active_shards": shards,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": shards * replicas,
        "unassigned_primary_shards": 0,
    });
    if level == HealthLevel::Shards {
        let per_shard: Map<String, Value> = (0..shards)
            .map(|shard| {
                (
                    shard.to_string(),
                    json!({
                        "status": status,
                        "primary_active": true,
                        "active_shards": 1,
                        "relocating_shards": 0,
                        "initializing_shards": 0,
                        "unassigned_shards": replicas,
                        "unassigned_primary_shards": 0,
                    }),
                )
            })
            .collect();
        body["shards"] = Value::Object(per_shard);
    }
    body
}

/// Whether `wait_for_nodes` (`N`, `>=N`, `<=N`, `>N`, `<N`, `ge(N)`, …) holds for one node.
fn nodes_condition_holds(condition: &str) -> Result<bool, EsError> {
    const NODES: i64 = 1;
    let condition = condition.trim();
    let parse = |text: &str| {
        text.trim().parse::<i64>().map_err(|_| {
            EsError::illegal_argument(format!(
                "failed to parse [wait_for_nodes] with value [{condition}]"
            ))
        })
    };
    let functional = |name: &str| {
        condition
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
    };
    Ok(if let Some(n) = condition.strip_prefix(">=") {
        NODES >= parse(n)?
    } else if let Some(n) = condition.strip_prefix("<=") {
        NODES <= parse(n)?
    } else if let Some(n) = condition.strip_prefix('>') {
        NODES > parse(n)?
    } else if let Some(n) = condition.strip_prefix('<') {
        NODES < parse(n)?
    } else if let Some(n) = functional("ge") {
        NODES >= parse(n)?
    } else if let Some(n) = functional("le") {
        NODES <= parse(n)?
    } else if let Some(n) = functional("gt") {
        NODES > parse(n)?
    } else if let Some(n) = functional("lt") {
        NODES < parse(n)?
    } else {
        NODES == parse(condition)?
    })
}

pub(super) fn cluster_health(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let level = match request.param("level") {
        None => HealthLevel::Cluster,
        Some(name) => match name.to_ascii_lowercase().as_str() {
            "cluster" => HealthLevel::Cluster,
            "indices" => HealthLevel::Indices,
            "shards" => HealthLevel::Shards,
            _ => {
                return Err(EsError::illegal_argument(format!(
                    "No enum constant org.elasticsearch.action.admin.cluster.health.ClusterHealthRequest.Level.{}",
                    name.to_ascii_uppercase()
                )));
            }
        },
    };
    let wanted = request
        .param("wait_for_status")
        .map(health_status_param)
        .transpose()?;
    // A named index that does not exist makes the health red (Elasticsearch waits for it to
    // appear, then times out); nothing changes a single node's health while we wait.
    let (indices, missing) = match api.resolve(target) {
        Ok(indices) => (indices, false),
        Err(error) if error.status == StatusCode::NOT_FOUND => (Vec::new(), true),
        Err(error) => return Err(error),
    };
    let primaries: u64 = indices.iter().map(|i| i.settings().number_of_shards).sum();
    let unassigned: u64 = indices
        .iter()
        .map(|i| i.settings().number_of_shards * i.settings().number_of_replicas)
        .sum();
    let status = if missing {
        "red"
    } else if unassigned > 0 {
        "yellow"
    } else {
        "green"
    };
    let active_shards_met = match request.param("wait_for_active_shards") {
        None | Some("0") => true,
        Some("all") => unassigned == 0,
        Some(text) => {
            let wanted: u64 = text.parse().map_err(|_| {
                EsError::illegal_argument(format!(
                    "failed to parse [wait_for_active_shards] with value [{text}]"
                ))
            })?;
            primaries >= wanted
        }
    };
    let nodes_met = match request.param("wait_for_nodes") {
        None | Some("") => true,
        Some(condition) => nodes_condition_holds(condition)?,
    };
    let timed_out = missing
        || wanted.is_some_and(|w| health_rank(status) > health_rank(w))
        || !active_shards_met
        || !nodes_met;
    let total = primaries + unassigned;
    let percent = if total == 0 {
        100.0
    } else {
        primaries as f64 * 100.0 / total as f64
    };
    let mut body = json!({
        "cluster_name": "sluice", "status": status, "timed_out": timed_out,
        "number_of_nodes": 1, "number_of_data_nodes": 1,
        "active_primary_shards": primaries, "active_shards": primaries,
        "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned,
        "unassigned_primary_shards": 0, "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": percent
    });
    if level != HealthLevel::Cluster {
        let per_index: Map<String, Value> = indices
            .iter()
            .map(|index| (index.name().to_string(), index_health_json(index, level)))
            .collect();
        body["indices"] = Value::Object(per_index);
    }
    let status_code = if timed_out {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::OK
    };
    Ok(super::json_response(
        status_code,
        &body,
        super::is_pretty(request),
    ))
}

/// Sizes as `_cat` shows them: `225b`, `4.5kb`, `1.2mb`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kb", "mb", "gb", "tb", "pb"];
    if bytes < 1024 {
        return format!("{bytes}b");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!(
        "{}{}",
        text.strip_suffix(".0").unwrap_or(&text),
        UNITS.get(unit).copied().unwrap_or("pb")
    )
}

/// A column of `_cat/indices`, as Elasticsearch's `RestIndicesAction` declares it.
struct CatColumn {
    name: &'static str,
    aliases: &'static [&'static str],
    /// Shown when `h` is not given.
    default: bool,
    /// Numbers and sizes are right-aligned.
    right: bool,
}

const CAT_INDICES_COLUMNS: &[CatColumn] = &[
    CatColumn {
        name: "health",
        aliases: &["h"],
        default: true,
        right: false,
    },
    CatColumn {
        name: "status",
        aliases: &["s"],
        default: true,
        right: false,
    },
    CatColumn {
        name: "index",
        aliases: &["i", "idx"],
        default: true,
        right: false,
    },
    CatColumn {
        name: "uuid",
        aliases: &["id", "uuid"],
        default: true,
        right: false,
    },
    CatColumn {
        name: "pri",
        aliases: &["p", "shards.primary", "shardsPrimary"],
        default: true,
        right: true,
    },
    CatColumn {
        name: "rep",
        aliases: &["r", "shards.replica", "shardsReplica"],
        default: true,
        right: true,
    },
    CatColumn {
        name: "docs.count",
        aliases: &["dc", "docsCount"],
        default: true,
        right: true,
    },
    CatColumn {
        name: "docs.deleted",
        aliases: &["dd", "docsDeleted"],
        default: true,
        right: true,
    },
    CatColumn {
        name: "creation.date",
        aliases: &["cd"],
        default: false,
        right: false,
    },
    CatColumn {
        name: "creation.date.string",
        aliases: &["cds"],
        default: false,
        right: false,
    },
    CatColumn {
        name: "store.size",
        aliases: &["ss", "storeSize"],
        default: true,
        right: true,
    },
    CatColumn {
        name: "pri.store.size",
        aliases: &[],
        default: true,
        right: true,
    },
    CatColumn {
        name: "dataset.size",
        aliases: &[],
        default: true,
        right: true,
    },
];

/// A cell of a `_cat` table: sizes render by the `bytes` parameter and sort as numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum CatCell {
    Number(u64),
    Bytes(u64),
    Text(String),
}

impl CatCell {
    fn render(&self, bytes_unit: Option<&str>) -> String {
        match self {
            CatCell::Number(n) => n.to_string(),
            CatCell::Text(text) => text.clone(),
            CatCell::Bytes(bytes) => {
                let divisor: u64 = match bytes_unit {
                    Some("b") => 1,
                    Some("k" | "kb") => 1 << 10,
                    Some("m" | "mb") => 1 << 20,
                    Some("g" | "gb") => 1 << 30,
                    Some("t" | "tb") => 1 << 40,
                    Some("p" | "pb") => 1 << 50,
                    _ => return human_bytes(*bytes),
                };
                (bytes / divisor).to_string()
            }
        }
    }
}

fn cat_column(name: &str) -> Option<&'static CatColumn> {
    CAT_INDICES_COLUMNS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// The columns `h` selects, each with the name it is shown under (the alias when asked by
/// alias), in the order asked; names that match no column are skipped, as in Elasticsearch.
fn cat_display_columns(h: Option<&str>) -> Vec<(&'static CatColumn, String)> {
    let Some(list) = h else {
        return CAT_INDICES_COLUMNS
            .iter()
            .filter(|c| c.default)
            .map(|c| (c, c.name.to_string()))
            .collect();
    };
    let mut shown: Vec<(&'static CatColumn, String)> = Vec::new();
    for asked in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if asked.contains('*') {
            for column in CAT_INDICES_COLUMNS {
                let matches = wildcard_match(asked, column.name)
                    || column
                        .aliases
                        .iter()
                        .any(|alias| wildcard_match(asked, alias));
                if matches && !shown.iter().any(|(c, _)| c.name == column.name) {
                    shown.push((column, column.name.to_string()));
                }
            }
        } else if let Some(column) = cat_column(asked)
            && !shown.iter().any(|(_, display)| display == asked)
        {
            shown.push((column, asked.to_string()));
        }
    }
    shown
}

pub(super) fn cat_indices(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let health_filter = request
        .param("health")
        .map(health_status_param)
        .transpose()?;
    let mut sort_keys: Vec<(&'static str, bool)> = Vec::new();
    for key in request
        .param("s")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
    {
        if key.is_empty() {
            continue;
        }
        let (name, descending) = match key.strip_suffix(":desc") {
            Some(name) => (name, true),
            None => (key.strip_suffix(":asc").unwrap_or(key), false),
        };
        let Some(column) = cat_column(name) else {
            return Err(EsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unsupported_operation_exception",
                format!("Unable to sort by unknown sort key `{name}`"),
            ));
        };
        sort_keys.push((column.name, descending));
    }
    let indices = api.resolve(target)?;
    let mut rows: Vec<Vec<(&'static str, CatCell)>> = indices
        .iter()
        .filter(|index| health_filter.is_none_or(|wanted| health_of(index) == wanted))
        .map(|index| {
            let size = index.store_size_bytes();
            let settings = index.settings();
            vec![
                ("health", CatCell::Text(health_of(index).to_string())),
                ("status", CatCell::Text("open".to_string())),
                ("index", CatCell::Text(index.name().to_string())),
                ("uuid", CatCell::Text(index.uuid().to_string())),
                ("pri", CatCell::Number(settings.number_of_shards)),
                ("rep", CatCell::Number(settings.number_of_replicas)),
                ("docs.count", CatCell::Number(index.docs_count())),
                ("docs.deleted", CatCell::Number(0)),
                ("creation.date", CatCell::Number(index.creation_date_ms())),
                (
                    "creation.date.string",
                    CatCell::Text(sluice_search::date::format_millis(
                        i64::try_from(index.creation_date_ms()).unwrap_or(i64::MAX),
                    )),
                ),
                ("store.size", CatCell::Bytes(size)),
                ("pri.store.size", CatCell::Bytes(size)),
                ("dataset.size", CatCell::Bytes(size)),
            ]
        })
        .collect();
    let cell = |row: &[(&'static str, CatCell)], name: &str| -> Option<CatCell> {
        row.iter().find(|(n, _)| *n == name).map(|(_, c)| c.clone())
    };
    rows.sort_by(|a, b| {
        sort_keys
            .iter()
            .map(|(name, descending)| {
                let order = cell(a, name).cmp(&cell(b, name));
                if *descending { order.reverse() } else { order }
            })
            .find(|order| order.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut columns = cat_display_columns(request.param("h"));
    // `pri=true` adds the primaries' sibling of a column asked for by name (`pri.store.size`).
    if request.param("h").is_some() && super::bool_param(request, "pri")?.unwrap_or(false) {
        let mut with_siblings = Vec::new();
        for (column, display) in columns {
            let sibling = (column.name == "store.size")
                .then(|| cat_column("pri.store.size"))
                .flatten();
            with_siblings.push((column, display.clone()));
            if let Some(sibling) = sibling {
                with_siblings.push((sibling, format!("pri.{display}")));
            }
        }
        columns = with_siblings;
    }
    let bytes_unit = request.param("bytes");
    let rendered: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(column, _)| {
                    cell(row, column.name)
                        .map(|c| c.render(bytes_unit))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    if request.param("format") == Some("json") {
        let body: Vec<Value> = rendered
            .into_iter()
            .map(|row| {
                Value::Object(
                    columns
                        .iter()
                        .zip(row)
                        .map(|((_, display), value)| (display.clone(), Value::String(value)))
                        .collect(),
                )
            })
            .collect();
        return ok(request, Value::Array(body));
    }
    let verbose = super::bool_param(request, "v")?.unwrap_or(false);
    let mut table: Vec<Vec<String>> = Vec::new();
    if verbose {
        table.push(columns.iter().map(|(_, display)| display.clone()).collect());
    }
    table.extend(rendered);
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(&columns)
            .enumerate()
            .map(|(n, ((cell, width), (column, _)))| {
                if column.right {
                    format!("{cell:>width$}")
                } else if n == last {
                    // The last column is not padded on the right, as in Elasticsearch.
                    cell.clone()
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        text.push_str(&cells.join(" "));
        text.push('\n');
    }
    Ok(Response::new(
        StatusCode::OK,
        "text/plain; charset=UTF-8",
        text,
    ))
}

pub(super) async fn create_index(api: &EsApi, request: &Request, name: &str) -> EsResult {
    let body = if request.body.is_empty() {
        json!({})
    } else {
        parse_json_body(&request.body, "x_content_parse_exception")?
    };
    let Value::Object(body) = body else {
        return Err(EsError::parse("request body must be an object"));
    };
    let mut create = CreateIndex::default();
    for (key, value) in &body {
        match key.as_str() {
            // Read now for a clear error, and again under the templates by the catalog.
            "settings" => {
                IndexSettings::from_json(value)?;
                create.settings = Some(value.clone());
            }
            "mappings" => {
                if is_typed_mapping(value) {
                    return Err(EsError::illegal_argument(
                        "The mapping definition cannot be nested under a type [_doc] unless include_type_name is set to true.",
                    ));
                }
                Mappings::from_json(value).map_err(EsError::mapping_definition)?;
                create.mappings = Some(value.clone());
            }
            "aliases" => create.aliases = super::templates::parse_aliases(value)?,
            other => {
                return Err(EsError::parse(format!(
                    "unknown key [{other}] for create index"
                )));
            }
        }
    }
    let indices = api.node.indices().clone();
    let name = name.to_string();
    let creating = name.clone();
    blocking(move || {
        indices.create(&creating, create)?;
        Ok(())
    })
    .await?;
    ok(
        request,
        json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    )
}

pub(super) async fn delete_index(api: &EsApi, target: &str) -> EsResult {
    if target.contains('*') || target == "_all" {
        return Err(EsError::illegal_argument(
            "Wildcard expressions or all indices are not allowed",
        ));
    }
    let names: Vec<String> = target.split(',').map(str::to_string).collect();
    let catalog = api.node.indices().catalog();
    for name in &names {
        if !api.node.indices().exists(name) && catalog.alias_exists(name) {
            return Err(EsError::illegal_argument(format!(
                "The provided expression [{name}] matches an alias, specify the corresponding concrete indices instead."
            )));
        }
        api.node.indices().get(name)?;
    }
    let indices = api.node.indices().clone();
    blocking(move || {
        for name in names {
            indices.delete(&name)?;
        }
        Ok(())
    })
    .await?;
    Ok(super::json_response(
        StatusCode::OK,
        &json!({"acknowledged": true}),
        false,
    ))
}

pub(super) fn index_exists(api: &EsApi, target: &str) -> EsResult {
    let found = api
        .resolve(Some(target))
        .map(|i| !i.is_empty())
        .unwrap_or(false);
    let status = if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok(Response::new(status, "application/json", ""))
}

fn index_settings_json(index: &Index) -> Value {
    index
        .settings()
        .to_json(index.uuid(), index.name(), index.creation_date_ms())
}

pub(super) fn get_index(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let mut body = Map::new();
    let catalog = api.node.indices().catalog();
    for index in api.resolve(Some(target))? {
        let aliases = catalog
            .aliases_of(index.name())
            .map(sluice_search::templates::aliases_json)
            .unwrap_or_else(|| json!({}));
        let restrictions = super::targets::restrictions_of(
            &api.node,
            request.grants.as_deref(),
            "indices:admin/get",
            index.name(),
        )?;
        let mappings = restrictions.mappings(&index).to_json();
        body.insert(
            index.name().to_string(),
            json!({"aliases": aliases, "mappings": mappings, "settings": index_settings_json(&index)}),
        );
    }
    Ok(super::json_response(
        StatusCode::OK,
        &Value::Object(body),
        false,
    ))
}

/// Whether a mapping is wrapped in the `_doc` type name, as Elasticsearch 6 clients send it.
fn is_typed_mapping(mapping: &Value) -> bool {
    mapping
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("_doc"))
}

pub(super) fn get_mapping(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let mut body = Map::new();
    for index in api.resolve_with(target, super::request_options(request)?)? {
        let restrictions = super::targets::restrictions_of(
            &api.node,
            request.grants.as_deref(),
            "indices:admin/mappings/get",
            index.name(),
        )?;
        body.insert(
            index.name().to_string(),
            json!({"mappings": restrictions.mappings(&index).to_json()}),
        );
    }
    Ok(super::json_response(
        StatusCode::OK,
        &Value::Object(body),
        false,
    ))
}

pub(super) async fn put_mapping(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let body = parse_json_body(&request.body, "x_content_parse_exception")?;
    if is_typed_mapping(&body) {
        return Err(EsError::illegal_argument(
            "Types cannot be provided in put mapping requests",
        ));
    }
    let update = Mappings::from_json(&body).map_err(EsError::mapping_definition)?;
    let indices: Vec<Arc<Index>> =
        api.resolve_with(Some(target), super::request_options(request)?)?;
    blocking(move || {
        for index in indices {
            index.put_mapping(&update)?;
        }
        Ok(())
    })
    .await?;
    ok(request, json!({"acknowledged": true}))
}

pub(super) fn get_settings(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let mut body = Map::new();
    for index in api.resolve_with(Some(target), super::request_options(request)?)? {
        body.insert(
            index.name().to_string(),
            json!({"settings": index_settings_json(&index)}),
        );
    }
    Ok(super::json_response(
        StatusCode::OK,
        &Value::Object(body),
        false,
    ))
}

pub(super) async fn put_settings(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let body = parse_json_body(&request.body, "x_content_parse_exception")?;
    let body = body.get("settings").cloned().unwrap_or(body);
    let indices = api.resolve(Some(target))?;
    blocking(move || {
        for index in indices {
            index.put_settings(&body)?;
        }
        Ok(())
    })
    .await?;
    ok(request, json!({"acknowledged": true}))
}

pub(super) async fn refresh(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let indices = api.resolve_with(target, super::request_options(request)?)?;
    let total: u64 = indices
        .iter()
        .map(|i| 1 + i.settings().number_of_replicas)
        .sum();
    let successful = indices.len();
    blocking(move || {
        for index in indices {
            index.refresh()?;
        }
        Ok(())
    })
    .await?;
    ok(
        request,
        json!({"_shards": {"total": total, "successful": successful, "failed": 0}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_sizes() {
        assert_eq!(human_bytes(225), "225b");
        assert_eq!(human_bytes(4608), "4.5kb");
        assert_eq!(human_bytes(1024 * 1024), "1mb");
        assert_eq!(CatCell::Bytes(3 << 20).render(Some("kb")), "3072");
        assert_eq!(CatCell::Bytes(3 << 20).render(None), "3mb");
    }

    #[test]
    fn cat_columns_by_name_alias_and_wildcard() {
        let shown = |h: Option<&str>| -> Vec<(&str, String)> {
            cat_display_columns(h)
                .into_iter()
                .map(|(column, display)| (column.name, display))
                .collect()
        };
        assert_eq!(
            shown(Some("i,dc,ss,bogus")),
            vec![
                ("index", "i".to_string()),
                ("docs.count", "dc".to_string()),
                ("store.size", "ss".to_string())
            ]
        );
        assert_eq!(
            shown(Some("docs.*")),
            vec![
                ("docs.count", "docs.count".to_string()),
                ("docs.deleted", "docs.deleted".to_string())
            ]
        );
        let defaults: Vec<&str> = shown(None).into_iter().map(|(name, _)| name).collect();
        assert!(defaults.contains(&"health") && !defaults.contains(&"creation.date"));
    }

    #[test]
    fn node_conditions_for_one_node() {
        for (condition, holds) in [
            ("1", true),
            ("2", false),
            (">=1", true),
            (">1", false),
            ("<2", true),
            ("le(0)", false),
            ("ge(1)", true),
        ] {
            assert_eq!(
                nodes_condition_holds(condition).unwrap(),
                holds,
                "{condition}"
            );
        }
        assert!(nodes_condition_holds("many").is_err());
    }
}
