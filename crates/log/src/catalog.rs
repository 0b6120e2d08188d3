//! The stream catalog file: which streams exist, with their shard count, retention and creation
//! time. A small text file with a CRC32 trailer, replaced atomically on every change.
//!
//! ```text
//! sluice-log-catalog 1
//! stream orders shard_count=4 retention_period_ms=86400000 retention_bytes_per_shard_max=none created_time_ms=1700000000000
//! crc32 1a2b3c4d
//! ```

use std::path::Path;

use crate::{
    disk::Disk,
    error::{LogError, Result},
    files::{read_file_bounded, replace_file_atomically},
    format::FORMAT_VERSION,
    limits::CATALOG_FILE_BYTES_MAX,
    stream::StreamConfig,
};

pub(crate) const CATALOG_FILE_NAME: &str = "catalog";

const CATALOG_MAGIC_WORD: &str = "sluice-log-catalog";

/// One stream as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogEntry {
    pub name: String,
    pub config: StreamConfig,
    pub created_time_ms: u64,
}

pub(crate) fn encode_catalog(entries: &[CatalogEntry]) -> String {
    let mut text = format!("{CATALOG_MAGIC_WORD} {FORMAT_VERSION}\n");
    for entry in entries {
        let bytes_max = entry
            .config
            .retention_bytes_per_shard_max
            .map_or_else(|| "none".to_owned(), |bytes| bytes.to_string());
        text.push_str(&format!(
            "stream {} shard_count={} retention_period_ms={} retention_bytes_per_shard_max={} created_time_ms={}\n",
            entry.name,
            entry.config.shard_count,
            entry.config.retention_period_ms,
            bytes_max,
            entry.created_time_ms
        ));
    }
    let crc = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("crc32 {crc:08x}\n"));
    text
}

pub(crate) fn decode_catalog(path: &Path, bytes: &[u8]) -> Result<Vec<CatalogEntry>> {
    let corrupt = |reason: String| LogError::corruption(path, 0, reason);
    let text =
        std::str::from_utf8(bytes).map_err(|_| corrupt("catalog is not UTF-8".to_owned()))?;
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| corrupt("catalog does not end with a newline".to_owned()))?;
    let (covered, crc_line) = match body.rfind('\n') {
        Some(split) => body.split_at(split + 1),
        None => return Err(corrupt("catalog has no checksum line".to_owned())),
    };
    let stored_crc = crc_line
        .strip_prefix("crc32 ")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt("catalog checksum line is malformed".to_owned()))?;
    if crc32fast::hash(covered.as_bytes()) != stored_crc {
        return Err(corrupt("catalog checksum mismatch".to_owned()));
    }
    let mut lines = covered.lines();
    let first_line = lines.next().unwrap_or_default();
    let version = first_line
        .strip_prefix(CATALOG_MAGIC_WORD)
        .and_then(|rest| rest.trim().parse::<u32>().ok())
        .ok_or_else(|| corrupt("catalog does not start with its magic line".to_owned()))?;
    if version != FORMAT_VERSION {
        return Err(LogError::UnsupportedFormatVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    lines
        .map(|line| {
            decode_stream_line(line).map_err(|reason| corrupt(format!("{reason}: {line:?}")))
        })
        .collect()
}

fn decode_stream_line(line: &str) -> Result<CatalogEntry, &'static str> {
    let mut words = line.split(' ');
    if words.next() != Some("stream") {
        return Err("line does not start with `stream`");
    }
    let name = words.next().ok_or("missing stream name")?.to_owned();
    let mut field = |key: &str| -> Result<&str, &'static str> {
        words
            .next()
            .and_then(|word| word.strip_prefix(key))
            .and_then(|word| word.strip_prefix('='))
            .ok_or("missing or misplaced field")
    };
    let number = |text: &str| text.parse::<u64>().map_err(|_| "field is not a number");
    let shard_count = field("shard_count")?
        .parse::<u32>()
        .map_err(|_| "field is not a number")?;
    let retention_period_ms = number(field("retention_period_ms")?)?;
    let retention_bytes_per_shard_max = match field("retention_bytes_per_shard_max")? {
        "none" => None,
        text => Some(number(text)?),
    };
    let created_time_ms = number(field("created_time_ms")?)?;
    if words.next().is_some() {
        return Err("unexpected trailing fields");
    }
    Ok(CatalogEntry {
        name,
        config: StreamConfig {
            shard_count,
            retention_period_ms,
            retention_bytes_per_shard_max,
        },
        created_time_ms,
    })
}

/// Reads the catalog; a missing file is an empty catalog (a new log).
pub(crate) fn read_catalog(directory: &Path) -> Result<Vec<CatalogEntry>> {
    let path = directory.join(CATALOG_FILE_NAME);
    match read_file_bounded(&path, CATALOG_FILE_BYTES_MAX)? {
        Some(bytes) => decode_catalog(&path, &bytes),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn write_catalog(
    directory: &Path,
    entries: &[CatalogEntry],
    disk: &dyn Disk,
) -> Result<()> {
    replace_file_atomically(
        directory,
        CATALOG_FILE_NAME,
        encode_catalog(entries).as_bytes(),
        disk,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_and_detects_damage() {
        let entries = vec![
            CatalogEntry {
                name: "orders".to_owned(),
                config: StreamConfig::new(4),
                created_time_ms: 17,
            },
            CatalogEntry {
                name: "clicks.v2".to_owned(),
                config: StreamConfig {
                    shard_count: 1,
                    retention_period_ms: 5,
                    retention_bytes_per_shard_max: Some(1 << 20),
                },
                created_time_ms: 18,
            },
        ];
        let text = encode_catalog(&entries);
        let path = Path::new("catalog");
        assert_eq!(decode_catalog(path, text.as_bytes()).unwrap(), entries);
        assert_eq!(
            decode_catalog(path, encode_catalog(&[]).as_bytes()).unwrap(),
            vec![]
        );
        let damaged = text.replace("shard_count=4", "shard_count=5");
        assert!(matches!(
            decode_catalog(path, damaged.as_bytes()),
            Err(LogError::Corruption { .. })
        ));
        assert!(decode_catalog(path, &text.as_bytes()[..text.len() - 3]).is_err());
        assert!(decode_catalog(path, b"").is_err());
    }
}
