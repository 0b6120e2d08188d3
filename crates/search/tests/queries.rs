//! The query tree against real indices: which documents each clause matches, and scores as
//! Elasticsearch computes them — BM25 per field, checked against Lucene's formula written out
//! here independently (length norms in Lucene's one-byte encoding included) within 1e-4.

mod common;
use common::{TestIndex, index_with, term};

use serde_json::{Value, json};
use sluice_search::query::{
    Bool, BoostMode, DecayShape, FieldPattern, Fields, FunctionKind, FunctionScore, Fuzziness,
    Match, MatchKind, MinimumShouldMatch, Operator, Query, Range, RangeBound, ScoreFunction,
    ScoreMode,
};

impl TestIndex {
    fn hits(&self, query: &Query) -> Vec<(String, f32)> {
        self.index
            .search(query, 0, 100)
            .unwrap()
            .hits
            .into_iter()
            .map(|hit| (hit.id, hit.score))
            .collect()
    }

    fn error(&self, query: &Query) -> String {
        self.index.search(query, 0, 10).unwrap_err().to_string()
    }
}

fn matching(field: &str, text: &str) -> Query {
    Query::Match(Box::new(Match::new(field, text)))
}

fn bool_query(edit: impl FnOnce(&mut Bool)) -> Query {
    let mut query = Bool {
        boost: 1.0,
        ..Bool::default()
    };
    edit(&mut query);
    Query::Bool(Box::new(query))
}

// --- Lucene's BM25, written out as Elasticsearch 8 scores it (LegacyBM25Similarity) ---

const NUM_FREE_VALUES: u32 = 24;

fn long_to_int4(i: u64) -> u32 {
    let bits = 64 - i.leading_zeros();
    if bits < 4 {
        i as u32
    } else {
        let shift = bits - 4;
        let mut encoded = ((i >> shift) & 0x07) as u32;
        encoded |= (shift + 1) << 3;
        encoded
    }
}

fn int4_to_long(i: u32) -> u64 {
    let bits = u64::from(i & 0x07);
    let shift = (i >> 3) as i32 - 1;
    if shift == -1 {
        bits
    } else {
        (bits | 0x08) << shift
    }
}

/// `SmallFloat.intToByte4` then `byte4ToInt`: the length Lucene's norm remembers.
fn quantized_length(length: u32) -> f32 {
    let byte = if length < NUM_FREE_VALUES {
        length
    } else {
        NUM_FREE_VALUES + long_to_int4(u64::from(length - NUM_FREE_VALUES))
    };
    let decoded = if byte < NUM_FREE_VALUES {
        u64::from(byte)
    } else {
        u64::from(NUM_FREE_VALUES) + int4_to_long(byte - NUM_FREE_VALUES)
    };
    decoded as f32
}

/// Expected `_score` of each document for an OR of `terms` over one field whose documents hold
/// `field_tokens` (None: the document lacks the field).
fn lucene_bm25(field_tokens: &[Option<Vec<&str>>], terms: &[&str]) -> Vec<f32> {
    let weighted: Vec<(&str, f32)> = terms.iter().map(|t| (*t, 1.0)).collect();
    lucene_bm25_weighted(field_tokens, &weighted, None)
}

