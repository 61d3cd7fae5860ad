//! OTLP/HTTP (`POST /v1/metrics`) and OTLP/gRPC (`MetricsService/Export`) handlers.
//!
//! Both hand the decoded request to `ingest::otlp` and answer as the OTLP specification says:
//! success (possibly with `partial_success` naming what was rejected and why), 400 with a
//! `google.rpc.Status` body in the request's encoding for a body that cannot be decoded, 415
//! for a content type that is neither protobuf nor JSON, and 503 with `Retry-After` (gRPC
//! `UNAVAILABLE`) when `ingest.max_concurrent_requests` are already being handled.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;

use super::{AppState, error, header_str};
use crate::ingest::IngestError;
use crate::ingest::otlp::{self, Encoding, OtlpOutcome};
use crate::telemetry::otel;

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// gRPC status code (3 `INVALID_ARGUMENT`, 14 `UNAVAILABLE`, ...).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What was wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

fn encode<T: Message + serde::Serialize>(msg: &T, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
    }
}

fn error_response(status: StatusCode, message: String, enc: Encoding) -> Response {
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        s if s.is_client_error() => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    };
    let body = encode(&RpcStatus { code: code as i32, message }, enc);
    let mut resp = (status, [(header::CONTENT_TYPE, enc.content_type())], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// `POST /v1/metrics`.
pub(super) async fn http_handler(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let start = std::time::SystemTime::now();
    let mut samples = 0;
    let ct = header_str(&headers, header::CONTENT_TYPE);
    let enc = error_encoding(&headers);
    let response =
        match otlp::decode_http(&body, ct, header_str(&headers, header::CONTENT_ENCODING), st.limits) {
            Ok((req, enc)) => match ingest(&st, &req, "otlp_http") {
                Ok(out) if out.samples.retry_later() > 0 => {
                    samples = out.samples.samples_received;
                    error_response(StatusCode::SERVICE_UNAVAILABLE, out.samples.summary(), enc)
                }
                Ok(out) => {
                    samples = out.samples.samples_received;
                    let body = encode(&out.response(), enc);
                    (StatusCode::OK, [(header::CONTENT_TYPE, enc.content_type())], body).into_response()
                }
                Err(e) => error_response(error::ingest_status(&e), e.to_string(), enc),
            },
            Err(e) => error_response(error::ingest_status(&e), e.to_string(), enc),
        };
    st.admission.spend(samples);
    let status = response.status();
    st.telemetry.requests.with(&["otlp_http", status.as_str()]).inc();
    otel::request_span("POST /v1/metrics", start, status.as_u16(), "otlp_http", samples);
    response
}

/// The answer to an OTLP/HTTP request refused for load, in the request's encoding.
pub(super) fn overloaded(headers: &HeaderMap, why: String) -> Response {
    error_response(StatusCode::SERVICE_UNAVAILABLE, format!("overloaded: {why}"), error_encoding(headers))
}

/// Errors are answered in the request's encoding when it names one, else in protobuf.
fn error_encoding(headers: &HeaderMap) -> Encoding {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Protobuf)
}

/// Stores a decoded request within the per-request limits, counting what it rejected.
fn ingest(
    st: &AppState,
    req: &ExportMetricsServiceRequest,
    protocol: &str,
) -> Result<OtlpOutcome, IngestError> {
    otlp::check_request(req, &st.otlp.limits)?;
    let out = otlp::ingest(req, &st.otlp, st.sink.as_ref());
    out.samples.record(protocol, &st.telemetry);
    Ok(out)
}

/// The OTLP/gRPC metrics service over the same state as the HTTP handlers.
#[derive(Clone)]
pub struct GrpcService(AppState);

