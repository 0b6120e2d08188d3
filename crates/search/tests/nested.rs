//! Nested fields against real indices: each object matches on its own, documents alone are
//! counted, found and aggregated at the top, deletes and updates take the objects with them,
//! and all of it survives reopening (the translog replayed, the blocks committed).

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_search::aggs::{self, AggKind, AggResult, AggValue, Aggregation, AggregationLimits};
use sluice_search::nested::NestedScoreMode;
use sluice_search::query::{Bool, InnerHits, Nested, Query};
use sluice_search::{Index, IndexSettings, Mappings, SearchError, WriteRequest};

fn mapping() -> Value {
    json!({"properties": {
        "title": {"type": "keyword"},
        "comments": {"type": "nested", "properties": {
            "author": {"type": "keyword"},
            "stars": {"type": "long"},
            "votes": {"type": "nested", "properties": {"by": {"type": "keyword"}}}
        }}
    }})
}

fn write(index: &Index, id: &str, document: Value) {
    let outcome = index.write(vec![WriteRequest::Index {
        id: Some(id.to_string()),
        source: Arc::from(document.to_string().as_bytes()),
        document,
        condition: Default::default(),
    }]);
    for result in outcome {
        result.unwrap();
    }
}

fn delete(index: &Index, id: &str) {
    for result in index.write(vec![WriteRequest::Delete {
        id: id.to_string(),
        condition: Default::default(),
    }]) {
        result.unwrap();
    }
}

fn create(dir: &std::path::Path, settings: Value) -> Index {
    let mut index_settings = IndexSettings::default();
    index_settings.update(&settings, true).unwrap();
    Index::create(
        &dir.join("index"),
        "posts",
        index_settings,
        Mappings::from_json(&mapping()).unwrap(),
    )
    .unwrap()
}

fn corpus(index: &Index) {
    write(
        index,
        "1",
        json!({"title": "one", "comments": [
            {"author": "alice", "stars": 5, "votes": [{"by": "x"}, {"by": "y"}]},
            {"author": "bob", "stars": 1}
        ]}),
    );
    write(
        index,
        "2",
        json!({"title": "two", "comments": {"author": "alice", "stars": 1, "votes": {"by": "y"}}}),
    );
    write(index, "3", json!({"title": "three"}));
    index.refresh().unwrap();
}

fn term(field: &str, value: Value) -> Query {
    Query::Term {
        field: field.into(),
        value,
        case_insensitive: false,
        boost: 1.0,
    }
}

fn all_of(clauses: Vec<Query>) -> Query {
    Query::Bool(Box::new(Bool {
        must: clauses,
        boost: 1.0,
        ..Bool::default()
    }))
}

fn nested(path: &str, query: Query) -> Nested {
    Nested {
        path: path.into(),
        query,
        score_mode: NestedScoreMode::Avg,
        ignore_unmapped: false,
        inner_hits: None,
        boost: 1.0,
    }
}

fn ids(index: &Index, query: &Query) -> Vec<String> {
    let mut ids: Vec<String> = index
        .search(query, 0, 100)
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn one_object_must_match_every_clause() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), json!({}));
    corpus(&index);
    let same = Query::Nested(Box::new(nested(
        "comments",
        all_of(vec![
            term("comments.author", json!("alice")),
            term("comments.stars", json!(5)),
        ]),
    )));
    assert_eq!(ids(&index, &same), ["1"]);
    // alice with 1 star and bob with 5 stars: no single object of document 1 has both.
    let across = Query::Nested(Box::new(nested(
        "comments",
        all_of(vec![
            term("comments.author", json!("bob")),
            term("comments.stars", json!(5)),
        ]),
    )));
    assert_eq!(ids(&index, &across), Vec::<String>::new());
    let alice = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("alice")),
    )));
    assert_eq!(ids(&index, &alice), ["1", "2"]);
    // Outside a nested query the objects' fields are not the document's.
    assert_eq!(
        ids(&index, &term("comments.author", json!("alice"))),
        Vec::<String>::new()
    );
    // Documents alone are counted and listed.
    assert_eq!(index.count(&Query::match_all()).unwrap(), 3);
    assert_eq!(index.docs_count(), 3);
    assert_eq!(ids(&index, &Query::match_all()), ["1", "2", "3"]);
    // Nested inside nested: the votes of one comment.
    let voted = Query::Nested(Box::new(nested(
        "comments",
        all_of(vec![
            term("comments.author", json!("alice")),
            Query::Nested(Box::new(nested(
                "comments.votes",
                term("comments.votes.by", json!("x")),
            ))),
        ]),
    )));
    assert_eq!(ids(&index, &voted), ["1"]);
    // A get finds the document, not one of its objects.
    let got = index.get("1").unwrap().unwrap();
    assert_eq!(got.version, 1);
    let source: Value = serde_json::from_slice(got.source.as_deref().unwrap()).unwrap();
    assert_eq!(source["title"], "one");
}

