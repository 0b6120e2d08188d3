//! Document rules of the engine that Elasticsearch clients rely on: reads from the last refresh
//! (`realtime=false`), indices that do not keep `_source`, updates of missing documents under
//! `if_seq_no`, the document an update leaves behind, and keywords too long to index.

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_search::version::Condition;
use sluice_search::{
    Index, IndexSettings, Mappings, Query, SearchError, UpdateRequest, WriteOutcome, WriteRequest,
    WriteResult,
};

fn index_with(dir: &tempfile::TempDir, mappings: Value) -> Index {
    let settings = IndexSettings::from_json(&json!({"refresh_interval": "-1"})).unwrap();
    let mappings = Mappings::from_json(&mappings).unwrap();
    Index::create(&dir.path().join("index"), "docs", settings, mappings).unwrap()
}

fn put(index: &Index, id: &str, document: Value) -> Result<WriteOutcome, SearchError> {
    index
        .write(vec![WriteRequest::Index {
            id: Some(id.to_string()),
            source: Arc::from(document.to_string().as_bytes()),
            document,
            condition: Condition::None,
        }])
        .pop()
        .unwrap()
}

fn update(index: &Index, update: UpdateRequest) -> Result<WriteOutcome, SearchError> {
    index
        .write(vec![WriteRequest::Update(update)])
        .pop()
        .unwrap()
}

fn partial(id: &str, doc: Value) -> UpdateRequest {
    UpdateRequest {
        id: id.to_string(),
        doc: Some(doc),
        detect_noop: true,
        ..UpdateRequest::default()
    }
}

fn json_of(source: &Option<Arc<[u8]>>) -> Value {
    serde_json::from_slice(source.as_deref().expect("a source")).unwrap()
}

#[test]
fn a_get_from_the_last_refresh_does_not_see_newer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(&dir, json!({}));
    put(&index, "1", json!({"v": 1})).unwrap();
    assert!(
        index.get("1").unwrap().is_some(),
        "real time sees the write"
    );
    assert!(index.get_refreshed("1").unwrap().is_none());
    index.refresh().unwrap();
    put(&index, "1", json!({"v": 2})).unwrap();
    let refreshed = index.get_refreshed("1").unwrap().unwrap();
    assert_eq!(
        (refreshed.version, json_of(&refreshed.source)),
        (1, json!({"v": 1}))
    );
    assert_eq!(index.get("1").unwrap().unwrap().version, 2);
}

#[test]
fn an_index_without_source_indexes_but_does_not_keep_documents() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(
        &dir,
        json!({"_source": {"enabled": false}, "properties": {"k": {"type": "keyword"}}}),
    );
    assert!(!index.mappings().source_enabled());
    put(&index, "1", json!({"k": "a"})).unwrap();
    let live = index.get("1").unwrap().unwrap();
    assert_eq!((live.version, live.source), (1, None));
    index.refresh().unwrap();
    assert!(index.get("1").unwrap().unwrap().source.is_none());
    let query = Query::Term {
        field: "k".into(),
        value: json!("a"),
        case_insensitive: false,
        boost: 1.0,
    };
    let hits = index.search(&query, 0, 10).unwrap();
    assert_eq!(hits.total, 1, "the document is searchable");
    assert!(hits.hits[0].source.is_none());
    // A partial update has nothing to merge into.
    let refused = update(&index, partial("1", json!({"k": "b"}))).unwrap_err();
    assert!(matches!(refused, SearchError::DocumentSourceMissing { .. }));
    assert_eq!(refused.to_string(), "[1]: document source missing");
    // An upsert of a missing document needs no stored source.
    let upserted = update(
        &index,
        UpdateRequest {
            upsert: Some(json!({"k": "c"})),
            ..partial("2", json!({"k": "d"}))
        },
    )
    .unwrap();
    assert_eq!(upserted.result, WriteResult::Created);
    // Whether `_source` is kept never changes once the mapping is set.
    let enable = Mappings::from_json(&json!({"_source": {"enabled": true}})).unwrap();
    let conflict = index.put_mapping(&enable).unwrap_err();
    assert_eq!(
        conflict.to_string(),
        "Mapper for [_source] conflicts with existing mapper:\n\tCannot update parameter [enabled] from [false] to [true]"
    );
    // And the rule holds after a restart, when documents come back from the translog.
    index.close(false).unwrap();
    drop(index);
    let index = Index::open(&dir.path().join("index")).unwrap();
    assert!(index.get("1").unwrap().unwrap().source.is_none());
    assert_eq!(index.search(&query, 0, 10).unwrap().total, 1);
}

