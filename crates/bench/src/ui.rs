//! `sluice-bench ui`: the dashboard's bounds with 1,000,000 documents in `example-*` (issue 13).
//!
//! A real `sluice up` gets the hello/bye scenario's records (`@timestamp`, `message` of "hello
//! …" or "bye …") spread over the last 23 hours into hourly indices `example-YYYY-MM-DD-HH`, as a
//! Firehose delivery stream with `IndexRotationPeriod: OneHour` names them, loaded over `_bulk`
//! with the default dynamic mapping. Then, through the dashboard's own JSON API, the saved
//! objects a user builds by clicking in tests/python/test_ui_dashboards.py: the index pattern
//! `example-*`, the three counters (every message, `message:hello`, `message:bye`), messages over
//! time as bars, the saved search `message:bye`, and a dashboard of them over the last 24 hours
//! that refreshes itself every 5 s.
//!
//! Headless Chromium, driven by Playwright for Python (`ui_probe.py`, embedded here and run with
//! `--python`), opens each view by its URL in a fresh browser context (an empty cache, as a first
//! visit) `--runs` times: the default first page (Console), Discover on `example-*` over 24 hours
//! (hit count, histogram, newest rows), and the dashboard (every panel's numbers). A view is
//! ready at the first animation frame that shows its data with its controls in place; the
//! numbers shown are checked against what was loaded. Then the dashboard stays open for
//! `--watch-seconds` with its auto-refresh while the harness reads the server's CPU time, next to
//! the same span with no browser at all.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};

use crate::docs::iso_timestamp;
use crate::http::Connection;
use crate::ledger::Latency;
use crate::machine::{self, Machine};
use crate::server::{self, Server};

pub const BEGIN_MARKER: &str = "<!-- bench-ui:begin -->";
pub const END_MARKER: &str = "<!-- bench-ui:end -->";
/// The browser side, written next to the data directory and run with `--python`.
const PROBE: &str = include_str!("ui_probe.py");
/// The issue's bounds: the first page interactive within 1 s; the dashboard refreshing every
/// 5 s with the server's CPU under 5 % at idle load.
const TARGET_READY_MS: f64 = 1000.0;
const TARGET_CPU_PERCENT: f64 = 5.0;
/// The dashboard's auto-refresh interval, in seconds.
const REFRESH_S: u64 = 5;
/// The records span the last 23 hours, so that the views' "last 24 hours" hold every one of
/// them for the hour the run may take.
const SPAN_MS: i64 = 23 * 3600 * 1000;
/// Every fifth record of five: three are "hello …", two "bye …".
const HELLO_OF_FIVE: u64 = 3;
const PATTERN_ID: &str = "example";
const DASHBOARD_ID: &str = "hello-bye";

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Records loaded into `example-*`.
    #[arg(long, default_value_t = 1_000_000)]
    docs: u64,
    /// Records per `_bulk` request.
    #[arg(long, default_value_t = 5_000)]
    batch: u64,
    /// Concurrent `_bulk` clients of the load.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Times each view is opened, each in a fresh browser context.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How long the auto-refreshing dashboard (and, before it, nothing) is watched.
    #[arg(long, default_value_t = 60)]
    watch_seconds: u64,
    /// A Python with Playwright (`pip install playwright`); `./scripts/test.sh` makes one in
    /// `.venv-test`, the default when it exists.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Chromium's executable; defaults to `chromium` on the PATH.
    #[arg(long)]
    chromium: Option<PathBuf>,
    /// The `sluice` binary; defaults to the one next to this binary (target/release/sluice).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Write the results into this Markdown file between the markers.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One view's timings over the runs, in milliseconds since its navigation started.
#[derive(Debug, Default)]
struct ViewTimes {
    ready: Vec<f64>,
    interactive: Vec<f64>,
    loaded: Vec<f64>,
}

/// The server's CPU over a watched span.
#[derive(Debug, Clone, Copy)]
struct CpuSpan {
    cpu_seconds: f64,
    wall_seconds: f64,
}

