//! The migration of format-1 ledgers (one redb file holding blocks, revisions and current
//! documents, each revision stored three times) to format 2 (a journal holding every block
//! once, and derived state rebuilt from it). `Ledgers::ledger` runs it when it finds a
//! `<name>.ledger.redb` file; the digest, the strand and every block stay byte for byte.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use crate::cancel::CancelToken;
use crate::clock::Clock;
use crate::error::LedgerError;
use crate::ledger::{LOAD_BLOCKS_PER_BATCH, Ledger};
use crate::model::{self, Limits};
use crate::storage;

/// The format version this module reads.
const V1_FORMAT_VERSION: u64 = 1;

/// Builds a format-2 ledger in the new directory `target` from the format-1 file `v1_path`:
/// reads its blocks in order, appends each (re-verified against the one before) to a new
/// journal, which rebuilds the derived state, then verifies the whole chain. Returns the number
/// of blocks. `v1_path` is only read.
pub(crate) fn migrate_v1_file(
    v1_path: &Path,
    target: &Path,
    clock: Arc<dyn Clock>,
    limits: Limits,
    keyring: Option<&std::sync::Arc<sluice_seal::Keyring>>,
) -> Result<u64, LedgerError> {
    let database = Database::open(v1_path)?;
    let read = database.begin_read()?;
    let (name, strand_id, deletion_protection) = {
        let meta = read.open_table(storage::META)?;
        let version = storage::meta_u64(&meta, storage::FORMAT_VERSION_KEY)?;
        if version != V1_FORMAT_VERSION {
            return Err(LedgerError::Storage(format!(
                "{} has ledger format version {version}; this build migrates version {V1_FORMAT_VERSION} and reads version {}",
                v1_path.display(),
                storage::FORMAT_VERSION
            )));
        }
        let text = |key: &str| {
            storage::meta_text(&meta, key)?
                .ok_or_else(|| LedgerError::Storage(format!("{} has no {key}", v1_path.display())))
        };
        (
            text("ledger_name")?,
            text("strand_id")?,
            text("deletion_protection")? != "false",
        )
    };
    Ledger::create_files(
        target,
        &name,
        deletion_protection,
        &strand_id,
        keyring.map(|k| &**k),
    )?;
    let ledger = Ledger::open(target, clock, limits, keyring)?;
    let blocks = read.open_table(storage::v1::BLOCKS)?;
    let never = CancelToken::new();
    let mut batch = Vec::with_capacity(LOAD_BLOCKS_PER_BATCH);
    let mut count = 0u64;
    for entry in blocks.range(0u64..)? {
        let (_, value) = entry?;
        batch.push(model::decode_stored(value.value())?);
        count += 1;
        if batch.len() >= LOAD_BLOCKS_PER_BATCH {
            ledger.append_blocks(&batch, &never)?;
            batch.clear();
        }
    }
    ledger.append_blocks(&batch, &never)?;
    ledger.verify_chain(|_, _| {})?;
    Ok(count)
}
