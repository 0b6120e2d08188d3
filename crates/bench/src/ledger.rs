//! `sluice-bench ledger`: the verifiable ledger (crate `sluice-ledger`: a group-committed
//! journal) against PostgreSQL 15 with a hash-chained audit table written by a trigger, the
//! setup AWS suggests when migrating off QLDB, and against the disk itself.
//!
//! One run measures, on one machine and one disk: the disk's own rate of fsync'd 4 KiB appends
//! (the ceiling of any durable commit path); single-document `INSERT` transactions embedded
//! (`begin`/`execute`/`commit`) from 1 thread and from `--clients` threads; the same through
//! QLDBSession over HTTP to a real `sluice up` (`ledger_session.rs`) from 1 and `--clients`
//! sessions; the fill rate of 40-document transactions (QLDB's per-transaction limit) up to
//! `--revisions` revisions, the ledger's size on disk then, and the latency of `revision` with
//! a proof against the digest at that size, checking that proofs fold to the digest; the read
//! path at that size with a cold page cache (`ledger_reads.rs`); and
//! `pgbench -c 1` and `-c --clients` doing the same single-row inserts into PostgreSQL with the
//! audit trigger.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ion_rs::Element;
use sluice_ledger::ledger::{JOURNAL_FILE_NAME, STATE_FILE_NAME};
use sluice_ledger::{BlockAddress, CheckpointStats, Ledger, Ledgers, Limits, SystemClock, hash};

use crate::interleave::{Interleaved, Slice};
use crate::ledger_session::{self, CommandMedians, CommandTimes, PreparedInsert, ms};
use crate::machine::Machine;
use crate::postgres::{Postgres, pgbench};
use crate::server::Server;

pub const BEGIN_MARKER: &str = "<!-- bench-ledger:begin -->";
pub const END_MARKER: &str = "<!-- bench-ledger:end -->";

/// The table both sides write.
pub(crate) const TABLE_NAME: &str = "VehicleRegistration";
/// Documents per fill transaction: QLDB's limit of documents written per transaction.
const FILL_DOCUMENTS_PER_TRANSACTION: u64 = 40;
/// Proofs whose fold to the digest is checked (besides being timed).
const PROOFS_CHECKED: usize = 20;
/// fsync'd 4 KiB appends timed to measure the disk's ceiling.
const DISK_CEILING_APPENDS: usize = 2_000;
/// Bytes of each ceiling append: a page, about one single-document block's frame.
const DISK_CEILING_APPEND_BYTES: usize = 4096;
/// The pause before each append of the paused ceiling: about what a client of the network path
/// leaves between two commits (three round trips and the engine's work).
const DISK_CEILING_PAUSE: Duration = Duration::from_micros(200);

