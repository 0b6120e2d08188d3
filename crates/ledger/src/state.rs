//! The derived state of a ledger: everything in its redb file is a function of the journal, and
//! this is that function. [`StateWriter::apply`] takes one block (its revisions, hash and place
//! in the journal) and updates the catalog, the current documents, the references of every
//! revision, the equality indexes, the scan tokens, the block positions and the journal Merkle
//! tree. Commits, recovery after a crash, restores, imports and the migration of format-1
//! ledgers all go through it, so the state a crash rebuilds is the state a commit built.

use std::collections::{BTreeMap, HashMap};

use ion_rs::Element;
use redb::{MultimapTable, ReadableMultimapTable, ReadableTable, Table, WriteTransaction};

use crate::error::LedgerError;
use crate::hash::Hash;
use crate::journal_file::{FramePosition, JournalFile};
use crate::journal_tree;
use crate::model::{
    self, BlockAddress, IndexInfo, Revision, RevisionMetadata, TableInfo, TableStatus,
};
use crate::storage::{self, DocumentRef};
use crate::transaction::CATALOG_TABLE_ID;
use crate::value;

/// The end of the journal as the derived state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// Blocks applied: the next block's sequence number.
    pub block_count: u64,
    /// The last block's hash, `None` while the journal is empty.
    pub last_block_hash: Option<Hash>,
    /// The byte just after the last applied frame.
    pub journal_end: u64,
    /// The last block's timestamp in Unix nanoseconds: a new block's time is never earlier.
    pub last_block_time_unix_ns: Option<i128>,
}

impl Tip {
    /// The tip recorded in a state (a snapshot or a write transaction).
    pub fn read(
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
        tree: &impl ReadableTable<(u32, u64), &'static [u8]>,
    ) -> Result<Tip, LedgerError> {
        let block_count = storage::meta_u64(meta, storage::APPLIED_BLOCK_COUNT_KEY)?;
        let last_block_hash = match block_count.checked_sub(1) {
            None => None,
            Some(last) => Some(journal_tree::leaf(tree, last)?),
        };
        let journal_end = storage::meta_u64(meta, storage::JOURNAL_END_KEY)?;
        let last_block_time_unix_ns = storage::meta_text(meta, storage::LAST_BLOCK_TIME_KEY)?
            .and_then(|text| text.parse().ok());
        Ok(Tip {
            block_count,
            last_block_hash,
            journal_end,
            last_block_time_unix_ns,
        })
    }
}

/// One revision of a block, as the derived state keeps it.
#[derive(Debug, Clone)]
pub struct AppliedRevision {
    /// The table id (`_ql_catalog` for catalog entries).
    pub table_id: String,
    /// The table's name as `transactionInfo.documents` gives it.
    pub table_name: String,
    /// Position in the block's `revisions` list.
    pub index_in_block: u32,
    /// The revision, committed view.
    pub revision: Revision,
}

/// What the derived state needs to know of one block.
#[derive(Debug, Clone)]
pub struct AppliedBlock {
    /// The block's sequence number.
    pub sequence_no: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// Where its frame lies in the journal.
    pub position: FramePosition,
    /// Its timestamp in Unix nanoseconds.
    pub block_time_unix_ns: i128,
    /// Its revisions that belong to a table; hash-only revisions and QLDB system revisions of an
    /// imported journal stay in the journal only.
    pub revisions: Vec<AppliedRevision>,
}

impl AppliedBlock {
    /// Reads a block already verified (recovery, restore, import, migration).
    pub fn from_block(
        block: &Element,
        block_hash: Hash,
        position: FramePosition,
    ) -> Result<AppliedBlock, LedgerError> {
        let fields = model::expect_struct(block, "block")?;
        let address =
            BlockAddress::from_element(fields.get("blockAddress").ok_or_else(|| {
                LedgerError::BadRequest("block without blockAddress".to_owned())
            })?)?;
        let timestamp = fields
            .get("blockTimestamp")
            .and_then(Element::as_timestamp)
            .ok_or_else(|| LedgerError::BadRequest("block without blockTimestamp".to_owned()))?;
        let block_time_unix_ns = model::datetime_from_timestamp(&timestamp)?.unix_timestamp_nanos();
        let documents = fields
            .get("transactionInfo")
            .and_then(Element::as_struct)
            .and_then(|info| info.get("documents"))
            .and_then(Element::as_struct);
        let mut revisions = Vec::new();
        if let Some(list) = fields.get("revisions").and_then(Element::as_sequence) {
            for (index, revision) in list.elements().enumerate() {
                let revision_fields = model::expect_struct(revision, "revision")?;
                let Some(metadata) = revision_fields.get("metadata") else {
                    continue; // a hash-only entry
                };
                let metadata = RevisionMetadata::from_element(metadata)?;
                let Some(document) = documents
                    .and_then(|documents| documents.get(metadata.id.as_str()))
                    .and_then(Element::as_struct)
                else {
                    continue; // a QLDB system revision without a user table
                };
                revisions.push(AppliedRevision {
                    table_id: model::field_text(document, "tableId")?.to_owned(),
                    table_name: model::field_text(document, "tableName")?.to_owned(),
                    index_in_block: u32::try_from(index).map_err(|_| {
                        LedgerError::BadRequest("a block with too many revisions".to_owned())
                    })?,
                    revision: Revision {
                        block_address: address.clone(),
                        hash: model::field_hash(revision_fields, "hash")?,
                        data: revision_fields.get("data").cloned(),
                        metadata,
                    },
                });
            }
        }
        Ok(AppliedBlock {
            sequence_no: address.sequence_no,
            block_hash,
            position,
            block_time_unix_ns,
            revisions,
        })
    }
}