#[test]
fn an_update_under_if_seq_no_of_a_missing_document_says_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(&dir, json!({}));
    let condition = Condition::IfSeqNo {
        seq_no: 1,
        primary_term: 1,
    };
    let missing = update(
        &index,
        UpdateRequest {
            condition,
            ..partial("1", json!({"a": 1}))
        },
    )
    .unwrap_err();
    assert!(
        matches!(missing, SearchError::DocumentMissing { .. }),
        "{missing}"
    );
    // A deleted document is missing too.
    put(&index, "1", json!({"a": 0})).unwrap();
    index
        .write(vec![WriteRequest::Delete {
            id: "1".into(),
            condition: Condition::None,
        }])
        .pop()
        .unwrap()
        .unwrap();
    let deleted = update(
        &index,
        UpdateRequest {
            condition,
            ..partial("1", json!({"a": 1}))
        },
    )
    .unwrap_err();
    assert!(
        matches!(deleted, SearchError::DocumentMissing { .. }),
        "{deleted}"
    );
    // A live document with another sequence number is a conflict, even for a noop.
    put(&index, "1", json!({"a": 1})).unwrap();
    let stale = update(
        &index,
        UpdateRequest {
            condition,
            ..partial("1", json!({"a": 1}))
        },
    )
    .unwrap_err();
    assert!(
        matches!(stale, SearchError::VersionConflict { .. }),
        "{stale}"
    );
}

#[test]
fn an_update_reports_the_document_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(&dir, json!({}));
    let indexed = put(&index, "1", json!({"a": 1, "n": {"x": 1}})).unwrap();
    assert!(
        indexed.source.is_none(),
        "only updates carry their document"
    );
    let merged = update(&index, partial("1", json!({"n": {"y": 2}}))).unwrap();
    assert_eq!(merged.result, WriteResult::Updated);
    assert_eq!(
        json_of(&merged.source),
        json!({"a": 1, "n": {"x": 1, "y": 2}})
    );
    let noop = update(&index, partial("1", json!({"a": 1}))).unwrap();
    assert_eq!(noop.result, WriteResult::Noop);
    assert_eq!(
        json_of(&noop.source),
        json!({"a": 1, "n": {"x": 1, "y": 2}})
    );
    let upserted = update(
        &index,
        UpdateRequest {
            doc_as_upsert: true,
            ..partial("2", json!({"b": 2}))
        },
    )
    .unwrap();
    assert_eq!(
        (upserted.result, json_of(&upserted.source)),
        (WriteResult::Created, json!({"b": 2}))
    );
}

#[test]
fn a_keyword_longer_than_a_term_refuses_the_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(
        &dir,
        json!({"properties": {"k": {"type": "keyword"}, "short": {"type": "keyword", "ignore_above": 10}}}),
    );
    let immense = "x".repeat(32_767);
    let refused = put(&index, "1", json!({"k": immense})).unwrap_err();
    let SearchError::DocumentParsing { reason, cause } = &refused else {
        panic!("unexpected {refused}");
    };
    assert!(
        reason.starts_with(
            "failed to parse: Document contains at least one immense term in field=\"k\" (whose UTF8 encoding is longer than the max length 32766)"
        ),
        "{reason}"
    );
    assert!(reason.ends_with("'[120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120, 120]...'"));
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.starts_with("Document contains"))
    );
    assert!(index.get("1").unwrap().is_none(), "nothing was written");
    // The longest term is accepted; `ignore_above` skips a long value before the check; the
    // bytes count, not the characters (é is two bytes).
    put(&index, "2", json!({"k": "x".repeat(32_766)})).unwrap();
    put(&index, "3", json!({"short": immense})).unwrap();
    assert!(put(&index, "4", json!({"k": "é".repeat(16_384)})).is_err());
    // Dynamic strings get a keyword sub-field with `ignore_above: 256`: long text is fine.
    put(&index, "5", json!({"text": immense})).unwrap();
}

