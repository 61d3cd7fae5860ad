//! The service's own metrics, rendered in the Prometheus text format on `/metrics`.
//!
//! A deliberately small registry: counters and gauges are atomics behind label maps that are
//! resolved once per call site (hot paths keep the returned handle), histograms have fixed
//! buckets. Label values are bounded sets (protocol, reason, severity, exporter), never an
//! entity or a URL.

pub mod names;
pub mod otel;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::sample::RejectReason;

/// A counter or gauge cell: an f64 stored as bits.
#[derive(Debug, Default)]
pub struct Cell(AtomicU64);

impl Cell {
    /// Adds to the value.
    pub fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self.0.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(x) => cur = x,
            }
        }
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }
    /// Sets the value (gauges).
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Metric type in the exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
}

/// A family of counters or gauges with fixed label names.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    cells: RwLock<BTreeMap<Vec<String>, Arc<Cell>>>,
}

impl Family {
    /// A new family.
    pub fn new(name: &'static str, help: &'static str, kind: Kind, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind, labels, cells: RwLock::new(BTreeMap::new()) }
    }

    /// The cell for these label values (created at 0 on first use).
    pub fn with(&self, values: &[&str]) -> Arc<Cell> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        if let Some(c) = self.cells.read().get(&key) {
            return Arc::clone(c);
        }
        Arc::clone(self.cells.write().entry(key).or_default())
    }

    /// Metric name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// HELP text.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// Counter or gauge.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Calls `f(label pairs, value)` for every cell.
    pub fn for_each(&self, mut f: impl FnMut(&[(&'static str, &str)], f64)) {
        let mut pairs = Vec::with_capacity(self.labels.len());
        for (values, cell) in self.cells.read().iter() {
            pairs.clear();
            pairs.extend(self.labels.iter().copied().zip(values.iter().map(String::as_str)));
            f(&pairs, cell.get());
        }
    }

    /// Removes every cell (an info-style family relabelled at startup).
    pub fn clear(&self) {
        self.cells.write().clear();
    }

    /// Current value for these label values (0 when never touched).
    pub fn value(&self, values: &[&str]) -> f64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.cells.read().get(&key).map_or(0.0, |c| c.get())
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {kind}", self.name, self.help, self.name);
        for (values, cell) in self.cells.read().iter() {
            out.push_str(self.name);
            write_labels(out, self.labels.iter().copied().zip(values.iter().map(String::as_str)));
            let _ = writeln!(out, " {}", fmt_value(cell.get()));
        }
    }
}

/// A histogram with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: Box<[f64]>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: Cell,
}

/// Bounds for short durations in seconds (scoring and checks).
pub const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Bounds for latencies that include waiting for a check (seconds).
pub const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0];

/// `base` with the multiples of `interval` that say whether a check keeps up with it (¼, ½, 1,
/// 2 and 4 intervals), sorted, without duplicates.
pub fn with_interval(base: &[f64], interval: std::time::Duration) -> Vec<f64> {
    let i = interval.as_secs_f64();
    let mut b: Vec<f64> = base.iter().copied().chain([0.25, 0.5, 1.0, 2.0, 4.0].map(|m| m * i)).collect();
    b.sort_by(f64::total_cmp);
    b.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1e-9));
    b
}

impl Histogram {
    /// A new histogram.
    pub fn new(name: &'static str, help: &'static str, bounds: impl Into<Box<[f64]>>) -> Self {
        let bounds = bounds.into();
        Self {
            name,
            help,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            bounds,
            count: AtomicU64::new(0),
            sum: Cell::default(),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} histogram", self.name, self.help, self.name);
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{}_bucket{{le=\"{b}\"}} {cum}", self.name);
        }
        let count = self.count();
        let _ = writeln!(out, "{}_bucket{{le=\"+Inf\"}} {count}", self.name);
        let _ = writeln!(out, "{}_sum {}", self.name, fmt_value(self.sum.get()));
        let _ = writeln!(out, "{}_count {count}", self.name);
    }
}

