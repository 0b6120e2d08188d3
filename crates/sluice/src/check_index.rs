//! `sluice ledger check-index LEDGER [TABLE]`: proves that the built-in indexing converged. It
//! waits until the server reports no indexing lag for the ledger (none when the built-in
//! indexer does not index it: the indices are then a consumer's), then compares every document
//! of each table's committed view (read through QLDBSession) with the index's copy (read through
//! the search API): same version, same content (Ion converted to JSON as the indexer converts
//! it), and no document in the index that the table does not hold. It prints each difference and
//! fails when there is one.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ion_rs::Element;
use serde_json::{Value, json};

use crate::http_client::{self, Endpoint};
use crate::ledger_cli::{self, AwsClient};

/// Where the CLI finds the search API unless told otherwise.
pub const DEFAULT_ES_ENDPOINT: &str = "http://127.0.0.1:9200";
/// How long it waits for the indexer to catch up with the ledger before comparing anyway.
pub const LAG_WAIT: Duration = Duration::from_secs(60);
/// Pause between two looks at the lag.
const LAG_POLL: Duration = Duration::from_millis(100);
/// Documents per page when listing an index's ids for extras; the pages stop at Elasticsearch's
/// default `index.max_result_window`, beyond which extras are counted but not named.
const IDS_PAGE: usize = 1_000;
const RESULT_WINDOW: usize = 10_000;
/// Differences printed before the rest are only counted.
const DIFFERENCES_PRINTED_MAX: usize = 100;

/// What `check-index` compares.
pub struct CheckIndex<'a> {
    pub aws: &'a AwsClient,
    pub aws_endpoint: &'a str,
    pub es_endpoint: &'a str,
    pub ledger: &'a str,
    pub table: Option<&'a str>,
    /// The index instead of `<ledger>-<table>` (with a table only).
    pub index: Option<&'a str>,
}

fn get(endpoint: &Endpoint, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
    let bytes = body
        .map(serde_json::to_vec)
        .transpose()?
        .unwrap_or_default();
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("Content-Type", "application/json")]
    } else {
        &[]
    };
    let method = if body.is_some() { "POST" } else { "GET" };
    let response = http_client::request(endpoint, method, path, headers, &bytes)?;
    let value = if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&response.body)
            .with_context(|| format!("the search API's answer to {path} is not JSON"))?
    };
    Ok((response.status, value))
}

/// The server's indexing lag for `ledger`, in blocks, from `/metrics`.
fn lag_blocks(aws_endpoint: &Endpoint, ledger: &str) -> anyhow::Result<Option<u64>> {
    let response = http_client::request(aws_endpoint, "GET", "/metrics", &[], &[])?;
    let text = String::from_utf8_lossy(&response.body);
    let prefix = format!("sluice_ledger_index_lag_blocks{{ledger=\"{ledger}\"}} ");
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok()))
}

fn text_of(element: &Element) -> Option<String> {
    element.as_text().map(str::to_owned)
}

/// Runs the check; `Ok` when every table matches its index.
pub fn check_index(check: &CheckIndex<'_>) -> anyhow::Result<()> {
    let es = Endpoint::parse(check.es_endpoint)?;
    let aws = Endpoint::parse(check.aws_endpoint)?;
    let started = Instant::now();
    loop {
        match lag_blocks(&aws, check.ledger)? {
            Some(0) => break,
            // No lag reported: the built-in indexer does not index this ledger (turned off in
            // the configuration), so the indices are a consumer's and nothing is awaited.
            None => break,
            lag if started.elapsed() >= LAG_WAIT => {
                eprintln!(
                    "the indexer still lags behind ledger {} ({lag:?} blocks); comparing anyway",
                    check.ledger
                );
                break;
            }
            _ => std::thread::sleep(LAG_POLL),
        }
    }
    let tables = match check.table {
        Some(table) => vec![table.to_owned()],
        None => ledger_cli::execute_statement(
            check.aws,
            check.ledger,
            "SELECT name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
            &[],
        )?
        .iter()
        .filter_map(|row| row.as_struct()?.get("name").and_then(text_of))
        .collect(),
    };
    let mut differences = 0usize;
    for table in &tables {
        let index = match check.index {
            Some(index) => index.to_owned(),
            None => format!("{}-{table}", check.ledger).to_lowercase(),
        };
        let found = check_table(check, &es, table, &index)?;
        differences += found;
        if found == 0 {
            println!("index {index} matches table {table}");
        }
    }
    if differences > 0 {
        bail!(
            "{differences} difference(s) between ledger {} and its indices",
            check.ledger
        );
    }
    Ok(())
}

