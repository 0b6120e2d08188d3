//! `sluice-bench secure`: what TLS and SigV4 cost. Two nodes of the same binary: one as the
//! defaults start it (plain HTTP, no authentication), one started with `--tls-self-signed
//! --tls-only --security`, whose clients speak TLS and sign every request with an access key
//! (SigV4: service `es` on the search port, as clients of Amazon's managed Elasticsearch do;
//! `firehose` on the AWS port). Each round runs, on each node in turn, bulk indexing of the
//! documents into a new index (until refreshed) and PutRecordBatch of the records into a DirectPut
//! delivery stream (until acknowledged, then waiting, unmeasured, until the stream has indexed
//! them all, so that no node works in the background while the other is measured). Before each
//! measured phase both nodes are let settle until neither uses the CPU (refreshes and merges of
//! the phase before run out of the measurement, not into the next one). Reported:
//! the median throughput of each side, and the median of the rounds' secured/plain ratios; the
//! target is at most 10 % cost (a ratio of 0.9 or more). With `--server-cpus` and
//! `--client-cpus` the nodes and the load generator run on separate CPUs, so that the clients'
//! own signing and encryption do not take the nodes' CPU.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use anyhow::{Context, ensure};

use crate::firehose::{
    PutApi, Records, build_records, create_delivery_stream_with, create_kinesis_stream_with,
    put_all_with,
};
use crate::http::{Connection, Secured};
use crate::machine::{self, Machine};
use crate::server::Server;

const INDEX: &str = "bench-secure";
const BEGIN_MARKER: &str = "<!-- bench-secure:begin -->";
const END_MARKER: &str = "<!-- bench-secure:end -->";
const PINNED_BEGIN_MARKER: &str = "<!-- bench-secure-pinned:begin -->";
const PINNED_END_MARKER: &str = "<!-- bench-secure-pinned:end -->";
/// The role ARN of the benchmark's delivery stream, mapped to `all_access` on the secured node
/// so that both nodes deliver the same way.
const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/bench";

