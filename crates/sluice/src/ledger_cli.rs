//! `sluice sql` and `sluice ledger …`: clients of a running server's AWS port. `sql` speaks
//! QLDBSession exactly as the QLDB drivers do (session, transaction, pages, commit digest, OCC
//! retries); `ledger` speaks the QLDB control plane plus Sluice's restore/import extensions.
//! `ledger verify` trusts nothing the server computed: it fetches every block and re-checks every
//! hash, chain link and the digest locally.

use std::fmt;

use anyhow::{Context, bail};
use base64::Engine as _;
use ion_rs::Element;
use serde_json::{Value, json};
use sluice_ledger::hash::{self, Hash};
use sluice_ledger::journal::{self, Strictness};
use sluice_ledger::{BlockAddress, ion_read, model};

use crate::http_client::{self, Endpoint};

/// Where the CLI finds the server unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
/// Attempts of a `sluice sql` transaction that meets OCC conflicts (pyqldb's default retry count
/// plus the first attempt).
pub const SQL_ATTEMPTS_MAX: usize = 5;

/// Longest piece of a parameter quoted in its parse error, in characters: enough to spot the
/// spot, short enough for one line.
pub const PARAMETER_EXCERPT_CHARS_MAX: usize = 24;

/// What a user who writes `{Name: Ada Lovelace}` most likely meant.
const PARAMETER_HINT: &str = r#"strings must be in double quotes: {Name: "Ada"}"#;

/// Reads one `sluice sql` parameter (`number` counts from 1) as one Ion value. A bad one is
/// one short line: which parameter, what the parser found where, and the hint about quotes,
/// without the parser's trace.
pub fn parse_parameter(number: usize, text: &str) -> anyhow::Result<Element> {
    // The depth first, without recursion: ion-rs reads by recursion, and the server refuses
    // deeper parameters anyway.
    ion_read::nesting_depth(text.as_bytes(), ion_read::ION_DEPTH_MAX)
        .map_err(|error| anyhow::anyhow!("parameter {number} is not accepted: {error}"))?;
    Element::read_one(text.as_bytes()).map_err(|error| {
        anyhow::anyhow!(
            "parameter {number} is not one Ion value: {}; {PARAMETER_HINT}",
            parse_failure(text, &error)
        )
    })
}

/// The parser's finding without its trace, and where in `text` it was.
fn parse_failure(text: &str, error: &ion_rs::IonError) -> String {
    let (message, offset) = match error {
        ion_rs::IonError::Decoding(decoding) => {
            let message = decoding.to_string();
            // The trace's first `offset=` is the innermost place, where the parser stopped;
            // the error's own position is the outermost value's start.
            let innermost = message
                .lines()
                .find_map(|line| line.trim().strip_prefix("offset="))
                .and_then(|offset| offset.parse().ok());
            let offset =
                innermost.or_else(|| decoding.position().map(|position| position.byte_offset()));
            (message, offset)
        }
        ion_rs::IonError::Incomplete(incomplete) => (
            "the value is incomplete".to_owned(),
            Some(incomplete.position().byte_offset()),
        ),
        other => (other.to_string(), None),
    };
    // The first line is the finding; the lines after it are the parser's trace.
    let finding = message.lines().next().unwrap_or_default().trim().to_owned();
    let place = match offset.and_then(|offset| text.get(..offset).map(|before| (offset, before))) {
        Some((offset, _)) if offset >= text.len() => {
            " at its end (is a closing bracket or quote missing?)".to_owned()
        }
        Some((offset, before)) => {
            let rest = text.get(offset..).unwrap_or_default();
            let mut excerpt: String = rest.chars().take(PARAMETER_EXCERPT_CHARS_MAX).collect();
            if rest.chars().nth(PARAMETER_EXCERPT_CHARS_MAX).is_some() {
                excerpt.push('…');
            }
            format!(" at character {} ({excerpt:?})", before.chars().count() + 1)
        }
        None => String::new(),
    };
    format!("{finding}{place}")
}

/// An error the server answered with, in AWS's `{"__type","message"}` shape.
#[derive(Debug)]
pub struct ServiceError {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} (HTTP {}): {}",
            self.kind, self.status, self.message
        )
    }
}

