//! `sluice-bench tables`: DynamoDB-compatible tables against dynalite and PostgreSQL, in one run.
//!
//! Each DynamoDB side (a real `sluice up`, and dynalite from npm with its LevelDB store on disk,
//! run twice: as shipped, whose LevelDB writes skip the fsync, and with every write made durable
//! by LevelDB's `sync: true`, as Sluice's and PostgreSQL's are) gets the same calls over HTTP/1.1
//! keep-alive connections, with the JSON 1.0 protocol: a table keyed by `userId` (number) and
//! `transactionId` (number), the item shape of scenario 4 (ten attributes, about 300 bytes);
//! `PutItem` of new items from 1 client and from N clients
//! (one thread and connection each); `GetItem` of random written keys, 1 and N clients; and a
//! `Query` reading a whole partition of 10,000 items page by page (`LastEvaluatedKey`), timed
//! end to end. PostgreSQL 15 gets the same shapes through pgbench over a unix socket: an
//! `INSERT … ON CONFLICT (pk, sk) DO UPDATE` of a JSONB document (PutItem replaces), a
//! `SELECT` by primary key, and `SELECT … WHERE pk = ? ORDER BY sk` of the partition.
//!
//! Sluice alone then measures table write → searchable: a table with a stream and the
//! `sluice:search-index` tag, items put at a steady rate from one client, and a poller that reads
//! `_count` of the index; an item is searchable when the count covers it (one table stream
//! shard, indexed in order).
//!
//! Last, one-client PutItem runs again with every engine up at once, interleaved: `--rounds`
//! rounds, each giving every engine its share of `--calls`, the order rotated from round to
//! round. One client waits for one durable write per call, and this VM's disk drifts by 2×
//! within minutes; interleaved, each round's engines meet the same disk ([`Interleaved`]).

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};

use crate::http::Connection;
use crate::interleave::{Interleaved, Slice};
use crate::ledger::Latency;
use crate::machine::{self, Machine};
use crate::postgres::Postgres;
use crate::server::Server;

pub const BEGIN_MARKER: &str = "<!-- bench-tables:begin -->";
pub const END_MARKER: &str = "<!-- bench-tables:end -->";
const TABLE: &str = "bench-transactions";
/// The partition the Query run reads.
const QUERY_USER: u64 = 0;
/// Query runs timed (the partition read whole each time).
const QUERY_RUNS: usize = 5;
/// How long dynalite or a table may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long the last item may take to become searchable before the run fails.
const SEARCHABLE_TIMEOUT: Duration = Duration::from_secs(60);
/// dynalite checks that a signature is there and well formed, never the signature itself.
const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";
const TARGET_DYNALITE_RATIO: f64 = 2.0;
const DYNALITE_AS_SHIPPED: &str =
    "dynalite (npm, LevelDB store on disk, as shipped: answers before its writes are on disk)";
const DYNALITE_DURABLE: &str = "dynalite, durable (the same, each LevelDB write with `sync: true`)";
const TARGET_POSTGRES_RATIO: f64 = 1.0;
const TARGET_SEARCHABLE_P99_MS: f64 = 1500.0;

#[derive(Args, Debug)]
pub struct TablesArgs {
    /// PutItem calls of each put run (and GetItem calls of each get run).
    #[arg(long, default_value_t = 5_000)]
    calls: u64,
    /// Concurrent clients of the concurrent runs.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Items of the partition the Query run reads.
    #[arg(long, default_value_t = 10_000)]
    partition_items: u64,
    /// Items put, at `--searchable-rate` per second, in the write → searchable run.
    #[arg(long, default_value_t = 2_000)]
    searchable_items: u64,
    #[arg(long, default_value_t = 200)]
    searchable_rate: u64,
    /// Rounds of the interleaved one-client PutItem run (`--calls` calls per engine in all).
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Where dynalite is (or gets) installed with `npm install --prefix DIR dynalite`.
    #[arg(long, default_value = "/tmp/sluice-bench-dynalite")]
    dynalite_dir: PathBuf,
    #[arg(long)]
    skip_dynalite: bool,
    #[arg(long)]
    skip_postgres: bool,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Write the results into this Markdown file between the markers.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One run of calls: how many, how long, their latencies.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    calls: u64,
    seconds: f64,
    latency: Latency,
}

impl Run {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.seconds
    }
}

