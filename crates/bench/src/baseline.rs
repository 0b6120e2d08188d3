//! The ceiling: the same documents written straight into tantivy's `IndexWriter` with a schema made
//! for them, the same writer threads and memory budget as a Sluice index, one commit at the end.
//! It runs as its own process (`sluice-bench tantivy-baseline`) so that its peak memory is its own.
//!
//! Documents are generated inside the timed loop (Sluice's clients get them pre-built), because
//! holding them all would inflate the peak memory this process reports; `generate_seconds` says
//! what that costs so that it can be taken into account.
//!
//! [`Fields::Dynamic`] writes, instead, the fields Elasticsearch's default dynamic mapping gives
//! these documents (every string a `text` field plus a `.keyword` sub-field), each as its own
//! typed tantivy field: what tantivy has to do, at best, for what Sluice is asked to index with
//! no mapping. With `commit_every` it also commits as often as the default refresh interval.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, OwnedValue, STORED, STRING, Schema,
    TEXT, TextFieldIndexing,
};
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

/// Which fields the documents are written into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fields {
    /// One field per value, made for the documents: keywords as raw strings, `message` as text.
    Ceiling,
    /// Elasticsearch's dynamic mapping of the documents: every string as text with positions
    /// and as a keyword (`host` and `host.keyword`, …), numbers and the date as the ceiling has.
    Dynamic,
    /// The same values, laid out as a Sluice index holds them: the text fields as they are, the
    /// keywords, numbers and the date (epoch milliseconds) in one JSON field, `_fields`, raw and
    /// fast (`crates/search/src/schema.rs`).
    DynamicJson,
}

/// What one baseline run writes, and how.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub fields: Fields,
    /// Commit this often as well as at the end.
    pub commit_every: Option<Duration>,
    /// Text fields with norms that no document uses, as the text slots every Sluice index
    /// declares.
    pub unused_text_fields: usize,
}

impl Variant {
    pub const CEILING: Variant = Variant {
        fields: Fields::Ceiling,
        commit_every: None,
        unused_text_fields: 0,
    };
}

/// The string fields of the documents, in [`string_values`]' order.
const STRING_FIELDS: [&str; 7] = [
    "host", "service", "level", "message", "user_id", "region", "trace_id",
];

fn string_values(doc: &LogDoc) -> [&str; 7] {
    [
        &doc.host,
        doc.service,
        doc.level,
        &doc.message,
        &doc.user_id,
        doc.region,
        &doc.trace_id,
    ]
}

/// Where `@timestamp`, `status`, `latency_ms` and `bytes` go.
enum Exact {
    /// A typed field each, in that order.
    Typed([Field; 4]),
    /// One JSON field, with the keywords.
    Json(Field),
}

/// Where each value of a document goes.
struct Layout {
    exact: Exact,
    source: Field,
    /// Per string field, in [`STRING_FIELDS`]' order: the fields its value is added to.
    strings: Vec<Vec<Field>>,
}

fn layout(variant: &Variant) -> (Schema, Layout) {
    let mut builder = Schema::builder();
    let exact = if variant.fields == Fields::DynamicJson {
        let raw = TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic);
        let options = JsonObjectOptions::default()
            .set_indexing_options(raw)
            .set_fast("raw")
            .set_expand_dots_enabled();
        Exact::Json(builder.add_json_field("_fields", options))
    } else {
        Exact::Typed([
            builder.add_date_field("@timestamp", INDEXED | FAST),
            builder.add_i64_field("status", INDEXED | FAST),
            builder.add_f64_field("latency_ms", INDEXED | FAST),
            builder.add_i64_field("bytes", INDEXED | FAST),
        ])
    };
    let strings = STRING_FIELDS
        .iter()
        .map(|&name| match variant.fields {
            Fields::Ceiling if name == "message" => vec![builder.add_text_field(name, TEXT)],
            Fields::Ceiling => vec![builder.add_text_field(name, STRING | FAST)],
            Fields::Dynamic => vec![
                builder.add_text_field(name, TEXT),
                builder.add_text_field(&format!("{name}.keyword"), STRING | FAST),
            ],
            Fields::DynamicJson => vec![builder.add_text_field(name, TEXT)],
        })
        .collect();
    for unused in 0..variant.unused_text_fields {
        builder.add_text_field(&format!("_t{unused}"), TEXT);
    }
    // A search engine returns what it was given: keep the source, as Sluice keeps `_source`.
    let source = builder.add_bytes_field("_source", STORED);
    let layout = Layout {
        exact,
        source,
        strings,
    };
    (builder.build(), layout)
}