impl std::error::Error for ServiceError {}

/// A client of the AWS port.
pub struct AwsClient {
    endpoint: Endpoint,
}

impl AwsClient {
    pub fn new(endpoint: &str) -> anyhow::Result<AwsClient> {
        Ok(AwsClient {
            endpoint: Endpoint::parse(endpoint)?,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(body)?;
        let response = http_client::request(&self.endpoint, method, path, headers, &body)?;
        let value: Value = if response.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&response.body).with_context(|| {
                format!(
                    "the server answered {} with a body that is not JSON",
                    response.status
                )
            })?
        };
        if response.status >= 300 {
            let kind = value
                .get("__type")
                .and_then(Value::as_str)
                .unwrap_or("UnknownError");
            let kind = kind.rsplit('#').next().unwrap_or(kind).to_owned();
            let message = value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            return Err(ServiceError {
                status: response.status,
                kind,
                message,
            }
            .into());
        }
        Ok(value)
    }

    /// A QLDB control-plane call.
    pub fn rest(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(method, path, &[("Content-Type", "application/json")], body)
    }

    /// One Kinesis call.
    pub fn kinesis(&self, operation: &str, body: &Value) -> anyhow::Result<Value> {
        let target = format!("Kinesis_20131202.{operation}");
        self.call(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", &target),
            ],
            body,
        )
    }

    /// The server's URL as given.
    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// One QLDBSession command.
    pub fn send_command(&self, command: &Value) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "QLDBSession.SendCommand"),
            ],
            command,
        )
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("the server's answer has no {pointer}"))
}

fn page_values(page: &Value, values: &mut Vec<Element>) -> anyhow::Result<()> {
    for holder in page
        .get("Values")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let element = match (holder.get("IonBinary"), holder.get("IonText")) {
            (Some(Value::String(binary)), _) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(binary)
                    .context("a value's IonBinary is not base64")?;
                ion_read::read_one(&bytes, ion_read::RESULT_DEPTH_MAX)
                    .context("a value is not Ion")?
            }
            (_, Some(Value::String(text))) => {
                ion_read::read_one(text.as_bytes(), ion_read::RESULT_DEPTH_MAX)
                    .context("a value is not Ion")?
            }
            _ => bail!("a value holder without IonBinary or IonText"),
        };
        values.push(element);
    }
    Ok(())
}

/// Runs one statement in its own transaction through QLDBSession, retrying on OCC conflicts;
/// returns its values.
pub fn execute_statement(
    client: &AwsClient,
    ledger: &str,
    statement: &str,
    parameters: &[Element],
) -> anyhow::Result<Vec<Element>> {
    let started = client.send_command(&json!({"StartSession": {"LedgerName": ledger}}))?;
    let token = text(&started, "/StartSession/SessionToken")?.to_owned();
    let mut holders = Vec::with_capacity(parameters.len());
    let mut statement_hash = hash::ion_hash(&Element::string(statement))?;
    for parameter in parameters {
        let bytes = model::encode_binary(parameter)?;
        holders.push(json!({"IonBinary": base64::engine::general_purpose::STANDARD.encode(bytes)}));
        statement_hash = hash::dot_hashes(&statement_hash, &hash::ion_hash(parameter)?);
    }
    let mut outcome = Err(anyhow::anyhow!("no attempt made"));
    for _ in 0..SQL_ATTEMPTS_MAX {
        outcome = run_transaction(client, &token, statement, &holders, &statement_hash);
        let occ = outcome
            .as_ref()
            .err()
            .and_then(|error| error.downcast_ref::<ServiceError>())
            .is_some_and(|error| error.kind == "OccConflictException");
        if !occ {
            break;
        }
    }
    // Ending the session is courtesy; the server expires it anyway.
    let _ = client.send_command(&json!({"SessionToken": token, "EndSession": {}}));
    outcome
}

