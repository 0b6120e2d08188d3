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
/// Buffered values per unit of compression before a merge; more buffer means fewer sorts.
const BUFFER_PER_COMPRESSION: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct TDigest {
    compression: f64,
    /// Merged centroids `(mean, weight)`, sorted by mean.
    centroids: Vec<(f64, f64)>,
    /// Values and centroids not merged yet.
    buffer: Vec<(f64, f64)>,
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
        (self.centroids.capacity() + self.buffer.capacity()) * 16 + 64
    }

    pub fn add(&mut self, value: f64) {
        self.add_weighted(value, 1.0);
    }

    pub(crate) fn add_weighted(&mut self, mean: f64, weight: f64) {
        if !mean.is_finite() || weight <= 0.0 {
            return;
        }
        self.buffer.push((mean, weight));
        self.total_weight += weight;
        self.min = self.min.min(mean);
        self.max = self.max.max(mean);
        if self.buffer.len() >= self.buffer_limit() {
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
        if self.buffer.is_empty() {
            return;
        }
        let mut points = std::mem::take(&mut self.centroids);
        points.append(&mut self.buffer);
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
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
        if self.buffer.is_empty() {
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
