//! `sluice-bench`: measures Sluice against the engines it is built on.
//!
//! `sluice-bench bulk` generates log documents, loads them into a real `sluice up` over HTTP
//! `_bulk` with concurrent clients (durability on: each bulk is acknowledged after fsync), checks
//! that every document is there, then writes the same documents straight into tantivy in a child
//! process (`sluice-bench tantivy-baseline`) and prints both side by side. With `--report FILE`
//! it writes the results into a Markdown file between markers, leaving the rest of it alone.
//!
//! `sluice-bench search` and `sluice-bench aggs` time queries and aggregations on the same
//! documents over Sluice's HTTP API, next to raw tantivy in-process and PostgreSQL with JSONB
//! (see `queries.rs`).
//!
//! `sluice-bench firehose` puts records through a Firehose delivery stream into Sluice's own index
//! until they are searchable, next to kinesalite's Kinesis `PutRecords` (see `firehose.rs`);
//! `sluice-bench external` delivers the same records into an external cluster (a second Sluice
//! over loopback) and into the embedded index, in one run (see `external.rs`).
//!
//! `sluice-bench ledger` commits single-document transactions to the verifiable ledger from 1 and
//! 16 clients, embedded and through QLDBSession to a real `sluice up`, next to the disk's own
//! rate of fsync'd appends and the same inserts through `pgbench` into PostgreSQL with a
//! hash-chained audit trigger, then measures size and proofs at 1 M revisions (see `ledger.rs`).
//!
//! `sluice-bench ledger-pipeline` measures ledger commit to searchable at steady rates, and a
//! journal stream's throughput next to the ledger's own maximum commit rate (see
//! `ledger_pipeline.rs`).
//!
//! `sluice-bench tables` times DynamoDB PutItem, GetItem and a paged Query of a 10,000-item
//! partition against Sluice and dynalite (as shipped, and with durable writes) over HTTP, and the
//! same shapes in PostgreSQL through pgbench, then table write → searchable in Sluice, then
//! one-client PutItem with every engine up at once, interleaved round by round (see `tables.rs`).
//!
//! `sluice-bench ui` loads 1,000,000 records into `example-*` and times the dashboard's views in
//! headless Chromium, then reads the server's CPU while a dashboard refreshes itself (see
//! `ui.rs`).

/// The allocator `sluice` itself runs on, so the engines measured in this process (the embedded
/// ledger, the tantivy baselines) allocate as they do in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;
mod ceiling;
mod docs;
mod external;
mod firehose;
mod http;
mod interleave;
mod ledger;
mod ledger_pipeline;
mod ledger_reads;
mod ledger_session;
mod machine;
mod postgres;
mod queries;
mod report;
mod secure;
mod server;
mod tables;
mod ui;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};

use crate::baseline::BaselineResult;
use crate::docs::LogDoc;
use crate::http::Connection;
use crate::machine::Machine;
use crate::report::{BulkResult, Report};
use crate::server::Server;

/// Writer threads of a Sluice index (`INDEXING_THREADS` in crates/search/src/index.rs).
const INDEXING_THREADS: usize = 2;
/// Memory budget of a Sluice index writer in MiB (`INDEXING_MEMORY_BYTES` there).
const INDEXING_MEMORY_MIB: usize = 96;
/// The index the benchmark loads.
const INDEX_NAME: &str = "bench-logs";
/// Elasticsearch's default `index.refresh_interval`, which a Sluice index also refreshes at.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(name = "sluice-bench", about = "Benchmarks of Sluice")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Bulk-load documents into Sluice over HTTP, then the same into raw tantivy, and compare.
    Bulk(BulkArgs),
    /// Firehose PutRecordBatch into Sluice's own index until searchable, versus kinesalite.
    Firehose(firehose::FirehoseArgs),
    /// What TLS and SigV4 cost: bulk indexing and PutRecordBatch on a plain node versus one
    /// started with `--tls-self-signed --tls-only --security`, in alternating rounds.
    Secure(secure::SecureArgs),
    /// Firehose delivery into an external cluster (a second Sluice over loopback, by
    /// ClusterEndpoint) versus into the embedded index, until searchable, in one run.
    External(external::ExternalArgs),
    /// Verifiable ledger: single-document transactions (1 and N clients, embedded and over
    /// QLDBSession), size and proofs at 1 M revisions, versus the disk and PostgreSQL with a
    /// hash-chained audit table.
    Ledger(ledger::LedgerArgs),
    /// The ledger's way out: commit-to-searchable latency at steady rates from 8 clients, the
    /// ledger's maximum commit rate, and a journal stream's throughput replaying it.
    LedgerPipeline(ledger_pipeline::PipelineArgs),
    /// The raw tantivy side of `bulk`, run as a child process so its peak memory is its own.
    TantivyBaseline(BaselineArgs),
    /// Search latency (match, phrase, bool with a range, query_string, wildcard, sort by date,
    /// search_after paging), warm and cold, over HTTP versus raw tantivy and PostgreSQL.
    Search(queries::QueryArgs),
    /// Aggregation latency (terms with avg, calendar date_histogram in a time zone, filters,
    /// cardinality, percentiles, composite paged to the end) versus raw tantivy and PostgreSQL.
    Aggs(queries::QueryArgs),
    /// The raw tantivy side of `search` and `aggs`, run as a child process.
    TantivyQueries(queries::CeilingArgs),
    /// DynamoDB-compatible tables: PutItem and GetItem at 1 and N clients and a Query of a
    /// 10,000-item partition, versus dynalite and PostgreSQL; table write → searchable;
    /// one-client PutItem of every engine interleaved.
    Tables(tables::TablesArgs),
    /// The dashboard with 1,000,000 records in `example-*`: each view's time to ready in
    /// headless Chromium, and the server's CPU while a dashboard refreshes itself every 5 s.
    Ui(ui::UiArgs),
}

