//! `sluice-bench search` and `sluice-bench aggs`: query latency of Sluice over its HTTP API next
//! to raw tantivy in-process (the ceiling, `ceiling.rs`) and PostgreSQL 15 with JSONB, GIN and
//! tsvector indexes, on the documents of `sluice-bench bulk`.
//!
//! The harness loads the same generated documents three times: into a real `sluice up` over
//! `_bulk` with the default dynamic mapping (what users get), into a tantivy index on the bulk
//! baseline's schema in a child process that then times its own queries, and into PostgreSQL with
//! `\copy`. All three stay up while each workload is timed `--reps` times warm, in `--rounds`
//! rounds: in each, every engine in turn runs its share of the repetitions (after `--warmup`
//! untimed runs), so that a shared machine's drift in speed over minutes weighs on each alike.
//! Then each workload is timed `--cold-reps` times cold: the Sluice server and PostgreSQL are restarted and the tantivy index
//! reopened before each cold round, and the page cache is dropped before each cold sample when
//! this process may write `/proc/sys/vm/drop_caches` (the report says which).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::docs::{LogDoc, iso_timestamp};
use crate::http::Connection;
use crate::ledger::Latency;
use crate::machine::Machine;
use crate::postgres::{Postgres, path_str};
use crate::report::write_section;
use crate::server::Server;

/// Hits per page of the `search_after` workload.
pub const PAGE_SIZE: usize = 1_000;
/// Hits the `search_after` workload pages through (fewer when the data set is smaller).
const PAGING_HITS: usize = 100_000;
/// Buckets per page of the composite workload.
pub const COMPOSITE_PAGE: usize = 100;
/// Pages a paging workload may take before the harness calls it broken rather than looping.
const PAGES_MAX: usize = 10_000;
/// 2026-01-01T00:00:00Z, where the generated logs start (`START_EPOCH_MS` in docs.rs).
const START_EPOCH_MS: i64 = 1_767_225_600_000;
/// Mean spacing of the generated log lines (`SPACING_MS` in docs.rs).
const SPACING_MS: i64 = 37;
/// Target: a search's p50 at most this multiple of raw tantivy's (issue 8).
const SEARCH_CEILING_RATIO_MAX: f64 = 1.5;
/// Target: PostgreSQL's p50 at least this multiple of Sluice's on broad text queries (issue 8).
const SEARCH_POSTGRES_RATIO_MIN: f64 = 10.0;
/// Target: an aggregation's p50 at most this multiple of raw tantivy's (issue 9).
const AGGS_CEILING_RATIO_MAX: f64 = 1.5;
/// Target: PostgreSQL's p50 at least this multiple of Sluice's on every aggregation (issue 9).
const AGGS_POSTGRES_RATIO_MIN: f64 = 20.0;
/// PostgreSQL's settings for these read-only queries: more shared buffers than the ledger run,
/// room for sorts and hashes in memory, and no fsync while loading (durability is not measured).
const POSTGRES_SETTINGS: &str = "-c fsync=off -c synchronous_commit=off -c shared_buffers=2GB \
     -c work_mem=256MB -c maintenance_work_mem=1GB -c max_parallel_workers_per_gather=2";
const INDEX_NAME: &str = "bench-logs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Search,
    Aggs,
}

/// Rounds the warm repetitions are taken in, by default.
const ROUNDS_DEFAULT: usize = 3;

#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    /// Documents to load.
    #[arg(long, default_value_t = 1_000_000)]
    docs: u64,
    /// Seed of the document generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timed warm repetitions of each workload, on each engine.
    #[arg(long, default_value_t = 30)]
    reps: usize,
    /// Untimed runs of each workload before its warm repetitions.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Cold rounds: each restarts the engines and times every workload once on a cold cache.
    #[arg(long, default_value_t = 5)]
    cold_reps: usize,
    /// Rounds the warm repetitions are split into: in each, every engine runs its share of them
    /// in turn (after its untimed runs), so that a shared machine's speed, which drifts over
    /// minutes, weighs on every engine alike.
    #[arg(long, default_value_t = ROUNDS_DEFAULT)]
    rounds: usize,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Skip PostgreSQL.
    #[arg(long)]
    skip_postgres: bool,
    /// Skip the raw tantivy ceiling.
    #[arg(long)]
    skip_ceiling: bool,
    /// Write the results into this Markdown file between `<!-- bench-search:begin -->` and
    /// `<!-- bench-search:end -->` (`bench-aggs` for `aggs`), appended if the markers are missing.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Record a CPU profile of the Sluice server during its warm repetitions into this file.
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// With `--perf-record`: record call graphs (DWARF unwinding; large files).
    #[arg(long)]
    perf_call_graph: bool,
    /// Run only the workloads whose id contains this (e.g. `terms_avg`), on Sluice alone: for
    /// profiling one workload with `--perf-record`; no ceiling, PostgreSQL or report.
    #[arg(long, conflicts_with = "report")]
    only: Option<String>,
}

/// The ceiling child's arguments (`sluice-bench tantivy-queries`).
#[derive(clap::Args, Debug)]
pub struct CeilingArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    #[arg(long)]
    docs: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    reps: usize,
    #[arg(long)]
    warmup: usize,
    #[arg(long)]
    cold_reps: usize,
    /// Drop the page cache before each cold sample.
    #[arg(long)]
    drop_caches: bool,
    /// Directory for the index: empty, or holding the index of an earlier run with `--reuse`.
    #[arg(long)]
    dir: PathBuf,
    /// Time the index an earlier run built in `--dir` instead of building one.
    #[arg(long)]
    reuse: bool,
}

