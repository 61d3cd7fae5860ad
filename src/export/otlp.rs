//! OTLP out: the score series of every check as OTLP gauges, to a collector over gRPC or
//! HTTP/protobuf.
//!
//! One request per check: a resource (`service.name` from config, `service.instance.id` the
//! listen address) with one gauge per product series (`anomaly_score`, `anomaly_flag`, …);
//! every data point carries the entity labels, `profile` and the series' extra label
//! (`detector`, `feature`, `state`) as attributes. A collector's Prometheus exporters turn
//! them back into exactly the series `/metrics` shows. Like remote-write out, one task per
//! target reads a bounded queue; retryable failures (gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//! …; HTTP 429/502/503/504) are retried with backoff, others are dropped and counted.

use std::io::Write as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::StatusCode;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http;
use tonic::transport::Channel;
use tracing::{debug, warn};

use super::remote_write::SendFailure;
use super::{ExporterHandle, ScoreWriter, Series, for_each_series};
use crate::check::CheckScores;
use crate::config::{OtlpExportConfig, OtlpProtocol};
use crate::proto::otlp::string_kv;
use crate::retry::RetryPolicy;
use crate::rng::Rng;
use crate::telemetry::Telemetry;

/// Builds the OTLP request for one check.
pub fn encode(check: &CheckScores, service_name: &str) -> ExportMetricsServiceRequest {
    let time_unix_nano = (check.timestamp_ms.max(0) as u64) * 1_000_000;
    let metrics = Series::ALL
        .iter()
        .map(|&which| {
            let mut data_points = Vec::new();
            for_each_series(check, which, |labels, value| {
                let attributes = labels.iter().skip(1).map(|(k, v)| string_kv(k, v)).collect();
                data_points.push(NumberDataPoint {
                    attributes,
                    time_unix_nano,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                });
            });
            Metric {
                name: which.name().into(),
                description: which.help().into(),
                data: Some(Data::Gauge(Gauge { data_points })),
                ..Default::default()
            }
        })
        .filter(|m| matches!(&m.data, Some(Data::Gauge(g)) if !g.data_points.is_empty()))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service_name)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "dwcp-anomaly".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn points(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            _ => 0,
        })
        .sum()
}

enum Transport {
    Grpc(MetricsServiceClient<Channel>),
    Http(reqwest::Client),
}

/// Whether a gRPC status is worth retrying (OTLP specification, "Failures").
fn grpc_retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(code, Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss)
}

/// An OTLP client for one target.
pub struct OtlpClient {
    cfg: OtlpExportConfig,
    transport: Transport,
    id: String,
    telemetry: Arc<Telemetry>,
    retry: RetryPolicy,
}

