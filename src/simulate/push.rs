//! `simulate push`: the simulation pushed in real time over remote-write 1.0, OTLP/HTTP or
//! OTLP/gRPC — the demo's feed and the load generator of the scale benchmark.
//!
//! Every `interval` the simulator advances one step; its samples are cut into requests of about
//! `batch` samples (whole entities) and handed to `concurrency` senders, as Prometheus's
//! remote-write shards do. A sender retries what the receiver asks it to retry (429 and 5xx,
//! gRPC `UNAVAILABLE` and the like, honouring `Retry-After`) a bounded number of times and
//! counts everything: samples offered, acknowledged, refused for now, dropped for good, and
//! steps that could not even be handed over before the next one was due.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::{METRICS, Point, Simulator};
use crate::proto::otlp::{gauges, string_kv};
use crate::proto::remote_write::{Encoder, compress};
use crate::retry::RetryPolicy;
use crate::rng::Rng;

/// Where and how samples are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// Prometheus remote-write 1.0 (snappy protobuf) to this URL.
    RemoteWrite(String),
    /// OTLP/HTTP protobuf to this URL (`…/v1/metrics`).
    OtlpHttp(String),
    /// OTLP/gRPC to this endpoint (`http://host:4317`).
    OtlpGrpc(String),
}

impl PushTarget {
    fn protocol(&self) -> &'static str {
        match self {
            Self::RemoteWrite(_) => "remote_write",
            Self::OtlpHttp(_) => "otlp_http",
            Self::OtlpGrpc(_) => "otlp_grpc",
        }
    }
}

/// Options of [`push`].
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Receiver and protocol.
    pub target: PushTarget,
    /// Wall time between steps.
    pub interval: Duration,
    /// `job` label (OTLP: `service.name`) of the pushed series.
    pub job: String,
    /// Stop after this many steps (None: until shutdown).
    pub steps: Option<u64>,
    /// Samples per request, rounded to whole entities (at least one entity).
    pub batch: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Attempts after the first for a request the receiver asks to retry.
    pub retries: u32,
}

impl PushOptions {
    /// One step a `interval` to a remote-write URL, Prometheus's request size, 4 senders.
    pub fn remote_write(url: String, interval: Duration, job: String) -> Self {
        Self {
            target: PushTarget::RemoteWrite(url),
            interval,
            job,
            steps: None,
            batch: 2000,
            concurrency: 4,
            retries: 5,
        }
    }
}

/// What a push did, counted in samples unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Steps generated.
    pub steps: u64,
    /// Steps handed to the senders after the next one was already due.
    pub late_steps: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Samples generated.
    pub offered: u64,
    /// Samples in requests answered with success.
    pub acked: u64,
    /// Answers asking to retry later (429, 503, gRPC `UNAVAILABLE`, …).
    pub refusals: u64,
    /// Samples given up: refused for good, or still refused after every retry.
    pub dropped: u64,
    /// Wall time from the first step until every request was answered, in milliseconds: rates
    /// are counts over this, since late steps stretch a run past `steps × interval`.
    pub elapsed_ms: u64,
}

impl std::fmt::Display for PushReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "steps={} late_steps={} requests={} offered={} acked={} refusals={} dropped={} seconds={:.3}",
            self.steps,
            self.late_steps,
            self.requests,
            self.offered,
            self.acked,
            self.refusals,
            self.dropped,
            self.elapsed_ms as f64 / 1000.0
        )
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    acked: AtomicU64,
    refusals: AtomicU64,
    dropped: AtomicU64,
}

/// One request ready to send.
enum Body {
    RemoteWrite(Vec<u8>),
    Otlp(ExportMetricsServiceRequest),
}

struct Batch {
    body: Body,
    samples: u64,
}

/// How one attempt ended.
enum Answer {
    Ok,
    Retry(Option<Duration>, String),
    Refused(String),
}

#[derive(Clone)]
enum Client {
    Http(reqwest::Client),
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
}