#[derive(clap::Args, Debug)]
pub struct SecureArgs {
    /// Documents bulk-indexed per round and side.
    #[arg(long, default_value_t = 200_000)]
    docs: u64,
    /// Documents per bulk request.
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Records put per round and side.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records per PutRecordBatch call.
    #[arg(long, default_value_t = 500)]
    record_batch: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Rounds; each runs both workloads on both nodes, the side that goes first alternating (an
    /// even count gives each side the first place as often).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Run both nodes on these CPUs only (e.g. `0`), so that the load generator's own signing
    /// and encryption do not take the nodes' CPU: what TLS and SigV4 cost the server alone.
    #[arg(long, value_parser = machine::parse_cpus, requires = "client_cpus")]
    server_cpus: Option<machine::Cpus>,
    /// Run the benchmark's clients on these CPUs only (e.g. `1`); with `--server-cpus`.
    #[arg(long, value_parser = machine::parse_cpus, requires = "server_cpus")]
    client_cpus: Option<machine::Cpus>,
    /// Write the results into this Markdown file between `<!-- bench-secure:begin -->` and
    /// `<!-- bench-secure:end -->` (appended if the markers are missing); a run with
    /// `--server-cpus` between `<!-- bench-secure-pinned:begin -->` and its end marker.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One node under test and how its clients reach it.
struct Side {
    name: &'static str,
    server: Server,
    secured: Option<Secured>,
}

/// The throughputs of one side over the rounds.
#[derive(Default)]
struct Measured {
    bulk_docs_per_s: Vec<f64>,
    put_records_per_s: Vec<f64>,
    kinesis_records_per_s: Vec<f64>,
    /// The node's own CPU time per 1000 records of the Kinesis puts, in milliseconds: what TLS
    /// and SigV4 cost the server, whatever the client's share of the machine.
    kinesis_node_cpu_ms_per_1000: Vec<f64>,
}

/// Waits until neither node works in the background (see [`crate::server::settle`]).
fn settle(sides: &[&Side]) -> anyhow::Result<()> {
    let servers: Vec<&Server> = sides.iter().map(|side| &side.server).collect();
    crate::server::settle(&servers)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// An access key made offline for the secured node, as `sluice security access-key create`
/// prints it.
fn create_access_key(
    sluice: &Path,
    data_dir: &Path,
) -> anyhow::Result<sluice_cluster::sigv4::Credentials> {
    let output = std::process::Command::new(sluice)
        .arg("security")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["access-key", "create"])
        .output()
        .context("running sluice security access-key create")?;
    ensure!(
        output.status.success(),
        "sluice security failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::to_owned)
            .with_context(|| format!("no `{prefix}` in {text}"))
    };
    Ok(sluice_cluster::sigv4::Credentials {
        access_key_id: field("access key id: ")?,
        secret_access_key: field("secret access key: ")?,
        session_token: None,
    })
}

/// Bulk-indexes every batch into a new index from `clients` connections, then refreshes;
/// documents a second.
fn bulk(
    side: &Side,
    round: usize,
    bodies: &[Vec<u8>],
    docs: u64,
    clients: usize,
) -> anyhow::Result<f64> {
    let index = format!("{INDEX}-{round}");
    let secured = side.secured.as_ref();
    let mut admin = Connection::open_with(&side.server.search_address, secured)?;
    let created = admin.json("PUT", &format!("/{index}"), "")?;
    ensure!(
        created.status == 200,
        "creating {index}: {}",
        created.text()
    );
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    let path = format!("/{index}/_bulk");
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let result = (|| -> anyhow::Result<()> {
                    let mut connection =
                        Connection::open_with(&side.server.search_address, secured)?;
                    while !failed.load(Ordering::Relaxed) {
                        let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        let response =
                            connection.request("POST", &path, "application/x-ndjson", body)?;
                        crate::check_bulk_response(&response)?;
                    }
                    Ok(())
                })();
                if let Err(error) = result {
                    failed.store(true, Ordering::Relaxed);
                    errors.lock().unwrap_or_else(|p| p.into_inner()).push(error);
                }
            });
        }
    });
    if let Some(error) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).pop() {
        return Err(error);
    }
    let refreshed = admin.json("POST", &format!("/{index}/_refresh"), "")?;
    ensure!(refreshed.status == 200, "refreshing: {}", refreshed.text());
    let seconds = started.elapsed().as_secs_f64();
    let counted = admin.json("GET", &format!("/{index}/_count"), "")?;
    let count: serde_json::Value = serde_json::from_slice(&counted.body)?;
    ensure!(
        count["count"] == docs,
        "{index} holds {} documents, expected {docs}",
        count["count"]
    );
    Ok(docs as f64 / seconds)
}