/// What every engine runs: the workloads of one kind over `docs` documents, and how often.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub docs: u64,
    pub seed: u64,
    pub reps: usize,
    pub warmup: usize,
    pub cold_reps: usize,
    pub drop_caches: bool,
}

/// How Sluice runs a workload over HTTP.
#[derive(Debug, Clone)]
pub enum SluiceOp {
    /// One `_search` with this body.
    Search(Value),
    /// `_search` pages with `search_after` taken from the last hit, until `paging_hits`.
    SearchAfter(Value),
    /// `_search` with a composite aggregation named `a`, paged with its `after_key` to the end.
    Composite(Value),
}

/// One query or aggregation, as each engine runs it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub id: &'static str,
    pub title: &'static str,
    /// A broad text query, where PostgreSQL's target applies (searches; every aggregation).
    pub postgres_target: bool,
    pub sluice: SluiceOp,
    /// The SQL of one sample: statements ending in `;` or `\gset`, each timed by psql.
    pub sql: Vec<String>,
}

impl Plan {
    pub fn paging_hits(&self) -> usize {
        PAGING_HITS.min(self.docs as usize)
    }

    pub fn workloads(&self) -> Vec<Workload> {
        match self.kind {
            Kind::Search => self.search_workloads(),
            Kind::Aggs => self.aggs_workloads(),
        }
    }

    fn search_workloads(&self) -> Vec<Workload> {
        let text = |id, title, query: Value, tsquery: &str, extra: &str| Workload {
            id,
            title,
            postgres_target: true,
            sluice: SluiceOp::Search(json!({"query": query, "track_total_hits": true})),
            sql: vec![format!(
                "SELECT doc, count(*) OVER () FROM logs WHERE message_tsv @@ {tsquery}{extra} \
                 ORDER BY ts_rank(message_tsv, {tsquery}) DESC LIMIT 10;"
            )],
        };
        let (from, to) = range_window_ms(self.docs);
        let (from, to) = (iso_timestamp(from), iso_timestamp(to));
        let pages = self.paging_hits().div_ceil(PAGE_SIZE);
        let mut paging_sql = vec![
            "\\set c_ts infinity".to_string(),
            "\\set c_id 9223372036854775807".to_string(),
        ];
        paging_sql.extend((0..pages).map(|_| {
            format!(
                "WITH page AS (SELECT id, ts, doc FROM logs WHERE (ts, id) < (:'c_ts'::timestamptz, :c_id) \
                 ORDER BY ts DESC, id DESC LIMIT {PAGE_SIZE}) \
                 SELECT (SELECT ts FROM page ORDER BY ts, id LIMIT 1) AS c_ts, \
                 (SELECT id FROM page ORDER BY ts, id LIMIT 1) AS c_id, \
                 (SELECT string_agg(doc::text, E'\\n') FROM page) AS docs \\gset"
            )
        }));
        vec![
            text(
                "match",
                "`match` message \"connection timeout\" (OR), top 10 by score",
                json!({"match": {"message": "connection timeout"}}),
                "to_tsquery('simple', 'connection | timeout')",
                "",
            ),
            text(
                "phrase",
                "`match_phrase` message \"connection timeout\"",
                json!({"match_phrase": {"message": "connection timeout"}}),
                "phraseto_tsquery('simple', 'connection timeout')",
                "",
            ),
            text(
                "bool_range",
                "`bool`: `match` timeout, `range` filter on @timestamp (middle half)",
                json!({"bool": {
                    "must": [{"match": {"message": "timeout"}}],
                    "filter": [{"range": {"@timestamp": {"gte": from, "lt": to}}}]}}),
                "to_tsquery('simple', 'timeout')",
                &format!(" AND ts >= '{from}' AND ts < '{to}'"),
            ),
            text(
                "query_string",
                "`query_string` `message:(timeout OR failed) AND level:ERROR`",
                json!({"query_string": {"query": "message:(timeout OR failed) AND level:ERROR"}}),
                "to_tsquery('simple', 'timeout | failed')",
                " AND doc @> '{\"level\":\"ERROR\"}'",
            ),
            Workload {
                id: "wildcard",
                title: "`wildcard` user_id `u-12*` (2% of documents)",
                postgres_target: false,
                sluice: SluiceOp::Search(json!({
                    "query": {"wildcard": {"user_id.keyword": {"value": "u-12*"}}},
                    "track_total_hits": true})),
                sql: vec![
                    "SELECT doc, count(*) OVER () FROM logs WHERE doc->>'user_id' LIKE 'u-12%' LIMIT 10;"
                        .into(),
                ],
            },
            Workload {
                id: "sort_date",
                title: "`match_all` sorted by @timestamp desc, `size: 100`",
                postgres_target: false,
                sluice: SluiceOp::Search(json!({
                    "query": {"match_all": {}}, "sort": [{"@timestamp": "desc"}], "size": 100,
                    "track_total_hits": false})),
                sql: vec!["SELECT doc FROM logs ORDER BY ts DESC LIMIT 100;".into()],
            },
            Workload {
                id: "search_after",
                title: "`search_after` through 100,000 hits by @timestamp desc, 1,000 a page",
                postgres_target: false,
                sluice: SluiceOp::SearchAfter(json!({
                    "query": {"match_all": {}},
                    "sort": [{"@timestamp": "desc"}, {"_doc": "desc"}],
                    "size": PAGE_SIZE, "track_total_hits": false})),
                sql: paging_sql,
            },
        ]
    }

