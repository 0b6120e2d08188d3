//! Journal blocks: their Ion shape (as QLDB exports them), building a block at commit, and
//! re-verifying a block's hashes and chain link (for `verify_chain`, restore and import).

use ion_rs::{Element, Struct, Timestamp};

use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::model::{self, BlockAddress, Revision};

/// One statement of a block's `transactionInfo`.
#[derive(Debug, Clone)]
pub struct StatementInfo {
    /// The statement text as sent.
    pub text: String,
    /// When the statement started.
    pub start_time: Timestamp,
    /// The statement digest: Ion hash of the text, folded with `dot` with each parameter's hash.
    pub digest: Hash,
}

/// One document touched by a transaction, for `transactionInfo.documents`.
#[derive(Debug, Clone)]
pub struct DocumentInfo {
    /// The document id.
    pub document_id: String,
    /// The table's name.
    pub table_name: String,
    /// The table's id.
    pub table_id: String,
    /// Indexes (into the statements list) of the statements that wrote it.
    pub statement_indexes: Vec<usize>,
}

/// The Ion `transactionInfo` of a block:
/// `{statements: [{statement, startTime, statementDigest}], documents: {<id>: {tableName, tableId, statements: [i]}}}`.
pub fn transaction_info_element(
    statements: &[StatementInfo],
    documents: &[DocumentInfo],
) -> Element {
    let statement_elements: Vec<Element> = statements
        .iter()
        .map(|statement| {
            Element::from(
                Struct::builder()
                    .with_field("statement", Element::string(statement.text.as_str()))
                    .with_field(
                        "startTime",
                        Element::timestamp(statement.start_time.clone()),
                    )
                    .with_field("statementDigest", Element::blob(statement.digest))
                    .build(),
            )
        })
        .collect();
    let mut builder =
        Struct::builder().with_field("statements", model::list_element(statement_elements));
    if !documents.is_empty() {
        let mut documents_builder = Struct::builder();
        for document in documents {
            let indexes: Vec<Element> = document
                .statement_indexes
                .iter()
                .map(|index| Element::int(*index as i64))
                .collect();
            documents_builder = documents_builder.with_field(
                document.document_id.as_str(),
                Element::from(
                    Struct::builder()
                        .with_field("tableName", Element::string(document.table_name.as_str()))
                        .with_field("tableId", Element::string(document.table_id.as_str()))
                        .with_field("statements", model::list_element(indexes))
                        .build(),
                ),
            );
        }
        builder = builder.with_field("documents", Element::from(documents_builder.build()));
    }
    Element::from(builder.build())
}

/// A block as built at commit.
#[derive(Debug, Clone)]
pub struct BuiltBlock {
    /// The whole block as stored and exported.
    pub element: Element,
    /// Its hash.
    pub block_hash: Hash,
}

/// Builds a block element and computes its hashes.
pub fn build_block(
    address: &BlockAddress,
    transaction_id: &str,
    block_timestamp: &Timestamp,
    transaction_info: Element,
    revisions: &[Revision],
    previous_block_hash: Option<&Hash>,
) -> Result<BuiltBlock, LedgerError> {
    let revision_hashes: Vec<Hash> = revisions.iter().map(|revision| revision.hash).collect();
    let hashes = hash::block_hashes(&transaction_info, &revision_hashes, previous_block_hash)?;
    let mut builder = Struct::builder()
        .with_field("blockAddress", address.to_element())
        .with_field("transactionId", Element::string(transaction_id))
        .with_field(
            "blockTimestamp",
            Element::timestamp(block_timestamp.clone()),
        )
        .with_field("blockHash", Element::blob(hashes.block_hash))
        .with_field("entriesHash", Element::blob(hashes.entries_hash));
    if let Some(previous) = previous_block_hash {
        builder = builder.with_field("previousBlockHash", Element::blob(*previous));
    }
    let entries: Vec<Element> = hashes
        .entries_hash_list
        .iter()
        .map(|entry| Element::blob(*entry))
        .collect();
    builder = builder
        .with_field("entriesHashList", model::list_element(entries))
        .with_field("transactionInfo", transaction_info);
    if !revisions.is_empty() {
        let revision_elements: Vec<Element> = revisions.iter().map(Revision::to_element).collect();
        builder = builder.with_field("revisions", model::list_element(revision_elements));
    }
    Ok(BuiltBlock {
        element: Element::from(builder.build()),
        block_hash: hashes.block_hash,
    })
}

