//! Property: index and delete operations with external versions, applied duplicated and in any
//! order, end in the same state as applying each once in version order — before and after a
//! reopen. This is what lets at-least-once delivery (duplicates, reordering) into an index end
//! in exactly-once effect.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use sluice_search::version::Condition;
use sluice_search::{Index, IndexSettings, Mappings, SearchError, WriteRequest};

#[derive(Debug, Clone)]
struct Op {
    id: u8,
    version: u64,
    /// `None` deletes.
    value: Option<u32>,
}

fn request(op: &Op) -> WriteRequest {
    let condition = Condition::External {
        version: op.version,
        gte: false,
    };
    let id = format!("doc-{}", op.id);
    match op.value {
        Some(value) => {
            let document = json!({ "value": value, "version": op.version });
            WriteRequest::Index {
                id: Some(id),
                source: Arc::from(document.to_string().as_bytes()),
                document,
                condition,
            }
        }
        None => WriteRequest::Delete { id, condition },
    }
}

/// The state applying each operation once in version order leads to: per id, the last op.
fn expected(ops: &[Op]) -> BTreeMap<u8, Option<(u64, u32)>> {
    let mut sorted = ops.to_vec();
    sorted.sort_by_key(|op| op.version);
    let mut state = BTreeMap::new();
    for op in sorted {
        state.insert(op.id, op.value.map(|v| (op.version, v)));
    }
    state
}

fn actual(index: &Index, ids: impl Iterator<Item = u8>) -> BTreeMap<u8, Option<(u64, u32)>> {
    ids.map(|id| {
        let found = index.get(&format!("doc-{id}")).unwrap().map(|doc| {
            let source: serde_json::Value =
                serde_json::from_slice(doc.source.as_deref().unwrap()).unwrap();
            (doc.version, source["value"].as_u64().unwrap() as u32)
        });
        (id, found)
    })
    .collect()
}

fn operations() -> impl Strategy<Value = (Vec<Op>, Vec<usize>)> {
    // Distinct versions per id make "once in version order" well defined.
    prop::collection::btree_map(
        (0u8..4, 1u64..40),
        prop::option::weighted(0.7, 0u32..1000),
        1..24,
    )
    .prop_flat_map(|ops| {
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|((id, version), value)| Op { id, version, value })
            .collect();
        let n = ops.len();
        // Each operation is delivered one to three times, in a shuffled order.
        let deliveries = prop::collection::vec(0..n, n..n * 3).prop_map(move |mut extra| {
            extra.extend(0..n);
            extra
        });
        (Just(ops), deliveries.prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn duplicated_and_shuffled_external_writes_converge((ops, deliveries) in operations()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let index = Index::create(&path, "versions", IndexSettings::default(), Mappings::default()).unwrap();
        // Alternate single writes and batches, and refresh now and then, so both the live version
        // map and the committed searcher answer version lookups.
        for (step, chunk) in deliveries.chunks(3).enumerate() {
            let requests: Vec<WriteRequest> = chunk.iter().map(|&i| request(&ops[i])).collect();
            for outcome in index.write(requests) {
                match outcome {
                    Ok(_) | Err(SearchError::VersionConflict { .. }) => {}
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            if step % 4 == 3 {
                index.refresh().unwrap();
            }
        }
        let want = expected(&ops);
        prop_assert_eq!(&actual(&index, want.keys().copied()), &want);

        // Tombstones and versions survive a reopen; stale writes are still refused.
        index.close(step_commit(&ops)).unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        prop_assert_eq!(&actual(&index, want.keys().copied()), &want);
        for op in &ops {
            let outcome = index.write(vec![request(op)]).pop().unwrap();
            let is_conflict = matches!(outcome, Err(SearchError::VersionConflict { .. }));
            prop_assert!(is_conflict, "a redelivered write was applied again: {:?}", op);
        }
        prop_assert_eq!(&actual(&index, want.keys().copied()), &want);
    }
}

/// Half the cases reopen from a commit, half from the translog alone.
fn step_commit(ops: &[Op]) -> bool {
    ops.len().is_multiple_of(2)
}