/// Pushes one step every `interval` until shutdown or `steps`; waits for the requests in
/// flight and returns what happened.
pub async fn push(
    mut sim: Simulator,
    opts: PushOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<PushReport, PushError> {
    let client = match &opts.target {
        PushTarget::OtlpGrpc(url) => {
            let channel = tonic::transport::Channel::from_shared(url.clone())
                .map_err(|e| PushError::Target(format!("{url:?}: {e}")))?
                .timeout(Duration::from_secs(10))
                .connect_lazy();
            Client::Grpc(MetricsServiceClient::new(channel).max_decoding_message_size(64 << 20))
        }
        _ => Client::Http(
            crate::retry::http_client()
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("dwcp-anomaly-simulate/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| PushError::Target(e.to_string()))?,
        ),
    };
    let counters = Arc::new(Counters::default());
    let concurrency = opts.concurrency.max(1);
    let (tx, rx) = mpsc::channel::<Batch>(concurrency);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let senders: Vec<_> = (0..concurrency)
        .map(|i| {
            let sender = Sender {
                client: client.clone(),
                target: opts.target.clone(),
                counters: Arc::clone(&counters),
                retry: RetryPolicy {
                    retries: opts.retries,
                    backoff: Duration::from_millis(50),
                    max_backoff: opts.interval.max(Duration::from_secs(1)),
                },
                rng: Rng::new(0x5eed + i as u64),
            };
            tokio::spawn(sender.run(Arc::clone(&rx)))
        })
        .collect();
    let per_request = (opts.batch / METRICS.len()).max(1);
    let mut report = PushReport::default();
    let mut ticks = tokio::time::interval(opts.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let mut progress = started;
    'steps: loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        if opts.steps.is_some_and(|n| sim.step() >= n) {
            break;
        }
        let due = tokio::time::Instant::now() + opts.interval;
        let ts = crate::rfc3339::now_ms();
        super::targets::log_injections(&sim, ts, opts.interval);
        let points = sim.next_step();
        for (first, chunk) in points.chunks(per_request).enumerate().map(|(c, ch)| (c * per_request, ch)) {
            let batch = Batch {
                body: encode(&opts, first, chunk, ts),
                samples: (chunk.len() * METRICS.len()) as u64,
            };
            report.offered += batch.samples;
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { break 'steps },
                _ = shutdown.wait_for(|s| *s) => break 'steps,
            }
        }
        report.steps += 1;
        if tokio::time::Instant::now() > due {
            report.late_steps += 1;
        }
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = tokio::time::Instant::now();
            info!(
                protocol = opts.target.protocol(),
                steps = report.steps,
                late_steps = report.late_steps,
                offered = report.offered,
                acked = counters.acked.load(Ordering::Relaxed),
                refusals = counters.refusals.load(Ordering::Relaxed),
                dropped = counters.dropped.load(Ordering::Relaxed),
                "Pushing."
            );
        }
    }
    drop(tx);
    for s in senders {
        let _ = s.await;
    }
    report.requests = counters.requests.load(Ordering::Relaxed);
    report.acked = counters.acked.load(Ordering::Relaxed);
    report.refusals = counters.refusals.load(Ordering::Relaxed);
    report.dropped = counters.dropped.load(Ordering::Relaxed);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Why a push cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The target URL or the client is unusable.
    #[error("push target: {0}")]
    Target(String),
}

/// Encodes entities `first..first + chunk.len()` of one step.
fn encode(opts: &PushOptions, first: usize, chunk: &[Point], ts: i64) -> Body {
    match opts.target {
        PushTarget::RemoteWrite(_) => {
            let mut enc = Encoder::default();
            for (i, p) in chunk.iter().enumerate() {
                let instance = Simulator::entity_name(first + i);
                for (f, metric) in METRICS.iter().enumerate() {
                    enc.series(
                        &[("__name__", *metric), ("instance", &instance), ("job", &opts.job)],
                        &[(p.values[f], ts)],
                    );
                }
            }
            Body::RemoteWrite(compress(&enc.finish()))
        }
        PushTarget::OtlpHttp(_) | PushTarget::OtlpGrpc(_) => {
            Body::Otlp(otlp_request(&opts.job, first, chunk, ts))
        }
    }
}