/// As [`lucene_bm25`], each term's score times its boost, and with `doc_freq` (when given) as
/// every term's document frequency — what Lucene's blended rewrite of fuzzy terms does.
fn lucene_bm25_weighted(
    field_tokens: &[Option<Vec<&str>>],
    terms: &[(&str, f32)],
    doc_freq: Option<f64>,
) -> Vec<f32> {
    let (k1, b) = (1.2f32, 0.75f32);
    let with_field: Vec<&Vec<&str>> = field_tokens
        .iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect();
    let doc_count = with_field.len() as f64;
    let sum_total_term_freq: f64 = with_field.iter().map(|t| t.len() as f64).sum();
    let avgdl = (sum_total_term_freq / doc_count) as f32;
    field_tokens
        .iter()
        .map(|tokens| {
            let Some(tokens) = tokens else { return 0.0 };
            let dl = quantized_length(tokens.len() as u32);
            terms
                .iter()
                .map(|(t, boost)| {
                    let freq = tokens.iter().filter(|x| *x == t).count() as f32;
                    if freq == 0.0 {
                        return 0.0;
                    }
                    let df = doc_freq.unwrap_or_else(|| {
                        with_field.iter().filter(|d| d.contains(t)).count() as f64
                    });
                    let idf = (1.0 + (doc_count - df + 0.5) / (df + 0.5)).ln() as f32;
                    boost * (k1 + 1.0) * idf * freq / (freq + k1 * (1.0 - b + b * dl / avgdl))
                })
                .sum()
        })
        .collect()
}

fn assert_close(actual: f32, expected: f32, what: &str) {
    let relative = ((actual - expected) / expected).abs();
    assert!(
        relative < 1e-4,
        "{what}: score {actual}, Lucene's formula gives {expected} (relative error {relative})"
    );
}

#[test]
fn scores_are_bm25_per_field_as_elasticsearch_computes_them() {
    let long_title = "fox ".repeat(3) + &"word ".repeat(37);
    let titles: Vec<Option<&str>> = vec![
        Some("the quick brown fox"),
        Some("fox"),
        Some("lazy dog jumps over the lazy fox again and again"),
        None,
        Some(&long_title),
        Some("quick quick quick"),
        Some("brown bear"),
    ];
    let tokens: Vec<Option<Vec<&str>>> = titles
        .iter()
        .map(|t| t.map(|t| t.split_whitespace().collect()))
        .collect();
    let terms = ["fox", "quick"];
    let expected = lucene_bm25(&tokens, &terms);
    let query = matching("title", "fox quick");

    // The same titles twice: bare, then with another text field (of varying length) beside them.
    for with_body in [false, true] {
        let documents: Vec<(String, Value)> = titles
            .iter()
            .enumerate()
            .map(|(i, title)| {
                let mut document = json!({"n": i});
                if let Some(title) = title {
                    document["title"] = json!(title);
                }
                if with_body {
                    document["body"] = json!("fox ".repeat(i * 7 + 1));
                }
                (format!("d{i}"), document)
            })
            .collect();
        let borrowed: Vec<(&str, Value)> = documents
            .iter()
            .map(|(id, d)| (id.as_str(), d.clone()))
            .collect();
        let index = index_with(json!({}), &borrowed);
        let hits = index.hits(&query);
        for (i, expected_score) in expected.iter().enumerate() {
            let id = format!("d{i}");
            let actual = hits.iter().find(|(h, _)| *h == id).map(|(_, s)| *s);
            match actual {
                Some(actual) => assert_close(
                    actual,
                    *expected_score,
                    &format!("{id} (body: {with_body})"),
                ),
                None => assert_eq!(*expected_score, 0.0, "{id} should match"),
            }
        }
        // A phrase scores the sum of its terms' IDFs with the phrase frequency.
        assert_eq!(
            index.ids(&Query::Match(Box::new(Match {
                kind: MatchKind::Phrase { slop: 0 },
                ..Match::new("title", "brown fox")
            }))),
            ["d0"]
        );
    }
}

