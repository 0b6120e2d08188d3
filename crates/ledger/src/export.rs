//! Journal export, restore and import, in the layout of QLDB's S3 journal export:
//! `<root>/<ledger>/<exportId>/<exportId>.started.manifest`, data objects
//! `<yyyy>/<mm>/<dd>/<hh>/<strandId>.<first>-<last>.ion` (or `.json`) holding blocks, and
//! `<exportId>.completed.manifest` listing the data objects' keys, written last.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ion_rs::{Element, Struct, Value};
use time::OffsetDateTime;

use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::ion_read;
use crate::journal::{self, Strictness};
use crate::ledger::Ledger;
use crate::model::{self, BlockAddress, Revision, RevisionMetadata, TableInfo, TableStatus};
use crate::storage;
use crate::transaction::{self, CATALOG_TABLE_ID};

/// Most blocks written to one data object of an export.
pub const BLOCKS_PER_EXPORT_OBJECT_MAX: usize = 1_000;
/// Most blocks an export can hold when read back, so a hostile export cannot exhaust memory.
pub const BLOCKS_PER_IMPORT_MAX: usize = 10_000_000;

/// The encoding of exported data objects, as QLDB's `OutputFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `ION_TEXT`: one block per line, Ion text.
    IonText,
    /// `ION_BINARY`: an Ion binary stream of blocks.
    IonBinary,
    /// `JSON`: one block per line as JSON (blobs as base64, timestamps as strings). Lossy: it
    /// cannot be restored with verified hashes, as in QLDB.
    JsonLines,
}