fn run_transaction(
    client: &AwsClient,
    token: &str,
    statement: &str,
    holders: &[Value],
    statement_hash: &Hash,
) -> anyhow::Result<Vec<Element>> {
    let started = client.send_command(&json!({"SessionToken": token, "StartTransaction": {}}))?;
    let transaction_id = text(&started, "/StartTransaction/TransactionId")?.to_owned();
    let result = (|| {
        let executed = client.send_command(&json!({"SessionToken": token, "ExecuteStatement": {
            "TransactionId": transaction_id, "Statement": statement, "Parameters": holders}}))?;
        let mut values = Vec::new();
        let mut page = executed
            .pointer("/ExecuteStatement/FirstPage")
            .cloned()
            .unwrap_or_default();
        loop {
            page_values(&page, &mut values)?;
            let Some(next) = page.get("NextPageToken").and_then(Value::as_str) else {
                break;
            };
            let fetched = client.send_command(&json!({"SessionToken": token, "FetchPage": {
                "TransactionId": transaction_id, "NextPageToken": next}}))?;
            page = fetched
                .pointer("/FetchPage/Page")
                .cloned()
                .unwrap_or_default();
        }
        let commit_digest = hash::dot_hashes(
            &hash::ion_hash(&Element::string(transaction_id.as_str()))?,
            statement_hash,
        );
        let commit_digest = base64::engine::general_purpose::STANDARD.encode(commit_digest);
        let committed = client
            .send_command(&json!({"SessionToken": token, "CommitTransaction": {
            "TransactionId": transaction_id, "CommitDigest": commit_digest}}))?;
        if text(&committed, "/CommitTransaction/CommitDigest")? != commit_digest {
            bail!("the server's commit digest differs from the one computed here");
        }
        Ok(values)
    })();
    if let Err(error) = &result {
        let ended = error
            .downcast_ref::<ServiceError>()
            .is_some_and(|error| error.kind == "OccConflictException");
        if !ended {
            let _ = client.send_command(&json!({"SessionToken": token, "AbortTransaction": {}}));
        }
    }
    result
}

/// How `sluice sql` prints values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table: one row per value, one column per top-level field.
    Table,
    /// One JSON value per line (lossy: timestamps and decimals lose their Ion type).
    Json,
    /// One Ion text value per line, types kept exactly.
    Ion,
}

/// Renders values in the chosen format.
pub fn render(values: &[Element], format: OutputFormat) -> anyhow::Result<String> {
    let mut out = String::new();
    match format {
        OutputFormat::Ion => {
            // Element's Display is Ion text, compact and exact.
            for value in values {
                out.push_str(&value.to_string());
                out.push('\n');
            }
        }
        OutputFormat::Json => {
            for value in values {
                out.push_str(&serde_json::to_string(&to_json(value)?)?);
                out.push('\n');
            }
        }
        OutputFormat::Table => out.push_str(&render_table(values)?),
    }
    Ok(out)
}

fn cell(value: &Element) -> anyhow::Result<String> {
    Ok(match value.as_text() {
        Some(text) if !value.is_null() => text.to_owned(),
        _ => value.to_string(),
    })
}

