//! The redb layout of a ledger's derived state (`state.redb`): table definitions, key shapes and
//! the typed reads the transaction and journal code use; `state.rs` writes them. Blocks live in
//! the journal file only. `docs/ledger-format.md` is the spec of this file.

use redb::{
    MultimapTableDefinition, ReadableMultimapTable, ReadableTable, TableDefinition,
    WriteTransaction,
};

use crate::error::LedgerError;
use crate::model::{self, TableInfo};

/// Version of the on-disk layout; bumped on any incompatible change. Version 1 kept every block
/// in redb; version 2 keeps blocks in the journal file only (see `journal_file.rs`).
pub const FORMAT_VERSION: u64 = 2;

/// Meta key: the layout version.
pub const FORMAT_VERSION_KEY: &str = "format_version";
/// Meta key: +1 per block that changes the catalog (the read-set token of DDL).
pub const CATALOG_VERSION_KEY: &str = "catalog_version";
/// Meta key: the last block's timestamp (Unix nanoseconds), so block times never decrease.
pub const LAST_BLOCK_TIME_KEY: &str = "last_block_time_unix_ns";
/// Meta key: how many journal blocks the state includes.
pub const APPLIED_BLOCK_COUNT_KEY: &str = "applied_block_count";
/// Meta key: the journal byte just after the last block the state includes; recovery reads
/// the journal from there.
pub const JOURNAL_END_KEY: &str = "journal_end_offset";

/// Ledger-wide settings and counters: `format_version`, `ledger_name`, `strand_id`,
/// `deletion_protection`, `catalog_version`, the last block time and the applied tip.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The catalog: table id to Ion binary `{name, tableId, status, indexes}`.
pub const TABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("tables");
/// Sequence number of the last block that wrote to a table: the read-set token of table scans.
pub const TABLE_WRITE_SEQUENCE: TableDefinition<&str, u64> =
    TableDefinition::new("table_write_sequence");
/// The current revision of every document, deleted ones included, by reference:
/// `(table id, document id)` to `(block sequence number, position in the block's revisions,
/// version, deleted)`. The revision itself is read from the journal.
pub const DOCUMENTS: TableDefinition<(&str, &str), (u64, u32, u64, bool)> =
    TableDefinition::new("document_refs");

/// Where a document's current revision is, and what OCC and deletes need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentRef {
    /// The block holding the revision.
    pub sequence_no: u64,
    /// Its position in the block's `revisions`.
    pub index_in_block: u32,
    /// The revision's version.
    pub version: u64,
    /// Whether it is a deleted document's final, data-less revision.
    pub deleted: bool,
}

impl DocumentRef {
    /// The `(block, position)` reference of the revision.
    pub fn revision_ref(&self) -> (u64, u32) {
        (self.sequence_no, self.index_in_block)
    }

    fn from_value((sequence_no, index_in_block, version, deleted): (u64, u32, u64, bool)) -> Self {
        DocumentRef {
            sequence_no,
            index_in_block,
            version,
            deleted,
        }
    }

    /// The stored value.
    pub fn to_value(self) -> (u64, u32, u64, bool) {
        (
            self.sequence_no,
            self.index_in_block,
            self.version,
            self.deleted,
        )
    }
}
/// Every revision, by reference: `(table id, document id, version)` to `(block sequence number,
/// position in the block's revisions)`.
pub const REVISIONS: TableDefinition<(&str, &str, u64), (u64, u32)> =
    TableDefinition::new("revision_refs");
/// Equality index entries: `(table id, index id, value key)` to document ids.
pub const INDEX_ENTRIES: MultimapTableDefinition<(&str, &str, &str), &str> =
    MultimapTableDefinition::new("index_entries");
/// Where each block's frame lies in the journal: sequence number to `(offset, length)`.
pub const BLOCK_POSITIONS: TableDefinition<u64, (u64, u32)> =
    TableDefinition::new("block_positions");

/// The tables of format version 1, read only by the migration to version 2.
pub mod v1 {
    use redb::TableDefinition;

    /// Journal blocks by sequence number, Ion binary of the whole block.
    pub const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
}

/// Creates every table so later read transactions can open them.
pub fn create_all_tables(write: &WriteTransaction) -> Result<(), LedgerError> {
    write.open_table(META)?;
    write.open_table(TABLES)?;
    write.open_table(TABLE_WRITE_SEQUENCE)?;
    write.open_table(DOCUMENTS)?;
    write.open_table(REVISIONS)?;
    write.open_multimap_table(INDEX_ENTRIES)?;
    write.open_table(BLOCK_POSITIONS)?;
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

/// The reference of a document's current revision.
pub fn read_document(
    table: &impl ReadableTable<(&'static str, &'static str), (u64, u32, u64, bool)>,
    table_id: &str,
    document_id: &str,
) -> Result<Option<DocumentRef>, LedgerError> {
    Ok(table
        .get((table_id, document_id))?
        .map(|value| DocumentRef::from_value(value.value())))
}

/// The references of the current revisions of every document of a table, deleted ones
/// included, by document id.
pub fn read_table_documents(
    table: &impl ReadableTable<(&'static str, &'static str), (u64, u32, u64, bool)>,
    table_id: &str,
) -> Result<Vec<(String, DocumentRef)>, LedgerError> {
    let mut documents = Vec::new();
    for entry in table.range((table_id, "")..)? {
        let (key, value) = entry?;
        let (entry_table_id, document_id) = key.value();
        if entry_table_id != table_id {
            break;
        }
        documents.push((
            document_id.to_owned(),
            DocumentRef::from_value(value.value()),
        ));
    }
    Ok(documents)
}

/// References of every revision of a table, ordered by document id then version:
/// `(block sequence number, position in the block's revisions)`.
pub fn read_table_revision_refs(
    table: &impl ReadableTable<(&'static str, &'static str, u64), (u64, u32)>,
    table_id: &str,
) -> Result<Vec<(u64, u32)>, LedgerError> {
    let mut references = Vec::new();
    for entry in table.range((table_id, "", 0u64)..)? {
        let (key, value) = entry?;
        if key.value().0 != table_id {
            break;
        }
        references.push(value.value());
    }
    Ok(references)
}

/// References to every revision of one document, oldest first.
pub fn read_document_revision_refs(
    table: &impl ReadableTable<(&'static str, &'static str, u64), (u64, u32)>,
    table_id: &str,
    document_id: &str,
) -> Result<Vec<(u64, u32)>, LedgerError> {
    let mut references = Vec::new();
    for entry in table.range((table_id, document_id, 0u64)..=(table_id, document_id, u64::MAX))? {
        references.push(entry?.1.value());
    }
    Ok(references)
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

/// Where block `sequence_no`'s frame lies in the journal.
pub fn read_block_position(
    table: &impl ReadableTable<u64, (u64, u32)>,
    sequence_no: u64,
) -> Result<Option<crate::journal_file::FramePosition>, LedgerError> {
    Ok(table.get(sequence_no)?.map(|value| {
        let (offset, length) = value.value();
        crate::journal_file::FramePosition { offset, length }
    }))
}
