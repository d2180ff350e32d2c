//! Alert delivery settings: plain structs, deserializable from the YAML config file.
//!
//! ```yaml
//! aggregation: {window_secs: 60, max_keys: 10000}   # repeats become one summary
//! rate_limit: {per_rule_per_second: 10, burst: 20, summary_interval_secs: 60}
//! sinks:
//!   - type: stdout            # json when not a terminal, colored text when it is
//!   - type: file
//!     path: /var/log/monitor/alerts.log
//!     max_bytes: 104857600    # rotate past this size
//!     keep: 5                 # alerts.log.1 … alerts.log.5
//!     format: json
//!   - type: syslog
//!     address: udp://127.0.0.1:514   # tcp://HOST:PORT, unix:///dev/log
//!     facility: 16                   # local0
//!     structured_data: true
//!     min_priority: warning
//!   - type: http
//!     url: https://127.0.0.1:2801/
//!     headers: {Authorization: "Bearer TOKEN"}
//!     batch: 1                # 1: one alert per request; N > 1: JSON arrays of up to N
//!     ca_file: /etc/monitor/ca.pem
//!     timeout_ms: 5000
//!     queue_size: 10000
//!     retry: {max_retries: 5, initial_backoff_ms: 100, max_backoff_ms: 30000}
//!     spool: {dir: /var/lib/monitor/spool/http, max_bytes: 268435456}
//! ```
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;

pub use super::aggregate::AggregationConfig;
use super::model::{Format, de_priority_config};
use crate::rules::Priority;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub aggregation: Option<AggregationConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Tokens added per second to each rule's bucket.
    pub per_rule_per_second: f64,
    /// Bucket size: alerts a rule may raise at once.
    pub burst: u32,
    /// Seconds between "alerts suppressed" summaries (also sent at shutdown).
    #[serde(default = "default_summary_interval")]
    pub summary_interval_secs: u64,
}

fn default_summary_interval() -> u64 {
    60
}

#[derive(Clone, Debug, Deserialize)]
pub struct SinkConfig {
    #[serde(flatten)]
    pub kind: SinkKind,
    /// Name in stats and in the spool folder; default: the type plus its index.
    #[serde(default)]
    pub name: Option<String>,
    /// Least severe priority sent to this sink (default: debug, i.e. everything).
    #[serde(default = "default_priority", deserialize_with = "de_priority_config")]
    pub min_priority: Priority,
    /// json or text; default: json (stdout: text on a terminal).
    #[serde(default)]
    pub format: Option<Format>,
    /// Alerts held in memory for this sink (channel and pending queue each).
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Where undeliverable alerts wait; without it they wait in memory only.
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_priority() -> Priority {
    Priority::Debug
}

fn default_queue_size() -> usize {
    10_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkKind {
    Stdout {
        /// Force colors on or off (default: on when stdout is a terminal and NO_COLOR
        /// is not set). Only the priority is colored; alert text is escaped first, so
        /// no escape sequence of the watched system reaches the terminal.
        #[serde(default)]
        color: Option<bool>,
    },
    File {
        path: PathBuf,
        /// Rotate when the file would grow past this (0: never).
        #[serde(default = "default_file_max")]
        max_bytes: u64,
        /// Rotated files kept.
        #[serde(default = "default_keep")]
        keep: u32,
    },
    Syslog {
        /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///dev/log`.
        address: String,
        #[serde(default = "default_facility")]
        facility: u8,
        /// Add `[monitor@32473 rule=".." priority=".." source=".."]`.
        #[serde(default)]
        structured_data: bool,
        /// Longest syslog message; longer messages are cut (at a character boundary).
        #[serde(default = "default_syslog_max")]
        max_message_bytes: usize,
    },
    Http {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// 1: one alert (a JSON object) per request; N > 1: up to N as a JSON array.
        #[serde(default = "default_batch")]
        batch: usize,
        /// PEM CA certificates to trust for https (default: the system's).
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_file_max() -> u64 {
    100 << 20
}
fn default_keep() -> u32 {
    5
}
fn default_facility() -> u8 {
    16
}
fn default_syslog_max() -> usize {
    8192
}
fn default_batch() -> usize {
    1
}
fn default_timeout_ms() -> u64 {
    5000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Most bytes of undelivered alerts kept; past it new alerts are dropped (counted).
    #[serde(default = "default_spool_max")]
    pub max_bytes: u64,
}

fn default_spool_max() -> u64 {
    256 << 20
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Quick retries of one delivery before its alerts go to the spool.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
}

fn default_retries() -> u32 {
    3
}
fn default_initial_backoff() -> u64 {
    100
}
fn default_max_backoff() -> u64 {
    30_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: default_retries(),
            initial_backoff_ms: default_initial_backoff(),
            max_backoff_ms: default_max_backoff(),
        }
    }
}

impl RetryConfig {
    /// Backoff before attempt `n` (1-based): initial × 2^(n-1), capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let ms = self
            .initial_backoff_ms
            .saturating_mul(1u64 << n.saturating_sub(1).min(30));
        Duration::from_millis(ms.min(self.max_backoff_ms))
    }
}

impl SinkConfig {
    /// A sink with default settings.
    pub fn new(kind: SinkKind) -> SinkConfig {
        SinkConfig {
            kind,
            name: None,
            min_priority: Priority::Debug,
            format: None,
            queue_size: default_queue_size(),
            spool: None,
            retry: RetryConfig::default(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            SinkKind::Stdout { .. } => "stdout",
            SinkKind::File { .. } => "file",
            SinkKind::Syslog { .. } => "syslog",
            SinkKind::Http { .. } => "http",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_config_from_json_shape() {
        let c: AlertsConfig = serde_json::from_value(serde_json::json!({
            "rate_limit": {"per_rule_per_second": 10, "burst": 20},
            "sinks": [
                {"type": "stdout"},
                {"type": "syslog", "address": "udp://127.0.0.1:514", "min_priority": "WARNING"},
                {"type": "http", "url": "http://127.0.0.1:1/", "headers": {"X-Token": "t"},
                 "batch": 10, "spool": {"dir": "/tmp/s"}, "format": "json",
                 "retry": {"max_retries": 1}}
            ]
        }))
        .unwrap();
        assert_eq!(c.sinks.len(), 3);
        assert_eq!(c.sinks[1].min_priority, Priority::Warning);
        assert!(matches!(&c.sinks[2].kind, SinkKind::Http { batch: 10, .. }));
        assert_eq!(c.sinks[2].spool.as_ref().unwrap().max_bytes, 256 << 20);
        assert_eq!(c.rate_limit.unwrap().summary_interval_secs, 60);
        let r = RetryConfig::default();
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(3), Duration::from_millis(400));
        assert_eq!(r.backoff(40), Duration::from_millis(30_000));
    }
}
