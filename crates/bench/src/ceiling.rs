//! The ceiling of `sluice-bench search` and `aggs`: the same queries and aggregations run
//! in-process on a raw tantivy index with the bulk baseline's schema (`baseline.rs`), built from
//! the same generated documents. It runs as its own process (`sluice-bench tantivy-queries`) and
//! prints one `ceiling-result` line of JSON per workload.
//!
//! Each search also fetches the stored `_source` of its hits and counts all matches exactly, which
//! is what Sluice's HTTP answer holds (the Sluice side asks for `track_total_hits: true`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, QueryParser, RangeQuery,
    RegexQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{
    DateTime, DocAddress, DocId, Index, Order, Score, Searcher, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term,
};

use crate::queries::{self, Plan, Workload};

/// What the parent reads from the child's stdout, one line per workload.
pub const RESULT_PREFIX: &str = "ceiling-result ";

/// Builds the index (unless `reuse`), then times every workload of `plan`: warm samples first,
/// then cold rounds (index reopened, page cache dropped before each sample when allowed).
pub fn run(dir: &Path, plan: &Plan, reuse: bool) -> anyhow::Result<()> {
    if !reuse {
        let built = crate::baseline::run(
            dir,
            plan.docs,
            plan.seed,
            crate::INDEXING_THREADS,
            crate::INDEXING_MEMORY_MIB * 1024 * 1024,
            &crate::baseline::Variant::CEILING,
        )?;
        eprintln!(
            "tantivy: indexed {} docs in {:.1} s",
            built.n_docs, built.seconds
        );
    }
    let workloads = plan.workloads();
    let mut warm: Vec<Vec<f64>> = vec![Vec::new(); workloads.len()];
    let mut cold: Vec<Vec<f64>> = vec![Vec::new(); workloads.len()];
    let mut checks = vec![String::new(); workloads.len()];
    {
        let searcher = open(dir)?;
        for (n, workload) in workloads.iter().enumerate() {
            for _ in 0..plan.warmup {
                run_one(&searcher, workload, plan)?;
            }
            for _ in 0..plan.reps {
                let started = Instant::now();
                let check = run_one(&searcher, workload, plan)?;
                warm[n].push(started.elapsed().as_secs_f64() * 1000.0);
                checks[n] = check;
            }
        }
    }
    for _ in 0..plan.cold_reps {
        let searcher = open(dir)?;
        for (n, workload) in workloads.iter().enumerate() {
            queries::drop_page_cache(plan.drop_caches);
            let started = Instant::now();
            run_one(&searcher, workload, plan)?;
            cold[n].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    for (n, workload) in workloads.iter().enumerate() {
        let line = json!({"id": workload.id, "warm": warm[n], "cold": cold[n], "check": checks[n]});
        println!("{RESULT_PREFIX}{line}");
    }
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<Searcher> {
    let index = Index::open_in_dir(dir).context("opening the tantivy index")?;
    Ok(index.reader()?.searcher())
}

/// Runs one workload and returns what it found, to compare with the other engines.
fn run_one(searcher: &Searcher, workload: &Workload, plan: &Plan) -> anyhow::Result<String> {
    let schema = searcher.schema();
    let field = |name: &str| schema.get_field(name).context("ceiling schema");
    let message = field("message")?;
    let term = |word: &str| -> anyhow::Result<Box<dyn Query>> {
        Ok(Box::new(TermQuery::new(
            Term::from_field_text(message, word),
            IndexRecordOption::WithFreqs,
        )))
    };
    match workload.id {
        "match" => {
            let query = BooleanQuery::new(vec![
                (Occur::Should, term("connection")?),
                (Occur::Should, term("timeout")?),
            ]);
            top_hits(searcher, &query, 10)
        }
        "phrase" => {
            let query = PhraseQuery::new(vec![
                Term::from_field_text(message, "connection"),
                Term::from_field_text(message, "timeout"),
            ]);
            top_hits(searcher, &query, 10)
        }
        "bool_range" => {
            let (from, to) = queries::range_window_ms(plan.docs);
            let timestamp = field("@timestamp")?;
            let range = RangeQuery::new(
                Bound::Included(Term::from_field_date(
                    timestamp,
                    DateTime::from_timestamp_millis(from),
                )),
                Bound::Excluded(Term::from_field_date(
                    timestamp,
                    DateTime::from_timestamp_millis(to),
                )),
            );
            let query = BooleanQuery::new(vec![
                (Occur::Must, term("timeout")?),
                (
                    Occur::Must,
                    Box::new(ConstScoreQuery::new(Box::new(range), 0.0)),
                ),
            ]);
            top_hits(searcher, &query, 10)
        }
        "query_string" => {
            let parser = QueryParser::for_index(searcher.index(), vec![message]);
            let query = parser.parse_query("message:(timeout OR failed) AND level:ERROR")?;
            top_hits(searcher, &*query, 10)
        }
        "wildcard" => {
            let query = RegexQuery::from_pattern("u-12.*", field("user_id")?)?;
            top_hits(searcher, &query, 10)
        }
        "sort_date" => {
            let collector =
                TopDocs::with_limit(100).order_by_fast_field::<DateTime>("@timestamp", Order::Desc);
            let (top, count) = searcher.search(&AllQuery, &(collector, Count))?;
            fetch_sources(searcher, top.iter().map(|(_, address)| *address))?;
            Ok(count.to_string())
        }
        "search_after" => {
            let mut after: Option<SortKey> = None;
            let mut seen = 0;
            while seen < plan.paging_hits() {
                let page = searcher.search(
                    &AllQuery,
                    &AfterCollector {
                        after,
                        size: queries::PAGE_SIZE,
                    },
                )?;
                let Some(last) = page.last() else { break };
                after = Some(*last);
                seen += page.len();
                fetch_sources(
                    searcher,
                    page.iter().map(|key| DocAddress::new(key.segment, key.doc)),
                )?;
            }
            Ok(seen.to_string())
        }
        _ => aggregate(searcher, workload),
    }
}

fn top_hits(searcher: &Searcher, query: &dyn Query, size: usize) -> anyhow::Result<String> {
    let (top, count) =
        searcher.search(query, &(TopDocs::with_limit(size).order_by_score(), Count))?;
    fetch_sources(searcher, top.iter().map(|(_, address)| *address))?;
    Ok(count.to_string())
}

/// Reads the stored `_source` of each hit, as a search engine must to answer.
fn fetch_sources(
    searcher: &Searcher,
    addresses: impl Iterator<Item = DocAddress>,
) -> anyhow::Result<usize> {
    let source = searcher.schema().get_field("_source")?;
    let mut bytes = 0;
    for address in addresses {
        let doc: TantivyDocument = searcher.doc(address)?;
        bytes += doc
            .get_first(source)
            .and_then(|v| v.as_bytes())
            .map_or(0, <[u8]>::len);
    }
    Ok(bytes)
}

/// The aggregation workloads with tantivy's own aggregation API, the fields named as the
/// ceiling schema names them (plain keyword fields instead of Sluice's `.keyword` sub-fields).
fn aggregate(searcher: &Searcher, workload: &Workload) -> anyhow::Result<String> {
    let run = |request: Value| -> anyhow::Result<Value> {
        let aggs: Aggregations = serde_json::from_value(request)?;
        let collector = AggregationCollector::from_aggs(
            aggs,
            AggContextParams::new(
                AggregationLimitsGuard::new(Some(u64::MAX / 2), Some(u32::MAX)),
                searcher.index().tokenizers().clone(),
            ),
        );
        let result: AggregationResults = searcher.search(&AllQuery, &collector)?;
        Ok(serde_json::to_value(result)?)
    };
    let avg = json!({"avg": {"avg": {"field": "latency_ms"}}});
    match workload.id {
        "terms_avg" => {
            let r = run(json!({"a": {"terms": {"field": "service", "size": 10}, "aggs": avg}}))?;
            Ok(queries::buckets_check(&r["a"]))
        }
        "date_histogram" => {
            // tantivy has no calendar intervals or time zones; January in London is UTC.
            let r = run(json!({"a": {
                "date_histogram": {"field": "@timestamp", "fixed_interval": "1h"},
                "aggs": {"r": {"terms": {"field": "region"}, "aggs": avg}}}}))?;
            Ok(queries::buckets_check(&r["a"]))
        }
        "filters" => {
            // tantivy has `filter` but not `filters`: three of them in one request, one pass.
            let r = run(json!({
                "errors": {"filter": "level:ERROR"},
                "timeouts": {"filter": "message:timeout"},
                "server_errors": {"filter": "status:>=500"}}))?;
            Ok(format!(
                "{}/{}/{}",
                r["errors"]["doc_count"],
                r["timeouts"]["doc_count"],
                r["server_errors"]["doc_count"]
            ))
        }
        "cardinality" => {
            let r = run(json!({"a": {"cardinality": {"field": "user_id"}}}))?;
            Ok(queries::round_check(&r["a"]["value"]))
        }
        "percentiles" => {
            let r = run(json!({"a": {"percentiles": {"field": "latency_ms"}}}))?;
            Ok(queries::round_check(&r["a"]["values"]["50.0"]))
        }
        "composite" => {
            let mut after: Option<Value> = None;
            let mut buckets = 0;
            let mut docs = 0;
            loop {
                let mut composite = json!({"size": queries::COMPOSITE_PAGE, "sources": [
                    {"host": {"terms": {"field": "host"}}},
                    {"service": {"terms": {"field": "service"}}}]});
                if let Some(after) = after.take() {
                    composite["after"] = after;
                }
                let r = run(json!({"a": {"composite": composite}}))?;
                let page = r["a"]["buckets"].as_array().cloned().unwrap_or_default();
                if page.is_empty() {
                    break;
                }
                buckets += page.len();
                docs += page
                    .iter()
                    .filter_map(|b| b["doc_count"].as_u64())
                    .sum::<u64>();
                match r["a"].get("after_key") {
                    Some(key) if page.len() == queries::COMPOSITE_PAGE => after = Some(key.clone()),
                    _ => break,
                }
            }
            Ok(format!("{buckets} buckets, {docs} docs"))
        }
        other => bail!("no ceiling for workload {other}"),
    }
}

/// `search_after`'s sort key on the ceiling: `@timestamp` descending, then the document's
/// address descending (Elasticsearch's `_doc` tiebreak), so pages never skip or repeat.
/// Ordered so that "greater" means "earlier in the results".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    timestamp: i64,
    segment: SegmentOrdinal,
    doc: DocId,
}

/// Collects the next `size` hits after `after` in the order of [`SortKey`] with a bounded heap
/// over every document's fast-field value: what a sorted `search_after` page costs.
struct AfterCollector {
    after: Option<SortKey>,
    size: usize,
}

struct AfterSegmentCollector {
    after: Option<SortKey>,
    size: usize,
    segment: SegmentOrdinal,
    timestamps: Column<DateTime>,
    /// A min-heap of the best `size` keys so far.
    heap: BinaryHeap<Reverse<SortKey>>,
}

impl Collector for AfterCollector {
    type Fruit = Vec<SortKey>;
    type Child = AfterSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<AfterSegmentCollector> {
        Ok(AfterSegmentCollector {
            after: self.after,
            size: self.size,
            segment,
            timestamps: reader.fast_fields().date("@timestamp")?,
            heap: BinaryHeap::with_capacity(self.size + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<SortKey>>) -> tantivy::Result<Vec<SortKey>> {
        let mut all: Vec<SortKey> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all.truncate(self.size);
        Ok(all)
    }
}

impl SegmentCollector for AfterSegmentCollector {
    type Fruit = Vec<SortKey>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(timestamp) = self.timestamps.first(doc) else {
            return;
        };
        let key = SortKey {
            timestamp: timestamp.into_timestamp_nanos(),
            segment: self.segment,
            doc,
        };
        if self.after.is_some_and(|after| key >= after) {
            return;
        }
        if self.heap.len() < self.size {
            self.heap.push(Reverse(key));
        } else if self.heap.peek().is_some_and(|Reverse(least)| key > *least) {
            self.heap.pop();
            self.heap.push(Reverse(key));
        }
    }

    fn harvest(self) -> Vec<SortKey> {
        self.heap.into_iter().map(|Reverse(key)| key).collect()
    }
}
