//! `sluice-bench ledger-pipeline`: issue 10's numbers for the ledger's way out, against a real
//! `sluice up` (release build):
//!
//! - **commit to searchable**: clients send single-document INSERT transactions through
//!   QLDBSession at a steady total rate (200 and 2,000 per second by default, from 8 clients),
//!   while a poller searches the built-in index `<ledger>-<table>` (default refresh interval)
//!   for new documents; each document's latency runs from its commit's acknowledgement to the
//!   first search that returns it (so it includes up to one poll interval);
//! - **the ledger's own maximum commit rate**: the same transactions from the same clients as
//!   fast as they are acknowledged;
//! - **journal-stream throughput**: a journal stream started in the past replays that whole
//!   ledger into a one-shard Kinesis stream of the log (not aggregated, so one Kinesis record is
//!   one journal record); records per second from its creation to the arrival of its last
//!   record, next to the journal records per second the ledger produced at its maximum.
//!
//! With `--report FILE` the results go into the Markdown file between
//! `<!-- bench-ledger-pipeline:begin -->` and `<!-- bench-ledger-pipeline:end -->`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use ion_rs::Element;
use serde_json::{Value, json};
use sluice_ledger::BlockAddress;

use crate::http::Connection;
use crate::ledger::Latency;
use crate::ledger_session::{self, PreparedInsert, SessionClient};
use crate::machine::Machine;
use crate::server::Server;

pub const BEGIN_MARKER: &str = "<!-- bench-ledger-pipeline:begin -->";
pub const END_MARKER: &str = "<!-- bench-ledger-pipeline:end -->";

/// The table every ledger of the run writes; its index is `<ledger>-licence`.
const TABLE_NAME: &str = "Licence";
/// The statement of every transaction.
const INSERT_STATEMENT: &str = "INSERT INTO Licence ?";
/// Pause between two searches of the poller: the resolution of the latency figures.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Documents one poll returns at most; more than any rate here makes visible in one refresh.
const POLL_PAGE_SIZE: u64 = 10_000;
/// How long after the last commit the poller waits for the last documents before giving up.
const SEARCHABLE_GRACE: Duration = Duration::from_secs(60);
/// How long the journal stream may take to deliver its last record before the run fails.
const STREAM_DEADLINE: Duration = Duration::from_secs(600);
/// Records one GetRecords asks for (Kinesis's maximum).
const GET_RECORDS_LIMIT: u64 = 10_000;

#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    /// Steady total transaction rates (per second) of the commit-to-searchable runs.
    #[arg(long, value_delimiter = ',', default_values_t = [200u64, 2_000])]
    rates: Vec<u64>,
    /// Concurrent QLDBSession clients, each with its own session and connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds each steady rate runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Transactions of the maximum-rate run (they are then the journal the stream replays).
    #[arg(long, default_value_t = 20_000)]
    max_rate_transactions: u64,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Write the results into this Markdown file between the section's markers.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One steady-rate run.
struct SteadyResult {
    target_rate: u64,
    n_transactions: u64,
    /// Transactions per second achieved (acknowledged commits over the sending time).
    achieved_rate: f64,
    commit: Latency,
    searchable: Latency,
}

/// The journal stream's replay.
struct StreamResult {
    n_records: u64,
    seconds: f64,
}

fn document(n: u64) -> anyhow::Result<Element> {
    let text = format!(
        "{{n: {n}, licenceId: \"LIC-{n:08}\", name: \"driver {n}\", postcode: \"AB{} {}CD\", points: {}}}",
        n % 97,
        n % 9,
        n % 12
    );
    Ok(Element::read_one(text.as_bytes())?)
}

fn prepared(first: u64, count: u64) -> anyhow::Result<Vec<PreparedInsert>> {
    (first..first + count)
        .map(|n| PreparedInsert::new(INSERT_STATEMENT, &document(n)?))
        .collect()
}

