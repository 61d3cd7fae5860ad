//! HTTP: one axum router for ingest, `/metrics`, health, the status API and the live page.
//!
//! Handlers only extract, call the stage and map the result. `router(state)` builds the whole
//! service so tests can drive it with `oneshot` and no socket.

pub mod auth;
pub mod admission;
mod error;
pub mod otlp;
mod page;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::check::history::{PageHistory, SharedHistory};
use crate::check::{CheckScores, Scoreboard};
use crate::export::{self, ENSEMBLE};
use crate::ingest::{self, SampleSink, remote_write};
use crate::telemetry::{Telemetry, otel};

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Where ingest writes.
    pub sink: Arc<dyn SampleSink>,
    /// Latest check.
    pub scores: Scoreboard,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
    /// Decoding limits.
    pub limits: remote_write::Limits,
    /// How OTLP data maps to series.
    pub otlp: Arc<ingest::otlp::MapOptions>,
    /// Whether an ingest request may start (`ingest.max_concurrent_requests`,
    /// `limits.max_memory_bytes`).
    pub admission: Arc<admission::Admission>,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// True while the pipeline runs.
    pub ready: Arc<AtomicBool>,
    /// Recent checks and anomalies for the live page.
    pub history: SharedHistory,
    /// Credentials from the web configuration file; `None`: every request is let in.
    pub auth: Option<Arc<auth::WebAuth>>,
}

impl AppState {
    /// State for `cfg`'s limits and OTLP mapping over the pipeline's sink, scoreboard and flag.
    pub fn new(
        cfg: &crate::config::Config,
        sink: Arc<dyn SampleSink>,
        scores: Scoreboard,
        telemetry: Arc<Telemetry>,
        ready: Arc<AtomicBool>,
    ) -> Self {
        Self {
            sink,
            scores,
            telemetry,
            limits: remote_write::Limits::from_config(&cfg.ingest),
            otlp: Arc::new(ingest::otlp::MapOptions::from_config(cfg)),
            admission: Arc::new(
                admission::Admission::new(
                    cfg.ingest.max_concurrent_requests,
                    cfg.limits.max_memory_bytes,
                    cfg.limits.max_check_lag,
                )
                .with_sample_rate(cfg.ingest.max_samples_per_second),
            ),
            max_request_bytes: cfg.ingest.max_request_bytes,
            ready,
            history: PageHistory::shared(),
            auth: None,
        }
    }

    /// The same state checking every request but the health probes against `auth`.
    pub fn with_auth(mut self, auth: Option<auth::WebAuth>) -> Self {
        self.auth = auth.map(Arc::new);
        self
    }

    /// The same state with the pipeline's page history (else the page has no sparklines).
    pub fn with_history(mut self, history: SharedHistory) -> Self {
        self.history = history;
        self
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    let limit = state.max_request_bytes;
    // Admission runs before the body is read: a refused request costs no buffering, and the
    // slots count bodies being received as well as being decoded.
    let ingest = Router::new()
        .route("/api/v1/write", post(remote_write_handler))
        .route("/v1/metrics", post(otlp::http_handler))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admit_ingest));
    Router::new()
        .merge(ingest)
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/status", get(status))
        .route("/", get(page))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware))
        .with_state(state)
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Admits an ingest request before its body is read, holding its slot until it is answered;
/// a refusal is 503 + `Retry-After` (OTLP: a `google.rpc.Status` in the request's encoding).
async fn admit_ingest(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let otlp = req.uri().path() == "/v1/metrics";
    let protocol = if otlp { "otlp_http" } else { "remote_write" };
    match st.admission.admit(protocol, &st.telemetry) {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(why) => {
            st.telemetry.requests.with(&[protocol, "503"]).inc();
            if otlp {
                otlp::overloaded(req.headers(), why)
            } else {
                ApiError::Overloaded(why).into_response()
            }
        }
    }
}