/// The embedded runs' ledger (its directory is `<name>.ledger` in the data directory).
const LEDGER_NAME: &str = "bench";

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    /// Single-document INSERT transactions, on each side.
    #[arg(long, default_value_t = 5_000)]
    inserts: u64,
    /// Revisions in the ledger when proofs are timed (filled with 40-document transactions).
    #[arg(long, default_value_t = 1_000_000)]
    revisions: u64,
    /// Random revisions fetched with a proof.
    #[arg(long, default_value_t = 1_000)]
    proofs: usize,
    /// Seed of the document generator and the revision sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Concurrent clients of the concurrent runs (threads, sessions, pgbench clients).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Rounds of the interleaved one-client runs, the embedded engine with the disk and
    /// QLDBSession with PostgreSQL (`--inserts` calls per side in all).
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Skip the PostgreSQL baseline.
    #[arg(long)]
    skip_postgres: bool,
    /// Skip the runs through QLDBSession over HTTP.
    #[arg(long)]
    skip_http: bool,
    /// The `sluice` binary of the HTTP runs; defaults to the one next to this binary
    /// (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Write the results into this Markdown file between `<!-- bench-ledger:begin -->` and
    /// `<!-- bench-ledger:end -->` (appended if the markers are missing).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Latency percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut samples_ms: Vec<f64>) -> Latency {
        samples_ms.sort_by(f64::total_cmp);
        let percentile = |p: f64| {
            samples_ms
                .get(((samples_ms.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Latency {
            p50_ms: percentile(0.5),
            p99_ms: percentile(0.99),
            max_ms: percentile(1.0),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InsertResult {
    pub(crate) n_transactions: u64,
    pub(crate) seconds: f64,
    pub(crate) latency: Latency,
}

impl InsertResult {
    fn per_second(&self) -> f64 {
        self.n_transactions as f64 / self.seconds
    }
}

/// The checkpoints during one embedded run: while one runs, no transaction commits.
#[derive(Debug, Clone)]
struct CheckpointRow {
    run: String,
    seconds: f64,
    stats: CheckpointStats,
}

impl CheckpointRow {
    /// The checkpoints since the last call, for the run just finished.
    fn take(run: &str, seconds: f64, ledger: &Ledger) -> CheckpointRow {
        let stats = ledger.take_checkpoint_stats();
        eprintln!(
            "sluice checkpoints, {run}: {} holding the writers {:.1} ms at most, {:.1} ms together",
            stats.count,
            stats.max.as_secs_f64() * 1e3,
            stats.total.as_secs_f64() * 1e3
        );
        CheckpointRow {
            run: run.to_owned(),
            seconds,
            stats,
        }
    }
}

#[derive(Debug, Clone)]
struct ProofResult {
    n_revisions: u64,
    fill_transactions: u64,
    fill_seconds: f64,
    n_proofs: usize,
    latency: Latency,
    proofs_checked: usize,
    proof_length_mean: f64,
    ledger_bytes: u64,
}

#[derive(Debug, Clone)]
struct PostgresResult {
    version: String,
    inserts: InsertResult,
    concurrent: InsertResult,
    audit_rows: u64,
    chain_verified: bool,
}

/// The runs through QLDBSession over HTTP.
#[derive(Debug, Clone)]
struct HttpResult {
    single: InsertResult,
    /// The 1-client run on a node that does not index its ledgers into search.
    unindexed: InsertResult,
    /// Medians of each command of that run.
    unindexed_commands: CommandMedians,
    /// One round trip of a command that does no ledger work, 1 client, back to back.
    bare_round_trip: Latency,
    /// The same right after each commit of a run of transactions, the node's threads parked:
    /// what a transaction's commands meet.
    round_trip_after_commit: Latency,
    concurrent: InsertResult,
}

/// Xorshift64*: a few lines instead of a dependency, deterministic from the seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6D_CE1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const MAKES: &[(&str, &str)] = &[
    ("Mercedes", "CLK 350"),
    ("Ford", "Mustang"),
    ("Tesla", "Model S"),
    ("Toyota", "Corolla"),
    ("Honda", "Civic"),
    ("Volkswagen", "Golf"),
];
const CITIES: &[(&str, &str)] = &[
    ("Everett", "WA"),
    ("Seattle", "WA"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("Boston", "MA"),
];
const COLORS: &[&str] = &["Green", "Blue", "Red", "White", "Black", "Silver"];

/// The fields of one vehicle registration, generated from `(seed, n)`.
struct Registration {
    vin: String,
    year: u64,
    make: &'static str,
    model: &'static str,
    color: &'static str,
    plate: String,
    city: &'static str,
    state: &'static str,
    penalty_cents: u64,
    valid_from: String,
    valid_to: String,
    owner: String,
}

/// Document `n`'s VIN: unique, so a lookup by it finds exactly that document.
pub(crate) fn vin(n: u64) -> String {
    format!("1N4AL11D7{n:08}")
}

impl Registration {
    fn generate(seed: u64, n: u64) -> Registration {
        let mut rng = Rng::new(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let (make, model) = MAKES[rng.below(MAKES.len() as u64) as usize];
        let (city, state) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let year = 2000 + rng.below(25);
        let month = 1 + rng.below(12);
        let day = 1 + rng.below(28);
        Registration {
            vin: vin(n),
            year,
            make,
            model,
            color: COLORS[rng.below(COLORS.len() as u64) as usize],
            plate: format!("LP{:06}", rng.below(1_000_000)),
            city,
            state,
            penalty_cents: rng.below(100_000),
            valid_from: format!("{year:04}-{month:02}-{day:02}"),
            valid_to: format!("{:04}-{month:02}-{day:02}", year + 2),
            owner: format!("{:012}", rng.below(1_000_000_000_000)),
        }
    }

    /// Ion text, as a QLDB driver's parameter would carry it.
    fn ion(&self) -> anyhow::Result<Element> {
        let text = format!(
            "{{VIN: \"{}\", Year: {}, Make: \"{}\", Model: \"{}\", Color: \"{}\", \
             LicensePlateNumber: \"{}\", City: \"{}\", State: \"{}\", \
             PendingPenaltyTicketAmount: {}.{:02}d0, ValidFromDate: {}T, ValidToDate: {}T, \
             PrimaryOwner: \"{}\"}}",
            self.vin,
            self.year,
            self.make,
            self.model,
            self.color,
            self.plate,
            self.city,
            self.state,
            self.penalty_cents / 100,
            self.penalty_cents % 100,
            self.valid_from,
            self.valid_to,
            self.owner
        );
        Ok(Element::read_one(text)?)
    }
}

pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    ensure!(args.inserts > 0, "--inserts must be positive");
    ensure!(args.clients > 0, "--clients must be positive");
    ensure!(args.rounds > 0, "--rounds must be positive");
    ensure!(
        args.revisions >= 3 * args.inserts,
        "--revisions must be at least three times --inserts (the single inserts of the three embedded runs are part of the ledger)"
    );
    let sluice = crate::server::sluice_path(args.sluice.as_deref())?;
    if !args.skip_http {
        ensure!(
            sluice.is_file(),
            "no sluice binary at {} (cargo build --release -p sluice, or --skip-http)",
            sluice.display()
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-ledger")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let load_average_before = machine.load_average;
    eprintln!(
        "machine: {} × {}, {:.1} GiB RAM, {:.0} fsyncs/s, load average {:.1}",
        machine.n_cpus,
        machine.cpu_model,
        machine.memory_bytes as f64 / (1u64 << 30) as f64,
        machine.fsyncs_per_second,
        machine.load_average
    );
    let disk = disk_ceiling(scratch.path(), false, Duration::ZERO)?;
    report_inserts("disk, fsync'd 4 KiB appends", &disk);
    let disk_zero_filled = disk_ceiling(scratch.path(), true, Duration::ZERO)?;
    report_inserts(
        "disk, fsync'd 4 KiB writes over a zero-filled file",
        &disk_zero_filled,
    );
    let disk_paused = disk_ceiling(scratch.path(), true, DISK_CEILING_PAUSE)?;
    report_inserts(
        "disk, fsync'd 4 KiB writes over a zero-filled file, each after a pause (pauses not counted)",
        &disk_paused,
    );

    let ledger_dir = scratch.path().join("ledgers");
    fs::create_dir_all(&ledger_dir)?;
    let ledgers = Ledgers::open_dir(&ledger_dir, Arc::new(SystemClock), Limits::default())
        .context("opening the ledgers")?;
    let ledger = ledgers.create_ledger(LEDGER_NAME, false)?;
    ledger.execute(&format!("CREATE TABLE {TABLE_NAME}"), &[])?;

    let mut written: Vec<(u64, String)> = Vec::with_capacity(args.revisions as usize);
    let mut checkpoints = Vec::new();
    // The checkpoints of the ledger's creation are none of the runs'.
    ledger.take_checkpoint_stats();
    let (sluice_inserts, _) = sluice_single_inserts(
        &ledger,
        &args,
        0..args.inserts,
        1,
        Duration::ZERO,
        &mut written,
    )?;
    report_inserts("sluice embedded, 1 client", &sluice_inserts);
    checkpoints.push(CheckpointRow::take(
        "1 client",
        sluice_inserts.seconds,
        &ledger,
    ));
    let (sluice_paused, sluice_paused_calls) = sluice_single_inserts(
        &ledger,
        &args,
        args.inserts..2 * args.inserts,
        1,
        DISK_CEILING_PAUSE,
        &mut written,
    )?;
    report_inserts(
        "sluice embedded, 1 client, each transaction after a pause (pauses not counted)",
        &sluice_paused,
    );
    eprintln!(
        "  calls' p50: begin {:.3} ms, execute {:.3} ms, commit {:.3} ms",
        sluice_paused_calls.start_ms, sluice_paused_calls.execute_ms, sluice_paused_calls.commit_ms
    );
    checkpoints.push(CheckpointRow::take(
        "1 client, each transaction after a pause",
        sluice_paused.seconds,
        &ledger,
    ));
    let (sluice_concurrent, _) = sluice_single_inserts(
        &ledger,
        &args,
        2 * args.inserts..3 * args.inserts,
        args.clients,
        Duration::ZERO,
        &mut written,
    )?;
    report_inserts(
        &format!("sluice embedded, {} clients", args.clients),
        &sluice_concurrent,
    );
    checkpoints.push(CheckpointRow::take(
        &format!("{} clients", args.clients),
        sluice_concurrent.seconds,
        &ledger,
    ));
    // The fill maintains an index on VIN for the read rows; created after the insert runs, so
    // those stay comparable with PostgreSQL's table, which has only its primary key.
    ledger.execute(&format!("CREATE INDEX ON {TABLE_NAME} (VIN)"), &[])?;
    let proofs = sluice_proofs(&ledger, &args, &mut written, &ledger_dir)?;
    checkpoints.push(CheckpointRow::take(
        &format!(
            "the fill to {} revisions, {FILL_DOCUMENTS_PER_TRANSACTION} documents per transaction, with an index",
            args.revisions
        ),
        proofs.fill_seconds,
        &ledger,
    ));
    let digest = ledger.digest()?.context("the ledger has no digest")?;
    let reads = crate::ledger_reads::sluice_reads(
        &ledger,
        &written,
        &digest,
        args.proofs,
        args.seed,
        &ledger_dir,
    )?;
    drop(written);
    drop(ledger);
    drop(ledgers);
    // The filled ledger is not needed any more: its disk space goes back before the next runs.
    fs::remove_dir_all(&ledger_dir)?;
    let interleaved_embedded = interleaved_embedded(scratch.path(), &args)?;
    eprintln!(
        "{}",
        interleaved_embedded.markdown("transactions", disk_target)
    );

    let http = if args.skip_http {
        None
    } else {
        Some(sluice_http(&sluice, &args, scratch.path())?)
    };
    let postgres = if args.skip_postgres {
        None
    } else {
        Some(postgres_baseline(&args, scratch.path())?)
    };
    let interleaved = if args.skip_http || args.skip_postgres {
        None
    } else {
        let interleaved = interleaved_one_client(&sluice, &args, scratch.path())?;
        eprintln!("{}", interleaved.markdown("transactions", postgres_target));
        Some(interleaved)
    };
    let report = LedgerReport {
        machine,
        load_average_before,
        load_average_after: crate::machine::load_average(),
        date_utc: crate::report::utc_date(),
        command: command_line(&args),
        clients: args.clients,
        disk,
        disk_zero_filled,
        disk_paused,
        sluice_inserts,
        sluice_paused,
        sluice_paused_calls,
        sluice_concurrent,
        http,
        proofs,
        checkpoints,
        reads,
        postgres,
        interleaved_embedded,
        interleaved,
    };
    println!("{}", report.markdown());
    if let Some(path) = &args.report {
        report.write_into(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn report_inserts(what: &str, result: &InsertResult) {
    eprintln!(
        "{what}: {} in {:.1} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms",
        result.n_transactions,
        result.seconds,
        result.per_second(),
        result.latency.p50_ms,
        result.latency.p99_ms
    );
}

/// The disk's own ceiling for a durable append path: `DISK_CEILING_APPENDS` appends of 4 KiB,
/// each followed by `fdatasync`, as the journal's group commit does with one block per group.
/// Into a new file that grows with each append, or (`zero_filled`) over a file zero-filled and
/// fsynced beforehand, as the journal's pre-allocated room is, so each fsync flushes data only.
/// With a `pause`, the thread sleeps that long before each append, as a server waits for the
/// next commit of a client over the network; the rate then counts the appends' own time only.
/// On a virtual machine an fsync after an idle pause can take many times one made back to back.
fn disk_ceiling(
    scratch: &Path,
    zero_filled: bool,
    pause: Duration,
) -> anyhow::Result<InsertResult> {
    disk_appends(scratch, DISK_CEILING_APPENDS, zero_filled, pause)
}

/// [`disk_ceiling`] of `appends` appends.
fn disk_appends(
    scratch: &Path,
    appends: usize,
    zero_filled: bool,
    pause: Duration,
) -> anyhow::Result<InsertResult> {
    use std::os::unix::fs::FileExt as _;
    let path = scratch.join("disk-ceiling");
    let file = fs::File::create(&path)?;
    if zero_filled {
        file.write_all_at(&vec![0u8; appends * DISK_CEILING_APPEND_BYTES], 0)?;
        file.sync_all()?;
    }
    let block = vec![0x5a_u8; DISK_CEILING_APPEND_BYTES];
    let mut latencies_ms = Vec::with_capacity(appends);
    let started = Instant::now();
    for n in 0..appends {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let sent = Instant::now();
        file.write_all_at(&block, (n * DISK_CEILING_APPEND_BYTES) as u64)?;
        file.sync_data()?;
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let seconds = if pause.is_zero() {
        started.elapsed().as_secs_f64()
    } else {
        latencies_ms.iter().sum::<f64>() / 1000.0
    };
    drop(file);
    fs::remove_file(&path)?;
    Ok(InsertResult {
        n_transactions: appends as u64,
        seconds,
        latency: Latency::of(latencies_ms),
    })
}

/// The runs through QLDBSession: a real `sluice up` on ephemeral ports with its own data
/// directory, a ledger created through the control plane, then `--inserts` transactions from 1
/// session and `--inserts` from `--clients` sessions; then the 1-session run again on a node
/// that does not index its ledgers into search, which leaves the network path alone on top of
/// the engine.
fn sluice_http(sluice: &Path, args: &LedgerArgs, scratch: &Path) -> anyhow::Result<HttpResult> {
    let statement = format!("INSERT INTO {TABLE_NAME} ?");
    let prepare = |range: std::ops::Range<u64>| {
        range
            .map(|n| PreparedInsert::new(&statement, &Registration::generate(args.seed, n).ion()?))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let (single, concurrent) = with_server(sluice, scratch, &[], |aws_address, ledger| {
        let (single, _) = ledger_session::run_clients(
            aws_address,
            ledger,
            &statement,
            &prepare(0..args.inserts)?,
            1,
        )?;
        report_inserts("sluice QLDBSession, 1 client", &single);
        let (concurrent, _) = ledger_session::run_clients(
            aws_address,
            ledger,
            &statement,
            &prepare(args.inserts..2 * args.inserts)?,
            args.clients,
        )?;
        report_inserts(
            &format!("sluice QLDBSession, {} clients", args.clients),
            &concurrent,
        );
        Ok((single, concurrent))
    })?;
    let config = scratch.join("no-ledger-indexing.json");
    fs::write(&config, r#"{"ledger_indexing": {"enabled": false}}"#)?;
    let config = config.to_str().context("the scratch path is not UTF-8")?;
    let (unindexed, unindexed_commands, (bare_round_trip, round_trip_after_commit)) = with_server(
        sluice,
        scratch,
        &["--config", config],
        |aws_address, ledger| {
            let count = usize::try_from(args.inserts)?;
            let bare_round_trip = ledger_session::bare_round_trips(aws_address, ledger, count)?;
            let round_trip_after_commit = ledger_session::round_trips_after_commits(
                aws_address,
                ledger,
                &statement,
                &prepare(args.inserts..args.inserts + args.inserts.div_ceil(2))?,
            )?;
            eprintln!(
                "  sluice QLDBSession, a round trip with no ledger work: p50 {:.3} ms back to back, {:.3} ms right after a commit",
                bare_round_trip.p50_ms, round_trip_after_commit.p50_ms
            );
            let (unindexed, commands) = ledger_session::run_clients(
                aws_address,
                ledger,
                &statement,
                &prepare(0..args.inserts)?,
                1,
            )?;
            report_inserts(
                "sluice QLDBSession, 1 client, ledger indexing off",
                &unindexed,
            );
            eprintln!(
                "  commands' p50: StartTransaction {:.3} ms, ExecuteStatement {:.3} ms, CommitTransaction {:.3} ms",
                commands.start_ms, commands.execute_ms, commands.commit_ms
            );
            Ok((
                unindexed,
                commands,
                (bare_round_trip, round_trip_after_commit),
            ))
        },
    )?;
    Ok(HttpResult {
        single,
        unindexed,
        unindexed_commands,
        bare_round_trip,
        round_trip_after_commit,
        concurrent,
    })
}

/// Runs `run` against a fresh `sluice up` (started with `extra` arguments) holding the ledger
/// `bench-http` with the benchmark's table; stops the node and removes its data afterwards.
fn with_server<T>(
    sluice: &Path,
    scratch: &Path,
    extra: &[&str],
    run: impl FnOnce(&str, &str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let data_dir = scratch.join("sluice-data");
    let server = Server::start_with(sluice, &data_dir, &scratch.join("sluice.log"), extra)?;
    eprintln!(
        "sluice pid {}: AWS APIs on {}",
        server.pid(),
        server.aws_address
    );
    let result = (|| -> anyhow::Result<T> {
        let ledger = "bench-http";
        ledger_session::create_ledger(&server.aws_address, ledger, TABLE_NAME)?;
        run(&server.aws_address, ledger)
    })();
    let log_tail = server.log_tail();
    server.stop()?;
    fs::remove_dir_all(&data_dir)?;
    result.with_context(|| format!("sluice's log ends with:\n{log_tail}"))
}

fn command_line(args: &LedgerArgs) -> String {
    let mut line = format!(
        "cargo build --release -p sluice -p sluice-bench && target/release/sluice-bench ledger --inserts {} --revisions {} --proofs {} --clients {}",
        args.inserts, args.revisions, args.proofs, args.clients
    );
    if args.seed != 42 {
        line.push_str(&format!(" --seed {}", args.seed));
    }
    if args.rounds != 10 {
        line.push_str(&format!(" --rounds {}", args.rounds));
    }
    line
}

/// The document id of an INSERT's result `{documentId: "..."}`.
fn document_id(result: &Element) -> anyhow::Result<String> {
    result
        .as_struct()
        .and_then(|s| s.get("documentId"))
        .and_then(Element::as_text)
        .map(str::to_owned)
        .context("an INSERT returned no documentId")
}

/// Transactions of one `INSERT INTO T ?` each for the documents numbered `range`, from
/// `clients` threads at once (each its own share, in order), each timed from `begin` to the
/// return of `commit`. With a `pause`, each client sleeps that long before each transaction (not
/// timed), leaving the disk idle between commits as a client of the network path does.
/// Records every written document's block and id; returns the run and the medians of its
/// calls.
fn sluice_single_inserts(
    ledger: &Arc<Ledger>,
    args: &LedgerArgs,
    range: std::ops::Range<u64>,
    clients: usize,
    pause: Duration,
    written: &mut Vec<(u64, String)>,
) -> anyhow::Result<(InsertResult, CommandMedians)> {
    type Outcome = anyhow::Result<(Vec<f64>, Vec<CommandTimes>, Vec<(u64, String)>, Duration)>;
    let statement = format!("INSERT INTO {TABLE_NAME} ?");
    // Documents are built before the clock starts, as a driver would hold them already.
    let documents = range
        .map(|n| Registration::generate(args.seed, n).ion())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shares: Vec<&[Element]> = documents
        .chunks(documents.len().div_ceil(clients.max(1)).max(1))
        .collect();
    let barrier = Barrier::new(shares.len() + 1);
    let (seconds, outcomes) = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let (barrier, statement) = (&barrier, &statement);
                scope.spawn(move || -> Outcome {
                    barrier.wait();
                    let mut latencies_ms = Vec::with_capacity(share.len());
                    let mut calls = Vec::with_capacity(share.len());
                    let mut ids = Vec::with_capacity(share.len());
                    let mut paused = Duration::ZERO;
                    for document in share.iter() {
                        if !pause.is_zero() {
                            let sleeping = Instant::now();
                            std::thread::sleep(pause);
                            paused += sleeping.elapsed();
                        }
                        let sent = Instant::now();
                        let mut transaction = ledger.begin()?;
                        let begun = Instant::now();
                        let results =
                            transaction.execute(statement, std::slice::from_ref(document))?;
                        let executed = Instant::now();
                        let commit = transaction.commit()?;
                        let committed = Instant::now();
                        latencies_ms.push(ms(committed - sent));
                        calls.push(CommandTimes {
                            start_ms: ms(begun - sent),
                            execute_ms: ms(executed - begun),
                            commit_ms: ms(committed - executed),
                        });
                        let block = commit
                            .block_address
                            .context("an INSERT committed no block")?;
                        for result in &results {
                            ids.push((block.sequence_no, document_id(result)?));
                        }
                    }
                    Ok((latencies_ms, calls, ids, paused))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let outcomes: Vec<Outcome> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect();
        (started.elapsed().as_secs_f64(), outcomes)
    });
    let mut latencies_ms = Vec::with_capacity(documents.len());
    let mut calls = Vec::with_capacity(documents.len());
    let mut paused_most = Duration::ZERO;
    for outcome in outcomes {
        let (latencies, call_times, ids, paused) = outcome?;
        latencies_ms.extend(latencies);
        calls.extend(call_times);
        written.extend(ids);
        paused_most = paused_most.max(paused);
    }
    Ok((
        InsertResult {
            n_transactions: latencies_ms.len() as u64,
            // The pauses are not the engine's time (exact for one client, the run's use).
            seconds: (seconds - paused_most.as_secs_f64()).max(1e-9),
            latency: Latency::of(latencies_ms),
        },
        CommandMedians::of(&calls),
    ))
}

/// Fills the ledger to `--revisions` with 40-document transactions, takes the digest, then times
/// `revision` with a proof for `--proofs` random revisions.
fn sluice_proofs(
    ledger: &Arc<Ledger>,
    args: &LedgerArgs,
    written: &mut Vec<(u64, String)>,
    ledger_dir: &Path,
) -> anyhow::Result<ProofResult> {
    let statement = format!("INSERT INTO {TABLE_NAME} ?");
    let mut n = written.len() as u64;
    let filled_before = n;
    let mut fill_transactions = 0u64;
    let started = Instant::now();
    let mut last_report = Instant::now();
    while n < args.revisions {
        let batch_end = (n + FILL_DOCUMENTS_PER_TRANSACTION).min(args.revisions);
        let mut transaction = ledger.begin()?;
        let mut ids = Vec::with_capacity(FILL_DOCUMENTS_PER_TRANSACTION as usize);
        for i in n..batch_end {
            let document = Registration::generate(args.seed, i).ion()?;
            for result in transaction.execute(&statement, &[document])? {
                ids.push(document_id(&result)?);
            }
        }
        let commit = transaction.commit()?;
        let block = commit
            .block_address
            .context("a fill transaction committed no block")?;
        written.extend(ids.into_iter().map(|id| (block.sequence_no, id)));
        fill_transactions += 1;
        n = batch_end;
        if last_report.elapsed() >= Duration::from_secs(2) {
            let seconds = started.elapsed().as_secs_f64();
            eprint!(
                "\rsluice: filled {n} of {} revisions ({:.0} revisions/s)",
                args.revisions,
                (n - filled_before) as f64 / seconds
            );
            last_report = Instant::now();
        }
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    let ledger_bytes = directory_bytes(ledger_dir);
    eprintln!();
    for file in [JOURNAL_FILE_NAME, STATE_FILE_NAME] {
        let path = ledger_dir.join(format!("{LEDGER_NAME}.ledger")).join(file);
        let bytes = fs::metadata(&path).map_or(0, |m| m.len());
        eprintln!("sluice: {file} {}", human_bytes(bytes as f64));
    }
    ensure!(
        written.len() as u64 == args.revisions,
        "collected {} revisions, expected {}",
        written.len(),
        args.revisions
    );

    let digest = ledger.digest()?.context("the ledger has no digest")?;
    let strand_id = digest.digest_tip_address.strand_id.clone();
    let mut rng = Rng::new(args.seed.wrapping_add(1));
    let mut latencies_ms = Vec::with_capacity(args.proofs);
    let mut proofs_checked = 0;
    let mut proof_hashes = 0usize;
    for k in 0..args.proofs {
        let (sequence_no, id) = &written[rng.below(written.len() as u64) as usize];
        let address = BlockAddress {
            strand_id: strand_id.clone(),
            sequence_no: *sequence_no,
        };
        let sent = Instant::now();
        let found = ledger.revision(&address, id, Some(&digest.digest_tip_address))?;
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        let proof = found.proof.context("revision returned no proof")?;
        proof_hashes += proof.len();
        if k < PROOFS_CHECKED {
            // Recompute the revision hash from its content, as a client would, then fold.
            let recomputed = hash::revision_hash(
                &found.revision.metadata.to_element(),
                found.revision.data.as_ref(),
            )?;
            ensure!(
                recomputed == found.revision.hash,
                "revision {id} in block {sequence_no}: its hash does not match its content"
            );
            ensure!(
                hash::fold_proof(&recomputed, &proof) == digest.digest,
                "revision {id} in block {sequence_no}: the proof does not fold to the digest"
            );
            proofs_checked += 1;
        }
    }
    let latency = Latency::of(latencies_ms);
    eprintln!(
        "sluice: {} revisions filled in {:.1} s; revision+proof p50 {:.3} ms, p99 {:.3} ms; {proofs_checked} proofs fold to the digest",
        args.revisions, fill_seconds, latency.p50_ms, latency.p99_ms
    );
    Ok(ProofResult {
        n_revisions: args.revisions,
        fill_transactions,
        fill_seconds,
        n_proofs: args.proofs,
        latency,
        proofs_checked,
        proof_length_mean: proof_hashes as f64 / args.proofs.max(1) as f64,
        ledger_bytes,
    })
}

/// Bytes as B, KiB or MiB with one decimal.
fn human_bytes(bytes: f64) -> String {
    if bytes < 1024.0 {
        format!("{bytes:.0} B")
    } else if bytes < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => directory_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The schema: documents as JSONB, and an audit table whose rows each carry the revision, the
/// previous row's hash and sha256(previous hash || revision), written by a trigger that locks the
/// audit table so the chain stays linear.
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE vehicle_registration (id bigserial PRIMARY KEY, doc jsonb NOT NULL);
CREATE TABLE vehicle_registration_audit (
    seq bigserial PRIMARY KEY,
    doc_id bigint NOT NULL,
    op text NOT NULL,
    revision jsonb NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE FUNCTION vehicle_registration_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
    revision jsonb;
BEGIN
    LOCK TABLE vehicle_registration_audit IN EXCLUSIVE MODE;
    SELECT hash INTO previous FROM vehicle_registration_audit ORDER BY seq DESC LIMIT 1;
    previous := coalesce(previous, '\x'::bytea);
    revision := jsonb_build_object('id', NEW.id, 'data', NEW.doc, 'op', TG_OP,
                                   'txId', txid_current(), 'txTime', now());
    INSERT INTO vehicle_registration_audit (doc_id, op, revision, prev_hash, hash)
    VALUES (NEW.id, TG_OP, revision, previous,
            sha256(previous || convert_to(revision::text, 'UTF8')));
    RETURN NEW;
END $$;
CREATE TRIGGER vehicle_registration_audit AFTER INSERT OR UPDATE ON vehicle_registration
    FOR EACH ROW EXECUTE FUNCTION vehicle_registration_audit();
"#;

/// One single-row INSERT per pgbench transaction; the document has the same fields as the
/// ledger's, generated from pgbench's random numbers.
const PGBENCH_SCRIPT: &str = r#"\set n random(1, 1000000000)
\set year random(2000, 2024)
\set plate random(0, 999999)
\set cents random(0, 99999)
INSERT INTO vehicle_registration (doc) VALUES (jsonb_build_object(
    'VIN', '1N4AL11D7' || lpad(:n::text, 10, '0'), 'Year', :year,
    'Make', (ARRAY['Mercedes','Ford','Tesla','Toyota','Honda','Volkswagen'])[1 + :n % 6],
    'Model', (ARRAY['CLK 350','Mustang','Model S','Corolla','Civic','Golf'])[1 + :n % 6],
    'Color', (ARRAY['Green','Blue','Red','White','Black','Silver'])[1 + :plate % 6],
    'LicensePlateNumber', 'LP' || lpad(:plate::text, 6, '0'),
    'City', (ARRAY['Everett','Seattle','Portland','Austin','Boston'])[1 + :n % 5],
    'State', (ARRAY['WA','WA','OR','TX','MA'])[1 + :n % 5],
    'PendingPenaltyTicketAmount', :cents / 100.0,
    'ValidFromDate', make_date(:year, 1 + :n % 12, 1 + :n % 28),
    'ValidToDate', make_date(:year + 2, 1 + :n % 12, 1 + :n % 28),
    'PrimaryOwner', lpad(((:n::bigint * 7919) % 1000000000000)::text, 12, '0')));
"#;

/// Re-walks the audit chain in SQL: every row's prev_hash is the previous row's hash and its hash
/// is sha256(prev_hash || revision). Returns the number of rows that fail either check.
const POSTGRES_VERIFY_CHAIN: &str = "SELECT count(*) FROM (SELECT hash, prev_hash, revision, \
     lag(hash, 1, '\\x'::bytea) OVER (ORDER BY seq) AS expected_prev FROM vehicle_registration_audit) a \
     WHERE prev_hash <> expected_prev OR hash <> sha256(prev_hash || convert_to(revision::text, 'UTF8'))";

/// A PostgreSQL 15 under `root` with the audit schema: the server, its version, and the path
/// of pgbench's insert script.
fn start_audit_postgres(root: &Path) -> anyhow::Result<(Postgres, String, PathBuf)> {
    // fsync and synchronous_commit are left at their defaults (on); stated anyway.
    let postgres = Postgres::start(
        root,
        "-c fsync=on -c synchronous_commit=on -c shared_buffers=256MB",
    )?;
    let version = postgres.psql("SHOW server_version")?;
    eprintln!("postgres {version} started in {}", root.display());
    postgres.psql(POSTGRES_SCHEMA)?;
    let script = root.join("insert.sql");
    fs::write(&script, PGBENCH_SCRIPT)?;
    Ok((postgres, version, script))
}

fn postgres_baseline(args: &LedgerArgs, scratch: &Path) -> anyhow::Result<PostgresResult> {
    let root = scratch.join("postgres");
    let (postgres, version, script) = start_audit_postgres(&root)?;
    let inserts = pgbench(&postgres, &root, &script, "insert", 1, args.inserts)?;
    report_inserts("postgres, 1 client", &inserts);
    let concurrent = pgbench(
        &postgres,
        &root,
        &script,
        "insert",
        args.clients,
        args.inserts,
    )?;
    report_inserts(&format!("postgres, {} clients", args.clients), &concurrent);
    let audit_rows: u64 = postgres
        .psql("SELECT count(*) FROM vehicle_registration_audit")?
        .parse()?;
    let expected_rows = inserts.n_transactions + concurrent.n_transactions;
    ensure!(
        audit_rows == expected_rows,
        "{audit_rows} audit rows, expected {expected_rows}"
    );
    let broken_links: u64 = postgres.psql(POSTGRES_VERIFY_CHAIN)?.parse()?;
    let result = PostgresResult {
        version,
        inserts,
        concurrent,
        audit_rows,
        chain_verified: broken_links == 0,
    };
    eprintln!(
        "postgres: audit chain {}",
        if result.chain_verified {
            "verified"
        } else {
            "BROKEN"
        }
    );
    drop(postgres);
    fs::remove_dir_all(&root)?;
    Ok(result)
}

/// One-client single-document transactions through QLDBSession (a `sluice up` and Sluice's own
/// client) and through pgbench into PostgreSQL with the audit trigger, interleaved round by
/// round ([`Interleaved`]): both wait for one durable write per transaction, so run one after
/// the other they can meet different disks.
fn interleaved_one_client(
    sluice: &Path,
    args: &LedgerArgs,
    scratch: &Path,
) -> anyhow::Result<Interleaved> {
    let root = scratch.join("postgres-interleaved");
    let (postgres, version, script) = start_audit_postgres(&root)?;
    let statement = format!("INSERT INTO {TABLE_NAME} ?");
    let interleaved = with_server(sluice, scratch, &[], |aws_address, ledger| {
        let engines: Vec<(String, Slice<'_>)> = vec![
            (
                "Sluice, QLDBSession over HTTP (`sluice up`, Sluice's own client)".to_owned(),
                Box::new(|round, calls| {
                    // Documents of their own per round, past those of the other runs.
                    let first = 10 * args.inserts + round * calls;
                    let inserts = (first..first + calls)
                        .map(|n| {
                            let document = Registration::generate(args.seed, n).ion()?;
                            PreparedInsert::new(&statement, &document)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let (run, _) =
                        ledger_session::run_clients(aws_address, ledger, &statement, &inserts, 1)?;
                    Ok(run.seconds)
                }),
            ),
            (
                format!("PostgreSQL {version} with the audit trigger (pgbench)"),
                Box::new(|round, calls| {
                    let name = format!("interleaved{round}");
                    Ok(pgbench(&postgres, &root, &script, &name, 1, calls)?.seconds)
                }),
            ),
        ];
        Interleaved::run(engines, args.rounds, (args.inserts / args.rounds).max(1))
    })?;
    drop(postgres);
    fs::remove_dir_all(&root)?;
    Ok(interleaved)
}

/// One-client transactions of the embedded engine, in a fresh ledger, and the disk's fsync'd
/// 4 KiB appends into a new file (the report's first row), interleaved round by round
/// ([`Interleaved`]): one after the other they can meet different disks.
fn interleaved_embedded(scratch: &Path, args: &LedgerArgs) -> anyhow::Result<Interleaved> {
    let dir = scratch.join("ledgers-interleaved");
    fs::create_dir_all(&dir)?;
    let ledgers = Ledgers::open_dir(&dir, Arc::new(SystemClock), Limits::default())
        .context("opening the ledgers")?;
    let ledger = ledgers.create_ledger(LEDGER_NAME, false)?;
    ledger.execute(&format!("CREATE TABLE {TABLE_NAME}"), &[])?;
    let engines: Vec<(String, Slice<'_>)> = vec![
        (
            "Sluice ledger, embedded, `begin`/`execute`/`commit`".to_owned(),
            Box::new(|round, calls| {
                let first = round * calls;
                let mut written = Vec::new();
                let (run, _) = sluice_single_inserts(
                    &ledger,
                    args,
                    first..first + calls,
                    1,
                    Duration::ZERO,
                    &mut written,
                )?;
                Ok(run.seconds)
            }),
        ),
        (
            "the disk alone: 4 KiB appends, each `fdatasync`ed".to_owned(),
            Box::new(|_, calls| {
                Ok(disk_appends(scratch, usize::try_from(calls)?, false, Duration::ZERO)?.seconds)
            }),
        ),
    ];
    let interleaved = Interleaved::run(engines, args.rounds, (args.inserts / args.rounds).max(1))?;
    drop(ledger);
    drop(ledgers);
    fs::remove_dir_all(&dir)?;
    Ok(interleaved)
}

/// The target of the embedded engine against the disk named `name`: 0.8 of its appends/s.
fn disk_target(name: &str) -> Option<f64> {
    name.starts_with("the disk").then_some(0.8)
}

/// The target of the interleaved run against the baseline named `name`: at least PostgreSQL's
/// one-client transactions/s.
fn postgres_target(name: &str) -> Option<f64> {
    name.starts_with("PostgreSQL").then_some(1.0)
}

struct LedgerReport {
    machine: Machine,
    load_average_before: f64,
    load_average_after: f64,
    date_utc: String,
    command: String,
    clients: usize,
    disk: InsertResult,
    disk_zero_filled: InsertResult,
    disk_paused: InsertResult,
    sluice_inserts: InsertResult,
    /// One client, each transaction after [`DISK_CEILING_PAUSE`]: the engine as a network
    /// client's commits find the disk.
    sluice_paused: InsertResult,
    /// The medians of that run's `begin`, `execute` and `commit`.
    sluice_paused_calls: CommandMedians,
    sluice_concurrent: InsertResult,
    http: Option<HttpResult>,
    proofs: ProofResult,
    /// How long checkpoints held the writers during each embedded run.
    checkpoints: Vec<CheckpointRow>,
    reads: Vec<crate::ledger_reads::ReadRow>,
    postgres: Option<PostgresResult>,
    /// The embedded engine and the disk's fsync'd appends at one client, interleaved.
    interleaved_embedded: Interleaved,
    /// QLDBSession and PostgreSQL at one client, interleaved round by round.
    interleaved: Option<Interleaved>,
}

impl LedgerReport {
    fn markdown(&self) -> String {
        let m = &self.machine;
        let s = &self.sluice_inserts;
        let p = &self.proofs;
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN_MARKER}");
        let _ = writeln!(
            out,
            "## Verifiable ledger: Sluice versus PostgreSQL with a hash-chained audit table, and the disk\n"
        );
        let _ = writeln!(
            out,
            "{}\n",
            m.measured_on(
                &self.date_utc,
                self.load_average_before,
                self.load_average_after
            )
        );
        let _ = writeln!(out, "```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            out,
            "| single-document INSERT transactions | clients | transactions/s | commit p50 | commit p99 | max |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
        let mut row = |label: &str, clients: usize, result: &InsertResult| {
            let _ = writeln!(
                out,
                "| {label} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                result.per_second(),
                result.latency.p50_ms,
                result.latency.p99_ms,
                result.latency.max_ms
            );
        };
        row(
            "the disk alone: 4 KiB appends, each `fdatasync`ed (the ceiling of a durable commit path)",
            1,
            &self.disk,
        );
        row(
            "the disk alone: 4 KiB writes over a zero-filled file, each `fdatasync`ed (the ceiling of a pre-allocated journal)",
            1,
            &self.disk_zero_filled,
        );
        row(
            &format!(
                "the disk alone: the same, each write after a pause of {} µs, as a server finds the disk between a network client's commits (the pauses not counted)",
                DISK_CEILING_PAUSE.as_micros()
            ),
            1,
            &self.disk_paused,
        );
        row(
            "Sluice ledger, embedded, `begin`/`execute`/`commit` (group-committed journal)",
            1,
            s,
        );
        row(
            &format!(
                "Sluice ledger, embedded, each transaction after a pause of {} µs, as a network client's commits find the disk (the pauses not counted)",
                DISK_CEILING_PAUSE.as_micros()
            ),
            1,
            &self.sluice_paused,
        );
        row(
            "Sluice ledger, embedded, one thread per client",
            self.clients,
            &self.sluice_concurrent,
        );
        if let Some(http) = &self.http {
            row(
                "Sluice ledger through QLDBSession over HTTP (`sluice up`, one keep-alive connection and session per client)",
                1,
                &http.single,
            );
            row(
                "Sluice ledger through QLDBSession over HTTP",
                self.clients,
                &http.concurrent,
            );
            row(
                "Sluice ledger through QLDBSession over HTTP, the node's indexing of ledgers into search turned off",
                1,
                &http.unindexed,
            );
        }
        if let Some(pg) = &self.postgres {
            row(
                &format!(
                    "PostgreSQL {} JSONB + audit trigger (sha256 chain), `pgbench -c 1` over a unix socket",
                    pg.version
                ),
                1,
                &pg.inserts,
            );
            row(
                &format!("PostgreSQL, `pgbench -c {}`", self.clients),
                self.clients,
                &pg.concurrent,
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| proofs at {} revisions | fill | revision + proof p50 | p99 | max | proof hashes (mean) | checked against the digest | ledger on disk |",
            p.n_revisions
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| Sluice `revision(block, id, tip)` for {} random revisions | {} transactions of ≤ {} documents in {:.0} s ({:.0} revisions/s) | {:.3} ms | {:.3} ms | {:.3} ms | {:.1} | {} of {} fold to the digest | {:.0} MiB |",
            p.n_proofs,
            p.fill_transactions,
            FILL_DOCUMENTS_PER_TRANSACTION,
            p.fill_seconds,
            (p.n_revisions
                - s.n_transactions
                - self.sluice_paused.n_transactions
                - self.sluice_concurrent.n_transactions) as f64
                / p.fill_seconds.max(1e-9),
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.latency.max_ms,
            p.proof_length_mean,
            p.proofs_checked,
            p.proofs_checked,
            p.ledger_bytes as f64 / (1u64 << 20) as f64
        );
        if let Some(pg) = &self.postgres {
            let _ = writeln!(
                out,
                "| PostgreSQL audit chain | no proofs: a client can only re-walk the whole chain on the server ({} rows, {}) | – | – | – | – | – | – |",
                pg.audit_rows,
                if pg.chain_verified {
                    "re-walked and consistent"
                } else {
                    "re-walk found broken links"
                }
            );
        }
        let _ = writeln!(
            out,
            "\n| reads at {} revisions, the ledger's files evicted from the page cache first | samples | p50 | p99 | max | bytes read per operation | of which from the device |",
            p.n_revisions
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for read in &self.reads {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} ms | {:.3} ms | {:.3} ms | {} | {} |",
                read.label,
                read.n_samples,
                read.latency.p50_ms,
                read.latency.p99_ms,
                read.latency.max_ms,
                human_bytes(read.syscall_bytes_mean),
                human_bytes(read.device_bytes_mean)
            );
        }
        let _ = writeln!(
            out,
            "\n| checkpoints during the embedded runs (each holds the writers: no transaction commits meanwhile) | length | checkpoints | longest hold | holds together | share of the run |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for row in &self.checkpoints {
            let _ = writeln!(
                out,
                "| {} | {:.1} s | {} | {:.1} ms | {:.1} ms | {:.1} % |",
                row.run,
                row.seconds,
                row.stats.count,
                row.stats.max.as_secs_f64() * 1e3,
                row.stats.total.as_secs_f64() * 1e3,
                100.0 * row.stats.total.as_secs_f64() / row.seconds.max(1e-9)
            );
        }
        let _ = writeln!(out, "\nAgainst the issue's targets:\n");
        let _ = writeln!(
            out,
            "- 1 client, embedded: **{:.2}×** the disk's fsync'd append rate (target ≥ 0.8; {:.2}× its rate of fsync'd writes over zeros; each after a pause, {:.2}× the paused disk's rate){}.",
            s.per_second() / self.disk.per_second(),
            s.per_second() / self.disk_zero_filled.per_second(),
            self.sluice_paused.per_second() / self.disk_paused.per_second(),
            self.postgres
                .as_ref()
                .map(|pg| format!(
                    ", **{:.2}×** PostgreSQL's transactions/s (target ≥ 1)",
                    s.per_second() / pg.inserts.per_second()
                ))
                .unwrap_or_default()
        );
        if let Some(pg) = &self.postgres {
            let _ = writeln!(
                out,
                "- {} clients, embedded: **{:.2}×** PostgreSQL's transactions/s (target ≥ 2).",
                self.clients,
                self.sluice_concurrent.per_second() / pg.concurrent.per_second()
            );
            if let Some(http) = &self.http {
                let _ = writeln!(
                    out,
                    "- Through QLDBSession over HTTP: **{:.2}×** PostgreSQL's transactions/s at 1 client, **{:.2}×** at {} clients.",
                    http.single.per_second() / pg.inserts.per_second(),
                    http.concurrent.per_second() / pg.concurrent.per_second(),
                    self.clients
                );
            }
        }
        if let Some(http) = &self.http {
            let _ = writeln!(
                out,
                "- The network path, 1 client: a transaction through QLDBSession takes **{:.3} ms** p50 with the node's indexing of ledgers into search turned off, {:.3} ms with it on (the default: the indexer shares the two cores and the disk with the commits). The table below takes the first apart.",
                http.unindexed.latency.p50_ms, http.single.latency.p50_ms
            );
        }
        let _ = writeln!(
            out,
            "- {} revisions take **{:.0} MiB** on disk, journal and derived state together (target ≤ 1 GiB for 1 M); a revision with its proof takes **{:.3} ms** p50 (target ≤ 1 ms).",
            p.n_revisions,
            p.ledger_bytes as f64 / (1u64 << 20) as f64,
            p.latency.p50_ms
        );
        out.push('\n');
        out.push_str(
            &self
                .interleaved_embedded
                .markdown("transactions", disk_target),
        );
        if let Some(http) = &self.http {
            out.push('\n');
            out.push_str(&network_path_table(
                http,
                &self.sluice_paused_calls,
                self.sluice_paused.latency.p50_ms,
            ));
        }
        if let Some(interleaved) = &self.interleaved {
            out.push('\n');
            out.push_str(&interleaved.markdown("transactions", postgres_target));
        }

        out.push_str(REPORT_NOTES);
        let _ = writeln!(out, "{END_MARKER}");
        out
    }

    /// Replaces the marked section of `path`, or appends it at the end.
    fn write_into(&self, path: &Path) -> anyhow::Result<()> {
        crate::report::write_section(path, BEGIN_MARKER, END_MARKER, &self.markdown())
    }
}

/// What the table does and does not say; written under every run's numbers.
const REPORT_NOTES: &str = "
Notes:

- **Commit path.** A Sluice commit is durable once its block's frame is appended to the ledger's
  journal and `fdatasync`ed; transactions that commit at the same time share one append and one
  fsync (group commit), and the derived state (documents, indexes, Merkle tree) follows in redb
  without an fsync, checkpointed in the background (`docs/ledger-format.md`). PostgreSQL runs with
  `fsync=on` and `synchronous_commit=on` (a WAL flush per commit, grouped across clients). With one
  client neither side can group, so both are bounded by the disk's fsync rate in the first row,
  which on this shared machine moves a lot between runs. A client over the network leaves the
  disk idle between its commits; the third row times the same appends after such a pause. On a
  virtual machine that row can be several times slower than the first two
  (`crates/bench/probes/fsync-gap.py` times a range of pauses).
- **Transport.** The embedded rows call the engine in-process (`Ledger::begin`,
  `Transaction::execute`, `Transaction::commit`), timed around the three calls, from one thread per
  client. The QLDBSession rows send what a QLDB driver sends (StartTransaction, ExecuteStatement
  with the document as an IonBinary parameter, CommitTransaction with the commit digest computed
  on the client, three HTTP round trips per transaction) to a real `sluice up` over loopback TCP,
  timed from StartTransaction to the commit's answer. pgbench talks to PostgreSQL over a unix
  socket, so its latencies include one round trip and PostgreSQL's SQL parsing per transaction.
- **Same work?** Not quite. Sluice, per transaction, parses the PartiQL statement, Ion-hashes the
  statement and document, builds the block with its entries hash and block hash, appends it to
  the journal (the revision stored once), and updates the document and revision references and
  the journal Merkle tree. PostgreSQL inserts a JSONB row and an audit row with one sha256 over
  the previous hash and the revision's JSON text, under a table lock that serialises writers (as
  a linear chain needs). The PostgreSQL documents have the same ten fields, generated in SQL from
  pgbench's random numbers instead of the Rust generator.
- **What the audit chain does not give.** No digest a client can keep and later compare, no proof
  that a given row is part of the chain as of that digest, no hash a client can recompute from
  the row alone under a canonical encoding (the hash covers PostgreSQL's `jsonb::text`
  rendering). Verifying means re-walking every row on the server (done once here, after the load),
  trusting the same database administrator who could rewrite the whole chain. Sluice's
  `revision(block, id, tip)` returns the revision and the hashes that fold its Ion hash to the
  digest; the run recomputes each checked revision's hash from its metadata and data with
  `sluice_ledger::hash::revision_hash` and folds the proof with `hash::fold_proof`.
- **Proof latency** is `Ledger::revision` with a digest tip: it reads the block from the journal
  and re-verifies it, finds the document among the block's revisions, and builds the revision,
  entries and journal tree proofs. Revisions are sampled uniformly from all those written, so most
  live in the 40-document fill blocks. **Size on disk** is the ledger's directory (journal and
  `state.redb`) right after the fill, before the proofs, counting the journal's zero-filled
  pre-allocated room (at most 16 MiB, `JOURNAL_PREALLOCATION_STEP_BYTES_MAX`).
- **Checkpoints** are durable redb commits of the derived state, every 250 ms while it changed
  (`CHECKPOINT_INTERVAL`) or after 8 MiB of journal; each writes the pages dirtied since the last
  and fsyncs, holding the writers' lock, so no group commits meanwhile. Their table is
  `Ledger::take_checkpoint_stats` around each run; *share of the run* is the holds' sum over the
  run's length.
- **Reads** run after the fill and a checkpoint, on documents drawn at random from all those
  written, each kind after `posix_fadvise(DONTNEED)` on the ledger's files (the rest of the
  machine keeps its page cache). redb's own cache in the process stays warm, as in a running
  server. Bytes per operation are the process's `/proc/self/io` counters around each call:
  `rchar` (bytes its read calls asked for, cached or not) and `read_bytes` (fetched from the
  device). The fill maintains an index on `VIN`, created after the insert runs (so those stay
  comparable with PostgreSQL's table, which has its primary key only); `history()` with
  `h.metadata.id = ?` reads only that document's revisions.
";

/// The network path command by command: what each QLDBSession command takes at the client
/// against a round trip and the engine's call for it (issue 15, item 4: a transaction pays no
/// more than its round trips over the engine's cost). The engine's calls are those of the
/// embedded run with a pause before each transaction, which meets the disk as a network
/// client's commits do. A round trip costs more when it finds the node's threads parked than
/// when the next request comes before they are (a bare command sent back to back), and a
/// transaction's commands find them parked: the first after the commit before it, the others
/// after the client has read an answer and built the next request. So the rest is given against
/// both: back-to-back round trips, and round trips sent right after a commit.
fn network_path_table(http: &HttpResult, engine: &CommandMedians, engine_total_ms: f64) -> String {
    let c = &http.unindexed_commands;
    let trip = http.bare_round_trip.p50_ms;
    let trip_after_commit = http.round_trip_after_commit.p50_ms;
    let rows = [
        ("StartTransaction", c.start_ms, engine.start_ms, "`begin`"),
        (
            "ExecuteStatement",
            c.execute_ms,
            engine.execute_ms,
            "`execute`",
        ),
        (
            "CommitTransaction",
            c.commit_ms,
            engine.commit_ms,
            "`commit`",
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "The network path, command by command: one client, the node's indexing of ledgers into search turned off, p50s in milliseconds. A round trip is a command that does no ledger work (AbortTransaction with none open), sent back to back, or right after each commit of a run of transactions, when the node's threads have waited for the disk and are parked; the engine's calls are the embedded run with a pause of {pause} µs before each transaction, which meets the disk as a network client's commits do. The rest is the command less a round trip and the engine's call. A transaction's commands find the node's threads parked, the first after the commit before it and the others after the client has read an answer and built the next request, so the last column is the one to read.\n",
        pause = DISK_CEILING_PAUSE.as_micros()
    );
    let _ = writeln!(
        out,
        "| command | through QLDBSession | round trip, back to back | round trip, right after a commit | the engine's call | the rest, against back-to-back round trips | against round trips right after a commit |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let (mut command_sum, mut call_sum) = (0.0f64, 0.0f64);
    for (name, command, call, call_name) in rows {
        command_sum += command;
        call_sum += call;
        let _ = writeln!(
            out,
            "| {name} | {command:.3} | {trip:.3} | {trip_after_commit:.3} | {call:.3} ({call_name}) | {:+.3} | {:+.3} |",
            command - trip - call,
            command - trip_after_commit - call
        );
    }
    let total = http.unindexed.latency.p50_ms;
    for (label, client_ms, engine_ms) in [
        ("the three commands", command_sum, call_sum),
        ("the transaction, p50 of the whole", total, engine_total_ms),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {client_ms:.3} | {:.3} | {:.3} | {engine_ms:.3} | **{:+.3}** | **{:+.3}** |",
            3.0 * trip,
            3.0 * trip_after_commit,
            client_ms - 3.0 * trip - engine_ms,
            client_ms - 3.0 * trip_after_commit - engine_ms
        );
    }
    out.push('\n');
    out
}