    fn aggs_workloads(&self) -> Vec<Workload> {
        let avg = json!({"avg": {"avg": {"field": "latency_ms"}}});
        let agg = |id, title, aggregation: Value, sql: &str| Workload {
            id,
            title,
            postgres_target: true,
            sluice: SluiceOp::Search(json!({"size": 0, "aggs": {"a": aggregation}})),
            sql: vec![sql.to_string()],
        };
        vec![
            agg(
                "terms_avg",
                "`terms` service (10) with `avg` latency_ms",
                json!({"terms": {"field": "service.keyword", "size": 10}, "aggs": avg}),
                "SELECT doc->>'service', count(*), avg((doc->>'latency_ms')::float8) FROM logs \
                 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10;",
            ),
            agg(
                "date_histogram",
                "`date_histogram` calendar hour, Europe/London, by `terms` region with `avg`",
                json!({"date_histogram": {"field": "@timestamp", "calendar_interval": "hour",
                        "time_zone": "Europe/London"},
                       "aggs": {"r": {"terms": {"field": "region.keyword"}, "aggs": avg}}}),
                "SELECT date_trunc('hour', ts AT TIME ZONE 'Europe/London'), doc->>'region', \
                 count(*), avg((doc->>'latency_ms')::float8) FROM logs GROUP BY 1, 2 ORDER BY 1, 3 DESC;",
            ),
            agg(
                "filters",
                "`filters`: level ERROR, message timeout, status ≥ 500",
                json!({"filters": {"filters": {
                    "errors": {"match": {"level": "ERROR"}},
                    "timeouts": {"match": {"message": "timeout"}},
                    "server_errors": {"range": {"status": {"gte": 500}}}}}}),
                "SELECT (SELECT count(*) FROM logs WHERE doc @> '{\"level\":\"ERROR\"}'), \
                 (SELECT count(*) FROM logs WHERE message_tsv @@ to_tsquery('simple', 'timeout')), \
                 (SELECT count(*) FROM logs WHERE (doc->>'status')::int >= 500);",
            ),
            agg(
                "cardinality",
                "`cardinality` user_id",
                json!({"cardinality": {"field": "user_id.keyword"}}),
                "SELECT count(DISTINCT doc->>'user_id') FROM logs;",
            ),
            agg(
                "percentiles",
                "`percentiles` latency_ms (1, 5, 25, 50, 75, 95, 99)",
                json!({"percentiles": {"field": "latency_ms"}}),
                "SELECT percentile_cont(ARRAY[0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]) \
                 WITHIN GROUP (ORDER BY (doc->>'latency_ms')::float8) FROM logs;",
            ),
            Workload {
                id: "composite",
                title: "`composite` host × service (2,000 buckets), 100 a page, to the end",
                postgres_target: true,
                sluice: SluiceOp::Composite(json!({"size": 0, "aggs": {"a": {"composite": {
                    "size": COMPOSITE_PAGE,
                    "sources": [{"host": {"terms": {"field": "host.keyword"}}},
                                {"service": {"terms": {"field": "service.keyword"}}}]}}}})),
                sql: vec![
                    "SELECT doc->>'host', doc->>'service', count(*) FROM logs GROUP BY 1, 2 ORDER BY 1, 2;"
                        .into(),
                ],
            },
        ]
    }
}

/// The `@timestamp` window of the bool workload: the middle half of the generated documents.
pub fn range_window_ms(docs: u64) -> (i64, i64) {
    let docs = docs as i64;
    (
        START_EPOCH_MS + docs / 4 * SPACING_MS,
        START_EPOCH_MS + docs * 3 / 4 * SPACING_MS,
    )
}

/// Drops the page cache when allowed, so that the next query reads from disk.
pub fn drop_page_cache(enabled: bool) {
    if enabled {
        let _ = fs::write("/proc/sys/vm/drop_caches", "1");
    }
}

/// Whether this process may drop the page cache (root on a kernel that lets it).
fn may_drop_page_cache() -> bool {
    fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
}

/// What a bucket aggregation found, comparable across engines: the number of buckets and the
/// first bucket's count.
pub fn buckets_check(aggregation: &Value) -> String {
    let buckets = aggregation["buckets"].as_array();
    format!(
        "{} buckets, first {}",
        buckets.map_or(0, Vec::len),
        buckets
            .and_then(|b| b.first())
            .map_or(Value::Null, |b| b["doc_count"].clone())
    )
}

/// A metric value to three significant places, comparable across engines' approximations.
pub fn round_check(value: &Value) -> String {
    match value.as_f64() {
        Some(v) => {
            let digits = (3 - v.abs().log10().floor() as i32 - 1).max(0) as usize;
            format!("{v:.digits$}")
        }
        None => value.to_string(),
    }
}

/// Timings of one workload on one engine.
#[derive(Debug, Clone, Default)]
struct Timings {
    warm: Vec<f64>,
    cold: Vec<f64>,
    check: String,
}

/// All the numbers of a run.
struct Results {
    /// Rounds the warm repetitions were taken in.
    rounds: usize,
    sluice: Vec<Timings>,
    ceiling: Option<Vec<Timings>>,
    postgres: Option<Vec<Timings>>,
    postgres_version: Option<String>,
}

