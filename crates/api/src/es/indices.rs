//! Index administration and cluster information: create, delete, exists, get, mappings,
//! settings, refresh, `_cat/indices`, `_cluster/health` and `GET /`.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::{CreateIndex, Index, IndexSettings, IndicesOptions, Mappings};

use super::{COMPATIBLE_VERSION, EsApi, EsError, EsResult, blocking, ok, parse_json_body};
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

pub(super) fn cluster_health(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let indices = api.resolve(target)?;
    let primaries: u64 = indices.iter().map(|i| i.settings().number_of_shards).sum();
    let unassigned: u64 = indices
        .iter()
        .map(|i| i.settings().number_of_shards * i.settings().number_of_replicas)
        .sum();
    let status = if unassigned > 0 { "yellow" } else { "green" };
    let rank = |s: &str| match s {
        "green" => 0,
        "yellow" => 1,
        _ => 2,
    };
    let wanted = request.param("wait_for_status");
    if let Some(wanted) = wanted
        && !matches!(wanted, "green" | "yellow" | "red")
    {
        return Err(EsError::illegal_argument(format!(
            "unknown cluster health status [{wanted}]"
        )));
    }
    // Nothing changes a single node's health while we wait, so an unmet wait times out at once.
    let timed_out = wanted.is_some_and(|w| rank(status) > rank(w));
    let total = primaries + unassigned;
    let percent = if total == 0 {
        100.0
    } else {
        primaries as f64 * 100.0 / total as f64
    };
    let body = json!({
        "cluster_name": "sluice", "status": status, "timed_out": timed_out,
        "number_of_nodes": 1, "number_of_data_nodes": 1,
        "active_primary_shards": primaries, "active_shards": primaries,
        "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned,
        "unassigned_primary_shards": 0, "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": percent
    });
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
        UNITS[unit]
    )
}

pub(super) fn cat_indices(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let indices = api.resolve(target)?;
    let raw_bytes = request.param("bytes") == Some("b");
    let columns = [
        "health",
        "status",
        "index",
        "uuid",
        "pri",
        "rep",
        "docs.count",
        "docs.deleted",
        "store.size",
        "pri.store.size",
        "dataset.size",
    ];
    let selected: Vec<&str> = match request.param("h") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|c| columns.contains(c))
            .collect(),
        None => columns.to_vec(),
    };
    let rows: Vec<Vec<(&str, String)>> = indices
        .iter()
        .map(|index| {
            let size = index.store_size_bytes();
            let size_text = if raw_bytes {
                size.to_string()
            } else {
                human_bytes(size)
            };
            let settings = index.settings();
            vec![
                ("health", health_of(index).to_string()),
                ("status", "open".to_string()),
                ("index", index.name().to_string()),
                ("uuid", index.uuid().to_string()),
                ("pri", settings.number_of_shards.to_string()),
                ("rep", settings.number_of_replicas.to_string()),
                ("docs.count", index.docs_count().to_string()),
                ("docs.deleted", "0".to_string()),
                ("store.size", size_text.clone()),
                ("pri.store.size", size_text.clone()),
                ("dataset.size", size_text),
            ]
            .into_iter()
            .filter(|(column, _)| selected.contains(column))
            .collect()
        })
        .collect();
    if request.param("format") == Some("json") {
        let body: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                Value::Object(
                    row.into_iter()
                        .map(|(k, v)| (k.to_string(), Value::String(v)))
                        .collect(),
                )
            })
            .collect();
        return ok(request, Value::Array(body));
    }
    let verbose = request.param("v").is_some_and(|v| v != "false");
    let mut table: Vec<Vec<String>> = Vec::new();
    if verbose {
        table.push(selected.iter().map(|c| c.to_string()).collect());
    }
    table.extend(
        rows.into_iter()
            .map(|row| row.into_iter().map(|(_, v)| v).collect()),
    );
    let widths: Vec<usize> = (0..selected.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join(" ").trim_end());
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
                Mappings::from_json(value)?;
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

pub(super) fn get_index(api: &EsApi, target: &str) -> EsResult {
    let mut body = Map::new();
    let catalog = api.node.indices().catalog();
    for index in api.resolve(Some(target))? {
        let aliases = catalog
            .aliases_of(index.name())
            .map(sluice_search::templates::aliases_json)
            .unwrap_or_else(|| json!({}));
        body.insert(
            index.name().to_string(),
            json!({"aliases": aliases, "mappings": index.mappings().to_json(), "settings": index_settings_json(&index)}),
        );
    }
    Ok(super::json_response(
        StatusCode::OK,
        &Value::Object(body),
        false,
    ))
}

pub(super) fn get_mapping(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let options = super::targets::indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let mut body = Map::new();
    for resolved in api.node.indices().resolve(target, options)? {
        body.insert(
            resolved.index.name().to_string(),
            json!({"mappings": resolved.index.mappings().to_json()}),
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
    let update = Mappings::from_json(&body)?;
    let indices: Vec<Arc<Index>> = api.resolve(Some(target))?;
    blocking(move || {
        for index in indices {
            index.put_mapping(&update)?;
        }
        Ok(())
    })
    .await?;
    ok(request, json!({"acknowledged": true}))
}

pub(super) fn get_settings(api: &EsApi, target: &str) -> EsResult {
    let mut body = Map::new();
    for index in api.resolve(Some(target))? {
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
    let indices = api.resolve(target)?;
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
    use super::human_bytes;

    #[test]
    fn cat_sizes() {
        assert_eq!(human_bytes(225), "225b");
        assert_eq!(human_bytes(4608), "4.5kb");
        assert_eq!(human_bytes(1024 * 1024), "1mb");
    }
}
