//! Journal blocks: their Ion shape (as QLDB exports them), building a block at commit, and
//! re-verifying a block's hashes and chain link (for `verify_chain`, restore and import).

use ion_rs::{Element, Struct, Timestamp};

use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::ion_binary;
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
    /// The whole block as stored and exported: Ion binary.
    pub bytes: Vec<u8>,
    /// Its hash.
    pub block_hash: Hash,
}

/// What a block is made of, besides the hashes computed from it.
struct BlockParts<'a> {
    address: &'a BlockAddress,
    transaction_id: &'a str,
    block_timestamp: &'a Timestamp,
    transaction_info: &'a Element,
    revisions: &'a [Revision],
    previous_block_hash: Option<&'a Hash>,
}

/// Builds a block and computes its hashes. The block is written straight into Ion binary from
/// its parts, without an element of the whole block (which would clone every document once
/// more); a block holding values that writer leaves to `ion_rs` is built as an element and
/// encoded by `ion_rs`. Both give the same block, field for field.
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
    let parts = BlockParts {
        address,
        transaction_id,
        block_timestamp,
        transaction_info: &transaction_info,
        revisions,
        previous_block_hash,
    };
    // Declined: the whole block goes through `encode_binary`, which falls back to ion_rs or
    // refuses a value no reader could read back, as for any other value.
    let bytes = match write_block(&parts, &hashes) {
        Ok(bytes) => bytes,
        Err(_) => model::encode_binary(&block_element(&parts, &hashes))?,
    };
    Ok(BuiltBlock {
        bytes,
        block_hash: hashes.block_hash,
    })
}

/// The block as Ion binary, unless it holds a value the writer declines. The fields and their
/// order are those of [`block_element`].
fn write_block(
    parts: &BlockParts<'_>,
    hashes: &hash::BlockHashes,
) -> Result<Vec<u8>, ion_binary::Declined> {
    let mut writer = ion_binary::Writer::new();
    let address = |writer: &mut ion_binary::Writer<'_>| {
        writer.begin_struct();
        writer.field("strandId");
        writer.string(&parts.address.strand_id);
        writer.field("sequenceNo");
        writer.int(parts.address.sequence_no);
        writer.end();
    };
    writer.begin_struct();
    writer.field("blockAddress");
    address(&mut writer);
    writer.field("transactionId");
    writer.string(parts.transaction_id);
    writer.field("blockTimestamp");
    writer.timestamp(parts.block_timestamp)?;
    writer.field("blockHash");
    writer.blob(&hashes.block_hash);
    writer.field("entriesHash");
    writer.blob(&hashes.entries_hash);
    if let Some(previous) = parts.previous_block_hash {
        writer.field("previousBlockHash");
        writer.blob(previous);
    }
    writer.field("entriesHashList");
    writer.begin_list();
    for entry in &hashes.entries_hash_list {
        writer.blob(entry);
    }
    writer.end();
    writer.field("transactionInfo");
    writer.element(parts.transaction_info)?;
    if !parts.revisions.is_empty() {
        writer.field("revisions");
        writer.begin_list();
        for revision in parts.revisions {
            writer.begin_struct();
            writer.field("blockAddress");
            address(&mut writer);
            writer.field("hash");
            writer.blob(&revision.hash);
            if let Some(data) = &revision.data {
                writer.field("data");
                writer.element(data)?;
            }
            writer.field("metadata");
            writer.begin_struct();
            writer.field("id");
            writer.string(&revision.metadata.id);
            writer.field("version");
            writer.int(revision.metadata.version);
            writer.field("txTime");
            writer.timestamp(&revision.metadata.tx_time)?;
            writer.field("txId");
            writer.string(&revision.metadata.tx_id);
            writer.end();
            writer.end();
        }
        writer.end();
    }
    writer.end();
    Ok(writer.finish())
}