#[test]
fn fuzzy_terms_score_as_lucenes_blended_rewrite() {
    let titles = [
        "quick brown fox",
        "quack quack",
        "quick",
        "slow dog",
        "the quickest",
        "quirk of fate and quick wit",
    ];
    let tokens: Vec<Option<Vec<&str>>> = titles
        .iter()
        .map(|t| Some(t.split_whitespace().collect()))
        .collect();
    let documents: Vec<(String, Value)> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("d{i}"), json!({"title": t, "tag": t})))
        .collect();
    let borrowed: Vec<(&str, Value)> = documents
        .iter()
        .map(|(id, d)| (id.as_str(), d.clone()))
        .collect();
    let index = index_with(json!({}), &borrowed);
    // "quikc" is one transposition from "quick" (similarity 1 - 1/5) and two edits from
    // "quack" and "quirk", beyond AUTO's one edit for five letters.
    let fuzzy_match = |text: &str, transpositions: bool| {
        Query::Match(Box::new(Match {
            fuzziness: Some(Fuzziness::AUTO),
            fuzzy_transpositions: transpositions,
            ..Match::new("title", text)
        }))
    };
    let expected = lucene_bm25_weighted(&tokens, &[("quick", 0.8)], None);
    let hits = index.hits(&fuzzy_match("quikc", true));
    assert_eq!(hits.len(), 3, "{hits:?}");
    for (id, score) in &hits {
        let i: usize = id[1..].parse().unwrap();
        assert_close(*score, expected[i], id);
    }
    assert!(index.hits(&fuzzy_match("quikc", false)).is_empty());
    // "quick" itself (similarity 1), "quack" and "quirk" (1 - 1/5): every term scored with the
    // largest document frequency among them (quick's 3).
    let expected = lucene_bm25_weighted(
        &tokens,
        &[("quick", 1.0), ("quack", 0.8), ("quirk", 0.8)],
        Some(3.0),
    );
    let hits = index.hits(&fuzzy_match("quick", true));
    assert_eq!(hits.len(), 4, "{hits:?}");
    for (id, score) in &hits {
        let i: usize = id[1..].parse().unwrap();
        assert_close(*score, expected[i], id);
    }
    // `prefix_length` keeps terms with the same first characters; `max_expansions` the most
    // similar ones.
    let fuzzy_on =
        |field: &str, value: &str, edits: u8, prefix_length: u32, max_expansions: u32| {
            Query::Fuzzy {
                field: field.into(),
                value: value.into(),
                fuzziness: Fuzziness::Edits(edits),
                prefix_length,
                max_expansions,
                transpositions: true,
                boost: 1.0,
            }
        };
    let fuzzy = |value: &str, prefix_length: u32, max_expansions: u32| {
        fuzzy_on("title", value, 1, prefix_length, max_expansions)
    };
    assert_eq!(index.ids(&fuzzy("quick", 3, 50)), ["d0", "d2", "d5"]);
    assert_eq!(index.ids(&fuzzy("quick", 0, 1)), ["d0", "d2", "d5"]);
    assert_eq!(index.ids(&fuzzy("quack", 0, 50)), ["d0", "d1", "d2", "d5"]);
    // On a keyword field the whole value is the term.
    let on_tag = fuzzy_on("tag.keyword", "quack quack", 1, 0, 50);
    assert_eq!(index.ids(&on_tag), ["d1"]);
    let on_tag = fuzzy_on("tag.keyword", "qick", 2, 0, 50);
    assert_eq!(index.ids(&on_tag), ["d2"]);
}

#[test]
fn match_operators_and_minimum_should_match() {
    let index = index_with(
        json!({}),
        &[
            ("1", json!({"t": "red green blue"})),
            ("2", json!({"t": "red green"})),
            ("3", json!({"t": "red"})),
            ("4", json!({"t": "yellow"})),
        ],
    );
    assert_eq!(index.ids(&matching("t", "red blue")), ["1", "2", "3"]);
    let and = Query::Match(Box::new(Match {
        operator: Operator::And,
        ..Match::new("t", "red green")
    }));
    assert_eq!(index.ids(&and), ["1", "2"]);
    let msm = Query::Match(Box::new(Match {
        minimum_should_match: MinimumShouldMatch::parse("2"),
        ..Match::new("t", "red green blue")
    }));
    assert_eq!(index.ids(&msm), ["1", "2"]);
    // Only stop-word-free text here; an empty analysis follows zero_terms_query.
    assert!(index.ids(&matching("t", "!!!")).is_empty());
    let fuzzy = Query::Match(Box::new(Match {
        fuzziness: Some(Fuzziness::AUTO),
        ..Match::new("t", "yelow")
    }));
    assert_eq!(index.ids(&fuzzy), ["4"]);
    // Unmapped fields match nothing.
    assert!(index.ids(&matching("nope", "red")).is_empty());
    // The best match first.
    assert_eq!(index.hits(&matching("t", "red green blue"))[0].0, "1");
}

