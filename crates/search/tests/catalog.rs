//! The catalog beside the indices: aliases (atomic changes, write indices, filters, what a
//! reopen keeps) and templates applied when an index is created, explicitly or by a write.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_search::templates::{IndexTemplate, LegacyTemplate, TemplateBody};
use sluice_search::version::Condition;
use sluice_search::{
    AliasAction, AliasMetadata, CreateIndex, Indices, IndicesOptions, Query, SearchError,
    WriteRequest,
};

fn put(index: &sluice_search::Index, id: &str, document: Value) {
    let outcome = index
        .write(vec![WriteRequest::Index {
            id: Some(id.to_string()),
            source: Arc::from(document.to_string().as_bytes()),
            document,
            condition: Condition::None,
        }])
        .pop()
        .unwrap();
    outcome.unwrap();
}

fn add(indices: &[&str], alias: &str, metadata: AliasMetadata) -> AliasAction {
    AliasAction::Add {
        indices: indices.iter().map(|i| i.to_string()).collect(),
        aliases: vec![alias.to_string()],
        metadata,
    }
}

fn names(indices: &Indices, expression: &str) -> Vec<String> {
    indices
        .resolve(Some(expression), IndicesOptions::LENIENT_EXPAND_OPEN)
        .unwrap()
        .into_iter()
        .map(|r| r.index.name().to_string())
        .collect()
}

#[test]
fn writes_through_an_alias_go_to_its_write_index() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    indices.create("logs-1", CreateIndex::default()).unwrap();
    indices.create("logs-2", CreateIndex::default()).unwrap();
    indices
        .update_aliases(&[add(&["logs-1"], "logs", AliasMetadata::default())])
        .unwrap();
    assert_eq!(indices.get_or_create("logs").unwrap().name(), "logs-1");
    assert!(
        !indices.exists("logs"),
        "an alias is never auto-created as an index"
    );
    indices
        .update_aliases(&[add(&["logs-2"], "logs", AliasMetadata::default())])
        .unwrap();
    let error = indices.get_or_create("logs").err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with("no write index is defined for alias [logs]")
    );
    let write = AliasMetadata {
        is_write_index: Some(true),
        ..AliasMetadata::default()
    };
    indices
        .update_aliases(&[add(&["logs-2"], "logs", write.clone())])
        .unwrap();
    assert_eq!(indices.write_index("logs").unwrap().name(), "logs-2");
    assert_eq!(names(&indices, "logs"), ["logs-1", "logs-2"]);
    // A second write index is refused, and the whole request with it.
    let error = indices
        .update_aliases(&[
            add(&["logs-1"], "other", AliasMetadata::default()),
            add(&["logs-1"], "logs", write),
        ])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "alias [logs] has more than one write index [logs-1,logs-2]"
    );
    assert!(!indices.catalog().alias_exists("other"));
    assert!(
        indices
            .single_index("logs")
            .err()
            .unwrap()
            .to_string()
            .contains("has more than one index associated with it [logs-1, logs-2]")
    );
}

#[test]
fn alias_names_and_index_names_never_clash() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    indices.create("a", CreateIndex::default()).unwrap();
    indices.create("b", CreateIndex::default()).unwrap();
    let error = indices
        .update_aliases(&[add(&["a"], "b", AliasMetadata::default())])
        .unwrap_err();
    assert!(matches!(error, SearchError::InvalidAliasName { .. }));
    indices
        .update_aliases(&[add(&["a"], "c", AliasMetadata::default())])
        .unwrap();
    let error = indices.create("c", CreateIndex::default()).err().unwrap();
    assert_eq!(
        error.to_string(),
        "Invalid index name [c], already exists as alias"
    );
    // Replacing an index by an alias of its name in one request works.
    indices
        .update_aliases(&[
            add(&["a"], "b", AliasMetadata::default()),
            AliasAction::RemoveIndex {
                indices: vec!["b".into()],
            },
        ])
        .unwrap();
    assert!(!indices.exists("b"));
    assert_eq!(names(&indices, "b"), ["a"]);
}

#[test]
fn removals_of_missing_aliases_fail_alone_unless_they_must_exist() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    indices.create("a", CreateIndex::default()).unwrap();
    let remove = |alias: &str, must_exist| AliasAction::Remove {
        indices: vec!["a".into()],
        aliases: vec![alias.into()],
        must_exist,
    };
    let results = indices
        .update_aliases(&[
            add(&["a"], "x", AliasMetadata::default()),
            remove("nope", None),
        ])
        .unwrap();
    assert!(results[0].outcome.is_ok());
    assert_eq!(
        results[1].outcome.as_ref().unwrap_err().to_string(),
        "aliases [nope] missing"
    );
    assert!(indices.catalog().alias_exists("x"));
    let error = indices
        .update_aliases(&[remove("x", None), remove("nope", Some(true))])
        .unwrap_err();
    assert!(matches!(error, SearchError::AliasesNotFound { .. }));
    assert!(indices.catalog().alias_exists("x"), "nothing was applied");
    let error = indices.update_aliases(&[remove("nope", None)]).unwrap_err();
    assert_eq!(error.to_string(), "aliases [nope] missing");
    indices.update_aliases(&[remove("*", None)]).unwrap();
    assert!(!indices.catalog().alias_exists("x"));
    let error = indices
        .update_aliases(&[add(&["missing"], "x", AliasMetadata::default())])
        .unwrap_err();
    assert_eq!(error.to_string(), "no such index [missing]");
}

