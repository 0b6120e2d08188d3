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
/// Buffered values per unit of compression before a merge. Unit values sort in about linear
/// time ([`sort_order_keys`]), so a larger buffer costs no more per value, and every merge
/// re-reads the centroids and evaluates the scale function once per centroid: fewer merges
/// are cheaper, with no loss of accuracy.
const BUFFER_PER_COMPRESSION: usize = 40;

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
fn merge_sorted(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].0.total_cmp(&b[j].0).is_le() {
            merged.push(a[i]);
            i += 1;
        } else {
            merged.push(b[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

/// Below this many keys a comparison sort is as quick as counting digits.
const RADIX_SORT_MIN: usize = 128;
/// The radix sort's digits: two of 11 bits, whose counts (16 KiB) stay in the cache. A third
/// digit measured half again slower than a pass of insertion over the keys it would order.
const DIGITS: usize = 2;
const DIGIT_BITS: u32 = 11;
const RADIX: usize = 1 << DIGIT_BITS;
const DIGIT_MASK: u64 = RADIX as u64 - 1;

/// Sorts `keys` in about linear time. A least-significant-digit radix sort orders them by the
/// top 22 bits of their distance from the least key: one pass counts both digits, each digit
/// then moves the keys once (skipped when every key shares it). Keys that differ only below
/// those bits are then next to each other, and an insertion pass puts them in order; for
/// measurements spread over 20 binades that is values within about 10^-5 of each other. Should that pass
/// move keys far (keys bunched below the sorted bits), a comparison sort finishes instead.
fn sort_order_keys(keys: &mut [u64]) {
    if keys.len() < RADIX_SORT_MIN {
        keys.sort_unstable();
        return;
    }
    let (min, max) = keys.iter().fold((u64::MAX, 0), |(low, high), &key| {
        (low.min(key), high.max(key))
    });
    let range = max - min;
    if range == 0 {
        return;
    }
    let low = (u64::BITS - range.leading_zeros()).saturating_sub(DIGITS as u32 * DIGIT_BITS);
    let mut counts = [[0u32; RADIX]; DIGITS];
    for &key in keys.iter() {
        let digits = (key - min) >> low;
        for (digit, slots) in counts.iter_mut().enumerate() {
            slots[(digits >> (digit as u32 * DIGIT_BITS) & DIGIT_MASK) as usize] += 1;
        }
    }
    let mut scratch = vec![0u64; keys.len()];
    let mut in_keys = true;
    for (digit, slots) in counts.iter_mut().enumerate() {
        if slots.iter().any(|&count| count as usize == keys.len()) {
            continue;
        }
        let mut start = 0;
        for slot in slots.iter_mut() {
            (*slot, start) = (start, start + *slot);
        }
        let shift = low + digit as u32 * DIGIT_BITS;
        let (from, to): (&[u64], &mut [u64]) = if in_keys {
            (&*keys, &mut scratch[..])
        } else {
            (&scratch[..], &mut *keys)
        };
        for &key in from {
            let slot = &mut slots[((key - min) >> shift & DIGIT_MASK) as usize];
            to[*slot as usize] = key;
            *slot += 1;
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(&scratch);
    }
    if low > 0 {
        let mut moves_left = keys.len() * 4;
        for i in 1..keys.len() {
            let key = keys[i];
            let mut j = i;
            while j > 0 && keys[j - 1] > key {
                keys[j] = keys[j - 1];
                j -= 1;
            }
            keys[j] = key;
            moves_left = moves_left.saturating_sub(i - j);
            if moves_left == 0 {
                keys.sort_unstable();
                return;
            }
        }
    }
}

/// Centroids built from points fed in order of mean: each takes points while its weight stays
/// within what the scale function allows at its place, then closes.
struct Builder<'d> {
    digest: &'d TDigest,
    centroids: Vec<(f64, f64)>,
    /// Weight of the closed centroids.
    weight_before: f64,
    /// Weight the open centroid may reach.
    room: f64,
    /// The open centroid: its first point's mean, the sum of each point's distance from that
    /// mean times its weight (so a run of equal values keeps their exact mean, and no division
    /// sits in the loop), and its weight.
    first: f64,
    offsets: f64,
    weight: f64,
    /// Cosine and sine of the step of one unit of k in the scale function's angle, when it is
    /// under a right angle: they turn the next centroid's bound into a square root.
    step: Option<(f64, f64)>,
}

impl<'d> Builder<'d> {
    fn new(digest: &'d TDigest) -> Builder<'d> {
        let mut builder = Builder {
            digest,
            centroids: Vec::with_capacity(digest.compression as usize * 2),
            weight_before: 0.0,
            room: 0.0,
            first: 0.0,
            offsets: 0.0,
            weight: 0.0,
            step: None,
        };
        let step = 2.0 * PI / digest.compression;
        builder.step = (step < PI / 2.0).then(|| (step.cos(), step.sin()));
        builder.room = builder.room_after(0.0);
        builder
    }

    /// How much weight the centroid after `weight_before` may take: the quantile one unit
    /// of k further, `k_inverse(k(q) + 1)`. With angle `a = asin(2q - 1)` that is
    /// `(sin(a + step) + 1) / 2`, and `sin(a + step)` expands to
    /// `(2q - 1)·cos(step) + sqrt(1 - (2q - 1)²)·sin(step)`, reaching 1 once `a + step` passes a
    /// right angle.
    fn room_after(&self, weight_before: f64) -> f64 {
        let (digest, total) = (self.digest, self.digest.total_weight);
        let q = weight_before / total;
        let next = match self.step {
            Some((cos, sin)) => {
                let s = (2.0 * q - 1.0).clamp(-1.0, 1.0);
                if s >= cos {
                    1.0
                } else {
                    (s * cos + (1.0 - s * s).sqrt() * sin + 1.0) / 2.0
                }
            }
            None => digest.k_inverse(digest.k(q) + 1.0),
        };
        total * next - weight_before
    }

    #[inline]
    fn push(&mut self, mean: f64, weight: f64) {
        if self.weight + weight <= self.room || self.weight == 0.0 {
            if self.weight == 0.0 {
                self.first = mean;
            }
            self.offsets += (mean - self.first) * weight;
            self.weight += weight;
        } else {
            self.close();
            self.first = mean;
            self.offsets = 0.0;
            self.weight = weight;
        }
    }

    #[inline(always)]
    fn close(&mut self) {
        self.centroids
            .push((self.first + self.offsets / self.weight, self.weight));
        self.weight_before += self.weight;
        self.room = self.room_after(self.weight_before);
    }

    fn finish(mut self) -> Vec<(f64, f64)> {
        if self.weight > 0.0 {
            self.close();
        }
        self.centroids
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

    #[cfg(test)]
    pub fn add(&mut self, value: f64) {
        self.add_values(&[value]);
    }

    /// Adds each finite value of `values` with weight one. Their minimum and maximum are
    /// taken when they are merged, from the sorted buffer.
    pub fn add_values(&mut self, values: &[f64]) {
        for chunk in values.chunks(self.buffer_limit()) {
            let before = self.values.len();
            self.values.extend(
                chunk
                    .iter()
                    .filter(|value| value.is_finite())
                    .map(|&value| order_key(value)),
            );
            self.total_weight += (self.values.len() - before) as f64;
            if self.values.len() + self.buffer.len() >= self.buffer_limit() {
                self.compress();
            }
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
        // are sorted already; the weighted points sort by mean and join them; the unit values
        // sort as integers and are fed in between.
        self.buffer.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let weighted = merge_sorted(&self.centroids, &self.buffer);
        let mut values = std::mem::take(&mut self.values);
        sort_order_keys(&mut values);
        if let (Some(&low), Some(&high)) = (values.first(), values.last()) {
            self.min = self.min.min(from_order_key(low));
            self.max = self.max.max(from_order_key(high));
        }
        let mut builder = Builder::new(self);
        let mut weighted = weighted.into_iter().peekable();
        // Finite means have order keys below u64::MAX.
        let key_of = |point: Option<&(f64, f64)>| point.map_or(u64::MAX, |p| order_key(p.0));
        let mut next_key = key_of(weighted.peek());
        for &key in &values {
            while next_key <= key {
                let Some((mean, weight)) = weighted.next() else {
                    break;
                };
                builder.push(mean, weight);
                next_key = key_of(weighted.peek());
            }
            builder.push(from_order_key(key), 1.0);
        }
        for (mean, weight) in weighted {
            builder.push(mean, weight);
        }
        self.centroids = builder.finish();
        self.buffer.clear();
        values.clear();
        self.values = values;
    }

    /// This digest with its buffers merged.
    fn merged(&self) -> std::borrow::Cow<'_, TDigest> {
        if self.buffer.is_empty() && self.values.is_empty() {
            std::borrow::Cow::Borrowed(self)
        } else {
            let mut copy = self.clone();
            copy.compress();
            std::borrow::Cow::Owned(copy)
        }
    }

    /// The value below which a fraction `q` (0..=1) of the values lie; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total_weight <= 0.0 {
            return None;
        }
        let digest = self.merged();
        let (centroids, min, max) = (&digest.centroids, digest.min, digest.max);
        let q = q.clamp(0.0, 1.0);
        let (&(first_mean, first_weight), &(last_mean, last_weight)) =
            (centroids.first()?, centroids.last()?);
        if centroids.len() == 1 || q == 0.0 {
            return Some(if q == 0.0 { min } else { first_mean });
        }
        if q == 1.0 {
            return Some(max);
        }
        let index = q * self.total_weight;
        // Centroid centres are at cumulative weight before + weight / 2.
        if index < first_weight / 2.0 {
            if first_weight <= 1.0 {
                return Some(first_mean);
            }
            return Some(
                min + (first_mean - min) * index / (first_weight / 2.0).max(f64::MIN_POSITIVE),
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
        Some(max - (max - last_mean) * remaining.clamp(0.0, 1.0))
    }

    /// The fraction (0..=1) of values at or below `value`; `None` when empty.
    pub fn cdf(&self, value: f64) -> Option<f64> {
        if self.total_weight <= 0.0 {
            return None;
        }
        let digest = self.merged();
        let (centroids, min, max) = (&digest.centroids, digest.min, digest.max);
        if value < min {
            return Some(0.0);
        }
        if value >= max {
            return Some(1.0);
        }
        let total = self.total_weight;
        if centroids.len() == 1 {
            let width = max - min;
            return Some(if width <= 0.0 {
                1.0
            } else {
                (value - min) / width
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
            let span = first_mean - min;
            let fraction = if span > 0.0 {
                (value - min) / span
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
        let span = max - last_mean;
        let fraction = if span > 0.0 {
            (value - last_mean) / span
        } else {
            1.0
        };
        Some(((weight_so_far + last_weight / 2.0 * fraction) / total).min(1.0))
    }

    /// The centroids, merged: what `median_absolute_deviation` walks.
    pub fn centroids(&self) -> Vec<(f64, f64)> {
        self.merged().centroids.clone()
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
    fn order_keys_sort_by_radix_as_by_comparison() {
        // Spread out, measured, bunched below the sorted bits, few distinct, too few to count.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let spread: Vec<u64> = (0..5_000).map(|_| order_key(next() as f64 / 7.0)).collect();
        let mut bunched: Vec<u64> = (0..5_000)
            .map(|_| order_key(1.0 + (next() % 100) as f64 * 1e-12))
            .collect();
        bunched.push(order_key(1e9));
        // Exponential, with zeros: a few busy binades among a thousand empty ones.
        let measured: Vec<u64> = (0..5_000)
            .map(|_| {
                let unit = (next() % 1_000_000) as f64 / 1e6;
                order_key((-(unit.max(1e-9)).ln() * 40.0 * 1000.0).round() / 1000.0)
            })
            .collect();
        let few: Vec<u64> = (0..5_000)
            .map(|_| order_key((next() % 3) as f64 - 1.0))
            .collect();
        let small: Vec<u64> = (0..100).map(|_| next()).collect();
        for keys in [
            spread,
            measured,
            bunched,
            few,
            small,
            vec![7; 300],
            Vec::new(),
        ] {
            let mut expected = keys.clone();
            expected.sort_unstable();
            let mut sorted = keys;
            sort_order_keys(&mut sorted);
            assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn centroid_bounds_without_trigonometry_match_the_scale_function() {
        for compression in [1.0, 3.0, 5.0, 100.0, 1000.0] {
            let mut digest = TDigest::new(compression);
            digest.total_weight = 1000.0;
            let builder = Builder::new(&digest);
            for before in 0..=1000 {
                let before = f64::from(before);
                let expected = 1000.0 * digest.k_inverse(digest.k(before / 1000.0) + 1.0) - before;
                let room = builder.room_after(before);
                assert!(
                    (room - expected).abs() < 1e-9,
                    "compression {compression}, {before} before: {room} vs {expected}"
                );
            }
        }
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