#[test]
fn score_modes_combine_the_matching_objects() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), json!({}));
    corpus(&index);
    // Scores 5 for the 5-star comment and 1 for the 1-star one.
    let by_stars = Query::Bool(Box::new(Bool {
        should: vec![
            Query::ConstantScore {
                filter: Box::new(term("comments.stars", json!(5))),
                boost: 5.0,
            },
            Query::ConstantScore {
                filter: Box::new(term("comments.stars", json!(1))),
                boost: 1.0,
            },
        ],
        boost: 1.0,
        ..Bool::default()
    }));
    let score = |mode: NestedScoreMode| {
        let mut query = nested("comments", by_stars.clone());
        query.score_mode = mode;
        let hits = index
            .search(&Query::Nested(Box::new(query)), 0, 10)
            .unwrap();
        hits.hits
            .iter()
            .find(|hit| hit.id == "1")
            .map(|hit| hit.score)
            .unwrap()
    };
    assert_eq!(score(NestedScoreMode::Avg), 3.0);
    assert_eq!(score(NestedScoreMode::Sum), 6.0);
    assert_eq!(score(NestedScoreMode::Max), 5.0);
    assert_eq!(score(NestedScoreMode::Min), 1.0);
    assert_eq!(score(NestedScoreMode::None), 0.0);
}

#[test]
fn unmapped_and_wrong_paths() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), json!({}));
    corpus(&index);
    let mut missing = nested("nope", Query::match_all());
    let error = index
        .search(&Query::Nested(Box::new(missing.clone())), 0, 10)
        .unwrap_err();
    assert!(
        matches!(&error, SearchError::QueryShard { reason } if reason == "[nested] failed to find nested object under path [nope]"),
        "{error:?}"
    );
    missing.ignore_unmapped = true;
    assert_eq!(
        ids(&index, &Query::Nested(Box::new(missing))),
        Vec::<String>::new()
    );
    let not_nested = nested("title", Query::match_all());
    let error = index
        .search(&Query::Nested(Box::new(not_nested)), 0, 10)
        .unwrap_err();
    assert!(
        matches!(&error, SearchError::QueryShard { reason } if reason == "[nested] nested object under path [title] is not of nested type"),
        "{error:?}"
    );
}

#[test]
fn updates_and_deletes_take_the_objects_with_them_and_reopening_keeps_all() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("alice")),
    )));
    {
        let index = create(dir.path(), json!({}));
        corpus(&index);
        write(
            &index,
            "1",
            json!({"title": "one", "comments": [{"author": "carol", "stars": 2}]}),
        );
        delete(&index, "2");
        index.refresh().unwrap();
        assert_eq!(ids(&index, &alice), Vec::<String>::new());
        // Written but not refreshed: only the translog has it when the index closes.
        write(&index, "4", json!({"comments": [{"author": "alice"}]}));
        index.close(false).unwrap();
    }
    let index = Index::open(&dir.path().join("index")).unwrap();
    assert_eq!(ids(&index, &alice), ["4"]);
    let carol = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("carol")),
    )));
    assert_eq!(ids(&index, &carol), ["1"]);
    assert_eq!(index.count(&Query::match_all()).unwrap(), 3);
    assert!(index.get("2").unwrap().is_none());
}