impl ExportFormat {
    fn qldb_name(self) -> &'static str {
        match self {
            ExportFormat::IonText => "ION_TEXT",
            ExportFormat::IonBinary => "ION_BINARY",
            ExportFormat::JsonLines => "JSON",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::IonText | ExportFormat::IonBinary => "ion",
            ExportFormat::JsonLines => "json",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalExport {
    /// The export id (22-char Base62).
    pub export_id: String,
    /// `<root>/<ledger>/<exportId>`.
    pub directory: PathBuf,
    /// The data objects' keys relative to `directory`, in block order.
    pub keys: Vec<String>,
    /// Number of blocks written.
    pub blocks_exported: u64,
}

fn write_file_durably(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("partial");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent()
        && let Ok(directory) = std::fs::File::open(parent)
    {
        directory.sync_all()?;
    }
    Ok(())
}

fn block_timestamp(block: &Element) -> Result<OffsetDateTime, LedgerError> {
    let timestamp = model::expect_struct(block, "block")?
        .get("blockTimestamp")
        .and_then(Element::as_timestamp)
        .ok_or_else(|| LedgerError::BadRequest("block without blockTimestamp".to_owned()))?;
    model::datetime_from_timestamp(&timestamp)
}

impl Ledger {
    /// Exports the journal blocks whose `blockTimestamp` lies in `[inclusive_start, exclusive_end)`
    /// (unbounded when `None`) under `<root>/<ledger>/<exportId>/`.
    pub fn export_journal(
        &self,
        root: &Path,
        format: ExportFormat,
        inclusive_start_time: Option<OffsetDateTime>,
        exclusive_end_time: Option<OffsetDateTime>,
    ) -> Result<JournalExport, LedgerError> {
        let export_id = model::new_id();
        let directory = root.join(self.name()).join(&export_id);
        std::fs::create_dir_all(&directory)?;
        let time_element = |time: Option<OffsetDateTime>| -> Result<Element, LedgerError> {
            match time {
                None => Ok(model::null_element()),
                Some(time) => Ok(Element::timestamp(model::timestamp_from_datetime(time)?)),
            }
        };
        let started = Element::from(
            Struct::builder()
                .with_field("ledgerName", Element::string(self.name()))
                .with_field("exportId", Element::string(export_id.as_str()))
                .with_field("inclusiveStartTime", time_element(inclusive_start_time)?)
                .with_field("exclusiveEndTime", time_element(exclusive_end_time)?)
                .with_field("objectEncryptionType", Element::string("NO_ENCRYPTION"))
                .with_field("outputFormat", Element::string(format.qldb_name()))
                .build(),
        );
        write_file_durably(
            &directory.join(format!("{export_id}.started.manifest")),
            model::encode_text(&started)?.as_bytes(),
        )?;

        // Blocks stream through one group (one data object) at a time.
        let mut keys = Vec::new();
        let mut group: Vec<Element> = Vec::new();
        let mut group_hour: Option<String> = None;
        let mut blocks_exported = 0u64;
        self.for_each_block(0, |block| {
            let time = block_timestamp(&block)?;
            if exclusive_end_time.is_some_and(|end| time >= end) {
                return Ok(std::ops::ControlFlow::Break(()));
            }
            if inclusive_start_time.is_some_and(|start| time < start) {
                return Ok(std::ops::ControlFlow::Continue(()));
            }
            let hour = format!(
                "{:04}/{:02}/{:02}/{:02}",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour()
            );
            if group_hour.as_ref() != Some(&hour) || group.len() >= BLOCKS_PER_EXPORT_OBJECT_MAX {
                if let Some(previous_hour) = group_hour.take() {
                    keys.push(self.write_export_object(
                        &directory,
                        &previous_hour,
                        &group,
                        format,
                    )?);
                }
                group.clear();
                group_hour = Some(hour);
            }
            group.push(block);
            blocks_exported += 1;
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        if let Some(hour) = group_hour {
            keys.push(self.write_export_object(&directory, &hour, &group, format)?);
        }
        let completed = Element::from(
            Struct::builder()
                .with_field(
                    "keys",
                    model::list_element(
                        keys.iter()
                            .map(|key| Element::string(key.as_str()))
                            .collect(),
                    ),
                )
                .build(),
        );
        // The completed manifest is written last: its presence means the export is whole.
        write_file_durably(
            &directory.join(format!("{export_id}.completed.manifest")),
            model::encode_text(&completed)?.as_bytes(),
        )?;
        Ok(JournalExport {
            export_id,
            directory,
            keys,
            blocks_exported,
        })
    }

    fn write_export_object(
        &self,
        directory: &Path,
        hour: &str,
        blocks: &[Element],
        format: ExportFormat,
    ) -> Result<String, LedgerError> {
        let sequence = |block: Option<&Element>| -> Result<u64, LedgerError> {
            let block =
                block.ok_or_else(|| LedgerError::Internal("empty export object".to_owned()))?;
            let address = model::expect_struct(block, "block")?
                .get("blockAddress")
                .ok_or_else(|| LedgerError::Internal("block without address".to_owned()))?;
            Ok(BlockAddress::from_element(address)?.sequence_no)
        };
        let first = sequence(blocks.first())?;
        let last = sequence(blocks.last())?;
        let key = format!(
            "{hour}/{}.{first}-{last}.{}",
            self.strand_id(),
            format.extension()
        );
        let bytes = match format {
            ExportFormat::IonText => {
                let mut text = String::new();
                for block in blocks {
                    text.push_str(&model::encode_text(block)?);
                    text.push('\n');
                }
                text.into_bytes()
            }
            ExportFormat::IonBinary => {
                let sequence = ion_rs::Sequence::new(blocks.to_vec());
                sequence
                    .encode_as(ion_rs::v1_0::Binary)
                    .map_err(|error| LedgerError::Internal(format!("ion encode: {error}")))?
            }
            ExportFormat::JsonLines => {
                let mut text = String::new();
                for block in blocks {
                    write_json(block, &mut text);
                    text.push('\n');
                }
                text.into_bytes()
            }
        };
        write_file_durably(&directory.join(&key), &bytes)?;
        Ok(key)
    }
}

/// Reads every block of an export directory, sorted by sequence number. Uses the completed
/// manifest when there is one (keys relative to the directory, or S3 keys whose tail is), else
/// every `.ion` file under the directory.
pub fn read_export(export_dir: &Path) -> Result<Vec<Element>, LedgerError> {
    let mut files = Vec::new();
    let manifest = std::fs::read_dir(export_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".completed.manifest"));
    match manifest {
        Some(manifest) => {
            let element = ion_read::read_one(&std::fs::read(&manifest)?, ion_read::ION_DEPTH_MAX)
                .map_err(|error| {
                LedgerError::BadRequest(format!("invalid manifest: {error}"))
            })?;
            let keys = model::expect_struct(&element, "manifest")?
                .get("keys")
                .and_then(Element::as_sequence)
                .ok_or_else(|| LedgerError::BadRequest("manifest without keys".to_owned()))?;
            for key in keys.elements() {
                let key = key.as_text().ok_or_else(|| {
                    LedgerError::BadRequest("manifest key is not text".to_owned())
                })?;
                files.push(resolve_key(export_dir, key)?);
            }
        }
        None => collect_ion_files(export_dir, &mut files)?,
    }
    let mut blocks = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file)?;
        // Data objects hold blocks: documents three levels down in their envelope.
        let values = ion_read::read_all(&bytes, ion_read::BLOCK_DEPTH_MAX).map_err(|error| {
            LedgerError::BadRequest(format!("{} is not Ion: {error}", file.display()))
        })?;
        for value in values {
            if blocks.len() >= BLOCKS_PER_IMPORT_MAX {
                return Err(LedgerError::LimitExceeded(format!(
                    "an export holds at most {BLOCKS_PER_IMPORT_MAX} blocks"
                )));
            }
            blocks.push(value);
        }
    }
    let mut keyed = Vec::with_capacity(blocks.len());
    for block in blocks {
        let address = BlockAddress::from_element(
            model::expect_struct(&block, "block")?
                .get("blockAddress")
                .ok_or_else(|| LedgerError::BadRequest("block without blockAddress".to_owned()))?,
        )?;
        keyed.push((address.sequence_no, block));
    }
    keyed.sort_by_key(|(sequence_no, _)| *sequence_no);
    Ok(keyed.into_iter().map(|(_, block)| block).collect())
}

/// A manifest key as a file: relative to the export directory, or an S3 key whose tail is.
fn resolve_key(export_dir: &Path, key: &str) -> Result<PathBuf, LedgerError> {
    if key.contains("..") {
        return Err(LedgerError::BadRequest(format!(
            "manifest key {key} leaves the export"
        )));
    }
    let parts: Vec<&str> = key.split('/').filter(|part| !part.is_empty()).collect();
    for skip in 0..parts.len() {
        let candidate = parts
            .iter()
            .skip(skip)
            .fold(export_dir.to_path_buf(), |path, part| path.join(part));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(LedgerError::NotFound(format!("export object {key}")))
}

fn collect_ion_files(directory: &Path, files: &mut Vec<PathBuf>) -> Result<(), LedgerError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_ion_files(&path, files)?;
        } else if path.extension().is_some_and(|extension| extension == "ion") {
            files.push(path);
        }
    }
    Ok(())
}

