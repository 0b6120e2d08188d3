//! Journal export in QLDB's S3 layout, restore with re-verification (digest byte-for-byte
//! equal), refusal of tampered exports, and import of a QLDB-shaped export that keeps appending.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use ion_rs::{Element, Struct};
use sluice_ledger::hash::{self, Hash};
use sluice_ledger::{CancelToken, ExportFormat, ExportLocation, Ledger, LedgerError};

/// Restores from a directory the test vouches for, never cancelled.
fn restore(fixture: &Fixture, name: &str, directory: &Path) -> Result<Arc<Ledger>, LedgerError> {
    fixture.ledgers.restore_ledger(
        name,
        &ExportLocation::trusted_directory(directory),
        &CancelToken::new(),
    )
}

/// Imports from a directory the test vouches for, never cancelled.
fn import(fixture: &Fixture, name: &str, directory: &Path) -> Result<Arc<Ledger>, LedgerError> {
    fixture.ledgers.import_qldb_export(
        name,
        &ExportLocation::trusted_directory(directory),
        &CancelToken::new(),
    )
}

fn populated(fixture: &Fixture) -> Arc<Ledger> {
    let ledger = fixture.ledger("source");
    run(&ledger, "CREATE TABLE Vehicle");
    run(&ledger, "CREATE INDEX ON Vehicle (VIN)");
    for round in 0..5 {
        run(
            &ledger,
            &format!("INSERT INTO Vehicle VALUE {{'VIN': 'V{round}', 'n': {round}}}"),
        );
        fixture.clock.advance_ms(20 * 60 * 1000); // spread blocks over several hours
    }
    run(&ledger, "UPDATE Vehicle SET n = 100 WHERE VIN = 'V1'");
    run(&ledger, "DELETE FROM Vehicle WHERE VIN = 'V2'");
    run(&ledger, "CREATE TABLE Dropped");
    run(&ledger, "DROP TABLE Dropped");
    ledger
}

