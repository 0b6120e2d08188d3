//! `sluice-bench firehose`: Firehose `PutRecordBatch` into a DirectPut delivery stream that
//! delivers into Sluice's own index, timed until every record is searchable, next to the same
//! records sent with Kinesis `PutRecords` to kinesalite (the Node.js Kinesis emulator) as a
//! baseline for the put path. Both servers run on this machine in the same run.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::docs::LogDoc;
use crate::http::{Connection, Response};
use crate::machine::{self, Machine};
use crate::server::{self, Server};

/// Markers of this benchmark's section of BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- bench-firehose:begin -->";
pub const END_MARKER: &str = "<!-- bench-firehose:end -->";
/// The delivery stream, its index, and the kinesalite stream.
const STREAM_NAME: &str = "bench-firehose";
const INDEX_NAME: &str = "bench-firehose";
/// How long all records may take to become searchable after the last acknowledgement.
const SEARCHABLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Poll interval of `_count` while waiting for the records to become searchable.
const COUNT_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Calls for one batch before the run is declared failed (throttled or failed records retried).
const ATTEMPTS_PER_BATCH_MAX: usize = 50;
/// How long kinesalite may take to accept connections and its stream to become ACTIVE.
const KINESALITE_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Signature headers kinesalite insists on (it checks their shape, never the signature);
/// Sluice ignores them.
const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";
const FAKE_AMZ_DATE: &str = "20260101T000000Z";
const AMZ_JSON: &str = "application/x-amz-json-1.1";

#[derive(clap::Args, Debug)]
pub struct FirehoseArgs {
    /// Records to send (log documents of about 310 bytes of JSON each).
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records per PutRecordBatch / PutRecords call (500 is the AWS maximum).
    #[arg(long, default_value_t = 500)]
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
    /// Where kinesalite is (or gets) installed with `npm install --prefix DIR kinesalite`.
    #[arg(long, default_value = "/tmp/sluice-bench-kinesalite")]
    kinesalite_dir: PathBuf,
    /// Skip the kinesalite baseline.
    #[arg(long)]
    skip_kinesalite: bool,
    /// Write the results into this Markdown file between `<!-- bench-firehose:begin -->` and
    /// `<!-- bench-firehose:end -->` (appended if the markers are missing).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// The records, encoded once before any clock starts.
pub(crate) struct Records {
    /// Base64 of each record's bytes.
    pub(crate) base64: Vec<String>,
    pub(crate) bytes: u64,
}

pub(crate) fn build_records(n: u64, seed: u64) -> Records {
    let mut base64 = Vec::with_capacity(n as usize);
    let mut bytes = 0;
    let mut json = Vec::with_capacity(512);
    for i in 0..n {
        json.clear();
        LogDoc::generate(seed, i).write_json(&mut json);
        bytes += json.len() as u64;
        base64.push(encode_base64(&json));
    }
    Records { base64, bytes }
}

fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Which API a put goes to: the request target and how its response names failures.
#[derive(Clone, Copy)]
pub(crate) enum PutApi {
    Firehose,
    Kinesis,
}

impl PutApi {
    fn target(self) -> &'static str {
        match self {
            PutApi::Firehose => "Firehose_20150804.PutRecordBatch",
            PutApi::Kinesis => "Kinesis_20131202.PutRecords",
        }
    }

    fn body(self, records: &Records, indices: &[usize]) -> Vec<u8> {
        let mut body = Vec::with_capacity(indices.len() * 460 + 64);
        match self {
            PutApi::Firehose => {
                body.extend_from_slice(b"{\"DeliveryStreamName\":\"");
            }
            PutApi::Kinesis => body.extend_from_slice(b"{\"StreamName\":\""),
        }
        body.extend_from_slice(STREAM_NAME.as_bytes());
        body.extend_from_slice(b"\",\"Records\":[");
        for (k, &i) in indices.iter().enumerate() {
            if k > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"Data\":\"");
            body.extend_from_slice(records.base64[i].as_bytes());
            body.push(b'"');
            if let PutApi::Kinesis = self {
                body.extend_from_slice(format!(",\"PartitionKey\":\"{i}\"").as_bytes());
            }
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        body
    }

