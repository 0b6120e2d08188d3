//! The read path of `sluice-bench ledger` at the filled ledger: a lookup by document id, a
//! lookup by an indexed field, `history()` of one document, a digest, and a revision with its
//! proof, each timed per operation with the bytes it read. Before each kind of operation the
//! ledger's files are dropped from the page cache (`posix_fadvise(DONTNEED)` on those files
//! alone, so other work on the machine keeps its cache), and the process's `/proc/self/io`
//! counters are read around each operation: `rchar` counts the bytes its read calls asked for
//! (served from the page cache or not), `read_bytes` the bytes fetched from the device.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use ion_rs::Element;
use sluice_ledger::{BlockAddress, Ledger, LedgerDigest};

use crate::ledger::{Latency, Rng, TABLE_NAME, vin};

/// One kind of read, timed at the filled ledger.
#[derive(Debug, Clone)]
pub(crate) struct ReadRow {
    pub(crate) label: &'static str,
    pub(crate) n_samples: usize,
    pub(crate) latency: Latency,
    /// Mean bytes asked of read calls per operation (`rchar`).
    pub(crate) syscall_bytes_mean: f64,
    /// Mean bytes read from the device per operation (`read_bytes`).
    pub(crate) device_bytes_mean: f64,
}

/// The process's I/O counters: `(rchar, read_bytes)`.
fn io_counters() -> anyhow::Result<(u64, u64)> {
    let text = fs::read_to_string("/proc/self/io").context("reading /proc/self/io")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
            .with_context(|| format!("/proc/self/io has no {name}"))
    };
    Ok((field("rchar:")?, field("read_bytes:")?))
}

/// Drops the pages of every file under `dir` from the page cache (clean pages only: the
/// ledger is checkpointed first, so nothing of it is dirty).
fn evict_from_page_cache(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            evict_from_page_cache(&path)?;
        } else {
            let file = fs::File::open(&path)?;
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
                .with_context(|| format!("posix_fadvise on {}", path.display()))?;
        }
    }
    Ok(())
}

/// Times `samples` runs of `operation(k)` after evicting the ledger's files from the page cache.
fn time_reads(
    label: &'static str,
    samples: usize,
    ledger_dir: &Path,
    mut operation: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<ReadRow> {
    evict_from_page_cache(ledger_dir)?;
    // Reading the counters is itself a read: measured once and taken off every sample.
    let (first, _) = io_counters()?;
    let (second, _) = io_counters()?;
    let counter_read_bytes = second - first;
    let mut latencies_ms = Vec::with_capacity(samples);
    let (mut syscall_bytes, mut device_bytes) = (0u64, 0u64);
    for k in 0..samples {
        let (rchar_before, device_before) = io_counters()?;
        let sent = Instant::now();
        operation(k)?;
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        let (rchar_after, device_after) = io_counters()?;
        syscall_bytes += (rchar_after - rchar_before).saturating_sub(counter_read_bytes);
        device_bytes += device_after - device_before;
    }
    let row = ReadRow {
        label,
        n_samples: samples,
        latency: Latency::of(latencies_ms),
        syscall_bytes_mean: syscall_bytes as f64 / samples.max(1) as f64,
        device_bytes_mean: device_bytes as f64 / samples.max(1) as f64,
    };
    eprintln!(
        "sluice reads: {label}: p50 {:.3} ms, p99 {:.3} ms, {:.0} bytes read ({:.0} from the device) per operation",
        row.latency.p50_ms, row.latency.p99_ms, row.syscall_bytes_mean, row.device_bytes_mean
    );
    Ok(row)
}

/// The read rows at the filled ledger. `written[n]` is document `n`'s block and id (its VIN is
/// `vin(n)`); `samples` operations of each kind, on documents drawn with `seed`.
pub(crate) fn sluice_reads(
    ledger: &Arc<Ledger>,
    written: &[(u64, String)],
    digest: &LedgerDigest,
    samples: usize,
    seed: u64,
    ledger_dir: &Path,
) -> anyhow::Result<Vec<ReadRow>> {
    ensure!(!written.is_empty(), "no documents to read");
    // The reads see a quiet ledger: the fill's last checkpoint is done before the clock starts.
    ledger.checkpoint()?;
    let mut rng = Rng::new(seed.wrapping_add(2));
    let picks: Vec<usize> = (0..samples)
        .map(|_| rng.below(written.len() as u64) as usize)
        .collect();
    let pick = |k: usize| -> usize { picks.get(k).copied().unwrap_or(0) };
    let document = |k: usize| -> &(u64, String) { &written[pick(k)] };
    let one_row = |results: Vec<Element>, what: &str| -> anyhow::Result<()> {
        ensure!(results.len() == 1, "{what} found {} rows", results.len());
        Ok(())
    };
    let mut rows = Vec::new();
    let by_id = format!("SELECT * FROM {TABLE_NAME} AS r BY rid WHERE rid = ?");
    rows.push(time_reads(
        "lookup by document id (`SELECT * FROM T AS r BY rid WHERE rid = ?`)",
        samples,
        ledger_dir,
        |k| {
            let id = Element::string(document(k).1.as_str());
            one_row(ledger.execute(&by_id, &[id])?, "a lookup by id")
        },
    )?);
    let by_vin = format!("SELECT * FROM {TABLE_NAME} WHERE VIN = ?");
    rows.push(time_reads(
        "lookup by an indexed field (`SELECT * FROM T WHERE VIN = ?`)",
        samples,
        ledger_dir,
        |k| {
            let vin = Element::string(vin(pick(k) as u64));
            one_row(ledger.execute(&by_vin, &[vin])?, "a lookup by VIN")
        },
    )?);
    let history = format!("SELECT * FROM history({TABLE_NAME}) AS h WHERE h.metadata.id = ?");
    rows.push(time_reads(
        "`history()` of one document (`SELECT * FROM history(T) AS h WHERE h.metadata.id = ?`)",
        samples,
        ledger_dir,
        |k| {
            let id = Element::string(document(k).1.as_str());
            one_row(ledger.execute(&history, &[id])?, "history()")
        },
    )?);
    rows.push(time_reads(
        "digest (`Ledger::digest`)",
        samples,
        ledger_dir,
        |_| {
            ledger.digest()?.context("the ledger has no digest")?;
            Ok(())
        },
    )?);
    let strand_id = digest.digest_tip_address.strand_id.clone();
    rows.push(time_reads(
        "revision with its proof (`Ledger::revision(block, id, tip)`)",
        samples,
        ledger_dir,
        |k| {
            let (sequence_no, id) = document(k);
            let address = BlockAddress {
                strand_id: strand_id.clone(),
                sequence_no: *sequence_no,
            };
            let found = ledger.revision(&address, id, Some(&digest.digest_tip_address))?;
            ensure!(found.proof.is_some(), "revision returned no proof");
            Ok(())
        },
    )?);
    Ok(rows)
}
