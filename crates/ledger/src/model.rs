//! The ledger's data model as Rust types and their Ion shapes: block addresses, revisions and
//! their metadata, tables and indexes, limits, ids and timestamps.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use ion_rs::{Element, IonType, Struct, Timestamp};
use time::OffsetDateTime;

use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::ion_binary::Declined;
use crate::ion_read;

/// Length of QLDB ids (documents, transactions, tables, indexes, strands) in Base62 characters.
pub const ID_LENGTH_CHARS: usize = 22;

const BASE62_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh random 22-character Base62 id (about 128 bits: 62^22 > 2^130), for every id but a
/// document's: sessions, page tokens, transactions, tables, indexes, strands, exports.
pub fn new_id() -> String {
    let mut number = random_u128();
    let mut text = Vec::with_capacity(ID_LENGTH_CHARS);
    for _ in 0..ID_LENGTH_CHARS {
        text.push(base62_digit(&mut number));
    }
    String::from_utf8(text).unwrap_or_default()
}

/// Base62 characters of a document id that hold its creation time.
const DOCUMENT_ID_TIME_CHARS: usize = 8;

/// A fresh 22-character Base62 document id that sorts by creation time: 8 characters of the
/// Unix time in milliseconds, most significant first (62^8 ms is about 6,900 years), then 14
/// random ones (about 83 bits, so ids made in the same millisecond do not collide). The time is
/// the system's, not the ledger's injectable `Clock`: it only orders the ids.
///
/// The state keys documents and their revisions by id, so time-ordered ids make inserts append
/// to the right edge of those B-trees: a checkpoint writes the few pages there, not one leaf per
/// new document scattered across the whole file (which made a checkpoint, and every commit
/// waiting behind it, slower the larger the ledger grew). The alphabet is in ASCII order, so the
/// ids' byte order is their numeric order.
pub fn new_document_id() -> String {
    let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut time = u128::try_from(now_ms).unwrap_or(0);
    let mut time_digits = [b'0'; DOCUMENT_ID_TIME_CHARS];
    for digit in time_digits.iter_mut().rev() {
        *digit = base62_digit(&mut time);
    }
    let mut number = random_u128();
    let mut text = Vec::with_capacity(ID_LENGTH_CHARS);
    text.extend_from_slice(&time_digits);
    for _ in DOCUMENT_ID_TIME_CHARS..ID_LENGTH_CHARS {
        text.push(base62_digit(&mut number));
    }
    String::from_utf8(text).unwrap_or_default()
}

