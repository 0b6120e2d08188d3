//! A microbenchmark of the aggregations whose per-document cost is Sluice's own (composite
//! paged to the end, terms, a geotile grid), next to tantivy's aggregation API over the same
//! documents in a plain tantivy index. Not a test: run it in a release build, holding the
//! machine-wide benchmark lock:
//!
//! ```sh
//! cargo build --release -p sluice-search --example agg_bench
//! flock /tmp/bench.lock target/release/examples/agg_bench /tmp/agg-bench 1000000
//! ```
//!
//! The first run writes both indices under the directory; later runs reuse them.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use sluice_search::aggs::{
    self, AggKind, AggValue, Aggregation, AggregationLimits, BucketsKind, Composite,
    CompositeSource, CompositeSourceKind, Direction, Terms, ValueSource,
};
use sluice_search::{Index, IndexSettings, Mappings, Query, WriteRequest};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::query::AllQuery;
use tantivy::schema::{FAST, STRING, Schema};

/// Buckets per composite page, as `sluice-bench aggs` asks.
const PAGE: usize = 100;
/// Timed runs of each workload; the median is printed.
const RUNS: usize = 5;
/// Documents per write request while filling.
const BATCH: usize = 5_000;
const SERVICES: [&str; 10] = [
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "gateway",
    "inventory",
    "search",
    "shipping",
    "users",
];

/// splitmix64: documents are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn document(rng: &mut Rng) -> (String, &'static str, i64, f64, f64) {
    let host = format!("web-{:03}", rng.below(200));
    let service = SERVICES[rng.below(SERVICES.len() as u64) as usize];
    let status = [200, 200, 200, 201, 301, 404, 500, 503][rng.below(8) as usize];
    let lat = rng.below(1_000_000) as f64 / 1_000_000.0 * 10.0 + 45.0;
    let lon = rng.below(1_000_000) as f64 / 1_000_000.0 * 20.0 - 5.0;
    (host, service, status, lat, lon)
}

fn fill(dir: &Path, docs: usize) -> (Index, tantivy::Index) {
    let sluice_dir = dir.join("sluice");
    let tantivy_dir = dir.join("tantivy");
    if sluice_dir.exists() && tantivy_dir.exists() {
        let index = Index::open(&sluice_dir).expect("open the sluice index");
        let plain = tantivy::Index::open_in_dir(&tantivy_dir).expect("open the tantivy index");
        return (index, plain);
    }
    std::fs::create_dir_all(&tantivy_dir).expect("create the tantivy directory");
    let index = Index::create(
        &sluice_dir,
        "bench",
        IndexSettings::default(),
        Mappings::from_json(&json!({"properties": {
            "host": {"type": "keyword"},
            "service": {"type": "keyword"},
            "status": {"type": "long"},
            "location": {"type": "geo_point"}
        }}))
        .expect("mapping"),
    )
    .expect("create the sluice index");
    let mut builder = Schema::builder();
    let host = builder.add_text_field("host", STRING | FAST);
    let service = builder.add_text_field("service", STRING | FAST);
    let status = builder.add_i64_field("status", FAST);
    let plain =
        tantivy::Index::create_in_dir(&tantivy_dir, builder.build()).expect("create tantivy");
    let mut writer: tantivy::IndexWriter = plain.writer(200_000_000).expect("tantivy writer");
    let mut rng = Rng(42);
    let started = Instant::now();
    let mut written = 0;
    while written < docs {
        let mut requests = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(docs - written) {
            let (h, s, st, lat, lon) = document(&mut rng);
            writer
                .add_document(tantivy::doc!(host => h.as_str(), service => s, status => st))
                .expect("tantivy add");
            let document = json!({"host": h, "service": s, "status": st,
                                  "location": {"lat": lat, "lon": lon}});
            requests.push(WriteRequest::Index {
                id: None,
                source: Arc::from(document.to_string().as_bytes()),
                document,
                condition: Default::default(),
            });
            written += 1;
        }
        for outcome in index.write(requests) {
            outcome.expect("write");
        }
    }
    index.refresh().expect("refresh");
    writer.commit().expect("tantivy commit");
    println!(
        "filled {docs} documents in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (index, plain)
}

fn median_ms(mut f: impl FnMut() -> String) -> (f64, String) {
    let mut times = Vec::with_capacity(RUNS);
    let mut found = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        found = f();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], found)
}

fn terms_source(name: &str) -> CompositeSource {
    CompositeSource {
        name: name.into(),
        source: ValueSource::field(name),
        kind: CompositeSourceKind::Terms,
        direction: Direction::Asc,
        missing_bucket: false,
    }
}

