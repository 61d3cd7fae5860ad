//! Remote-write out (1.0, or 2.0 per target): the score series of every check, batched, to each configured URL.
//!
//! One task per target reads checks from a bounded queue (a slow target never blocks the
//! pipeline: when the queue is full the check is dropped and counted). Requests that fail with
//! 5xx, 429 or a connection error are retried with exponential backoff and jitter (honouring
//! `Retry-After`); 4xx responses are not retried, as the remote-write spec requires.

use std::sync::Arc;

use reqwest::StatusCode;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::{RemoteWriteConfig, RemoteWriteMessage};
use crate::proto::remote_write::{Encoder, compress};
use crate::proto::remote_write_v2::{self, EncoderV2};
use crate::retry::{ClientError, RetryPolicy};
use crate::rng::Rng;
use crate::telemetry::Telemetry;

use super::{ExporterHandle, ScoreWriter, Series, for_each_series};
use crate::check::CheckScores;

/// Why a batch was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The target answered 4xx (other than 429): the data is not acceptable, no retry.
    Rejected(u16),
    /// Retries exhausted on 5xx / 429 / connection errors.
    RetriesExhausted,
    /// Shutdown interrupted the retries.
    Shutdown,
}

impl SendFailure {
    /// The `reason` label value.
    pub fn reason(self) -> &'static str {
        match self {
            SendFailure::Rejected(_) => "rejected",
            SendFailure::RetriesExhausted => "retries_exhausted",
            SendFailure::Shutdown => "shutdown",
        }
    }
}

/// The 1.0 or 2.0 encoder, as the target asks.
enum AnyEncoder {
    V1(Encoder),
    V2(EncoderV2),
}

impl AnyEncoder {
    fn series(&mut self, labels: &[(&str, &str)], samples: &[(f64, i64)]) {
        match self {
            AnyEncoder::V1(e) => e.series(labels, samples),
            AnyEncoder::V2(e) => e.series(labels, samples),
        }
    }

    fn len(&self) -> usize {
        match self {
            AnyEncoder::V1(e) => e.len(),
            AnyEncoder::V2(e) => e.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn finish(&mut self) -> Vec<u8> {
        match self {
            AnyEncoder::V1(e) => e.finish(),
            AnyEncoder::V2(e) => e.finish(),
        }
    }
}

/// A remote-write client for one target.
pub struct RemoteWriteClient {
    cfg: RemoteWriteConfig,
    client: reqwest::Client,
    id: String,
    telemetry: Arc<Telemetry>,
    retry: RetryPolicy,
}

impl RemoteWriteClient {
    /// A client for `cfg`; `id` is the `exporter` label (e.g. `remote_write[0]`).
    pub fn new(cfg: RemoteWriteConfig, id: String, telemetry: Arc<Telemetry>) -> Result<Self, ClientError> {
        let client = crate::retry::http_client()
            .timeout(cfg.timeout)
            .user_agent(concat!("dwcp-anomaly/", env!("CARGO_PKG_VERSION")));
        let client = crate::retry::with_tls(client, cfg.tls_config.as_ref())?.build()?;
        let retry =
            RetryPolicy { retries: cfg.max_retries, backoff: cfg.min_backoff, max_backoff: cfg.max_backoff };
        Ok(Self { cfg, client, id, telemetry, retry })
    }

    /// Encodes one check into requests of at most `max_samples_per_send` series.
    pub fn encode(&self, check: &CheckScores) -> Vec<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        let mut enc = match self.cfg.protobuf_message {
            RemoteWriteMessage::V1 => AnyEncoder::V1(Encoder::default()),
            RemoteWriteMessage::V2 => AnyEncoder::V2(EncoderV2::default()),
        };
        let ts = check.timestamp_ms;
        for which in Series::ALL {
            for_each_series(check, which, |labels, value| {
                enc.series(labels, &[(value, ts)]);
                if enc.len() >= self.cfg.max_samples_per_send {
                    let n = enc.len();
                    out.push((compress(&enc.finish()), n));
                }
            });
        }
        if !enc.is_empty() {
            let n = enc.len();
            out.push((compress(&enc.finish()), n));
        }
        out
    }

    /// Sends one compressed request, retrying as the spec allows.
    pub async fn send(&self, body: Vec<u8>, shutdown: &mut watch::Receiver<bool>) -> Result<(), SendFailure> {
        let mut rng = Rng::new(body.len() as u64 ^ 0x5eed);
        let mut attempt = 0u32;
        loop {
            let (content_type, version) = match self.cfg.protobuf_message {
                RemoteWriteMessage::V1 => ("application/x-protobuf", "0.1.0"),
                RemoteWriteMessage::V2 => (remote_write_v2::CONTENT_TYPE, "2.0.0"),
            };
            let mut req = self
                .client
                .post(&self.cfg.url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", content_type)
                .header("X-Prometheus-Remote-Write-Version", version)
                .body(body.clone());
            for (k, v) in &self.cfg.headers {
                req = req.header(k, v);
            }
            if let Some(token) = &self.cfg.bearer_token {
                req = req.bearer_auth(token);
            }
            if let Some(b) = &self.cfg.basic_auth {
                req = req.basic_auth(&b.username, b.password.as_deref());
            }
            let mut wait = None;
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error() =>
                {
                    wait = crate::retry::retry_after(resp.headers());
                    debug!(exporter = %self.id, status = %resp.status(), "Remote-write target asked to retry.");
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    warn!(exporter = %self.id, status, body = %text.trim(), "Remote-write target rejected a batch.");
                    return Err(SendFailure::Rejected(status));
                }
                Err(error) => debug!(exporter = %self.id, %error, "Remote-write request failed."),
            }
            if attempt >= self.cfg.max_retries {
                return Err(SendFailure::RetriesExhausted);
            }
            attempt += 1;
            self.telemetry.export_retries.with(&[&self.id]).inc();
            let delay = self.retry.delay(attempt, wait, &mut rng);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return Err(SendFailure::Shutdown),
            }
        }
    }
}

impl ScoreWriter for RemoteWriteClient {
    /// Writes one check; failures are counted, never returned.
    async fn write(&self, check: &CheckScores, shutdown: &mut watch::Receiver<bool>) {
        for (body, n) in self.encode(check) {
            match self.send(body, shutdown).await {
                Ok(()) => self.telemetry.export_sent.with(&[&self.id]).add(n as f64),
                Err(f) => {
                    self.telemetry.export_failed.with(&[&self.id, f.reason()]).add(n as f64);
                    if f == SendFailure::RetriesExhausted {
                        warn!(exporter = %self.id, samples = n, "Dropped score batch after retries.");
                    }
                }
            }
        }
    }
}

/// Starts one exporter task per configured target.
pub fn spawn(
    targets: &[RemoteWriteConfig],
    telemetry: &Arc<Telemetry>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<ExporterHandle>, ClientError> {
    targets
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            let id = format!("remote_write[{i}]");
            let client = RemoteWriteClient::new(cfg.clone(), id.clone(), Arc::clone(telemetry))?;
            Ok(ExporterHandle::spawn(id, client, cfg.queue_capacity, telemetry, shutdown))
        })
        .collect()
}