/// 128 bits that are unique and unpredictable, not secret: std's randomly keyed hasher, a
/// process-wide counter and the time, hashed with SHA-256.
fn random_u128() -> u128 {
    let mut seed = Vec::with_capacity(40);
    let hasher_output = RandomState::new().build_hasher().finish();
    seed.extend_from_slice(&hasher_output.to_le_bytes());
    seed.extend_from_slice(&ID_COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    seed.extend_from_slice(&nanos.to_le_bytes());
    let digest = hash::sha256_bytes(&seed);
    let mut number_bytes = [0u8; 16];
    number_bytes.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(number_bytes)
}

/// The Base62 character of `number`'s lowest digit, which it removes.
fn base62_digit(number: &mut u128) -> u8 {
    let digit = (*number % 62) as usize;
    *number /= 62;
    BASE62_ALPHABET.get(digit).copied().unwrap_or(b'0')
}

/// Converts a UTC instant to an Ion timestamp with millisecond precision, as QLDB stamps `txTime`.
pub fn timestamp_from_datetime(instant: OffsetDateTime) -> Result<Timestamp, LedgerError> {
    let instant = instant
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or_else(|| LedgerError::BadRequest("instant out of range".to_owned()))?;
    let year = u32::try_from(instant.year())
        .map_err(|_| LedgerError::Internal("year before 0".to_owned()))?;
    Timestamp::with_ymd(
        year,
        u32::from(u8::from(instant.month())),
        u32::from(instant.day()),
    )
    .with_hms(
        u32::from(instant.hour()),
        u32::from(instant.minute()),
        u32::from(instant.second()),
    )
    .with_milliseconds(u32::from(instant.millisecond()))
    .with_offset(0)
    .build()
    .map_err(|error| LedgerError::Internal(format!("timestamp: {error}")))
}

/// Converts an Ion timestamp to a UTC instant (an unknown offset is read as UTC).
pub fn datetime_from_timestamp(timestamp: &Timestamp) -> Result<OffsetDateTime, LedgerError> {
    let invalid = |what: &str| LedgerError::BadRequest(format!("invalid timestamp: {what}"));
    let year = i32::try_from(timestamp.year()).map_err(|_| invalid("year"))?;
    let month_number = u8::try_from(timestamp.month()).map_err(|_| invalid("month"))?;
    let month = time::Month::try_from(month_number).map_err(|_| invalid("month"))?;
    let day = u8::try_from(timestamp.day()).map_err(|_| invalid("day"))?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| invalid("date"))?;
    let hour = u8::try_from(timestamp.hour()).map_err(|_| invalid("hour"))?;
    let minute = u8::try_from(timestamp.minute()).map_err(|_| invalid("minute"))?;
    let second = u8::try_from(timestamp.second()).map_err(|_| invalid("second"))?;
    let time_of_day = time::Time::from_hms_nano(hour, minute, second, timestamp.nanoseconds())
        .map_err(|_| invalid("time"))?;
    let offset_seconds = timestamp.offset().unwrap_or(0).saturating_mul(60);
    let offset =
        time::UtcOffset::from_whole_seconds(offset_seconds).map_err(|_| invalid("offset"))?;
    time::PrimitiveDateTime::new(date, time_of_day)
        .assume_offset(offset)
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or_else(|| invalid("out of range"))
}

/// QLDB's limits, configurable; the defaults are QLDB's published quotas.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest document (Ion binary of the user data), in bytes. QLDB: 128 KB.
    pub document_size_max_bytes: usize,
    /// Most documents written (inserted, updated or deleted) by one transaction. QLDB: 40.
    pub documents_written_per_transaction_max: usize,
    /// A transaction older than this cannot execute statements or commit. QLDB: 30 s.
    pub transaction_timeout_ms: i64,
    /// Most indexes per table. QLDB: 5.
    pub indexes_per_table_max: usize,
    /// Most active tables per ledger. QLDB: 20.
    pub active_tables_max: usize,
    /// Most rows a single statement may return, so a query cannot exhaust memory.
    pub statement_result_rows_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            document_size_max_bytes: 128 * 1024,
            documents_written_per_transaction_max: 40,
            transaction_timeout_ms: 30_000,
            indexes_per_table_max: 5,
            active_tables_max: 20,
            statement_result_rows_max: 1_000_000,
        }
    }
}

/// Where a block lives in the journal: `{strandId, sequenceNo}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockAddress {
    /// The journal strand (QLDB ledgers have exactly one).
    pub strand_id: String,
    /// The block's position in the strand, from 0.
    pub sequence_no: u64,
}

impl BlockAddress {
    /// The Ion struct `{strandId: "...", sequenceNo: n}`.
    pub fn to_element(&self) -> Element {
        Element::from(
            Struct::builder()
                .with_field("strandId", Element::string(self.strand_id.as_str()))
                .with_field("sequenceNo", Element::int(self.sequence_no as i64))
                .build(),
        )
    }

    /// Reads `{strandId, sequenceNo}`.
    pub fn from_element(element: &Element) -> Result<Self, LedgerError> {
        let fields = expect_struct(element, "blockAddress")?;
        Ok(BlockAddress {
            strand_id: field_text(fields, "strandId")?.to_owned(),
            sequence_no: field_u64(fields, "sequenceNo")?,
        })
    }