#[derive(clap::Args, Debug)]
struct BulkArgs {
    /// Documents to load.
    #[arg(long, default_value_t = 1_000_000)]
    docs: u64,
    /// Documents per `_bulk` request.
    #[arg(long, default_value_t = 5_000)]
    batch: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seed of the document generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Send an explicit `_id` with every document (exercises the version lookup) instead of
    /// letting Sluice generate ids, as log shippers usually do.
    #[arg(long)]
    ids: bool,
    /// With `--ids`: load the documents once untimed, then time a second load of the same
    /// documents, each replacing the one with its id (an update of every document, as a change
    /// stream replays rows). Implies `--skip-baseline`: tantivy's baseline only adds.
    #[arg(long, requires = "ids")]
    replace: bool,
    /// Body of the `PUT /index` that creates the index: default settings and dynamic mapping
    /// unless given, e.g. `{"settings":{"index":{"refresh_interval":"30s"}}}` to measure a change.
    #[arg(long, default_value = "{}")]
    index_body: String,
    /// Skip the tantivy baseline (for profiling runs).
    #[arg(long)]
    skip_baseline: bool,
    /// Also write the documents into tantivy with the fields Elasticsearch's dynamic mapping
    /// gives them (every string as text and as a keyword), committing once and committing every
    /// second: what the default mapping asks of tantivy itself, without Sluice around it.
    #[arg(long, conflicts_with_all = ["skip_baseline", "replace"])]
    dynamic_baselines: bool,
    /// Write the results into this Markdown file between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->` (created if missing).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Record a CPU profile of the server with `perf record` into this file.
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// With `--perf-record`: record call graphs (DWARF unwinding; large files, use fewer docs).
    #[arg(long)]
    perf_call_graph: bool,
}

#[derive(clap::Args, Debug)]
struct BaselineArgs {
    #[arg(long)]
    docs: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = INDEXING_THREADS)]
    threads: usize,
    #[arg(long, default_value_t = INDEXING_MEMORY_MIB)]
    memory_mib: usize,
    /// Empty directory for the index.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_enum, default_value_t = baseline::Fields::Ceiling)]
    fields: baseline::Fields,
    /// Commit every this many milliseconds as well as at the end.
    #[arg(long)]
    commit_every_ms: Option<u64>,
    /// Declare this many text fields that no document uses (a Sluice index declares 64 text
    /// slots), to measure what unused fields cost.
    #[arg(long, default_value_t = 0)]
    unused_text_fields: usize,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        BenchCommand::Bulk(args) => bulk(args),
        BenchCommand::Firehose(args) => firehose::run(args),
        BenchCommand::External(args) => external::run(args),
        BenchCommand::Secure(args) => secure::run(args),
        BenchCommand::Tables(args) => tables::run(args),
        BenchCommand::Ui(args) => ui::run(args),
        BenchCommand::Ledger(args) => ledger::run(args),
        BenchCommand::LedgerPipeline(args) => ledger_pipeline::run(args),
        BenchCommand::Search(args) => queries::run(queries::Kind::Search, args),
        BenchCommand::Aggs(args) => queries::run(queries::Kind::Aggs, args),
        BenchCommand::TantivyQueries(args) => queries::run_ceiling_child(args),
        BenchCommand::TantivyBaseline(args) => {
            let result = baseline::run(
                &args.dir,
                args.docs,
                args.seed,
                args.threads,
                args.memory_mib * 1024 * 1024,
                &baseline::Variant {
                    fields: args.fields,
                    commit_every: args.commit_every_ms.map(Duration::from_millis),
                    unused_text_fields: args.unused_text_fields,
                },
            )?;
            println!("{}", result.to_line());
            Ok(())
        }
    }
}