/// The runs of one engine.
#[derive(Debug, Clone, Default)]
struct Side {
    name: String,
    put_1: Run,
    put_n: Run,
    get_1: Run,
    get_n: Run,
    /// Reading the whole partition, per run.
    query: Latency,
}

/// The scenario-4 item of user `user`, transaction `transaction`, in DynamoDB's typed JSON.
fn item(user: u64, transaction: u64) -> Value {
    let merchants = ["bakery", "books", "fuel", "grocer", "pharmacy", "travel"];
    let statuses = ["authorized", "settled", "refunded"];
    let amount = (transaction * 7919 + user * 104_729) % 100_000;
    json!({
        "userId": {"N": user.to_string()},
        "transactionId": {"N": transaction.to_string()},
        "amount": {"N": format!("{}.{:02}", amount / 100, amount % 100)},
        "currency": {"S": "EUR"},
        "merchant": {"S": merchants[(transaction % 6) as usize]},
        "status": {"S": statuses[(transaction % 3) as usize]},
        "createdAt": {"S": format!("2026-12-01T{:02}:{:02}:{:02}Z", transaction / 3600 % 24, transaction / 60 % 60, transaction % 60)},
        "card": {"S": format!("card-{:06}", (user * 31 + transaction) % 1_000_000)},
        "tags": {"SS": ["online", "recurring"]},
        "note": {"S": "monthly subscription renewal for the premium plan"},
    })
}

fn key(user: u64, transaction: u64) -> Value {
    json!({"userId": {"N": user.to_string()}, "transactionId": {"N": transaction.to_string()}})
}

/// One DynamoDB call; the answer's JSON, or an error naming the status and body.
fn call(connection: &mut Connection, operation: &str, body: &Value) -> anyhow::Result<Value> {
    let target = format!("DynamoDB_20120810.{operation}");
    let response = connection.request_with_headers(
        "POST",
        "/",
        &[
            ("X-Amz-Target", &target),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Authorization", FAKE_AUTHORIZATION),
        ],
        "application/x-amz-json-1.0",
        body.to_string().as_bytes(),
    )?;
    ensure!(
        response.status == 200,
        "{operation}: status {}: {}",
        response.status,
        response.text()
    );
    Ok(serde_json::from_slice(&response.body)?)
}

