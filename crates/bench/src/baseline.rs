//! The ceiling: the same documents written straight into tantivy's `IndexWriter` with a schema made
//! for them, the same writer threads and memory budget as a Sluice index, one commit at the end.
//! It runs as its own process (`sluice-bench tantivy-baseline`) so that its peak memory is its own.
//!
//! Documents are generated inside the timed loop (Sluice's clients get them pre-built), because
//! holding them all would inflate the peak memory this process reports; `generate_seconds` says
//! what that costs so that it can be taken into account.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use tantivy::schema::{FAST, INDEXED, STORED, STRING, Schema, TEXT};
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};

use crate::docs::LogDoc;
use crate::server::{cpu_seconds_of, peak_rss_bytes_of};

/// What the parent reads from the child's stdout: one line, `key=value` pairs.
pub const RESULT_PREFIX: &str = "baseline-result";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineResult {
    pub n_docs: u64,
    pub source_bytes: u64,
    pub seconds: f64,
    pub generate_seconds: f64,
    pub peak_rss_bytes: u64,
    /// CPU time of this process up to the end of the commit, generation included.
    pub cpu_seconds: f64,
}

impl BaselineResult {
    pub fn to_line(self) -> String {
        format!(
            "{RESULT_PREFIX} n_docs={} source_bytes={} seconds={} generate_seconds={} peak_rss_bytes={} cpu_seconds={}",
            self.n_docs,
            self.source_bytes,
            self.seconds,
            self.generate_seconds,
            self.peak_rss_bytes,
            self.cpu_seconds
        )
    }

    pub fn from_line(line: &str) -> anyhow::Result<BaselineResult> {
        let rest = line
            .strip_prefix(RESULT_PREFIX)
            .context("not a baseline result line")?;
        let get = |key: &str| -> anyhow::Result<&str> {
            rest.split_whitespace()
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .with_context(|| format!("missing {key} in {line:?}"))
        };
        Ok(BaselineResult {
            n_docs: get("n_docs")?.parse()?,
            source_bytes: get("source_bytes")?.parse()?,
            seconds: get("seconds")?.parse()?,
            generate_seconds: get("generate_seconds")?.parse()?,
            peak_rss_bytes: get("peak_rss_bytes")?.parse()?,
            cpu_seconds: get("cpu_seconds")?.parse()?,
        })
    }
}

pub fn run(
    dir: &Path,
    n_docs: u64,
    seed: u64,
    threads: usize,
    memory_bytes: usize,
) -> anyhow::Result<BaselineResult> {
    let mut builder = Schema::builder();
    let timestamp = builder.add_date_field("@timestamp", INDEXED | FAST);
    let host = builder.add_text_field("host", STRING | FAST);
    let service = builder.add_text_field("service", STRING | FAST);
    let level = builder.add_text_field("level", STRING | FAST);
    let message = builder.add_text_field("message", TEXT);
    let status = builder.add_i64_field("status", INDEXED | FAST);
    let latency_ms = builder.add_f64_field("latency_ms", INDEXED | FAST);
    let bytes = builder.add_i64_field("bytes", INDEXED | FAST);
    let user_id = builder.add_text_field("user_id", STRING | FAST);
    let region = builder.add_text_field("region", STRING | FAST);
    let trace_id = builder.add_text_field("trace_id", STRING | FAST);
    // A search engine returns what it was given: keep the source, as Sluice keeps `_source`.
    let source = builder.add_bytes_field("_source", STORED);
    let schema = builder.build();

    let index = Index::create_in_dir(dir, schema).context("creating the tantivy index")?;
    let mut writer: IndexWriter = index
        .writer_with_num_threads(threads, memory_bytes)
        .context("starting the index writer")?;

    let started = Instant::now();
    let mut source_bytes = 0;
    let mut json = Vec::with_capacity(512);
    for i in 0..n_docs {
        let doc = LogDoc::generate(seed, i);
        json.clear();
        doc.write_json(&mut json);
        source_bytes += json.len() as u64;
        let mut document = TantivyDocument::new();
        document.add_date(timestamp, DateTime::from_timestamp_millis(doc.timestamp_ms));
        document.add_text(host, &doc.host);
        document.add_text(service, doc.service);
        document.add_text(level, doc.level);
        document.add_text(message, &doc.message);
        document.add_i64(status, doc.status);
        document.add_f64(latency_ms, doc.latency_ms);
        document.add_i64(bytes, doc.bytes);
        document.add_text(user_id, &doc.user_id);
        document.add_text(region, doc.region);
        document.add_text(trace_id, &doc.trace_id);
        document.add_bytes(source, &json);
        writer.add_document(document)?;
    }
    writer.commit().context("committing")?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_bytes = peak_rss_bytes_of("/proc/self/status")?;
    let cpu_seconds = cpu_seconds_of("/proc/self/stat")?;
    drop(writer);

    // What generating the documents alone costs, so the reader can see it is small.
    let generate_started = Instant::now();
    let mut check = 0u64;
    for i in 0..n_docs {
        json.clear();
        LogDoc::generate(seed, i).write_json(&mut json);
        check = check.wrapping_add(json.len() as u64);
    }
    let generate_seconds = generate_started.elapsed().as_secs_f64();
    anyhow::ensure!(check == source_bytes, "generation is not deterministic");

    let searcher = index.reader()?.searcher();
    anyhow::ensure!(
        searcher.num_docs() == n_docs,
        "tantivy holds {} documents, expected {n_docs}",
        searcher.num_docs()
    );
    Ok(BaselineResult {
        n_docs,
        source_bytes,
        seconds,
        generate_seconds,
        peak_rss_bytes,
        cpu_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let result = BaselineResult {
            n_docs: 3,
            source_bytes: 900,
            seconds: 1.5,
            generate_seconds: 0.25,
            peak_rss_bytes: 4096,
            cpu_seconds: 2.75,
        };
        assert_eq!(
            BaselineResult::from_line(&result.to_line()).unwrap(),
            result
        );
    }
}