#[test]
fn analyzers_apply_at_index_and_query_time() {
    let index = index_with(
        json!({"properties": {
            "en": {"type": "text", "analyzer": "english"},
            "ws": {"type": "text", "analyzer": "whitespace"},
            "kw": {"type": "text", "analyzer": "keyword"}
        }}),
        &[
            (
                "1",
                json!({"en": "The runners were running", "ws": "Hello-World", "kw": "New York"}),
            ),
            (
                "2",
                json!({"en": "a quick run", "ws": "hello world", "kw": "new york"}),
            ),
        ],
    );
    assert_eq!(index.ids(&matching("en", "runs")), ["1", "2"]);
    assert_eq!(index.ids(&matching("ws", "Hello-World")), ["1"]);
    assert_eq!(index.ids(&matching("kw", "New York")), ["1"]);
    let phrase = Query::Match(Box::new(Match {
        kind: MatchKind::Phrase { slop: 0 },
        ..Match::new("en", "the runners were")
    }));
    // "the" is a stop word: it leaves a position behind, in the document as in the query.
    assert_eq!(index.ids(&phrase), ["1"]);
}

#[test]
fn phrases_prefixes_wildcards_regexps_and_fuzzy() {
    let index = index_with(
        json!({}),
        &[
            (
                "1",
                json!({"msg": "quick brown fox", "host": "web-01", "n": 3}),
            ),
            ("2", json!({"msg": "brown quick fox", "host": "web-02"})),
            ("3", json!({"msg": ["quick", "brown"], "host": "db-01"})),
        ],
    );
    let phrase = |text: &str, slop| {
        Query::Match(Box::new(Match {
            kind: MatchKind::Phrase { slop },
            ..Match::new("msg", text)
        }))
    };
    assert_eq!(index.ids(&phrase("quick brown", 0)), ["1"]);
    assert_eq!(index.ids(&phrase("quick brown", 2)), ["1", "2"]);
    // Values of an array are 100 positions apart: no phrase across them.
    assert!(
        !index
            .ids(&phrase("quick brown", 3))
            .contains(&"3".to_string())
    );
    let prefix = Query::Match(Box::new(Match {
        kind: MatchKind::PhrasePrefix {
            slop: 0,
            max_expansions: 50,
        },
        ..Match::new("msg", "quick bro")
    }));
    assert_eq!(index.ids(&prefix), ["1"]);
    // With slop, the prefix expands (as Lucene's sloppy MultiPhraseQuery) and the phrases are
    // sloppy: "brown quick" is two moves from "quick bro…"; "quick … fox" is one from "quick fo…".
    let sloppy = |text: &str, slop, max_expansions| {
        Query::Match(Box::new(Match {
            kind: MatchKind::PhrasePrefix {
                slop,
                max_expansions,
            },
            ..Match::new("msg", text)
        }))
    };
    assert_eq!(index.ids(&sloppy("quick bro", 2, 50)), ["1", "2"]);
    assert_eq!(index.ids(&sloppy("quick bro", 1, 50)), ["1"]);
    assert_eq!(index.ids(&sloppy("quick fo", 0, 50)), ["2"]);
    assert_eq!(index.ids(&sloppy("quick fo", 1, 50)), ["1", "2"]);
    assert_eq!(index.ids(&sloppy("brown fo", 1, 1)), ["1", "2"]);
    assert!(index.ids(&sloppy("quick zz", 3, 50)).is_empty());
    // No phrase across the values of an array, slop or not.
    assert!(
        !index
            .ids(&sloppy("quick bro", 3, 50))
            .contains(&"3".to_string())
    );
    let wildcard = |field: &str, pattern: &str| Query::Wildcard {
        field: field.into(),
        pattern: pattern.into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&wildcard("host.keyword", "web-*")), ["1", "2"]);
    assert_eq!(index.ids(&wildcard("host.keyword", "*-01")), ["1", "3"]);
    assert_eq!(index.ids(&wildcard("msg", "qu?ck")), ["1", "2", "3"]);
    // Terms searching a lowercasing text field are lowercased; keywords are exact.
    assert_eq!(index.ids(&wildcard("msg", "QU?CK")), ["1", "2", "3"]);
    assert!(index.ids(&wildcard("host.keyword", "WEB-*")).is_empty());
    let prefix = Query::Prefix {
        field: "host.keyword".into(),
        value: "WEB".into(),
        case_insensitive: true,
        boost: 1.0,
    };
    assert_eq!(index.ids(&prefix), ["1", "2"]);
    let regexp = Query::Regexp {
        field: "host.keyword".into(),
        pattern: "(web|db)-0[2-9]".into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&regexp), ["2"]);
    let fuzzy = Query::Fuzzy {
        field: "msg".into(),
        value: "quikc".into(),
        fuzziness: Fuzziness::AUTO,
        prefix_length: 0,
        max_expansions: 50,
        transpositions: true,
        boost: 1.0,
    };
    assert_eq!(index.ids(&fuzzy), ["1", "2", "3"]);
    // Numbers and dates have no fuzzy terms: refused, as Elasticsearch 8 does.
    let on_number = Query::Fuzzy {
        field: "n".into(),
        value: "3".into(),
        fuzziness: Fuzziness::AUTO,
        prefix_length: 0,
        max_expansions: 50,
        transpositions: true,
        boost: 1.0,
    };
    assert!(
        index
            .error(&on_number)
            .contains("Can only use fuzzy queries on keyword and text fields - not on [n]"),
        "{}",
        index.error(&on_number)
    );
    // Constant scores for multi-term queries, as in Elasticsearch.
    assert!(
        index
            .hits(&wildcard("host.keyword", "web-*"))
            .iter()
            .all(|(_, s)| *s == 1.0)
    );
    assert!(index.ids(&wildcard("nope", "x")).is_empty());
}