    /// Positions (in the request) of the records the response says failed.
    fn failed_positions(self, response: &Response) -> anyhow::Result<Vec<usize>> {
        let value: Value = serde_json::from_slice(&response.body)
            .with_context(|| format!("bad put response {}", response.text()))?;
        let (count_key, list_key) = match self {
            PutApi::Firehose => ("FailedPutCount", "RequestResponses"),
            PutApi::Kinesis => ("FailedRecordCount", "Records"),
        };
        let n_failed = value[count_key]
            .as_u64()
            .with_context(|| format!("no {count_key} in {}", response.text()))?;
        if n_failed == 0 {
            return Ok(Vec::new());
        }
        let positions: Vec<usize> = value[list_key]
            .as_array()
            .with_context(|| format!("no {list_key} in the response"))?
            .iter()
            .enumerate()
            .filter(|(_, item)| item.get("ErrorCode").is_some())
            .map(|(k, _)| k)
            .collect();
        ensure!(
            positions.len() as u64 == n_failed,
            "{count_key} {n_failed} but {} items with an ErrorCode",
            positions.len()
        );
        Ok(positions)
    }
}

fn aws_call(connection: &mut Connection, target: &str, body: &[u8]) -> anyhow::Result<Response> {
    let response = connection.request_with_headers(
        "POST",
        "/",
        &[
            ("X-Amz-Target", target),
            ("X-Amz-Date", FAKE_AMZ_DATE),
            ("Authorization", FAKE_AUTHORIZATION),
        ],
        AMZ_JSON,
        body,
    )?;
    Ok(response)
}

/// Creates the Kinesis stream the `Kinesis` put API writes into (named as the delivery stream,
/// which never clashes: a delivery stream's own buffer is `firehose.<name>`).
pub(crate) fn create_kinesis_stream_with(
    server: &Server,
    secured: Option<&crate::http::Secured>,
    shards: u32,
) -> anyhow::Result<()> {
    let mut connection = Connection::open_with(&server.aws_address, secured)?;
    aws_json(
        &mut connection,
        "Kinesis_20131202.CreateStream",
        &format!("{{\"StreamName\":\"{STREAM_NAME}\",\"ShardCount\":{shards}}}"),
    )?;
    Ok(())
}

fn aws_json(connection: &mut Connection, target: &str, body: &str) -> anyhow::Result<Value> {
    let response = aws_call(connection, target, body.as_bytes())?;
    ensure!(
        response.status == 200,
        "{target}: status {}: {}",
        response.status,
        response.text()
    );
    if response.body.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&response.body)?)
}