    /// Parses the text form QLDB APIs pass around: `{strandId:"...",sequenceNo:3}`, nested at most
    /// [`ION_DEPTH_MAX`](crate::ion_read::ION_DEPTH_MAX) levels like any value from outside.
    pub fn parse_ion_text(text: &str) -> Result<Self, LedgerError> {
        let element = ion_read::read_one(text.as_bytes(), ion_read::ION_DEPTH_MAX)
            .map_err(|error| LedgerError::BadRequest(format!("invalid block address: {error}")))?;
        Self::from_element(&element)
    }

    /// The Ion text form QLDB APIs use, `{strandId:"...",sequenceNo:3}`.
    pub fn to_ion_text(&self) -> String {
        format!(
            "{{strandId:\"{}\",sequenceNo:{}}}",
            self.strand_id, self.sequence_no
        )
    }
}

/// A revision's `metadata {id, version, txTime, txId}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionMetadata {
    /// The document id.
    pub id: String,
    /// The revision's version: 0 for the insert, growing by 1.
    pub version: u64,
    /// The commit time of the transaction.
    pub tx_time: Timestamp,
    /// The id of the transaction.
    pub tx_id: String,
}

impl RevisionMetadata {
    /// The Ion struct `{id, version, txTime, txId}`.
    pub fn to_element(&self) -> Element {
        Element::from(
            Struct::builder()
                .with_field("id", Element::string(self.id.as_str()))
                .with_field("version", Element::int(self.version as i64))
                .with_field("txTime", Element::timestamp(self.tx_time.clone()))
                .with_field("txId", Element::string(self.tx_id.as_str()))
                .build(),
        )
    }

    /// Reads `{id, version, txTime, txId}`.
    pub fn from_element(element: &Element) -> Result<Self, LedgerError> {
        let fields = expect_struct(element, "metadata")?;
        let tx_time = fields
            .get("txTime")
            .and_then(Element::as_timestamp)
            .ok_or_else(|| LedgerError::BadRequest("metadata without txTime".to_owned()))?;
        Ok(RevisionMetadata {
            id: field_text(fields, "id")?.to_owned(),
            version: field_u64(fields, "version")?,
            tx_time,
            tx_id: field_text(fields, "txId")?.to_owned(),
        })
    }
}

/// One committed revision of a document: the committed view `{blockAddress, hash, data, metadata}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// The block that committed it.
    pub block_address: BlockAddress,
    /// `dot(IonHash(metadata), IonHash(data))`.
    pub hash: Hash,
    /// The user data; `None` for the final revision of a deleted document.
    pub data: Option<Element>,
    /// The metadata.
    pub metadata: RevisionMetadata,
}

impl Revision {
    /// The committed-view struct `{blockAddress, hash, data, metadata}` (no `data` when deleted).
    pub fn to_element(&self) -> Element {
        let mut builder = Struct::builder()
            .with_field("blockAddress", self.block_address.to_element())
            .with_field("hash", Element::blob(self.hash));
        if let Some(data) = &self.data {
            builder = builder.with_field("data", data.clone());
        }
        Element::from(
            builder
                .with_field("metadata", self.metadata.to_element())
                .build(),
        )
    }

    /// Reads the committed-view struct.
    pub fn from_element(element: &Element) -> Result<Self, LedgerError> {
        let fields = expect_struct(element, "revision")?;
        let block_address =
            BlockAddress::from_element(fields.get("blockAddress").ok_or_else(|| {
                LedgerError::BadRequest("revision without blockAddress".to_owned())
            })?)?;
        let hash = field_hash(fields, "hash")?;
        let metadata = RevisionMetadata::from_element(
            fields
                .get("metadata")
                .ok_or_else(|| LedgerError::BadRequest("revision without metadata".to_owned()))?,
        )?;
        Ok(Revision {
            block_address,
            hash,
            data: fields.get("data").cloned(),
            metadata,
        })
    }

    /// Recomputes the revision hash from metadata and data.
    pub fn compute_hash(&self) -> Result<Hash, LedgerError> {
        hash::revision_hash(&self.metadata.to_element(), self.data.as_ref())
    }
}

