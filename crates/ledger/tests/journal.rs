//! The journal against an independent verifier written only from the rules of
//! `vectors/qldb-hashing.md`: its own `dot`, Merkle root and proof fold re-check revision hashes,
//! block hashes, digests and the proofs the engine returns. Also the block shape and tampering.

mod common;

use common::*;
use ion_rs::Element;
use sha2::{Digest, Sha256};
use sluice_ledger::{BlockAddress, LedgerError};

// ----- the independent verifier -----

fn independent_sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn independent_dot(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut left_first = true;
    for position in (0..32).rev() {
        let (l, r) = (left[position] as i8, right[position] as i8);
        if l != r {
            left_first = l < r;
            break;
        }
    }
    let (first, second) = if left_first {
        (left, right)
    } else {
        (right, left)
    };
    let mut bytes = first.to_vec();
    bytes.extend_from_slice(second);
    independent_sha256(&bytes)
}

fn independent_merkle_root(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        let mut next = Vec::new();
        let mut position = 0;
        while position < level.len() {
            if position + 1 < level.len() {
                next.push(independent_dot(&level[position], &level[position + 1]));
            } else {
                next.push(level[position]);
            }
            position += 2;
        }
        level = next;
    }
    level[0]
}

fn independent_ion_hash(element: &Element) -> [u8; 32] {
    let output = ion_rs::ion_hash::sha256(element).unwrap();
    output.as_slice().try_into().unwrap()
}

fn blob(fields: &ion_rs::Struct, name: &str) -> [u8; 32] {
    fields
        .get(name)
        .unwrap()
        .as_blob()
        .unwrap()
        .try_into()
        .unwrap()
}

/// Re-checks a block from its content alone; returns its block hash.
fn independently_verify_block(block: &Element, previous: Option<[u8; 32]>) -> [u8; 32] {
    let fields = block.as_struct().unwrap();
    let mut revision_hashes = Vec::new();
    if let Some(revisions) = fields.get("revisions") {
        for revision in revisions.as_sequence().unwrap().elements() {
            let revision_fields = revision.as_struct().unwrap();
            let metadata_hash = independent_ion_hash(revision_fields.get("metadata").unwrap());
            let hash = match revision_fields.get("data") {
                Some(data) => independent_dot(&metadata_hash, &independent_ion_hash(data)),
                None => metadata_hash,
            };
            assert_eq!(hash, blob(revision_fields, "hash"), "revision hash");
            revision_hashes.push(hash);
        }
    }
    let mut entries = vec![independent_ion_hash(fields.get("transactionInfo").unwrap())];
    if !revision_hashes.is_empty() {
        entries.push(independent_merkle_root(&revision_hashes));
    }
    let stored_entries: Vec<[u8; 32]> = fields
        .get("entriesHashList")
        .unwrap()
        .as_sequence()
        .unwrap()
        .elements()
        .map(|entry| entry.as_blob().unwrap().try_into().unwrap())
        .collect();
    assert_eq!(entries, stored_entries, "entriesHashList");
    let entries_hash = independent_merkle_root(&entries);
    assert_eq!(entries_hash, blob(fields, "entriesHash"));
    let block_hash = match previous {
        Some(previous) => {
            assert_eq!(blob(fields, "previousBlockHash"), previous);
            independent_dot(&entries_hash, &previous)
        }
        None => entries_hash,
    };
    assert_eq!(block_hash, blob(fields, "blockHash"), "block hash");
    block_hash
}

fn independent_fold(leaf: [u8; 32], proof: &[[u8; 32]]) -> [u8; 32] {
    proof.iter().fold(leaf, |accumulated, node| {
        independent_dot(&accumulated, node)
    })
}

// ----- tests -----

