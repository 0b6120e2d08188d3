//! Object names of backups and S3 destinations, in Firehose's default layout:
//! `<prefix>YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>`. The uuid is derived from
//! the batch's first and last log positions, so redelivering the same batch after a crash
//! rewrites the same object instead of adding a second one. Where objects are written (the local
//! directory or S3) is `sluice-objects`'; the names are the same in both.

use sha2::{Digest, Sha256};

use crate::rotation::utc;

/// Firehose puts the delivery stream's version in object names; ours never changes.
const DELIVERY_STREAM_VERSION: u32 = 1;

/// A uuid-shaped name from `parts` (deterministic, see the module comment).
pub fn object_uuid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    )
}

/// The key of an object written at `time_ms` under `prefix`.
pub fn object_key(prefix: &str, stream_name: &str, time_ms: u64, uuid: &str) -> String {
    let t = utc(time_ms);
    let (year, month, day) = (t.year(), u8::from(t.month()), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    format!(
        "{prefix}{year:04}/{month:02}/{day:02}/{hour:02}/{stream_name}-{DELIVERY_STREAM_VERSION}-{year:04}-{month:02}-{day:02}-{hour:02}-{minute:02}-{second:02}-{uuid}"
    )
}