/// All of the service's own metrics.
#[derive(Debug)]
pub struct Telemetry {
    /// See [`names::SAMPLES_RECEIVED`].
    pub samples_received: Family,
    /// See [`names::SAMPLES_ACCEPTED`].
    pub samples_accepted: Family,
    /// See [`names::SAMPLES_REJECTED`].
    pub samples_rejected: Family,
    /// See [`names::SAMPLES_UNMATCHED`].
    pub samples_unmatched: Family,
    /// See [`names::MERGED_SERIES`].
    pub merged_series: Family,
    /// See [`names::EVENTS`].
    pub events: Family,
    /// See [`names::REQUESTS`].
    pub requests: Family,
    /// See [`names::ENTITIES`].
    pub entities: Family,
    /// See [`names::VECTORS_SCORED`].
    pub vectors_scored: Family,
    /// See [`names::ANOMALIES`].
    pub anomalies: Family,
    /// See [`names::ERRORS`].
    pub errors: Family,
    /// See [`names::CHECK_DURATION`].
    pub check_duration: Histogram,
    /// See [`names::CHECK_LAG`].
    pub check_lag: Family,
    /// See [`names::LAST_CHECK`].
    pub last_check: Family,
    /// See [`names::ENTITY_STATES`].
    pub entity_states: Family,
    /// See [`names::MODEL_FITS`].
    pub model_fits: Family,
    /// See [`names::FITS_DEFERRED`].
    pub fits_deferred: Family,
    /// See [`names::AUTH_FAILURES`].
    pub auth_failures: Family,
    /// See [`names::INGEST_REFUSED`].
    pub ingest_refused: Family,
    /// See [`names::ENTITIES_SHED`].
    pub entities_shed: Family,
    /// See [`names::DETECTION_DELAY`].
    pub detection_delay: Histogram,
    /// See [`names::SCORE_LATENCY`].
    pub score_latency: Histogram,
    /// See [`names::EXPORT_SENT`].
    pub export_sent: Family,
    /// See [`names::EXPORT_FAILED`].
    pub export_failed: Family,
    /// See [`names::EXPORT_RETRIES`].
    pub export_retries: Family,
    /// See [`names::EXPORT_QUEUE`].
    pub export_queue: Family,
    /// See [`names::ALERTS_SENT`].
    pub alerts_sent: Family,
    /// See [`names::ALERTS_FAILED`].
    pub alerts_failed: Family,
    /// See [`names::ALERT_RETRIES`].
    pub alert_retries: Family,
    /// See [`names::ALERT_QUEUE`].
    pub alert_queue: Family,
    /// See [`names::SCRAPE_UP`].
    pub scrape_up: Family,
    /// See [`names::SCRAPE_DURATION`].
    pub scrape_duration: Family,
    /// See [`names::SCRAPE_SAMPLES`].
    pub scrape_samples: Family,
    /// See [`names::BUILD_INFO`].
    pub build_info: Family,
}

impl Default for Telemetry {
    /// The metrics of a service checking every 10 s (the default `check_interval`).
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(10))
    }
}