pub fn run(kind: Kind, args: QueryArgs) -> anyhow::Result<()> {
    ensure!(
        args.docs > 0 && args.reps > 0,
        "docs and reps must be positive"
    );
    let sluice = match &args.sluice {
        Some(path) => path.clone(),
        None => crate::default_sluice_path()?,
    };
    ensure!(
        sluice.is_file(),
        "no sluice binary at {} (build it with cargo build --release -p sluice)",
        sluice.display()
    );
    let scratch = tempfile::Builder::new().prefix("sluice-bench").tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let drop_caches = may_drop_page_cache();
    eprintln!(
        "machine: {} × {}, load average {:.1}; page cache {}",
        machine.n_cpus,
        machine.cpu_model,
        machine.load_average,
        if drop_caches {
            "dropped before each cold sample"
        } else {
            "cannot be dropped: cold means restarted processes only"
        }
    );
    let plan = Plan {
        kind,
        docs: args.docs,
        seed: args.seed,
        reps: args.reps,
        warmup: args.warmup,
        cold_reps: args.cold_reps,
        drop_caches,
    };
    let mut workloads = plan.workloads();
    if let Some(only) = &args.only {
        workloads.retain(|workload| workload.id.contains(only.as_str()));
        ensure!(!workloads.is_empty(), "no workload's id contains `{only}`");
    }

    let mut sluice_side = SluiceSide::start(&sluice, &plan, scratch.path())?;
    let perf = match &args.perf_record {
        Some(path) => Some(crate::start_perf(
            sluice_side.server.pid(),
            path,
            args.perf_call_graph,
        )?),
        None => None,
    };
    let ceiling_dir = if args.skip_ceiling || args.only.is_some() {
        None
    } else {
        Some(build_ceiling(&plan, scratch.path())?)
    };
    let postgres_side = if args.skip_postgres || args.only.is_some() {
        None
    } else {
        Some(PostgresSide::start(&plan, scratch.path())?)
    };
    let blank = || vec![Timings::default(); workloads.len()];
    let (mut sluice_timings, mut ceiling, mut postgres) = (blank(), blank(), blank());
    let rounds = args.rounds.clamp(1, plan.reps);
    for round in 0..rounds {
        let reps = plan.reps / rounds + usize::from(round < plan.reps % rounds);
        eprintln!("warm round {} of {rounds}: {reps} repetitions", round + 1);
        sluice_side.warm(&workloads, &plan, reps, &mut sluice_timings)?;
        if let Some(dir) = &ceiling_dir {
            run_ceiling(&plan, dir, reps, 0, &mut ceiling)?;
        }
        if let Some(side) = &postgres_side {
            side.warm(&workloads, &plan, reps, &mut postgres)?;
        }
    }
    if let Some(perf) = perf {
        crate::stop_perf(perf)?;
    }
    sluice_side.cold(&workloads, &plan, &mut sluice_timings)?;
    print_timings("sluice", &workloads, &sluice_timings);
    if args.only.is_some() {
        return Ok(());
    }
    let ceiling = match &ceiling_dir {
        Some(dir) => {
            run_ceiling(&plan, dir, 0, plan.cold_reps, &mut ceiling)?;
            print_timings("tantivy", &workloads, &ceiling);
            Some(ceiling)
        }
        None => None,
    };
    let (postgres, postgres_version) = match postgres_side {
        Some(mut side) => {
            side.cold(&workloads, &plan, &mut postgres)?;
            print_timings("postgres", &workloads, &postgres);
            let version = side.version.clone();
            side.stop();
            (Some(postgres), Some(version))
        }
        None => (None, None),
    };
    let results = Results {
        rounds,
        sluice: sluice_timings,
        ceiling,
        postgres,
        postgres_version,
    };
    let report = markdown(
        &plan,
        &workloads,
        &results,
        &machine,
        &command_line(kind, &args),
    );
    println!("{report}");
    if let Some(path) = &args.report {
        let (begin, end) = markers(kind);
        write_section(path, begin, end, &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn print_timings(engine: &str, workloads: &[Workload], timings: &[Timings]) {
    for (workload, t) in workloads.iter().zip(timings) {
        let warm = Latency::of(t.warm.clone());
        let cold = Latency::of(t.cold.clone());
        eprintln!(
            "{engine:>8} {:<15} warm p50 {:>9.2} ms p99 {:>9.2} ms, cold p50 {:>9.2} ms ({})",
            workload.id, warm.p50_ms, warm.p99_ms, cold.p50_ms, t.check
        );
    }
}

fn markers(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Search => ("<!-- bench-search:begin -->", "<!-- bench-search:end -->"),
        Kind::Aggs => ("<!-- bench-aggs:begin -->", "<!-- bench-aggs:end -->"),
    }
}

fn command_line(kind: Kind, args: &QueryArgs) -> String {
    format!(
        "cargo build --release -p sluice -p sluice-bench && cargo run --release -p sluice-bench -- {} --docs {} --reps {} --cold-reps {}{}{}",
        match kind {
            Kind::Search => "search",
            Kind::Aggs => "aggs",
        },
        args.docs,
        args.reps,
        args.cold_reps,
        if args.rounds == ROUNDS_DEFAULT {
            String::new()
        } else {
            format!(" --rounds {}", args.rounds)
        },
        if args.seed == 42 {
            String::new()
        } else {
            format!(" --seed {}", args.seed)
        }
    )
}

/// The Sluice server of a run, loaded and settled, with its client connection.
struct SluiceSide {
    binary: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    server: Server,
}

impl SluiceSide {
    /// Loads Sluice over `_bulk` with the default dynamic mapping, then restarts it and waits
    /// for the merges of the reopened index, as after any restart.
    fn start(sluice: &Path, plan: &Plan, scratch: &Path) -> anyhow::Result<SluiceSide> {
        let bulk_args = crate::BulkArgs {
            docs: plan.docs,
            batch: 5_000,
            clients: 4,
            seed: plan.seed,
            sluice: None,
            ids: false,
            replace: false,
            index_body: "{}".into(),
            skip_baseline: true,
            dynamic_baselines: false,
            report: None,
            perf_record: None,
            perf_call_graph: false,
        };
        eprintln!("generating {} documents…", plan.docs);
        let batches = crate::build_batches(plan.docs, bulk_args.batch, plan.seed, false);
        let data_dir = scratch.join("sluice-data");
        let log = scratch.join("sluice.log");
        let server = Server::start(sluice, &data_dir, &log)?;
        let loaded = crate::load(&server, &bulk_args, &batches)?;
        eprintln!(
            "sluice: loaded {} docs in {:.1} s",
            loaded.n_docs, loaded.seconds
        );
        server.stop()?;
        let server = Server::start(sluice, &data_dir, &log)?;
        // The reopened index merges the segments of the load; measure the index it leaves.
        crate::server::settle(&[&server])?;
        Ok(SluiceSide {
            binary: sluice.to_path_buf(),
            data_dir,
            log,
            server,
        })
    }

    /// Times `reps` warm repetitions of every workload, each after its untimed runs, on a
    /// new connection (the server closes idle ones while the other engines run).
    fn warm(
        &mut self,
        workloads: &[Workload],
        plan: &Plan,
        reps: usize,
        timings: &mut [Timings],
    ) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.server.search_address)?;
        for (workload, timing) in workloads.iter().zip(timings) {
            for _ in 0..plan.warmup {
                sluice_run(&mut connection, workload, plan)?;
            }
            for _ in 0..reps {
                let started = Instant::now();
                let check = sluice_run(&mut connection, workload, plan)?;
                timing.warm.push(started.elapsed().as_secs_f64() * 1000.0);
                timing.check = check;
            }
        }
        Ok(())
    }

    /// Cold rounds (server restarted; page cache dropped before each sample when allowed),
    /// then stops the server.
    fn cold(
        self,
        workloads: &[Workload],
        plan: &Plan,
        timings: &mut [Timings],
    ) -> anyhow::Result<()> {
        let SluiceSide {
            binary,
            data_dir,
            log,
            mut server,
        } = self;
        for _ in 0..plan.cold_reps {
            server.stop()?;
            server = Server::start(&binary, &data_dir, &log)?;
            let mut connection = Connection::open(&server.search_address)?;
            for (workload, timing) in workloads.iter().zip(timings.iter_mut()) {
                drop_page_cache(plan.drop_caches);
                let started = Instant::now();
                sluice_run(&mut connection, workload, plan)?;
                timing.cold.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        server.stop()?;
        Ok(())
    }
}

fn search(connection: &mut Connection, body: &Value) -> anyhow::Result<Value> {
    let response = connection.json("POST", &format!("/{INDEX_NAME}/_search"), &body.to_string())?;
    ensure!(
        response.status == 200,
        "search {body}: status {}: {}",
        response.status,
        response.text()
    );
    Ok(serde_json::from_slice(&response.body)?)
}

/// Runs one workload over HTTP and returns what it found.
fn sluice_run(
    connection: &mut Connection,
    workload: &Workload,
    plan: &Plan,
) -> anyhow::Result<String> {
    match &workload.sluice {
        SluiceOp::Search(body) => {
            let response = search(connection, body)?;
            if plan.kind == Kind::Search {
                return Ok(match response["hits"]["total"]["value"].as_u64() {
                    Some(total) => total.to_string(),
                    None => response["hits"]["hits"]
                        .as_array()
                        .map_or(0, Vec::len)
                        .to_string(),
                });
            }
            let a = &response["aggregations"]["a"];
            Ok(match workload.id {
                "filters" => format!(
                    "{}/{}/{}",
                    a["buckets"]["errors"]["doc_count"],
                    a["buckets"]["timeouts"]["doc_count"],
                    a["buckets"]["server_errors"]["doc_count"]
                ),
                "cardinality" => round_check(&a["value"]),
                "percentiles" => round_check(&a["values"]["50.0"]),
                _ => buckets_check(a),
            })
        }
        SluiceOp::SearchAfter(body) => {
            let mut body = body.clone();
            let mut seen = 0;
            for _ in 0..PAGES_MAX {
                if seen >= plan.paging_hits() {
                    return Ok(seen.to_string());
                }
                let response = search(connection, &body)?;
                let hits = response["hits"]["hits"]
                    .as_array()
                    .context("no hits in a search_after page")?;
                let Some(last) = hits.last() else {
                    return Ok(seen.to_string());
                };
                seen += hits.len();
                body["search_after"] = last["sort"].clone();
            }
            bail!("search_after did not end within {PAGES_MAX} pages")
        }
        SluiceOp::Composite(body) => {
            let mut body = body.clone();
            let (mut buckets, mut docs) = (0, 0);
            for _ in 0..PAGES_MAX {
                let response = search(connection, &body)?;
                let a = &response["aggregations"]["a"];
                let page = a["buckets"].as_array().cloned().unwrap_or_default();
                if page.is_empty() {
                    return Ok(format!("{buckets} buckets, {docs} docs"));
                }
                buckets += page.len();
                docs += page
                    .iter()
                    .filter_map(|b| b["doc_count"].as_u64())
                    .sum::<u64>();
                match a.get("after_key") {
                    Some(key) => body["aggs"]["a"]["composite"]["after"] = key.clone(),
                    None => return Ok(format!("{buckets} buckets, {docs} docs")),
                }
            }
            bail!("composite paging did not end within {PAGES_MAX} pages")
        }
    }
}

/// Builds the tantivy index in a child process and returns its directory.
fn build_ceiling(plan: &Plan, scratch: &Path) -> anyhow::Result<PathBuf> {
    let dir = scratch.join("tantivy-ceiling");
    fs::create_dir_all(&dir)?;
    eprintln!("tantivy ceiling…");
    let build = Plan {
        reps: 0,
        warmup: 0,
        cold_reps: 0,
        ..plan.clone()
    };
    ceiling_child(&build, &dir, false)?;
    Ok(dir)
}

/// Times the workloads on the index in `dir` in a child process, so its caches and memory are
/// its own: `reps` warm samples (after the plan's untimed runs, none when `reps` is 0) and
/// `cold_reps` cold ones, added to `timings`.
fn run_ceiling(
    plan: &Plan,
    dir: &Path,
    reps: usize,
    cold_reps: usize,
    timings: &mut [Timings],
) -> anyhow::Result<()> {
    let this = Plan {
        reps,
        warmup: if reps == 0 { 0 } else { plan.warmup },
        cold_reps,
        ..plan.clone()
    };
    let mut by_id = ceiling_child(&this, dir, true)?;
    for (workload, timing) in plan.workloads().iter().zip(timings) {
        let result = by_id
            .remove(workload.id)
            .with_context(|| format!("the ceiling printed no result for {}", workload.id))?;
        timing.warm.extend(result.warm);
        timing.cold.extend(result.cold);
        if !result.check.is_empty() {
            timing.check = result.check;
        }
    }
    Ok(())
}

/// Runs `sluice-bench tantivy-queries` for `plan` and returns its timings by workload id.
fn ceiling_child(
    plan: &Plan,
    dir: &Path,
    reuse: bool,
) -> anyhow::Result<std::collections::HashMap<String, Timings>> {
    let output = Command::new(std::env::current_exe()?)
        .arg("tantivy-queries")
        .args([
            "--kind",
            match plan.kind {
                Kind::Search => "search",
                Kind::Aggs => "aggs",
            },
        ])
        .args(["--docs", &plan.docs.to_string()])
        .args(["--seed", &plan.seed.to_string()])
        .args(["--reps", &plan.reps.to_string()])
        .args(["--warmup", &plan.warmup.to_string()])
        .args(["--cold-reps", &plan.cold_reps.to_string()])
        .args(plan.drop_caches.then_some("--drop-caches"))
        .args(reuse.then_some("--reuse"))
        .arg("--dir")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("running the tantivy ceiling")?;
    ensure!(
        output.status.success(),
        "the tantivy ceiling failed: {}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut by_id = std::collections::HashMap::new();
    for line in stdout.lines() {
        if let Some(json) = line.strip_prefix(crate::ceiling::RESULT_PREFIX) {
            let value: Value = serde_json::from_str(json)?;
            let samples = |key: &str| -> Vec<f64> {
                value[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            let id = value["id"].as_str().unwrap_or_default().to_string();
            by_id.insert(
                id,
                Timings {
                    warm: samples("warm"),
                    cold: samples("cold"),
                    check: value["check"].as_str().unwrap_or_default().to_string(),
                },
            );
        }
    }
    Ok(by_id)
}

/// The child side: `sluice-bench tantivy-queries`.
pub fn run_ceiling_child(args: CeilingArgs) -> anyhow::Result<()> {
    let plan = Plan {
        kind: args.kind,
        docs: args.docs,
        seed: args.seed,
        reps: args.reps,
        warmup: args.warmup,
        cold_reps: args.cold_reps,
        drop_caches: args.drop_caches,
    };
    crate::ceiling::run(&args.dir, &plan, args.reuse)
}

/// The table and its indexes: the document as JSONB, its timestamp also as a typed column (as
/// any schema with a time axis has), and the message's tsvector as a generated column.
const POSTGRES_SCHEMA: &str = "CREATE TABLE logs (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL,
    doc jsonb NOT NULL,
    message_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', doc->>'message')) STORED
);";
const POSTGRES_INDEXES: &str = "
CREATE INDEX logs_doc ON logs USING gin (doc jsonb_path_ops);
CREATE INDEX logs_message ON logs USING gin (message_tsv);
CREATE INDEX logs_ts ON logs (ts DESC, id DESC);
CREATE INDEX logs_user_id ON logs ((doc->>'user_id') text_pattern_ops);
CREATE INDEX logs_status ON logs (((doc->>'status')::int));
VACUUM ANALYZE logs;
";

/// PostgreSQL 15 of a run, the documents loaded and indexed.
struct PostgresSide {
    root: PathBuf,
    postgres: Postgres,
    version: String,
}

impl PostgresSide {
    fn start(plan: &Plan, scratch: &Path) -> anyhow::Result<PostgresSide> {
        let root = scratch.join("postgres");
        let postgres = Postgres::start(&root, POSTGRES_SETTINGS)?;
        let version = postgres.psql("SHOW server_version")?;
        eprintln!("postgres {version}: loading…");
        postgres.psql(POSTGRES_SCHEMA)?;
        // `\copy` text format: the generated JSON holds no tabs, backslashes or newlines.
        let rows = scratch.join("postgres-rows.tsv");
        {
            let mut out = Vec::with_capacity(plan.docs as usize * 340);
            let mut json = Vec::with_capacity(512);
            for i in 0..plan.docs {
                let doc = LogDoc::generate(plan.seed, i);
                json.clear();
                doc.write_json(&mut json);
                out.extend_from_slice(iso_timestamp(doc.timestamp_ms).as_bytes());
                out.push(b'\t');
                out.extend_from_slice(&json);
                out.push(b'\n');
            }
            fs::write(&rows, out)?;
        }
        let started = Instant::now();
        postgres.psql_script(
            format!(
                "\\copy logs (ts, doc) FROM '{}'\n{POSTGRES_INDEXES}",
                path_str(&rows)?
            )
            .as_bytes(),
        )?;
        fs::remove_file(&rows)?;
        eprintln!(
            "postgres: loaded and indexed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let count: u64 = postgres.psql("SELECT count(*) FROM logs")?.parse()?;
        ensure!(count == plan.docs, "postgres holds {count} rows");
        Ok(PostgresSide {
            root,
            postgres,
            version,
        })
    }

    /// Times `reps` warm repetitions of every workload in one psql session, each workload's
    /// untimed runs first.
    fn warm(
        &self,
        workloads: &[Workload],
        plan: &Plan,
        reps: usize,
        timings: &mut [Timings],
    ) -> anyhow::Result<()> {
        let mut script = String::from("\\timing on\n\\o /dev/null\n");
        for workload in workloads {
            for _ in 0..plan.warmup + reps {
                for statement in &workload.sql {
                    let _ = writeln!(script, "{statement}");
                }
            }
        }
        let times = psql_times(&self.postgres, &script)?;
        let expected: usize = workloads
            .iter()
            .map(|w| timed_statements(w) * (plan.warmup + reps))
            .sum();
        ensure!(
            times.len() == expected,
            "psql printed {} timings, expected {expected}",
            times.len()
        );
        let mut times = times.into_iter();
        for (workload, timing) in workloads.iter().zip(timings) {
            let per_sample = timed_statements(workload);
            for rep in 0..plan.warmup + reps {
                let sample: f64 = times.by_ref().take(per_sample).sum();
                if rep >= plan.warmup {
                    timing.warm.push(sample);
                }
            }
        }
        Ok(())
    }

    /// Cold rounds: restarted (empty shared buffers), page cache dropped before each sample.
    fn cold(
        &mut self,
        workloads: &[Workload],
        plan: &Plan,
        timings: &mut [Timings],
    ) -> anyhow::Result<()> {
        for _ in 0..plan.cold_reps {
            self.postgres.restart()?;
            let mut script = String::from("\\timing on\n\\o /dev/null\n");
            for workload in workloads {
                if plan.drop_caches {
                    script.push_str("\\! echo 1 > /proc/sys/vm/drop_caches\n");
                }
                for statement in &workload.sql {
                    let _ = writeln!(script, "{statement}");
                }
            }
            let mut times = psql_times(&self.postgres, &script)?.into_iter();
            for (workload, timing) in workloads.iter().zip(timings.iter_mut()) {
                timing
                    .cold
                    .push(times.by_ref().take(timed_statements(workload)).sum());
            }
        }
        Ok(())
    }

    fn stop(self) {
        drop(self.postgres);
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Statements of a sample that psql times (meta-commands such as `\set` are not timed).
fn timed_statements(workload: &Workload) -> usize {
    workload.sql.iter().filter(|s| !s.starts_with('\\')).count()
}

/// Runs a script with `\timing on` and returns every `Time: … ms` psql printed, in order.
fn psql_times(postgres: &Postgres, script: &str) -> anyhow::Result<Vec<f64>> {
    let output = postgres.psql_script(script.as_bytes())?;
    Ok(output
        .lines()
        .filter_map(|line| line.strip_prefix("Time: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect())
}

fn ratio_cell(numerator: f64, denominator: f64) -> String {
    if denominator > 0.0 {
        format!("{:.2}", numerator / denominator)
    } else {
        "—".into()
    }
}

fn markdown(
    plan: &Plan,
    workloads: &[Workload],
    results: &Results,
    machine: &Machine,
    command: &str,
) -> String {
    let (begin, end) = markers(plan.kind);
    let (title, ceiling_max, postgres_min, postgres_scope) = match plan.kind {
        Kind::Search => (
            "Search latency: Sluice versus raw tantivy and PostgreSQL",
            SEARCH_CEILING_RATIO_MAX,
            SEARCH_POSTGRES_RATIO_MIN,
            "broad text queries",
        ),
        Kind::Aggs => (
            "Aggregation latency: Sluice versus raw tantivy and PostgreSQL",
            AGGS_CEILING_RATIO_MAX,
            AGGS_POSTGRES_RATIO_MIN,
            "every aggregation",
        ),
    };
    let mut out = String::new();
    let _ = writeln!(out, "{begin}\n## {title}\n");
    let _ = writeln!(
        out,
        "{}\n",
        machine.measured_on(
            &crate::report::utc_date(),
            machine.load_average,
            crate::machine::load_average()
        )
    );
    let _ = writeln!(out, "```sh\n{command}\n```\n");
    let _ = writeln!(
        out,
        "{} documents of `sluice-bench bulk`. p50 / p99 in milliseconds over {} warm repetitions \
         and {} cold ones. Warm: in {} rounds, in each of which every engine runs its share of \
         the repetitions in turn, each workload after {} untimed runs, so that the machine's \
         drift in speed weighs on every engine alike. Cold: {}. Sluice is timed over HTTP from a client \
         in this process (request sent to response read); tantivy in-process; PostgreSQL {} by \
         psql's `\\timing` over a unix socket.\n",
        plan.docs,
        plan.reps,
        plan.cold_reps,
        results.rounds,
        plan.warmup,
        if plan.drop_caches {
            "the Sluice server and PostgreSQL restarted and the tantivy index reopened before each cold \
             round, and the page cache dropped (`/proc/sys/vm/drop_caches`) before each sample"
        } else {
            "processes restarted and the index reopened before each cold round; the page cache could \
             not be dropped"
        },
        results.postgres_version.as_deref().unwrap_or("(skipped)")
    );
    let _ = writeln!(
        out,
        "| workload | Sluice warm | tantivy warm | PostgreSQL warm | Sluice cold | tantivy cold | PostgreSQL cold | Sluice / tantivy p50 (≤ {ceiling_max}) | PostgreSQL / Sluice p50 (≥ {postgres_min}) | found (Sluice / tantivy) |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    let cell = |t: Option<&Timings>, warm: bool| -> String {
        t.map_or("—".into(), |t| {
            let l = Latency::of(if warm { t.warm.clone() } else { t.cold.clone() });
            format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms)
        })
    };
    let (mut ceiling_met, mut ceiling_total, mut postgres_met, mut postgres_total) = (0, 0, 0, 0);
    for (n, workload) in workloads.iter().enumerate() {
        let sluice = results.sluice.get(n);
        let ceiling = results.ceiling.as_ref().and_then(|c| c.get(n));
        let postgres = results.postgres.as_ref().and_then(|p| p.get(n));
        let p50 = |t: Option<&Timings>| t.map_or(0.0, |t| Latency::of(t.warm.clone()).p50_ms);
        let ceiling_ratio = if ceiling.is_some() {
            let ratio = p50(sluice) / p50(ceiling).max(f64::MIN_POSITIVE);
            ceiling_total += 1;
            let met = ratio <= ceiling_max;
            ceiling_met += usize::from(met);
            format!("{ratio:.2} {}", if met { "met" } else { "**not met**" })
        } else {
            "—".into()
        };
        let postgres_ratio = match postgres {
            Some(_) if workload.postgres_target => {
                let ratio = p50(postgres) / p50(sluice).max(f64::MIN_POSITIVE);
                postgres_total += 1;
                let met = ratio >= postgres_min;
                postgres_met += usize::from(met);
                format!("{ratio:.1} {}", if met { "met" } else { "**not met**" })
            }
            Some(_) => format!("{} (no target)", ratio_cell(p50(postgres), p50(sluice))),
            None => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {ceiling_ratio} | {postgres_ratio} | {} / {} |",
            workload.title,
            cell(sluice, true),
            cell(ceiling, true),
            cell(postgres, true),
            cell(sluice, false),
            cell(ceiling, false),
            cell(postgres, false),
            sluice.map_or("—", |t| t.check.as_str()),
            ceiling.map_or("—", |t| t.check.as_str()),
        );
    }
    let _ = writeln!(
        out,
        "\nTargets: within {ceiling_max}× of raw tantivy's p50, met on {ceiling_met} of \
         {ceiling_total} workloads; at least {postgres_min}× lower p50 than PostgreSQL \
         ({postgres_scope}), met on {postgres_met} of {postgres_total}.\n{end}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_of_both_kinds_has_sql_and_a_unique_id() {
        for kind in [Kind::Search, Kind::Aggs] {
            let plan = Plan {
                kind,
                docs: 1_000,
                seed: 42,
                reps: 1,
                warmup: 0,
                cold_reps: 0,
                drop_caches: false,
            };
            let workloads = plan.workloads();
            let mut ids: Vec<_> = workloads.iter().map(|w| w.id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), workloads.len());
            assert!(workloads.iter().all(|w| timed_statements(w) > 0));
        }
    }

    #[test]
    fn sections_are_replaced_between_their_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        fs::write(&path, "# B\n\nbefore\n<!-- a -->\nold\n<!-- z -->\nafter\n").unwrap();
        write_section(
            &path,
            "<!-- a -->",
            "<!-- z -->",
            "<!-- a -->\nnew\n<!-- z -->\n",
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# B\n\nbefore\n<!-- a -->\nnew\n<!-- z -->\nafter\n"
        );
    }

    #[test]
    fn the_range_window_is_the_middle_half() {
        let (from, to) = range_window_ms(1_000_000);
        assert_eq!(from, START_EPOCH_MS + 250_000 * SPACING_MS);
        assert_eq!(to, START_EPOCH_MS + 750_000 * SPACING_MS);
    }
}