/// One side's put phase.
#[derive(Debug, Clone, Default)]
pub struct PutResult {
    /// From the first call sent to the last one acknowledged.
    pub ack_seconds: f64,
    pub n_calls: u64,
    /// Records a response reported as failed (then sent again).
    pub n_records_retried: u64,
    /// Whole calls refused (non-200, e.g. throttling) and sent again.
    pub n_calls_retried: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

/// Sends every record in batches from `clients` threads, retrying failed records and refused calls.
pub(crate) fn put_all(
    address: &str,
    api: PutApi,
    records: &Records,
    batch: usize,
    clients: usize,
) -> anyhow::Result<PutResult> {
    put_all_with(address, None, api, records, batch, clients)
}

/// [`put_all`] to a node reached as `secured` says.
pub(crate) fn put_all_with(
    address: &str,
    secured: Option<&crate::http::Secured>,
    api: PutApi,
    records: &Records,
    batch: usize,
    clients: usize,
) -> anyhow::Result<PutResult> {
    let n_batches = records.base64.len().div_ceil(batch);
    let next_batch = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let records_retried = AtomicU64::new(0);
    let calls_retried = AtomicU64::new(0);
    let latencies: Mutex<Vec<Duration>> = Mutex::new(Vec::with_capacity(n_batches));
    let started = Instant::now();
    thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut connection = Connection::open_with(address, secured)?;
                    let mut mine = Vec::new();
                    let result = (|| -> anyhow::Result<()> {
                        while !stop.load(Ordering::Relaxed) {
                            let n = next_batch.fetch_add(1, Ordering::Relaxed);
                            if n >= n_batches {
                                break;
                            }
                            let end = ((n + 1) * batch).min(records.base64.len());
                            let mut pending: Vec<usize> = (n * batch..end).collect();
                            let mut attempts = 0;
                            while !pending.is_empty() {
                                attempts += 1;
                                ensure!(
                                    attempts <= ATTEMPTS_PER_BATCH_MAX,
                                    "batch {n}: records still failing after {ATTEMPTS_PER_BATCH_MAX} calls"
                                );
                                let body = api.body(records, &pending);
                                let sent = Instant::now();
                                let response = aws_call(&mut connection, api.target(), &body)?;
                                mine.push(sent.elapsed());
                                if response.status != 200 {
                                    let text = response.text();
                                    let retriable = response.status >= 500
                                        || text.contains("Throughput")
                                        || text.contains("LimitExceeded")
                                        || text.contains("ServiceUnavailable");
                                    ensure!(
                                        retriable,
                                        "{}: status {}: {text}",
                                        api.target(),
                                        response.status
                                    );
                                    calls_retried.fetch_add(1, Ordering::Relaxed);
                                    thread::sleep(Duration::from_millis(10 * attempts as u64));
                                    continue;
                                }
                                let failed = api.failed_positions(&response)?;
                                records_retried.fetch_add(failed.len() as u64, Ordering::Relaxed);
                                pending = failed
                                    .into_iter()
                                    .filter_map(|k| pending.get(k).copied())
                                    .collect();
                            }
                            if n % 50 == 49 {
                                eprint!("\r{} of {n_batches} calls", n + 1);
                            }
                        }
                        Ok(())
                    })();
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(mine);
                    result
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!();
    let ack_seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().unwrap_or_else(|p| p.into_inner());
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(PutResult {
        ack_seconds,
        n_calls: latencies.len() as u64,
        n_records_retried: records_retried.into_inner(),
        n_calls_retried: calls_retried.into_inner(),
        latency_p50_ms: percentile(0.5),
        latency_p99_ms: percentile(0.99),
        latency_max_ms: percentile(1.0),
    })
}

#[derive(Debug, Clone)]
pub struct SluiceResult {
    pub put: PutResult,
    /// Server CPU from the first call sent to the last acknowledged (the delivery worker indexes
    /// concurrently, so this includes some indexing).
    pub put_cpu_seconds: f64,
    /// From the first call sent until `_count` returned every record.
    pub searchable_seconds: f64,
    /// Server CPU from the first call sent until every record was searchable.
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct KinesaliteResult {
    pub put: PutResult,
    /// Server CPU from the first call sent to the last acknowledged (without Node's startup).
    pub put_cpu_seconds: f64,
    pub peak_rss_bytes: u64,
}

fn create_delivery_stream(server: &Server) -> anyhow::Result<()> {
    create_delivery_stream_into(server, None, 1)
}

/// Creates the benchmark's delivery stream: into Sluice's own index, or into the cluster at
/// `cluster_endpoint`; flushed every `interval_s` or each MiB.
pub(crate) fn create_delivery_stream_into(
    server: &Server,
    cluster_endpoint: Option<&str>,
    interval_s: u64,
) -> anyhow::Result<()> {
    create_delivery_stream_with(server, cluster_endpoint, interval_s, None)
}

/// [`create_delivery_stream_into`] on a node reached as `secured` says.
pub(crate) fn create_delivery_stream_with(
    server: &Server,
    cluster_endpoint: Option<&str>,
    interval_s: u64,
    secured: Option<&crate::http::Secured>,
) -> anyhow::Result<()> {
    let mut connection = Connection::open_with(&server.aws_address, secured)?;
    let mut body = serde_json::json!({
        "DeliveryStreamName": STREAM_NAME,
        "DeliveryStreamType": "DirectPut",
        "ElasticsearchDestinationConfiguration": {
            "RoleARN": "arn:aws:iam::000000000000:role/bench",
            "IndexName": INDEX_NAME,
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": interval_s, "SizeInMBs": 1},
            "S3BackupMode": "FailedDocumentsOnly",
            "S3Configuration": {
                "RoleARN": "arn:aws:iam::000000000000:role/bench",
                "BucketARN": "arn:aws:s3:::bench"
            }
        }
    });
    if let Some(endpoint) = cluster_endpoint {
        body["ElasticsearchDestinationConfiguration"]["ClusterEndpoint"] =
            serde_json::json!(endpoint);
    }
    aws_json(
        &mut connection,
        "Firehose_20150804.CreateDeliveryStream",
        &body.to_string(),
    )?;
    // Wait for ACTIVE, as a client would (Sluice creates streams synchronously).
    let started = Instant::now();
    loop {
        let description = aws_json(
            &mut connection,
            "Firehose_20150804.DescribeDeliveryStream",
            &format!("{{\"DeliveryStreamName\":\"{STREAM_NAME}\"}}"),
        )?;
        if description["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE" {
            return Ok(());
        }
        ensure!(
            started.elapsed() < KINESALITE_STARTUP_TIMEOUT,
            "the delivery stream never became ACTIVE: {description}"
        );
        thread::sleep(COUNT_POLL_INTERVAL);
    }
}

/// Polls `_count` of the index until it holds `n` documents; the seconds since `started`. Fails
/// past [`SEARCHABLE_TIMEOUT`] after the last acknowledgement, or when it holds more than `n`.
pub(crate) fn wait_until_counted(
    search: &mut Connection,
    n: u64,
    started: Instant,
    ack_seconds: f64,
) -> anyhow::Result<f64> {
    loop {
        let now = count(search)?;
        if now == n {
            return Ok(started.elapsed().as_secs_f64());
        }
        ensure!(now < n, "the index holds {now} documents, more than {n}");
        ensure!(
            started.elapsed().as_secs_f64() < ack_seconds + SEARCHABLE_TIMEOUT.as_secs_f64(),
            "only {now} of {n} records searchable {SEARCHABLE_TIMEOUT:?} after the last ack"
        );
        thread::sleep(COUNT_POLL_INTERVAL);
    }
}

/// `_count` of the index, 0 while it does not exist yet.
pub(crate) fn count(connection: &mut Connection) -> anyhow::Result<u64> {
    count_of(connection, INDEX_NAME)
}

/// `_count` of `index`, 0 while it does not exist yet.
pub(crate) fn count_of(connection: &mut Connection, index: &str) -> anyhow::Result<u64> {
    let response = connection.json("GET", &format!("/{index}/_count"), "")?;
    if response.status == 404 {
        return Ok(0);
    }
    ensure!(
        response.status == 200,
        "_count: status {}: {}",
        response.status,
        response.text()
    );
    let value: Value = serde_json::from_slice(&response.body)?;
    value["count"].as_u64().context("no count in _count")
}

fn run_sluice(
    sluice: &Path,
    scratch: &Path,
    records: &Records,
    args: &FirehoseArgs,
) -> anyhow::Result<SluiceResult> {
    let server = Server::start(
        sluice,
        &scratch.join("sluice-data"),
        &scratch.join("sluice.log"),
    )?;
    eprintln!(
        "sluice pid {}: AWS APIs on {}, search API on {}",
        server.pid(),
        server.aws_address,
        server.search_address
    );
    let result = (|| -> anyhow::Result<SluiceResult> {
        create_delivery_stream(&server)?;
        let mut search = Connection::open(&server.search_address)?;
        let cpu_before = server.cpu_seconds()?;
        let started = Instant::now();
        let put = put_all(
            &server.aws_address,
            PutApi::Firehose,
            records,
            args.batch as usize,
            args.clients,
        )?;
        let put_cpu_seconds = server.cpu_seconds()? - cpu_before;
        eprintln!(
            "sluice: all acknowledged at {:.1} s; waiting until searchable…",
            put.ack_seconds
        );
        let searchable_seconds = wait_until_counted(
            &mut search,
            records.base64.len() as u64,
            started,
            put.ack_seconds,
        )?;
        Ok(SluiceResult {
            put,
            put_cpu_seconds,
            searchable_seconds,
            cpu_seconds: server.cpu_seconds()? - cpu_before,
            peak_rss_bytes: server.peak_rss_bytes()?,
        })
    })();
    match result {
        Ok(result) => {
            server.stop()?;
            Ok(result)
        }
        Err(error) => {
            eprintln!("server log:\n{}", server.log_tail());
            Err(error)
        }
    }
}

/// A running kinesalite, killed when dropped.
struct Kinesalite {
    child: Child,
    address: String,
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kinesalite_cli(dir: &Path) -> anyhow::Result<PathBuf> {
    let cli = dir.join("node_modules/kinesalite/cli.js");
    if !cli.is_file() {
        eprintln!("installing kinesalite into {}…", dir.display());
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .arg("kinesalite")
            .stdout(Stdio::null())
            .status()
            .context("running npm (Node.js and npm are needed for the kinesalite baseline)")?;
        ensure!(status.success(), "npm install kinesalite failed: {status}");
    }
    ensure!(cli.is_file(), "no {} after npm install", cli.display());
    Ok(cli)
}

fn start_kinesalite(cli: &Path, log_path: &Path) -> anyhow::Result<Kinesalite> {
    // A free port: bind, read it, let it go (kinesalite has no "port 0, print it" mode).
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = fs::File::create(log_path)?;
    let child = Command::new("node")
        .arg(cli)
        .args(["--port", &port.to_string()])
        .args(["--createStreamMs", "0", "--deleteStreamMs", "0"])
        .args(["--updateStreamMs", "0", "--shardLimit", "100"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting node (kinesalite)")?;
    let kinesalite = Kinesalite {
        child,
        address: format!("127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while TcpStream::connect(&kinesalite.address).is_err() {
        if started.elapsed() > KINESALITE_STARTUP_TIMEOUT {
            bail!(
                "kinesalite did not listen on {} within {KINESALITE_STARTUP_TIMEOUT:?}",
                kinesalite.address
            );
        }
        thread::sleep(COUNT_POLL_INTERVAL);
    }
    Ok(kinesalite)
}

fn run_kinesalite(
    scratch: &Path,
    records: &Records,
    args: &FirehoseArgs,
) -> anyhow::Result<KinesaliteResult> {
    let cli = kinesalite_cli(&args.kinesalite_dir)?;
    let kinesalite = start_kinesalite(&cli, &scratch.join("kinesalite.log"))?;
    eprintln!(
        "kinesalite pid {} on {}",
        kinesalite.child.id(),
        kinesalite.address
    );
    let mut connection = Connection::open(&kinesalite.address)?;
    aws_json(
        &mut connection,
        "Kinesis_20131202.CreateStream",
        &format!("{{\"StreamName\":\"{STREAM_NAME}\",\"ShardCount\":1}}"),
    )?;
    let started = Instant::now();
    loop {
        let description = aws_json(
            &mut connection,
            "Kinesis_20131202.DescribeStream",
            &format!("{{\"StreamName\":\"{STREAM_NAME}\"}}"),
        )?;
        if description["StreamDescription"]["StreamStatus"] == "ACTIVE" {
            break;
        }
        ensure!(
            started.elapsed() < KINESALITE_STARTUP_TIMEOUT,
            "the kinesalite stream never became ACTIVE: {description}"
        );
        thread::sleep(COUNT_POLL_INTERVAL);
    }
    let pid = kinesalite.child.id();
    let stat_path = format!("/proc/{pid}/stat");
    let cpu_before = server::cpu_seconds_of(&stat_path)?;
    let put = put_all(
        &kinesalite.address,
        PutApi::Kinesis,
        records,
        args.batch as usize,
        args.clients,
    )?;
    Ok(KinesaliteResult {
        put,
        put_cpu_seconds: server::cpu_seconds_of(&stat_path)? - cpu_before,
        peak_rss_bytes: server::peak_rss_bytes_of(&format!("/proc/{pid}/status"))?,
    })
}

pub fn run(args: FirehoseArgs) -> anyhow::Result<()> {
    ensure!(
        args.records > 0 && args.batch > 0 && args.batch <= 500 && args.clients > 0,
        "records and clients must be positive, batch between 1 and 500"
    );
    let sluice = crate::server::sluice_binary(args.sluice.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-firehose")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    eprintln!(
        "machine: {} × {}, {:.0} fsyncs/s, load average {:.1}",
        machine.n_cpus, machine.cpu_model, machine.fsyncs_per_second, machine.load_average
    );
    let records = build_records(args.records, args.seed);
    eprintln!(
        "{} records, {:.1} MB ({:.0} bytes each)",
        args.records,
        records.bytes as f64 / 1e6,
        records.bytes as f64 / args.records as f64
    );
    let sluice_result = run_sluice(&sluice, scratch.path(), &records, &args)?;
    eprintln!(
        "sluice: acked in {:.1} s, searchable in {:.1} s, {:.1} CPU-s",
        sluice_result.put.ack_seconds, sluice_result.searchable_seconds, sluice_result.cpu_seconds
    );
    let kinesalite_result = if args.skip_kinesalite {
        None
    } else {
        Some(run_kinesalite(scratch.path(), &records, &args)?)
    };
    let report = FirehoseReport {
        machine,
        date_utc: crate::report::utc_date(),
        load_average_after: machine::load_average(),
        n_records: args.records,
        bytes: records.bytes,
        batch: args.batch,
        clients: args.clients,
        command: format!(
            "cargo build --release -p sluice -p sluice-bench && cargo run --release -p sluice-bench -- firehose --records {} --batch {} --clients {}",
            args.records, args.batch, args.clients
        ),
        sluice: sluice_result,
        kinesalite: kinesalite_result,
    };
    println!("{}", report.table_markdown());
    if let Some(path) = &args.report {
        report.write_into(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

struct FirehoseReport {
    machine: Machine,
    date_utc: String,
    load_average_after: f64,
    n_records: u64,
    bytes: u64,
    batch: u64,
    clients: usize,
    command: String,
    sluice: SluiceResult,
    kinesalite: Option<KinesaliteResult>,
}

impl FirehoseReport {
    /// One table row; `cpu` is the server CPU over the row's `seconds`.
    fn row(&self, name: &str, seconds: f64, put: &PutResult, cpu: f64, rss: u64) -> String {
        format!(
            "| {name} | {:.0} | {:.2} | {:.1} s | {:.0} ms | {:.0} ms | {} / {} | {:.1} s | {:.0} | {} MiB |\n",
            self.n_records as f64 / seconds,
            self.bytes as f64 / 1e6 / seconds,
            seconds,
            put.latency_p50_ms,
            put.latency_p99_ms,
            put.n_records_retried,
            put.n_calls_retried,
            cpu,
            self.n_records as f64 / cpu,
            rss >> 20
        )
    }

    fn table_markdown(&self) -> String {
        let s = &self.sluice;
        let mut out = String::from(
            "| | records/s | MB/s | time | call p50 | call p99 | records / calls retried | server CPU in that time | records per CPU-s | peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        out.push_str(&self.row(
            &format!(
                "Sluice Firehose `PutRecordBatch`, acknowledged ({} clients × {} records)",
                self.clients, self.batch
            ),
            s.put.ack_seconds,
            &s.put,
            s.put_cpu_seconds,
            s.peak_rss_bytes,
        ));
        out.push_str(&self.row(
            "Sluice, same run, until `_count` = all records (searchable)",
            s.searchable_seconds,
            &s.put,
            s.cpu_seconds,
            s.peak_rss_bytes,
        ));
        if let Some(k) = &self.kinesalite {
            out.push_str(&self.row(
                &format!(
                    "kinesalite Kinesis `PutRecords`, 1 shard, acknowledged ({} clients × {} records)",
                    self.clients, self.batch
                ),
                k.put.ack_seconds,
                &k.put,
                k.put_cpu_seconds,
                k.peak_rss_bytes,
            ));
        }
        let ack_records_per_second = self.n_records as f64 / s.put.ack_seconds;
        let fsyncs = self.machine.fsyncs_per_second;
        out.push_str(&format!(
            "\nLog append versus the disk: Sluice acknowledged {:.2} MB/s ({:.0} records/s in {:.0} calls/s, \
             each call one group-committed, fdatasync'd append, so at most one fsync per call and at least \
             {} records per fsync); the disk does {fsyncs:.0} fsync'd 4 KiB appends per second ({:.1} MB/s), \
             so at the acknowledged rate a disk-bound log would need {:.1} records per fsync, and the calls \
             used {:.2} of the disk's fsync rate.\n",
            self.bytes as f64 / 1e6 / s.put.ack_seconds,
            ack_records_per_second,
            s.put.n_calls as f64 / s.put.ack_seconds,
            self.batch,
            fsyncs * 4096.0 / 1e6,
            ack_records_per_second / fsyncs,
            s.put.n_calls as f64 / s.put.ack_seconds / fsyncs,
        ));
        if let Some(k) = &self.kinesalite {
            out.push_str(&format!(
                "\nSluice / kinesalite by acknowledged records/s: **{:.2}**; by records per server CPU-second while putting: {:.2}.\n",
                k.put.ack_seconds / s.put.ack_seconds,
                k.put_cpu_seconds / s.put_cpu_seconds
            ));
        }
        out.push_str(&format!(
            "\nSluice call latency max {:.0} ms; records searchable {:.1} s after the last acknowledgement; \
             server CPU after the last acknowledgement {:.1} s (delivery and indexing).\n",
            s.put.latency_max_ms,
            s.searchable_seconds - s.put.ack_seconds,
            s.cpu_seconds - s.put_cpu_seconds
        ));
        out
    }

    fn markdown(&self) -> String {
        let m = &self.machine;
        format!(
            "{BEGIN_MARKER}\n\
             ## Firehose delivery into Sluice's index versus kinesalite\n\n\
             {measured} \
             {n} records of {size:.0} bytes of JSON on average ({mb:.1} MB), sent base64-encoded.\n\n\
             ```sh\n{command}\n```\n\n\
             {table}\
             {END_MARKER}\n",
            measured = m.measured_on(&self.date_utc, m.load_average, self.load_average_after),
            n = self.n_records,
            size = self.bytes as f64 / self.n_records as f64,
            mb = self.bytes as f64 / 1e6,
            command = self.command,
            table = self.table_markdown(),
        )
    }

    /// Replaces the marked section of `path`, or appends it at the end.
    fn write_into(&self, path: &Path) -> anyhow::Result<()> {
        crate::report::write_section(path, BEGIN_MARKER, END_MARKER, &self.markdown())
    }
}

#[cfg(test)]
mod tests {
    use super::encode_base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(input.as_bytes()), expected);
        }
    }
}
