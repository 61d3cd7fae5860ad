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
//! See [`embed`] and `examples/embedded.rs`; nothing else is public at the root.
//!
//! # The service's parts
//!
//! The modules below are private. The binary, the integration tests and the benchmarks reach
//! them through [`internals`], one deliberate door with a name that says what it is: those
//! paths may change in any release and are not an API to build on.
#![deny(missing_docs)]

pub use alert::{AlertEvent, AlertKind, FeatureContribution};
pub use config::Config;
pub use detect::{ModelState, Severity};
pub use embed::{
    AlertManager, AnomalyDetector, EmbedError, MetricVector, MonitoringPipeline, TrainReport, Vector,
};

// Leaves: the data model and small utilities; they import no other module.
mod sample; // labels, samples, series views, reserved names, selectors, reject reasons
mod rng; // the deterministic random numbers every detector and the simulator use
mod rfc3339; // timestamps as people and Alertmanager write them

// Formats and settings.
mod proto; // wire formats: remote-write 1.0/2.0 and the ONNX protobuf subset (→ sample)
mod config; // the YAML configuration, validated with the key named (→ sample)
mod retry; // outgoing requests: the HTTP client builder with tls_config, one retry policy (→ rng, config)
mod telemetry; // the service's own metrics and spans (→ config, sample)

// The flow.
mod ingest; // remote-write, OTLP and scrape decoded into samples, counted by outcome
mod vectorize; // samples grouped into per-entity feature vectors (the ingest sink)
mod detect; // the five detectors and the ensemble: pure CPU, no I/O or file format
mod onnx; // model files (LSTM autoencoder, scikit-learn forest) built into detect's types
mod check; // what one check produced, and the page's history of recent checks
mod export; // the score series: /metrics, remote-write out, OTLP out
mod alert; // alert state machine and the channels (Alertmanager, Slack, ...)
mod dataset; // the labelled CSV format of ../shared/datasets (train and eval read it)
mod pipeline; // the stages wired together: ticks, scoring, alert state, saved state
pub mod embed; // the library API (public): detector, alert manager and pipeline without HTTP
mod http; // the HTTP listener: ingest endpoints, /metrics, API, live page

// Offline commands.
mod eval; // replay datasets, score accuracy, write report and plots
mod simulate; // synthetic DWCP traffic with injected anomalies

#[cfg(test)]
mod testing;

/// The service's parts for the binary, the integration tests and the benchmarks: **not a
/// stable API**. Each module here re-exports the public items of the private module of the
/// same name; embedders use the root re-exports and [`embed`] instead.
pub mod internals {
    macro_rules! expose {
        ($($module:ident),* $(,)?) => {$(
            #[doc = concat!("The service's `", stringify!($module), "` module (internal, may change).")]
            pub mod $module {
                pub use crate::$module::*;
            }
        )*};
    }
    expose!(
        sample, rng, rfc3339, retry, proto, config, telemetry, ingest, vectorize, detect, onnx, check,
        export, alert, dataset, pipeline, http, eval, simulate,
    );
}