fn render_table(values: &[Element]) -> anyhow::Result<String> {
    let mut columns: Vec<String> = Vec::new();
    for value in values {
        match value.as_struct() {
            Some(fields) => {
                for (name, _) in fields.fields() {
                    let name = name.text().unwrap_or("").to_owned();
                    if !columns.contains(&name) {
                        columns.push(name);
                    }
                }
            }
            None => {
                if !columns.iter().any(|column| column == "value") {
                    columns.push("value".to_owned());
                }
            }
        }
    }
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(values.len());
    for value in values {
        let mut row = Vec::with_capacity(columns.len());
        for column in &columns {
            let field = match value.as_struct() {
                Some(fields) => fields.get(column.as_str()),
                None if column == "value" => Some(value),
                None => None,
            };
            row.push(match field {
                Some(field) => cell(field)?,
                None => String::new(),
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            rows.iter()
                .filter_map(|row| row.get(index))
                .map(|cell| cell.chars().count())
                .chain([column.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join(" | ").trim_end().to_owned() + "\n"
    };
    let mut out = String::new();
    if !columns.is_empty() {
        out.push_str(&line(&columns));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        out.push_str(&rule.join("-+-"));
        out.push('\n');
    }
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!(
        "({} {})\n",
        rows.len(),
        if rows.len() == 1 { "row" } else { "rows" }
    ));
    Ok(out)
}

/// An Ion value as JSON: numbers, strings, booleans, lists and structs map directly; timestamps
/// become strings, blobs and clobs base64 strings.
pub fn to_json(value: &Element) -> anyhow::Result<Value> {
    use ion_rs::Value as Ion;
    Ok(match value.value() {
        Ion::Null(_) => Value::Null,
        Ion::Bool(boolean) => json!(boolean),
        Ion::Int(_) => match value.as_i64() {
            Some(integer) => json!(integer),
            None => serde_json::from_str(&model::encode_text(value)?)
                .unwrap_or_else(|_| json!(model::encode_text(value).unwrap_or_default())),
        },
        Ion::Float(float) => {
            serde_json::Number::from_f64(*float).map_or(Value::Null, Value::Number)
        }
        Ion::Decimal(_) => {
            let text = model::encode_text(value)?.replace(['d', 'D'], "e");
            let text = text.strip_suffix('.').unwrap_or(&text).to_owned();
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(json!(text), Value::Number)
        }
        Ion::Timestamp(_) => json!(model::encode_text(value)?),
        Ion::Symbol(_) | Ion::String(_) => json!(value.as_text().unwrap_or("")),
        Ion::Clob(bytes) | Ion::Blob(bytes) => {
            json!(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()))
        }
        Ion::List(sequence) | Ion::SExp(sequence) => Value::Array(
            sequence
                .elements()
                .map(to_json)
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        Ion::Struct(fields) => {
            let mut object = serde_json::Map::new();
            for (name, field) in fields.fields() {
                object.insert(name.text().unwrap_or("").to_owned(), to_json(field)?);
            }
            Value::Object(object)
        }
    })
}

// ----- sluice ledger … -----

/// `sluice ledger create`.
pub fn create(client: &AwsClient, name: &str, deletion_protection: bool) -> anyhow::Result<()> {
    client.rest(
        "POST",
        "/ledgers",
        &json!({"Name": name, "PermissionsMode": "STANDARD", "DeletionProtection": deletion_protection}),
    )?;
    println!("created ledger {name}");
    Ok(())
}

/// `sluice ledger delete`.
pub fn delete(client: &AwsClient, name: &str) -> anyhow::Result<()> {
    client.rest("DELETE", &format!("/ledgers/{name}"), &json!({}))?;
    println!("deleted ledger {name}");
    Ok(())
}

/// `sluice ledger list`: every ledger name, one per line.
pub fn list(client: &AwsClient) -> anyhow::Result<()> {
    let mut next_token: Option<String> = None;
    loop {
        let path = match &next_token {
            Some(token) => format!("/ledgers?next_token={token}"),
            None => "/ledgers".to_owned(),
        };
        let page = client.rest("GET", &path, &json!({}))?;
        for ledger in page
            .get("Ledgers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            println!(
                "{}",
                ledger.get("Name").and_then(Value::as_str).unwrap_or("")
            );
        }
        match page.get("NextToken").and_then(Value::as_str) {
            Some(token) => next_token = Some(token.to_owned()),
            None => return Ok(()),
        }
    }
}

/// The digest and its tip as the server reports them.
pub fn get_digest(client: &AwsClient, name: &str) -> anyhow::Result<(Hash, BlockAddress)> {
    let answer = client.rest("POST", &format!("/ledgers/{name}/digest"), &json!({}))?;
    let digest = hash::from_base64(text(&answer, "/Digest")?)?;
    let tip = BlockAddress::parse_ion_text(text(&answer, "/DigestTipAddress/IonText")?)?;
    Ok((digest, tip))
}

/// `sluice ledger digest`.
pub fn digest(client: &AwsClient, name: &str) -> anyhow::Result<()> {
    let (digest, tip) = get_digest(client, name)?;
    println!("digest: {}", hash::to_base64(&digest));
    println!("tip: {}", tip.to_ion_text());
    Ok(())
}

fn get_block(
    client: &AwsClient,
    name: &str,
    address: &BlockAddress,
    tip: Option<&BlockAddress>,
) -> anyhow::Result<(Element, Option<Vec<Hash>>)> {
    let mut request = json!({"BlockAddress": {"IonText": address.to_ion_text()}});
    if let Some(tip) = tip {
        request["DigestTipAddress"] = json!({"IonText": tip.to_ion_text()});
    }
    let answer = client.rest("POST", &format!("/ledgers/{name}/block"), &request)?;
    let block = ion_read::read_one(
        text(&answer, "/Block/IonText")?.as_bytes(),
        ion_read::BLOCK_DEPTH_MAX,
    )
    .context("the block is not Ion")?;
    let proof = match answer.pointer("/Proof/IonText").and_then(Value::as_str) {
        Some(proof) => Some(hash::proof_from_ion_text(proof)?),
        None => None,
    };
    Ok((block, proof))
}

/// `sluice ledger verify`: fetches every block through GetBlock and checks, here, each block's
/// revision hashes, entries hash and block hash, each link to the previous block, that the Merkle
/// root of all block hashes equals the server's digest, and that the tip block's proof folds to it.
pub fn verify(client: &AwsClient, name: &str) -> anyhow::Result<()> {
    let (digest, tip) = get_digest(client, name)?;
    let total = tip.sequence_no + 1;
    let progress = indicatif::ProgressBar::new(total);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} blocks ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut previous: Option<Hash> = None;
    let mut block_hashes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for sequence_no in 0..total {
        let address = BlockAddress {
            strand_id: tip.strand_id.clone(),
            sequence_no,
        };
        let (block, _) = get_block(client, name, &address, None)?;
        let verified = journal::verify_block(&block, previous.as_ref(), Strictness::Qldb)
            .with_context(|| format!("block {sequence_no} does not verify"))?;
        if verified.address != address {
            bail!("block {sequence_no} carries the address of another block");
        }
        block_hashes.push(verified.block_hash);
        previous = Some(verified.block_hash);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let root = hash::merkle_root(&block_hashes).context("the journal has no block")?;
    if root != digest {
        bail!(
            "the digest computed from the blocks, {}, differs from the server's, {}",
            hash::to_base64(&root),
            hash::to_base64(&digest)
        );
    }
    let (_, proof) = get_block(client, name, &tip, Some(&tip))?;
    let last = block_hashes.last().context("the journal has no block")?;
    if hash::fold_proof(last, &proof.unwrap_or_default()) != digest {
        bail!("the tip block's proof does not fold to the digest");
    }
    println!(
        "verified {total} blocks of ledger {name}: every block hash and chain link holds, digest {} at {}",
        hash::to_base64(&digest),
        tip.to_ion_text()
    );
    Ok(())
}

/// `sluice ledger export`: ExportJournalToS3 into the server's `data_dir/s3/<bucket>/<prefix>`;
/// prints the export's directory (what `ledger restore --from` takes) and, on stderr, the same
/// export as `--bucket`/`--prefix`. For a bucket the server keeps in real S3 it prints the
/// export's `s3://` URI (restores read only local exports).
pub fn export(
    client: &AwsClient,
    name: &str,
    bucket: &str,
    prefix: &str,
    format: &str,
) -> anyhow::Result<()> {
    let answer = client.rest(
        "POST",
        &format!("/ledgers/{name}/journal-s3-exports"),
        &json!({
            "S3ExportConfiguration": {"Bucket": bucket, "Prefix": prefix,
                "EncryptionConfiguration": {"ObjectEncryptionType": "NO_ENCRYPTION"}},
            "RoleArn": "arn:aws:iam::000000000000:role/sluice",
            "OutputFormat": format,
        }),
    )?;
    // A bucket the server keeps in real S3 is answered with the export's S3 URI instead.
    match answer.pointer("/ExportS3Uri").and_then(Value::as_str) {
        Some(uri) => {
            println!("{uri}");
            return Ok(());
        }
        None => println!("{}", text(&answer, "/ExportDirectory")?),
    }
    let export_id = text(&answer, "/ExportId")?;
    let export_prefix = [prefix.trim_matches('/'), name, export_id]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    eprintln!(
        "restore it with: sluice ledger restore NEW-NAME --bucket {bucket} --prefix {export_prefix}"
    );
    Ok(())
}

/// The Kinesis stream that `ledger replicate` has a source's journal stream write into; one per
/// source ledger, shared by all its replicas (reading a stream takes nothing from it).
pub fn replica_stream_name(source: &str) -> String {
    format!("sluice-journal-{source}")
}

/// The name of the journal stream `ledger replicate` starts (QLDB's `StreamName`).
pub const REPLICA_JOURNAL_STREAM_NAME: &str = "sluice-replicas";

/// `sluice ledger replicate`: makes `target` on the server of `target_client` a replica of
/// `source` on the server of `source_client`. On the source's server it creates (or reuses) a
/// one-shard Kinesis stream and an aggregated journal stream into it that starts at the
/// beginning of the journal; then it declares the replica on the target's server, which reads
/// that stream (through the source server's Kinesis API when the two servers differ).
pub fn replicate(
    source_client: &AwsClient,
    target_client: &AwsClient,
    source: &str,
    target: &str,
    settling_window_ms: Option<u64>,
) -> anyhow::Result<()> {
    source_client
        .rest("GET", &format!("/ledgers/{source}"), &json!({}))
        .with_context(|| format!("ledger {source} at {}", source_client.url()))?;
    let stream_name = replica_stream_name(source);
    match source_client.kinesis(
        "CreateStream",
        &json!({"StreamName": stream_name, "ShardCount": 1}),
    ) {
        Ok(_) => {}
        Err(error)
            if error
                .downcast_ref::<ServiceError>()
                .is_some_and(|error| error.kind == "ResourceInUseException") => {}
        Err(error) => return Err(error.context(format!("creating Kinesis stream {stream_name}"))),
    }
    let summary =
        source_client.kinesis("DescribeStreamSummary", &json!({"StreamName": stream_name}))?;
    let stream_arn = text(&summary, "/StreamDescriptionSummary/StreamARN")?.to_owned();
    let streams = source_client.rest(
        "GET",
        &format!("/ledgers/{source}/journal-kinesis-streams"),
        &json!({}),
    )?;
    let existing = streams
        .get("Streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|stream| {
            stream.get("Status").and_then(Value::as_str) == Some("ACTIVE")
                && stream
                    .pointer("/KinesisConfiguration/StreamArn")
                    .and_then(Value::as_str)
                    == Some(stream_arn.as_str())
        })
        .and_then(|stream| stream.get("StreamId").and_then(Value::as_str))
        .map(str::to_owned);
    let journal_stream_id = match existing {
        Some(stream_id) => stream_id,
        None => {
            let created = source_client.rest(
                "POST",
                &format!("/ledgers/{source}/journal-kinesis-streams"),
                &json!({
                    "RoleArn": "arn:aws:iam::000000000000:role/sluice",
                    // The beginning of time: QLDB (and Sluice) start at the ledger's first block.
                    "InclusiveStartTime": 0,
                    "KinesisConfiguration": {"StreamArn": stream_arn, "AggregationEnabled": true},
                    "StreamName": REPLICA_JOURNAL_STREAM_NAME,
                }),
            )?;
            text(&created, "/StreamId")?.to_owned()
        }
    };
    let mut declaration = json!({"SourceLedgerName": source, "KinesisStreamName": stream_name});
    if source_client.url() != target_client.url() {
        declaration["SourceEndpoint"] = json!(source_client.url());
    }
    if let Some(window) = settling_window_ms {
        declaration["SettlingWindowMs"] = json!(window);
    }
    target_client
        .rest("POST", &format!("/ledgers/{target}/replica"), &declaration)
        .with_context(|| format!("declaring the replica at {}", target_client.url()))?;
    let remote = if source_client.url() != target_client.url() {
        format!(" at {}", source_client.url())
    } else {
        String::new()
    };
    println!(
        "ledger {target} replicates {source} from journal stream {journal_stream_id} \
         (Kinesis stream {stream_name}{remote})"
    );
    Ok(())
}

/// Where `ledger restore|import` reads an export on the server's machine: a directory, or a
/// bucket and prefix of the server's `data_dir/s3`.
#[derive(clap::Args, Debug)]
pub struct ExportSource {
    /// The export's directory on the server: absolute, inside the server's `data_dir/s3` or a
    /// directory it was started with `--import-dir`; or relative to such an import directory.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "bucket",
        conflicts_with = "bucket"
    )]
    pub from: Option<String>,
    /// The bucket of the server's `data_dir/s3` holding the export.
    #[arg(long)]
    pub bucket: Option<String>,
    /// The export's own prefix in the bucket: `<export prefix>/<ledger>/<exportId>`, as
    /// `ledger export` prints it.
    #[arg(long, requires = "bucket", default_value = "")]
    pub prefix: String,
}

