//! Deterministic log-like documents: document `i` of seed `s` is always the same bytes, so the
//! Sluice run and the tantivy baseline index exactly the same data, and a later run of the
//! benchmark indexes the same data as an earlier one.

/// 2026-01-01T00:00:00Z, where the generated logs start.
const START_EPOCH_MS: i64 = 1_767_225_600_000;
/// Mean spacing of the generated log lines.
const SPACING_MS: i64 = 37;

const SERVICES: &[&str] = &[
    "checkout",
    "payments",
    "search",
    "catalog",
    "auth",
    "gateway",
    "inventory",
    "shipping",
    "recommendations",
    "notifications",
];
const LEVELS: &[&str] = &[
    "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
];
const STATUSES: &[i64] = &[
    200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 404, 500, 503,
];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "failed",
    "retrying",
    "connection",
    "timeout",
    "upstream",
    "cache",
    "miss",
    "hit",
    "user",
    "session",
    "token",
    "expired",
    "refreshed",
    "order",
    "payment",
    "accepted",
    "declined",
    "queue",
    "depth",
    "exceeded",
    "slow",
    "query",
    "database",
    "pool",
    "exhausted",
    "handler",
    "started",
    "finished",
    "shard",
    "replica",
    "leader",
    "elected",
    "checkpoint",
    "written",
    "flushed",
    "segment",
    "merged",
    "worker",
    "idle",
    "busy",
    "backoff",
    "circuit",
    "open",
    "closed",
    "half",
    "rate",
    "limited",
    "quota",
    "warning",
    "latency",
    "high",
    "normal",
    "degraded",
    "recovered",
    "deploy",
    "rollout",
    "canary",
    "healthy",
    "unhealthy",
    "probe",
    "dns",
    "resolved",
    "tls",
    "handshake",
    "certificate",
    "renewed",
    "disk",
    "usage",
    "memory",
    "pressure",
    "gc",
    "pause",
    "thread",
    "blocked",
    "lock",
    "contention",
    "retry",
    "budget",
    "span",
    "trace",
    "sampled",
    "dropped",
    "batch",
    "sent",
    "received",
    "ack",
    "nack",
    "partition",
    "rebalance",
    "consumer",
    "lag",
    "offset",
    "committed",
    "schema",
    "migration",
    "applied",
    "config",
    "reloaded",
];

/// SplitMix64: small, fast and good enough to make varied test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let index = self.below(items.len() as u64) as usize;
        items[index]
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One log line, as typed values; `write_json` renders the source both sides index.
#[derive(Debug, Clone)]
pub struct LogDoc {
    pub timestamp_ms: i64,
    pub host: String,
    pub service: &'static str,
    pub level: &'static str,
    pub message: String,
    pub status: i64,
    pub latency_ms: f64,
    pub bytes: i64,
    pub user_id: String,
    pub region: &'static str,
    pub trace_id: String,
}

impl LogDoc {
    /// Document `index` of the data set made from `seed`.
    pub fn generate(seed: u64, index: u64) -> LogDoc {
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        let timestamp_ms =
            START_EPOCH_MS + index as i64 * SPACING_MS + rng.below(1_000) as i64 - 500;
        let host = format!("web-{:03}", rng.below(200));
        let service = rng.pick(SERVICES);
        let level = rng.pick(LEVELS);
        let n_words = 8 + rng.below(9);
        let mut message = String::with_capacity(120);
        for n in 0..n_words {
            if n > 0 {
                message.push(' ');
            }
            if rng.below(10) == 0 {
                message.push_str(&rng.below(100_000).to_string());
            } else {
                message.push_str(rng.pick(WORDS));
            }
        }
        let status = rng.pick(STATUSES);
        // Long-tailed latencies, rounded to microseconds as a logger would print them.
        let latency_ms = ((-rng.unit().max(1e-9).ln() * 40.0) * 1000.0).round() / 1000.0;
        let bytes = (rng.below(1 << 20) as i64) >> rng.below(12);
        let user_id = format!("u-{:06}", rng.below(500_000));
        let region = rng.pick(REGIONS);
        let trace_id = format!("{:016x}", rng.next_u64());
        LogDoc {
            timestamp_ms,
            host,
            service,
            level,
            message,
            status,
            latency_ms,
            bytes,
            user_id,
            region,
            trace_id,
        }
    }

    /// Appends the JSON source of the document; every generated string is plain ASCII without
    /// quotes or backslashes, so nothing needs escaping.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            r#"{{"@timestamp":"{}","host":"{}","service":"{}","level":"{}","message":"{}","status":{},"latency_ms":{},"bytes":{},"user_id":"{}","region":"{}","trace_id":"{}"}}"#,
            iso_timestamp(self.timestamp_ms),
            self.host,
            self.service,
            self.level,
            self.message,
            self.status,
            self.latency_ms,
            self.bytes,
            self.user_id,
            self.region,
            self.trace_id
        );
    }
}

/// `2026-01-01T00:00:00.000Z` from epoch milliseconds (proleptic Gregorian, UTC).
pub fn iso_timestamp(epoch_ms: i64) -> String {
    let seconds = epoch_ms.div_euclid(1000);
    let millis = epoch_ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_deterministic_valid_json_of_about_300_bytes() {
        let mut total = 0;
        for i in 0..1000 {
            let mut a = Vec::new();
            let mut b = Vec::new();
            LogDoc::generate(7, i).write_json(&mut a);
            LogDoc::generate(7, i).write_json(&mut b);
            assert_eq!(a, b);
            let value: serde_json::Value = serde_json::from_slice(&a).unwrap();
            assert_eq!(value.as_object().unwrap().len(), 11);
            total += a.len();
        }
        let mean = total / 1000;
        assert!((250..=350).contains(&mean), "mean document size {mean}");
    }

    #[test]
    fn timestamps_are_iso_8601() {
        assert_eq!(iso_timestamp(START_EPOCH_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(iso_timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000Z");
    }
}
