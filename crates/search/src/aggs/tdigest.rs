//! A merging t-digest (Dunning's): the sketch behind `percentiles`, `percentile_ranks` and
//! `median_absolute_deviation`, as in Elasticsearch.
//!
//! Values are buffered, then sorted and merged into centroids whose size is bounded by the `k1`
//! scale function, so that centroids near the tails stay small (accurate extreme percentiles) and
//! the number of centroids stays about `compression`. Digests of segments and indices merge by
//! feeding one's centroids into the other, which is what makes results over index patterns exact
//! up to the digest's documented error. With fewer values than about `compression` every value
//! stays its own centroid and quantiles are interpolated between the values, as Elasticsearch's.

use std::f64::consts::PI;

/// Elasticsearch's default `compression`.
pub const COMPRESSION_DEFAULT: f64 = 100.0;
/// Largest `compression` accepted: memory grows linearly with it (a centroid is 16 bytes).
pub const COMPRESSION_MAX: f64 = 10_000.0;
/// Buffered values per unit of compression before a merge; more buffer means fewer merges
/// (each recomputes the scale function per centroid) and no loss of accuracy.
const BUFFER_PER_COMPRESSION: usize = 10;

/// An integer that orders as the finite double `value` does (`f64::total_cmp`).
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

/// The points of two runs sorted by mean, in one run sorted by mean.
fn merge_sorted(
    len: usize,
    a: impl Iterator<Item = (f64, f64)>,
    b: impl Iterator<Item = (f64, f64)>,
) -> Vec<(f64, f64)> {
    let mut merged = Vec::with_capacity(len);
    let (mut a, mut b) = (a.peekable(), b.peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0.total_cmp(&y.0).is_le() => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => return merged,
        };
        merged.extend(next);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TDigest {
    compression: f64,
    /// Merged centroids `(mean, weight)`, sorted by mean.
    centroids: Vec<(f64, f64)>,
    /// Weighted points (another digest's centroids) not merged yet.
    buffer: Vec<(f64, f64)>,
    /// Values of weight one not merged yet, as [`order_key`]s: they sort as integers.
    values: Vec<u64>,
    total_weight: f64,
    min: f64,
    max: f64,
}

impl TDigest {
    pub fn new(compression: f64) -> TDigest {
        TDigest {
            compression: compression.clamp(1.0, COMPRESSION_MAX),
            centroids: Vec::new(),
            buffer: Vec::new(),
            values: Vec::new(),
            total_weight: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> f64 {
        self.total_weight
    }

    /// Bytes this digest holds, for the request's memory limit.
    pub fn memory_bytes(&self) -> usize {
        (self.centroids.capacity() + self.buffer.capacity()) * 16 + self.values.capacity() * 8 + 64
    }

    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.values.push(order_key(value));
        self.total_weight += 1.0;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if self.values.len() + self.buffer.len() >= self.buffer_limit() {
            self.compress();
        }
    }

    pub(crate) fn add_weighted(&mut self, mean: f64, weight: f64) {
        if !mean.is_finite() || weight <= 0.0 {
            return;
        }
        self.buffer.push((mean, weight));
        self.total_weight += weight;
        self.min = self.min.min(mean);
        self.max = self.max.max(mean);
        if self.values.len() + self.buffer.len() >= self.buffer_limit() {
            self.compress();
        }
    }

    fn buffer_limit(&self) -> usize {
        (self.compression as usize).max(16) * BUFFER_PER_COMPRESSION
    }

    pub fn merge(&mut self, other: &TDigest) {
        for &(mean, weight) in other.centroids.iter().chain(other.buffer.iter()) {
            self.add_weighted(mean, weight);
        }
        for &key in &other.values {
            self.add_weighted(from_order_key(key), 1.0);
        }
        if other.total_weight > 0.0 {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
    }

    /// The scale function k1: centroids may span one unit of k.
    fn k(&self, q: f64) -> f64 {
        self.compression / (2.0 * PI) * (2.0 * q - 1.0).clamp(-1.0, 1.0).asin()
    }

    fn k_inverse(&self, k: f64) -> f64 {
        let x = (k * 2.0 * PI / self.compression).clamp(-PI / 2.0, PI / 2.0);
        (x.sin() + 1.0) / 2.0
    }

    /// Merges the buffer into the centroids.
    pub fn compress(&mut self) {
        if self.buffer.is_empty() && self.values.is_empty() {
            return;
        }
        // Points of equal means merge alike in any order: unstable sorts do. The centroids
        // are sorted already; the unit values sort as integers; three sorted runs merge.
        self.buffer.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        self.values.sort_unstable();
        let centroids = std::mem::take(&mut self.centroids);
        let weighted = merge_sorted(
            centroids.len() + self.buffer.len(),
            centroids.into_iter(),
            self.buffer.drain(..),
        );
        let points = merge_sorted(
            weighted.len() + self.values.len(),
            weighted.into_iter(),
            self.values.drain(..).map(|key| (from_order_key(key), 1.0)),
        );
        let total = self.total_weight;
        let mut merged: Vec<(f64, f64)> = Vec::with_capacity(self.compression as usize * 2);
        let mut weight_before = 0.0;
        let mut limit = total * self.k_inverse(self.k(0.0) + 1.0);
        let mut current: Option<(f64, f64)> = None;
        for (mean, weight) in points {
            match current.as_mut() {
                Some((current_mean, current_weight))
                    if weight_before + *current_weight + weight <= limit =>
                {
                    *current_weight += weight;
                    *current_mean += (mean - *current_mean) * weight / *current_weight;
                }
                Some(done) => {
                    let done = *done;
                    weight_before += done.1;
                    merged.push(done);
                    limit = total * self.k_inverse(self.k(weight_before / total) + 1.0);
                    current = Some((mean, weight));
                }
                None => current = Some((mean, weight)),
            }
        }
        if let Some(done) = current {
            merged.push(done);
        }
        self.centroids = merged;
    }

    fn sorted(&self) -> std::borrow::Cow<'_, [(f64, f64)]> {
        if self.buffer.is_empty() && self.values.is_empty() {
            std::borrow::Cow::Borrowed(&self.centroids)
        } else {
            let mut copy = self.clone();
            copy.compress();
            std::borrow::Cow::Owned(copy.centroids)
        }
    }

    /// The value below which a fraction `q` (0..=1) of the values lie; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total_weight <= 0.0 {
            return None;
        }
        let centroids = self.sorted();
        let q = q.clamp(0.0, 1.0);
        let (&(first_mean, first_weight), &(last_mean, last_weight)) =
            (centroids.first()?, centroids.last()?);
        if centroids.len() == 1 || q == 0.0 {
            return Some(if q == 0.0 { self.min } else { first_mean });
        }
        if q == 1.0 {
            return Some(self.max);
        }
        let index = q * self.total_weight;
        // Centroid centres are at cumulative weight before + weight / 2.
        if index < first_weight / 2.0 {
            if first_weight <= 1.0 {
                return Some(first_mean);
            }
            return Some(
                self.min
                    + (first_mean - self.min) * index / (first_weight / 2.0).max(f64::MIN_POSITIVE),
            );
        }
        let mut weight_so_far = first_weight / 2.0;
        for pair in centroids.windows(2) {
            let [(left_mean, left_weight), (right_mean, right_weight)] = pair else {
                continue;
            };
            let gap = (left_weight + right_weight) / 2.0;
            if weight_so_far + gap > index {
                let fraction = (index - weight_so_far) / gap;
                return Some(left_mean + (right_mean - left_mean) * fraction);
            }
            weight_so_far += gap;
        }
        if last_weight <= 1.0 {
            return Some(last_mean);
        }
        let remaining = (self.total_weight - index) / (last_weight / 2.0);
        Some(self.max - (self.max - last_mean) * remaining.clamp(0.0, 1.0))
    }

    /// The fraction (0..=1) of values at or below `value`; `None` when empty.
    pub fn cdf(&self, value: f64) -> Option<f64> {
        if self.total_weight <= 0.0 {
            return None;
        }
        if value < self.min {
            return Some(0.0);
        }
        if value >= self.max {
            return Some(1.0);
        }
        let centroids = self.sorted();
        let total = self.total_weight;
        if centroids.len() == 1 {
            let width = self.max - self.min;
            return Some(if width <= 0.0 {
                1.0
            } else {
                (value - self.min) / width
            });
        }
        // Exact for singletons: the weight of every centroid at or below `value`.
        if centroids.iter().all(|&(_, weight)| weight <= 1.0) {
            let below = centroids
                .iter()
                .take_while(|&&(mean, _)| mean <= value)
                .count();
            return Some(below as f64 / total);
        }
        let (&(first_mean, first_weight), &(last_mean, last_weight)) =
            (centroids.first()?, centroids.last()?);
        if value < first_mean {
            let span = first_mean - self.min;
            let fraction = if span > 0.0 {
                (value - self.min) / span
            } else {
                1.0
            };
            return Some(first_weight / 2.0 * fraction / total);
        }
        let mut weight_so_far = first_weight / 2.0;
        for pair in centroids.windows(2) {
            let [(left_mean, left_weight), (right_mean, right_weight)] = pair else {
                continue;
            };
            let gap = (left_weight + right_weight) / 2.0;
            if value < *right_mean {
                let span = right_mean - left_mean;
                let fraction = if span > 0.0 {
                    (value - left_mean) / span
                } else {
                    1.0
                };
                return Some((weight_so_far + gap * fraction) / total);
            }
            weight_so_far += gap;
        }
        let span = self.max - last_mean;
        let fraction = if span > 0.0 {
            (value - last_mean) / span
        } else {
            1.0
        };
        Some(((weight_so_far + last_weight / 2.0 * fraction) / total).min(1.0))
    }

    /// The centroids, merged: what `median_absolute_deviation` walks.
    pub fn centroids(&self) -> Vec<(f64, f64)> {
        self.sorted().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_as_the_doubles_and_round_trip() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -1e300,
            1e-300,
            -1e-300,
            42.0,
            -7.25,
            f64::MAX,
            f64::MIN,
        ];
        let mut keys: Vec<u64> = values.iter().map(|&v| order_key(v)).collect();
        keys.sort_unstable();
        values.sort_by(f64::total_cmp);
        let back: Vec<f64> = keys.into_iter().map(from_order_key).collect();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn unit_values_and_merged_digests_mix() {
        // One digest fed values, another fed the same values through two digests merged:
        // both know every value, and their medians agree closely.
        let values: Vec<f64> = (0..20_000).map(|k| ((k * 7919) % 20_000) as f64).collect();
        let mut whole = TDigest::new(COMPRESSION_DEFAULT);
        let (mut left, mut right) = (
            TDigest::new(COMPRESSION_DEFAULT),
            TDigest::new(COMPRESSION_DEFAULT),
        );
        for (k, &value) in values.iter().enumerate() {
            whole.add(value);
            if k % 2 == 0 {
                left.add(value)
            } else {
                right.add(value)
            }
        }
        left.merge(&right);
        assert_eq!(whole.count(), 20_000.0);
        assert_eq!(left.count(), 20_000.0);
        for digest in [&whole, &left] {
            let median = digest.quantile(0.5).unwrap();
            assert!((median - 10_000.0).abs() < 100.0, "median {median}");
            assert_eq!(digest.quantile(0.0), Some(0.0));
            assert_eq!(digest.quantile(1.0), Some(19_999.0));
        }
    }

    #[test]
    fn small_sets_interpolate_between_values() {
        let mut digest = TDigest::new(COMPRESSION_DEFAULT);
        for v in [1.0, 2.0, 3.0, 4.0] {
            digest.add(v);
        }
        assert_eq!(digest.quantile(0.5), Some(2.5));
        assert_eq!(digest.quantile(0.0), Some(1.0));
        assert_eq!(digest.quantile(1.0), Some(4.0));
        assert_eq!(digest.cdf(2.0), Some(0.5));
        assert_eq!(TDigest::new(100.0).quantile(0.5), None);
    }

    #[test]
    fn large_sets_stay_within_the_documented_error() {
        let mut digest = TDigest::new(COMPRESSION_DEFAULT);
        let mut other = TDigest::new(COMPRESSION_DEFAULT);
        let n = 100_000;
        for i in 0..n {
            // A scrambled order, so merging is exercised.
            let v = ((i * 7919) % n) as f64;
            if i % 2 == 0 {
                digest.add(v);
            } else {
                other.add(v);
            }
        }
        digest.merge(&other);
        assert_eq!(digest.count(), n as f64);
        for q in [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99] {
            let estimate = digest.quantile(q).unwrap();
            let exact = q * n as f64;
            assert!(
                (estimate - exact).abs() <= n as f64 * 0.01,
                "q {q}: {estimate} vs {exact}"
            );
            let rank = digest.cdf(exact).unwrap();
            assert!((rank - q).abs() <= 0.01, "cdf at {exact}: {rank}");
        }
        assert!(digest.centroids().len() <= 2 * COMPRESSION_DEFAULT as usize);
    }
}
