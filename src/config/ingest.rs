//! `ingest` and `scrape[]`: what the service accepts and where it pulls from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigErrors, duration, is_http_url};

/// Limits applied before any decoding, so a hostile request cannot exhaust memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted request body in bytes, as sent (compressed).
    pub max_request_bytes: usize,
    /// Largest accepted body in bytes after decompression.
    pub max_decoded_bytes: usize,
    /// Ingest requests (remote-write, OTLP/HTTP, OTLP/gRPC) handled at once; beyond it a
    /// request is refused as retryable (HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE`).
    pub max_concurrent_requests: usize,
    /// Labels one series may carry, `__name__` included; a series with more is rejected
    /// (`too_many_labels`) and the rest of the request kept.
    pub max_labels_per_series: usize,
    /// Longest label name in bytes (`label_name_too_long`).
    pub max_label_name_length: usize,
    /// Longest label value in bytes (`label_value_too_long`).
    pub max_label_value_length: usize,
    /// Series one request may hold; a request with more is refused whole (413) before anything
    /// of it is stored. Prometheus sends at most `queue_config.max_samples_per_send` (2000).
    pub max_series_per_request: usize,
    /// Samples (OTLP: data points) one request may hold (413 beyond it).
    pub max_samples_per_request: usize,
    /// Samples accepted per second, in bursts of as many; beyond it ingest is refused as
    /// retryable (503 + `Retry-After`, gRPC `UNAVAILABLE`) until time pays for the excess.
    /// 0: unlimited.
    pub max_samples_per_second: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
            max_concurrent_requests: 64,
            max_labels_per_series: 128,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
            max_series_per_request: 100_000,
            max_samples_per_request: 1_000_000,
            max_samples_per_second: 0,
        }
    }
}

/// Limits of the process as a whole (`limits`), like the collector's `memory_limiter`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Resident memory from which ingest requests are refused as retryable (remote-write and
    /// OTLP/HTTP 503 with `Retry-After`, OTLP/gRPC `UNAVAILABLE`) until it falls back; what was
    /// already accepted is still scored. 0: no ceiling.
    pub max_memory_bytes: u64,
    /// Resident memory from which each check drops a tenth of the entities, those seen least
    /// recently first (stale and quiet ones before busy ones), with their models, logged and
    /// counted in `dwcp_anomaly_entities_shed_total`; above `max_memory_bytes` when both are set.
    /// 0: never.
    pub shed_memory_bytes: u64,
    /// How late a check may finish (`dwcp_anomaly_check_lag_seconds`) before ingest is refused
    /// as retryable until a check catches up: entities without new samples are not scored, so
    /// the next check is lighter and the CPU that decoding took goes to scoring. 0: never.
    #[serde(with = "super::duration")]
    pub max_check_lag: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_memory_bytes: 0, shed_memory_bytes: 0, max_check_lag: Duration::from_secs(30) }
    }
}

/// One scrape target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// URL of the target's metrics page, e.g. `http://host:9100/metrics`.
    pub url: String,
    /// Time between scrapes.
    #[serde(with = "duration", default = "default_scrape_interval")]
    pub interval: Duration,
    /// Timeout of one scrape (at most `interval`).
    #[serde(with = "duration", default = "default_scrape_timeout")]
    pub timeout: Duration,
    /// `job` label of the target's series.
    #[serde(default = "default_scrape_job")]
    pub job: String,
    /// Extra labels added to the target's series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Keep the target's own `job`/`instance`/extra labels when they clash with ours (as
    /// Prometheus's `honor_labels`); otherwise theirs are renamed `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_scrape_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_scrape_job() -> String {
    "scrape".into()
}

impl ScrapeConfig {
    pub(super) fn validate(&self, e: &mut ConfigErrors) {
        if !is_http_url(&self.url) {
            e.invalid("url", format!("must be an http:// or https:// URL, got {:?}", self.url));
        }
        if self.interval < Duration::from_millis(100) {
            e.invalid("interval", format!("must be >= 100ms, got {:?}", self.interval));
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            e.invalid(
                "timeout",
                format!("must be > 0 and <= interval ({:?}), got {:?}", self.interval, self.timeout),
            );
        }
        for k in self.labels.keys() {
            let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                e.invalid("labels", format!("invalid label name {k:?}"));
            }
        }
    }
}