#[test]
fn terms_ranges_and_exists() {
    let index = index_with(
        json!({"properties": {"at": {"type": "date"}, "price": {"type": "double"}, "n": {"type": "long"}, "tag": {"type": "keyword"}}}),
        &[
            (
                "1",
                json!({"at": "2026-12-01T10:00:00Z", "price": 1.5, "n": 1, "tag": "a", "opt": "x"}),
            ),
            (
                "2",
                json!({"at": "2026-12-02T10:00:00Z", "price": 2.0, "n": 2, "tag": "b"}),
            ),
            (
                "3",
                json!({"at": "2026-12-03T10:00:00Z", "price": 3.25, "n": 3, "tag": "c"}),
            ),
        ],
    );
    let range = |field: &str, lower: RangeBound, upper: RangeBound| {
        Query::Range(Box::new(Range {
            field: field.into(),
            lower,
            upper,
            format: None,
            time_zone: None,
            boost: 1.0,
        }))
    };
    use RangeBound::{Excluded, Included, Unbounded};
    assert_eq!(
        index.ids(&range("n", Included(json!(2)), Unbounded)),
        ["2", "3"]
    );
    assert_eq!(
        index.ids(&range("n", Excluded(json!(1.5)), Excluded(json!("3")))),
        ["2"]
    );
    assert_eq!(
        index.ids(&range("price", Included(json!(1.6)), Included(json!(3.25)))),
        ["2", "3"]
    );
    assert_eq!(
        index.ids(&range("tag", Excluded(json!("a")), Unbounded)),
        ["2", "3"]
    );
    assert_eq!(
        index.ids(&range(
            "at",
            Included(json!("2026-12-01||+1d/d")),
            Unbounded
        )),
        ["2", "3"]
    );
    assert_eq!(
        index.ids(&range("at", Unbounded, Excluded(json!("2026-12-02")))),
        ["1"]
    );
    assert_eq!(
        index.ids(&range("at", Unbounded, Included(json!("2026-12-02||/d")))),
        ["1", "2"]
    );
    assert_eq!(
        index.ids(&range(
            "at",
            Included(json!("now-100y")),
            Included(json!("now+100y"))
        )),
        ["1", "2", "3"]
    );
    assert!(
        index
            .error(&range("at", Included(json!("yesterday")), Unbounded))
            .contains("failed to parse date field")
    );
    // A range on a text field compares the bounds with the terms it indexed.
    assert_eq!(
        index.ids(&range("opt", Included(json!("a")), Excluded(json!("y")))),
        ["1"]
    );
    assert!(
        index
            .ids(&range("opt", Included(json!("y")), Unbounded))
            .is_empty()
    );
    let exists = |field: &str| Query::Exists {
        field: field.into(),
        boost: 1.0,
    };
    assert_eq!(index.ids(&exists("opt")), ["1"]);
    assert_eq!(index.ids(&exists("opt.keyword")), ["1"]);
    assert_eq!(index.ids(&exists("n")), ["1", "2", "3"]);
    assert!(index.ids(&exists("missing")).is_empty());
    assert_eq!(index.ids(&term("n", json!("2"))), ["2"]);
    assert_eq!(index.ids(&term("tag", json!("c"))), ["3"]);
    assert_eq!(
        index.ids(&Query::Terms {
            field: "tag".into(),
            values: vec![json!("a"), json!("c")],
            boost: 1.0
        }),
        ["1", "3"]
    );
    assert!(
        index
            .error(&term("n", json!("abc")))
            .contains("not a valid value")
    );
}