/// Verifies an export's blocks: contiguous from sequence number 0, one strand, every hash and
/// every chain link. Returns the strand id.
pub fn verify_export_chain(
    blocks: &[Element],
    strictness: Strictness,
) -> Result<String, LedgerError> {
    let mut previous: Option<Hash> = None;
    let mut strand_id: Option<String> = None;
    for (position, block) in blocks.iter().enumerate() {
        let fields = model::expect_struct(block, "block")?;
        // The first block's link cannot be checked: nothing precedes it in the export.
        let expected_previous = if position == 0 {
            fields
                .get("previousBlockHash")
                .and_then(Element::as_lob)
                .map(hash::hash_from_slice)
                .transpose()?
        } else {
            previous
        };
        let verified = journal::verify_block(block, expected_previous.as_ref(), strictness)?;
        if verified.address.sequence_no != position as u64 {
            return Err(LedgerError::VerificationFailed(format!(
                "the export is not contiguous from block 0: block {} found at position {position}",
                verified.address.sequence_no
            )));
        }
        match &strand_id {
            None => strand_id = Some(verified.address.strand_id.clone()),
            Some(strand) if *strand != verified.address.strand_id => {
                return Err(LedgerError::VerificationFailed(
                    "the export mixes strands".to_owned(),
                ));
            }
            Some(_) => {}
        }
        previous = Some(verified.block_hash);
    }
    strand_id.ok_or_else(|| LedgerError::BadRequest("the export holds no block".to_owned()))
}