/// Sends `count` transactions at `rate` per second in total from `clients` sessions (client `c`
/// sends transactions `c`, `c + clients`, … each at its scheduled time, or at once when late),
/// while a poller records when each document first appears in `index`.
fn steady(
    server: &Server,
    ledger: &str,
    rate: u64,
    count: u64,
    clients: usize,
) -> anyhow::Result<SteadyResult> {
    ledger_session::create_ledger(&server.aws_address, ledger, TABLE_NAME)?;
    let index = format!("{}-{}", ledger, TABLE_NAME).to_lowercase();
    let inserts = prepared(0, count)?;
    let sessions = (0..clients)
        .map(|_| SessionClient::start(&server.aws_address, ledger))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let acknowledged: Mutex<Vec<Option<(Instant, Instant)>>> =
        Mutex::new(vec![None; inserts.len()]);
    let seen: Mutex<Vec<Option<Instant>>> = Mutex::new(vec![None; inserts.len()]);
    let senders_done = AtomicBool::new(false);
    let barrier = Barrier::new(clients + 1);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let (started, finished) = std::thread::scope(|scope| -> anyhow::Result<(Instant, Instant)> {
        let mut handles = Vec::new();
        for (client, mut session) in sessions.into_iter().enumerate() {
            let (inserts, acknowledged, barrier) = (&inserts, &acknowledged, &barrier);
            handles.push(scope.spawn(move || -> anyhow::Result<()> {
                barrier.wait();
                let start = Instant::now();
                for n in (client..inserts.len()).step_by(clients) {
                    let due = start + interval * u32::try_from(n)?;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let sent = Instant::now();
                    session.run(INSERT_STATEMENT, &inserts[n])?;
                    acknowledged
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?[n] =
                        Some((sent, Instant::now()));
                }
                Ok(())
            }));
        }
        let poller = {
            let (seen, senders_done, index) = (&seen, &senders_done, &index);
            let search_address = server.search_address.clone();
            scope.spawn(move || poll_searchable(&search_address, index, seen, senders_done))
        };
        barrier.wait();
        let started = Instant::now();
        let mut failure = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failure = Some(error),
                Err(_) => failure = Some(anyhow::anyhow!("a client panicked")),
            }
        }
        let finished = Instant::now();
        senders_done.store(true, Ordering::SeqCst);
        match poller.join() {
            Ok(result) => result?,
            Err(_) => bail!("the poller panicked"),
        }
        if let Some(error) = failure {
            return Err(error);
        }
        Ok((started, finished))
    })?;
    let acknowledged = acknowledged
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let seen = seen.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut commit_ms = Vec::with_capacity(acknowledged.len());
    let mut searchable_ms = Vec::with_capacity(acknowledged.len());
    for (n, (acknowledged, seen)) in acknowledged.iter().zip(&seen).enumerate() {
        let (sent, acknowledged) =
            acknowledged.with_context(|| format!("{n} was not committed"))?;
        let seen = seen.with_context(|| format!("document {n} never became searchable"))?;
        commit_ms.push(acknowledged.duration_since(sent).as_secs_f64() * 1000.0);
        searchable_ms.push(seen.saturating_duration_since(acknowledged).as_secs_f64() * 1000.0);
    }
    Ok(SteadyResult {
        target_rate: rate,
        n_transactions: count,
        achieved_rate: count as f64 / finished.duration_since(started).as_secs_f64(),
        commit: Latency::of(commit_ms),
        searchable: Latency::of(searchable_ms),
    })
}