/// Pages a composite of `sources` to the end: (pages, buckets, documents).
fn sluice_composite(index: &Arc<Index>, sources: &[CompositeSource]) -> String {
    let targets = vec![(index.clone(), Query::match_all())];
    let (mut pages, mut buckets, mut docs) = (0, 0, 0);
    let mut after = None;
    loop {
        let agg = Aggregation {
            name: "a".into(),
            kind: AggKind::Composite(Composite {
                sources: sources.to_vec(),
                size: PAGE,
                after: after.take(),
            }),
            subs: Vec::new(),
        };
        let results =
            aggs::aggregate(&targets, &[agg], AggregationLimits::default()).expect("aggregate");
        let AggValue::Buckets(page) = &results[0].value else {
            panic!("composite answers buckets");
        };
        pages += 1;
        buckets += page.buckets.len();
        docs += page.buckets.iter().map(|b| b.doc_count).sum::<u64>();
        match &page.kind {
            BucketsKind::Composite {
                after_key: Some(key),
            } if page.buckets.len() == PAGE => {
                after = Some(key.iter().map(|(_, v)| Some(v.clone())).collect());
            }
            _ => break,
        }
    }
    format!("{pages} pages, {buckets} buckets, {docs} docs")
}

fn tantivy_run(searcher: &tantivy::Searcher, request: Value) -> Value {
    let aggs: Aggregations = serde_json::from_value(request).expect("tantivy request");
    let collector = AggregationCollector::from_aggs(
        aggs,
        AggContextParams::new(
            AggregationLimitsGuard::new(Some(u64::MAX / 2), Some(u32::MAX)),
            searcher.index().tokenizers().clone(),
        ),
    );
    let result: AggregationResults = searcher.search(&AllQuery, &collector).expect("search");
    serde_json::to_value(result).expect("json")
}

fn tantivy_composite(searcher: &tantivy::Searcher, fields: &[&str]) -> String {
    let (mut pages, mut buckets, mut docs) = (0, 0, 0);
    let mut after: Option<Value> = None;
    loop {
        let sources: Vec<Value> = fields
            .iter()
            .map(|f| json!({*f: {"terms": {"field": f}}}))
            .collect();
        let mut composite = json!({"size": PAGE, "sources": sources});
        if let Some(after) = after.take() {
            composite["after"] = after;
        }
        let r = tantivy_run(searcher, json!({"a": {"composite": composite}}));
        let page = r["a"]["buckets"].as_array().cloned().unwrap_or_default();
        pages += 1;
        buckets += page.len();
        docs += page
            .iter()
            .filter_map(|b| b["doc_count"].as_u64())
            .sum::<u64>();
        match r["a"].get("after_key") {
            Some(key) if page.len() == PAGE => after = Some(key.clone()),
            _ => break,
        }
    }
    format!("{pages} pages, {buckets} buckets, {docs} docs")
}

fn sluice_terms(index: &Arc<Index>, field: &str) -> String {
    let targets = vec![(index.clone(), Query::match_all())];
    let agg = Aggregation {
        name: "a".into(),
        kind: AggKind::Terms(Terms {
            source: ValueSource::field(field),
            size: 10,
            shard_size: None,
            min_doc_count: 1,
            shard_min_doc_count: 0,
            order: Vec::new(),
            include: None,
            exclude: None,
            show_term_doc_count_error: false,
        }),
        subs: Vec::new(),
    };
    let results =
        aggs::aggregate(&targets, &[agg], AggregationLimits::default()).expect("aggregate");
    let AggValue::Buckets(page) = &results[0].value else {
        panic!("terms answers buckets");
    };
    format!(
        "{} buckets, first {}",
        page.buckets.len(),
        page.buckets.first().map_or(0, |b| b.doc_count)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "/tmp/agg-bench".into());
    let docs: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("document count"));
    let (index, plain) = fill(Path::new(&dir), docs);
    let index = Arc::new(index);
    let reader = plain.reader().expect("tantivy reader");
    let searcher = reader.searcher();
    println!("tantivy segments: {}", searcher.segment_readers().len());

    let report = |name: &str, (ms, found): (f64, String)| {
        println!("{name:<44} {ms:>9.1} ms   {found}");
    };
    report(
        "sluice composite host×service",
        median_ms(|| sluice_composite(&index, &[terms_source("host"), terms_source("service")])),
    );
    report(
        "tantivy composite host×service",
        median_ms(|| tantivy_composite(&searcher, &["host", "service"])),
    );
    report(
        "sluice composite host",
        median_ms(|| sluice_composite(&index, &[terms_source("host")])),
    );
    report(
        "tantivy composite host",
        median_ms(|| tantivy_composite(&searcher, &["host"])),
    );
    report(
        "sluice composite host×service×status",
        median_ms(|| {
            sluice_composite(
                &index,
                &[
                    terms_source("host"),
                    terms_source("service"),
                    terms_source("status"),
                ],
            )
        }),
    );
    report(
        "tantivy composite host×service×status",
        median_ms(|| tantivy_composite(&searcher, &["host", "service", "status"])),
    );
    report(
        "sluice terms host",
        median_ms(|| sluice_terms(&index, "host")),
    );
    report(
        "tantivy terms host",
        median_ms(|| {
            let r = tantivy_run(
                &searcher,
                json!({"a": {"terms": {"field": "host", "size": 10}}}),
            );
            format!(
                "{} buckets",
                r["a"]["buckets"].as_array().map_or(0, Vec::len)
            )
        }),
    );
}