/// Writes verified blocks and the state they imply (catalog, documents, revisions, indexes)
/// into a new, empty ledger, in one durable redb transaction.
pub(crate) fn apply_blocks(ledger: &Ledger, blocks: &[Element]) -> Result<(), LedgerError> {
    let mut write = ledger.database.begin_write()?;
    write.set_durability(redb::Durability::Immediate)?;
    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    let mut documents_by_table: BTreeMap<(String, String), Revision> = BTreeMap::new();
    {
        let mut blocks_table = write.open_table(storage::BLOCKS)?;
        let mut block_hashes = write.open_table(storage::BLOCK_HASHES)?;
        let mut revisions_table = write.open_table(storage::REVISIONS)?;
        let mut write_sequences = write.open_table(storage::TABLE_WRITE_SEQUENCE)?;
        for block in blocks {
            let fields = model::expect_struct(block, "block")?;
            let address =
                BlockAddress::from_element(fields.get("blockAddress").ok_or_else(|| {
                    LedgerError::BadRequest("block without blockAddress".to_owned())
                })?)?;
            let block_hash = model::field_hash(fields, "blockHash")?;
            blocks_table.insert(address.sequence_no, model::encode_binary(block)?.as_slice())?;
            block_hashes.insert(address.sequence_no, block_hash.as_slice())?;
            let documents = fields
                .get("transactionInfo")
                .and_then(Element::as_struct)
                .and_then(|info| info.get("documents"))
                .and_then(Element::as_struct);
            let Some(revisions) = fields.get("revisions").and_then(Element::as_sequence) else {
                continue;
            };
            for revision in revisions.elements() {
                let revision_fields = model::expect_struct(revision, "revision")?;
                let Some(metadata) = revision_fields.get("metadata") else {
                    continue; // a hash-only entry: nothing to restore
                };
                let metadata = RevisionMetadata::from_element(metadata)?;
                let Some(document) = documents
                    .and_then(|documents| documents.get(metadata.id.as_str()))
                    .and_then(Element::as_struct)
                else {
                    continue; // a QLDB system revision without a user table
                };
                let table_id = model::field_text(document, "tableId")?.to_owned();
                let table_name = model::field_text(document, "tableName")?.to_owned();
                let data = revision_fields.get("data").cloned();
                if table_id == CATALOG_TABLE_ID {
                    if let Some(data) = &data {
                        let table = TableInfo::from_element(data)?;
                        tables.insert(table.table_id.clone(), table);
                    }
                } else {
                    tables.entry(table_id.clone()).or_insert_with(|| TableInfo {
                        table_id: table_id.clone(),
                        name: table_name,
                        status: TableStatus::Active,
                        indexes: Vec::new(),
                    });
                    write_sequences.insert(table_id.as_str(), address.sequence_no)?;
                }
                let restored = Revision {
                    block_address: address.clone(),
                    hash: model::field_hash(revision_fields, "hash")?,
                    data,
                    metadata,
                };
                let bytes = model::encode_binary(&restored.to_element())?;
                revisions_table.insert(
                    (
                        table_id.as_str(),
                        restored.metadata.id.as_str(),
                        restored.metadata.version,
                    ),
                    bytes.as_slice(),
                )?;
                let key = (table_id, restored.metadata.id.clone());
                let newer = documents_by_table
                    .get(&key)
                    .is_none_or(|current| current.metadata.version <= restored.metadata.version);
                if newer {
                    documents_by_table.insert(key, restored);
                }
            }
        }
        let mut documents_table = write.open_table(storage::DOCUMENTS)?;
        for ((table_id, document_id), revision) in &documents_by_table {
            let bytes = model::encode_binary(&revision.to_element())?;
            documents_table.insert((table_id.as_str(), document_id.as_str()), bytes.as_slice())?;
        }
        let mut tables_table = write.open_table(storage::TABLES)?;
        for table in tables.values() {
            let bytes = model::encode_binary(&table.to_element())?;
            tables_table.insert(table.table_id.as_str(), bytes.as_slice())?;
        }
        let mut meta = write.open_table(storage::META)?;
        if let Some(last) = blocks.last() {
            let nanos = block_timestamp(last)?.unix_timestamp_nanos();
            meta.insert(
                transaction::LAST_BLOCK_TIME_KEY,
                nanos.to_string().as_bytes(),
            )?;
        }
        let catalog_version = storage::meta_u64(&meta, "catalog_version")? + 1;
        meta.insert("catalog_version", catalog_version.to_string().as_bytes())?;
    }
    for block in blocks {
        let fields = model::expect_struct(block, "block")?;
        let address =
            BlockAddress::from_element(fields.get("blockAddress").ok_or_else(|| {
                LedgerError::BadRequest("block without blockAddress".to_owned())
            })?)?;
        let block_hash = model::field_hash(fields, "blockHash")?;
        crate::journal_tree::append_leaf(&write, address.sequence_no, &block_hash)?;
    }
    for table in tables.values() {
        for index in &table.indexes {
            transaction::build_index(&write, &table.table_id, index)?;
        }
    }
    write.commit()?;
    // Check after writing, as a reader will.
    ledger.verify_chain_with(|_, _| {}, Strictness::Qldb)?;
    Ok(())
}