#[test]
fn inner_hits_show_the_matching_objects_where_they_sit() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(dir.path(), json!({}));
    corpus(&index);
    let mut query = nested("comments", term("comments.author", json!("bob")));
    query.inner_hits = Some(InnerHits {
        name: "comments".into(),
        from: 0,
        size: 3,
        source_enabled: true,
        source_includes: Vec::new(),
        source_excludes: Vec::new(),
    });
    let hits = index
        .search(&Query::Nested(Box::new(query)), 0, 10)
        .unwrap();
    assert_eq!(hits.hits.len(), 1);
    let (name, inner) = &hits.hits[0].inner_hits[0];
    assert_eq!(name, "comments");
    assert_eq!(inner.total, 1);
    assert_eq!(
        inner.hits[0].nested,
        json!({"field": "comments", "offset": 1})
    );
    assert_eq!(
        inner.hits[0].source,
        Some(json!({"author": "bob", "stars": 1}))
    );
    // Objects of nested objects name both levels.
    let mut votes = nested("comments.votes", term("comments.votes.by", json!("y")));
    votes.inner_hits = Some(InnerHits {
        name: "votes".into(),
        from: 0,
        size: 3,
        source_enabled: true,
        source_includes: Vec::new(),
        source_excludes: Vec::new(),
    });
    let hits = index
        .search(&Query::Nested(Box::new(votes)), 0, 10)
        .unwrap();
    let first = hits.hits.iter().find(|hit| hit.id == "1").unwrap();
    let inner = &first.inner_hits[0].1;
    assert_eq!(
        inner.hits[0].nested,
        json!({"field": "comments", "offset": 0, "_nested": {"field": "votes", "offset": 1}})
    );
    assert_eq!(inner.hits[0].source, Some(json!({"by": "y"})));
}

fn agg(name: &str, kind: AggKind, subs: Vec<Aggregation>) -> Aggregation {
    Aggregation {
        name: name.into(),
        kind,
        subs,
    }
}

fn single(result: &AggResult) -> (u64, &[AggResult]) {
    match &result.value {
        AggValue::SingleBucket { doc_count, subs } => (*doc_count, subs),
        other => panic!("not a single bucket: {other:?}"),
    }
}

#[test]
fn nested_and_reverse_nested_aggregations_count_objects_then_documents() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(create(dir.path(), json!({})));
    corpus(&index);
    let source = |field: &str| aggs::ValueSource::field(field);
    let tree = vec![agg(
        "comments",
        AggKind::Nested("comments".into()),
        vec![
            agg("stars", AggKind::Sum(source("comments.stars")), Vec::new()),
            agg(
                "votes",
                AggKind::Nested("comments.votes".into()),
                vec![agg(
                    "posts",
                    AggKind::ReverseNested(None),
                    vec![agg(
                        "titles",
                        AggKind::ValueCount(source("title")),
                        Vec::new(),
                    )],
                )],
            ),
            agg("back", AggKind::ReverseNested(None), Vec::new()),
        ],
    )];
    let results = aggs::aggregate(
        &[(index.clone(), Query::match_all())],
        &tree,
        AggregationLimits::default(),
    )
    .unwrap();
    let (objects, subs) = single(&results[0]);
    assert_eq!(objects, 3, "three comments in all");
    assert!(matches!(subs[0].value, AggValue::Value { value: Some(v), .. } if v == 7.0));
    let (votes, vote_subs) = single(&subs[1]);
    assert_eq!(votes, 3, "three votes in all");
    let (posts, post_subs) = single(&vote_subs[0]);
    assert_eq!(posts, 2, "votes in two posts");
    assert!(matches!(post_subs[0].value, AggValue::Count(2)));
    let (back, _) = single(&subs[2]);
    assert_eq!(back, 2, "comments in two posts");

    // Outside a nested aggregation, reverse_nested is refused.
    let error = aggs::aggregate(
        &[(index.clone(), Query::match_all())],
        &[agg("r", AggKind::ReverseNested(None), Vec::new())],
        AggregationLimits::default(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("can only be used inside a [nested] aggregation"),
        "{error}"
    );
}

#[test]
fn nested_objects_limit_refuses_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let index = create(
        dir.path(),
        json!({"mapping": {"nested_objects": {"limit": 2}}}),
    );
    let many = json!({"comments": [{"author": "a"}, {"author": "b"}, {"author": "c"}]});
    let outcome = index.write(vec![WriteRequest::Index {
        id: Some("1".into()),
        source: Arc::from(many.to_string().as_bytes()),
        document: many,
        condition: Default::default(),
    }]);
    let error = outcome.into_iter().next().unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "The number of nested documents has exceeded the allowed limit of [2]. This limit can be set by changing the [index.mapping.nested_objects.limit] index level setting."
    );
}

#[test]
fn nested_fields_limit_refuses_the_mapping() {
    let properties: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("n{i}"), json!({"type": "nested"})))
        .collect();
    let error = Mappings::from_json(&json!({"properties": properties})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Limit of nested fields [50] has been exceeded"
    );
}