#[test]
fn aliases_and_templates_survive_a_reopen_and_go_with_their_index() {
    let directory = tempfile::tempdir().unwrap();
    {
        let indices = Indices::open(directory.path()).unwrap();
        indices.create("a", CreateIndex::default()).unwrap();
        indices.create("b", CreateIndex::default()).unwrap();
        indices
            .update_aliases(&[add(&["a", "b"], "both", AliasMetadata::default())])
            .unwrap();
        indices
            .put_legacy_template(
                "t",
                LegacyTemplate {
                    index_patterns: vec!["t-*".into()],
                    ..LegacyTemplate::default()
                },
                false,
            )
            .unwrap();
        indices.delete("b").unwrap();
        indices.close_all();
    }
    let indices = Indices::open(directory.path()).unwrap();
    assert_eq!(names(&indices, "both"), ["a"]);
    assert!(indices.catalog().legacy_templates.contains_key("t"));
    assert_eq!(indices.catalog().aliases_of("b"), None);
}

#[test]
fn templates_shape_indices_created_by_writes() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    let mut aliases = BTreeMap::new();
    aliases.insert("example".to_string(), AliasMetadata::default());
    indices
        .put_index_template(
            "example",
            IndexTemplate {
                index_patterns: vec!["example-*".into()],
                template: TemplateBody::new(
                    Some(&json!({"number_of_replicas": 0})),
                    Some(&json!({"properties": {"ticker": {"type": "keyword"}, "price": {"type": "double"}}})),
                    aliases,
                )
                .unwrap(),
                priority: Some(10),
                ..IndexTemplate::default()
            },
            false,
        )
        .unwrap();
    let index = indices.get_or_create("example-2026-12-01-13").unwrap();
    assert_eq!(index.settings().number_of_replicas, 0);
    assert_eq!(
        index.mappings().to_json(),
        json!({"properties": {"price": {"type": "double"}, "ticker": {"type": "keyword"}}})
    );
    assert_eq!(names(&indices, "example"), ["example-2026-12-01-13"]);
    // The request goes over the template.
    let created = indices
        .create(
            "example-2",
            CreateIndex {
                mappings: Some(json!({"properties": {"ticker": {"type": "text"}}})),
                ..CreateIndex::default()
            },
        )
        .unwrap();
    assert_eq!(
        created.mappings().to_json()["properties"]["ticker"],
        json!({"type": "text"})
    );
    // A bad template never gets in; a template the same priority and overlapping is refused.
    let error = indices
        .put_index_template(
            "clash",
            IndexTemplate {
                index_patterns: vec!["*-2026-*".into()],
                priority: Some(10),
                ..IndexTemplate::default()
            },
            false,
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("that have the same priority [10]")
    );
    assert!(matches!(
        indices.delete_templates("nope", false),
        Err(SearchError::IndexTemplateMissing { .. })
    ));
    indices.delete_templates("ex*", false).unwrap();
    assert!(indices.catalog().index_templates.is_empty());
}

#[test]
fn filtered_aliases_search_only_their_documents() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    let index = indices.create("people", CreateIndex::default()).unwrap();
    put(&index, "1", json!({"team": "red"}));
    put(&index, "2", json!({"team": "blue"}));
    index.refresh().unwrap();
    let red = Query::Term {
        field: "team.keyword".into(),
        value: json!("red"),
        case_insensitive: false,
        boost: 1.0,
    };
    let query = Query::match_all().with_alias_filters(Some(vec![red]));
    let hits = index.search(&query, 0, 10).unwrap();
    assert_eq!(hits.total, 1);
    assert_eq!(hits.hits[0].id, "1");
    assert_eq!(
        hits.hits[0].score, 1.0,
        "a filter adds nothing to the score"
    );
    assert_eq!(
        index
            .count(&Query::match_all().with_alias_filters(None))
            .unwrap(),
        2
    );
}

#[test]
fn a_write_through_a_handle_held_across_a_deletion_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let indices = Indices::open(directory.path()).unwrap();
    let held = indices.get_or_create("logs").unwrap();
    put(&held, "1", json!({"message": "before"}));
    indices.delete("logs").unwrap();
    let refused = held
        .write(vec![WriteRequest::Index {
            id: Some("2".to_string()),
            source: Arc::from(&b"{}"[..]),
            document: json!({}),
            condition: Condition::None,
        }])
        .pop()
        .unwrap();
    assert!(matches!(refused, Err(SearchError::IndexNotFound { .. })));
    // The name, created again, starts empty.
    let again = indices.get_or_create("logs").unwrap();
    again.refresh().unwrap();
    assert_eq!(again.count(&Query::MatchAll { boost: 1.0 }).unwrap(), 0);
}
