//! dwcp-anomaly: anomaly detection for Prometheus and OpenTelemetry metric streams.
//!
//! Data flows one way: `ingest` → `vectorize` → `detect` → `pipeline` → `export` / `alert`.
//! `config` and `proto` are leaves; `http` hands requests to `ingest` and serves `export`.
#![deny(missing_docs)]

pub mod alert;
pub mod config;
pub mod dataset;
pub mod detect;
pub mod eval;
pub mod export;
pub mod http;
pub mod ingest;
pub mod onnx;
pub mod pipeline;
pub mod proto;
pub mod retry;
pub mod rfc3339;
pub mod rng;
pub mod simulate;
pub mod telemetry;
pub mod vectorize;

#[cfg(test)]
mod testing;

/// An HTTP client builder with TLS ready: installs rustls's `ring` provider for the process
/// once (reqwest is built without a default provider to keep aws-lc out of the build).
pub fn http_client() -> reqwest::ClientBuilder {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // An error means another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A response's `Retry-After` in seconds (the HTTP-date form is not used by the receivers
/// this service talks to and is ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}