impl Telemetry {
    /// The metrics of a service checking every `check_interval`: the duration and latency
    /// histograms have buckets up to four intervals, so a check that falls behind shows how far.
    pub fn new(check_interval: std::time::Duration) -> Self {
        use Kind::{Counter, Gauge};
        use names::*;
        let t = Telemetry {
            samples_received: Family::new(
                SAMPLES_RECEIVED,
                "Samples received, by protocol.",
                Counter,
                &["protocol"],
            ),
            samples_accepted: Family::new(
                SAMPLES_ACCEPTED,
                "Samples stored by the vectorizer, by protocol (received = accepted + rejected + unmatched).",
                Counter,
                &["protocol"],
            ),
            samples_rejected: Family::new(
                SAMPLES_REJECTED,
                "Samples rejected, by reason.",
                Counter,
                &["reason"],
            ),
            samples_unmatched: Family::new(
                SAMPLES_UNMATCHED,
                "Samples of series that no feature of the profile selects.",
                Counter,
                &[],
            ),
            events: Family::new(
                EVENTS,
                "Anomaly events (an entity's alert firing or escalating), by profile, top feature and severity.",
                Counter,
                &["profile", "feature", "severity"],
            ),
            merged_series: Family::new(
                MERGED_SERIES,
                "Series merged into another series of the same entity and feature at a check without the profile's merge_series: the entity labels do not separate them.",
                Counter,
                &["profile", "feature"],
            ),
            requests: Family::new(
                REQUESTS,
                "Ingest requests, by protocol and status code.",
                Counter,
                &["protocol", "code"],
            ),
            entities: Family::new(ENTITIES, "Live entities.", Gauge, &[]),
            vectors_scored: Family::new(VECTORS_SCORED, "Feature vectors scored.", Counter, &[]),
            anomalies: Family::new(ANOMALIES, "Anomalous vectors, by severity.", Counter, &["severity"]),
            errors: Family::new(
                ERRORS,
                "Errors inside running components, by stage.",
                Counter,
                &["stage", "error_type"],
            ),
            check_duration: Histogram::new(
                CHECK_DURATION,
                "Duration of one check: assemble, score and publish every entity.",
                with_interval(DURATION_BUCKETS, check_interval),
            ),
            check_lag: Family::new(
                CHECK_LAG,
                "Seconds the last check finished after the next one was due (0 while checks keep up).",
                Gauge,
                &[],
            ),
            last_check: Family::new(LAST_CHECK, "Unix time the last check finished.", Gauge, &[]),
            entity_states: Family::new(ENTITY_STATES, "Live entities by model state.", Gauge, &["state"]),
            model_fits: Family::new(MODEL_FITS, "Entity models (re)fitted.", Counter, &[]),
            fits_deferred: Family::new(
                FITS_DEFERRED,
                "Fits still due when the time for fits after a check (detect.fit_share) ran out; made after a later check.",
                Counter,
                &[],
            ),
            auth_failures: Family::new(
                AUTH_FAILURES,
                "Requests refused for their credentials, by listener and reason.",
                Counter,
                &["listener", "reason"],
            ),
            ingest_refused: Family::new(
                INGEST_REFUSED,
                "Ingest requests refused as retryable to protect the service, by protocol and the limit reached.",
                Counter,
                &["protocol", "limit"],
            ),
            entities_shed: Family::new(
                ENTITIES_SHED,
                "Entities dropped with their models because resident memory reached limits.shed_memory_bytes (those seen least recently first).",
                Counter,
                &[],
            ),
            detection_delay: Histogram::new(
                DETECTION_DELAY,
                "Flag onset to detection: data time of the newest sample in the vector that raised an entity's flag to the check that published it.",
                with_interval(LATENCY_BUCKETS, check_interval),
            ),
            score_latency: Histogram::new(
                SCORE_LATENCY,
                "Sample receipt to score: receipt of an entity's first sample since the previous check to the check that published its score.",
                with_interval(LATENCY_BUCKETS, check_interval),
            ),
            export_sent: Family::new(
                EXPORT_SENT,
                "Score samples written, by exporter.",
                Counter,
                &["exporter"],
            ),
            export_failed: Family::new(
                EXPORT_FAILED,
                "Score samples an exporter gave up on, by reason.",
                Counter,
                &["exporter", "reason"],
            ),
            export_retries: Family::new(EXPORT_RETRIES, "Export request retries.", Counter, &["exporter"]),
            export_queue: Family::new(
                EXPORT_QUEUE,
                "Checks waiting in an exporter queue.",
                Gauge,
                &["exporter"],
            ),
            alerts_sent: Family::new(
                ALERTS_SENT,
                "Alert notifications delivered, by channel and severity.",
                Counter,
                &["channel", "severity"],
            ),
            alerts_failed: Family::new(
                ALERTS_FAILED,
                "Alert notifications not delivered, by channel and reason.",
                Counter,
                &["channel", "reason"],
            ),
            alert_retries: Family::new(ALERT_RETRIES, "Alert delivery retries.", Counter, &["channel"]),
            alert_queue: Family::new(
                ALERT_QUEUE,
                "Notifications waiting in a channel's queue.",
                Gauge,
                &["channel"],
            ),
            scrape_up: Family::new(
                SCRAPE_UP,
                "1 when the last scrape of a target succeeded.",
                Gauge,
                &["target"],
            ),
            scrape_duration: Family::new(
                SCRAPE_DURATION,
                "Duration of the last scrape of a target.",
                Gauge,
                &["target"],
            ),
            scrape_samples: Family::new(
                SCRAPE_SAMPLES,
                "Samples in the last scrape of a target.",
                Gauge,
                &["target"],
            ),
            build_info: Family::new(
                BUILD_INFO,
                "Build information; constant 1.",
                Gauge,
                &["version", "onnx_backend"],
            ),
        };
        for r in RejectReason::ALL {
            t.samples_rejected.with(&[r.as_str()]);
        }
        t.samples_unmatched.with(&[]);
        t.entities.with(&[]);
        t.vectors_scored.with(&[]);
        t.check_lag.with(&[]);
        t.model_fits.with(&[]);
        t.fits_deferred.with(&[]);
        for state in ["warming", "ready", "stale"] {
            t.entity_states.with(&[state]);
        }
        t.build_info.with(&[env!("CARGO_PKG_VERSION"), "none"]).set(1.0);
        t
    }