#[tonic::async_trait]
impl MetricsService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let st = &self.0;
        // The interceptor admitted bearer tokens and known pairs before decoding; a new user and
        // password pays bcrypt here, on a blocking thread.
        if let Some(auth) = st.auth.as_ref().filter(|a| a.protects("/v1/metrics"))
            && request.extensions().get::<Admitted>().is_none()
        {
            let header = request.metadata().get("authorization").map(|v| v.as_bytes());
            if let Err(reason) = auth.admit(header, &st.telemetry, "otlp_grpc").await {
                return Err(unauthenticated(reason));
            }
        }
        let start = std::time::SystemTime::now();
        let mut samples = 0;
        let result = match st.admission.admit("otlp_grpc", &st.telemetry) {
            Err(why) => Err(tonic::Status::unavailable(format!("overloaded: {why}"))),
            Ok(_permit) => match ingest(st, request.get_ref(), "otlp_grpc") {
                Ok(out) => {
                    samples = out.samples.samples_received;
                    if out.samples.retry_later() > 0 {
                        Err(tonic::Status::unavailable(out.samples.summary()))
                    } else {
                        Ok(tonic::Response::new(out.response()))
                    }
                }
                // Too big a batch is permanent for this batch: the sender must split it.
                Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
            },
        };
        st.admission.spend(samples);
        let code = result.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        st.telemetry.requests.with(&["otlp_grpc", &format!("{code:?}")]).inc();
        // gRPC status as the HTTP status an OTLP/HTTP server would answer.
        let status = match code {
            tonic::Code::Ok => 200,
            tonic::Code::InvalidArgument => 413,
            _ => 503,
        };
        otel::request_span(
            "opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            start,
            status,
            "otlp_grpc",
            samples,
        );
        result
    }
}

fn unauthenticated(reason: super::auth::AuthFailure) -> tonic::Status {
    tonic::Status::unauthenticated(format!(
        "{}: send Basic credentials or a Bearer token in the authorization metadata",
        reason.as_str()
    ))
}

/// Marks a request the interceptor admitted.
#[derive(Clone, Copy)]
struct Admitted;

/// Checks credentials from the metadata before the message is read and decoded: a request
/// without credentials, or with a wrong token, costs no decoding.
#[derive(Clone)]
pub struct AuthInterceptor(AppState);

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let st = &self.0;
        // Over the memory ceiling, or with checks behind, the message is not even read.
        st.admission
            .check_memory("otlp_grpc", &st.telemetry)
            .and_then(|()| st.admission.check_lag("otlp_grpc", &st.telemetry))
            .map_err(|why| tonic::Status::unavailable(format!("overloaded: {why}")))?;
        if let Some(auth) = st.auth.as_ref().filter(|a| a.protects("/v1/metrics")) {
            let header = request.metadata().get("authorization").map(|v| v.as_bytes());
            if auth.screen(header, &st.telemetry, "otlp_grpc").map_err(unauthenticated)? {
                request.extensions_mut().insert(Admitted);
            }
        }
        Ok(request)
    }
}

/// The tonic service for `MetricsService/Export`, accepting and answering gzip, behind the
/// credential check.
pub fn grpc_service(
    state: AppState,
) -> tonic::service::interceptor::InterceptedService<MetricsServiceServer<GrpcService>, AuthInterceptor> {
    let limit = state.limits.max_decoded_bytes;
    let server = MetricsServiceServer::new(GrpcService(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::service::interceptor::InterceptedService::new(server, AuthInterceptor(state))
}

/// Serves OTLP/gRPC on `listener` (over TLS from `tls` when given) until `shutdown` resolves.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<super::tls::TlsSource>>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), anyhow::Error> {
    let server = tonic::transport::Server::builder().add_service(grpc_service(state));
    match tls {
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            server.serve_with_incoming_shutdown(incoming, shutdown).await?;
        }
        Some(tls) => {
            let incoming = super::tls::TlsListener::new(listener, tls)?.into_stream();
            server.serve_with_incoming_shutdown(incoming, shutdown).await?;
        }
    }
    Ok(())
}