fn create_table(address: &str, tags: Option<Value>) -> anyhow::Result<()> {
    let mut connection = Connection::open(address)?;
    let mut body = json!({
        "TableName": TABLE,
        "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"},
                      {"AttributeName": "transactionId", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "userId", "AttributeType": "N"},
                                 {"AttributeName": "transactionId", "AttributeType": "N"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    if let Some(tags) = tags {
        body["StreamSpecification"] =
            json!({"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"});
        body["Tags"] = tags;
    }
    call(&mut connection, "CreateTable", &body)?;
    let started = Instant::now();
    loop {
        let described = call(
            &mut connection,
            "DescribeTable",
            &json!({"TableName": TABLE}),
        )?;
        if described["Table"]["TableStatus"] == "ACTIVE" {
            return Ok(());
        }
        ensure!(
            started.elapsed() < STARTUP_TIMEOUT,
            "the table never became ACTIVE: {described}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// `clients` threads, each with its own connection, making `calls` calls in all; `make(n)` is
/// the n-th call's operation and body.
fn timed_calls(
    address: &str,
    clients: usize,
    calls: u64,
    make: impl Fn(u64) -> (&'static str, Value) + Sync,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let latencies: Vec<f64> = thread::scope(|scope| {
        let workers: Vec<_> = (0..clients as u64)
            .map(|client| {
                let make = &make;
                scope.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let mut connection = Connection::open(address)?;
                    let mut latencies = Vec::new();
                    let mut n = client;
                    while n < calls {
                        let (operation, body) = make(n);
                        let sent = Instant::now();
                        call(&mut connection, operation, &body)?;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        n += clients as u64;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a client panicked"))??,
            );
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    Ok(Run {
        calls,
        seconds: started.elapsed().as_secs_f64(),
        latency: Latency::of(latencies),
    })
}

/// The DynamoDB runs against `address`.
fn dynamodb_side(name: &str, address: &str, args: &TablesArgs) -> anyhow::Result<Side> {
    create_table(address, None)?;
    // New items each put run: users 1.. for the 1-client run, the next range for N clients.
    let put_1 = timed_calls(address, 1, args.calls, |n| {
        (
            "PutItem",
            json!({"TableName": TABLE, "Item": item(1 + n % 1000, n)}),
        )
    })?;
    let put_n = timed_calls(address, args.clients, args.calls, |n| {
        (
            "PutItem",
            json!({"TableName": TABLE, "Item": item(1 + n % 1000, args.calls + n)}),
        )
    })?;
    let written = 2 * args.calls;
    let get = |n: u64| {
        let transaction = (n * 2_654_435_761) % written;
        (
            "GetItem",
            json!({"TableName": TABLE, "Key": key(1 + transaction % 1000, transaction)}),
        )
    };
    let get_1 = timed_calls(address, 1, args.calls, get)?;
    let get_n = timed_calls(address, args.clients, args.calls, get)?;
    // The partition of the Query run, written 25 items per BatchWriteItem.
    let mut connection = Connection::open(address)?;
    for start in (0..args.partition_items).step_by(25) {
        let requests: Vec<Value> = (start..(start + 25).min(args.partition_items))
            .map(|transaction| json!({"PutRequest": {"Item": item(QUERY_USER, transaction)}}))
            .collect();
        let answer = call(
            &mut connection,
            "BatchWriteItem",
            &json!({"RequestItems": {TABLE: requests}}),
        )?;
        ensure!(
            answer["UnprocessedItems"]
                .as_object()
                .is_none_or(|items| items.is_empty()),
            "{name} left items unprocessed: {answer}"
        );
    }
    let mut query_ms = Vec::new();
    for _ in 0..QUERY_RUNS {
        let started = Instant::now();
        let mut read = 0;
        let mut start_key: Option<Value> = None;
        loop {
            let mut body = json!({
                "TableName": TABLE,
                "KeyConditionExpression": "userId = :u",
                "ExpressionAttributeValues": {":u": {"N": QUERY_USER.to_string()}},
            });
            if let Some(start_key) = start_key.take() {
                body["ExclusiveStartKey"] = start_key;
            }
            let page = call(&mut connection, "Query", &body)?;
            read += page["Count"].as_u64().unwrap_or(0);
            match page.get("LastEvaluatedKey") {
                Some(last) if !last.is_null() => start_key = Some(last.clone()),
                _ => break,
            }
        }
        ensure!(
            read == args.partition_items,
            "{name}: Query read {read} items of {}",
            args.partition_items
        );
        query_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Side {
        name: name.to_owned(),
        put_1,
        put_n,
        get_1,
        get_n,
        query: Latency::of(query_ms),
    })
}

/// A running dynalite, killed when dropped.
struct Dynalite {
    child: Child,
    address: String,
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loaded into dynalite's node with `--require`: every LevelDB write (`put`, `del`, `batch`) of
/// its store passes LevelDB's `sync: true`, so it is on disk before dynalite answers. dynalite
/// itself passes no `sync` option, and LevelDB's default (`false`) leaves an acknowledged write
/// in the operating system's cache. The issue's baseline is a durable dynalite: this is it.
const DYNALITE_DURABLE_WRITES: &str = r#"// Written by sluice-bench: LevelDB's `sync: true` on every write of dynalite's store.
const { ClassicLevel } = require('classic-level');
for (const method of ['_put', '_del', '_batch']) {
  const write = ClassicLevel.prototype[method];
  ClassicLevel.prototype[method] = function (...args) {
    args[args.length - 1] = { ...args[args.length - 1], sync: true };
    return write.apply(this, args);
  };
}
"#;

/// The two dynalites: how each writes, its name in the report, its store's directory name.
const DYNALITES: [(DynaliteWrites, &str, &str); 2] = [
    (
        DynaliteWrites::AsShipped,
        DYNALITE_AS_SHIPPED,
        "dynalite-store",
    ),
    (
        DynaliteWrites::Durable,
        DYNALITE_DURABLE,
        "dynalite-durable-store",
    ),
];

/// How dynalite's store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DynaliteWrites {
    /// As dynalite ships: LevelDB's default, no fsync.
    AsShipped,
    /// LevelDB's `sync: true` on every write ([`DYNALITE_DURABLE_WRITES`]).
    Durable,
}

fn start_dynalite(
    dir: &Path,
    store: &Path,
    log_path: &Path,
    writes: DynaliteWrites,
) -> anyhow::Result<Dynalite> {
    let cli = dir.join("node_modules/dynalite/cli.js");
    if !cli.is_file() {
        eprintln!("installing dynalite into {}…", dir.display());
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .arg("dynalite")
            .stdout(Stdio::null())
            .status()
            .context("running npm (Node.js and npm are needed for the dynalite baseline)")?;
        ensure!(status.success(), "npm install dynalite failed: {status}");
    }
    // A free port: bind, read it, let it go (dynalite has no "port 0, print it" mode).
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = fs::File::create(log_path)?;
    let mut node = Command::new("node");
    if writes == DynaliteWrites::Durable {
        let preload = dir.join("sluice-bench-durable-writes.js");
        fs::write(&preload, DYNALITE_DURABLE_WRITES)?;
        node.arg("--require").arg(preload);
    }
    let child = node
        .arg(&cli)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--path")
        .arg(store)
        .args([
            "--createTableMs",
            "0",
            "--deleteTableMs",
            "0",
            "--updateTableMs",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting node (dynalite)")?;
    let dynalite = Dynalite {
        child,
        address: format!("127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while TcpStream::connect(&dynalite.address).is_err() {
        if started.elapsed() > STARTUP_TIMEOUT {
            bail!("dynalite did not listen on {}", dynalite.address);
        }
        thread::sleep(POLL_INTERVAL);
    }
    Ok(dynalite)
}

/// pgbench of `script` with `clients` clients, `calls` transactions in all.
fn pgbench(
    postgres: &Postgres,
    root: &Path,
    name: &str,
    script: &str,
    clients: usize,
    calls: u64,
) -> anyhow::Result<Run> {
    let script_path = root.join(format!("{name}.sql"));
    fs::write(&script_path, script)?;
    let result = crate::postgres::pgbench(postgres, root, &script_path, name, clients, calls)?;
    Ok(Run {
        calls: result.n_transactions,
        seconds: result.seconds,
        latency: result.latency,
    })
}

/// The item of a PutItem as PostgreSQL's JSONB, from pgbench's variables `:u` and `:t`.
const POSTGRES_DOCUMENT: &str = "jsonb_build_object('userId', :u, 'transactionId', :t, 'amount', (:t::bigint * 7919 % 100000) / 100.0, 'currency', 'EUR', 'merchant', 'grocer', 'status', 'settled', 'createdAt', '2026-12-01T10:00:00Z', 'card', 'card-' || :t, 'tags', jsonb_build_array('online', 'recurring'), 'note', 'monthly subscription renewal for the premium plan')";

/// A PostgreSQL 15 under `root`, fsync and synchronous commit on, with the items table.
fn start_postgres(root: &Path) -> anyhow::Result<Postgres> {
    let postgres = Postgres::start(root, "-c fsync=on -c synchronous_commit=on")?;
    postgres.psql(
        "CREATE TABLE items (pk bigint NOT NULL, sk bigint NOT NULL, doc jsonb NOT NULL, PRIMARY KEY (pk, sk));",
    )?;
    Ok(postgres)
}

/// pgbench's PutItem: an upsert of a random key among a billion from `offset`.
fn postgres_put(offset: u64) -> String {
    format!(
        "\\set t random({offset}, {})\n\\set u 1 + :t % 1000\nINSERT INTO items VALUES (:u, :t, {POSTGRES_DOCUMENT}) ON CONFLICT (pk, sk) DO UPDATE SET doc = EXCLUDED.doc;\n",
        offset + 1_000_000_000
    )
}

/// The same shapes in PostgreSQL 15, fsync and synchronous commit on.
fn postgres_side(root: &Path, args: &TablesArgs) -> anyhow::Result<Side> {
    let postgres = start_postgres(root)?;
    let put_1 = pgbench(&postgres, root, "put1", &postgres_put(0), 1, args.calls)?;
    let put_n = pgbench(
        &postgres,
        root,
        "putn",
        &postgres_put(2_000_000_000),
        args.clients,
        args.calls,
    )?;
    postgres.psql(&format!(
        "INSERT INTO items SELECT 1 + t % 1000, t, {} FROM generate_series(1, {}) AS t ON CONFLICT DO NOTHING;",
        POSTGRES_DOCUMENT.replace(":u", "(1 + t % 1000)").replace(":t", "t"),
        2 * args.calls
    ))?;
    let get = format!(
        "\\set t random(1, {})\n\\set u 1 + :t % 1000\nSELECT doc FROM items WHERE pk = :u AND sk = :t;\n",
        2 * args.calls
    );
    let get_1 = pgbench(&postgres, root, "get1", &get, 1, args.calls)?;
    let get_n = pgbench(&postgres, root, "getn", &get, args.clients, args.calls)?;
    postgres.psql(&format!(
        "INSERT INTO items SELECT {QUERY_USER}, t, {} FROM generate_series(0, {}) AS t;",
        POSTGRES_DOCUMENT
            .replace(":u", &QUERY_USER.to_string())
            .replace(":t", "t"),
        args.partition_items - 1
    ))?;
    let query = pgbench(
        &postgres,
        root,
        "query",
        &format!("SELECT doc FROM items WHERE pk = {QUERY_USER} ORDER BY sk;\n"),
        1,
        QUERY_RUNS as u64,
    )?;
    Ok(Side {
        name: format!(
            "PostgreSQL {} (JSONB, pgbench over a unix socket)",
            postgres_version()
        ),
        put_1,
        put_n,
        get_1,
        get_n,
        query: query.latency,
    })
}

fn postgres_version() -> String {
    Command::new(crate::postgres::postgres_bin("postgres").unwrap_or_default())
        .arg("--version")
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .trim_start_matches("postgres (PostgreSQL) ")
                .to_owned()
        })
        .unwrap_or_default()
}

/// Table write → searchable latencies, in ms, of items put at a steady rate.
fn searchable(server: &Server, args: &TablesArgs) -> anyhow::Result<Latency> {
    let mut connection = Connection::open(&server.aws_address)?;
    call(&mut connection, "DeleteTable", &json!({"TableName": TABLE}))?;
    thread::sleep(Duration::from_millis(500));
    create_table(
        &server.aws_address,
        Some(json!([{"Key": "sluice:search-index", "Value": "bench-searchable"}])),
    )?;
    let n = args.searchable_items;
    let acked: Arc<Vec<std::sync::Mutex<Option<Instant>>>> =
        Arc::new((0..n).map(|_| std::sync::Mutex::new(None)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let search_address = server.search_address.clone();
    let poller = {
        let acked = acked.clone();
        let done = done.clone();
        thread::spawn(move || -> anyhow::Result<Vec<f64>> {
            let mut search = Connection::open(&search_address)?;
            let mut latencies = Vec::new();
            let mut covered = 0u64;
            let started = Instant::now();
            while covered < n {
                let count = crate::firehose::count_of(&mut search, "bench-searchable")?;
                let now = Instant::now();
                while covered < count.min(n) {
                    let at = acked
                        .get(covered as usize)
                        .and_then(|slot| *slot.lock().unwrap_or_else(|e| e.into_inner()));
                    if let Some(at) = at {
                        latencies.push(now.saturating_duration_since(at).as_secs_f64() * 1000.0);
                    }
                    covered += 1;
                }
                ensure!(
                    !done.load(Ordering::Acquire) || started.elapsed() < SEARCHABLE_TIMEOUT * 4,
                    "only {covered} of {n} items searchable"
                );
                thread::sleep(Duration::from_millis(10));
            }
            Ok(latencies)
        })
    };
    let interval = Duration::from_secs_f64(1.0 / args.searchable_rate as f64);
    let started = Instant::now();
    for i in 0..n {
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        call(
            &mut connection,
            "PutItem",
            &json!({"TableName": TABLE, "Item": item(7, i)}),
        )?;
        if let Some(slot) = acked.get(i as usize) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }
    done.store(true, Ordering::Release);
    let latencies = poller
        .join()
        .map_err(|_| anyhow::anyhow!("the poller panicked"))??;
    Ok(Latency::of(latencies))
}

pub fn run(args: TablesArgs) -> anyhow::Result<()> {
    ensure!(
        args.calls > 0 && args.clients > 0 && args.partition_items > 0,
        "calls, clients and partition items must be positive"
    );
    ensure!(args.rounds > 0, "--rounds must be positive");
    let sluice = crate::server::sluice_binary(args.sluice.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-tables")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let server = Server::start(
        &sluice,
        &scratch.path().join("sluice-data"),
        &scratch.path().join("sluice.log"),
    )?;
    eprintln!(
        "sluice pid {}: AWS APIs on {}",
        server.pid(),
        server.aws_address
    );
    let sluice_side = dynamodb_side("Sluice (`sluice up`)", &server.aws_address, &args);
    let searchable_latency = sluice_side
        .as_ref()
        .ok()
        .map(|_| searchable(&server, &args));
    if sluice_side.is_err() || matches!(searchable_latency, Some(Err(_))) {
        eprintln!("server log:\n{}", server.log_tail());
    }
    server.stop()?;
    let sluice_side = sluice_side?;
    let searchable_latency = searchable_latency.context("no searchable run")??;
    eprintln!("{}", side_line(&sluice_side));
    let mut baselines = Vec::new();
    if !args.skip_dynalite {
        for (writes, name, store) in DYNALITES {
            let dynalite = start_dynalite(
                &args.dynalite_dir,
                &scratch.path().join(store),
                &scratch.path().join(format!("{store}.log")),
                writes,
            )?;
            let side = dynamodb_side(name, &dynalite.address, &args)?;
            eprintln!("{}", side_line(&side));
            baselines.push(side);
        }
    }
    if !args.skip_postgres {
        let side = postgres_side(&scratch.path().join("postgres"), &args)?;
        eprintln!("{}", side_line(&side));
        baselines.push(side);
    }
    let interleaved = interleaved_puts(&sluice, &scratch.path().join("interleaved"), &args)?;
    eprintln!(
        "{}",
        interleaved.markdown("PutItem", |name| Some(target_of(name)))
    );
    let report = TablesReport {
        machine,
        date_utc: crate::report::utc_date(),
        load_average_after: machine::load_average(),
        command: format!(
            "cargo build --release -p sluice -p sluice-bench && target/release/sluice-bench tables --calls {} --clients {} --partition-items {} --searchable-items {} --searchable-rate {} --rounds {} --report BENCHMARKS.md",
            args.calls,
            args.clients,
            args.partition_items,
            args.searchable_items,
            args.searchable_rate,
            args.rounds
        ),
        clients: args.clients,
        partition_items: args.partition_items,
        searchable_rate: args.searchable_rate,
        sluice: sluice_side,
        baselines,
        searchable: searchable_latency,
        interleaved,
    };
    println!("{}", report.table_markdown());
    if let Some(path) = &args.report {
        crate::report::write_section(path, BEGIN_MARKER, END_MARKER, &report.markdown())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn side_line(side: &Side) -> String {
    format!(
        "{}: PutItem {:.0}/s (1) {:.0}/s (N), GetItem {:.0}/s (1) {:.0}/s (N), Query p50 {:.1} ms",
        side.name,
        side.put_1.rate(),
        side.put_n.rate(),
        side.get_1.rate(),
        side.get_n.rate(),
        side.query.p50_ms
    )
}

struct TablesReport {
    machine: Machine,
    date_utc: String,
    load_average_after: f64,
    command: String,
    clients: usize,
    partition_items: u64,
    searchable_rate: u64,
    sluice: Side,
    baselines: Vec<Side>,
    searchable: Latency,
    interleaved: Interleaved,
}

impl TablesReport {
    fn sides(&self) -> impl Iterator<Item = &Side> {
        std::iter::once(&self.sluice).chain(&self.baselines)
    }

    fn table_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| engine | operation | clients | calls/s | p50 | p99 | max |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for side in self.sides() {
            for (operation, clients, run) in [
                ("PutItem (new items)", 1, side.put_1),
                ("PutItem (new items)", self.clients, side.put_n),
                ("GetItem (random written keys)", 1, side.get_1),
                ("GetItem (random written keys)", self.clients, side.get_n),
            ] {
                let _ = writeln!(
                    out,
                    "| {} | {operation} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                    side.name,
                    run.rate(),
                    run.latency.p50_ms,
                    run.latency.p99_ms,
                    run.latency.max_ms
                );
            }
            let _ = writeln!(
                out,
                "| {} | Query of a whole {}-item partition (paged) | 1 | – | {:.1} ms | {:.1} ms | {:.1} ms |",
                side.name,
                self.partition_items,
                side.query.p50_ms,
                side.query.p99_ms,
                side.query.max_ms
            );
        }
        let _ = writeln!(
            out,
            "\nTable write → searchable (a tagged table, {} PutItem/s from one client, `_count` polled): p50 {:.0} ms, p99 **{:.0} ms** (target ≤ {TARGET_SEARCHABLE_P99_MS:.0} ms: {}).\n",
            self.searchable_rate,
            self.searchable.p50_ms,
            self.searchable.p99_ms,
            met(self.searchable.p99_ms <= TARGET_SEARCHABLE_P99_MS)
        );
        for baseline in &self.baselines {
            let target = target_of(&baseline.name);
            let _ = writeln!(
                out,
                "- PutItem throughput against {}: **{:.2}×** at 1 client, **{:.2}×** at {} (target ≥ {target}: {}).",
                baseline.name,
                self.sluice.put_1.rate() / baseline.put_1.rate(),
                self.sluice.put_n.rate() / baseline.put_n.rate(),
                self.clients,
                met(self.sluice.put_1.rate() / baseline.put_1.rate() >= target
                    && self.sluice.put_n.rate() / baseline.put_n.rate() >= target)
            );
        }
        out.push('\n');
        out.push_str(
            &self
                .interleaved
                .markdown("PutItem", |name| Some(target_of(name))),
        );
        out
    }

    fn markdown(&self) -> String {
        let m = &self.machine;
        format!(
            "{BEGIN_MARKER}\n\
             ## Tables (DynamoDB-compatible) versus dynalite and PostgreSQL\n\n\
             {measured} Every DynamoDB side is called over HTTP/1.1 keep-alive connections (one \
             per client thread) with the JSON 1.0 protocol; the items have scenario 4's shape \
             (ten attributes, about 300 bytes). dynalite runs twice: as shipped (LevelDB's default \
             `sync: false`, so a PutItem is answered before it is on disk) and with each LevelDB \
             write made durable (`sync: true`, loaded with `node --require`), the durable \
             baseline the issue names. PostgreSQL runs the same shapes through pgbench \
             (an upsert of a JSONB document, a select by primary key, the partition in key \
             order), `fsync` and `synchronous_commit` on.\n\n\
             ```sh\n{command}\n```\n\n\
             {table}\
             {END_MARKER}\n",
            measured = m.measured_on(&self.date_utc, m.load_average, self.load_average_after),
            command = self.command,
            table = self.table_markdown(),
        )
    }
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "not met" }
}

/// One-client PutItem of every engine, interleaved round by round ([`Interleaved`]).
fn interleaved_puts(sluice: &Path, root: &Path, args: &TablesArgs) -> anyhow::Result<Interleaved> {
    fs::create_dir_all(root)?;
    let server = Server::start(sluice, &root.join("sluice-data"), &root.join("sluice.log"))?;
    let mut dynalites = Vec::new();
    if !args.skip_dynalite {
        for (writes, name, store) in DYNALITES {
            let dynalite = start_dynalite(
                &args.dynalite_dir,
                &root.join(store),
                &root.join(format!("{store}.log")),
                writes,
            )?;
            dynalites.push((name, dynalite));
        }
    }
    let postgres = if args.skip_postgres {
        None
    } else {
        Some(start_postgres(&root.join("postgres"))?)
    };
    let dynamodb = |address: String| -> anyhow::Result<Slice<'_>> {
        create_table(&address, None)?;
        Ok(Box::new(move |round, calls| {
            // Keys of their own per round.
            let first = 100_000_000 + round * calls;
            let run = timed_calls(&address, 1, calls, |n| {
                let item = item(1 + n % 1000, first + n);
                ("PutItem", json!({"TableName": TABLE, "Item": item}))
            })?;
            Ok(run.seconds)
        }))
    };
    let mut engines: Vec<(String, Slice<'_>)> = vec![(
        "Sluice (`sluice up`)".to_owned(),
        dynamodb(server.aws_address.clone())?,
    )];
    for (name, dynalite) in &dynalites {
        engines.push(((*name).to_owned(), dynamodb(dynalite.address.clone())?));
    }
    if let Some(postgres) = &postgres {
        let script = postgres_put(3_000_000_000);
        let postgres_root = root.join("postgres");
        engines.push((
            format!(
                "PostgreSQL {} (pgbench over a unix socket)",
                postgres_version()
            ),
            Box::new(move |round, calls| {
                let name = format!("iput{round}");
                Ok(pgbench(postgres, &postgres_root, &name, &script, 1, calls)?.seconds)
            }),
        ));
    }
    let interleaved = Interleaved::run(engines, args.rounds, (args.calls / args.rounds).max(1))?;
    server.stop()?;
    Ok(interleaved)
}

/// The target of the baseline named `name`: Sluice's PutItem throughput over its.
fn target_of(name: &str) -> f64 {
    if name.starts_with("dynalite") {
        TARGET_DYNALITE_RATIO
    } else {
        TARGET_POSTGRES_RATIO
    }
}
