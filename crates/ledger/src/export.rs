//! Journal export, restore and import, in the layout of QLDB's S3 journal export:
//! `<root>/<ledger>/<exportId>/<exportId>.started.manifest`, data objects
//! `<yyyy>/<mm>/<dd>/<hh>/<strandId>.<first>-<last>.ion` (or `.json`) holding blocks, and
//! `<exportId>.completed.manifest` listing the data objects' keys, written last.

use std::io::Write;
use std::path::{Path, PathBuf};

use ion_rs::{Element, Struct, Value};
use time::OffsetDateTime;

use crate::cancel::CancelToken;
use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::ion_read;
use crate::journal::{self, Strictness};
use crate::ledger::Ledger;
use crate::model::{self, BlockAddress};
use crate::source::{EXPORT_OBJECTS_MAX, ExportLocation, ExportReader, object_name};

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
    /// (unbounded when `None`) under `<root>/<ledger>/<exportId>/`. `cancel` is checked between
    /// blocks; an export that fails or is cancelled removes its directory, so no half export is
    /// left to be mistaken for a whole one.
    pub fn export_journal(
        &self,
        root: &Path,
        format: ExportFormat,
        inclusive_start_time: Option<OffsetDateTime>,
        exclusive_end_time: Option<OffsetDateTime>,
        cancel: &CancelToken,
    ) -> Result<JournalExport, LedgerError> {
        cancel.check()?;
        let export_id = model::new_id();
        let directory = root.join(self.name()).join(&export_id);
        std::fs::create_dir_all(&directory)?;
        let written = self.write_export(
            &directory,
            &export_id,
            format,
            inclusive_start_time,
            exclusive_end_time,
            cancel,
        );
        match written {
            Ok((keys, blocks_exported)) => Ok(JournalExport {
                export_id,
                directory,
                keys,
                blocks_exported,
            }),
            Err(error) => {
                if let Err(removal) = std::fs::remove_dir_all(&directory) {
                    tracing::error!(%removal, directory = %directory.display(), "removing an unfinished export failed");
                }
                match error {
                    LedgerError::Cancelled(_) => Err(LedgerError::Cancelled(format!(
                        "export of ledger {} was cancelled because the server is stopping; its unfinished files were removed",
                        self.name()
                    ))),
                    other => Err(other),
                }
            }
        }
    }

    /// Writes the manifests and data objects of one export; returns the keys and block count.
    fn write_export(
        &self,
        directory: &Path,
        export_id: &str,
        format: ExportFormat,
        inclusive_start_time: Option<OffsetDateTime>,
        exclusive_end_time: Option<OffsetDateTime>,
        cancel: &CancelToken,
    ) -> Result<(Vec<String>, u64), LedgerError> {
        let time_element = |time: Option<OffsetDateTime>| -> Result<Element, LedgerError> {
            match time {
                None => Ok(model::null_element()),
                Some(time) => Ok(Element::timestamp(model::timestamp_from_datetime(time)?)),
            }
        };
        let started = Element::from(
            Struct::builder()
                .with_field("ledgerName", Element::string(self.name()))
                .with_field("exportId", Element::string(export_id))
                .with_field("inclusiveStartTime", time_element(inclusive_start_time)?)
                .with_field("exclusiveEndTime", time_element(exclusive_end_time)?)
                .with_field("objectEncryptionType", Element::string("NO_ENCRYPTION"))
                .with_field("outputFormat", Element::string(format.qldb_name()))
                .build(),
        );
        write_file_durably(
            &directory.join(format!("{export_id}.started.manifest")),
            &self.object_bytes(model::encode_text(&started)?.as_bytes())?,
        )?;

        // Blocks stream through one group (one data object) at a time.
        let mut keys = Vec::new();
        let mut group: Vec<Element> = Vec::new();
        let mut group_hour: Option<String> = None;
        let mut blocks_exported = 0u64;
        self.for_each_block(0, |block| {
            cancel.check()?;
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
                        directory,
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
            keys.push(self.write_export_object(directory, &hour, &group, format)?);
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
            &self.object_bytes(model::encode_text(&completed)?.as_bytes())?,
        )?;
        Ok((keys, blocks_exported))
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
        write_file_durably(&directory.join(&key), &self.object_bytes(&bytes)?)?;
        Ok(key)
    }
}

