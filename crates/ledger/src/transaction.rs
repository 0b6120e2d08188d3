//! Transactions: a snapshot of the committed state, the transaction's own writes layered over
//! it, the read set for optimistic concurrency control, and a member's part of the commit
//! protocol (`commit.rs` runs the group): validate the read set against the state including
//! earlier commits, assign versions, build the journal block and apply it to the derived state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ion_rs::{Element, Timestamp};
use redb::{ReadTransaction, ReadableTable};
use time::OffsetDateTime;

use crate::commit::{CommitDelivery, CommitSubmitted};
use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::ion_read;
use crate::journal::{self, DocumentInfo, StatementInfo};
use crate::journal_file::FramePosition;
use crate::ledger::Ledger;
use crate::model::{
    self, BlockAddress, IndexInfo, Revision, RevisionMetadata, TableInfo, TableStatus,
};
use crate::state::{AppliedBlock, AppliedRevision, OpenTables, StateWriter};
use crate::storage;
use crate::value;

/// A document as a transaction sees it: committed, or written earlier in the transaction.
#[derive(Debug, Clone)]
pub struct DocumentView {
    /// The table id.
    pub table_id: String,
    /// The document id.
    pub document_id: String,
    /// The user data.
    pub data: Element,
    /// The committed revision it comes from, `None` for a document written by this transaction
    /// and not yet committed.
    pub committed: Option<Revision>,
}

impl DocumentView {
    /// The committed view `{blockAddress, hash, data, metadata}`; for a document written by this
    /// transaction only `{data, metadata: {id}}` is known.
    pub fn committed_view(&self) -> Element {
        match &self.committed {
            Some(revision) if revision.data.as_ref() == Some(&self.data) => revision.to_element(),
            _ => Element::from(
                ion_rs::Struct::builder()
                    .with_field("data", self.data.clone())
                    .with_field(
                        "metadata",
                        Element::from(
                            ion_rs::Struct::builder()
                                .with_field("id", Element::string(self.document_id.as_str()))
                                .build(),
                        ),
                    )
                    .build(),
            ),
        }
    }
}

/// What a commit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitResult {
    /// The transaction id.
    pub transaction_id: String,
    /// The block written, `None` for a transaction that changed nothing.
    pub block_address: Option<BlockAddress>,
    /// QLDB's commit digest: Ion hash of the transaction id folded with `dot` with each
    /// statement hash; drivers compare it with their own.
    pub commit_digest: Hash,
}

/// Table id under which catalog entries are journaled (not a valid user table id: too short).
pub const CATALOG_TABLE_ID: &str = "_ql_catalog";
/// Table name of the catalog's revisions in `transactionInfo.documents`.
pub const CATALOG_TABLE_NAME: &str = "information_schema.user_tables";

/// One thing a transaction read, re-checked at commit.
#[derive(Debug, Clone)]
enum ReadItem {
    /// A document looked up by id: its current version then (`None` when absent).
    Document {
        table_id: String,
        document_id: String,
        version: Option<u64>,
    },
    /// A full table scan or history read: the table's last write sequence then.
    Table {
        table_id: String,
        write_sequence: Option<u64>,
    },
    /// An index lookup: the document ids found then.
    Index {
        table_id: String,
        index_id: String,
        value_key: String,
        document_ids: BTreeSet<String>,
    },
}

/// A document written by the transaction and not yet committed.
#[derive(Debug, Clone)]
struct PendingWrite {
    table_name: String,
    data: Option<Element>,
    /// The Ion hash of `data` when it is already known (a document given as a parameter).
    data_hash: Option<Hash>,
    statement_indexes: BTreeSet<usize>,
    /// When the transaction first wrote the document: its place among the block's revisions.
    order: usize,
}

/// A ledger transaction: multi-statement, serializable by optimistic concurrency control.
#[derive(Debug)]
pub struct Transaction {
    ledger: Arc<Ledger>,
    snapshot: Arc<ReadTransaction>,
    transaction_id: String,
    started_at: OffsetDateTime,
    catalog_version_seen: u64,
    /// The catalog as this transaction sees it: shared with every transaction that began at the
    /// same catalog version until this one runs DDL (copy on write).
    catalog: Arc<Vec<TableInfo>>,
    catalog_at_start: Arc<Vec<TableInfo>>,
    catalog_statements: BTreeMap<String, BTreeSet<usize>>,
    catalog_changed: bool,
    new_indexes: Vec<(String, IndexInfo)>,
    dropped_indexes: Vec<(String, String)>,
    writes: BTreeMap<(String, String), PendingWrite>,
    /// Documents written so far, counting those written again or dropped: the next write's
    /// [`PendingWrite::order`].
    writes_made: usize,
    reads: Vec<ReadItem>,
    statements: Vec<StatementInfo>,
}