pub fn run(args: SecureArgs) -> anyhow::Result<()> {
    ensure!(
        args.docs > 0 && args.batch > 0 && args.records > 0 && args.clients > 0 && args.rounds > 0,
        "docs, batch, records, clients and rounds must be positive"
    );
    ensure!(
        (1..=500).contains(&args.record_batch),
        "record batch must be 1 to 500"
    );
    let sluice = crate::server::sluice_binary(args.sluice.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-secure")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    eprintln!(
        "machine: {} × {}, load average {:.1}",
        machine.n_cpus, machine.cpu_model, machine.load_average
    );
    let bodies = crate::build_batches(args.docs, args.batch, args.seed, false).bodies;
    let records: Records = build_records(args.records, args.seed);
    // The nodes inherit the CPUs of the thread that starts them, the clients those of the
    // thread that starts them after.
    let all_cpus = machine::current_cpus()?;
    if let Some(cpus) = &args.server_cpus {
        machine::pin_current_thread(&cpus.0)?;
    }

    let plain_dir = scratch.path().join("plain");
    let plain = Side {
        name: "plain HTTP, no authentication",
        server: Server::start(&sluice, &plain_dir, &scratch.path().join("plain.log"))?,
        secured: None,
    };
    let secure_dir = scratch.path().join("secured");
    let credentials = create_access_key(&sluice, &secure_dir)?;
    let server = Server::start_with(
        &sluice,
        &secure_dir,
        &scratch.path().join("secured.log"),
        &["--tls-self-signed", "--tls-only", "--security"],
    )?;
    let secured = Secured::trusting(
        &secure_dir.join("tls").join("self-signed-cert.pem"),
        credentials,
    )?;
    machine::pin_current_thread(args.client_cpus.as_ref().map_or(&all_cpus, |cpus| &cpus.0))?;
    let secure = Side {
        name: "TLS and SigV4 (`--tls-self-signed --tls-only --security`)",
        server,
        secured: Some(secured),
    };
    // The delivery streams index what they get on both nodes alike.
    let mut admin = Connection::open_with(&secure.server.search_address, secure.secured.as_ref())?;
    let mapped = admin.json(
        "PUT",
        "/_plugins/_security/api/rolesmapping/all_access",
        &format!("{{\"backend_roles\":[\"{ROLE_ARN}\"]}}"),
    )?;
    ensure!(
        mapped.status < 300,
        "mapping the bench role: {}",
        mapped.text()
    );
    for side in [&plain, &secure] {
        create_delivery_stream_with(&side.server, None, 1, side.secured.as_ref())?;
        create_kinesis_stream_with(&side.server, side.secured.as_ref(), 4)?;
    }

    let mut measured = [Measured::default(), Measured::default()];
    for round in 0..args.rounds {
        // Alternating which side goes first cancels drift across a round.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let side = if k == 0 { &plain } else { &secure };
            settle(&[&plain, &secure])?;
            let docs_per_s = bulk(side, round, &bodies, args.docs, args.clients)
                .with_context(|| format!("bulk on the {} node", side.name))?;
            settle(&[&plain, &secure])?;
            let put = put_all_with(
                &side.server.aws_address,
                side.secured.as_ref(),
                PutApi::Firehose,
                &records,
                args.record_batch as usize,
                args.clients,
            )
            .with_context(|| format!("PutRecordBatch on the {} node", side.name))?;
            let records_per_s = args.records as f64 / put.ack_seconds;
            // Unmeasured: the delivery stream indexes what it got before anything else runs.
            let mut search =
                Connection::open_with(&side.server.search_address, side.secured.as_ref())?;
            crate::firehose::wait_until_counted(
                &mut search,
                (round as u64 + 1) * args.records,
                Instant::now(),
                0.0,
            )
            .with_context(|| format!("delivery on the {} node", side.name))?;
            eprintln!(
                "round {}: {}: bulk {docs_per_s:.0} docs/s, PutRecordBatch {records_per_s:.0} records/s ({} calls, {} refused, {} records retried, latency p50 {:.1} ms, p99 {:.1} ms)",
                round + 1,
                side.name,
                put.n_calls,
                put.n_calls_retried,
                put.n_records_retried,
                put.latency_p50_ms,
                put.latency_p99_ms,
            );
            // The request path alone: PutRecords into a Kinesis stream, which nothing reads.
            settle(&[&plain, &secure])?;
            let cpu_before = side.server.cpu_seconds()?;
            let kinesis = put_all_with(
                &side.server.aws_address,
                side.secured.as_ref(),
                PutApi::Kinesis,
                &records,
                args.record_batch as usize,
                args.clients,
            )
            .with_context(|| format!("PutRecords on the {} node", side.name))?;
            let kinesis_records_per_s = args.records as f64 / kinesis.ack_seconds;
            let node_cpu_ms_per_1000 =
                (side.server.cpu_seconds()? - cpu_before) * 1000.0 / (args.records as f64 / 1000.0);
            eprintln!(
                "round {}: {}: Kinesis PutRecords {kinesis_records_per_s:.0} records/s (latency p50 {:.1} ms, node CPU {node_cpu_ms_per_1000:.2} ms per 1000 records)",
                round + 1,
                side.name,
                kinesis.latency_p50_ms,
            );
            measured[k].bulk_docs_per_s.push(docs_per_s);
            measured[k].put_records_per_s.push(records_per_s);
            measured[k]
                .kinesis_records_per_s
                .push(kinesis_records_per_s);
            measured[k]
                .kinesis_node_cpu_ms_per_1000
                .push(node_cpu_ms_per_1000);
        }
    }
    let [plain_measured, secure_measured] = measured;
    let ratios = |secured: &[f64], plain: &[f64]| -> Vec<f64> {
        secured.iter().zip(plain).map(|(s, p)| s / p).collect()
    };
    let bulk_ratio = median(&ratios(
        &secure_measured.bulk_docs_per_s,
        &plain_measured.bulk_docs_per_s,
    ));
    let put_ratio = median(&ratios(
        &secure_measured.put_records_per_s,
        &plain_measured.put_records_per_s,
    ));
    let kinesis_ratio = median(&ratios(
        &secure_measured.kinesis_records_per_s,
        &plain_measured.kinesis_records_per_s,
    ));
    // A cost ratio, plain / secured, so that like the throughputs 0.9 means 10 % cost.
    let cpu_ratio = median(&ratios(
        &plain_measured.kinesis_node_cpu_ms_per_1000,
        &secure_measured.kinesis_node_cpu_ms_per_1000,
    ));
    let mut table = String::from(
        "| side | bulk, docs/s (median) | PutRecordBatch, records/s (median) | Kinesis PutRecords, records/s (median) | node CPU per 1000 Kinesis records, ms (median) |\n|---|---:|---:|---:|---:|\n",
    );
    for (side, result) in [(&plain, &plain_measured), (&secure, &secure_measured)] {
        table.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} |\n",
            side.name,
            median(&result.bulk_docs_per_s),
            median(&result.put_records_per_s),
            median(&result.kinesis_records_per_s),
            median(&result.kinesis_node_cpu_ms_per_1000)
        ));
    }
    table.push_str(&format!(
        "| secured / plain (median of the rounds' ratios; CPU as plain / secured) | {bulk_ratio:.2} | {put_ratio:.2} | {kinesis_ratio:.2} | {cpu_ratio:.2} |\n"
    ));
    println!("{table}");
    for side in [plain, secure] {
        side.server.stop()?;
    }
    if let Some(path) = &args.report {
        let (placement, title, begin, end) = match (&args.server_cpus, &args.client_cpus) {
            (Some(server), Some(client)) => (
                format!(" --server-cpus {server} --client-cpus {client}"),
                format!(
                    "TLS and SigV4 on versus off, the nodes on CPU {server} and the clients on CPU {client}"
                ),
                PINNED_BEGIN_MARKER,
                PINNED_END_MARKER,
            ),
            _ => (
                String::new(),
                "TLS and SigV4 on versus off".to_owned(),
                BEGIN_MARKER,
                END_MARKER,
            ),
        };
        let command = format!(
            "cargo build --release -p sluice -p sluice-bench && target/release/sluice-bench secure --docs {} --batch {} --records {} --record-batch {} --clients {} --rounds {}{placement}",
            args.docs, args.batch, args.records, args.record_batch, args.clients, args.rounds
        );
        let section = format!(
            "{begin}\n### {title}\n\n`{command}`\n\n{} ({} × {}, load average {:.1} before, {:.1} after), {} rounds, bulk of {} documents in batches of {} and PutRecordBatch of {} records in calls of {} from {} clients per round and side. Target: at most 10 % cost (a ratio of 0.90 or more).\n\n{table}{end}\n",
            crate::report::utc_date(),
            machine.n_cpus,
            machine.cpu_model,
            machine.load_average,
            machine::load_average(),
            args.rounds,
            args.docs,
            args.batch,
            args.records,
            args.record_batch,
            args.clients,
        );
        crate::report::write_section(path, begin, end, &section)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