/// How strictly [`verify_block`] checks a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Our own blocks: `entriesHashList` must be exactly `[IonHash(transactionInfo), root of revisions]`.
    Exact,
    /// Blocks from a QLDB export (and stored blocks, which may have been imported): QLDB may
    /// put more entries in `entriesHashList` and may list revisions with only a hash; every
    /// revision with metadata must hash to its `hash`, and `IonHash(transactionInfo)` and the
    /// revisions' Merkle root must both be entries.
    Qldb,
    /// Only the hash links, from the stored revision hashes through `entriesHashList` and
    /// `entriesHash` to `blockHash`, without re-hashing the contents: what a proof is built
    /// from. A reader of one revision re-hashes that revision itself; [`Strictness::Qldb`]
    /// (chain verification, recovery, GetBlock) re-hashes everything.
    Links,
}

/// What [`verify_block`] learned about a block.
#[derive(Debug, Clone)]
pub struct VerifiedBlock {
    /// The block's address.
    pub address: BlockAddress,
    /// The recomputed block hash.
    pub block_hash: Hash,
    /// The revision hashes in block order.
    pub revision_hashes: Vec<Hash>,
    /// The entries hash list.
    pub entries_hash_list: Vec<Hash>,
    /// The previous block hash, if any.
    pub previous_block_hash: Option<Hash>,
}

/// Recomputes every hash of a block and checks it links to `expected_previous_block_hash`.
pub fn verify_block(
    block: &Element,
    expected_previous_block_hash: Option<&Hash>,
    strictness: Strictness,
) -> Result<VerifiedBlock, LedgerError> {
    let fields = model::expect_struct(block, "block")?;
    let address = BlockAddress::from_element(fields.get("blockAddress").ok_or_else(|| {
        LedgerError::VerificationFailed("block without blockAddress".to_owned())
    })?)?;
    let fail = |what: String| {
        LedgerError::VerificationFailed(format!("block {}: {what}", address.sequence_no))
    };
    let stored_block_hash = model::field_hash(fields, "blockHash")?;
    let stored_entries_hash = model::field_hash(fields, "entriesHash")?;
    let previous_block_hash = match fields.get("previousBlockHash") {
        Some(element) if !element.is_null() => {
            Some(hash::hash_from_slice(element.as_lob().ok_or_else(
                || fail("previousBlockHash is not a blob".to_owned()),
            )?)?)
        }
        _ => None,
    };
    if previous_block_hash.as_ref() != expected_previous_block_hash {
        return Err(fail(
            "previousBlockHash does not link to the previous block".to_owned(),
        ));
    }
    let mut entries_hash_list = Vec::new();
    if let Some(list) = fields.get("entriesHashList").and_then(Element::as_sequence) {
        for entry in list.elements() {
            entries_hash_list.push(hash::hash_from_slice(
                entry
                    .as_lob()
                    .ok_or_else(|| fail("entriesHashList holds a non-blob".to_owned()))?,
            )?);
        }
    }
    let mut revision_hashes = Vec::new();
    if let Some(list) = fields.get("revisions").and_then(Element::as_sequence) {
        for revision in list.elements() {
            let revision_fields = model::expect_struct(revision, "revision")?;
            let stored_hash = model::field_hash(revision_fields, "hash")?;
            if strictness != Strictness::Links
                && let Some(metadata) = revision_fields.get("metadata")
            {
                // A redacted QLDB revision keeps the hash of its data as `dataHash`.
                let computed = match revision_fields.get("dataHash").and_then(Element::as_lob) {
                    Some(data_hash) => hash::dot_hashes(
                        &hash::ion_hash(metadata)?,
                        &hash::hash_from_slice(data_hash)?,
                    ),
                    None => hash::revision_hash(metadata, revision_fields.get("data"))?,
                };
                if computed != stored_hash {
                    return Err(fail(format!(
                        "revision hash {} does not match its content",
                        hash::to_base64(&stored_hash)
                    )));
                }
            }
            revision_hashes.push(stored_hash);
        }
    }
    match strictness {
        Strictness::Exact => {
            let transaction_info = fields
                .get("transactionInfo")
                .ok_or_else(|| fail("block without transactionInfo".to_owned()))?;
            let recomputed = hash::block_hashes(
                transaction_info,
                &revision_hashes,
                previous_block_hash.as_ref(),
            )?;
            if recomputed.entries_hash_list != entries_hash_list {
                return Err(fail(
                    "entriesHashList does not match the block's content".to_owned(),
                ));
            }
        }
        Strictness::Qldb | Strictness::Links => {
            let transaction_info = fields
                .get("transactionInfo")
                .ok_or_else(|| fail("block without transactionInfo".to_owned()))?;
            if strictness == Strictness::Qldb
                && !entries_hash_list.contains(&hash::ion_hash(transaction_info)?)
            {
                return Err(fail(
                    "the transactionInfo hash is not in entriesHashList".to_owned(),
                ));
            }
            if let Some(root) = hash::merkle_root(&revision_hashes)
                && !entries_hash_list.contains(&root)
            {
                return Err(fail(
                    "the revisions' Merkle root is not in entriesHashList".to_owned(),
                ));
            }
        }
    }
    let entries_hash = hash::merkle_root(&entries_hash_list)
        .ok_or_else(|| fail("empty entriesHashList".to_owned()))?;
    if entries_hash != stored_entries_hash {
        return Err(fail(
            "entriesHash does not match entriesHashList".to_owned(),
        ));
    }
    let block_hash =
        hash::dot(Some(&entries_hash), previous_block_hash.as_ref()).unwrap_or(entries_hash);
    if block_hash != stored_block_hash {
        return Err(fail("blockHash does not match".to_owned()));
    }
    Ok(VerifiedBlock {
        address,
        block_hash,
        revision_hashes,
        entries_hash_list,
        previous_block_hash,
    })
}