/// Bulk request bodies, built before the clock starts so clients only send bytes.
struct Batches {
    bodies: Vec<Vec<u8>>,
    source_bytes: u64,
}

fn build_batches(n_docs: u64, batch: u64, seed: u64, ids: bool) -> Batches {
    let mut bodies = Vec::new();
    let mut source_bytes = 0;
    let mut json = Vec::with_capacity(512);
    let mut start = 0;
    while start < n_docs {
        let end = (start + batch).min(n_docs);
        let mut body = Vec::with_capacity(((end - start) * 340) as usize);
        for i in start..end {
            if ids {
                body.extend_from_slice(format!("{{\"index\":{{\"_id\":\"{i}\"}}}}\n").as_bytes());
            } else {
                body.extend_from_slice(b"{\"index\":{}}\n");
            }
            json.clear();
            LogDoc::generate(seed, i).write_json(&mut json);
            source_bytes += json.len() as u64;
            body.extend_from_slice(&json);
            body.push(b'\n');
        }
        bodies.push(body);
        start = end;
    }
    Batches {
        bodies,
        source_bytes,
    }
}

fn default_sluice_path() -> anyhow::Result<PathBuf> {
    server::sluice_path(None)
}

fn check_ok(response: &http::Response, what: &str) -> anyhow::Result<()> {
    ensure!(
        response.status == 200,
        "{what}: status {}: {}",
        response.status,
        response.text()
    );
    Ok(())
}

/// Checks that a bulk response says `"errors":false`; otherwise reports the first failed item.
fn check_bulk_response(response: &http::Response) -> anyhow::Result<()> {
    check_ok(response, "bulk")?;
    const NO_ERRORS: &[u8] = b"\"errors\":false";
    let head = &response.body[..response.body.len().min(64)];
    if head.windows(NO_ERRORS.len()).any(|w| w == NO_ERRORS) {
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_slice(&response.body)?;
    if value["errors"] == serde_json::Value::Bool(false) {
        return Ok(());
    }
    let first_error = value["items"]
        .as_array()
        .and_then(|items| {
            items.iter().find(|item| {
                item.as_object()
                    .is_some_and(|o| o.values().any(|v| v.get("error").is_some()))
            })
        })
        .cloned()
        .unwrap_or_default();
    bail!("bulk reported errors; first failed item: {first_error}")
}

/// Starts `perf record` on the server; stopped with SIGINT so that it writes its file.
fn start_perf(pid: u32, output: &Path, call_graph: bool) -> anyhow::Result<std::process::Child> {
    let mut command = Command::new("perf");
    command.args(["record", "-e", "cpu-clock", "-F", "499"]);
    if call_graph {
        command.args(["--call-graph", "dwarf,32768"]);
    }
    command
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().context("starting perf record")?;
    // Give perf time to attach before the load starts.
    thread::sleep(Duration::from_millis(500));
    Ok(child)
}

fn stop_perf(mut perf: std::process::Child) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()?;
    perf.wait()?;
    Ok(())
}