/// Reads every block of an export, sorted by sequence number. Uses the completed manifest when
/// there is one (keys relative to the directory, or S3 keys whose tail is), else every `.ion`
/// file below the directory. The walk is [`ExportReader`]'s: no symbolic link is followed and
/// it is bounded; errors name files relative to the export directory and never quote them.
pub fn read_export(
    location: &ExportLocation,
    cancel: &CancelToken,
) -> Result<Vec<Element>, LedgerError> {
    let mut reader = ExportReader::open(location, cancel)?;
    let objects = match reader.completed_manifest()? {
        Some((manifest_name, bytes)) => {
            let invalid = || LedgerError::BadRequest(format!("{manifest_name} is not a manifest"));
            let element =
                ion_read::read_one(&bytes, ion_read::ION_DEPTH_MAX).map_err(
                    |error| match error {
                        ion_read::IonReadError::TooDeep { .. } => {
                            LedgerError::BadRequest(format!("{manifest_name}: {error}"))
                        }
                        _ => invalid(),
                    },
                )?;
            let keys = element
                .as_struct()
                .and_then(|manifest| manifest.get("keys"))
                .and_then(Element::as_sequence)
                .ok_or_else(|| {
                    LedgerError::BadRequest(format!("{manifest_name} has no list of keys"))
                })?;
            if keys.len() > EXPORT_OBJECTS_MAX {
                return Err(LedgerError::LimitExceeded(format!(
                    "an export holds at most {EXPORT_OBJECTS_MAX} data objects"
                )));
            }
            let mut objects = Vec::with_capacity(keys.len());
            for key in keys.elements() {
                let key = key.as_text().ok_or_else(|| {
                    LedgerError::BadRequest(format!("{manifest_name} holds a key that is not text"))
                })?;
                objects.push(reader.resolve_key(key)?);
            }
            objects
        }
        None => reader.data_objects()?,
    };
    let mut keyed = Vec::new();
    for object in objects {
        let bytes = reader.read(&object)?;
        let name = object_name(&object);
        // The reader's own message may quote the bytes it stumbled on: it is not passed on.
        let not_ion = || LedgerError::BadRequest(format!("{name} is not an Ion stream"));
        // Blocks hold documents three levels down in their envelope; the depth is checked
        // without recursion before ion-rs, which recurses, sees the bytes.
        ion_read::nesting_depth(&bytes, ion_read::BLOCK_DEPTH_MAX).map_err(
            |error| match error {
                ion_read::IonReadError::TooDeep { .. } => {
                    LedgerError::BadRequest(format!("{name}: {error}"))
                }
                _ => not_ion(),
            },
        )?;
        // Value by value, so a cancellation is seen within a large object too.
        let mut values = Element::iter(bytes).map_err(|_| not_ion())?.enumerate();
        loop {
            cancel.check()?;
            let next = ion_read::contain_panic_of(|| values.next()).map_err(|_| not_ion())?;
            let Some((position, value)) = next else { break };
            let value = value.map_err(|_| not_ion())?;
            if keyed.len() >= BLOCKS_PER_IMPORT_MAX {
                return Err(LedgerError::LimitExceeded(format!(
                    "an export holds at most {BLOCKS_PER_IMPORT_MAX} blocks"
                )));
            }
            let address = model::expect_struct(&value, "block")
                .and_then(|block| {
                    block.get("blockAddress").ok_or_else(|| {
                        LedgerError::BadRequest("block without blockAddress".to_owned())
                    })
                })
                .and_then(BlockAddress::from_element)
                .map_err(|error| {
                    let reason = match error {
                        LedgerError::BadRequest(reason) => reason,
                        other => other.to_string(),
                    };
                    LedgerError::BadRequest(format!(
                        "{name}: value {position} is not a journal block ({reason})"
                    ))
                })?;
            keyed.push((address.sequence_no, value));
        }
    }
    keyed.sort_by_key(|(sequence_no, _)| *sequence_no);
    Ok(keyed.into_iter().map(|(_, block)| block).collect())
}

/// Verifies an export's blocks: contiguous from sequence number 0, one strand, every hash and
/// every chain link. Returns the strand id.
pub fn verify_export_chain(
    blocks: &[Element],
    strictness: Strictness,
    cancel: &CancelToken,
) -> Result<String, LedgerError> {
    let mut previous: Option<Hash> = None;
    let mut strand_id: Option<String> = None;
    for (position, block) in blocks.iter().enumerate() {
        cancel.check()?;
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

/// Appends verified blocks to a new, empty ledger's journal, which builds the state they imply
/// (catalog, documents, revisions, indexes) as commits do, then checks the whole chain as a
/// reader will. A cancellation stops between blocks and cuts back what its batch appended; the
/// caller removes the partial ledger.
pub(crate) fn apply_blocks(
    ledger: &Ledger,
    blocks: &[Element],
    cancel: &CancelToken,
) -> Result<(), LedgerError> {
    ledger.append_blocks(blocks, cancel)?;
    ledger.verify_chain_with(|_, _| {}, Strictness::Qldb, cancel)?;
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
    fn a_cancelled_apply_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(crate::SystemClock);
        let ledgers =
            crate::Ledgers::open_dir(dir.path(), clock.clone(), crate::Limits::default()).unwrap();
        let source = ledgers.create_ledger("source", true).unwrap();
        source.execute("CREATE TABLE T", &[]).unwrap();
        source.execute("INSERT INTO T VALUE {'a': 1}", &[]).unwrap();
        let blocks = source.blocks_from(0).unwrap();
        let target_dir = dir.path().join("target.ledger");
        Ledger::create_files(&target_dir, "target", true, source.strand_id(), None).unwrap();
        let target = Ledger::open(&target_dir, clock, crate::Limits::default(), None).unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(
            apply_blocks(&target, &blocks, &cancel),
            Err(LedgerError::Cancelled(_))
        ));
        assert!(target.digest().unwrap().is_none());
        apply_blocks(&target, &blocks, &CancelToken::new()).unwrap();
        assert_eq!(target.digest().unwrap(), source.digest().unwrap());
    }

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
