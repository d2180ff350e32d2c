//! Flood control: a token bucket per rule, and the count of what it held back.
use std::{collections::HashMap, time::Instant};

use super::config::RateLimitConfig;

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
    hostname: String,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> RateLimiter {
        RateLimiter {
            rate: config.per_rule_per_second.max(0.0),
            burst: f64::from(config.burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token from the rule's bucket; false (and counted) when it is empty.
    pub fn allow(&mut self, rule: &str, hostname: &str, now: Instant) -> bool {
        let burst = self.burst;
        let bucket = match self.buckets.get_mut(rule) {
            Some(b) => b,
            None => self.buckets.entry(rule.to_string()).or_insert(Bucket {
                tokens: burst,
                last: now,
                suppressed: 0,
                hostname: String::new(),
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            bucket.suppressed += 1;
            if bucket.hostname != hostname {
                bucket.hostname = hostname.to_string();
            }
            false
        }
    }

    /// (rule, suppressed count, hostname) for every rule that had alerts held back
    /// since the last call; the counts restart from zero.
    pub fn take_suppressed(&mut self) -> Vec<(String, u64, String)> {
        let mut out: Vec<_> = self
            .buckets
            .iter_mut()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(rule, b)| {
                (
                    rule.clone(),
                    std::mem::take(&mut b.suppressed),
                    b.hostname.clone(),
                )
            })
            .collect();
        out.sort();
        // Forget idle full buckets so the map does not grow with every rule ever seen.
        let (rate, burst) = (self.rate, self.burst);
        let now = Instant::now();
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
        out
    }

    pub fn describe(&self) -> String {
        format!("{}/s, burst {}", self.rate, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alerts_token_bucket() {
        let mut r = RateLimiter::new(&RateLimitConfig {
            per_rule_per_second: 10.0,
            burst: 10,
            summary_interval_secs: 60,
        });
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| r.allow("A", "h", t0)).count();
        assert_eq!(allowed, 10);
        assert!(r.allow("B", "h", t0));
        // 0.5 s later: 5 more tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| r.allow("A", "h", t1)).count(), 5);
        assert_eq!(r.take_suppressed(), vec![("A".into(), 95, "h".into())]);
        assert_eq!(r.take_suppressed(), vec![]);
    }
}