fn check_table(
    check: &CheckIndex<'_>,
    es: &Endpoint,
    table: &str,
    index: &str,
) -> anyhow::Result<usize> {
    let rows = ledger_cli::execute_statement(
        check.aws,
        check.ledger,
        &format!(
            "SELECT metadata.id AS id, metadata.version AS version, data FROM _ql_committed_{table}"
        ),
        &[],
    )?;
    let mut differences = 0usize;
    let mut report = |line: String| {
        if differences < DIFFERENCES_PRINTED_MAX {
            println!("{line}");
        }
        differences += 1;
    };
    let mut ids = BTreeSet::new();
    for row in &rows {
        let fields = row.as_struct().context("a committed row is not a struct")?;
        let id = fields
            .get("id")
            .and_then(text_of)
            .context("a row without an id")?;
        let version = fields
            .get("version")
            .and_then(Element::as_int)
            .and_then(|version| version.as_i64())
            .context("a row without a version")?;
        let data = fields.get("data").context("a row without data")?;
        let expected: Value = match sluice_node::ledger_index::ion_to_json(data) {
            Ok(document) => document.value,
            Err(reason) => {
                report(format!("{index}/{id}: not indexable ({reason})"));
                continue;
            }
        };
        ids.insert(id.clone());
        let (status, document) = get(es, &format!("/{index}/_doc/{id}"), None)?;
        if status == 404 || document.get("found") == Some(&Value::Bool(false)) {
            report(format!("{index}/{id}: missing (ledger version {version})"));
            continue;
        }
        if status >= 300 {
            bail!("the search API answered {status} for {index}/{id}: {document}");
        }
        let indexed_version = document.get("_version").and_then(Value::as_i64);
        if indexed_version != Some(version) {
            report(format!(
                "{index}/{id}: version {} in the index, {version} in the ledger",
                indexed_version.map_or("none".to_owned(), |version| version.to_string())
            ));
        }
        if document.get("_source") != Some(&expected) {
            report(format!(
                "{index}/{id}: content differs: index {}, ledger {expected}",
                document.get("_source").unwrap_or(&Value::Null)
            ));
        }
    }
    // Extras: documents of the index that the table does not hold.
    let status = http_client::request(es, "POST", &format!("/{index}/_refresh"), &[], &[])?.status;
    if status == 404 {
        if !ids.is_empty() {
            report(format!("{index}: the index does not exist"));
        }
        return Ok(differences);
    }
    let (_, counted) = get(es, &format!("/{index}/_count"), None)?;
    let total = counted.get("count").and_then(Value::as_u64).unwrap_or(0);
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total > ids.len() {
        let mut named = 0usize;
        let mut from = 0usize;
        while from < RESULT_WINDOW.min(total) {
            let size = IDS_PAGE.min(RESULT_WINDOW - from);
            let (_, page) = get(
                es,
                &format!("/{index}/_search"),
                Some(
                    &json!({"from": from, "size": size, "_source": false, "query": {"match_all": {}}}),
                ),
            )?;
            let hits = page
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() {
                break;
            }
            for hit in &hits {
                if let Some(id) = hit.get("_id").and_then(Value::as_str)
                    && !ids.contains(id)
                {
                    named += 1;
                    report(format!("{index}/{id}: in the index, not in the table"));
                }
            }
            from += hits.len();
        }
        let unnamed = (total - ids.len()).saturating_sub(named);
        if unnamed > 0 {
            report(format!(
                "{index}: {unnamed} more document(s) than the table, beyond the first {RESULT_WINDOW}"
            ));
        }
    }
    Ok(differences)
}