fn bulk(args: BulkArgs) -> anyhow::Result<()> {
    ensure!(
        args.docs > 0 && args.batch > 0 && args.clients > 0,
        "docs, batch and clients must be positive"
    );
    let sluice = match &args.sluice {
        Some(path) => path.clone(),
        None => default_sluice_path()?,
    };
    ensure!(
        sluice.is_file(),
        "no sluice binary at {} (build it with cargo build --release -p sluice)",
        sluice.display()
    );
    let scratch = tempfile::Builder::new().prefix("sluice-bench").tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    eprintln!(
        "machine: {} × {}, {:.1} GiB RAM, {:.0} fsyncs/s, load average {:.1}",
        machine.n_cpus,
        machine.cpu_model,
        machine.memory_bytes as f64 / (1u64 << 30) as f64,
        machine.fsyncs_per_second,
        machine.load_average
    );

    eprintln!(
        "generating {} documents in batches of {}…",
        args.docs, args.batch
    );
    let batches = build_batches(args.docs, args.batch, args.seed, args.ids);
    eprintln!(
        "{} bulk requests, {:.1} MB of source",
        batches.bodies.len(),
        batches.source_bytes as f64 / 1e6
    );

    let data_dir = scratch.path().join("sluice-data");
    let server = Server::start(&sluice, &data_dir, &scratch.path().join("sluice.log"))?;
    eprintln!("sluice pid {} on {}", server.pid(), server.search_address);
    let sluice_result = load(&server, &args, &batches)?;
    // Printed now so that a failure later never loses the Sluice measurement.
    eprintln!(
        "sluice: {} docs in {:.1} s ({:.0} docs/s), {:.1} CPU-s, peak RSS {} MiB",
        sluice_result.n_docs,
        sluice_result.seconds,
        sluice_result.n_docs as f64 / sluice_result.seconds,
        sluice_result.cpu_seconds,
        sluice_result.peak_rss_bytes >> 20
    );
    let shutdown = server.stop()?;
    eprintln!("sluice stopped in {:.2}s", shutdown.as_secs_f64());

    let baseline = if args.skip_baseline || args.replace {
        None
    } else {
        eprintln!("tantivy baseline…");
        Some(run_baseline(
            &args,
            scratch.path(),
            &baseline::Variant::CEILING,
        )?)
    };
    let dynamic_baselines = if args.dynamic_baselines {
        eprintln!("tantivy with the dynamic mapping's fields, one commit…");
        let dynamic = baseline::Variant {
            fields: baseline::Fields::Dynamic,
            ..baseline::Variant::CEILING
        };
        let once = run_baseline(&args, scratch.path(), &dynamic)?;
        eprintln!("tantivy with the dynamic mapping's fields, a commit every second…");
        let every_second = baseline::Variant {
            commit_every: Some(DEFAULT_REFRESH_INTERVAL),
            ..dynamic
        };
        let every_second = run_baseline(&args, scratch.path(), &every_second)?;
        Some(report::DynamicBaselines { once, every_second })
    } else {
        None
    };
    let all_baselines = baseline.iter().chain(
        dynamic_baselines
            .iter()
            .flat_map(|d| [&d.once, &d.every_second]),
    );
    for baseline in all_baselines {
        ensure!(
            baseline.source_bytes == batches.source_bytes,
            "a baseline indexed different documents ({} source bytes, Sluice {})",
            baseline.source_bytes,
            batches.source_bytes
        );
    }
    let report = Report {
        machine,
        command: command_line(&args),
        sluice: sluice_result,
        baseline,
        dynamic_baselines,
        date_utc: report::utc_date(),
        load_average_after: machine::load_average(),
    };
    println!("{}", report.table());
    if let Some(path) = &args.report {
        report.write_into(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn command_line(args: &BulkArgs) -> String {
    let mut line = format!(
        "cargo build --release -p sluice -p sluice-bench && cargo run --release -p sluice-bench -- bulk --docs {} --batch {} --clients {}",
        args.docs, args.batch, args.clients
    );
    if args.seed != 42 {
        line.push_str(&format!(" --seed {}", args.seed));
    }
    if args.ids {
        line.push_str(" --ids");
    }
    if args.replace {
        line.push_str(" --replace");
    }
    if args.index_body != "{}" {
        line.push_str(&format!(" --index-body '{}'", args.index_body));
    }
    if args.dynamic_baselines {
        line.push_str(" --dynamic-baselines");
    }
    line
}

/// The timed part on the Sluice side ([`load_timed`]); on a failure the server's log tail is
/// printed first.
fn load(server: &Server, args: &BulkArgs, batches: &Batches) -> anyhow::Result<BulkResult> {
    load_timed(server, args, batches)
        .inspect_err(|_| eprintln!("server log:\n{}", server.log_tail()))
}

/// Creates the index, sends every batch, refreshes and counts.
fn load_timed(server: &Server, args: &BulkArgs, batches: &Batches) -> anyhow::Result<BulkResult> {
    let mut admin = Connection::open(&server.search_address)?;
    let response = admin.json("PUT", &format!("/{INDEX_NAME}"), &args.index_body)?;
    check_ok(&response, "creating the index")?;

    if args.replace {
        eprintln!("loading the documents once, untimed, so that the timed load replaces them…");
        send_batches(server, args, batches)?;
        let response = admin.json("POST", &format!("/{INDEX_NAME}/_refresh"), "")?;
        check_ok(&response, "refreshing")?;
    }
    let cpu_before = server.cpu_seconds()?;
    let perf = match &args.perf_record {
        Some(path) => Some(start_perf(server.pid(), path, args.perf_call_graph)?),
        None => None,
    };
    let started = Instant::now();
    let mut latencies = send_batches(server, args, batches)?;
    let sent_seconds = started.elapsed().as_secs_f64();
    let response = admin.json("POST", &format!("/{INDEX_NAME}/_refresh"), "")?;
    check_ok(&response, "refreshing")?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(perf) = perf {
        stop_perf(perf)?;
    }

    let response = admin.json("GET", &format!("/{INDEX_NAME}/_count"), "")?;
    check_ok(&response, "counting")?;
    let count: serde_json::Value = serde_json::from_slice(&response.body)?;
    let count = count["count"]
        .as_u64()
        .context("no count in the _count response")?;
    ensure!(
        count == args.docs,
        "Sluice holds {count} documents after the load, expected {}",
        args.docs
    );
    let peak_rss_bytes = server.peak_rss_bytes()?;
    let cpu_seconds = server.cpu_seconds()? - cpu_before;
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(BulkResult {
        n_docs: args.docs,
        source_bytes: batches.source_bytes,
        seconds,
        sent_seconds,
        peak_rss_bytes,
        cpu_seconds,
        batch: args.batch,
        clients: args.clients,
        replaced: args.replace,
        latency_p50_ms: percentile(0.5),
        latency_p99_ms: percentile(0.99),
        latency_max_ms: percentile(1.0),
    })
}

/// Sends every batch from `args.clients` connections, each taking the next batch; answers the
/// latency of each request.
fn send_batches(
    server: &Server,
    args: &BulkArgs,
    batches: &Batches,
) -> anyhow::Result<Vec<Duration>> {
    let next_batch = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let latencies: Mutex<Vec<Duration>> = Mutex::new(Vec::with_capacity(batches.bodies.len()));
    let bulk_path = format!("/{INDEX_NAME}/_bulk");
    let outcome: anyhow::Result<()> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut connection = Connection::open(&server.search_address)?;
                    let mut mine = Vec::new();
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let n = next_batch.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = batches.bodies.get(n) else {
                            break;
                        };
                        let sent = Instant::now();
                        let result = connection
                            .request("POST", &bulk_path, "application/x-ndjson", body)
                            .and_then(|response| check_bulk_response(&response));
                        if let Err(error) = result {
                            failed.store(true, Ordering::Relaxed);
                            return Err(error.context(format!("bulk request {n}")));
                        }
                        mine.push(sent.elapsed());
                        if n % 20 == 19 {
                            eprint!("\r{} of {} bulk requests", n + 1, batches.bodies.len());
                        }
                    }
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(mine);
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    });
    eprintln!();
    outcome?;
    Ok(latencies.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Runs one tantivy baseline in a process of its own (so that its peak memory is its own), in a
/// fresh directory under `scratch`.
fn run_baseline(
    args: &BulkArgs,
    scratch: &Path,
    variant: &baseline::Variant,
) -> anyhow::Result<BaselineResult> {
    let dir = tempfile::Builder::new()
        .prefix("tantivy-baseline")
        .tempdir_in(scratch)?;
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .arg("tantivy-baseline")
        .args([
            "--docs",
            &args.docs.to_string(),
            "--seed",
            &args.seed.to_string(),
        ])
        .args(["--threads", &INDEXING_THREADS.to_string()])
        .args(["--memory-mib", &INDEXING_MEMORY_MIB.to_string()]);
    if let Some(value) = clap::ValueEnum::to_possible_value(&variant.fields) {
        command.args(["--fields", value.get_name()]);
    }
    if let Some(every) = variant.commit_every {
        command.args(["--commit-every-ms", &every.as_millis().to_string()]);
    }
    command.args([
        "--unused-text-fields",
        &variant.unused_text_fields.to_string(),
    ]);
    let output = command
        .arg("--dir")
        .arg(dir.path())
        .stderr(Stdio::inherit())
        .output()
        .context("running the tantivy baseline")?;
    ensure!(
        output.status.success(),
        "the tantivy baseline failed: {}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(baseline::RESULT_PREFIX))
        .context("the tantivy baseline printed no result")?;
    BaselineResult::from_line(line)
}
