//! The redb layout of one ledger file: table definitions, key shapes and the typed reads and
//! writes the transaction and journal code use. `docs/ledger-format.md` is the spec of this file.

use ion_rs::Element;
use redb::{
    MultimapTableDefinition, ReadableMultimapTable, ReadableTable, TableDefinition,
    WriteTransaction,
};

use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::model::{self, Revision, TableInfo};

/// Version of the on-disk layout; bumped on any incompatible change.
pub const FORMAT_VERSION: u64 = 1;

/// Ledger-wide settings and counters: `format_version`, `ledger_name`, `strand_id`,
/// `deletion_protection`, `catalog_version`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Journal blocks by sequence number, Ion binary of the whole block.
pub const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
/// Block hashes by sequence number (32 bytes), so digests do not decode blocks.
pub const BLOCK_HASHES: TableDefinition<u64, &[u8]> = TableDefinition::new("block_hashes");
/// The catalog: table id to Ion binary `{name, tableId, status, indexes}`.
pub const TABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("tables");
/// Sequence number of the last block that wrote to a table: the read-set token of table scans.
pub const TABLE_WRITE_SEQUENCE: TableDefinition<&str, u64> =
    TableDefinition::new("table_write_sequence");
/// The current revision of every document, deleted ones included:
/// `(table id, document id)` to Ion binary of the committed view.
pub const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
/// Every revision: `(table id, document id, version)` to Ion binary of the committed view.
pub const REVISIONS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("revisions");
/// Equality index entries: `(table id, index id, value key)` to document ids.
pub const INDEX_ENTRIES: MultimapTableDefinition<(&str, &str, &str), &str> =
    MultimapTableDefinition::new("index_entries");

/// Creates every table so later read transactions can open them.
pub fn create_all_tables(write: &WriteTransaction) -> Result<(), LedgerError> {
    write.open_table(META)?;
    write.open_table(BLOCKS)?;
    write.open_table(BLOCK_HASHES)?;
    write.open_table(TABLES)?;
    write.open_table(TABLE_WRITE_SEQUENCE)?;
    write.open_table(DOCUMENTS)?;
    write.open_table(REVISIONS)?;
    write.open_multimap_table(INDEX_ENTRIES)?;
    write.open_table(crate::journal_tree::JOURNAL_TREE)?;
    Ok(())
}

/// Reads a text value of the meta table.
pub fn meta_text(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<String>, LedgerError> {
    Ok(table
        .get(key)?
        .map(|value| String::from_utf8_lossy(value.value()).into_owned()))
}

/// Reads a numeric value of the meta table (0 when absent).
pub fn meta_u64(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u64, LedgerError> {
    match meta_text(table, key)? {
        None => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| LedgerError::Storage(format!("meta {key} is not a number"))),
    }
}

/// Reads the catalog.
pub fn read_tables(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<TableInfo>, LedgerError> {
    let mut tables = Vec::new();
    for entry in table.range::<&str>(..)? {
        let (_, value) = entry?;
        tables.push(TableInfo::from_element(&model::decode_stored(
            value.value(),
        )?)?);
    }
    Ok(tables)
}

/// Reads the current revision of a document.
pub fn read_document(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    table_id: &str,
    document_id: &str,
) -> Result<Option<Revision>, LedgerError> {
    match table.get((table_id, document_id))? {
        None => Ok(None),
        Some(value) => Ok(Some(Revision::from_element(&model::decode_stored(
            value.value(),
        )?)?)),
    }
}

/// Reads the current revisions of every document of a table, deleted ones included, by id.
pub fn read_table_documents(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    table_id: &str,
) -> Result<Vec<Revision>, LedgerError> {
    let mut revisions = Vec::new();
    for entry in table.range((table_id, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != table_id {
            break;
        }
        revisions.push(Revision::from_element(&model::decode_stored(
            value.value(),
        )?)?);
    }
    Ok(revisions)
}

/// Reads every revision of a table, ordered by document id then version.
pub fn read_table_revisions(
    table: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    table_id: &str,
) -> Result<Vec<Revision>, LedgerError> {
    let mut revisions = Vec::new();
    for entry in table.range((table_id, "", 0u64)..)? {
        let (key, value) = entry?;
        if key.value().0 != table_id {
            break;
        }
        revisions.push(Revision::from_element(&model::decode_stored(
            value.value(),
        )?)?);
    }
    Ok(revisions)
}

/// Document ids under one index value key.
pub fn read_index(
    table: &impl ReadableMultimapTable<(&'static str, &'static str, &'static str), &'static str>,
    table_id: &str,
    index_id: &str,
    value_key: &str,
) -> Result<Vec<String>, LedgerError> {
    let mut document_ids = Vec::new();
    for value in table.get((table_id, index_id, value_key))? {
        document_ids.push(value?.value().to_owned());
    }
    Ok(document_ids)
}

/// The tip: the last block's sequence number and hash, if any block exists.
pub fn read_tip(
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Option<(u64, Hash)>, LedgerError> {
    match table.last()? {
        None => Ok(None),
        Some((key, value)) => Ok(Some((key.value(), hash::hash_from_slice(value.value())?))),
    }
}

/// Every block hash from 0 to `last_sequence_no` inclusive.
pub fn read_block_hashes(
    table: &impl ReadableTable<u64, &'static [u8]>,
    last_sequence_no: u64,
) -> Result<Vec<Hash>, LedgerError> {
    let mut hashes = Vec::new();
    for entry in table.range(0..=last_sequence_no)? {
        let (key, value) = entry?;
        if key.value() != hashes.len() as u64 {
            return Err(LedgerError::Storage(format!(
                "block hash {} is missing",
                hashes.len()
            )));
        }
        hashes.push(hash::hash_from_slice(value.value())?);
    }
    Ok(hashes)
}

/// Reads and decodes one block.
pub fn read_block(
    table: &impl ReadableTable<u64, &'static [u8]>,
    sequence_no: u64,
) -> Result<Option<Element>, LedgerError> {
    match table.get(sequence_no)? {
        None => Ok(None),
        Some(value) => Ok(Some(model::decode_stored(value.value())?)),
    }
}