/// Applies blocks, in order, to the derived state inside one redb write transaction, and keeps
/// what the next block needs (the catalog, its version, the tip) in memory meanwhile. Blocks
/// applied here are appended to the journal only once all are applied, so they are kept too,
/// for index maintenance of later blocks in the same transaction (not when replaying blocks
/// already in the journal).
pub struct StateWriter<'w> {
    write: &'w WriteTransaction,
    journal: &'w JournalFile,
    tables: OpenTables<'w>,
    catalog: BTreeMap<String, TableInfo>,
    catalog_version: u64,
    tip: Tip,
    /// The blocks applied in this transaction and not yet in the journal, by sequence number.
    pending: HashMap<u64, AppliedBlock>,
    /// Whether applied blocks are kept in `pending` (they are not in the journal yet).
    keep_pending: bool,
}

/// The tables every block changes, open for as long as the [`StateWriter`]: redb opens a table
/// by finding it in its table tree and writes its root back when it closes, which took the
/// commit leader about a fifth of applying a block when each block opened its own. Nothing else
/// may open them on the same transaction meanwhile; readers in the group commit (a member's
/// validation) read through [`StateWriter::tables`].
pub struct OpenTables<'w> {
    pub documents: Table<'w, (&'static str, &'static str), (u64, u32, u64, bool)>,
    pub revisions: Table<'w, (&'static str, &'static str, u64), (u64, u32)>,
    pub write_sequences: Table<'w, &'static str, u64>,
    pub entries: MultimapTable<'w, (&'static str, &'static str, &'static str), &'static str>,
    pub positions: Table<'w, u64, (u64, u32)>,
    pub tree: Table<'w, (u32, u64), &'static [u8]>,
}

impl<'w> OpenTables<'w> {
    fn open(write: &'w WriteTransaction) -> Result<OpenTables<'w>, LedgerError> {
        Ok(OpenTables {
            documents: write.open_table(storage::DOCUMENTS)?,
            revisions: write.open_table(storage::REVISIONS)?,
            write_sequences: write.open_table(storage::TABLE_WRITE_SEQUENCE)?,
            entries: write.open_multimap_table(storage::INDEX_ENTRIES)?,
            positions: write.open_table(storage::BLOCK_POSITIONS)?,
            tree: write.open_table(journal_tree::JOURNAL_TREE)?,
        })
    }
}

impl<'w> StateWriter<'w> {
    /// Starts from the state `write` holds, whose tip is `tip`; earlier revisions are read from
    /// `journal`.
    pub fn load(
        write: &'w WriteTransaction,
        journal: &'w JournalFile,
        tip: Tip,
    ) -> Result<StateWriter<'w>, LedgerError> {
        StateWriter::load_with_catalog(write, journal, tip, None)
    }

