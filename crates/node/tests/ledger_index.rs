//! The built-in indexing of ledgers into search, inside a node: one index per table, external
//! versions, deletes, real types and date mappings, resumption after reopen, configuration.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_node::{LedgerIndexConfig, Node, NodeOptions};

/// Generous bound for the indexer to catch up; a healthy run takes milliseconds.
const CATCH_UP_BOUND: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < CATCH_UP_BOUND,
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(node: &Node, statement: &str) -> Vec<ion_rs::Element> {
    let ledger = node.ledgers().ledger("Bikes").unwrap();
    let mut transaction = ledger.begin().unwrap();
    let rows = transaction.execute(statement, &[]).unwrap();
    transaction.commit().unwrap();
    rows
}

fn document_id(rows: &[ion_rs::Element]) -> String {
    rows[0]
        .as_struct()
        .unwrap()
        .get("documentId")
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned()
}

/// The document `id` of `index` with its version, or `None`.
fn get(node: &Node, index: &str, id: &str) -> Option<(u64, Value)> {
    let index = node.indices().get(index).ok()?;
    let stored = index.get(id).unwrap()?;
    Some((
        stored.version,
        serde_json::from_slice(&stored.source.unwrap()).unwrap(),
    ))
}

fn source_text(node: &Node, index: &str, id: &str) -> String {
    let stored = node.indices().get(index).unwrap().get(id).unwrap().unwrap();
    String::from_utf8(stored.source.unwrap().to_vec()).unwrap()
}

#[test]
fn every_revision_reaches_its_tables_index_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    node.ledgers().create_ledger("Bikes", false).unwrap();
    run(&node, "CREATE TABLE BicycleLicence");
    let ana = document_id(&run(
        &node,
        "INSERT INTO BicycleLicence VALUE {'Name': 'Ana', 'Postcode': 'EC1A', 'PenaltyPoints': 3, \
         'Fee': 12.50, 'Issued': `2020-07-05T18:22:14.019Z`}",
    ));
    let bo = document_id(&run(
        &node,
        "INSERT INTO BicycleLicence VALUE {'Name': 'Bo', 'PenaltyPoints': 0}",
    ));
    run(
        &node,
        "UPDATE BicycleLicence SET PenaltyPoints = 6 WHERE Name = 'Ana'",
    );
    run(&node, "DELETE FROM BicycleLicence WHERE Name = 'Bo'");
    let index = "bikes-bicyclelicence";
    wait_for("Ana's update", || {
        get(&node, index, &ana).is_some_and(|(version, _)| version == 1)
    });
    wait_for("Bo's delete", || get(&node, index, &bo).is_none());
    let (_, ana_document) = get(&node, index, &ana).unwrap();
    assert_eq!(ana_document["PenaltyPoints"], json!(6));
    assert_eq!(ana_document["Issued"], json!("2020-07-05T18:22:14.019Z"));
    assert!(
        source_text(&node, index, &ana).contains(r#""Fee":12.50"#),
        "decimals keep their digits"
    );
    let mappings = node.indices().get(index).unwrap().mappings();
    assert_eq!(
        mappings.field("Issued").unwrap().field_type,
        sluice_search::mapping::FieldType::Date
    );
    assert_eq!(node.ledger_indexer().snapshot().failed_revisions, 0);
    drop(node);

    // Commits made while the node was down are indexed after it opens again.
    let node = Node::open(dir.path()).unwrap();
    let cy = document_id(&run(
        &node,
        "INSERT INTO BicycleLicence VALUE {'Name': 'Cy', 'PenaltyPoints': 1}",
    ));
    wait_for("Cy", || get(&node, index, &cy).is_some());
    assert_eq!(get(&node, index, &ana).unwrap().0, 1);
    wait_for("no lag", || {
        node.ledger_indexer().snapshot().lag_blocks.get("Bikes") == Some(&0)
    });
}