#[test]
fn compound_queries() {
    let index = index_with(
        json!({}),
        &[
            ("1", json!({"t": "apple banana", "n": 1})),
            ("2", json!({"t": "apple", "n": 5})),
            ("3", json!({"t": "banana", "n": 10})),
        ],
    );
    let only_not = bool_query(|b| b.must_not.push(matching("t", "apple")));
    assert_eq!(index.ids(&only_not), ["3"]);
    let empty = bool_query(|_| {});
    assert_eq!(index.ids(&empty), ["1", "2", "3"]);
    let filtered = bool_query(|b| {
        b.filter.push(matching("t", "apple"));
        b.should.push(matching("t", "banana"));
    });
    assert_eq!(index.ids(&filtered), ["1", "2"]);
    let hits = index.hits(&filtered);
    assert_eq!(hits[0].0, "1");
    assert_eq!(hits[1].1, 0.0, "a filter does not score");
    let needs_should = bool_query(|b| {
        b.filter.push(matching("t", "apple"));
        b.should.push(matching("t", "banana"));
        b.minimum_should_match = MinimumShouldMatch::parse("1");
    });
    assert_eq!(index.ids(&needs_should), ["1"]);
    let constant = Query::ConstantScore {
        filter: Box::new(matching("t", "apple")),
        boost: 3.0,
    };
    assert!(index.hits(&constant).iter().all(|(_, s)| *s == 3.0));
    let dis_max = Query::DisMax {
        queries: vec![matching("t", "apple"), matching("t", "banana")],
        tie_breaker: 0.0,
        boost: 1.0,
    };
    assert_eq!(index.ids(&dis_max), ["1", "2", "3"]);
    let boosting = Query::Boosting {
        positive: Box::new(Query::match_all()),
        negative: Box::new(matching("t", "banana")),
        negative_boost: 0.5,
        boost: 1.0,
    };
    let hits = index.hits(&boosting);
    assert_eq!(hits[0], ("2".to_string(), 1.0));
    assert!(
        hits.iter()
            .filter(|(id, _)| id != "2")
            .all(|(_, s)| *s == 0.5)
    );
    let function_score = Query::FunctionScore(Box::new(FunctionScore {
        query: Query::match_all(),
        functions: vec![
            ScoreFunction {
                filter: None,
                weight: None,
                kind: FunctionKind::FieldValueFactor {
                    field: "n".into(),
                    factor: 2.0,
                    modifier: sluice_search::query::Modifier::None,
                    missing: None,
                },
            },
            ScoreFunction {
                filter: Some(matching("t", "apple")),
                weight: Some(10.0),
                kind: FunctionKind::Weight,
            },
        ],
        score_mode: ScoreMode::Sum,
        boost_mode: BoostMode::Replace,
        max_boost: f32::MAX,
        min_score: None,
        boost: 1.0,
    }));
    let mut scores = index.hits(&function_score);
    scores.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        scores,
        [("1".into(), 12.0), ("2".into(), 20.0), ("3".into(), 20.0)]
    );
    let decay = Query::FunctionScore(Box::new(FunctionScore {
        query: Query::match_all(),
        functions: vec![ScoreFunction {
            filter: None,
            weight: None,
            kind: FunctionKind::Decay {
                shape: DecayShape::Linear,
                field: "n".into(),
                origin: Some(json!(0)),
                scale: json!(10),
                offset: None,
                decay: 0.5,
            },
        }],
        score_mode: ScoreMode::Multiply,
        boost_mode: BoostMode::Replace,
        max_boost: f32::MAX,
        min_score: Some(0.6),
        boost: 1.0,
    }));
    assert_eq!(index.ids(&decay), ["1", "2"]);
}

