//! The `cardinality` sketch: HyperLogLog++ as Elasticsearch uses it — an exact set of hashes
//! below `precision_threshold` (the "sparse" phase), then a HyperLogLog of 2^p one-byte registers
//! with linear counting for small estimates. Sketches of segments and indices merge exactly
//! (set union, register maximum), so counts over index patterns are those of one sketch.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher of the exact phase's set: its keys are hashes already ([`mix64`] or
/// [`hash_bytes`]), so they are their own hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in anyway.
        for &byte in bytes {
            self.0 = (self.0 << 8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type HashSetOfHashes = HashSet<u64, BuildHasherDefault<Prehashed>>;

/// Elasticsearch's default `precision_threshold`.
pub const PRECISION_THRESHOLD_DEFAULT: u64 = 3000;
/// Largest `precision_threshold` (Elasticsearch's): beyond it values are clamped.
pub const PRECISION_THRESHOLD_MAX: u64 = 40_000;
/// Register bits bounds (Elasticsearch's `MIN_PRECISION`, `MAX_PRECISION`); 18 bits is 256 KiB.
const PRECISION_MIN: u32 = 4;
const PRECISION_MAX: u32 = 18;

#[derive(Debug, Clone, PartialEq)]
pub struct Cardinality {
    precision: u32,
    threshold: usize,
    state: State,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Exact(HashSetOfHashes),
    Registers(Vec<u8>),
}

/// Elasticsearch's precision for a threshold: enough registers that the hash table of the
/// exact phase would take as many bytes.
fn precision_for(threshold: u64) -> u32 {
    let entries = (threshold as f64 / 0.75).ceil() as u64;
    let bytes = entries.saturating_mul(4).max(2);
    (64 - (bytes - 1).leading_zeros()).clamp(PRECISION_MIN, PRECISION_MAX)
}

impl Cardinality {
    pub fn new(precision_threshold: u64) -> Cardinality {
        let threshold = precision_threshold.min(PRECISION_THRESHOLD_MAX);
        Cardinality {
            precision: precision_for(threshold),
            threshold: threshold as usize,
            state: State::Exact(HashSetOfHashes::default()),
        }
    }

    /// Bytes this sketch holds, for the request's memory limit.
    pub fn memory_bytes(&self) -> usize {
        match &self.state {
            State::Exact(set) => set.capacity() * 9 + 64,
            State::Registers(registers) => registers.len() + 64,
        }
    }

    pub fn add_hash(&mut self, hash: u64) {
        match &mut self.state {
            State::Exact(set) => {
                set.insert(hash);
                if set.len() > self.threshold {
                    self.switch_to_registers();
                }
            }
            State::Registers(registers) => add_to_registers(registers, self.precision, hash),
        }
    }

    fn switch_to_registers(&mut self) {
        if let State::Exact(set) = &self.state {
            let mut registers = vec![0u8; 1 << self.precision];
            for &hash in set {
                add_to_registers(&mut registers, self.precision, hash);
            }
            self.state = State::Registers(registers);
        }
    }

    pub fn merge(&mut self, other: &Cardinality) {
        // Sketches of one request share a threshold; if not, the coarser precision wins.
        if other.precision < self.precision {
            let mut coarser = other.clone();
            coarser.merge(self);
            *self = coarser;
            return;
        }
        match &other.state {
            State::Exact(set) => {
                for &hash in set {
                    self.add_hash(hash);
                }
            }
            State::Registers(theirs) => {
                self.switch_to_registers();
                let shift = other.precision - self.precision;
                if let State::Registers(ours) = &mut self.state {
                    if shift == 0 {
                        for (mine, their) in ours.iter_mut().zip(theirs) {
                            *mine = (*mine).max(*their);
                        }
                    } else {
                        // Fold the finer sketch: its index's high bits become our rank bits.
                        for (index, &rank) in theirs.iter().enumerate() {
                            if rank == 0 {
                                continue;
                            }
                            let ours_index = index >> shift;
                            let low = (index & ((1 << shift) - 1)) as u64;
                            let extra = if low == 0 {
                                shift as u8 + rank
                            } else {
                                (shift - (64 - low.leading_zeros())) as u8 + 1
                            };
                            if let Some(slot) = ours.get_mut(ours_index) {
                                *slot = (*slot).max(extra);
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn estimate(&self) -> u64 {
        match &self.state {
            State::Exact(set) => set.len() as u64,
            State::Registers(registers) => {
                let m = registers.len() as f64;
                let alpha = match registers.len() {
                    16 => 0.673,
                    32 => 0.697,
                    64 => 0.709,
                    _ => 0.7213 / (1.0 + 1.079 / m),
                };
                let sum: f64 = registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
                let raw = alpha * m * m / sum;
                let zeros = registers.iter().filter(|&&r| r == 0).count();
                let estimate = if raw <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                estimate.round() as u64
            }
        }
    }
}

fn add_to_registers(registers: &mut [u8], precision: u32, hash: u64) {
    let index = (hash >> (64 - precision)) as usize;
    let rest = (hash << precision) | (1 << (precision - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if let Some(slot) = registers.get_mut(index) {
        *slot = (*slot).max(rank);
    }
}

/// MurmurHash3's 64-bit finaliser: spreads the bits of a value over the whole hash.
pub fn mix64(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^ (value >> 33)
}

/// The hash of a string value: FNV-1a over the bytes, then the finaliser.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_the_threshold() {
        let mut sketch = Cardinality::new(PRECISION_THRESHOLD_DEFAULT);
        for i in 0..2000u64 {
            sketch.add_hash(mix64(i % 1500));
        }
        assert_eq!(sketch.estimate(), 1500);
        assert_eq!(precision_for(3000), 14);
    }

    #[test]
    fn estimates_and_merges_within_a_few_percent() {
        let mut a = Cardinality::new(100);
        let mut b = Cardinality::new(100);
        for i in 0..50_000u64 {
            a.add_hash(hash_bytes(format!("v{i}").as_bytes()));
            b.add_hash(hash_bytes(format!("v{}", i + 25_000).as_bytes()));
        }
        a.merge(&b);
        let estimate = a.estimate() as f64;
        assert!((estimate - 75_000.0).abs() < 75_000.0 * 0.1, "{estimate}");
        let mut coarse = Cardinality::new(10);
        coarse.merge(&a);
        let folded = coarse.estimate() as f64;
        assert!((folded - 75_000.0).abs() < 75_000.0 * 0.3, "{folded}");
    }
}