    /// [`Self::load`], taking the catalog from `known` (a catalog version and that version's
    /// tables) instead of decoding it when the state's catalog version is the same.
    pub fn load_with_catalog(
        write: &'w WriteTransaction,
        journal: &'w JournalFile,
        tip: Tip,
        known: Option<(u64, &[TableInfo])>,
    ) -> Result<StateWriter<'w>, LedgerError> {
        let catalog_version = {
            let meta = write.open_table(storage::META)?;
            storage::meta_u64(&meta, storage::CATALOG_VERSION_KEY)?
        };
        let tables = match known {
            Some((version, tables)) if version == catalog_version => tables.to_vec(),
            _ => storage::read_tables(&write.open_table(storage::TABLES)?)?,
        };
        let catalog = tables
            .into_iter()
            .map(|table| (table.table_id.clone(), table))
            .collect();
        Ok(StateWriter {
            write,
            journal,
            tables: OpenTables::open(write)?,
            catalog,
            catalog_version,
            tip,
            pending: HashMap::new(),
            keep_pending: true,
        })
    }

    /// For blocks read from the journal (recovery): earlier revisions are read back from it
    /// instead of being kept in memory.
    pub fn replaying(mut self) -> StateWriter<'w> {
        self.keep_pending = false;
        self
    }

    /// The tip including every block applied so far.
    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// The catalog version including every block applied so far.
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    /// The tables blocks change, as applied so far, for reading.
    pub fn tables(&self) -> &OpenTables<'w> {
        &self.tables
    }

    /// Applies the next block.
    pub fn apply(&mut self, block: AppliedBlock) -> Result<(), LedgerError> {
        if block.sequence_no != self.tip.block_count
            || block.position.offset != self.tip.journal_end
        {
            return Err(LedgerError::Internal(format!(
                "block {} at byte {} does not follow the tip ({} blocks, {} bytes)",
                block.sequence_no,
                block.position.offset,
                self.tip.block_count,
                self.tip.journal_end
            )));
        }
        // Catalog entries first, so the block's own writes see the tables it creates.
        let mut changed: Vec<(Option<TableInfo>, TableInfo)> = Vec::new();
        for applied in &block.revisions {
            if applied.table_id != CATALOG_TABLE_ID {
                continue;
            }
            if let Some(data) = &applied.revision.data {
                let table = TableInfo::from_element(data)?;
                let old = self.catalog.insert(table.table_id.clone(), table.clone());
                changed.push((old, table));
            }
        }
        {
            let OpenTables {
                documents,
                revisions,
                write_sequences,
                entries,
                positions,
                ..
            } = &mut self.tables;
            for applied in &block.revisions {
                let table_id = applied.table_id.as_str();
                let document_id = applied.revision.metadata.id.as_str();
                if table_id != CATALOG_TABLE_ID && !self.catalog.contains_key(table_id) {
                    // An imported QLDB journal names its tables only in `transactionInfo`.
                    let table = TableInfo {
                        table_id: table_id.to_owned(),
                        name: applied.table_name.clone(),
                        status: TableStatus::Active,
                        indexes: Vec::new(),
                    };
                    self.catalog.insert(table.table_id.clone(), table.clone());
                    changed.push((None, table));
                }
                let indexes: &[IndexInfo] = self
                    .catalog
                    .get(table_id)
                    .map(|table| table.indexes.as_slice())
                    .unwrap_or_default();
                let previous_data = match indexes.is_empty() {
                    true => None,
                    false => match storage::read_document(documents, table_id, document_id)? {
                        None => None,
                        Some(reference) => {
                            data_at(&self.pending, self.journal, positions, &[reference])?
                                .into_iter()
                                .next()
                                .flatten()
                        }
                    },
                };
                let reference = DocumentRef {
                    sequence_no: block.sequence_no,
                    index_in_block: applied.index_in_block,
                    version: applied.revision.metadata.version,
                    deleted: applied.revision.data.is_none(),
                };
                documents.insert((table_id, document_id), reference.to_value())?;
                revisions.insert(
                    (table_id, document_id, applied.revision.metadata.version),
                    (block.sequence_no, applied.index_in_block),
                )?;
                write_sequences.insert(table_id, block.sequence_no)?;
                for index in indexes {
                    let old_key = previous_data
                        .as_ref()
                        .and_then(|data| value::value_at_path(data, &index.field_path))
                        .and_then(|value| self.journal.index_key(value));
                    let new_key = applied
                        .revision
                        .data
                        .as_ref()
                        .and_then(|data| value::value_at_path(data, &index.field_path))
                        .and_then(|value| self.journal.index_key(value));
                    if old_key == new_key {
                        continue;
                    }
                    if let Some(old_key) = old_key {
                        entries.remove(
                            (table_id, index.index_id.as_str(), old_key.as_str()),
                            document_id,
                        )?;
                    }
                    if let Some(new_key) = new_key {
                        entries.insert(
                            (table_id, index.index_id.as_str(), new_key.as_str()),
                            document_id,
                        )?;
                    }
                }
            }
        }
        if !changed.is_empty() {
            {
                let mut tables = self.write.open_table(storage::TABLES)?;
                for (_, table) in &changed {
                    let bytes = model::encode_binary(&table.to_element())?;
                    tables.insert(table.table_id.as_str(), bytes.as_slice())?;
                }
            }
            for (old, new) in &changed {
                let old_indexes = old
                    .as_ref()
                    .map(|old| old.indexes.as_slice())
                    .unwrap_or_default();
                for index in old_indexes {
                    if !new
                        .indexes
                        .iter()
                        .any(|kept| kept.index_id == index.index_id)
                    {
                        remove_index_entries(
                            &mut self.tables.entries,
                            &new.table_id,
                            &index.index_id,
                        )?;
                    }
                }
                for index in &new.indexes {
                    if !old_indexes
                        .iter()
                        .any(|known| known.index_id == index.index_id)
                    {
                        self.build_index(&new.table_id, index)?;
                    }
                }
            }
            self.catalog_version += 1;
        }
        self.tables.positions.insert(
            block.sequence_no,
            (block.position.offset, block.position.length),
        )?;
        journal_tree::append_leaf(&mut self.tables.tree, block.sequence_no, &block.block_hash)?;
        self.tip = Tip {
            block_count: block.sequence_no + 1,
            last_block_hash: Some(block.block_hash),
            journal_end: block.position.end(),
            last_block_time_unix_ns: Some(
                self.tip
                    .last_block_time_unix_ns
                    .map_or(block.block_time_unix_ns, |last| {
                        last.max(block.block_time_unix_ns)
                    }),
            ),
        };
        if self.keep_pending {
            self.pending.insert(block.sequence_no, block);
        }
        Ok(())
    }

    /// Fills a new index from the table's current documents.
    fn build_index(&mut self, table_id: &str, index: &IndexInfo) -> Result<(), LedgerError> {
        let current = storage::read_table_documents(&self.tables.documents, table_id)?;
        let references: Vec<DocumentRef> =
            current.iter().map(|(_, reference)| *reference).collect();
        let data = data_at(
            &self.pending,
            self.journal,
            &self.tables.positions,
            &references,
        )?;
        let entries = &mut self.tables.entries;
        for ((document_id, _), data) in current.iter().zip(data) {
            if let Some(key) = data
                .as_ref()
                .and_then(|data| value::value_at_path(data, &index.field_path))
                .and_then(|value| self.journal.index_key(value))
            {
                entries.insert(
                    (table_id, index.index_id.as_str(), key.as_str()),
                    document_id.as_str(),
                )?;
            }
        }
        Ok(())
    }

    /// Records the tip and catalog version in `meta`; returns the tip.
    pub fn finish(self) -> Result<Tip, LedgerError> {
        let mut meta = self.write.open_table(storage::META)?;
        meta.insert(
            storage::APPLIED_BLOCK_COUNT_KEY,
            self.tip.block_count.to_string().as_bytes(),
        )?;
        meta.insert(
            storage::JOURNAL_END_KEY,
            self.tip.journal_end.to_string().as_bytes(),
        )?;
        if let Some(nanos) = self.tip.last_block_time_unix_ns {
            meta.insert(storage::LAST_BLOCK_TIME_KEY, nanos.to_string().as_bytes())?;
        }
        meta.insert(
            storage::CATALOG_VERSION_KEY,
            self.catalog_version.to_string().as_bytes(),
        )?;
        Ok(self.tip)
    }
}