/// Why an OTLP exporter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpSetupError {
    /// Bad endpoint for gRPC.
    #[error("export.otlp endpoint {endpoint:?}: {source}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why the URI is invalid.
        source: http::uri::InvalidUri,
    },
    /// The HTTP client cannot be built.
    #[error("export.otlp HTTP client: {0}")]
    Http(#[from] crate::retry::ClientError),
    /// A file of `tls_config` is missing or not PEM, or TLS cannot be set up (gRPC).
    #[error("export.otlp {key}: {file}: {reason}")]
    Tls {
        /// The key naming the file.
        key: &'static str,
        /// The file (or endpoint).
        file: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `tls_config` for a gRPC channel: `ca_file` as the only roots, `cert_file`/`key_file` as the
/// client's identity.
fn grpc_tls(
    tls: &crate::config::TlsClientConfig,
) -> Result<tonic::transport::ClientTlsConfig, OtlpSetupError> {
    let read = |key: &'static str, file: &std::path::Path| {
        std::fs::read(file).map_err(|e| OtlpSetupError::Tls {
            key,
            file: file.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let mut c = tonic::transport::ClientTlsConfig::new();
    if let Some(ca) = &tls.ca_file {
        c = c.ca_certificate(tonic::transport::Certificate::from_pem(read("tls_config.ca_file", ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let (cert, key) = (read("tls_config.cert_file", cert)?, read("tls_config.key_file", key)?);
        c = c.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    Ok(c)
}

impl OtlpClient {
    /// A client for `cfg`; `id` is the `exporter` label (e.g. `otlp[0]`).
    pub fn new(cfg: OtlpExportConfig, id: String, telemetry: Arc<Telemetry>) -> Result<Self, OtlpSetupError> {
        let transport = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let mut endpoint = Channel::from_shared(cfg.endpoint.clone())
                    .map_err(|source| OtlpSetupError::Endpoint { endpoint: cfg.endpoint.clone(), source })?
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout);
                if let Some(tls) = &cfg.tls_config {
                    endpoint = endpoint.tls_config(grpc_tls(tls)?).map_err(|e| OtlpSetupError::Tls {
                        key: "tls_config",
                        file: cfg.endpoint.clone().into(),
                        reason: e.to_string(),
                    })?;
                }
                let mut client = MetricsServiceClient::new(endpoint.connect_lazy());
                if cfg.gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                Transport::Grpc(client.accept_compressed(CompressionEncoding::Gzip))
            }
            OtlpProtocol::HttpProtobuf => {
                let client = crate::retry::http_client()
                    .timeout(cfg.timeout)
                    .user_agent(concat!("dwcp-anomaly/", env!("CARGO_PKG_VERSION")));
                let client = crate::retry::with_tls(client, cfg.tls_config.as_ref())?;
                Transport::Http(client.build().map_err(crate::retry::ClientError::from)?)
            }
        };
        let retry =
            RetryPolicy { retries: cfg.max_retries, backoff: cfg.min_backoff, max_backoff: cfg.max_backoff };
        Ok(Self { cfg, transport, id, telemetry, retry })
    }

    /// One attempt: `Ok(response)`, or `Err((retryable, retry-after, reason))`.
    async fn attempt(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, (bool, Option<std::time::Duration>, String)> {
        match &self.transport {
            Transport::Grpc(client) => {
                let mut request = tonic::Request::new(req.clone());
                for (k, v) in &self.cfg.headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        v.parse(),
                    ) {
                        request.metadata_mut().insert(k, v);
                    }
                }
                match client.clone().export(request).await {
                    Ok(resp) => Ok(resp.into_inner()),
                    Err(s) => {
                        Err((grpc_retryable(s.code()), None, format!("{:?}: {}", s.code(), s.message())))
                    }
                }
            }
            Transport::Http(client) => {
                let raw = req.encode_to_vec();
                let mut r = client.post(&self.cfg.endpoint).header("Content-Type", "application/x-protobuf");
                let body = if self.cfg.gzip {
                    r = r.header("Content-Encoding", "gzip");
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    // Writing to a Vec cannot fail.
                    let _ = gz.write_all(&raw);
                    gz.finish().unwrap_or_default()
                } else {
                    raw
                };
                for (k, v) in &self.cfg.headers {
                    r = r.header(k, v);
                }
                match r.body(body).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let bytes = resp.bytes().await.unwrap_or_default();
                        Ok(ExportMetricsServiceResponse::decode(&*bytes).unwrap_or_default())
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        let retryable = matches!(
                            status,
                            StatusCode::TOO_MANY_REQUESTS
                                | StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                        let after = crate::retry::retry_after(resp.headers());
                        Err((retryable, after, format!("HTTP {status}")))
                    }
                    Err(e) => Err((true, None, e.to_string())),
                }
            }
        }
    }

    /// Sends one request, retrying what the OTLP specification calls retryable.
    pub async fn send(
        &self,
        req: &ExportMetricsServiceRequest,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SendFailure> {
        let mut rng = Rng::new(req.encoded_len() as u64 ^ 0x0714);
        let mut attempt = 0u32;
        loop {
            let wait = match self.attempt(req).await {
                Ok(resp) => {
                    if let Some(ps) = resp.partial_success.filter(|p| p.rejected_data_points > 0) {
                        warn!(exporter = %self.id, rejected = ps.rejected_data_points, message = %ps.error_message,
                            "OTLP target rejected part of the scores.");
                    }
                    return Ok(());
                }
                Err((false, _, reason)) => {
                    warn!(exporter = %self.id, %reason, "OTLP target rejected the scores.");
                    return Err(SendFailure::Rejected(0));
                }
                Err((true, after, reason)) => {
                    debug!(exporter = %self.id, %reason, "OTLP export failed; will retry.");
                    after
                }
            };
            if attempt >= self.retry.retries {
                return Err(SendFailure::RetriesExhausted);
            }
            attempt += 1;
            self.telemetry.export_retries.with(&[&self.id]).inc();
            tokio::select! {
                _ = tokio::time::sleep(self.retry.delay(attempt, wait, &mut rng)) => {}
                _ = shutdown.wait_for(|s| *s) => return Err(SendFailure::Shutdown),
            }
        }
    }
}

impl ScoreWriter for OtlpClient {
    /// Writes one check; failures are counted, never returned.
    async fn write(&self, check: &CheckScores, shutdown: &mut watch::Receiver<bool>) {
        let req = encode(check, &self.cfg.service_name);
        let n = points(&req);
        if n == 0 {
            return;
        }
        match self.send(&req, shutdown).await {
            Ok(()) => self.telemetry.export_sent.with(&[&self.id]).add(n as f64),
            Err(f) => self.telemetry.export_failed.with(&[&self.id, f.reason()]).add(n as f64),
        }
    }
}

/// Starts one exporter task per configured OTLP target.
pub fn spawn(
    targets: &[OtlpExportConfig],
    telemetry: &Arc<Telemetry>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<ExporterHandle>, OtlpSetupError> {
    targets
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            let id = format!("otlp[{i}]");
            let client = OtlpClient::new(cfg.clone(), id.clone(), Arc::clone(telemetry))?;
            Ok(ExporterHandle::spawn(id, client, 64, telemetry, shutdown))
        })
        .collect()
}