/// The block as one element: `{blockAddress, transactionId, blockTimestamp, blockHash,
/// entriesHash, previousBlockHash (but in the first block), entriesHashList, transactionInfo,
/// revisions (if any)}`.
fn block_element(parts: &BlockParts<'_>, hashes: &hash::BlockHashes) -> Element {
    let mut builder = Struct::builder()
        .with_field("blockAddress", parts.address.to_element())
        .with_field("transactionId", Element::string(parts.transaction_id))
        .with_field(
            "blockTimestamp",
            Element::timestamp(parts.block_timestamp.clone()),
        )
        .with_field("blockHash", Element::blob(hashes.block_hash))
        .with_field("entriesHash", Element::blob(hashes.entries_hash));
    if let Some(previous) = parts.previous_block_hash {
        builder = builder.with_field("previousBlockHash", Element::blob(*previous));
    }
    let entries: Vec<Element> = hashes
        .entries_hash_list
        .iter()
        .map(|entry| Element::blob(*entry))
        .collect();
    builder = builder
        .with_field("entriesHashList", model::list_element(entries))
        .with_field("transactionInfo", parts.transaction_info.clone());
    if !parts.revisions.is_empty() {
        let revision_elements: Vec<Element> =
            parts.revisions.iter().map(Revision::to_element).collect();
        builder = builder.with_field("revisions", model::list_element(revision_elements));
    }
    Element::from(builder.build())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion_values::{element, same};
    use crate::model::RevisionMetadata;
    use proptest::prelude::*;

    fn revision(address: &BlockAddress, index: u8, data: Option<Element>) -> Revision {
        Revision {
            block_address: address.clone(),
            hash: [index; 32],
            data,
            metadata: RevisionMetadata {
                id: format!("document{index}"),
                version: u64::from(index) * 1000,
                tx_time: Timestamp::with_ymd(2026, 12, 6)
                    .with_hms(2, 41, 12)
                    .with_milliseconds(123)
                    .build()
                    .unwrap(),
                tx_id: "L7S9iJqcn8fAbqlL8f6wdq".to_owned(),
            },
        }
    }

    /// The block written from its parts and the block built as an element (what `ion_rs`
    /// encodes when the writer declines) are the same value.
    fn check_written_as_built(documents: Vec<Option<Element>>, previous: Option<Hash>) {
        let address = BlockAddress {
            strand_id: "JdxjkR9bSYZ7w8aRgCJKNh".to_owned(),
            sequence_no: 300,
        };
        let revisions: Vec<Revision> = documents
            .into_iter()
            .enumerate()
            .map(|(index, data)| revision(&address, index as u8, data))
            .collect();
        let statement = StatementInfo {
            text: "INSERT INTO T ?".to_owned(),
            start_time: revisions
                .first()
                .map_or(Timestamp::with_year(2026).build().unwrap(), |revision| {
                    revision.metadata.tx_time.clone()
                }),
            digest: [7; 32],
        };
        let documents: Vec<DocumentInfo> = revisions
            .iter()
            .map(|revision| DocumentInfo {
                document_id: revision.metadata.id.clone(),
                table_name: "T".to_owned(),
                table_id: "DNxZcE8Dz3YNRtRT5O1xpU".to_owned(),
                statement_indexes: vec![0],
            })
            .collect();
        let transaction_info = transaction_info_element(&[statement], &documents);
        let timestamp = Timestamp::with_ymd(2026, 12, 6).build().unwrap();
        let parts = BlockParts {
            address: &address,
            transaction_id: "L7S9iJqcn8fAbqlL8f6wdq",
            block_timestamp: &timestamp,
            transaction_info: &transaction_info,
            revisions: &revisions,
            previous_block_hash: previous.as_ref(),
        };
        let revision_hashes: Vec<Hash> = revisions.iter().map(|revision| revision.hash).collect();
        let hashes =
            hash::block_hashes(&transaction_info, &revision_hashes, previous.as_ref()).unwrap();
        let expected = block_element(&parts, &hashes);
        let built = build_block(
            &address,
            "L7S9iJqcn8fAbqlL8f6wdq",
            &timestamp,
            transaction_info.clone(),
            &revisions,
            previous.as_ref(),
        );
        let unreadable = revisions
            .iter()
            .filter_map(|revision| revision.data.as_ref())
            .any(|data| ion_binary::check_readable(data).is_err());
        if unreadable {
            assert!(
                matches!(built, Err(LedgerError::BadRequest(_))),
                "{built:?}"
            );
            return;
        }
        let built = built.unwrap();
        assert_eq!(built.block_hash, hashes.block_hash);
        let read = model::decode_stored(&built.bytes).unwrap();
        assert!(same(&read, &expected), "{read} against {expected}");
        if let Ok(written) = write_block(&parts, &hashes) {
            assert_eq!(written, built.bytes);
        }
        verify_block(&read, previous.as_ref(), Strictness::Links).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn a_block_written_from_its_parts_is_the_block_built(
            documents in prop::collection::vec(prop::option::of(element()), 0..4),
            previous in prop::option::of(any::<[u8; 32]>()),
        ) {
            check_written_as_built(documents, previous);
        }
    }

    #[test]
    fn a_block_with_a_value_the_writer_declines_is_built_by_ion_rs() {
        let finer_than_nanoseconds =
            Element::read_one(b"{at: 2026-12-04T01:02:03.123456789012Z}").unwrap();
        let address = BlockAddress {
            strand_id: "s".to_owned(),
            sequence_no: 1,
        };
        let revisions = [revision(&address, 0, Some(finer_than_nanoseconds.clone()))];
        let transaction_info = transaction_info_element(&[], &[]);
        let timestamp = Timestamp::with_year(2026).build().unwrap();
        let parts = BlockParts {
            address: &address,
            transaction_id: "t",
            block_timestamp: &timestamp,
            transaction_info: &transaction_info,
            revisions: &revisions,
            previous_block_hash: None,
        };
        let hashes = hash::block_hashes(&transaction_info, &[[0; 32]], None).unwrap();
        assert_eq!(
            write_block(&parts, &hashes),
            Err(ion_binary::Declined::LeftToIonRs)
        );
        check_written_as_built(vec![Some(finer_than_nanoseconds), None], Some([1; 32]));
    }
}
