//! The side-by-side table, and its Markdown form written into BENCHMARKS.md between markers so that
//! hand-written notes around it survive a re-run.

use std::fs;
use std::path::Path;

use crate::baseline::BaselineResult;
use crate::machine::Machine;

pub const BEGIN_MARKER: &str = "<!-- bench:begin -->";
pub const END_MARKER: &str = "<!-- bench:end -->";

#[derive(Debug, Clone)]
pub struct BulkResult {
    pub n_docs: u64,
    pub source_bytes: u64,
    /// From the first bulk request sent to the final refresh returning.
    pub seconds: f64,
    /// From the first bulk request sent to the last one acknowledged.
    pub sent_seconds: f64,
    pub peak_rss_bytes: u64,
    /// CPU time of the server process during the timed load.
    pub cpu_seconds: f64,
    pub batch: u64,
    pub clients: usize,
    /// Every document replaced a loaded one with its id (`--replace`).
    pub replaced: bool,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub sluice: BulkResult,
    pub baseline: Option<BaselineResult>,
    pub dynamic_baselines: Option<DynamicBaselines>,
    pub date_utc: String,
    pub load_average_after: f64,
}

/// tantivy given the fields Elasticsearch's dynamic mapping makes of the documents.
#[derive(Debug, Clone)]
pub struct DynamicBaselines {
    /// One commit at the end, as the ceiling.
    pub once: BaselineResult,
    /// A commit every second as well, as a Sluice index refreshes by default.
    pub every_second: BaselineResult,
}

struct Row {
    name: String,
    docs_per_second: f64,
    mb_per_second: f64,
    seconds: f64,
    cpu_seconds: f64,
    docs_per_cpu_second: f64,
    peak_rss_mib: f64,
}

