//! The service's own telemetry pushed with the OpenTelemetry SDK: the `dwcp_anomaly_*` metrics
//! (the same cells `/metrics` shows, read by observable instruments at every export) and one
//! server span per ingest request.
//!
//! Off unless `otel.metrics_exporter` / `otel.traces_exporter` (or the standard
//! `OTEL_METRICS_EXPORTER` / `OTEL_TRACES_EXPORTER` variables) say `otlp`. Everything else is
//! configured as for any OpenTelemetry SDK: `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4317`), `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`,
//! the per-signal variants, `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`
//! and `OTEL_RESOURCE_ATTRIBUTES`. The protocol is OTLP/gRPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

use super::{Kind, Telemetry};
use crate::config::{OtelConfig, OtelExporter};

/// Why the SDK could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP {signal} exporter (OTEL_EXPORTER_OTLP_* environment): {source}")]
pub struct OtelError {
    signal: &'static str,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Keeps the SDK running; [`OtelGuard::shutdown`] flushes it.
#[derive(Default)]
pub struct OtelGuard {
    meters: Option<SdkMeterProvider>,
    tracers: Option<SdkTracerProvider>,
}

impl OtelGuard {
    /// Which signals are exported, for the start-up log.
    pub fn signals(&self) -> Vec<&'static str> {
        [self.meters.as_ref().map(|_| "metrics"), self.tracers.as_ref().map(|_| "traces")]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Flushes and stops the exporters.
    pub fn shutdown(self) {
        if let Some(m) = self.meters {
            let _ = m.shutdown();
        }
        if let Some(t) = self.tracers {
            let _ = t.shutdown();
        }
        TRACING.store(false, Ordering::Relaxed);
    }
}

static TRACING: AtomicBool = AtomicBool::new(false);
static TRACER: std::sync::OnceLock<Tracer> = std::sync::OnceLock::new();

/// The exporter a signal uses: config, else the standard environment variable, else none.
fn selected(configured: Option<OtelExporter>, env: &str) -> bool {
    match configured {
        Some(e) => e == OtelExporter::Otlp,
        None => std::env::var(env).is_ok_and(|v| v.split(',').any(|x| x.trim() == "otlp")),
    }
}

fn resource() -> Resource {
    let b = Resource::builder();
    let b =
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() { b.with_service_name("dwcp-anomaly") } else { b };
    b.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build()
}

/// Starts what `cfg` and the environment ask for. Call inside the tokio runtime.
pub fn init(cfg: &OtelConfig, telemetry: &Arc<Telemetry>) -> Result<OtelGuard, OtelError> {
    let mut guard = OtelGuard::default();
    if selected(cfg.metrics_exporter, "OTEL_METRICS_EXPORTER") {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|source| OtelError { signal: "metrics", source })?;
        let provider =
            SdkMeterProvider::builder().with_periodic_exporter(exporter).with_resource(resource()).build();
        register(&provider, telemetry);
        guard.meters = Some(provider);
    }
    if selected(cfg.traces_exporter, "OTEL_TRACES_EXPORTER") {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|source| OtelError { signal: "traces", source })?;
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build();
        let _ = TRACER.set(provider.tracer("dwcp-anomaly"));
        TRACING.store(true, Ordering::Relaxed);
        guard.tracers = Some(provider);
    }
    Ok(guard)
}

/// One observable instrument per family, reading the same cells as `/metrics`.
fn register(provider: &SdkMeterProvider, telemetry: &Arc<Telemetry>) {
    let meter = provider.meter("dwcp-anomaly");
    let attrs = |labels: &[(&'static str, &str)]| -> Vec<KeyValue> {
        labels.iter().map(|(k, v)| KeyValue::new(*k, v.to_string())).collect()
    };
    for (i, f) in telemetry.families().iter().enumerate() {
        let t = Arc::clone(telemetry);
        match f.kind() {
            Kind::Counter => {
                meter
                    .f64_observable_counter(f.name())
                    .with_description(f.help())
                    .with_callback(move |o| t.families()[i].for_each(|l, v| o.observe(v, &attrs(l))))
                    .build();
            }
            Kind::Gauge => {
                meter
                    .f64_observable_gauge(f.name())
                    .with_description(f.help())
                    .with_callback(move |o| t.families()[i].for_each(|l, v| o.observe(v, &attrs(l))))
                    .build();
            }
        }
    }
    let t = Arc::clone(telemetry);
    meter
        .f64_observable_counter(format!("{}_sum", super::names::CHECK_DURATION))
        .with_description("Total time spent in checks.")
        .with_callback(move |o| o.observe(t.check_duration.sum(), &[]))
        .build();
    let t = Arc::clone(telemetry);
    meter
        .u64_observable_counter(format!("{}_count", super::names::CHECK_DURATION))
        .with_description("Checks run.")
        .with_callback(move |o| o.observe(t.check_duration.count(), &[]))
        .build();
}

/// Records one handled ingest request as a server span (no-op unless traces are exported).
pub fn request_span(name: &'static str, start: SystemTime, status: u16, protocol: &str, samples: u64) {
    if !TRACING.load(Ordering::Relaxed) {
        return;
    }
    let Some(tracer) = TRACER.get() else { return };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("dwcp.protocol", protocol.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("dwcp.samples_received", samples as i64),
        ])
        .start(tracer);
    if status >= 500 {
        span.set_status(Status::error(format!("status {status}")));
    }
    span.end();
}