fn read_manifest(path: &Path) -> Element {
    Element::read_one(std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn export_has_qldb_layout_and_restores_to_the_same_digest() {
    for format in [ExportFormat::IonText, ExportFormat::IonBinary] {
        let fixture = Fixture::new();
        let source = populated(&fixture);
        let root = fixture.dir.path().join("exports");
        let export = source
            .export_journal(&root, format, None, None, &CancelToken::new())
            .unwrap();
        assert_eq!(
            export.directory,
            root.join("source").join(&export.export_id)
        );
        assert_eq!(export.blocks_exported, 11);
        assert!(
            export.keys.len() >= 2,
            "blocks span hours: {:?}",
            export.keys
        );
        for key in &export.keys {
            assert!(key.contains(source.strand_id()), "{key}");
            assert!(key.ends_with(".ion"), "{key}");
            assert!(export.directory.join(key).is_file());
        }
        let started = read_manifest(
            &export
                .directory
                .join(format!("{}.started.manifest", export.export_id)),
        );
        let started = started.as_struct().unwrap();
        assert_eq!(started.get("ledgerName").unwrap().as_text(), Some("source"));
        assert_eq!(
            started.get("exportId").unwrap().as_text(),
            Some(export.export_id.as_str())
        );
        let completed = read_manifest(
            &export
                .directory
                .join(format!("{}.completed.manifest", export.export_id)),
        );
        let keys: Vec<String> = completed
            .as_struct()
            .unwrap()
            .get("keys")
            .unwrap()
            .as_sequence()
            .unwrap()
            .elements()
            .map(|key| key.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(keys, export.keys);

        let restored = restore(&fixture, "restored", &export.directory).unwrap();
        assert_eq!(restored.digest().unwrap(), source.digest().unwrap());
        assert_eq!(restored.strand_id(), source.strand_id());
        let query = "SELECT VIN, n FROM Vehicle";
        assert_bag_eq(
            &run(&restored, query),
            &run(&source, query)
                .iter()
                .map(|value| value.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        assert_eq!(
            run(&restored, "SELECT * FROM history(Vehicle)").len(),
            run(&source, "SELECT * FROM history(Vehicle)").len()
        );
        // The catalog came back from the journal: the index and the dropped table.
        let tables = run(
            &restored,
            "SELECT name, status, indexes FROM information_schema.user_tables",
        );
        assert_eq!(
            tables,
            run(
                &source,
                "SELECT name, status, indexes FROM information_schema.user_tables"
            )
        );
        // The restored ledger keeps appending, using its index.
        run(&restored, "INSERT INTO Vehicle VALUE {'VIN': 'V9', 'n': 9}");
        assert_bag_eq(
            &run(&restored, "SELECT VALUE n FROM Vehicle WHERE VIN = 'V9'"),
            "9",
        );
        assert_eq!(
            restored.verify_chain(|_, _| {}).unwrap().blocks_verified,
            12
        );
    }
}

#[test]
fn export_time_range_and_json_lines() {
    let fixture = Fixture::new();
    let source = populated(&fixture);
    let root = fixture.dir.path().join("exports");
    let start = time::macros::datetime!(2024-01-02 03:30:00 UTC);
    let end = time::macros::datetime!(2024-01-02 04:10:00 UTC);
    let export = source
        .export_journal(
            &root,
            ExportFormat::JsonLines,
            Some(start),
            Some(end),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(export.blocks_exported, 2);
    let mut lines = 0;
    for key in &export.keys {
        assert!(key.ends_with(".json"));
        let text = std::fs::read_to_string(export.directory.join(key)).unwrap();
        for line in text.lines() {
            assert!(
                line.starts_with("{\"blockAddress\":{\"strandId\":"),
                "{line}"
            );
            assert!(line.contains("\"blockHash\":\""));
            lines += 1;
        }
    }
    assert_eq!(lines, 2);
}

#[test]
fn a_tampered_export_is_refused_and_leaves_no_ledger() {
    let fixture = Fixture::new();
    let source = populated(&fixture);
    let export = source
        .export_journal(
            &fixture.dir.path().join("exports"),
            ExportFormat::IonText,
            None,
            None,
            &CancelToken::new(),
        )
        .unwrap();
    let key = export.keys.last().unwrap();
    let path = export.directory.join(key);
    let text = std::fs::read_to_string(&path).unwrap();
    let forged = text.replacen("n: 100", "n: 101", 1);
    let forged = if forged == text {
        text.replacen("\"V4\"", "\"V5\"", 1)
    } else {
        forged
    };
    assert_ne!(forged, text);
    std::fs::write(&path, forged).unwrap();
    assert!(matches!(
        restore(&fixture, "restored", &export.directory),
        Err(LedgerError::VerificationFailed(_))
    ));
    assert!(
        !fixture
            .ledgers
            .list_ledgers()
            .unwrap()
            .contains(&"restored".to_owned())
    );
}

/// Rewrites our export into what QLDB's export looks like: extra entries in `entriesHashList`
/// (hashes of system data), a hash-only revision, S3 keys under a prefix; re-chains the hashes.
fn make_qldb_shaped(blocks: &[Element]) -> Vec<Element> {
    let mut previous: Option<Hash> = None;
    let mut output = Vec::new();
    for (position, block) in blocks.iter().enumerate() {
        let fields = block.as_struct().unwrap();
        let mut entries: Vec<Hash> = fields
            .get("entriesHashList")
            .unwrap()
            .as_sequence()
            .unwrap()
            .elements()
            .map(|entry| hash::hash_from_slice(entry.as_blob().unwrap()).unwrap())
            .collect();
        entries.push(hash::sha256_bytes(
            format!("system entry {position}").as_bytes(),
        ));
        let mut revisions: Vec<Element> = fields
            .get("revisions")
            .map(|list| list.as_sequence().unwrap().elements().cloned().collect())
            .unwrap_or_default();
        if !revisions.is_empty() {
            // A hash-only revision, as QLDB lists system revisions; its hash joins the root.
            let system_hash = hash::sha256_bytes(format!("system revision {position}").as_bytes());
            revisions.push(Element::from(
                Struct::builder()
                    .with_field("hash", Element::blob(system_hash))
                    .build(),
            ));
            let revision_hashes: Vec<Hash> = revisions
                .iter()
                .map(|revision| {
                    hash::hash_from_slice(
                        revision
                            .as_struct()
                            .unwrap()
                            .get("hash")
                            .unwrap()
                            .as_blob()
                            .unwrap(),
                    )
                    .unwrap()
                })
                .collect();
            entries[1] = hash::merkle_root(&revision_hashes).unwrap();
        }
        let entries_hash = hash::merkle_root(&entries).unwrap();
        let block_hash = hash::dot(Some(&entries_hash), previous.as_ref()).unwrap();
        let mut builder = Struct::builder();
        for (name, value) in fields.fields() {
            let replaced = match name.text().unwrap() {
                "entriesHashList" => sluice_ledger::model::list_element(
                    entries.iter().map(|entry| Element::blob(*entry)).collect(),
                ),
                "entriesHash" => Element::blob(entries_hash),
                "blockHash" => Element::blob(block_hash),
                "previousBlockHash" => Element::blob(previous.unwrap()),
                "revisions" => sluice_ledger::model::list_element(revisions.clone()),
                _ => value.clone(),
            };
            builder = builder.with_field(name.clone(), replaced);
        }
        output.push(Element::from(builder.build()));
        previous = Some(block_hash);
    }
    output
}

#[test]
fn a_qldb_shaped_export_imports_verifies_and_keeps_appending() {
    let fixture = Fixture::new();
    let source = populated(&fixture);
    let blocks = source.blocks_from(0).unwrap();
    let qldb_blocks = make_qldb_shaped(&blocks);
    // Lay it out as an S3 download: keys carry the bucket prefix.
    let export_dir = fixture.dir.path().join("qldb-export");
    let data_dir = export_dir.join("journalExport/2024/01/02/03");
    std::fs::create_dir_all(&data_dir).unwrap();
    let text: String = qldb_blocks
        .iter()
        .map(|block| format!("{block}\n"))
        .collect();
    let key = format!(
        "journalExport/2024/01/02/03/{}.0-10.ion",
        source.strand_id()
    );
    std::fs::write(export_dir.join(&key), text).unwrap();
    std::fs::write(
        export_dir.join("journalExport/EXPORTID.completed.manifest"),
        format!("{{keys: [\"{key}\"]}}"),
    )
    .unwrap();
    // The manifest sits under the prefix, as in S3.
    let imported = import(&fixture, "imported", &export_dir.join("journalExport")).unwrap();
    let last_hash = hash::hash_from_slice(
        qldb_blocks
            .last()
            .unwrap()
            .as_struct()
            .unwrap()
            .get("blockHash")
            .unwrap()
            .as_blob()
            .unwrap(),
    )
    .unwrap();
    let tip = imported.digest().unwrap().unwrap();
    assert_eq!(tip.digest_tip_address.sequence_no, 10);
    assert_bag_eq(
        &run(&imported, "SELECT VALUE VIN FROM Vehicle"),
        "\"V0\" \"V1\" \"V3\" \"V4\"",
    );
    let committed = imported
        .execute("INSERT INTO Vehicle VALUE {'VIN': 'V7'}", &[])
        .unwrap();
    assert_eq!(committed.len(), 1);
    let block = imported
        .block(
            &sluice_ledger::BlockAddress {
                strand_id: source.strand_id().to_owned(),
                sequence_no: 11,
            },
            None,
        )
        .unwrap()
        .block;
    let previous = block
        .as_struct()
        .unwrap()
        .get("previousBlockHash")
        .unwrap()
        .as_blob()
        .unwrap()
        .to_vec();
    assert_eq!(previous, last_hash.to_vec());
    assert_eq!(
        imported.verify_chain(|_, _| {}).unwrap().blocks_verified,
        12
    );
    // A proof for an imported revision folds to the new digest.
    let digest = imported.digest().unwrap().unwrap();
    let history = run(
        &imported,
        "SELECT h.blockAddress AS a, h.metadata.id AS id FROM history(Vehicle) AS h WHERE h.data.VIN = 'V3'",
    );
    let fields = history[0].as_struct().unwrap();
    let address = sluice_ledger::BlockAddress::from_element(fields.get("a").unwrap()).unwrap();
    let revision = imported
        .revision(
            &address,
            fields.get("id").unwrap().as_text().unwrap(),
            Some(&digest.digest_tip_address),
        )
        .unwrap();
    assert_eq!(
        hash::fold_proof(&revision.revision.hash, &revision.proof.unwrap()),
        digest.digest
    );

    // A broken chain is refused.
    let mut broken = qldb_blocks.clone();
    broken.remove(4);
    let broken_dir = fixture.dir.path().join("broken");
    std::fs::create_dir_all(&broken_dir).unwrap();
    let text: String = broken.iter().map(|block| format!("{block}\n")).collect();
    std::fs::write(broken_dir.join("all.ion"), text).unwrap();
    assert!(matches!(
        import(&fixture, "broken", &broken_dir),
        Err(LedgerError::VerificationFailed(_))
    ));
}

// ----- the walk: symbolic links, loops, limits, contents never quoted, cancellation -----

fn exported(fixture: &Fixture) -> (Arc<Ledger>, sluice_ledger::JournalExport) {
    let source = populated(fixture);
    let export = source
        .export_journal(
            &fixture.dir.path().join("exports"),
            ExportFormat::IonText,
            None,
            None,
            &CancelToken::new(),
        )
        .unwrap();
    (source, export)
}

fn assert_no_ledger_left(fixture: &Fixture, name: &str) {
    assert!(
        !fixture
            .ledgers
            .list_ledgers()
            .unwrap()
            .contains(&name.to_owned())
    );
    let leftovers: Vec<_> = std::fs::read_dir(fixture.dir.path().join("ledgers"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| file.starts_with(name))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_directory_with_two_symlinks_to_itself_is_refused_and_the_walk_ends() {
    let fixture = Fixture::new();
    let directory = fixture.dir.path().join("loop");
    std::fs::create_dir_all(&directory).unwrap();
    std::os::unix::fs::symlink(".", directory.join("a")).unwrap();
    std::os::unix::fs::symlink(&directory, directory.join("b")).unwrap();
    let error = import(&fixture, "looped", &directory).unwrap_err();
    assert!(matches!(error, LedgerError::BadRequest(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "bad request: a in the export is a symbolic link; imports do not follow symbolic links"
    );
    assert_no_ledger_left(&fixture, "looped");
}

#[test]
fn symbolic_links_out_of_the_export_are_not_followed() {
    let fixture = Fixture::new();
    let (_, export) = exported(&fixture);
    // A data object replaced by a link to its copy outside the export.
    let key = export.keys.first().unwrap();
    let outside = fixture.dir.path().join("outside.ion");
    std::fs::rename(export.directory.join(key), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, export.directory.join(key)).unwrap();
    let error = restore(&fixture, "linked", &export.directory).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "bad request: {key} in the export is a symbolic link; imports do not follow symbolic links"
        )
    );
    assert_no_ledger_left(&fixture, "linked");

    // A directory on a manifest key's path replaced by a link is refused too.
    std::fs::remove_file(export.directory.join(key)).unwrap();
    std::fs::rename(&outside, export.directory.join(key)).unwrap();
    let hour = Path::new(key).parent().unwrap();
    let moved = fixture.dir.path().join("moved-hour");
    std::fs::rename(export.directory.join(hour), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, export.directory.join(hour)).unwrap();
    let error = restore(&fixture, "linked", &export.directory).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("in the export is a symbolic link; imports do not follow symbolic links"),
        "{error}"
    );
    assert_no_ledger_left(&fixture, "linked");

    // Without a manifest the walk meets the link too; a linked directory is refused as well.
    let walked = fixture.dir.path().join("walked");
    std::fs::create_dir_all(&walked).unwrap();
    std::os::unix::fs::symlink(&export.directory, walked.join("elsewhere")).unwrap();
    let error = import(&fixture, "walked", &walked).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("elsewhere in the export is a symbolic link"),
        "{error}"
    );
}

#[test]
fn errors_name_the_file_and_never_quote_its_contents() {
    let fixture = Fixture::new();
    let cases = [
        (
            "not-ion",
            "passwd.ion",
            "root:x:0:0:SECRET-LINE:/root:/bin/bash\n",
        ),
        // Valid Ion, but not a block: the value must not come back either.
        ("not-a-block", "hostname.ion", "secret_host_name_value\n"),
        (
            "bad-manifest",
            "x.completed.manifest",
            "SECRET-MANIFEST {{{\n",
        ),
    ];
    for (directory, file, contents) in cases {
        let directory = fixture.dir.path().join(directory);
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join(file), contents).unwrap();
        let message = import(&fixture, "leaky", &directory)
            .unwrap_err()
            .to_string();
        assert!(message.contains(file), "{message}");
        assert!(
            !message.to_lowercase().contains("secret"),
            "the error quotes the file: {message}"
        );
        assert_no_ledger_left(&fixture, "leaky");
    }
}

#[test]
fn the_walk_is_bounded_in_depth() {
    let fixture = Fixture::new();
    let directory = fixture.dir.path().join("deep");
    let mut deepest = directory.clone();
    for level in 0..=sluice_ledger::source::EXPORT_WALK_DEPTH_MAX {
        deepest = deepest.join(format!("d{level}"));
    }
    std::fs::create_dir_all(&deepest).unwrap();
    let error = import(&fixture, "deep", &directory).unwrap_err();
    assert!(matches!(error, LedgerError::LimitExceeded(_)), "{error}");
}

#[test]
fn a_fifo_named_like_a_data_object_is_refused_without_being_opened() {
    let fixture = Fixture::new();
    let directory = fixture.dir.path().join("fifo");
    std::fs::create_dir_all(&directory).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        directory.join("block.ion"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    // Opening a FIFO for reading would block until a writer comes: returning at all is the test.
    let error = import(&fixture, "fifo", &directory).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad request: block.ion in the export is not a regular file"
    );
}

#[test]
fn a_cancelled_restore_or_export_leaves_nothing_behind() {
    let fixture = Fixture::new();
    let (source, export) = exported(&fixture);
    let cancelled = CancelToken::new();
    cancelled.cancel();
    let error = fixture
        .ledgers
        .restore_ledger(
            "copy",
            &ExportLocation::trusted_directory(&export.directory),
            &cancelled,
        )
        .unwrap_err();
    assert!(matches!(error, LedgerError::Cancelled(_)), "{error}");
    assert!(
        error.to_string().contains("no ledger was created"),
        "{error}"
    );
    assert_no_ledger_left(&fixture, "copy");

    let root = fixture.dir.path().join("cancelled-exports");
    let error = source
        .export_journal(&root, ExportFormat::IonText, None, None, &cancelled)
        .unwrap_err();
    assert!(matches!(error, LedgerError::Cancelled(_)), "{error}");
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|entries| entries.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_partial_ledger_left_by_a_crash_is_removed_when_the_directory_opens() {
    let mut fixture = Fixture::new();
    let partial = fixture
        .dir
        .path()
        .join("ledgers/crashed.4Kz8rTq1xVbN2mP0sL7yQw.ledger.partial");
    std::fs::write(&partial, b"half a ledger").unwrap();
    fixture.reopen();
    assert!(!partial.exists());
    assert!(fixture.ledgers.list_ledgers().unwrap().is_empty());
    // The name is free: a restore of it succeeds.
    let (_, export) = exported(&fixture);
    restore(&fixture, "crashed", &export.directory).unwrap();
}