    /// Sets the `onnx_backend` label of `dwcp_anomaly_build_info` (`ort`, `tract`, `none`).
    pub fn set_onnx_backend(&self, backend: &str) {
        self.build_info.clear();
        self.build_info.with(&[env!("CARGO_PKG_VERSION"), backend]).set(1.0);
    }

    /// Counts what one ingest request did (`protocol`: `remote_write`, `otlp_http`, ...).
    pub fn record_ingest(
        &self,
        protocol: &str,
        received: u64,
        accepted: u64,
        unmatched: u64,
        rejected: &[(RejectReason, u64)],
    ) {
        self.samples_received.with(&[protocol]).add(received as f64);
        self.samples_accepted.with(&[protocol]).add(accepted as f64);
        self.samples_unmatched.with(&[]).add(unmatched as f64);
        for (r, n) in rejected {
            self.samples_rejected.with(&[r.as_str()]).add(*n as f64);
        }
    }

    /// Every counter and gauge family, in exposition order; the check-duration histogram
    /// goes after the first [`Self::PRE_HISTOGRAM`] of them.
    pub fn families(&self) -> [&Family; 31] {
        [
            &self.build_info,
            &self.samples_received,
            &self.samples_rejected,
            &self.samples_unmatched,
            &self.requests,
            &self.entities,
            &self.vectors_scored,
            &self.anomalies,
            &self.errors,
            &self.export_sent,
            &self.export_failed,
            &self.export_retries,
            &self.export_queue,
            &self.alerts_sent,
            &self.alerts_failed,
            &self.alert_retries,
            &self.alert_queue,
            &self.scrape_up,
            &self.scrape_duration,
            &self.scrape_samples,
            &self.merged_series,
            &self.events,
            &self.check_lag,
            &self.last_check,
            &self.entity_states,
            &self.model_fits,
            &self.fits_deferred,
            &self.auth_failures,
            &self.ingest_refused,
            &self.entities_shed,
            &self.samples_accepted,
        ]
    }

    /// Families rendered before the check-duration histogram.
    pub const PRE_HISTOGRAM: usize = 9;

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let families = self.families();
        for f in &families[..Self::PRE_HISTOGRAM] {
            f.render(out);
        }
        self.check_duration.render(out);
        self.detection_delay.render(out);
        self.score_latency.render(out);
        for f in &families[Self::PRE_HISTOGRAM..] {
            f.render(out);
        }
        render_process(out);
    }
}

/// The process's resident memory (`VmRSS`), `None` off Linux.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())?;
    Some(kb * 1024)
}

/// The standard `process_*` metrics every Prometheus client library exports (resident memory,
/// CPU seconds, start time), read from `/proc/self` on Linux; nothing elsewhere.
fn render_process(out: &mut String) {
    // Clock ticks per second: 100 on every Linux architecture Rust targets.
    const TICKS: f64 = 100.0;
    if let Some(bytes) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}",
        );
    }
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the
    // 13th, starttime (ticks after boot) the 20th.
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    if let (Some(user), Some(system)) = (field(11), field(12)) {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            (user + system) / TICKS
        );
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()));
    if let (Some(start), Some(boot)) = (field(19), boot) {
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            boot + start / TICKS
        );
    }
}

/// Writes `{a="x",b="y"}` with values escaped (nothing for no labels).
pub fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// Formats a sample value as the text format expects (`NaN`, `+Inf`, `-Inf`).
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_reach_four_check_intervals() {
        let b = with_interval(DURATION_BUCKETS, std::time::Duration::from_secs(30));
        assert_eq!(b.last(), Some(&120.0));
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        // 1 s is already a bound: not repeated for a 4 s interval's quarter.
        let b = with_interval(DURATION_BUCKETS, std::time::Duration::from_secs(4));
        assert_eq!(b.iter().filter(|v| **v == 1.0).count(), 1, "{b:?}");
    }

    #[test]
    fn renders_the_process_metrics_and_the_latency_histograms() {
        let t = Telemetry::new(std::time::Duration::from_secs(10));
        t.score_latency.observe(12.0);
        let mut out = String::new();
        t.render(&mut out);
        assert!(out.contains("dwcp_anomaly_score_latency_seconds_bucket{le=\"15\"} 1"), "{out}");
        assert!(out.contains("dwcp_anomaly_check_duration_seconds_bucket{le=\"40\"} 0"), "{out}");
        let rss = out.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes "));
        assert!(rss.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 1e6), "{out}");
        assert!(out.contains("process_cpu_seconds_total "), "{out}");
    }
}