#[test]
fn blocks_digest_and_proofs_verify_independently() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut document_ids = Vec::new();
    for round in 0..6 {
        let mut transaction = ledger.begin().unwrap();
        for index in 0..(round % 3 + 1) {
            let inserted = transaction
                .execute(
                    &format!("INSERT INTO T VALUE {{'round': {round}, 'index': {index}}}"),
                    &[],
                )
                .unwrap();
            document_ids.push(document_id(&inserted));
        }
        transaction.commit().unwrap();
        fixture.clock.advance_ms(10);
    }
    run(&ledger, "UPDATE T SET touched = true WHERE round = 1");
    run(&ledger, "DELETE FROM T WHERE round = 2");

    let digest = ledger.digest().unwrap().unwrap();
    let tip = digest.digest_tip_address.sequence_no;
    assert_eq!(tip, 8);

    // Every block re-verifies and chains; the digest is the Merkle root of the block hashes.
    let mut previous = None;
    let mut block_hashes = Vec::new();
    for sequence_no in 0..=tip {
        let address = BlockAddress {
            strand_id: ledger.strand_id().to_owned(),
            sequence_no,
        };
        let block = ledger
            .block(&address, Some(&digest.digest_tip_address))
            .unwrap();
        let block_hash = independently_verify_block(&block.block, previous);
        assert_eq!(block_hash, block.block_hash);
        // GetBlock's proof folds the block hash to the digest.
        assert_eq!(
            independent_fold(block_hash, &block.proof.unwrap()),
            digest.digest
        );
        block_hashes.push(block_hash);
        previous = Some(block_hash);
    }
    assert_eq!(independent_merkle_root(&block_hashes), digest.digest);

    // GetRevision's proof folds every revision hash to the digest.
    let history = run(
        &ledger,
        "SELECT h.blockAddress AS a, h.metadata.id AS id, h.hash AS hash FROM history(T) AS h",
    );
    assert_eq!(history.len(), document_ids.len() + 2 + 3);
    for entry in history {
        let fields = entry.as_struct().unwrap();
        let address = BlockAddress::from_element(fields.get("a").unwrap()).unwrap();
        let id = fields.get("id").unwrap().as_text().unwrap();
        let with_proof = ledger
            .revision(&address, id, Some(&digest.digest_tip_address))
            .unwrap();
        assert_eq!(with_proof.revision.hash, blob(fields, "hash"));
        let folded = independent_fold(with_proof.revision.hash, &with_proof.proof.unwrap());
        assert_eq!(
            folded, digest.digest,
            "revision {id} in block {}",
            address.sequence_no
        );
    }

    // A proof against an older digest still works.
    let early_tip = BlockAddress {
        strand_id: ledger.strand_id().to_owned(),
        sequence_no: 3,
    };
    let early_digest = independent_merkle_root(&block_hashes[..4]);
    let block = ledger
        .block(
            &BlockAddress {
                sequence_no: 2,
                ..early_tip.clone()
            },
            Some(&early_tip),
        )
        .unwrap();
    assert_eq!(
        independent_fold(block.block_hash, &block.proof.unwrap()),
        early_digest
    );
    // A tip before the block is refused.
    assert!(matches!(
        ledger.block(
            &BlockAddress {
                sequence_no: 5,
                ..early_tip.clone()
            },
            Some(&early_tip)
        ),
        Err(LedgerError::BadRequest(_))
    ));

    let report = ledger.verify_chain(|_, _| {}).unwrap();
    assert_eq!(report.blocks_verified, tip + 1);
    assert_eq!(report.digest.unwrap(), digest);
}

/// A document given as a parameter keeps the Ion hash its statement digest computed; every
/// other inserted document is hashed from its data. Either way the revision hash must be the
/// hash of the stored data, in every form of INSERT.
#[test]
fn revisions_of_documents_given_as_parameters_verify_independently() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut transaction = ledger.begin().unwrap();
    let statements: [(&str, Vec<Element>); 6] = [
        (
            "INSERT INTO T ?",
            vec![ion("{form: 1, at: 2026-12-04T10:00:00.000Z}")],
        ),
        ("INSERT INTO T VALUE ?", vec![ion("{form: 2, price: 1.50}")]),
        (
            "INSERT INTO T VALUE ?",
            vec![ion("{form: 3, nested: {list: [1, 2e0, \"x\"]}}")],
        ),
        // A parameter inside a document literal: its hash is not the document's.
        (
            "INSERT INTO T VALUE {'form': 4, 'inner': ?}",
            vec![ion("{a: 1}")],
        ),
        // A list parameter inserts each of its elements, none of which is the parameter.
        ("INSERT INTO T ?", vec![ion("[{form: 5}, {form: 6}]")]),
        (
            "INSERT INTO T << ?, ? >>",
            vec![ion("{form: 7}"), ion("{form: 8}")],
        ),
    ];
    for (statement, parameters) in &statements {
        transaction.execute(statement, parameters).unwrap();
    }
    transaction.commit().unwrap();

    let digest = ledger.digest().unwrap().unwrap();
    let tip = digest.digest_tip_address;
    let block = ledger.block(&tip, Some(&tip)).unwrap();
    let revisions = block
        .block
        .as_struct()
        .unwrap()
        .get("revisions")
        .unwrap()
        .as_sequence()
        .unwrap()
        .len();
    assert_eq!(revisions, 8);
    let previous = BlockAddress {
        strand_id: tip.strand_id.clone(),
        sequence_no: tip.sequence_no - 1,
    };
    let previous = ledger.block(&previous, Some(&tip)).unwrap().block_hash;
    assert_eq!(
        independently_verify_block(&block.block, Some(previous)),
        block.block_hash
    );
}

