//! Field types beyond the basic scalars (`scaled_float`, …) against real indices: what their
//! mappings accept, and which documents their queries match.

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_search::query::{Query, Range, RangeBound};
use sluice_search::{Index, IndexSettings, Mappings, WriteRequest};

struct TestIndex {
    _dir: tempfile::TempDir,
    index: Index,
}

fn index_with(mapping: Value, documents: &[(&str, Value)]) -> TestIndex {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        IndexSettings::default(),
        Mappings::from_json(&mapping).unwrap(),
    )
    .unwrap();
    let requests = documents
        .iter()
        .map(|(id, document)| WriteRequest::Index {
            id: Some(id.to_string()),
            source: Arc::from(document.to_string().as_bytes()),
            document: document.clone(),
            condition: Default::default(),
        })
        .collect();
    for outcome in index.write(requests) {
        outcome.unwrap();
    }
    index.refresh().unwrap();
    TestIndex { _dir: dir, index }
}

impl TestIndex {
    /// The ids a query matches, sorted.
    fn ids(&self, query: &Query) -> Vec<String> {
        let mut ids: Vec<String> = self
            .index
            .search(query, 0, 100)
            .unwrap()
            .hits
            .into_iter()
            .map(|hit| hit.id)
            .collect();
        ids.sort();
        ids
    }
}

fn term(field: &str, value: Value) -> Query {
    Query::Term {
        field: field.into(),
        value,
        case_insensitive: false,
        boost: 1.0,
    }
}

fn range(field: &str, lower: RangeBound, upper: RangeBound) -> Query {
    Query::Range(Box::new(Range {
        field: field.into(),
        lower,
        upper,
        format: None,
        time_zone: None,
        boost: 1.0,
    }))
}

#[test]
fn scaled_float_mappings_need_a_positive_factor() {
    let error = |mapping: Value| Mappings::from_json(&mapping).unwrap_err().to_string();
    assert!(
        error(json!({"properties": {"p": {"type": "scaled_float"}}}))
            .contains("Field [scaling_factor] is required")
    );
    for bad in [json!(0), json!(-10), json!("ten")] {
        assert!(
            error(json!({"properties": {"p": {"type": "scaled_float", "scaling_factor": bad}}}))
                .contains("[scaling_factor] must be a positive number"),
            "{bad}"
        );
    }
    let mapping = json!({"properties": {"p": {"type": "scaled_float", "scaling_factor": 100}}});
    assert_eq!(Mappings::from_json(&mapping).unwrap().to_json(), mapping);
}

#[test]
fn scaled_floats_are_seen_rounded_to_their_factor() {
    let index = index_with(
        json!({"properties": {"price": {"type": "scaled_float", "scaling_factor": 100}}}),
        &[
            ("a", json!({"price": 1.234})),
            ("b", json!({"price": "2.005"})),
            ("c", json!({"price": 3})),
            ("d", json!({"price": -0.125})),
        ],
    );
    // 1.234 is kept as 1.23; a term on any value that rounds the same finds it.
    assert_eq!(index.ids(&term("price", json!(1.23))), ["a"]);
    assert_eq!(index.ids(&term("price", json!(1.2341))), ["a"]);
    assert_eq!(index.ids(&term("price", json!(1.234))), ["a"]);
    assert!(index.ids(&term("price", json!(1.24))).is_empty());
    assert_eq!(index.ids(&term("price", json!("3.00"))), ["c"]);
    // Java's Math.round rounds halves up: -12.5 becomes -12, so -0.125 is kept as -0.12.
    assert_eq!(index.ids(&term("price", json!(-0.12))), ["d"]);

    use RangeBound::{Excluded, Included, Unbounded};
    // Bounds compare with the rounded values: 1.23 is not above 1.231, but is at most 1.231.
    assert_eq!(
        index.ids(&range("price", Excluded(json!(1.231)), Unbounded)),
        ["b", "c"]
    );
    assert_eq!(
        index.ids(&range("price", Unbounded, Included(json!(1.231)))),
        ["a", "d"]
    );
    assert_eq!(
        index.ids(&range("price", Included(json!(1.23)), Excluded(json!(3)))),
        ["a", "b"]
    );
    assert_eq!(
        index.ids(&range("price", Included(json!(-1)), Included(json!(-0.12)))),
        ["d"]
    );
}

