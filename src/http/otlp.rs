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
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
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
            Ok((decoded, enc)) => match ingest(&st, &decoded, "otlp_http") {
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
fn ingest(st: &AppState, decoded: &otlp::Decoded, protocol: &str) -> Result<OtlpOutcome, IngestError> {
    otlp::check_request(&decoded.request, &st.otlp.limits)?;
    let out = otlp::ingest_decoded(decoded, &st.otlp, st.sink.as_ref());
    out.samples.record(protocol, &st.telemetry);
    Ok(out)
}

/// `MetricsService/Export`, over the same state as the HTTP handlers.
async fn export(
    st: AppState,
    request: tonic::Request<otlp::Decoded>,
) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
    let st = &st;
    {
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

/// The gRPC path of `MetricsService/Export`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// `MetricsService` by hand instead of the generated server, for its codec: requests decode
/// with `otlp::decode_protobuf`, so a string that is not UTF-8 costs the points it touches
/// rather than the whole message (prost's codec refuses the message).
#[derive(Clone)]
pub struct GrpcServer(AppState);

impl tonic::server::NamedService for GrpcServer {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for GrpcServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let st = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(
                    tonic::Status::unimplemented(format!("no method {}", req.uri().path())).into_http()
                );
            }
            let mut grpc = tonic::server::Grpc::new(ExportCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(st.limits.max_decoded_bytes);
            Ok(grpc.unary(ExportMethod(st), req).await)
        })
    }
}

struct ExportMethod(AppState);

impl tonic::server::UnaryService<otlp::Decoded> for ExportMethod {
    type Response = ExportMetricsServiceResponse;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<otlp::Decoded>) -> Self::Future {
        Box::pin(export(self.0.clone(), request))
    }
}

/// Responses encode with prost; requests decode with `otlp::decode_protobuf`.
struct ExportCodec;

impl tonic::codec::Codec for ExportCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = otlp::Decoded;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec
    }
}

impl tonic::codec::Encoder for ExportCodec {
    type Item = ExportMetricsServiceResponse;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl tonic::codec::Decoder for ExportCodec {
    type Item = otlp::Decoded;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        use prost::bytes::Buf;
        let raw = src.copy_to_bytes(src.remaining());
        otlp::decode_protobuf(&raw).map(Some).map_err(|e| tonic::Status::invalid_argument(e.to_string()))
    }
}

/// The OTLP/gRPC service, accepting and answering gzip, behind the credential check.
pub fn grpc_service(
    state: AppState,
) -> tonic::service::interceptor::InterceptedService<GrpcServer, AuthInterceptor> {
    tonic::service::interceptor::InterceptedService::new(GrpcServer(state.clone()), AuthInterceptor(state))
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