/// The revisions at `indexes` (ascending, repeats allowed) of a stored block's `revisions`
/// list, in that order, read from the block's Ion binary without materializing the rest of it:
/// the lazy reader steps over the other values by their length prefixes, so one revision of a
/// 40-revision block costs about one revision's decoding.
pub fn revisions_at(block_bytes: &[u8], indexes: &[u32]) -> Result<Vec<Element>, LedgerError> {
    let corrupt = |what: String| LedgerError::Storage(format!("stored block: {what}"));
    let ion = |error: ion_rs::IonError| corrupt(error.to_string());
    let mut reader = ion_rs::Reader::new(ion_rs::v1_0::Binary, block_bytes).map_err(ion)?;
    let block = reader
        .next()
        .map_err(ion)?
        .ok_or_else(|| corrupt("empty".to_owned()))?;
    let fields = block.read().map_err(ion)?.expect_struct().map_err(ion)?;
    let list = fields
        .find("revisions")
        .map_err(ion)?
        .ok_or_else(|| corrupt("no revisions".to_owned()))?
        .read()
        .map_err(ion)?
        .expect_list()
        .map_err(ion)?;
    let mut wanted = indexes.iter().copied().peekable();
    let mut found = Vec::with_capacity(indexes.len());
    for (position, value) in list.iter().enumerate() {
        if wanted.peek().is_none() {
            break;
        }
        let value = value.map_err(ion)?;
        let mut element: Option<Element> = None;
        while wanted
            .peek()
            .is_some_and(|index| *index as usize == position)
        {
            wanted.next();
            let decoded = match &element {
                Some(decoded) => decoded.clone(),
                None => Element::try_from(value).map_err(ion)?,
            };
            element = Some(decoded.clone());
            found.push(decoded);
        }
    }
    match wanted.next() {
        None => Ok(found),
        Some(index) => Err(corrupt(format!("no revision at position {index}"))),
    }
}