/// Whether a table is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    /// Usable.
    Active,
    /// Dropped; its history stays and `UNDROP TABLE` brings it back.
    Deleted,
}

impl TableStatus {
    /// QLDB's spelling: `ACTIVE` / `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Active => "ACTIVE",
            TableStatus::Deleted => "DELETED",
        }
    }
}

/// An equality index on one field path of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    /// The index id (22-char Base62).
    pub index_id: String,
    /// The indexed path as field names from the document root, e.g. `["VIN"]`.
    pub field_path: Vec<String>,
}

impl IndexInfo {
    /// QLDB's `expr` text, e.g. `[VIN]` or `[Owner.PersonId]`.
    pub fn expr_text(&self) -> String {
        format!("[{}]", self.field_path.join("."))
    }
}

/// A table of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// The table id (22-char Base62).
    pub table_id: String,
    /// The table name, case preserved.
    pub name: String,
    /// Active or dropped.
    pub status: TableStatus,
    /// Its equality indexes.
    pub indexes: Vec<IndexInfo>,
}

impl TableInfo {
    /// The stored and `information_schema.user_tables` shape:
    /// `{name, tableId, status, indexes: [{indexId, expr, status}]}`.
    pub fn to_element(&self) -> Element {
        let indexes: Vec<Element> = self
            .indexes
            .iter()
            .map(|index| {
                Element::from(
                    Struct::builder()
                        .with_field("indexId", Element::string(index.index_id.as_str()))
                        .with_field("expr", Element::string(index.expr_text()))
                        .with_field("status", Element::string("ONLINE"))
                        .build(),
                )
            })
            .collect();
        Element::from(
            Struct::builder()
                .with_field("name", Element::string(self.name.as_str()))
                .with_field("tableId", Element::string(self.table_id.as_str()))
                .with_field("status", Element::string(self.status.as_str()))
                .with_field("indexes", list_element(indexes))
                .build(),
        )
    }

    /// Reads the stored shape.
    pub fn from_element(element: &Element) -> Result<Self, LedgerError> {
        let fields = expect_struct(element, "table")?;
        let status = match field_text(fields, "status")? {
            "ACTIVE" => TableStatus::Active,
            _ => TableStatus::Deleted,
        };
        let mut indexes = Vec::new();
        if let Some(list) = fields.get("indexes").and_then(Element::as_sequence) {
            for index in list.elements() {
                let index_fields = expect_struct(index, "index")?;
                let expr = field_text(index_fields, "expr")?;
                let inner = expr.trim_start_matches('[').trim_end_matches(']');
                indexes.push(IndexInfo {
                    index_id: field_text(index_fields, "indexId")?.to_owned(),
                    field_path: inner.split('.').map(str::to_owned).collect(),
                });
            }
        }
        Ok(TableInfo {
            table_id: field_text(fields, "tableId")?.to_owned(),
            name: field_text(fields, "name")?.to_owned(),
            status,
            indexes,
        })
    }
}

/// Builds an Ion list element from elements.
pub fn list_element(items: Vec<Element>) -> Element {
    ion_rs::List::from(ion_rs::Sequence::new(items)).into()
}

/// The struct inside an element, or a bad-request error naming `what`.
pub fn expect_struct<'a>(element: &'a Element, what: &str) -> Result<&'a Struct, LedgerError> {
    element
        .as_struct()
        .ok_or_else(|| LedgerError::BadRequest(format!("{what} is not a struct")))
}

/// A text (string or symbol) field.
pub fn field_text<'a>(fields: &'a Struct, name: &str) -> Result<&'a str, LedgerError> {
    fields
        .get(name)
        .and_then(Element::as_text)
        .ok_or_else(|| LedgerError::BadRequest(format!("missing text field {name}")))
}