#[test]
fn fields_patterns_and_named_queries() {
    let index = index_with(
        json!({}),
        &[
            (
                "1",
                json!({"user": {"first": "ada", "last": "lovelace"}, "note": "ada"}),
            ),
            (
                "2",
                json!({"user": {"first": "grace", "last": "hopper"}, "note": "x"}),
            ),
        ],
    );
    let fields = |patterns: &[&str], text: &str| {
        Query::Fields(Box::new(Fields {
            fields: patterns
                .iter()
                .map(|p| FieldPattern::parse(p).unwrap())
                .collect(),
            query: Query::Match(Box::new(Match::new("", text))),
            tie_breaker: 0.0,
            lenient: false,
            boost: 1.0,
            quote_field_suffix: None,
        }))
    };
    assert_eq!(index.ids(&fields(&["user.*"], "hopper")), ["2"]);
    assert_eq!(index.ids(&fields(&["user.first^2", "note"], "ada")), ["1"]);
    assert_eq!(index.ids(&fields(&[], "lovelace")), ["1"]);
    let named = bool_query(|b| {
        b.should.push(Query::Named {
            name: "first".into(),
            query: Box::new(matching("user.first", "ada")),
        });
        b.should.push(Query::Named {
            name: "note".into(),
            query: Box::new(matching("note", "ada")),
        });
        b.should.push(Query::Named {
            name: "grace".into(),
            query: Box::new(matching("user.first", "grace")),
        });
    });
    let found = index.index.search(&named, 0, 10).unwrap();
    let one = found.hits.iter().find(|h| h.id == "1").unwrap();
    assert_eq!(one.matched_queries, ["first", "note"]);
    let two = found.hits.iter().find(|h| h.id == "2").unwrap();
    assert_eq!(two.matched_queries, ["grace"]);
}

#[test]
fn nesting_beyond_the_limit_is_refused() {
    let index = index_with(json!({}), &[("1", json!({"a": "b"}))]);
    let mut query = Query::match_all();
    for _ in 0..(sluice_search::query::QUERY_DEPTH_MAX + 5) {
        query = bool_query(|b| b.must.push(query));
    }
    assert!(index.error(&query).contains("maximum nested depth"));
}