impl Transaction {
    pub(crate) fn begin(ledger: Arc<Ledger>) -> Result<Self, LedgerError> {
        if ledger.is_poisoned() {
            return Err(ledger.poisoned_error());
        }
        if ledger.is_deleted() {
            return Err(ledger.deleted_error());
        }
        let snapshot = ledger.snapshot();
        let (catalog_version_seen, catalog) = ledger.catalog_of(&snapshot)?;
        let started_at = ledger.clock.now();
        Ok(Transaction {
            ledger,
            snapshot,
            transaction_id: model::new_id(),
            started_at,
            catalog_version_seen,
            catalog_at_start: catalog.clone(),
            catalog,
            catalog_statements: BTreeMap::new(),
            catalog_changed: false,
            new_indexes: Vec::new(),
            dropped_indexes: Vec::new(),
            writes: BTreeMap::new(),
            writes_made: 0,
            reads: Vec::new(),
            statements: Vec::new(),
        })
    }

    /// The transaction id (22-char Base62).
    pub fn id(&self) -> &str {
        &self.transaction_id
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Fails once the transaction is older than the configured timeout.
    pub fn check_not_expired(&self) -> Result<(), LedgerError> {
        let age_ms = (self.ledger.clock.now() - self.started_at).whole_milliseconds();
        if age_ms > i128::from(self.ledger.limits.transaction_timeout_ms) {
            return Err(LedgerError::TransactionExpired(format!(
                "transaction {} is older than {} ms",
                self.transaction_id, self.ledger.limits.transaction_timeout_ms
            )));
        }
        Ok(())
    }

    /// Parses and runs one statement with its `?` parameters; returns its result values.
    pub fn execute(
        &mut self,
        statement_text: &str,
        parameters: &[Element],
    ) -> Result<Vec<Element>, LedgerError> {
        self.check_not_expired()?;
        let statement = sluice_partiql::parse(statement_text)?;
        let expected = statement.parameter_count();
        if expected != parameters.len() {
            return Err(LedgerError::BadRequest(format!(
                "the statement has {expected} parameters, {} were given",
                parameters.len()
            )));
        }
        let (statement_index, parameter_hashes) =
            self.record_statement(statement_text, parameters)?;
        crate::eval::execute_statement(
            self,
            &statement,
            parameters,
            &parameter_hashes,
            statement_index,
        )
    }

    /// Records a statement for `transactionInfo`; returns its index and each parameter's Ion
    /// hash (a document inserted as a parameter keeps its hash for its revision).
    pub(crate) fn record_statement(
        &mut self,
        text: &str,
        parameters: &[Element],
    ) -> Result<(usize, Vec<Hash>), LedgerError> {
        let mut digest = hash::ion_hash(&Element::string(text))?;
        let mut parameter_hashes = Vec::with_capacity(parameters.len());
        for parameter in parameters {
            let parameter_hash = hash::ion_hash(parameter)?;
            digest = hash::dot_hashes(&digest, &parameter_hash);
            parameter_hashes.push(parameter_hash);
        }
        let start_time = model::timestamp_from_datetime(self.ledger.clock.now())?;
        self.statements.push(StatementInfo {
            text: text.to_owned(),
            start_time,
            digest,
        });
        Ok((self.statements.len() - 1, parameter_hashes))
    }

    /// QLDB's commit digest of this transaction so far.
    pub fn commit_digest(&self) -> Result<Hash, LedgerError> {
        let mut digest = hash::ion_hash(&Element::string(self.transaction_id.as_str()))?;
        for statement in &self.statements {
            digest = hash::dot_hashes(&digest, &statement.digest);
        }
        Ok(digest)
    }

    // ----- catalog -----

    /// Every table of the catalog as this transaction sees it (dropped ones included).
    pub fn tables(&self) -> &[TableInfo] {
        &self.catalog
    }

    /// The active table named `name` (matched by `matches`, so quoting rules apply).
    pub(crate) fn active_table(&self, matches: impl Fn(&str) -> bool) -> Option<TableInfo> {
        let exact: Vec<&TableInfo> = self
            .catalog
            .iter()
            .filter(|table| table.status == TableStatus::Active && matches(&table.name))
            .collect();
        exact.first().map(|table| (*table).clone())
    }

    fn replace_table(&mut self, table: TableInfo) {
        self.catalog_changed = true;
        // DDL runs inside the statement recorded last.
        self.catalog_statements
            .entry(table.table_id.clone())
            .or_default()
            .insert(self.statements.len().saturating_sub(1));
        let catalog = Arc::make_mut(&mut self.catalog);
        match catalog
            .iter_mut()
            .find(|existing| existing.table_id == table.table_id)
        {
            Some(existing) => *existing = table,
            None => catalog.push(table),
        }
    }

    /// CREATE TABLE: returns the new table id.
    pub(crate) fn create_table(&mut self, name: &str) -> Result<String, LedgerError> {
        if self.active_table(|candidate| candidate == name).is_some() {
            return Err(LedgerError::AlreadyExists(format!("table {name}")));
        }
        let active = self
            .catalog
            .iter()
            .filter(|table| table.status == TableStatus::Active)
            .count();
        if active >= self.ledger.limits.active_tables_max {
            return Err(LedgerError::LimitExceeded(format!(
                "a ledger has at most {} active tables",
                self.ledger.limits.active_tables_max
            )));
        }
        let table_id = model::new_id();
        self.replace_table(TableInfo {
            table_id: table_id.clone(),
            name: name.to_owned(),
            status: TableStatus::Active,
            indexes: Vec::new(),
        });
        Ok(table_id)
    }

    /// DROP TABLE: marks the table deleted; returns its id.
    pub(crate) fn drop_table(&mut self, table: &TableInfo) -> Result<String, LedgerError> {
        let mut dropped = table.clone();
        dropped.status = TableStatus::Deleted;
        self.replace_table(dropped);
        Ok(table.table_id.clone())
    }

    /// UNDROP TABLE by id: reactivates a dropped table; returns its id.
    pub(crate) fn undrop_table(&mut self, table_id: &str) -> Result<String, LedgerError> {
        let table = self
            .catalog
            .iter()
            .find(|table| table.table_id == table_id)
            .cloned()
            .ok_or_else(|| LedgerError::NotFound(format!("table id {table_id}")))?;
        if table.status == TableStatus::Active {
            return Err(LedgerError::PreconditionFailed(format!(
                "table {} is active",
                table.name
            )));
        }
        if self
            .active_table(|candidate| candidate == table.name)
            .is_some()
        {
            return Err(LedgerError::AlreadyExists(format!(
                "an active table named {}",
                table.name
            )));
        }
        let mut undropped = table;
        undropped.status = TableStatus::Active;
        self.replace_table(undropped);
        Ok(table_id.to_owned())
    }

    /// CREATE INDEX: adds an equality index on `field_path`; returns the index id.
    pub(crate) fn create_index(
        &mut self,
        table: &TableInfo,
        field_path: Vec<String>,
    ) -> Result<String, LedgerError> {
        if table
            .indexes
            .iter()
            .any(|index| index.field_path == field_path)
        {
            return Err(LedgerError::AlreadyExists(format!(
                "index on {} of table {}",
                field_path.join("."),
                table.name
            )));
        }
        if table.indexes.len() >= self.ledger.limits.indexes_per_table_max {
            return Err(LedgerError::LimitExceeded(format!(
                "a table has at most {} indexes",
                self.ledger.limits.indexes_per_table_max
            )));
        }
        let index = IndexInfo {
            index_id: model::new_id(),
            field_path,
        };
        let mut updated = table.clone();
        updated.indexes.push(index.clone());
        self.new_indexes
            .push((table.table_id.clone(), index.clone()));
        self.replace_table(updated);
        Ok(index.index_id)
    }

    /// DROP INDEX by id.
    pub(crate) fn drop_index(
        &mut self,
        table: &TableInfo,
        index_id: &str,
    ) -> Result<(), LedgerError> {
        if !table.indexes.iter().any(|index| index.index_id == index_id) {
            return Err(LedgerError::NotFound(format!(
                "index {index_id} on table {}",
                table.name
            )));
        }
        let mut updated = table.clone();
        updated.indexes.retain(|index| index.index_id != index_id);
        self.new_indexes
            .retain(|(_, index)| index.index_id != index_id);
        self.dropped_indexes
            .push((table.table_id.clone(), index_id.to_owned()));
        self.replace_table(updated);
        Ok(())
    }

    // ----- reads -----

    fn table_write_sequence(&self, table_id: &str) -> Result<Option<u64>, LedgerError> {
        let table = self.snapshot.open_table(storage::TABLE_WRITE_SEQUENCE)?;
        Ok(table.get(table_id)?.map(|value| value.value()))
    }

    fn own_write_view(
        &self,
        table_id: &str,
        document_id: &str,
        committed: Option<Revision>,
    ) -> Option<DocumentView> {
        let pending = self
            .writes
            .get(&(table_id.to_owned(), document_id.to_owned()))?;
        Some(DocumentView {
            table_id: table_id.to_owned(),
            document_id: document_id.to_owned(),
            data: pending.data.clone()?,
            committed,
        })
    }

    /// The committed revisions at `references`, read from the journal (each block once).
    fn committed_revisions(
        &self,
        references: &[storage::DocumentRef],
    ) -> Result<Vec<Revision>, LedgerError> {
        let references: Vec<(u64, u32)> = references
            .iter()
            .map(storage::DocumentRef::revision_ref)
            .collect();
        self.ledger.read_revisions(&self.snapshot, &references)
    }

    /// Every live document of a table (a full scan, recorded in the read set).
    pub(crate) fn scan_table(&mut self, table_id: &str) -> Result<Vec<DocumentView>, LedgerError> {
        let write_sequence = self.table_write_sequence(table_id)?;
        self.reads.push(ReadItem::Table {
            table_id: table_id.to_owned(),
            write_sequence,
        });
        let current = {
            let documents = self.snapshot.open_table(storage::DOCUMENTS)?;
            storage::read_table_documents(&documents, table_id)?
        };
        // A deleted document is read only when this transaction wrote it (it cannot: the
        // commit would conflict), so only live ones and own writes need their revision.
        let needed: Vec<(String, storage::DocumentRef)> = current
            .into_iter()
            .filter(|(document_id, reference)| {
                !reference.deleted
                    || self
                        .writes
                        .contains_key(&(table_id.to_owned(), document_id.clone()))
            })
            .collect();
        let references: Vec<storage::DocumentRef> =
            needed.iter().map(|(_, reference)| *reference).collect();
        let revisions = self.committed_revisions(&references)?;
        let mut views = Vec::new();
        let mut seen = BTreeSet::new();
        for ((document_id, _), revision) in needed.into_iter().zip(revisions) {
            seen.insert(document_id.clone());
            if self
                .writes
                .contains_key(&(table_id.to_owned(), document_id.clone()))
            {
                if let Some(view) = self.own_write_view(table_id, &document_id, Some(revision)) {
                    views.push(view);
                }
                continue;
            }
            if let Some(data) = revision.data.clone() {
                views.push(DocumentView {
                    table_id: table_id.to_owned(),
                    document_id,
                    data,
                    committed: Some(revision),
                });
            }
        }
        for ((write_table_id, document_id), _) in self.writes.iter() {
            if write_table_id == table_id
                && !seen.contains(document_id)
                && let Some(view) = self.own_write_view(table_id, document_id, None)
            {
                views.push(view);
            }
        }
        Ok(views)
    }

    /// The reference of a document's committed revision in the snapshot.
    fn document_ref(
        &self,
        table_id: &str,
        document_id: &str,
    ) -> Result<Option<storage::DocumentRef>, LedgerError> {
        let documents = self.snapshot.open_table(storage::DOCUMENTS)?;
        storage::read_document(&documents, table_id, document_id)
    }

    /// One document by id (recorded in the read set, absence included).
    pub(crate) fn document(
        &mut self,
        table_id: &str,
        document_id: &str,
    ) -> Result<Option<DocumentView>, LedgerError> {
        let reference = self.document_ref(table_id, document_id)?;
        self.reads.push(ReadItem::Document {
            table_id: table_id.to_owned(),
            document_id: document_id.to_owned(),
            version: reference.map(|reference| reference.version),
        });
        let own_write = self
            .writes
            .contains_key(&(table_id.to_owned(), document_id.to_owned()));
        let committed = match reference {
            Some(reference) if own_write || !reference.deleted => {
                self.committed_revisions(&[reference])?.into_iter().next()
            }
            _ => None,
        };
        if own_write {
            return Ok(self.own_write_view(table_id, document_id, committed));
        }
        Ok(committed.and_then(|revision| {
            revision.data.clone().map(|data| DocumentView {
                table_id: table_id.to_owned(),
                document_id: document_id.to_owned(),
                data,
                committed: Some(revision),
            })
        }))
    }

    /// Documents whose indexed field equals `value`, through the index; `None` when the value is
    /// not indexable (the caller scans instead). Recorded in the read set.
    pub(crate) fn index_lookup(
        &mut self,
        table_id: &str,
        index: &IndexInfo,
        lookup_value: &Element,
    ) -> Result<Option<Vec<DocumentView>>, LedgerError> {
        let ledger = self.ledger.clone();
        let Some(value_key) = ledger.index_key(lookup_value) else {
            return Ok(None);
        };
        // An index created by this transaction is not built yet: scan.
        if self
            .new_indexes
            .iter()
            .any(|(_, new)| new.index_id == index.index_id)
        {
            return Ok(None);
        }
        let entries = self.snapshot.open_multimap_table(storage::INDEX_ENTRIES)?;
        let document_ids: BTreeSet<String> =
            storage::read_index(&entries, table_id, &index.index_id, &value_key)?
                .into_iter()
                .collect();
        self.reads.push(ReadItem::Index {
            table_id: table_id.to_owned(),
            index_id: index.index_id.clone(),
            value_key: value_key.clone(),
            document_ids: document_ids.clone(),
        });
        let mut wanted = Vec::new();
        for document_id in &document_ids {
            // Each found document is also a document read, so a change to any of its other
            // fields conflicts too.
            let reference = self.document_ref(table_id, document_id)?;
            self.reads.push(ReadItem::Document {
                table_id: table_id.to_owned(),
                document_id: document_id.clone(),
                version: reference.map(|reference| reference.version),
            });
            if self
                .writes
                .contains_key(&(table_id.to_owned(), document_id.clone()))
            {
                continue;
            }
            if let Some(reference) = reference.filter(|reference| !reference.deleted) {
                wanted.push((document_id.clone(), reference));
            }
        }
        let references: Vec<storage::DocumentRef> =
            wanted.iter().map(|(_, reference)| *reference).collect();
        let mut views = Vec::new();
        for ((document_id, _), revision) in wanted
            .into_iter()
            .zip(self.committed_revisions(&references)?)
        {
            if let Some(data) = revision.data.clone() {
                views.push(DocumentView {
                    table_id: table_id.to_owned(),
                    document_id,
                    data,
                    committed: Some(revision),
                });
            }
        }
        let own: Vec<(String, Element)> = self
            .writes
            .iter()
            .filter(|((write_table_id, _), _)| write_table_id == table_id)
            .filter_map(|((_, document_id), pending)| {
                pending.data.clone().map(|data| (document_id.clone(), data))
            })
            .collect();
        for (document_id, data) in own {
            let matches = value::value_at_path(&data, &index.field_path)
                .and_then(|value| ledger.index_key(value))
                .is_some_and(|key| key == value_key);
            if matches {
                let committed = match self.document_ref(table_id, &document_id)? {
                    Some(reference) => self.committed_revisions(&[reference])?.into_iter().next(),
                    None => None,
                };
                views.push(DocumentView {
                    table_id: table_id.to_owned(),
                    document_id,
                    data,
                    committed,
                });
            }
        }
        Ok(Some(views))
    }

    /// Every committed revision of a table, ordered by document then version (a table read).
    pub(crate) fn table_history(&mut self, table_id: &str) -> Result<Vec<Revision>, LedgerError> {
        let write_sequence = self.table_write_sequence(table_id)?;
        self.reads.push(ReadItem::Table {
            table_id: table_id.to_owned(),
            write_sequence,
        });
        let references = {
            let revisions = self.snapshot.open_table(storage::REVISIONS)?;
            storage::read_table_revision_refs(&revisions, table_id)?
        };
        self.ledger.read_revisions(&self.snapshot, &references)
    }

    /// The committed revisions of one document, oldest first: `history()` narrowed to
    /// `metadata.id = <constant>`. The read set records the document's version, which every new
    /// revision of it changes, instead of the whole table's write sequence.
    pub(crate) fn document_history(
        &mut self,
        table_id: &str,
        document_id: &str,
    ) -> Result<Vec<Revision>, LedgerError> {
        let reference = self.document_ref(table_id, document_id)?;
        self.reads.push(ReadItem::Document {
            table_id: table_id.to_owned(),
            document_id: document_id.to_owned(),
            version: reference.map(|reference| reference.version),
        });
        let references = {
            let revisions = self.snapshot.open_table(storage::REVISIONS)?;
            storage::read_document_revision_refs(&revisions, table_id, document_id)?
        };
        self.ledger.read_revisions(&self.snapshot, &references)
    }

    // ----- writes -----

    fn check_document(&self, data: &Element) -> Result<(), LedgerError> {
        if data.as_struct().is_none() {
            return Err(LedgerError::BadRequest(
                "a document must be a struct".to_owned(),
            ));
        }
        let encoded = model::encode_binary(data)?;
        if encoded.len() > self.ledger.limits.document_size_max_bytes {
            return Err(LedgerError::LimitExceeded(format!(
                "document of {} bytes exceeds the limit of {} bytes",
                encoded.len(),
                self.ledger.limits.document_size_max_bytes
            )));
        }
        // A statement can nest a value deeper than any parameter (`SET t.a = t`, repeated): the
        // bound holds for what is stored, so every stored block stays readable and restorable.
        match ion_read::nesting_depth(&encoded, ion_read::ION_DEPTH_MAX) {
            Ok(_) => Ok(()),
            Err(ion_read::IonReadError::TooDeep { depth_max }) => Err(LedgerError::LimitExceeded(
                format!("document nested deeper than the limit of {depth_max} levels"),
            )),
            Err(other) => Err(LedgerError::Internal(format!(
                "a document encoded by ion-rs does not read back: {other}"
            ))),
        }
    }

    fn put_write(
        &mut self,
        table: &TableInfo,
        document_id: &str,
        data: Option<Element>,
        data_hash: Option<Hash>,
        statement_index: usize,
    ) -> Result<(), LedgerError> {
        let key = (table.table_id.clone(), document_id.to_owned());
        let next_order = self.writes_made;
        if !self.writes.contains_key(&key)
            && self.writes.len() >= self.ledger.limits.documents_written_per_transaction_max
        {
            return Err(LedgerError::LimitExceeded(format!(
                "a transaction writes at most {} documents",
                self.ledger.limits.documents_written_per_transaction_max
            )));
        }
        let pending = self.writes.entry(key).or_insert_with(|| PendingWrite {
            table_name: table.name.clone(),
            data: None,
            data_hash: None,
            statement_indexes: BTreeSet::new(),
            order: next_order,
        });
        self.writes_made += 1;
        pending.data = data;
        pending.data_hash = data_hash;
        pending.statement_indexes.insert(statement_index);
        Ok(())
    }

    /// Inserts a new document; returns its id. `data_hash` is the Ion hash of `data` when the
    /// caller already computed it.
    pub(crate) fn insert_document(
        &mut self,
        table: &TableInfo,
        data: Element,
        data_hash: Option<Hash>,
        statement_index: usize,
    ) -> Result<String, LedgerError> {
        self.check_document(&data)?;
        let document_id = model::new_document_id();
        self.put_write(table, &document_id, Some(data), data_hash, statement_index)?;
        Ok(document_id)
    }

    /// Replaces a document's data.
    pub(crate) fn update_document(
        &mut self,
        table: &TableInfo,
        document_id: &str,
        data: Element,
        statement_index: usize,
    ) -> Result<(), LedgerError> {
        self.check_document(&data)?;
        self.put_write(table, document_id, Some(data), None, statement_index)
    }

    /// Deletes a document (its final revision will have no data).
    pub(crate) fn delete_document(
        &mut self,
        table: &TableInfo,
        document_id: &str,
        statement_index: usize,
    ) -> Result<(), LedgerError> {
        let key = (table.table_id.clone(), document_id.to_owned());
        // Deleting a document inserted by this same transaction leaves no trace at all.
        let committed_exists = self.document_ref(&table.table_id, document_id)?.is_some();
        if !committed_exists && self.writes.contains_key(&key) {
            self.writes.remove(&key);
            return Ok(());
        }
        self.put_write(table, document_id, None, None, statement_index)
    }

    // ----- replication -----

    /// Records a statement replayed from another ledger's journal and returns its index for
    /// [`Transaction::replicate_write`]. A journal keeps a statement's text and digest but not
    /// its parameters (as in QLDB), so the digest here covers the text alone.
    pub fn replicate_statement(&mut self, text: &str) -> Result<usize, LedgerError> {
        Ok(self.record_statement(text, &[])?.0)
    }

    /// Writes one revision replayed from another ledger into the active table `table_name`
    /// (created when missing): a new document when `document_id` is `None` (its new id is
    /// returned), else the document's data replaced, or the document deleted when `data` is
    /// `None`. Replaying revisions rather than statements keeps the data equal even where a
    /// statement's parameters or document ids would not replay.
    pub fn replicate_write(
        &mut self,
        table_name: &str,
        document_id: Option<&str>,
        data: Option<Element>,
        statement_index: usize,
    ) -> Result<Option<String>, LedgerError> {
        let table = match self.active_table(|candidate| candidate == table_name) {
            Some(table) => table,
            None => {
                self.create_table(table_name)?;
                self.active_table(|candidate| candidate == table_name)
                    .ok_or_else(|| LedgerError::Storage(format!("table {table_name} vanished")))?
            }
        };
        match (document_id, data) {
            (None, Some(data)) => self
                .insert_document(&table, data, None, statement_index)
                .map(Some),
            (Some(document_id), Some(data)) => {
                self.update_document(&table, document_id, data, statement_index)?;
                Ok(None)
            }
            (Some(document_id), None) => {
                self.delete_document(&table, document_id, statement_index)?;
                Ok(None)
            }
            (None, None) => Ok(None),
        }
    }

    /// Ends the transaction without writing anything.
    pub fn abort(self) {}

    // ----- commit -----

    /// QLDBSession's CommitTransaction: commits only when the client's commit digest (computed by
    /// the driver from the transaction id and the statements it sent) equals ours, so a statement
    /// lost or altered on the way is caught.
    pub fn commit_with_digest(
        self,
        client_commit_digest: &[u8],
    ) -> Result<CommitResult, LedgerError> {
        self.check_commit_digest(client_commit_digest)?;
        self.commit()
    }

    /// [`Self::commit_with_digest`] without blocking, for callers that must not hold a thread
    /// while the group commits (an async server): the outcome goes to `deliver`, now or from the
    /// leader of the transaction's group. When the answer is [`CommitSubmitted::Lead`], the
    /// caller must run [`Ledger::lead_commits`] until it answers false.
    pub fn submit_commit_with_digest(
        self,
        client_commit_digest: &[u8],
        deliver: CommitDelivery,
    ) -> CommitSubmitted {
        let settled = match self.check_commit_digest(client_commit_digest) {
            Err(refused) => Some(Err(refused)),
            Ok(()) => self.outcome_without_group(),
        };
        if let Some(outcome) = settled {
            deliver(outcome);
            return CommitSubmitted::Delivered;
        }
        let ledger = self.ledger.clone();
        if ledger.submit_to_group(self, deliver) {
            CommitSubmitted::Lead(ledger)
        } else {
            CommitSubmitted::Queued
        }
    }

    fn check_commit_digest(&self, client_commit_digest: &[u8]) -> Result<(), LedgerError> {
        let ours = self.commit_digest()?;
        if client_commit_digest != ours.as_slice() {
            return Err(LedgerError::BadRequest(format!(
                "commit digest {} does not match the transaction's {}",
                hash::to_base64(client_commit_digest),
                hash::to_base64(&ours)
            )));
        }
        Ok(())
    }

    /// Validates the read set and writes the transaction's block durably, in a group with the
    /// transactions committing at the same time. Fails with [`LedgerError::OccConflict`] when
    /// anything read changed since the snapshot, earlier members of the group included.
    pub fn commit(self) -> Result<CommitResult, LedgerError> {
        if let Some(outcome) = self.outcome_without_group() {
            return outcome;
        }
        let ledger = self.ledger.clone();
        ledger.commit_in_group(self)
    }

    /// The outcome of a commit that needs no group: an expired transaction's refusal, or a
    /// read-only transaction's result. A read-only transaction read one consistent snapshot,
    /// which is a serializable history by itself: nothing to validate, nothing to write, and no
    /// wait for the group.
    fn outcome_without_group(&self) -> Option<Result<CommitResult, LedgerError>> {
        if let Err(expired) = self.check_not_expired() {
            return Some(Err(expired));
        }
        if !self.writes.is_empty() || self.catalog_changed {
            return None;
        }
        Some(self.commit_digest().map(|commit_digest| CommitResult {
            transaction_id: self.transaction_id.clone(),
            block_address: None,
            commit_digest,
        }))
    }

    /// A member's part of a group commit, run by the group's leader: validates the read set
    /// against `state` (which includes the members before it), builds the block and appends its
    /// frame to `frames`; the leader applies the block. An `Err` refuses this transaction alone
    /// and changed nothing. Everything here only reads.
    pub(crate) fn build_block(
        &self,
        state: &StateWriter<'_>,
        frames: &mut Vec<u8>,
    ) -> Result<(CommitResult, AppliedBlock), LedgerError> {
        let ledger = &self.ledger;
        let commit_digest = self.commit_digest()?;
        let tables = state.tables();
        self.validate_reads(tables, state.catalog_version())?;
        let tip = state.tip();
        let sequence_no = tip.block_count;
        let previous_block_hash = tip.last_block_hash;
        let address = BlockAddress {
            strand_id: ledger.strand_id().to_owned(),
            sequence_no,
        };
        // Block timestamps never go backwards, even when the wall clock does: exports and
        // streams cut the journal by time and rely on that order.
        let now = ledger.clock.now();
        let commit_instant = match tip
            .last_block_time_unix_ns
            .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        {
            Some(last) if last > now => last,
            _ => now,
        };
        let tx_time: Timestamp = model::timestamp_from_datetime(commit_instant)?;
        let block_time_unix_ns = model::datetime_from_timestamp(&tx_time)?.unix_timestamp_nanos();

        // Catalog changes are journaled too, as revisions of the system catalog table, so the
        // journal alone rebuilds the ledger (restore, recovery) and DDL is verifiable like data.
        let catalog_writes: Vec<((String, String), PendingWrite)> = self
            .catalog
            .iter()
            .filter(|table| !self.catalog_at_start.contains(table))
            .enumerate()
            .map(|(index, table)| {
                let pending = PendingWrite {
                    table_name: CATALOG_TABLE_NAME.to_owned(),
                    data: Some(table.to_element()),
                    data_hash: None,
                    statement_indexes: self
                        .catalog_statements
                        .get(&table.table_id)
                        .cloned()
                        .unwrap_or_default(),
                    order: index,
                };
                (
                    (CATALOG_TABLE_ID.to_owned(), table.table_id.clone()),
                    pending,
                )
            })
            .collect();
        // By reference: the documents are cloned once, into their revisions. The documents in
        // the order their statements first wrote them, then the catalog's revisions.
        let mut ordered: Vec<(&(String, String), &PendingWrite)> = self.writes.iter().collect();
        ordered.sort_by_key(|(_, pending)| pending.order);
        ordered.extend(catalog_writes.iter().map(|(key, pending)| (key, pending)));
        let mut revisions = Vec::with_capacity(ordered.len());
        let mut document_infos = Vec::with_capacity(ordered.len());
        {
            for &((table_id, document_id), pending) in &ordered {
                let current = storage::read_document(&tables.documents, table_id, document_id)?;
                if current.is_some_and(|reference| reference.deleted) {
                    return Err(LedgerError::OccConflict(format!(
                        "document {document_id} was deleted"
                    )));
                }
                let version = current.map_or(0, |reference| reference.version + 1);
                let metadata = RevisionMetadata {
                    id: document_id.clone(),
                    version,
                    tx_time: tx_time.clone(),
                    tx_id: self.transaction_id.clone(),
                };
                let data_hash = match (&pending.data, pending.data_hash) {
                    (Some(_), Some(known)) => Some(known),
                    (Some(data), None) => Some(hash::ion_hash(data)?),
                    (None, _) => None,
                };
                let hash = hash::revision_hash_of(
                    &hash::ion_hash(&metadata.to_element())?,
                    data_hash.as_ref(),
                );
                revisions.push(Revision {
                    block_address: address.clone(),
                    hash,
                    data: pending.data.clone(),
                    metadata,
                });
                document_infos.push(DocumentInfo {
                    document_id: document_id.clone(),
                    table_name: pending.table_name.clone(),
                    table_id: table_id.clone(),
                    statement_indexes: pending.statement_indexes.iter().copied().collect(),
                });
            }
        }
        let transaction_info = journal::transaction_info_element(&self.statements, &document_infos);
        let block = journal::build_block(
            &address,
            &self.transaction_id,
            &tx_time,
            transaction_info,
            &revisions,
            previous_block_hash.as_ref(),
        )?;
        // Check the block just before writing it, read back from its bytes as the reader will:
        // in debug builds (every test), as the log checks its frames; in release it would
        // double the hashing the commit leader does for each member, and every read of the
        // block (recovery, GetBlock, `verify_chain`) re-hashes it anyway.
        #[cfg(debug_assertions)]
        journal::verify_block(
            &model::decode_stored(&block.bytes)?,
            previous_block_hash.as_ref(),
            journal::Strictness::Exact,
        )?;
        let block_bytes = block.bytes;
        // The state's tip already counts the frames of the members before this one.
        let offset = tip.journal_end;
        let length = ledger.encode_frame(frames, sequence_no, &block_bytes)?;
        let applied = AppliedBlock {
            sequence_no,
            block_hash: block.block_hash,
            position: FramePosition { offset, length },
            block_time_unix_ns,
            revisions: revisions
                .into_iter()
                .zip(document_infos)
                .enumerate()
                .map(|(index, (revision, info))| AppliedRevision {
                    table_id: info.table_id,
                    table_name: info.table_name,
                    index_in_block: index as u32,
                    revision,
                })
                .collect(),
        };
        tracing::debug!(ledger = ledger.name(), sequence_no, transaction_id = %self.transaction_id, "built block");
        Ok((
            CommitResult {
                transaction_id: self.transaction_id.clone(),
                block_address: Some(address),
                commit_digest,
            },
            applied,
        ))
    }

    fn validate_reads(
        &self,
        tables: &OpenTables<'_>,
        catalog_version: u64,
    ) -> Result<(), LedgerError> {
        if catalog_version != self.catalog_version_seen {
            return Err(LedgerError::OccConflict(
                "the catalog changed since the transaction started".to_owned(),
            ));
        }
        let OpenTables {
            documents,
            write_sequences,
            entries,
            ..
        } = tables;
        for read in &self.reads {
            match read {
                ReadItem::Document {
                    table_id,
                    document_id,
                    version,
                } => {
                    let now = storage::read_document(documents, table_id, document_id)?
                        .map(|reference| reference.version);
                    if now != *version {
                        return Err(LedgerError::OccConflict(format!(
                            "document {document_id} changed since it was read"
                        )));
                    }
                }
                ReadItem::Table {
                    table_id,
                    write_sequence,
                } => {
                    let now = write_sequences
                        .get(table_id.as_str())?
                        .map(|value| value.value());
                    if now != *write_sequence {
                        return Err(LedgerError::OccConflict(format!(
                            "table {table_id} changed since it was read"
                        )));
                    }
                }
                ReadItem::Index {
                    table_id,
                    index_id,
                    value_key,
                    document_ids,
                } => {
                    let now: BTreeSet<String> =
                        storage::read_index(entries, table_id, index_id, value_key)?
                            .into_iter()
                            .collect();
                    if now != *document_ids {
                        return Err(LedgerError::OccConflict(format!(
                            "documents matching an index lookup on table {table_id} changed"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
