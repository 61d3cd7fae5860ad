//! `export.remote_write[]`: where scores are written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigErrors, OtlpExportConfig, duration, is_http_url};

/// Where scores go besides `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Remote-write targets for the score series.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// OTLP targets (a collector) for the score series.
    pub otlp: Vec<OtlpExportConfig>,
}

/// One remote-write target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Endpoint, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Timeout of one request.
    #[serde(with = "duration", default = "default_rw_timeout")]
    pub timeout: Duration,
    /// Series per request.
    #[serde(default = "default_rw_batch")]
    pub max_samples_per_send: usize,
    /// Attempts after the first for 5xx / 429 / connection errors; 4xx is never retried.
    #[serde(default = "default_rw_retries")]
    pub max_retries: u32,
    /// First retry delay; doubles up to `max_backoff`.
    #[serde(with = "duration", default = "default_rw_min_backoff")]
    pub min_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "duration", default = "default_rw_max_backoff")]
    pub max_backoff: Duration,
    /// Ticks buffered while the target is slow; the oldest is dropped (and counted) beyond.
    #[serde(default = "default_rw_queue")]
    pub queue_capacity: usize,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Bearer token sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// File holding the bearer token (read at start).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication, as Prometheus's `remote_write` spells it.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// TLS towards the target (CA, client certificate), as Prometheus spells it.
    #[serde(default)]
    pub tls_config: Option<TlsClientConfig>,
    /// Message to send, as Prometheus names it: `prometheus.WriteRequest` (remote-write 1.0,
    /// default) or `io.prometheus.write.v2.Request` (2.0).
    #[serde(default)]
    pub protobuf_message: RemoteWriteMessage,
}

/// `basic_auth` of an outgoing request (Prometheus's spelling).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password (read at start).
    pub password_file: Option<PathBuf>,
}

/// `tls_config` of an outgoing connection, as Prometheus spells it. Files are read when the
/// client is built (at start).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// PEM CA certificates the server's certificate must chain to (instead of the system's).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that ask for one (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// PEM key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Not served: the name checked is the URL's host.
    pub server_name: Option<String>,
    /// Accept any server certificate (tests only: it makes TLS pointless against an attacker).
    pub insecure_skip_verify: bool,
}

impl TlsClientConfig {
    /// Reports every invalid field; pure.
    pub fn validate(&self, e: &mut ConfigErrors) {
        if self.cert_file.is_some() != self.key_file.is_some() {
            e.invalid("cert_file", "cert_file and key_file go together");
        }
        if self.server_name.is_some() {
            e.invalid(
                "server_name",
                "not supported: the name checked is the URL's host; connect by that name",
            );
        }
    }
}

/// Remote-write protocol of a target.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RemoteWriteMessage {
    /// Remote-write 1.0.
    #[default]
    #[serde(rename = "prometheus.WriteRequest")]
    V1,
    /// Remote-write 2.0.
    #[serde(rename = "io.prometheus.write.v2.Request")]
    V2,
}

fn default_rw_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_rw_batch() -> usize {
    2000
}
fn default_rw_retries() -> u32 {
    8
}
fn default_rw_min_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_rw_max_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_rw_queue() -> usize {
    64
}

impl RemoteWriteConfig {
    pub(super) fn validate(&self, e: &mut ConfigErrors) {
        if !is_http_url(&self.url) {
            e.invalid("url", format!("must be an http(s) URL, got {:?}", self.url));
        }
        if self.max_samples_per_send == 0 {
            e.invalid("max_samples_per_send", "must be >= 1");
        }
        if self.queue_capacity == 0 {
            e.invalid("queue_capacity", "must be >= 1");
        }
        if self.min_backoff > self.max_backoff {
            e.invalid("min_backoff", "must be <= max_backoff");
        }
        if self.basic_auth.is_some() && (self.bearer_token.is_some() || self.bearer_token_file.is_some()) {
            e.invalid("basic_auth", "set basic_auth or a bearer token, not both");
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_empty() {
                e.invalid("basic_auth.username", "must not be empty");
            }
            if b.password.is_some() && b.password_file.is_some() {
                e.invalid("basic_auth.password", "set password or password_file, not both");
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            e.invalid("bearer_token", "set bearer_token or bearer_token_file, not both");
        }
        if let Some(t) = &self.tls_config {
            e.scope("tls_config", |e| t.validate(e));
        }
    }
}
