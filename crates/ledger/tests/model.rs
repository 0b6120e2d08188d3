//! Model-based property test: random inserts, updates, deletes, index creation, aborted
//! transactions and reopens, applied to the ledger and to a `BTreeMap`, compared after every
//! step; the chain verifies throughout and the history holds one revision per write.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Operation {
    Put { key: i64, value: i64 },
    Delete { key: i64 },
    Aborted { key: i64, value: i64 },
    CreateIndex,
    Reopen,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (0..8i64, -50..50i64).prop_map(|(key, value)| Operation::Put { key, value }),
        2 => (0..8i64).prop_map(|key| Operation::Delete { key }),
        1 => (0..8i64, -50..50i64).prop_map(|(key, value)| Operation::Aborted { key, value }),
        1 => Just(Operation::CreateIndex),
        1 => Just(Operation::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn ledger_matches_a_btreemap(operations in proptest::collection::vec(operation(), 1..25)) {
        let mut fixture = Fixture::new();
        let mut ledger = fixture.ledger("model");
        run(&ledger, "CREATE TABLE T");
        let mut model: BTreeMap<i64, i64> = BTreeMap::new();
        let mut writes = 0usize;
        let mut indexed = false;
        for operation in operations {
            match operation {
                Operation::Put { key, value } => {
                    if model.contains_key(&key) {
                        run(&ledger, &format!("UPDATE T SET v = {value} WHERE k = {key}"));
                    } else {
                        run(&ledger, &format!("INSERT INTO T VALUE {{'k': {key}, 'v': {value}}}"));
                    }
                    model.insert(key, value);
                    writes += 1;
                }
                Operation::Delete { key } => {
                    let deleted = run(&ledger, &format!("DELETE FROM T WHERE k = {key}"));
                    prop_assert_eq!(deleted.len(), usize::from(model.remove(&key).is_some()));
                    writes += deleted.len();
                }
                Operation::Aborted { key, value } => {
                    let mut transaction = ledger.begin().unwrap();
                    transaction.execute(&format!("INSERT INTO T VALUE {{'k': {key}, 'v': {value}}}"), &[]).unwrap();
                    transaction.execute(&format!("DELETE FROM T WHERE k <> {key}"), &[]).unwrap();
                    transaction.abort();
                }
                Operation::CreateIndex => {
                    if !indexed {
                        run(&ledger, "CREATE INDEX ON T (k)");
                        indexed = true;
                    }
                }
                Operation::Reopen => {
                    drop(ledger);
                    fixture.reopen();
                    ledger = fixture.ledgers.ledger("model").unwrap();
                }
            }
            let rows = run(&ledger, "SELECT k, v FROM T ORDER BY k");
            let expected: Vec<_> = model
                .iter()
                .map(|(key, value)| ion(&format!("{{k: {key}, v: {value}}}")))
                .collect();
            prop_assert_eq!(rows, expected);
            for key in 0..8 {
                let found = run(&ledger, &format!("SELECT VALUE v FROM T WHERE k = {key}"));
                let expected: Vec<_> = model.get(&key).map(|value| ion(&value.to_string())).into_iter().collect();
                prop_assert_eq!(found, expected);
            }
        }
        prop_assert_eq!(run(&ledger, "SELECT * FROM history(T)").len(), writes);
        ledger.verify_chain(|_, _| {}).unwrap();
    }
}