/// The document `doc` (whose JSON is `json`) in `layout`.
fn document(layout: &Layout, doc: &LogDoc, json: &[u8]) -> TantivyDocument {
    let mut document = TantivyDocument::new();
    let strings = string_values(doc);
    for (value, targets) in strings.iter().zip(&layout.strings) {
        for &field in targets {
            document.add_text(field, value);
        }
    }
    match layout.exact {
        Exact::Typed([timestamp, status, latency_ms, bytes]) => {
            document.add_date(timestamp, DateTime::from_timestamp_millis(doc.timestamp_ms));
            document.add_i64(status, doc.status);
            document.add_f64(latency_ms, doc.latency_ms);
            document.add_i64(bytes, doc.bytes);
        }
        Exact::Json(exact) => {
            let mut entries: Vec<(String, OwnedValue)> = STRING_FIELDS
                .iter()
                .zip(strings)
                .map(|(name, value)| (format!("{name}.keyword"), OwnedValue::Str(value.to_owned())))
                .collect();
            entries.push(("@timestamp".into(), OwnedValue::I64(doc.timestamp_ms)));
            entries.push(("status".into(), OwnedValue::I64(doc.status)));
            entries.push(("latency_ms".into(), OwnedValue::F64(doc.latency_ms)));
            entries.push(("bytes".into(), OwnedValue::I64(doc.bytes)));
            document.add_field_value(exact, &OwnedValue::Object(entries));
        }
    }
    document.add_bytes(layout.source, json);
    document
}

/// Writes `n_docs` documents into a new index in `dir` as `variant` says, committing at the end.
pub fn run(
    dir: &Path,
    n_docs: u64,
    seed: u64,
    threads: usize,
    memory_bytes: usize,
    variant: &Variant,
) -> anyhow::Result<BaselineResult> {
    let (schema, layout) = layout(variant);
    let index = Index::create_in_dir(dir, schema).context("creating the tantivy index")?;
    let mut writer: IndexWriter = index
        .writer_with_num_threads(threads, memory_bytes)
        .context("starting the index writer")?;

    let started = Instant::now();
    let mut committed = started;
    let mut source_bytes = 0;
    let mut json = Vec::with_capacity(512);
    for i in 0..n_docs {
        let doc = LogDoc::generate(seed, i);
        json.clear();
        doc.write_json(&mut json);
        source_bytes += json.len() as u64;
        let document = document(&layout, &doc, &json);
        writer.add_document(document)?;
        if variant
            .commit_every
            .is_some_and(|every| committed.elapsed() >= every)
        {
            writer.commit().context("committing")?;
            committed = Instant::now();
        }
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

    /// The dynamic baseline indexes each string twice, as Elasticsearch's dynamic mapping asks:
    /// tokenized in its text field, whole in its keyword field; committing as it goes loses
    /// nothing.
    #[test]
    fn dynamic_fields_hold_every_string_as_text_and_as_keyword() {
        use tantivy::collector::Count;
        use tantivy::query::TermQuery;

        let dir = tempfile::tempdir().unwrap();
        let n_docs = 20;
        let result = run(
            dir.path(),
            n_docs,
            42,
            1,
            15_000_000,
            &Variant {
                fields: Fields::Dynamic,
                commit_every: Some(Duration::ZERO),
                unused_text_fields: 0,
            },
        )
        .unwrap();
        assert_eq!(result.n_docs, n_docs);
        let index = Index::open_in_dir(dir.path()).unwrap();
        let schema = index.schema();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.num_docs(), n_docs);
        let doc = LogDoc::generate(42, 0);
        for (name, value) in STRING_FIELDS.iter().zip(string_values(&doc)) {
            let text = schema.get_field(name).unwrap();
            let keyword = schema.get_field(&format!("{name}.keyword")).unwrap();
            assert!(schema.get_field_entry(keyword).is_fast(), "{name}.keyword");
            let whole = TermQuery::new(
                tantivy::Term::from_field_text(keyword, value),
                IndexRecordOption::Basic,
            );
            assert!(
                searcher.search(&whole, &Count).unwrap() >= 1,
                "{name}.keyword"
            );
            let first_token = value
                .split(|c: char| !c.is_alphanumeric())
                .find(|token| !token.is_empty())
                .unwrap()
                .to_lowercase();
            let token = TermQuery::new(
                tantivy::Term::from_field_text(text, &first_token),
                IndexRecordOption::Basic,
            );
            assert!(
                searcher.search(&token, &Count).unwrap() >= 1,
                "{name}: {first_token}"
            );
        }
    }

    /// Sluice's layout of the same values: each keyword is a term under its path in `_fields`.
    #[test]
    fn dynamic_json_fields_hold_keywords_under_their_paths() {
        use tantivy::collector::Count;
        use tantivy::query::TermQuery;

        let dir = tempfile::tempdir().unwrap();
        let variant = Variant {
            fields: Fields::DynamicJson,
            commit_every: None,
            unused_text_fields: 3,
        };
        run(dir.path(), 20, 42, 1, 15_000_000, &variant).unwrap();
        let index = Index::open_in_dir(dir.path()).unwrap();
        let schema = index.schema();
        assert!(schema.get_field("_t2").is_ok());
        assert!(schema.get_field("host.keyword").is_err());
        let exact = schema.get_field("_fields").unwrap();
        let searcher = index.reader().unwrap().searcher();
        let doc = LogDoc::generate(42, 0);
        for (name, value) in STRING_FIELDS.iter().zip(string_values(&doc)) {
            let mut term =
                tantivy::Term::from_field_json_path(exact, &format!("{name}.keyword"), true);
            term.append_type_and_str(value);
            let query = TermQuery::new(term, IndexRecordOption::Basic);
            assert!(
                searcher.search(&query, &Count).unwrap() >= 1,
                "{name}.keyword"
            );
        }
    }

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