async fn remote_write_handler(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let start = std::time::SystemTime::now();
    let version = remote_write::check_headers(
        header_str(&headers, header::CONTENT_TYPE),
        header_str(&headers, header::CONTENT_ENCODING),
    );
    let (protocol, samples, response) = match version {
        Err(e) => ("remote_write", 0, ApiError::from(e).into_response()),
        Ok(remote_write::Version::V1) => {
            let (n, response) = match remote_write::ingest(&body, st.limits, st.sink.as_ref()) {
                Ok(out) => {
                    out.record("remote_write", &st.telemetry);
                    (out.samples_received, written_response(&out, None))
                }
                Err(e) => (0, ApiError::from(e).into_response()),
            };
            ("remote_write", n, response)
        }
        Ok(remote_write::Version::V2) => {
            let (n, response) = match remote_write::ingest_v2(&body, st.limits, st.sink.as_ref()) {
                Ok(v2) => {
                    v2.outcome.record("remote_write_v2", &st.telemetry);
                    let mut resp = written_response(&v2.outcome, v2.first_bad_ref.map(|e| e.to_string()));
                    let w = v2.written;
                    for (name, n) in [
                        ("X-Prometheus-Remote-Write-Samples-Written", w.samples),
                        ("X-Prometheus-Remote-Write-Histograms-Written", w.histograms),
                        ("X-Prometheus-Remote-Write-Exemplars-Written", w.exemplars),
                    ] {
                        resp.headers_mut().insert(name, header::HeaderValue::from(n));
                    }
                    (v2.outcome.samples_received, resp)
                }
                Err(e) => (0, ApiError::from(e).into_response()),
            };
            ("remote_write_v2", n, response)
        }
    };
    st.admission.spend(samples);
    let status = response.status();
    st.telemetry.requests.with(&[protocol, status.as_str()]).inc();
    otel::request_span("POST /api/v1/write", start, status.as_u16(), protocol, samples);
    response
}

/// 204; 503 with `Retry-After` when new entities must wait (`new_entity_rate`); or 400 naming
/// what was rejected. The valid series are stored either way.
fn written_response(out: &ingest::IngestOutcome, detail: Option<String>) -> Response {
    if out.retry_later() > 0 {
        return ApiError::Overloaded(out.summary()).into_response();
    }
    if out.invalid() == 0 {
        return StatusCode::NO_CONTENT.into_response();
    }
    let reason = match detail {
        Some(d) => format!("{}; first bad reference: {d}", out.summary()),
        None => out.summary(),
    };
    ApiError::from(ingest::IngestError::InvalidSeries(reason)).into_response()
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let check = st.scores.read().clone();
    let body = export::prometheus::render(&check, &st.telemetry);
    ([(header::CONTENT_TYPE, export::prometheus::CONTENT_TYPE)], body)
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.ready.load(Ordering::SeqCst) {
        "Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready.\n").into_response()
    }
}

/// JSON view of the latest check.
pub fn status_json(check: &CheckScores) -> serde_json::Value {
    let entities: Vec<_> = check
        .entities
        .iter()
        .map(|e| {
            let labels: serde_json::Map<String, serde_json::Value> =
                e.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let score = e.score.as_ref().map(|s| {
                let top = s.ranked_features().first().map(|&i| check.features[i].clone());
                let detectors: serde_json::Map<String, serde_json::Value> =
                    std::iter::once((ENSEMBLE.to_string(), json!(s.confidence)))
                        .chain(s.detectors.iter().map(|d| (d.detector.to_string(), json!(d.score.value))))
                        .collect();
                json!({
                    "confidence": s.confidence,
                    "anomalous": s.anomalous,
                    "severity": s.severity.as_str(),
                    "top_feature": top,
                    "detectors": detectors,
                    "contributions": check.features.iter().zip(&s.contributions)
                        .map(|(f, c)| (f.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
                })
            });
            json!({ "labels": labels, "state": e.state.as_str(), "score": score })
        })
        .collect();
    json!({
        "timestamp_ms": check.timestamp_ms,
        "profile": &*check.profile,
        "features": &*check.features,
        "entities": entities,
    })
}

async fn status(State(st): State<AppState>) -> impl IntoResponse {
    let check = st.scores.read().clone();
    axum::Json(status_json(&check))
}

async fn page(
    State(st): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let check = st.scores.read().clone();
    let query = page::PageQuery::from_map(&q);
    let (status, body) = page::render(&check, &st.history, &query);
    (status, Html(body)).into_response()
}

#[cfg(test)]
mod tests;