#[test]
fn block_shape_follows_qldb() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut transaction = ledger.begin().unwrap();
    let first = transaction
        .execute("INSERT INTO T VALUE {'a': 1}", &[])
        .unwrap();
    transaction
        .execute("INSERT INTO T VALUE ?", &[ion("{a: 2}")])
        .unwrap();
    let commit = transaction.commit().unwrap();
    let address = commit.block_address.unwrap();
    let block = ledger.block(&address, None).unwrap().block;
    let fields = block.as_struct().unwrap();
    for name in [
        "blockAddress",
        "transactionId",
        "blockTimestamp",
        "blockHash",
        "entriesHash",
        "previousBlockHash",
        "entriesHashList",
        "transactionInfo",
        "revisions",
    ] {
        assert!(fields.get(name).is_some(), "block lacks {name}: {block}");
    }
    assert_eq!(
        fields.get("transactionId").unwrap().as_text(),
        Some(commit.transaction_id.as_str())
    );
    let info = fields.get("transactionInfo").unwrap().as_struct().unwrap();
    let statements = info.get("statements").unwrap().as_sequence().unwrap();
    assert_eq!(statements.len(), 2);
    let statement = statements.get(0).unwrap().as_struct().unwrap();
    assert_eq!(
        statement.get("statement").unwrap().as_text(),
        Some("INSERT INTO T VALUE {'a': 1}")
    );
    // The digest of a statement without parameters is the Ion hash of its text.
    assert_eq!(
        blob(statement, "statementDigest"),
        independent_ion_hash(&Element::string("INSERT INTO T VALUE {'a': 1}"))
    );
    assert!(statement.get("startTime").unwrap().as_timestamp().is_some());
    let documents = info.get("documents").unwrap().as_struct().unwrap();
    let first_id = document_id(&first);
    let document = documents
        .get(first_id.as_str())
        .unwrap()
        .as_struct()
        .unwrap();
    assert_eq!(document.get("tableName").unwrap().as_text(), Some("T"));
    assert_eq!(document.get("statements").unwrap(), &ion("[0]"));
}

#[test]
fn tampering_with_a_stored_block_is_detected() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("tamper");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "INSERT INTO T VALUE {'amount': 100}");
    run(&ledger, "INSERT INTO T VALUE {'amount': 5}");
    let forged_id = run(
        &ledger,
        "SELECT VALUE r.metadata.id FROM _ql_committed_T AS r WHERE r.data.amount = 100",
    )[0]
    .as_text()
    .unwrap()
    .to_owned();
    drop(ledger);
    fixture.ledgers.close_ledger("tamper").unwrap();
    let path = fixture.dir.path().join("ledgers/tamper.ledger/journal");
    let (original, frames) = journal_frames(&path);
    // A forger who rewrites block 1 and its frame checksum, keeping its length.
    let (offset, length, block) = &frames[1];
    let text = sluice_ledger::model::encode_text(&Element::read_one(block).unwrap()).unwrap();
    let forged = text.replace("amount: 100,", "amount: 200,");
    assert_ne!(forged, text);
    let forged =
        sluice_ledger::model::encode_binary(&Element::read_one(forged.as_bytes()).unwrap())
            .unwrap();
    let mut frame = Vec::new();
    sluice_ledger::journal_file::JournalFile::open(&path, None)
        .unwrap()
        .encode_frame(&mut frame, 1, &forged)
        .unwrap();
    assert_eq!(frame.len(), *length);
    let mut tampered = original.clone();
    tampered[*offset..offset + length].copy_from_slice(&frame);
    std::fs::write(&path, &tampered).unwrap();
    let mut fixture = fixture;
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("tamper").unwrap();
    assert!(matches!(
        ledger.verify_chain(|_, _| {}),
        Err(LedgerError::VerificationFailed(_))
    ));
    // GetRevision re-hashes the revision it returns, so its proof never vouches for forged data.
    let forged_address = sluice_ledger::BlockAddress {
        strand_id: ledger.strand_id().to_owned(),
        sequence_no: 1,
    };
    let tip = ledger.digest().unwrap().unwrap().digest_tip_address;
    assert!(matches!(
        ledger.revision(&forged_address, &forged_id, Some(&tip)),
        Err(LedgerError::VerificationFailed(_))
    ));
    drop(ledger);
    fixture.ledgers.close_ledger("tamper").unwrap();

    // A flipped bit without a new checksum is caught by the frame's CRC, on every read path.
    let mut flipped = original;
    flipped[offset + 20] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("tamper").unwrap();
    assert!(matches!(
        ledger.verify_chain(|_, _| {}),
        Err(LedgerError::VerificationFailed(_))
    ));
    let address = sluice_ledger::BlockAddress {
        strand_id: ledger.strand_id().to_owned(),
        sequence_no: 1,
    };
    assert!(matches!(
        ledger.block(&address, None),
        Err(LedgerError::VerificationFailed(_))
    ));
}

#[test]
fn verify_chain_reports_progress() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    let mut calls = Vec::new();
    ledger
        .verify_chain(|done, total| calls.push((done, total)))
        .unwrap();
    assert_eq!(calls, vec![(1, 2), (2, 2)]);
}

#[test]
fn block_timestamps_never_go_backwards() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    fixture.clock.advance_ms(-60_000);
    run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    let blocks = ledger.blocks_from(0).unwrap();
    let time = |block: &Element| {
        block
            .as_struct()
            .unwrap()
            .get("blockTimestamp")
            .unwrap()
            .as_timestamp()
            .unwrap()
    };
    assert_eq!(time(&blocks[1]), time(&blocks[0]));
    let tx_time = run(
        &ledger,
        "SELECT VALUE c.metadata.txTime FROM _ql_committed_T AS c",
    );
    assert_eq!(tx_time[0], ion("2024-01-02T03:04:05.678Z"));
}