impl CpuSpan {
    /// Percent of one core.
    fn percent(&self) -> f64 {
        100.0 * self.cpu_seconds / self.wall_seconds
    }
}

struct Results {
    load_seconds: f64,
    views: Vec<(String, ViewTimes)>,
    idle: CpuSpan,
    dashboard: CpuSpan,
    dashboard_requests: u64,
}

pub fn run(args: UiArgs) -> anyhow::Result<()> {
    ensure!(args.docs >= 5, "--docs must be at least 5");
    ensure!(args.runs >= 1 && args.clients >= 1 && args.batch >= 1);
    ensure!(
        args.watch_seconds >= 2 * REFRESH_S,
        "--watch-seconds must cover at least two refreshes ({} s)",
        2 * REFRESH_S
    );
    let sluice = server::sluice_binary(args.sluice.as_deref())?;
    let python = match &args.python {
        Some(python) => python.clone(),
        None if PathBuf::from(".venv-test/bin/python").is_file() => ".venv-test/bin/python".into(),
        None => "python3".into(),
    };
    let chromium = match &args.chromium {
        Some(chromium) => chromium.clone(),
        None => which("chromium")
            .context("no chromium on the PATH: install Debian's chromium or give --chromium")?,
    };
    check_playwright(&python)?;

    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-ui-")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let load_before = machine::load_average();
    let data_dir = scratch.path().join("data");
    fs::create_dir_all(&data_dir)?;
    let server = Server::start(&sluice, &data_dir, &scratch.path().join("sluice.log"))?;

    let started = Instant::now();
    load(&server, &args)?;
    let load_seconds = started.elapsed().as_secs_f64();
    eprintln!("loaded {} records in {load_seconds:.1} s", args.docs);
    save_objects(&server)?;
    server::settle(&[&server])?;

    eprintln!("watching the idle server for {} s", args.watch_seconds);
    let idle = watch_cpu(&server, Duration::from_secs(args.watch_seconds))?;

    let probe_path = scratch.path().join("ui_probe.py");
    fs::write(&probe_path, PROBE)?;
    let mut probe = Command::new(&python)
        .arg(&probe_path)
        .arg(format!("http://{}", server.ui_address))
        .arg(&chromium)
        .arg(args.runs.to_string())
        .arg(args.watch_seconds.to_string())
        .arg(DASHBOARD_ID)
        .arg(PATTERN_ID)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let stdout = probe.stdout.take().context("no stdout")?;
    let mut views: Vec<(String, ViewTimes)> = Vec::new();
    let mut watch_start: Option<(f64, Instant)> = None;
    let mut watched: Option<(CpuSpan, u64)> = None;
    let expected = Expected::of(args.docs);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let event: Value =
            serde_json::from_str(&line).with_context(|| format!("the probe printed {line:?}"))?;
        match event["event"].as_str() {
            Some("view") => {
                let view = event["view"].as_str().unwrap_or_default().to_owned();
                expected.check(&view, &event["shown"])?;
                let times = match views.iter_mut().find(|(name, _)| *name == view) {
                    Some((_, times)) => times,
                    None => {
                        views.push((view.clone(), ViewTimes::default()));
                        &mut views.last_mut().context("just pushed")?.1
                    }
                };
                times.ready.push(number(&event, "ready")?);
                times.interactive.push(number(&event, "interactive")?);
                times.loaded.push(number(&event, "loaded")?);
                eprintln!(
                    "{view}: ready {:.0} ms",
                    times.ready.last().copied().unwrap_or(0.0)
                );
            }
            Some("watching") => {
                expected.check("dashboard", &event["shown"])?;
                watch_start = Some((server.cpu_seconds()?, Instant::now()));
                eprintln!(
                    "watching the dashboard refresh itself for {} s",
                    args.watch_seconds
                );
            }
            Some("watched") => {
                let (cpu_before, wall_before) =
                    watch_start.context("the probe watched before it was watching")?;
                let span = CpuSpan {
                    cpu_seconds: server.cpu_seconds()? - cpu_before,
                    wall_seconds: wall_before.elapsed().as_secs_f64(),
                };
                watched = Some((span, event["requests"].as_u64().unwrap_or(0)));
            }
            _ => bail!("the probe printed {line:?}"),
        }
    }
    let status = probe.wait()?;
    ensure!(status.success(), "the browser probe failed: {status}");
    let (dashboard, dashboard_requests) =
        watched.context("the probe ended before it watched the dashboard")?;
    // Five panels, one request each per refresh: fewer means the page did not refresh itself.
    let refreshes_at_least = args.watch_seconds / REFRESH_S - 1;
    ensure!(
        dashboard_requests >= refreshes_at_least * PANELS,
        "the dashboard sent {dashboard_requests} search requests in {} s; expected at least {}",
        args.watch_seconds,
        refreshes_at_least * PANELS
    );
    server.stop()?;
    let load_after = machine::load_average();

    let results = Results {
        load_seconds,
        views,
        idle,
        dashboard,
        dashboard_requests,
    };
    let section = markdown(&args, &machine, load_before, load_after, &results);
    println!("{section}");
    if let Some(path) = &args.report {
        crate::report::write_section(path, BEGIN_MARKER, END_MARKER, &section)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn number(event: &Value, key: &str) -> anyhow::Result<f64> {
    event[key]
        .as_f64()
        .with_context(|| format!("no {key} in the probe's {event}"))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn check_playwright(python: &Path) -> anyhow::Result<()> {
    let found = Command::new(python)
        .args(["-c", "import playwright.sync_api"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    ensure!(
        found,
        "{} cannot import Playwright: run ./scripts/test.sh once (it fills .venv-test) or \
         `pip install playwright`, and give that Python with --python",
        python.display()
    );
    Ok(())
}

/// What the views must show for the records loaded.
struct Expected {
    all: u64,
    hello: u64,
    bye: u64,
}

impl Expected {
    fn of(docs: u64) -> Expected {
        let hello = docs / 5 * HELLO_OF_FIVE + (docs % 5).min(HELLO_OF_FIVE);
        Expected {
            all: docs,
            hello,
            bye: docs - hello,
        }
    }

    fn check(&self, view: &str, shown: &Value) -> anyhow::Result<()> {
        match view {
            "discover" => {
                let status = shown["status"].as_str().unwrap_or_default();
                ensure!(
                    status.starts_with(&format!("{} hits", self.all)),
                    "Discover showed {status:?}, expected {} hits",
                    self.all
                );
            }
            "dashboard" => {
                for (panel, count) in [
                    ("All messages", self.all),
                    ("Hello", self.hello),
                    ("Bye", self.bye),
                ] {
                    let value = shown[panel].as_str().unwrap_or_default().replace(',', "");
                    ensure!(
                        value == count.to_string(),
                        "the dashboard's {panel} panel showed {:?}, expected {count}",
                        shown[panel]
                    );
                }
                for panel in ["Messages over time", "Bye messages"] {
                    ensure!(
                        shown[panel] == "shown",
                        "the dashboard's {panel} panel is empty"
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The dashboard's panels (three counters, the bars, the saved search).
const PANELS: u64 = 5;

/// Loads the records over `_bulk` from `args.clients` connections, then refreshes and checks
/// the counts.
fn load(server: &Server, args: &UiArgs) -> anyhow::Result<()> {
    let now_ms: i64 = SystemTime::now()
        .duration_since(UNIX_EPOCH)?
        .as_millis()
        .try_into()?;
    let first_ms = now_ms - SPAN_MS;
    let step = SPAN_MS as f64 / args.docs as f64;
    let batches = args.docs.div_ceil(args.batch);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut connection = Connection::open(&server.search_address)?;
                    let mut body = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if n >= batches {
                            break;
                        }
                        body.clear();
                        for i in n * args.batch..((n + 1) * args.batch).min(args.docs) {
                            let at = iso_timestamp(first_ms + (i as f64 * step) as i64);
                            let word = if i % 5 < HELLO_OF_FIVE {
                                "hello"
                            } else {
                                "bye"
                            };
                            let _ = std::io::Write::write_fmt(
                                &mut body,
                                format_args!(
                                    "{{\"index\":{{\"_index\":\"example-{}-{}\"}}}}\n{}\n",
                                    &at[..10],
                                    &at[11..13],
                                    json!({"@timestamp": at, "message": format!("{word} {i}")})
                                ),
                            );
                        }
                        let response =
                            connection.request("POST", "/_bulk", "application/x-ndjson", &body);
                        let checked = response.and_then(|response| {
                            let answer: Value = serde_json::from_slice(&response.body)?;
                            ensure!(
                                response.status == 200 && answer["errors"] == false,
                                "bulk request {n}: {}",
                                response.text().chars().take(500).collect::<String>()
                            );
                            Ok(())
                        });
                        if let Err(error) = checked {
                            failed.store(true, Ordering::Relaxed);
                            return Err(error);
                        }
                        if n % 20 == 19 {
                            eprint!("\r{} of {batches} bulk requests", n + 1);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!();
    let mut admin = Connection::open(&server.search_address)?;
    let response = admin.json("POST", "/example-*/_refresh", "")?;
    ensure!(response.status == 200, "refresh: {}", response.text());
    let expected = Expected::of(args.docs);
    for (query, want) in [
        ("{}", expected.all),
        (r#"{"query":{"match":{"message":"hello"}}}"#, expected.hello),
    ] {
        let response = admin.json("POST", "/example-*/_count", query)?;
        let count = serde_json::from_slice::<Value>(&response.body)?["count"].as_u64();
        ensure!(
            count == Some(want),
            "example-* counts {count:?} for {query}, expected {want}"
        );
    }
    Ok(())
}

/// The scenario's saved objects, through the dashboard's JSON API.
fn save_objects(server: &Server) -> anyhow::Result<()> {
    let counter = |title: &str, filter: &str| json!({"title": title, "type": "metric", "pattern": PATTERN_ID, "metric": "count", "filter": filter});
    let panel = |id: &str, kind: &str, reference: &str, x: u64, y: u64, w: u64, h: u64| json!({"id": id, "kind": kind, "ref": reference, "x": x, "y": y, "w": w, "h": h});
    let objects = [
        (
            "index-pattern",
            PATTERN_ID,
            json!({"title": "example-*", "timeFieldName": "@timestamp"}),
        ),
        ("visualization", "all-messages", counter("All messages", "")),
        ("visualization", "hello", counter("Hello", "message:hello")),
        ("visualization", "bye", counter("Bye", "message:bye")),
        (
            "visualization",
            "messages-over-time",
            json!({"title": "Messages over time", "type": "bar", "pattern": PATTERN_ID,
                   "metric": "count", "bucket": "date_histogram", "bucketField": "@timestamp",
                   "interval": "auto"}),
        ),
        (
            "search",
            "bye-messages",
            json!({"title": "Bye messages", "pattern": PATTERN_ID, "query": "message:bye", "filters": []}),
        ),
        (
            "dashboard",
            DASHBOARD_ID,
            json!({"title": "Hello and bye", "query": "", "filters": [], "from": "now-24h",
            "to": "now", "refresh": REFRESH_S, "panels": [
                panel("1", "visualization", "all-messages", 0, 0, 4, 2),
                panel("2", "visualization", "hello", 4, 0, 4, 2),
                panel("3", "visualization", "bye", 8, 0, 4, 2),
                panel("4", "visualization", "messages-over-time", 0, 2, 8, 4),
                panel("5", "search", "bye-messages", 8, 2, 4, 4),
            ]}),
        ),
    ];
    let mut connection = Connection::open(&server.ui_address)?;
    for (kind, id, attributes) in objects {
        let response = connection.json(
            "PUT",
            &format!("/api/saved_objects/{kind}/{id}"),
            &json!({ "attributes": attributes }).to_string(),
        )?;
        ensure!(
            response.status == 200 || response.status == 201,
            "saving {kind} {id}: {} {}",
            response.status,
            response.text()
        );
    }
    Ok(())
}

/// The server's CPU time over `span` with nothing asked of it by the harness.
fn watch_cpu(server: &Server, span: Duration) -> anyhow::Result<CpuSpan> {
    let before = server.cpu_seconds()?;
    let started = Instant::now();
    thread::sleep(span);
    Ok(CpuSpan {
        cpu_seconds: server.cpu_seconds()? - before,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

fn markdown(
    args: &UiArgs,
    machine: &Machine,
    load_before: f64,
    load_after: f64,
    results: &Results,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN_MARKER}");
    let _ = writeln!(
        out,
        "## The dashboard with {} records (`sluice-bench ui`)\n",
        args.docs
    );
    let _ = writeln!(
        out,
        "{}\n",
        machine.measured_on(&crate::report::utc_date(), load_before, load_after)
    );
    let _ = writeln!(
        out,
        "Command: `cargo build --release -p sluice -p sluice-bench && \
         target/release/sluice-bench ui --docs {} --runs {} --watch-seconds {}` \
         (Playwright for Python from `.venv-test`, made by `./scripts/test.sh`; Debian's \
         Chromium, headless). {} records loaded into `example-*` (hourly indices, dynamic \
         mapping) over `_bulk` in {:.1} s.\n",
        args.docs, args.runs, args.watch_seconds, args.docs, results.load_seconds
    );
    let _ = writeln!(
        out,
        "Each view opened {} times by its URL, each in a fresh browser context (an empty cache); \
         milliseconds from the start of the navigation. *Ready* is the first frame that shows \
         the view's data (Discover: the hit count, the histogram and the newest rows over 24 \
         hours; the dashboard: all five panels with their numbers, checked against the records \
         loaded) with its controls in place. Target: the first page interactive within {:.0} ms.\n",
        args.runs, TARGET_READY_MS
    );
    let _ = writeln!(
        out,
        "| view | DOM interactive p50 | load event p50 | ready p50 | ready max | target |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for (view, times) in &results.views {
        let ready = Latency::of(times.ready.clone());
        let interactive = Latency::of(times.interactive.clone());
        let loaded = Latency::of(times.loaded.clone());
        let met = if ready.max_ms <= TARGET_READY_MS {
            "met"
        } else {
            "**not met**"
        };
        let label = match view.as_str() {
            "console" => "Console (the default first page)",
            "discover" => "Discover, `example-*`, last 24 hours",
            "dashboard" => "Dashboard: 3 counters, bars, saved search",
            other => other,
        };
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {met} |",
            interactive.p50_ms, loaded.p50_ms, ready.p50_ms, ready.max_ms
        );
    }
    let cpu_met = if results.dashboard.percent() < TARGET_CPU_PERCENT {
        "met"
    } else {
        "**not met**"
    };
    let _ = writeln!(
        out,
        "\nThe server's CPU (user + system, percent of one core) over {} s:\n",
        args.watch_seconds
    );
    let _ = writeln!(out, "| while | server CPU | search requests | target |");
    let _ = writeln!(out, "|---|---:|---:|---|");
    let _ = writeln!(
        out,
        "| nothing is connected | {:.2} % | 0 | |",
        results.idle.percent()
    );
    let _ = writeln!(
        out,
        "| the dashboard is open, refreshing every {REFRESH_S} s | {:.2} % | {} | < {TARGET_CPU_PERCENT:.0} %: {cpu_met} |",
        results.dashboard.percent(),
        results.dashboard_requests
    );
    let _ = writeln!(out, "{END_MARKER}");
    out
}