/// The data of the revisions at `references`, in order: from the blocks applied in this
/// transaction (`pending`), or read from the journal (one read per block). A deleted document's
/// revision has none.
fn data_at(
    pending: &HashMap<u64, AppliedBlock>,
    journal: &JournalFile,
    positions: &impl ReadableTable<u64, (u64, u32)>,
    references: &[DocumentRef],
) -> Result<Vec<Option<Element>>, LedgerError> {
    let mut data: Vec<Option<Element>> = vec![None; references.len()];
    let mut from_journal = Vec::new();
    let mut from_journal_slots = Vec::new();
    for (slot, reference) in references.iter().enumerate() {
        if reference.deleted {
            continue;
        }
        let applied = pending.get(&reference.sequence_no).and_then(|block| {
            block
                .revisions
                .iter()
                .find(|applied| applied.index_in_block == reference.index_in_block)
        });
        match applied {
            Some(applied) => {
                if let Some(target) = data.get_mut(slot) {
                    target.clone_from(&applied.revision.data);
                }
            }
            None => {
                from_journal.push(reference.revision_ref());
                from_journal_slots.push(slot);
            }
        }
    }
    if !from_journal.is_empty() {
        let elements = crate::ledger::read_revision_elements(journal, positions, &from_journal)?;
        for (slot, element) in from_journal_slots.into_iter().zip(elements) {
            if let Some(target) = data.get_mut(slot) {
                *target = model::expect_struct(&element, "revision")?
                    .get("data")
                    .cloned();
            }
        }
    }
    Ok(data)
}

/// Removes every entry of a dropped index.
fn remove_index_entries(
    entries: &mut MultimapTable<'_, (&'static str, &'static str, &'static str), &'static str>,
    table_id: &str,
    index_id: &str,
) -> Result<(), LedgerError> {
    let mut keys = Vec::new();
    for entry in entries.range((table_id, index_id, "")..)? {
        let (key, _) = entry?;
        let (entry_table_id, entry_index_id, value_key) = key.value();
        if entry_table_id != table_id || entry_index_id != index_id {
            break;
        }
        keys.push(value_key.to_owned());
    }
    for value_key in keys {
        entries.remove_all((table_id, index_id, value_key.as_str()))?;
    }
    Ok(())
}
