//! The `otlp` section (OTLP receiver) and `export.otlp` targets (scores out over OTLP).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigErrors, duration};

/// OTLP receiver. OTLP/HTTP (`POST /v1/metrics`) is always served on the main listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Address of the OTLP/gRPC listener (`MetricsService/Export`); `null` turns it off.
    pub grpc_listen: Option<SocketAddr>,
    /// Resource attributes copied onto every series as labels (besides `service.name` →
    /// `job` and `service.instance.id` → `instance`, which are always mapped).
    pub promote_resource_attributes: Vec<String>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            grpc_listen: Some(SocketAddr::from(([0, 0, 0, 0], 4317))),
            promote_resource_attributes: Vec::new(),
        }
    }
}

/// The service's own telemetry over OTLP; endpoints and the rest come from the standard
/// `OTEL_EXPORTER_OTLP_*` environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// `otlp` or `none`; unset: the `OTEL_METRICS_EXPORTER` variable decides (default none).
    pub metrics_exporter: Option<OtelExporter>,
    /// `otlp` or `none`; unset: the `OTEL_TRACES_EXPORTER` variable decides (default none).
    pub traces_exporter: Option<OtelExporter>,
}

/// An OpenTelemetry SDK exporter choice.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtelExporter {
    /// Export over OTLP/gRPC.
    Otlp,
    /// Do not export.
    None,
}

/// Wire protocol of an OTLP export target.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`endpoint` like `http://collector:4317`).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`endpoint` like `http://collector:4318/v1/metrics`).
    HttpProtobuf,
}

/// One OTLP export target for the score series.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExportConfig {
    /// Endpoint: `http://host:4317` for gRPC, the full `.../v1/metrics` URL for HTTP.
    pub endpoint: String,
    /// `grpc` or `http_protobuf`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Extra request headers (gRPC metadata for `grpc`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Compress requests with gzip.
    #[serde(default)]
    pub gzip: bool,
    /// Timeout of one request.
    #[serde(with = "duration", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts after the first for retryable failures (gRPC UNAVAILABLE etc., HTTP 429/5xx).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First retry delay; doubles up to `max_backoff`.
    #[serde(with = "duration", default = "default_min_backoff")]
    pub min_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "duration", default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Resource attribute `service.name` of the exported scores.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// TLS towards an `https://` endpoint (CA, client certificate), as Prometheus spells
    /// `tls_config`.
    #[serde(default)]
    pub tls_config: Option<super::TlsClientConfig>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retries() -> u32 {
    5
}
fn default_min_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_service_name() -> String {
    "dwcp-anomaly".into()
}

impl OtlpExportConfig {
    pub(super) fn validate(&self, e: &mut ConfigErrors) {
        if !super::is_http_url(&self.endpoint) {
            e.invalid("endpoint", format!("must be an http:// or https:// URL, got {:?}", self.endpoint));
        } else if self.protocol == OtlpProtocol::HttpProtobuf
            && !self.endpoint.trim_end_matches('/').ends_with("/v1/metrics")
        {
            e.invalid(
                "endpoint",
                format!(
                    "an http_protobuf endpoint is the full URL ending in /v1/metrics, got {:?}",
                    self.endpoint
                ),
            );
        }
        if self.timeout.is_zero() {
            e.invalid("timeout", "must be > 0");
        }
        if self.min_backoff > self.max_backoff {
            e.invalid("min_backoff", "must be <= max_backoff");
        }
        if let Some(t) = &self.tls_config {
            if self.protocol == OtlpProtocol::Grpc && t.insecure_skip_verify {
                e.invalid("tls_config.insecure_skip_verify", "not served for protocol grpc; give ca_file");
            }
            e.scope("tls_config", |e| t.validate(e));
        }
        for k in self.headers.keys() {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                e.invalid("headers", format!("invalid header name {k:?}"));
            }
        }
    }
}