impl ExportSource {
    fn request(&self) -> anyhow::Result<(Value, String)> {
        match (&self.from, &self.bucket) {
            (Some(directory), None) => {
                Ok((json!({"ExportDirectory": directory}), directory.clone()))
            }
            (None, Some(bucket)) => Ok((
                json!({"S3ExportConfiguration": {"Bucket": bucket, "Prefix": self.prefix}}),
                format!("s3://{bucket}/{}", self.prefix.trim_matches('/')),
            )),
            _ => bail!("give either --from DIR or --bucket B [--prefix P]"),
        }
    }
}

/// `sluice ledger restore` and `sluice ledger import`: the server reads the export.
pub fn load(
    client: &AwsClient,
    name: &str,
    source: &ExportSource,
    operation: &str,
) -> anyhow::Result<()> {
    let (request, shown) = source.request()?;
    client.rest("POST", &format!("/ledgers/{name}/{operation}"), &request)?;
    let (digest, tip) = get_digest(client, name)?;
    println!(
        "{operation}d ledger {name} from {shown}: digest {} at {}",
        hash::to_base64(&digest),
        tip.to_ion_text()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_get_one_short_line_with_the_place_and_a_hint() {
        let hint = r#"strings must be in double quotes: {Name: "Ada"}"#;
        let message = |number, text| format!("{:#}", parse_parameter(number, text).unwrap_err());
        assert_eq!(
            message(1, "{Name: Ada Lovelace}"),
            format!(
                r#"parameter 1 is not one Ion value: found unrecognized syntax at character 12 ("Lovelace}}"); {hint}"#
            )
        );
        assert_eq!(
            message(2, "{a: 1"),
            format!(
                "parameter 2 is not one Ion value: found unrecognized syntax at its end (is a closing bracket or quote missing?); {hint}"
            )
        );
        let two = message(1, "hello world");
        assert!(
            two.starts_with("parameter 1 is not one Ion value: found more than one value"),
            "{two}"
        );
        for text in [
            "{Email: ada@example.com}",
            "2024-13-01",
            r#"{"x": }"#,
            "[1, 2",
        ] {
            let line = message(3, text);
            assert!(!line.contains('\n'), "{line}");
            assert!(!line.contains("while reading"), "{line}");
            assert!(line.ends_with(hint), "{line}");
        }
        assert_eq!(
            parse_parameter(1, r#"{Name: "Ada"}"#).unwrap(),
            Element::read_one(r#"{Name: "Ada"}"#).unwrap()
        );
    }

    #[test]
    fn tables_have_one_column_per_field() {
        let values: Vec<Element> = Element::read_all(r#"{a: 1, b: "x"} {a: 2, c: 2020-01-01T}"#)
            .unwrap()
            .into_iter()
            .collect();
        let table = render(&values, OutputFormat::Table).unwrap();
        assert_eq!(
            table,
            "a | b | c\n--+---+------------\n1 | x |\n2 |   | 2020-01-01T\n(2 rows)\n"
        );
    }

    #[test]
    fn json_output_maps_ion_types() {
        let value =
            Element::read_one(r#"{i: 1, d: 1.50, t: 2020-01-01T, b: {{AAEC}}, l: [true, null]}"#)
                .unwrap();
        assert_eq!(
            to_json(&value).unwrap(),
            json!({"i": 1, "d": 1.5, "t": "2020-01-01T", "b": "AAEC", "l": [true, null]})
        );
    }

    #[test]
    fn ion_output_keeps_types() {
        let values: Vec<Element> = Element::read_all("1.50 2020-01-01T00:00:00.000Z {{AAEC}}")
            .unwrap()
            .into_iter()
            .collect();
        let text = render(&values, OutputFormat::Ion).unwrap();
        let read_back: Vec<Element> = Element::read_all(text.as_bytes())
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(read_back, values);
    }
}
