//! Nested fields against real indices: each object matches on its own, documents alone are
//! counted, found and aggregated at the top, deletes and updates take the objects with them,
//! and all of it survives reopening (the translog replayed, the blocks committed).

mod common;
use common::{TestIndex, delete, index_with, index_with_settings, term, write};

use serde_json::{Value, json};
use sluice_search::aggs::{self, AggKind, AggResult, AggValue, Aggregation, AggregationLimits};
use sluice_search::nested::NestedScoreMode;
use sluice_search::query::{Bool, InnerHits, Nested, Query};
use sluice_search::{Mappings, SearchError};

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

/// Three posts: two with comments (one with votes on a comment), one without.
fn corpus() -> Vec<(&'static str, Value)> {
    vec![
        (
            "1",
            json!({"title": "one", "comments": [
                {"author": "alice", "stars": 5, "votes": [{"by": "x"}, {"by": "y"}]},
                {"author": "bob", "stars": 1}
            ]}),
        ),
        (
            "2",
            json!({"title": "two", "comments": {"author": "alice", "stars": 1, "votes": {"by": "y"}}}),
        ),
        ("3", json!({"title": "three"})),
    ]
}

/// The corpus in a new index with the nested mapping.
fn posts() -> TestIndex {
    index_with(mapping(), &corpus())
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

#[test]
fn one_object_must_match_every_clause() {
    let index = posts();
    let same = Query::Nested(Box::new(nested(
        "comments",
        all_of(vec![
            term("comments.author", json!("alice")),
            term("comments.stars", json!(5)),
        ]),
    )));
    assert_eq!(index.ids(&same), ["1"]);
    // alice with 1 star and bob with 5 stars: no single object of document 1 has both.
    let across = Query::Nested(Box::new(nested(
        "comments",
        all_of(vec![
            term("comments.author", json!("bob")),
            term("comments.stars", json!(5)),
        ]),
    )));
    assert_eq!(index.ids(&across), Vec::<String>::new());
    let alice = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("alice")),
    )));
    assert_eq!(index.ids(&alice), ["1", "2"]);
    // Outside a nested query the objects' fields are not the document's.
    assert_eq!(
        index.ids(&term("comments.author", json!("alice"))),
        Vec::<String>::new()
    );
    // Documents alone are counted and listed.
    assert_eq!(index.index.count(&Query::match_all()).unwrap(), 3);
    assert_eq!(index.index.docs_count(), 3);
    assert_eq!(index.ids(&Query::match_all()), ["1", "2", "3"]);
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
    assert_eq!(index.ids(&voted), ["1"]);
    // A get finds the document, not one of its objects.
    let got = index.index.get("1").unwrap().unwrap();
    assert_eq!(got.version, 1);
    let source: Value = serde_json::from_slice(got.source.as_deref().unwrap()).unwrap();
    assert_eq!(source["title"], "one");
}

#[test]
fn score_modes_combine_the_matching_objects() {
    let index = posts();
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
    let index = posts();
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
        index.ids(&Query::Nested(Box::new(missing))),
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
    let alice = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("alice")),
    )));
    let index = posts();
    write(
        &index.index,
        &[(
            "1",
            json!({"title": "one", "comments": [{"author": "carol", "stars": 2}]}),
        )],
    )
    .unwrap();
    delete(&index.index, "2").unwrap();
    index.index.refresh().unwrap();
    assert_eq!(index.ids(&alice), Vec::<String>::new());
    // Written but not refreshed: only the translog has it when the index closes.
    write(
        &index.index,
        &[("4", json!({"comments": [{"author": "alice"}]}))],
    )
    .unwrap();
    let index = index.reopen();
    assert_eq!(index.ids(&alice), ["4"]);
    let carol = Query::Nested(Box::new(nested(
        "comments",
        term("comments.author", json!("carol")),
    )));
    assert_eq!(index.ids(&carol), ["1"]);
    assert_eq!(index.index.count(&Query::match_all()).unwrap(), 3);
    assert!(index.index.get("2").unwrap().is_none());
}