impl Row {
    /// A row's rates from what a run measured (its name left empty).
    fn measured(
        n_docs: u64,
        source_bytes: u64,
        seconds: f64,
        cpu_seconds: f64,
        peak_rss_bytes: u64,
    ) -> Row {
        Row {
            name: String::new(),
            docs_per_second: n_docs as f64 / seconds,
            mb_per_second: source_bytes as f64 / 1e6 / seconds,
            seconds,
            cpu_seconds,
            docs_per_cpu_second: n_docs as f64 / cpu_seconds,
            peak_rss_mib: mib(peak_rss_bytes),
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

impl Report {
    fn rows(&self) -> Vec<Row> {
        let s = &self.sluice;
        let mut rows = vec![Row {
            name: format!(
                "Sluice `_bulk` over HTTP ({} clients × {} docs, fsync per bulk{})",
                s.clients,
                s.batch,
                if s.replaced {
                    ", each replacing a loaded document by id"
                } else {
                    ""
                }
            ),
            ..Row::measured(
                s.n_docs,
                s.source_bytes,
                s.seconds,
                s.cpu_seconds,
                s.peak_rss_bytes,
            )
        }];
        let tantivy_row = |name: &str, b: &BaselineResult| Row {
            name: name.to_owned(),
            ..Row::measured(
                b.n_docs,
                b.source_bytes,
                b.seconds,
                b.cpu_seconds,
                b.peak_rss_bytes,
            )
        };
        if let Some(b) = &self.baseline {
            rows.push(tantivy_row(
                "tantivy `IndexWriter` directly (same threads and memory budget)",
                b,
            ));
        }
        if let Some(d) = &self.dynamic_baselines {
            rows.push(tantivy_row(
                "tantivy, the dynamic mapping's fields (each string as text and as keyword), one commit",
                &d.once,
            ));
            rows.push(tantivy_row(
                "tantivy, the dynamic mapping's fields, a commit every second",
                &d.every_second,
            ));
        }
        rows
    }

    /// What the dynamic mapping's fields cost tantivy itself: each dynamic baseline's docs/s
    /// over the ceiling's (one commit, a commit a second), and Sluice's over the second.
    fn dynamic_ratios(&self) -> Option<(f64, f64, f64)> {
        let b = self.baseline.as_ref()?;
        let d = self.dynamic_baselines.as_ref()?;
        let rate = |r: &BaselineResult| r.n_docs as f64 / r.seconds;
        let sluice = self.sluice.n_docs as f64 / self.sluice.seconds;
        Some((
            rate(&d.once) / rate(b),
            rate(&d.every_second) / rate(b),
            sluice / rate(&d.every_second),
        ))
    }

    /// Sluice's rate over tantivy's: by wall clock, and by CPU time, which a busy machine skews less.
    fn ratios(&self) -> Option<(f64, f64)> {
        let b = self.baseline.as_ref()?;
        let s = &self.sluice;
        Some((
            (s.n_docs as f64 / s.seconds) / (b.n_docs as f64 / b.seconds),
            (s.n_docs as f64 / s.cpu_seconds) / (b.n_docs as f64 / b.cpu_seconds),
        ))
    }

    fn table_markdown(&self) -> String {
        let mut out = String::from(
            "| | docs/s | MB/s (source) | total time | CPU time | docs per CPU-second | peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for row in self.rows() {
            out.push_str(&format!(
                "| {} | {:.0} | {:.1} | {:.1} s | {:.1} s | {:.0} | {:.0} MiB |\n",
                row.name,
                row.docs_per_second,
                row.mb_per_second,
                row.seconds,
                row.cpu_seconds,
                row.docs_per_cpu_second,
                row.peak_rss_mib
            ));
        }
        if let Some((wall, cpu)) = self.ratios() {
            out.push_str(&format!(
                "\nSluice / tantivy: **{wall:.2}** by docs/s (target ≥ 0.50: {}), {cpu:.2} by docs per CPU-second\n",
                if wall >= 0.5 { "met" } else { "not met" }
            ));
        }
        if let Some((once, every_second, sluice)) = self.dynamic_ratios() {
            out.push_str(&format!(
                "\ntantivy itself, given the dynamic mapping's fields: {once:.2} of the ceiling's docs/s \
                 with one commit, {every_second:.2} committing every second; Sluice / the latter: {sluice:.2}\n"
            ));
        }
        out
    }

    /// What `bulk` prints at the end.
    pub fn table(&self) -> String {
        let s = &self.sluice;
        let mut out = format!(
            "\n{} documents, {:.1} MB of JSON source ({:.0} bytes each)\n\n",
            s.n_docs,
            s.source_bytes as f64 / 1e6,
            s.source_bytes as f64 / s.n_docs as f64
        );
        out.push_str(&self.table_markdown());
        out.push_str(&format!(
            "\nSluice: last bulk acknowledged at {:.1} s, final refresh done at {:.1} s; bulk latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            s.sent_seconds, s.seconds, s.latency_p50_ms, s.latency_p99_ms, s.latency_max_ms
        ));
        if let Some(b) = &self.baseline {
            out.push_str(&format!(
                "tantivy: generating the documents inside its timed loop costs {:.1} s of its {:.1} s\n",
                b.generate_seconds, b.seconds
            ));
        }
        out
    }

    fn markdown(&self) -> String {
        let m = &self.machine;
        format!(
            "{BEGIN_MARKER}\n\
             ## Bulk loading: Sluice versus raw tantivy\n\n\
             {measured}\n\n\
             ```sh\n{command}\n```\n\n\
             {table}\n\
             Sluice: last bulk acknowledged at {sent:.1} s, final refresh at {total:.1} s; \
             bulk latency p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms.\n\
             {generate}\
             {END_MARKER}\n",
            measured = m.measured_on(&self.date_utc, m.load_average, self.load_average_after),
            command = self.command,
            table = self.table_markdown(),
            sent = self.sluice.sent_seconds,
            total = self.sluice.seconds,
            p50 = self.sluice.latency_p50_ms,
            p99 = self.sluice.latency_p99_ms,
            max = self.sluice.latency_max_ms,
            generate = self.baseline.as_ref().map_or(String::new(), |b| format!(
                "The tantivy side generates each document inside its timed loop ({:.1} s of its {:.1} s); \
                 Sluice's clients send pre-built bodies.\n",
                b.generate_seconds, b.seconds
            )),
        )
    }

    /// Replaces the marked section of `path`, or appends it; creates the file if missing.
    pub fn write_into(&self, path: &Path) -> anyhow::Result<()> {
        write_section(path, BEGIN_MARKER, END_MARKER, &self.markdown())
    }
}

/// Writes `section` (which starts with `begin` and ends with `end`) into the Markdown file at
/// `path`: in place of the old section when both markers stand at the start of a line, in that
/// order, else appended; creates the file if missing. A marker quoted inside a sentence is not
/// a marker (a report once replaced the notes that quoted it).
pub fn write_section(path: &Path, begin: &str, end: &str, section: &str) -> anyhow::Result<()> {
    let existing = fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let updated = match marked_range(&existing, begin, end) {
        Some((from, after)) => {
            let rest = existing.get(after..).unwrap_or_default();
            format!(
                "{}{section}{}",
                existing.get(..from).unwrap_or_default(),
                rest.strip_prefix('\n').unwrap_or(rest)
            )
        }
        None => format!("{}\n\n{section}", existing.trim_end_matches('\n')),
    };
    fs::write(path, updated)?;
    Ok(())
}

/// Where the section between `begin` and `end` starts and where it ends (after `end`), both
/// markers at the start of a line.
fn marked_range(text: &str, begin: &str, end: &str) -> Option<(usize, usize)> {
    let from = line_start_find(text, begin, 0)?;
    let to = line_start_find(text, end, from + begin.len())?;
    Some((from, to + end.len()))
}

/// The first place at or after `from` where `marker` starts a line.
fn line_start_find(text: &str, marker: &str, from: usize) -> Option<usize> {
    let mut start = from;
    loop {
        let at = start + text.get(start..)?.find(marker)?;
        if at == 0 || text.as_bytes().get(at - 1) == Some(&b'\n') {
            return Some(at);
        }
        start = at + marker.len();
    }
}

/// Today's date in UTC as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

#[cfg(test)]
mod section_tests {
    use super::*;

    #[test]
    fn markers_quoted_in_prose_are_not_sections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        let notes = "# B\n\nThe table goes between `<!-- x:begin -->` and its end marker.\n";
        fs::write(&path, notes).unwrap();
        write_section(
            &path,
            "<!-- x:begin -->",
            "<!-- x:end -->",
            "<!-- x:begin -->\nT1\n<!-- x:end -->\n",
        )
        .unwrap();
        write_section(
            &path,
            "<!-- x:begin -->",
            "<!-- x:end -->",
            "<!-- x:begin -->\nT2\n<!-- x:end -->\n",
        )
        .unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(notes.trim_end()), "{written}");
        assert!(
            written.contains("T2") && !written.contains("T1"),
            "{written}"
        );
        assert_eq!(written.matches("<!-- x:end -->").count(), 1, "{written}");
    }
}
