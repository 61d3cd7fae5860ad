//! dwcp-anomaly: anomaly detection for Prometheus and OpenTelemetry metric streams.
//!
//! Data flows one way: `ingest` → `vectorize` → `detect` → `pipeline` → `export` / `alert`.
//! The modules below follow that flow, each listed after everything it imports (`pipeline`,
//! which wires the stages, after the stages it starts); `tests/architecture.rs` checks the
//! order and the arrows, docs/architecture.md draws them.
//!
//! # Use it as a library
//!
//! The API meant for embedding is re-exported here: [`Config`] to load the configuration,
//! [`AnomalyDetector`], [`AlertManager`] and [`MonitoringPipeline`] to train, start, feed
//! [`MetricVector`]s (or any profile's [`Vector`]) and stop, and the [`AlertEvent`]s it reports
//! with their [`Severity`] and top features ([`FeatureContribution`]: observed vs expected).
//! See [`embed`] and `examples/embedded.rs`. The modules below are the service's parts, public
//! for the binary, the tests and the benchmarks; they are not a stable API.
#![deny(missing_docs)]

pub use alert::{AlertEvent, AlertKind, FeatureContribution};
pub use config::Config;
pub use detect::{ModelState, Severity};
pub use embed::{
    AlertManager, AnomalyDetector, EmbedError, MetricVector, MonitoringPipeline, TrainReport, Vector,
};

// Leaves: the data model and small utilities; they import no other module.
pub mod sample; // labels, samples, series views, reserved names, selectors, reject reasons
pub mod rng; // the deterministic random numbers every detector and the simulator use
pub mod rfc3339; // timestamps as people and Alertmanager write them
pub mod retry; // one retry policy for every outgoing request (→ rng)

// Formats and settings.
pub mod proto; // wire formats: remote-write 1.0/2.0 and the ONNX protobuf subset (→ sample)
pub mod config; // the YAML configuration, validated with the key named (→ sample)
pub mod telemetry; // the service's own metrics and spans (→ config, sample)

// The flow.
pub mod ingest; // remote-write, OTLP and scrape decoded into samples, counted by outcome
pub mod vectorize; // samples grouped into per-entity feature vectors (the ingest sink)
pub mod detect; // the five detectors and the ensemble: pure CPU, no I/O or file format
pub mod onnx; // model files (LSTM autoencoder, scikit-learn forest) built into detect's types
pub mod check; // what one check produced, and the page's history of recent checks
pub mod export; // the score series: /metrics, remote-write out, OTLP out
pub mod alert; // alert state machine and the channels (Alertmanager, Slack, ...)
pub mod dataset; // the labelled CSV format of ../shared/datasets (train and eval read it)
pub mod pipeline; // the stages wired together: ticks, scoring, alert state, saved state
pub mod embed; // the library API: detector, alert manager and pipeline without HTTP
pub mod http; // the HTTP listener: ingest endpoints, /metrics, API, live page

// Offline commands.
pub mod eval; // replay datasets, score accuracy, write report and plots
pub mod simulate; // synthetic DWCP traffic with injected anomalies

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