/// Searches `index` for documents not yet seen (by their `n`, lowest first) until every one was
/// seen, recording when each first appeared.
fn poll_searchable(
    search_address: &str,
    index: &str,
    seen: &Mutex<Vec<Option<Instant>>>,
    senders_done: &AtomicBool,
) -> anyhow::Result<()> {
    let mut connection = Connection::open(search_address)?;
    let total = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.len();
    let mut lowest_unseen = 0usize;
    let mut done_at: Option<Instant> = None;
    while lowest_unseen < total {
        if senders_done.load(Ordering::SeqCst) {
            let done = *done_at.get_or_insert_with(Instant::now);
            ensure!(
                done.elapsed() < SEARCHABLE_GRACE,
                "documents from {lowest_unseen} on were not searchable {SEARCHABLE_GRACE:?} after the last commit"
            );
        }
        let body = json!({
            "size": POLL_PAGE_SIZE,
            "_source": ["n"],
            "query": {"range": {"n": {"gte": lowest_unseen}}},
            "sort": [{"n": "asc"}],
        });
        let response = connection.json("POST", &format!("/{index}/_search"), &body.to_string())?;
        let now = Instant::now();
        if response.status == 200 {
            let answer: Value = serde_json::from_slice(&response.body)?;
            let mut seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for hit in answer
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(slot) = hit
                    .pointer("/_source/n")
                    .and_then(Value::as_u64)
                    .and_then(|n| seen.get_mut(usize::try_from(n).ok()?))
                    && slot.is_none()
                {
                    *slot = Some(now);
                }
            }
            while seen.get(lowest_unseen).is_some_and(Option::is_some) {
                lowest_unseen += 1;
            }
        } else if response.status != 404 {
            bail!("search answered {}: {}", response.status, response.text());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(())
}

fn aws_call(
    connection: &mut Connection,
    target: &str,
    content_type: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let response = connection.request_with_headers(
        "POST",
        "/",
        &[("X-Amz-Target", target)],
        content_type,
        body.to_string().as_bytes(),
    )?;
    ensure!(
        response.status == 200,
        "{target} answered {}: {}",
        response.status,
        response.text()
    );
    Ok(serde_json::from_slice(&response.body)?)
}

fn kinesis(connection: &mut Connection, operation: &str, body: &Value) -> anyhow::Result<Value> {
    aws_call(
        connection,
        &format!("Kinesis_20131202.{operation}"),
        "application/x-amz-json-1.1",
        body,
    )
}

fn epoch_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Replays the whole of `ledger` through a new journal stream into a one-shard Kinesis stream
/// and counts its records until the tip block's summary has arrived and nothing follows it.
fn journal_stream(server: &Server, ledger: &str) -> anyhow::Result<StreamResult> {
    let mut connection = Connection::open(&server.aws_address)?;
    let digest = connection.json("POST", &format!("/ledgers/{ledger}/digest"), "{}")?;
    ensure!(digest.status == 200, "GetDigest: {}", digest.text());
    let digest: Value = serde_json::from_slice(&digest.body)?;
    let tip = BlockAddress::parse_ion_text(
        digest
            .pointer("/DigestTipAddress/IonText")
            .and_then(Value::as_str)
            .context("no tip address")?,
    )?;
    let stream = format!("{ledger}-journal");
    kinesis(
        &mut connection,
        "CreateStream",
        &json!({"StreamName": stream, "ShardCount": 1}),
    )?;
    let started_epoch = epoch_seconds_now();
    let created = connection.json(
        "POST",
        &format!("/ledgers/{ledger}/journal-kinesis-streams"),
        &json!({
            "RoleArn": "arn:aws:iam::000000000000:role/bench",
            "InclusiveStartTime": 0,
            "KinesisConfiguration": {
                "StreamArn": format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"),
                "AggregationEnabled": false,
            },
            "StreamName": "bench",
        })
        .to_string(),
    )?;
    ensure!(
        created.status == 200,
        "StreamJournalToKinesis: {}",
        created.text()
    );
    let shard = kinesis(
        &mut connection,
        "ListShards",
        &json!({"StreamName": stream}),
    )?;
    let shard_id = shard
        .pointer("/Shards/0/ShardId")
        .and_then(Value::as_str)
        .context("no shard")?
        .to_owned();
    let mut iterator = kinesis(
        &mut connection,
        "GetShardIterator",
        &json!({"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}),
    )?["ShardIterator"]
        .as_str()
        .context("no iterator")?
        .to_owned();
    let deadline = Instant::now() + STREAM_DEADLINE;
    let mut n_records = 0u64;
    let mut last_arrival = started_epoch;
    let mut tip_seen = false;
    loop {
        ensure!(
            Instant::now() < deadline,
            "the journal stream did not deliver block {} within {STREAM_DEADLINE:?}",
            tip.sequence_no
        );
        let page = kinesis(
            &mut connection,
            "GetRecords",
            &json!({"ShardIterator": iterator, "Limit": GET_RECORDS_LIMIT}),
        )?;
        let records = page["Records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() && tip_seen {
            break;
        }
        for record in &records {
            n_records += 1;
            if let Some(arrival) = record["ApproximateArrivalTimestamp"].as_f64() {
                last_arrival = last_arrival.max(arrival);
            }
            let data = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                record["Data"].as_str().context("no Data")?,
            )?;
            let value = Element::read_one(&data)?;
            let fields = value.as_struct().context("a record is not a struct")?;
            if fields.get("recordType").and_then(Element::as_text) == Some("BLOCK_SUMMARY") {
                let sequence_no = fields
                    .get("payload")
                    .and_then(Element::as_struct)
                    .and_then(|payload| payload.get("blockAddress"))
                    .and_then(Element::as_struct)
                    .and_then(|address| address.get("sequenceNo"))
                    .and_then(Element::as_i64);
                tip_seen |= sequence_no == i64::try_from(tip.sequence_no).ok();
            }
        }
        iterator = page["NextShardIterator"]
            .as_str()
            .context("no next iterator")?
            .to_owned();
        if records.is_empty() {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    Ok(StreamResult {
        n_records,
        seconds: (last_arrival - started_epoch).max(1e-3),
    })
}

pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let sluice = crate::server::sluice_binary(args.sluice.as_deref())?;
    let scratch = tempfile::tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let load_before = crate::machine::load_average();
    let clients = args.clients.max(1);
    let server = Server::start(
        &sluice,
        &scratch.path().join("data"),
        &scratch.path().join("sluice.log"),
    )?;
    let mut steady_results = Vec::new();
    for &rate in &args.rates {
        let count = rate * args.seconds;
        eprintln!(
            "steady {rate}/s for {}s ({count} transactions)…",
            args.seconds
        );
        let result = steady(&server, &format!("steady{rate}"), rate, count, clients)?;
        eprintln!(
            "  {:.0} tx/s, commit p50 {:.1} ms p99 {:.1} ms, searchable p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
            result.achieved_rate,
            result.commit.p50_ms,
            result.commit.p99_ms,
            result.searchable.p50_ms,
            result.searchable.p99_ms,
            result.searchable.max_ms
        );
        steady_results.push(result);
    }
    eprintln!(
        "maximum commit rate ({} transactions)…",
        args.max_rate_transactions
    );
    ledger_session::create_ledger(&server.aws_address, "maxrate", TABLE_NAME)?;
    let inserts = prepared(0, args.max_rate_transactions)?;
    let (max, _) = ledger_session::run_clients(
        &server.aws_address,
        "maxrate",
        INSERT_STATEMENT,
        &inserts,
        clients,
    )?;
    let max_rate = max.n_transactions as f64 / max.seconds;
    eprintln!("  {max_rate:.0} tx/s");
    eprintln!("journal stream replay of that ledger…");
    let stream = journal_stream(&server, "maxrate")?;
    eprintln!(
        "  {} records in {:.2}s: {:.0} records/s",
        stream.n_records,
        stream.seconds,
        stream.n_records as f64 / stream.seconds
    );
    server.stop()?;
    let load_after = crate::machine::load_average();
    let markdown = markdown(
        &args,
        &machine,
        load_before,
        load_after,
        &steady_results,
        max_rate,
        &stream,
    );
    println!("{markdown}");
    if let Some(path) = &args.report {
        write_into(path, &markdown)?;
    }
    Ok(())
}

fn markdown(
    args: &PipelineArgs,
    machine: &Machine,
    load_before: f64,
    load_after: f64,
    steady: &[SteadyResult],
    max_rate: f64,
    stream: &StreamResult,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN_MARKER}");
    let _ = writeln!(
        out,
        "## Ledger to search and to a journal stream (`sluice-bench ledger-pipeline`)\n"
    );
    let _ = writeln!(
        out,
        "{}\n",
        machine.measured_on(&crate::report::utc_date(), load_before, load_after)
    );
    let rates = args
        .rates
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        out,
        "Command: `flock /tmp/bench.lock target/release/sluice-bench ledger-pipeline --rates {rates} \
         --clients {} --seconds {} --max-rate-transactions {} --report BENCHMARKS.md`\n",
        args.clients, args.seconds, args.max_rate_transactions
    );
    let _ = writeln!(
        out,
        "Single-document INSERT transactions through QLDBSession from {} clients; \
         commit-to-searchable runs from each commit's acknowledgement to the first search \
         (every {} ms) of the built-in index that returns the document, with the default \
         refresh interval (1 s). Target: p99 ≤ 1,500 ms.\n",
        args.clients,
        POLL_INTERVAL.as_millis()
    );
    let _ = writeln!(
        out,
        "| target rate (tx/s) | achieved (tx/s) | transactions | commit p50 / p99 (ms) | searchable p50 (ms) | searchable p99 (ms) | searchable max (ms) |"
    );
    let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for result in steady {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.1} / {:.1} | {:.0} | {:.0} | {:.0} |",
            result.target_rate,
            result.achieved_rate,
            result.n_transactions,
            result.commit.p50_ms,
            result.commit.p99_ms,
            result.searchable.p50_ms,
            result.searchable.p99_ms,
            result.searchable.max_ms
        );
    }
    // Each single-document transaction is one block: one BLOCK_SUMMARY and one REVISION_DETAILS.
    let produced = max_rate * 2.0;
    let streamed = stream.n_records as f64 / stream.seconds;
    let _ = writeln!(
        out,
        "\nThe ledger's own maximum: {} transactions from {} clients at {max_rate:.0} tx/s, \
         that is {produced:.0} journal records/s (a summary and a revision per block). A journal \
         stream started in the past replayed that ledger into a one-shard stream, not \
         aggregated: {} records in {:.2} s, **{streamed:.0} records/s**, {:.1}× the rate the \
         ledger produces them ({}).\n",
        args.max_rate_transactions,
        args.clients,
        stream.n_records,
        stream.seconds,
        streamed / produced.max(1e-9),
        if streamed >= produced {
            "the stream keeps up"
        } else {
            "the stream does not keep up"
        }
    );
    let _ = writeln!(out, "{END_MARKER}");
    out
}

/// Replaces the section between the markers, or appends it.
fn write_into(path: &Path, section: &str) -> anyhow::Result<()> {
    crate::report::write_section(path, BEGIN_MARKER, END_MARKER, section)
}