/// One resource per entity (`service.name` the job, `service.instance.id` the instance, as
/// an OpenTelemetry SDK would send), its seven gauges with one point each.
fn otlp_request(job: &str, first: usize, chunk: &[Point], ts: i64) -> ExportMetricsServiceRequest {
    let time_unix_nano = ts.max(0) as u64 * 1_000_000;
    let resource_metrics = chunk
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let instance = Simulator::entity_name(first + i);
            let resource = vec![string_kv("service.name", job), string_kv("service.instance.id", &instance)];
            gauges(resource, &[], time_unix_nano, METRICS.iter().copied().zip(p.values))
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// One of the `concurrency` senders.
struct Sender {
    client: Client,
    target: PushTarget,
    counters: Arc<Counters>,
    retry: RetryPolicy,
    rng: Rng,
}

impl Sender {
    async fn run(mut self, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>) {
        loop {
            let Some(batch) = rx.lock().await.recv().await else { return };
            self.deliver(batch).await;
        }
    }

    async fn deliver(&mut self, batch: Batch) {
        let mut attempt = 0;
        let why = loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match self.attempt(&batch.body).await {
                Answer::Ok => {
                    self.counters.acked.fetch_add(batch.samples, Ordering::Relaxed);
                    debug!(samples = batch.samples, "Pushed.");
                    return;
                }
                Answer::Retry(after, why) => {
                    self.counters.refusals.fetch_add(1, Ordering::Relaxed);
                    if attempt == self.retry.retries {
                        break why;
                    }
                    attempt += 1;
                    let wait = self.retry.delay(attempt, after, &mut self.rng);
                    debug!(%why, ?wait, "Receiver asked to retry.");
                    tokio::time::sleep(wait).await;
                }
                Answer::Refused(why) => break why,
            }
        };
        // The first drop is worth a warning; the rest are in the report.
        if self.counters.dropped.fetch_add(batch.samples, Ordering::Relaxed) == 0 {
            warn!(protocol = self.target.protocol(), %why, samples = batch.samples, "Samples dropped.");
        } else {
            debug!(%why, samples = batch.samples, "Samples dropped.");
        }
    }

    async fn attempt(&mut self, body: &Body) -> Answer {
        match (&mut self.client, body, &self.target) {
            (Client::Http(client), Body::RemoteWrite(bytes), PushTarget::RemoteWrite(url)) => {
                let sent = client
                    .post(url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(bytes.clone())
                    .send()
                    .await;
                http_answer(sent).await
            }
            (Client::Http(client), Body::Otlp(req), PushTarget::OtlpHttp(url)) => {
                let sent = client
                    .post(url)
                    .header("Content-Type", "application/x-protobuf")
                    .body(req.encode_to_vec())
                    .send()
                    .await;
                http_answer(sent).await
            }
            (Client::Grpc(client), Body::Otlp(req), _) => match client.export(req.clone()).await {
                Ok(_) => Answer::Ok,
                Err(s) => {
                    use tonic::Code::*;
                    let why = format!("{:?}: {}", s.code(), s.message());
                    if matches!(
                        s.code(),
                        Unavailable | ResourceExhausted | DeadlineExceeded | Aborted | Cancelled
                    ) {
                        Answer::Retry(None, why)
                    } else {
                        Answer::Refused(why)
                    }
                }
            },
            _ => Answer::Refused("body does not match the target's protocol".into()),
        }
    }
}

/// 2xx is success; 429 and 5xx ask for a retry (after `Retry-After` when given), as Prometheus
/// and the collector treat them; other statuses refuse the request for good.
async fn http_answer(sent: Result<reqwest::Response, reqwest::Error>) -> Answer {
    match sent {
        Ok(r) if r.status().is_success() => Answer::Ok,
        Ok(r) => {
            let status = r.status();
            let after = crate::retry::retry_after(r.headers());
            let text = r.text().await.unwrap_or_default();
            let why = format!("{status}: {}", text.trim());
            if status.as_u16() == 429 || status.is_server_error() {
                Answer::Retry(after, why)
            } else {
                Answer::Refused(why)
            }
        }
        Err(e) => Answer::Retry(None, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

    use super::*;

    #[test]
    fn otlp_requests_carry_each_entity_as_a_resource_with_seven_gauges() {
        let mut sim = Simulator::new(3, 1, 100, vec![]);
        let points = sim.next_step();
        let req = otlp_request("dwcp", 10, &points[..2], 1_700_000_000_000);
        assert_eq!(req.resource_metrics.len(), 2);
        let rm = &req.resource_metrics[1];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs[1], string_kv("service.instance.id", "dwcp-node-12"));
        let metrics = &rm.scope_metrics[0].metrics;
        assert_eq!(metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), METRICS);
        let Some(Data::Gauge(g)) = &metrics[1].data else { panic!("not a gauge") };
        assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(points[1].values[1])));
        assert_eq!(g.data_points[0].time_unix_nano, 1_700_000_000_000_000_000);
    }
}