/// A non-negative integer field.
pub fn field_u64(fields: &Struct, name: &str) -> Result<u64, LedgerError> {
    fields
        .get(name)
        .and_then(Element::as_i64)
        .and_then(|number| u64::try_from(number).ok())
        .ok_or_else(|| LedgerError::BadRequest(format!("missing integer field {name}")))
}

/// A 32-byte blob field.
pub fn field_hash(fields: &Struct, name: &str) -> Result<Hash, LedgerError> {
    let bytes = fields
        .get(name)
        .and_then(Element::as_lob)
        .ok_or_else(|| LedgerError::BadRequest(format!("missing hash field {name}")))?;
    hash::hash_from_slice(bytes)
}

/// Ion binary encoding of an element (the stored form of documents, revisions and blocks):
/// written by [`crate::ion_binary`], or by `ion_rs` for the few values that module leaves to it.
/// A value that could not be read back (a decimal exponent beyond 62 bits) is refused as a bad
/// request, so no statement stores one and no block becomes unreadable.
pub fn encode_binary(element: &Element) -> Result<Vec<u8>, LedgerError> {
    let refused = |reason: String| {
        LedgerError::BadRequest(format!("value cannot be stored as ion binary: {reason}"))
    };
    match crate::ion_binary::encode(element) {
        Ok(bytes) => Ok(bytes),
        Err(Declined::Unreadable(reason)) => Err(refused(reason)),
        Err(Declined::LeftToIonRs) => {
            if let Err(Declined::Unreadable(reason)) = crate::ion_binary::check_readable(element) {
                return Err(refused(reason));
            }
            element
                .encode_as(ion_rs::v1_0::Binary)
                .map_err(|error| LedgerError::Internal(format!("ion encode: {error}")))
        }
    }
}

/// Ion text encoding of an element.
pub fn encode_text(element: &Element) -> Result<String, LedgerError> {
    element
        .encode_as(ion_rs::v1_0::Text)
        .map(|text| text.trim().to_owned())
        .map_err(|error| LedgerError::Internal(format!("ion encode: {error}")))
}

/// Decodes one stored Ion value; a failure here means the store is corrupt. Stored blocks and
/// revisions hold documents no deeper than [`ION_DEPTH_MAX`](crate::ion_read::ION_DEPTH_MAX)
/// (commits refuse deeper ones, and earlier releases could not store deeper), so anything
/// beyond [`BLOCK_DEPTH_MAX`](crate::ion_read::BLOCK_DEPTH_MAX) is corruption too, reported
/// instead of overflowing the stack.
pub fn decode_stored(bytes: &[u8]) -> Result<Element, LedgerError> {
    ion_read::read_one(bytes, ion_read::BLOCK_DEPTH_MAX)
        .map_err(|error| LedgerError::Storage(format!("corrupt stored ion value: {error}")))
}

/// An Ion null.
pub fn null_element() -> Element {
    Element::null(IonType::Null)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn is_base62_id(id: &str) -> bool {
        id.len() == ID_LENGTH_CHARS && id.bytes().all(|b| BASE62_ALPHABET.contains(&b))
    }

    #[test]
    fn document_ids_are_base62_distinct_and_sort_by_creation_time() {
        let first: Vec<String> = (0..1000).map(|_| new_document_id()).collect();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let later = new_document_id();
        assert!(first.iter().all(|id| is_base62_id(id)));
        assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len());
        assert!(
            first.iter().all(|id| *id < later),
            "{later} sorts before an earlier id"
        );
        // The time prefix decodes to now, in milliseconds.
        let prefix = later[..DOCUMENT_ID_TIME_CHARS].bytes().fold(0u128, |n, b| {
            n * 62 + BASE62_ALPHABET.iter().position(|&c| c == b).unwrap() as u128
        });
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u128;
        assert!(
            prefix <= now_ms && now_ms - prefix < 60_000,
            "{prefix} vs {now_ms}"
        );
    }

    #[test]
    fn other_ids_are_base62_and_distinct() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|id| is_base62_id(id)));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }
}
