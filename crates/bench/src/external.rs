//! `sluice-bench external`: the same Firehose records delivered, in one run, into the
//! delivering Sluice's own (embedded) index and into an external cluster over loopback — a
//! second `sluice up`, whose API is Elasticsearch's, named by the stream's ClusterEndpoint —
//! each timed from the first PutRecordBatch until `_count` of the destination index holds every
//! record. The issue's target is external ≥ 0.8 × embedded throughput.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::ensure;

use crate::firehose::{self, PutApi, Records};
use crate::http::Connection;
use crate::machine::{self, Machine};
use crate::server::Server;

/// Markers of this benchmark's section of BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- bench-external:begin -->";
pub const END_MARKER: &str = "<!-- bench-external:end -->";
/// The issue's target: external throughput at least this share of the embedded one.
const TARGET_RATIO: f64 = 0.8;

#[derive(clap::Args, Debug)]
pub struct ExternalArgs {
    /// Records to send (log documents of about 310 bytes of JSON each).
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Records per PutRecordBatch call (500 is the AWS maximum).
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
    /// Write the results into this Markdown file between `<!-- bench-external:begin -->` and
    /// `<!-- bench-external:end -->` (appended if the markers are missing).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One side: from the first put until every record is counted in the destination.
#[derive(Debug, Clone)]
struct Side {
    ack_seconds: f64,
    searchable_seconds: f64,
    /// CPU of every process of the side (the delivering Sluice, and the cluster's).
    cpu_seconds: f64,
}

fn run_side(
    sluice: &Path,
    scratch: &Path,
    name: &str,
    records: &Records,
    args: &ExternalArgs,
    external: bool,
) -> anyhow::Result<Side> {
    let cluster = if external {
        Some(Server::start(
            sluice,
            &scratch.join(format!("{name}-cluster-data")),
            &scratch.join(format!("{name}-cluster.log")),
        )?)
    } else {
        None
    };
    let server = Server::start(
        sluice,
        &scratch.join(format!("{name}-data")),
        &scratch.join(format!("{name}.log")),
    )?;
    let endpoint = cluster
        .as_ref()
        .map(|cluster| format!("http://{}", cluster.search_address));
    let result = (|| -> anyhow::Result<Side> {
        // The embedded side's worker buffers one second, as the external's: both flush each
        // MiB or second, so they compare the destination, not the buffering.
        firehose::create_delivery_stream_into(&server, endpoint.as_deref(), 1)?;
        let cpu = || -> anyhow::Result<f64> {
            let mut total = server.cpu_seconds()?;
            if let Some(cluster) = &cluster {
                total += cluster.cpu_seconds()?;
            }
            Ok(total)
        };
        let cpu_before = cpu()?;
        let started = Instant::now();
        let put = firehose::put_all(
            &server.aws_address,
            PutApi::Firehose,
            records,
            args.batch as usize,
            args.clients,
        )?;
        let search_address = cluster
            .as_ref()
            .map_or(server.search_address.as_str(), |cluster| {
                cluster.search_address.as_str()
            });
        let searchable_seconds = firehose::wait_until_counted(
            &mut Connection::open(search_address)?,
            records.base64.len() as u64,
            started,
            put.ack_seconds,
        )?;
        Ok(Side {
            ack_seconds: put.ack_seconds,
            searchable_seconds,
            cpu_seconds: cpu()? - cpu_before,
        })
    })();
    match result {
        Ok(side) => {
            server.stop()?;
            if let Some(cluster) = cluster {
                cluster.stop()?;
            }
            Ok(side)
        }
        Err(error) => {
            eprintln!("{name} log:\n{}", server.log_tail());
            if let Some(cluster) = &cluster {
                eprintln!("{name} cluster log:\n{}", cluster.log_tail());
            }
            Err(error)
        }
    }
}

pub fn run(args: ExternalArgs) -> anyhow::Result<()> {
    ensure!(
        args.records > 0 && args.batch > 0 && args.batch <= 500 && args.clients > 0,
        "records and clients must be positive, batch between 1 and 500"
    );
    let sluice = crate::server::sluice_binary(args.sluice.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-external")
        .tempdir()?;
    let machine = Machine::probe(scratch.path())?;
    let records = firehose::build_records(args.records, args.seed);
    eprintln!(
        "{} records, {:.1} MB; embedded first, then external",
        args.records,
        records.bytes as f64 / 1e6
    );
    let embedded = run_side(&sluice, scratch.path(), "embedded", &records, &args, false)?;
    eprintln!(
        "embedded: searchable in {:.1} s",
        embedded.searchable_seconds
    );
    let external = run_side(&sluice, scratch.path(), "external", &records, &args, true)?;
    eprintln!(
        "external: searchable in {:.1} s",
        external.searchable_seconds
    );
    let report = ExternalReport {
        machine,
        date_utc: crate::report::utc_date(),
        load_average_after: machine::load_average(),
        n_records: args.records,
        bytes: records.bytes,
        command: format!(
            "cargo build --release -p sluice -p sluice-bench && flock /tmp/bench.lock target/release/sluice-bench external --records {} --batch {} --clients {} --report BENCHMARKS.md",
            args.records, args.batch, args.clients
        ),
        embedded,
        external,
    };
    println!("{}", report.table_markdown());
    if let Some(path) = &args.report {
        report.write_into(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

struct ExternalReport {
    machine: Machine,
    date_utc: String,
    load_average_after: f64,
    n_records: u64,
    bytes: u64,
    command: String,
    embedded: Side,
    external: Side,
}

impl ExternalReport {
    fn row(&self, name: &str, side: &Side) -> String {
        format!(
            "| {name} | {:.0} | {:.2} | {:.1} s | {:.1} s | {:.1} s |\n",
            self.n_records as f64 / side.searchable_seconds,
            self.bytes as f64 / 1e6 / side.searchable_seconds,
            side.ack_seconds,
            side.searchable_seconds,
            side.cpu_seconds,
        )
    }

    fn table_markdown(&self) -> String {
        let mut out = String::from(
            "| destination | records/s until searchable | MB/s | last put acknowledged | all searchable | CPU of every process |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        out.push_str(&self.row("Sluice's embedded index", &self.embedded));
        out.push_str(&self.row(
            "an external Sluice over loopback (ClusterEndpoint, `_bulk`)",
            &self.external,
        ));
        let ratio = self.embedded.searchable_seconds / self.external.searchable_seconds;
        out.push_str(&format!(
            "\nExternal / embedded throughput: **{ratio:.2}** (target ≥ {TARGET_RATIO}: {}).\n",
            if ratio >= TARGET_RATIO {
                "met"
            } else {
                "not met"
            }
        ));
        out
    }

    fn markdown(&self) -> String {
        let m = &self.machine;
        format!(
            "{BEGIN_MARKER}\n\
             ## Firehose delivery into an external cluster versus the embedded index\n\n\
             {measured} \
             {n} records of {size:.0} bytes of JSON on average, put with PutRecordBatch into a \
             DirectPut stream (1 MiB or 1 s buffers), timed from the first put until `_count` of \
             the destination index holds every record.\n\n\
             ```sh\n{command}\n```\n\n\
             {table}\
             {END_MARKER}\n",
            measured = m.measured_on(&self.date_utc, m.load_average, self.load_average_after),
            n = self.n_records,
            size = self.bytes as f64 / self.n_records as f64,
            command = self.command,
            table = self.table_markdown(),
        )
    }

    /// Replaces the marked section of `path`, or appends it at the end.
    fn write_into(&self, path: &Path) -> anyhow::Result<()> {
        crate::report::write_section(path, BEGIN_MARKER, END_MARKER, &self.markdown())
    }
}