// ----- JSON lines -----

fn write_json_string(text: &str, output: &mut String) {
    output.push('"');
    for character in text.chars() {
        match character {
            '"' => output.push_str("\\\""),
            '\\' => output.push_str("\\\\"),
            '\n' => output.push_str("\\n"),
            '\r' => output.push_str("\\r"),
            '\t' => output.push_str("\\t"),
            control if (control as u32) < 0x20 => {
                output.push_str(&format!("\\u{:04x}", control as u32));
            }
            other => output.push(other),
        }
    }
    output.push('"');
}

/// Ion to JSON as QLDB's JSON export does: blobs base64, timestamps and symbols as strings.
fn write_json(element: &Element, output: &mut String) {
    if element.is_null() {
        output.push_str("null");
        return;
    }
    match element.value() {
        Value::Null(_) => output.push_str("null"),
        Value::Bool(flag) => output.push_str(if *flag { "true" } else { "false" }),
        Value::Int(int) => output.push_str(&int.to_string()),
        Value::Float(float) if float.is_finite() => output.push_str(&float.to_string()),
        Value::Float(_) => output.push_str("null"),
        Value::Decimal(_) => match crate::value::Number::from_element(element) {
            Some(number) => output.push_str(&decimal_json(number)),
            None => output.push_str("null"),
        },
        Value::Timestamp(_) => {
            let text = model::encode_text(element).unwrap_or_default();
            write_json_string(&text, output);
        }
        Value::Symbol(_) | Value::String(_) => {
            write_json_string(element.as_text().unwrap_or_default(), output)
        }
        Value::Blob(bytes) | Value::Clob(bytes) => {
            write_json_string(&hash::to_base64(bytes.as_ref()), output)
        }
        Value::List(items) | Value::SExp(items) => {
            output.push('[');
            for (position, item) in items.elements().enumerate() {
                if position > 0 {
                    output.push(',');
                }
                write_json(item, output);
            }
            output.push(']');
        }
        Value::Struct(fields) => {
            output.push('{');
            for (position, (name, value)) in fields.fields().enumerate() {
                if position > 0 {
                    output.push(',');
                }
                write_json_string(name.text().unwrap_or_default(), output);
                output.push(':');
                write_json(value, output);
            }
            output.push('}');
        }
    }
}

fn decimal_json(number: crate::value::Number) -> String {
    match number {
        crate::value::Number::Decimal {
            coefficient,
            exponent,
        } => {
            if exponent >= 0 {
                format!(
                    "{coefficient}{}",
                    "0".repeat(exponent.clamp(0, 400) as usize)
                )
            } else {
                let digits = coefficient.unsigned_abs().to_string();
                let scale = exponent.unsigned_abs().min(400) as usize;
                let padded = format!("{digits:0>width$}", width = scale + 1);
                let split = padded.len() - scale;
                let sign = if coefficient < 0 { "-" } else { "" };
                format!(
                    "{sign}{}.{}",
                    padded.get(..split).unwrap_or("0"),
                    padded.get(split..).unwrap_or("0")
                )
            }
        }
        other => other.to_f64().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_of_ion_values() {
        let element = Element::read_one(
            r#"{a: 1, b: 1.50, c: -0.05, d: "x\"y", e: {{AQI=}}, f: 2020-01-01T00:00:00Z, g: [sym, null], h: 12d2}"#,
        )
        .unwrap();
        let mut output = String::new();
        write_json(&element, &mut output);
        assert_eq!(
            output,
            r#"{"a":1,"b":1.50,"c":-0.05,"d":"x\"y","e":"AQI=","f":"2020-01-01T00:00:00+00:00","g":["sym",null],"h":1200}"#
        );
    }
}
