//! Request and byte rates per identity (a user, an API key, an access key), so that one tenant
//! cannot starve the others: beyond its rate an identity's requests are answered 429 (or AWS's
//! `ThrottlingException`) with how long to wait, until its buckets refill. The connection and
//! buffer bounds of the HTTP server stay underneath, for everyone together.
//!
//! Each identity has two token buckets, requests and body bytes, each holding one second of its
//! rate and refilled continuously. A request is admitted when both hold its cost (one request,
//! its body's bytes), or a full second's worth when the cost is more, and takes its whole cost
//! (a body larger than a second's bytes goes through once the bucket is full, then the identity
//! waits it off), so the long-run rate is the configured one. Configured in the
//! `--config` file as `identity_rates`:
//! `{"default": {"requests_per_second": 500, "bytes_per_second": 52428800},
//!   "identities": {"bob": {"requests_per_second": 10}}}`; an absent rate is unlimited, and with
//! no `identity_rates` nothing is limited.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Identities tracked at once; when full, the table starts over (a burst more for everyone,
/// never a refusal for anyone).
pub const IDENTITIES_TRACKED_MAX: usize = 100_000;

/// An identity's rates; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    #[serde(default)]
    pub bytes_per_second: Option<f64>,
}

/// The `identity_rates` of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesConfig {
    /// Every identity's rate unless it has its own.
    #[serde(default)]
    pub default: Rate,
    /// Rates by user name, API key id or access key id.
    #[serde(default)]
    pub identities: BTreeMap<String, Rate>,
}

impl RatesConfig {
    /// Refuses rates that are not positive numbers.
    pub fn validate(&self) -> Result<(), String> {
        let rates = std::iter::once(("default", &self.default)).chain(
            self.identities
                .iter()
                .map(|(name, rate)| (name.as_str(), rate)),
        );
        for (name, rate) in rates {
            for value in [rate.requests_per_second, rate.bytes_per_second]
                .into_iter()
                .flatten()
            {
                if !(value.is_finite() && value > 0.0) {
                    return Err(format!(
                        "identity_rates [{name}]: a rate must be a positive number, not {value}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills at `rate` a second up to one second's worth.
    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
    }

    /// How long until the bucket holds `cost` tokens, or a full second's when the cost is
    /// more (zero: it does now).
    fn wait(&self, rate: f64, cost: f64) -> Duration {
        let needed = cost.min(rate);
        if self.tokens >= needed {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((needed - self.tokens) / rate)
        }
    }
}

/// The buckets of every identity seen.
#[derive(Debug, Default)]
pub struct Rates {
    config: RatesConfig,
    buckets: Mutex<HashMap<String, [Option<Bucket>; 2]>>,
}

impl Rates {
    pub fn new(config: RatesConfig) -> Rates {
        Rates {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rate_of(&self, identity: &str) -> Rate {
        self.config
            .identities
            .get(identity)
            .copied()
            .unwrap_or(self.config.default)
    }

    /// Admits a request of `identity` with a body of `bytes` now, or says how long to wait.
    pub fn admit(&self, identity: &str, bytes: usize) -> Result<(), Duration> {
        self.admit_at(identity, bytes, Instant::now())
    }

    fn admit_at(&self, identity: &str, bytes: usize, now: Instant) -> Result<(), Duration> {
        let rate = self.rate_of(identity);
        let limits = [rate.requests_per_second, rate.bytes_per_second];
        if limits.iter().all(Option::is_none) {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= IDENTITIES_TRACKED_MAX && !buckets.contains_key(identity) {
            buckets.clear();
        }
        let held = buckets.entry(identity.to_owned()).or_default();
        #[allow(clippy::cast_precision_loss)]
        let costs = [1.0, bytes as f64];
        let mut wait = Duration::ZERO;
        for ((bucket, limit), cost) in held.iter_mut().zip(limits).zip(costs) {
            let Some(limit) = limit else { continue };
            let bucket = bucket.get_or_insert(Bucket {
                tokens: limit,
                at: now,
            });
            bucket.refill(limit, now);
            wait = wait.max(bucket.wait(limit, cost));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (bucket, cost) in held.iter_mut().zip(costs) {
            if let Some(bucket) = bucket {
                bucket.tokens -= cost;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(default: Rate, bob: Rate) -> Rates {
        Rates::new(RatesConfig {
            default,
            identities: [("bob".to_owned(), bob)].into_iter().collect(),
        })
    }

    #[test]
    fn requests_beyond_the_rate_wait_until_the_bucket_refills() {
        let limited = rates(
            Rate::default(),
            Rate {
                requests_per_second: Some(2.0),
                bytes_per_second: None,
            },
        );
        let start = Instant::now();
        assert!(limited.admit_at("bob", 0, start).is_ok());
        assert!(limited.admit_at("bob", 0, start).is_ok());
        let wait = limited.admit_at("bob", 0, start).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(501),
            "{wait:?}"
        );
        // Others are not held up by bob, and the default is unlimited.
        for _ in 0..100 {
            assert!(limited.admit_at("alice", 1 << 20, start).is_ok());
        }
        assert!(
            limited
                .admit_at("bob", 0, start + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            limited
                .admit_at("bob", 0, start + Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn a_large_body_goes_through_then_is_waited_off() {
        let limited = rates(
            Rate {
                requests_per_second: None,
                bytes_per_second: Some(1000.0),
            },
            Rate::default(),
        );
        let start = Instant::now();
        assert!(limited.admit_at("carol", 5000, start).is_ok());
        let wait = limited.admit_at("carol", 1, start).unwrap_err();
        assert!(wait >= Duration::from_secs(3), "{wait:?}");
        assert!(
            limited
                .admit_at("carol", 1, start + Duration::from_millis(4100))
                .is_ok()
        );
        // bob's own (unlimited) rate overrides the default.
        assert!(limited.admit_at("bob", 1 << 30, start).is_ok());
        assert!(limited.admit_at("bob", 1 << 30, start).is_ok());
    }

    #[test]
    fn rates_must_be_positive() {
        let config: RatesConfig =
            serde_json::from_str(r#"{"default": {"requests_per_second": 0}}"#).unwrap();
        assert!(config.validate().is_err());
        let config: RatesConfig = serde_json::from_str(
            r#"{"identities": {"bob": {"bytes_per_second": 1e6, "requests_per_second": 5}}}"#,
        )
        .unwrap();
        assert!(config.validate().is_ok());
        assert!(serde_json::from_str::<RatesConfig>(r#"{"defaults": {}}"#).is_err());
    }
}