fn scripted(id: &str, source: &str, params: Value) -> UpdateRequest {
    UpdateRequest {
        id: id.to_string(),
        script: Some(sluice_search::UpdateScript {
            script: Arc::new(sluice_script::Script::compile(source).unwrap()),
            params: sluice_script::Value::from_json(&params),
            scripted_upsert: false,
        }),
        ..UpdateRequest::default()
    }
}

#[test]
fn update_scripts_index_noop_or_delete_as_ctx_op_says() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(&dir, json!({}));
    put(&index, "1", json!({"n": 1})).unwrap();
    let updated = update(
        &index,
        scripted("1", "ctx._source.n += params.k", json!({"k": 2})),
    )
    .unwrap();
    assert_eq!(updated.result, WriteResult::Updated);
    assert_eq!(json_of(&updated.source), json!({"n": 3}));
    let noop = update(
        &index,
        scripted("1", "ctx.op = 'noop'; ctx._source.n = 99", json!({})),
    )
    .unwrap();
    assert_eq!(noop.result, WriteResult::Noop);
    assert_eq!(
        json_of(&index.get("1").unwrap().unwrap().source),
        json!({"n": 3})
    );
    let failed = update(&index, scripted("1", "ctx._source.n / 0", json!({}))).unwrap_err();
    assert!(matches!(failed, SearchError::Script(_)), "{failed}");
    let bad_op = update(&index, scripted("1", "ctx.op = 'explode'", json!({}))).unwrap_err();
    assert!(
        bad_op.to_string().contains("[explode] not allowed"),
        "{bad_op}"
    );
    // A script cannot move the document: refused, not ignored; the same value is fine.
    let moved = update(&index, scripted("1", "ctx._id = 'other'", json!({}))).unwrap_err();
    assert!(moved.to_string().contains("[ctx._id]"), "{moved}");
    let moved = update(&index, scripted("1", "ctx._index = 'x'", json!({}))).unwrap_err();
    assert!(moved.to_string().contains("[ctx._index]"), "{moved}");
    let same = update(&index, scripted("1", "ctx._id = '1'", json!({}))).unwrap();
    assert_eq!(same.result, WriteResult::Updated);
    let deleted = update(&index, scripted("1", "ctx.op = 'delete'", json!({}))).unwrap();
    assert_eq!(deleted.result, WriteResult::Deleted);
    assert!(index.get("1").unwrap().is_none());
    let mut upsert = scripted("2", "ctx._source.n = params.k", json!({"k": 7}));
    if let Some(script) = upsert.script.as_mut() {
        script.scripted_upsert = true;
    }
    assert_eq!(update(&index, upsert).unwrap().result, WriteResult::Created);
    assert_eq!(
        json_of(&index.get("2").unwrap().unwrap().source),
        json!({"n": 7})
    );
}

#[test]
fn a_scan_reads_one_point_in_time_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_with(&dir, json!({}));
    for n in 0..25 {
        put(&index, &n.to_string(), json!({"n": n})).unwrap();
    }
    index.refresh().unwrap();
    let mut scan = index.scan(&Query::match_all()).unwrap();
    assert_eq!(scan.total(), 25);
    // Writes after the scan opened, even refreshed, do not change what it reads.
    put(&index, "late", json!({"n": 100})).unwrap();
    put(&index, "0", json!({"n": -1})).unwrap();
    index.refresh().unwrap();
    let mut seen = Vec::new();
    loop {
        let batch = scan.next_batch(10).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 10);
        for hit in batch {
            let source = json_of(&hit.source);
            seen.push((hit.id.clone(), source["n"].clone(), hit.seq_no));
        }
    }
    assert_eq!(seen.len(), 25);
    let zero = seen.iter().find(|(id, _, _)| id == "0").unwrap();
    assert_eq!(zero.1, json!(0), "the scan sees the document as it was");
    // Writing back with the sequence number it was read at is a conflict for the changed one.
    let stale = index
        .write(vec![WriteRequest::Delete {
            id: "0".into(),
            condition: Condition::IfSeqNo {
                seq_no: zero.2,
                primary_term: 1,
            },
        }])
        .pop()
        .unwrap();
    assert!(matches!(stale, Err(SearchError::VersionConflict { .. })));
}