#[test]
fn wildcard_fields_match_as_keywords_with_constant_scores() {
    let index = index_with(
        json!({"properties": {"path": {"type": "wildcard", "ignore_above": 20}}}),
        &[
            ("1", json!({"path": "/var/log/syslog"})),
            ("2", json!({"path": ["/var/log/auth.log", "/etc/hosts"]})),
            ("3", json!({"path": "/home/someone/a-very-long-path"})),
        ],
    );
    let wildcard = |pattern: &str| Query::Wildcard {
        field: "path".into(),
        pattern: pattern.into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&wildcard("/var/log/*")), ["1", "2"]);
    assert_eq!(index.ids(&wildcard("*hosts")), ["2"]);
    // Longer than ignore_above: kept in _source, not indexed.
    assert!(index.ids(&wildcard("/home/*")).is_empty());
    let regexp = Query::Regexp {
        field: "path".into(),
        pattern: "/var/log/[a-z]+".into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&regexp), ["1"]);
    let prefix = Query::Prefix {
        field: "path".into(),
        value: "/ETC".into(),
        case_insensitive: true,
        boost: 1.0,
    };
    assert_eq!(index.ids(&prefix), ["2"]);
    let hits = index
        .index
        .search(&term("path", json!("/etc/hosts")), 0, 10)
        .unwrap()
        .hits;
    assert_eq!(hits.len(), 1);
    // Elasticsearch scores wildcard-field terms as a constant, not by idf.
    assert_eq!(hits[0].score, 1.0);
    use RangeBound::{Included, Unbounded};
    assert_eq!(
        index.ids(&range("path", Included(json!("/var")), Unbounded)),
        ["1", "2"]
    );
}

#[test]
fn ip_fields_match_addresses_cidr_blocks_and_ranges() {
    let index = index_with(
        json!({"properties": {"addr": {"type": "ip"}}}),
        &[
            ("1", json!({"addr": "192.168.1.10"})),
            ("2", json!({"addr": "192.168.200.1"})),
            ("3", json!({"addr": "10.0.0.1"})),
            ("4", json!({"addr": "2001:db8::1"})),
            ("5", json!({"addr": "::ffff:10.0.0.2"})),
        ],
    );
    assert_eq!(index.ids(&term("addr", json!("192.168.1.10"))), ["1"]);
    // An IPv4-mapped IPv6 address is the same address as its IPv4 form.
    assert_eq!(index.ids(&term("addr", json!("10.0.0.2"))), ["5"]);
    assert_eq!(
        index.ids(&term("addr", json!("192.168.0.0/16"))),
        ["1", "2"]
    );
    assert_eq!(index.ids(&term("addr", json!("10.0.0.0/8"))), ["3", "5"]);
    assert_eq!(index.ids(&term("addr", json!("2001:db8::/32"))), ["4"]);
    use RangeBound::{Excluded, Included, Unbounded};
    assert_eq!(
        index.ids(&range(
            "addr",
            Included(json!("10.0.0.1")),
            Excluded(json!("192.168.200.1"))
        )),
        ["1", "3", "5"]
    );
    assert_eq!(
        index.ids(&range("addr", Excluded(json!("192.168.200.1")), Unbounded)),
        ["4"]
    );
    let error = |query: &Query| index.index.search(query, 0, 10).unwrap_err().to_string();
    assert!(error(&term("addr", json!("10.0.0.0/33"))).contains("10.0.0.0/33"));
    assert!(error(&term("addr", json!("not-an-ip"))).contains("not-an-ip"));
    assert!(error(&range("addr", Included(json!("x")), Unbounded)).contains("'x'"));
}

#[test]
fn ip_values_that_are_not_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        IndexSettings::default(),
        Mappings::from_json(&json!({"properties": {"addr": {"type": "ip"}}})).unwrap(),
    )
    .unwrap();
    let document = json!({"addr": "300.1.1.1"});
    let outcome = index.write(vec![WriteRequest::Index {
        id: Some("1".into()),
        source: Arc::from(document.to_string().as_bytes()),
        document,
        condition: Default::default(),
    }]);
    assert!(outcome.into_iter().next().unwrap().is_err());
}

#[test]
fn flattened_fields_index_leaves_under_the_field_and_their_keys() {
    let index = index_with(
        json!({"properties": {"labels": {"type": "flattened"}}}),
        &[
            (
                "1",
                json!({"labels": {"team": "search", "env": {"name": "prod"}, "n": 3}}),
            ),
            (
                "2",
                json!({"labels": {"team": ["ingest", "search"], "env": {"name": "dev"}}}),
            ),
            ("3", json!({"labels": {"owner": "prod"}})),
        ],
    );
    assert_eq!(index.ids(&term("labels.team", json!("search"))), ["1", "2"]);
    assert_eq!(index.ids(&term("labels.env.name", json!("prod"))), ["1"]);
    assert_eq!(index.ids(&term("labels", json!("prod"))), ["1", "3"]);
    // Numbers are keywords too.
    assert_eq!(index.ids(&term("labels.n", json!("3"))), ["1"]);
    assert!(index.ids(&term("labels.missing", json!("prod"))).is_empty());
    let prefix = Query::Prefix {
        field: "labels.team".into(),
        value: "ing".into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&prefix), ["2"]);
    use RangeBound::{Included, Unbounded};
    assert_eq!(
        index.ids(&range("labels.env.name", Included(json!("e")), Unbounded)),
        ["1"]
    );
}
