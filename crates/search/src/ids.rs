//! Generated identifiers: document ids for `POST /index/_doc` and index uuids, in the 20- and
//! 22-character URL-safe Base64 shapes Elasticsearch uses.
//!
//! Ids are a millisecond timestamp, a process-wide counter and random bytes read once from the
//! operating system, so they are unique within a process and, with overwhelming probability,
//! across processes.

use std::io::Read;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn seed() -> [u8; 16] {
    static SEED: OnceLock<[u8; 16]> = OnceLock::new();
    *SEED.get_or_init(|| {
        let mut bytes = [0u8; 16];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if read.is_err() {
            // Without a random source, fall back on the std hasher's per-process random keys.
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(now_nanos());
            bytes[..8].copy_from_slice(&hasher.finish().to_le_bytes());
            bytes[8..].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        }
        bytes
    })
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// A new 20-character document id.
pub fn new_document_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = (now_nanos() / 1_000_000) as u64;
    let seed = seed();
    let mut bytes = [0u8; 15];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..9].copy_from_slice(&(count as u32).to_be_bytes()[1..]);
    bytes[9..].copy_from_slice(&seed[..6]);
    // Mix the high bits of the counter into the random part so ids never repeat in a process.
    for (byte, extra) in bytes[9..].iter_mut().zip((count >> 24).to_le_bytes()) {
        *byte ^= extra;
    }
    encode(&bytes)
}

/// A new 22-character uuid for an index.
pub fn new_uuid() -> String {
    let seed = seed();
    let nanos = now_nanos().to_le_bytes();
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = seed[i] ^ nanos[i].rotate_left(i as u32);
    }
    encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_uniqueness() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_document_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 20));
        assert_eq!(new_uuid().len(), 22);
        assert_eq!(encode(b"Man"), "TWFu");
    }
}