#[test]
fn the_configuration_renames_and_turns_indexing_off() {
    let dir = tempfile::tempdir().unwrap();
    let config: LedgerIndexConfig = serde_json::from_value(json!({
        "ledgers": {"Bikes": {"tables": {
            "Hidden": {"enabled": false},
            "Shown": {"index": "shown", "mapping": {"properties": {"a": {"type": "keyword"}}}}
        }}}
    }))
    .unwrap();
    let node = Node::open_with(
        dir.path(),
        NodeOptions {
            ledger_index: config,
            ..NodeOptions::default()
        },
    )
    .unwrap();
    node.ledgers().create_ledger("Bikes", false).unwrap();
    run(&node, "CREATE TABLE Hidden");
    run(&node, "CREATE TABLE Shown");
    run(&node, "INSERT INTO Hidden VALUE {'a': 1}");
    let shown = document_id(&run(&node, "INSERT INTO Shown VALUE {'a': 2}"));
    wait_for("the renamed index", || {
        get(&node, "shown", &shown).is_some()
    });
    wait_for("no lag", || {
        node.ledger_indexer().snapshot().lag_blocks.get("Bikes") == Some(&0)
    });
    assert_eq!(
        node.indices()
            .get("shown")
            .unwrap()
            .mappings()
            .field("a")
            .unwrap()
            .field_type,
        sluice_search::mapping::FieldType::Keyword,
        "the configured mapping, not the dynamic one"
    );
    assert!(!node.indices().exists("bikes-hidden"));
    assert!(!node.indices().exists("bikes-shown"));
}

#[test]
fn a_bad_mapping_or_index_name_in_the_configuration_is_refused_at_open() {
    for table_config in [
        json!({"mapping": {"properties": {"a": {"type": "no-such-type"}}}}),
        json!({"index": "Upper"}),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config: LedgerIndexConfig = serde_json::from_value(json!({
            "ledgers": {"Bikes": {"tables": {"T": table_config}}}
        }))
        .unwrap();
        let opened = Node::open_with(
            dir.path(),
            NodeOptions {
                ledger_index: config,
                ..NodeOptions::default()
            },
        );
        assert!(
            matches!(
                opened,
                Err(sluice_node::NodeError::LedgerIndex(
                    sluice_node::ledger_index::LedgerIndexError::Config(_)
                ))
            ),
            "{table_config}"
        );
    }
}

#[test]
fn deleting_a_ledger_deletes_its_indices_and_a_new_ledger_of_its_name_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    node.ledgers().create_ledger("Bikes", false).unwrap();
    run(&node, "CREATE TABLE BicycleLicence");
    run(&node, "CREATE TABLE Shop");
    let ana = document_id(&run(
        &node,
        "INSERT INTO BicycleLicence VALUE {'Name': 'Ana'}",
    ));
    run(
        &node,
        "UPDATE BicycleLicence SET Name = 'Ana B' WHERE Name = 'Ana'",
    );
    let shop = document_id(&run(&node, "INSERT INTO Shop VALUE {'City': 'Leeds'}"));
    wait_for("both indices", || {
        get(&node, "bikes-bicyclelicence", &ana).is_some_and(|(version, _)| version == 1)
            && get(&node, "bikes-shop", &shop).is_some()
    });
    node.indices()
        .create("unrelated", Default::default())
        .unwrap();

    node.ledgers().delete_ledger("Bikes").unwrap();
    wait_for("the ledger's indices to go", || {
        !node.indices().exists("bikes-bicyclelicence") && !node.indices().exists("bikes-shop")
    });
    assert!(
        node.indices().exists("unrelated"),
        "only the ledger's own indices go"
    );
    wait_for("the lag gauge to forget the ledger", || {
        !node
            .ledger_indexer()
            .snapshot()
            .lag_blocks
            .contains_key("Bikes")
    });

    // A new ledger of the same name: its first revision (version 0) is indexed, not refused as
    // older than the deleted ledger's version 1.
    node.ledgers().create_ledger("Bikes", false).unwrap();
    run(&node, "CREATE TABLE BicycleLicence");
    let cy = document_id(&run(
        &node,
        "INSERT INTO BicycleLicence VALUE {'Name': 'Cy'}",
    ));
    wait_for("Cy", || {
        get(&node, "bikes-bicyclelicence", &cy).is_some_and(|(version, _)| version == 0)
    });
    assert!(get(&node, "bikes-bicyclelicence", &ana).is_none());
    assert!(!node.indices().exists("bikes-shop"));
    drop(node);

    // Deleted while the node was down (the files gone, as after DeleteLedger and a crash before
    // the indexer's pass): the next start deletes the indices.
    let node = Node::open(dir.path()).unwrap();
    wait_for("Cy after reopen", || {
        node.ledger_indexer().snapshot().lag_blocks.get("Bikes") == Some(&0)
    });
    node.ledger_indexer().shutdown();
    node.ledgers().delete_ledger("Bikes").unwrap();
    drop(node);
    let node = Node::open(dir.path()).unwrap();
    wait_for("the index of the ledger deleted before the restart", || {
        !node.indices().exists("bikes-bicyclelicence")
    });
}