#[test]
fn inner_hits_show_the_matching_objects_where_they_sit() {
    let index = posts();
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
    let corpus = posts();
    let index = corpus.index.clone();
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
    let index = index_with_settings(
        mapping(),
        json!({"mapping": {"nested_objects": {"limit": 2}}}),
        &[],
    );
    let many = json!({"comments": [{"author": "a"}, {"author": "b"}, {"author": "c"}]});
    let error = write(&index.index, &[("1", many)]).unwrap_err();
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

fn named(name: &str, query: Query) -> Query {
    Query::Named {
        name: name.into(),
        query: Box::new(query),
    }
}

fn any_of(clauses: Vec<Query>) -> Query {
    Query::Bool(Box::new(Bool {
        should: clauses,
        boost: 1.0,
        ..Bool::default()
    }))
}

fn with_inner_hits(mut query: Nested) -> Query {
    query.inner_hits = Some(InnerHits {
        name: query.path.clone(),
        from: 0,
        size: 10,
        source_enabled: false,
        source_includes: Vec::new(),
        source_excludes: Vec::new(),
    });
    Query::Nested(Box::new(query))
}

#[test]
fn named_clauses_inside_nested_show_on_the_hit_and_in_its_inner_hits() {
    let index = posts();
    let query = named(
        "posts",
        with_inner_hits(nested(
            "comments",
            any_of(vec![
                named("alice", term("comments.author", json!("alice"))),
                named("five", term("comments.stars", json!(5))),
                named(
                    "voted",
                    Query::Nested(Box::new(nested(
                        "comments.votes",
                        named("x", term("comments.votes.by", json!("x"))),
                    ))),
                ),
            ]),
        )),
    );
    let hits = index.index.search(&query, 0, 10).unwrap().hits;
    let matched = |id: &str| {
        let hit = hits.iter().find(|hit| hit.id == id).unwrap();
        let inner: Vec<Vec<String>> = hit.inner_hits[0]
            .1
            .hits
            .iter()
            .map(|inner| inner.matched_queries.clone())
            .collect();
        (hit.matched_queries.clone(), inner)
    };
    // A post lists the names its objects match (and the objects' objects), as Lucene's block
    // join reports its children's matches; each object lists its own.
    assert_eq!(
        matched("1"),
        (
            vec![
                "posts".into(),
                "alice".into(),
                "five".into(),
                "voted".into(),
                "x".into()
            ],
            vec![vec![
                "alice".into(),
                "five".into(),
                "voted".into(),
                "x".into()
            ]]
        )
    );
    assert_eq!(
        matched("2"),
        (
            vec!["posts".into(), "alice".into()],
            vec![vec!["alice".into()]]
        )
    );
    assert_eq!(hits.len(), 2);
}

#[test]
fn ids_inside_nested_match_the_objects_of_those_documents() {
    // Elasticsearch indexes each nested object with its document's `_id` (so deletes take the
    // block), and `ids` is a term query on `_id`: inside `nested` it matches every object of
    // the named documents, so a document matches when it has objects at the path.
    let index = posts();
    let ids = |values: &[&str]| Query::Ids {
        values: values.iter().map(|v| v.to_string()).collect(),
        boost: 1.0,
    };
    let comments_of = |values: &[&str]| nested("comments", ids(values));
    assert_eq!(
        index.ids(&Query::Nested(Box::new(comments_of(&["1", "3"])))),
        ["1"]
    );
    let hits = index
        .index
        .search(&with_inner_hits(comments_of(&["1"])), 0, 10)
        .unwrap()
        .hits;
    assert_eq!(hits[0].inner_hits[0].1.total, 2, "both comments of post 1");
    let votes_of = Query::Nested(Box::new(nested(
        "comments",
        Query::Nested(Box::new(nested("comments.votes", ids(&["2", "3"])))),
    )));
    assert_eq!(index.ids(&votes_of), ["2"]);
    // Only objects of the path count, not the document itself.
    let alice_and_id = nested(
        "comments",
        all_of(vec![ids(&["1"]), term("comments.author", json!("bob"))]),
    );
    assert_eq!(index.ids(&Query::Nested(Box::new(alice_and_id))), ["1"]);
}
