use axum::body::{Body, to_bytes};
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::proto::remote_write::{Encoder, compress};

fn app() -> (Router, Arc<Telemetry>) {
    let telemetry = Arc::new(Telemetry::default());
    let mut cfg = Config::default();
    cfg.ingest.max_decoded_bytes = 1 << 20;
    cfg.ingest.max_request_bytes = 64 << 10;
    let p = Pipeline::new(&cfg, Arc::clone(&telemetry)).unwrap();
    let state = AppState::new(&cfg, p.sink(), p.scoreboard(), Arc::clone(&telemetry), p.ready_flag());
    (router(state), telemetry)
}

fn write_req(body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .body(Body::from(body))
        .unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn valid_write_is_204_and_counted() {
    let (app, t) = app();
    let mut enc = Encoder::default();
    enc.series(&[("__name__", "dwcp_latency_ms"), ("instance", "a")], &[(1.0, 1_700_000_000_000)]);
    let (status, _) = call(&app, write_req(compress(&enc.finish()), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(t.samples_received.value(&["remote_write"]), 1.0);
    assert_eq!(t.requests.value(&["remote_write", "204"]), 1.0);
}

#[tokio::test]
async fn partly_invalid_write_is_400_with_reason_and_keeps_the_rest() {
    let (app, t) = app();
    let mut enc = Encoder::default();
    enc.series(&[("__name__", "dwcp_latency_ms"), ("instance", "a")], &[(1.0, 1_700_000_000_000)]);
    enc.series(&[("__name__", "dwcp_latency_ms"), ("b", "1"), ("a", "1")], &[(1.0, 1_700_000_000_000)]);
    let (status, body) = call(&app, write_req(compress(&enc.finish()), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unsorted_labels=1"), "{body}");
    assert!(body.contains("accepted 1 of 2"), "{body}");
    assert_eq!(t.samples_rejected.value(&["unsorted_labels"]), 1.0);
}

#[tokio::test]
async fn new_entities_beyond_their_rate_are_refused_as_retryable_and_the_rest_stored() {
    let telemetry = Arc::new(Telemetry::default());
    let mut cfg = Config::default();
    cfg.vectorize.max_new_entities_per_second = 2;
    let p = Pipeline::new(&cfg, Arc::clone(&telemetry)).unwrap();
    let state = AppState::new(&cfg, p.sink(), p.scoreboard(), Arc::clone(&telemetry), p.ready_flag());
    let app = router(state);
    let write = |instances: std::ops::Range<u32>| {
        let mut enc = Encoder::default();
        for i in instances {
            let instance = format!("n{i}");
            enc.series(
                &[("__name__", "dwcp_latency_ms"), ("instance", &instance)],
                &[(1.0, 1_700_000_000_000)],
            );
        }
        write_req(compress(&enc.finish()), "application/x-protobuf")
    };
    let resp = app.clone().oneshot(write(0..5)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["Retry-After"], "1");
    let body = String::from_utf8_lossy(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).into_owned();
    assert!(body.contains("new_entity_rate=3"), "{body}");
    assert!(body.contains("vectorize.max_new_entities_per_second = 2"), "{body}");
    assert!(body.contains("accepted 2 of 5 samples"), "the first two entities are stored: {body}");
    assert_eq!(telemetry.samples_rejected.value(&["new_entity_rate"]), 3.0);
    // Entities that exist keep being written while new ones wait.
    let mut enc = Encoder::default();
    enc.series(&[("__name__", "dwcp_latency_ms"), ("instance", "n0")], &[(2.0, 1_700_000_001_000)]);
    let (status, _) = call(&app, write_req(compress(&enc.finish()), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn malformed_bodies_get_4xx_with_a_reason() {
    let (app, t) = app();
    let (status, body) = call(&app, write_req(b"garbage".to_vec(), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("snappy"), "{body}");
    let (status, body) = call(&app, write_req(compress(&[0xff, 0xff]), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("protobuf"), "{body}");
    let (status, body) =
        call(&app, write_req(compress(b""), "application/x-protobuf;proto=io.prometheus.write.v3.Request"))
            .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("Content-Type"), "{body}");
    let (status, _) = call(&app, write_req(vec![0; 100 << 10], "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.requests.value(&["remote_write", "400"]), 2.0);
}

#[tokio::test]
async fn metrics_health_status_and_page_respond() {
    let (app, _) = app();
    let (status, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("# TYPE anomaly_score gauge"));
    assert!(body.contains("dwcp_anomaly_samples_rejected_total{reason=\"duplicate_label\"} 0"));
    let (status, _) = call(&app, Request::get("/-/healthy").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, Request::get("/-/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "not ready before the pipeline runs");
    let (status, body) = call(&app, Request::get("/api/v1/status").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["profile"], "dwcp");
    let (status, body) = call(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<h1>dwcp-anomaly</h1>") && body.contains("No entity matches."), "{body}");
}

mod otlp_http {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    use super::*;
    use crate::http::otlp::RpcStatus;

    fn request(values: &[f64]) -> ExportMetricsServiceRequest {
        let attr = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
            ..Default::default()
        };
        let points = values
            .iter()
            .map(|v| NumberDataPoint {
                time_unix_nano: 1_700_000_000_000_000_000,
                value: Some(number_data_point::Value::AsDouble(*v)),
                ..Default::default()
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![attr("service.name", "dwcp"), attr("service.instance.id", "n1")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "dwcp_latency_ms".into(),
                        data: Some(Data::Gauge(Gauge { data_points: points })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn post(body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> Request<Body> {
        let mut r = Request::post("/v1/metrics").header("Content-Type", content_type);
        if let Some(e) = encoding {
            r = r.header("Content-Encoding", e);
        }
        r.body(Body::from(body)).unwrap()
    }

    async fn call_raw(app: &Router, req: Request<Body>) -> (StatusCode, String, Vec<u8>) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = header_str(resp.headers(), header::CONTENT_TYPE).unwrap_or_default().to_string();
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec();
        (status, ct, body)
    }

    #[tokio::test]
    async fn protobuf_request_gets_a_protobuf_response_with_partial_success() {
        let (app, t) = app();
        let (status, ct, body) =
            call_raw(&app, post(request(&[1.0, f64::NAN]).encode_to_vec(), "application/x-protobuf", None))
                .await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/x-protobuf"));
        let resp = ExportMetricsServiceResponse::decode(&*body).unwrap();
        let ps = resp.partial_success.expect("partial_success for the NaN point");
        assert_eq!(ps.rejected_data_points, 1);
        assert!(ps.error_message.contains("non_finite_value=1"), "{}", ps.error_message);
        assert_eq!(t.samples_received.value(&["otlp_http"]), 2.0);
        assert_eq!(t.samples_rejected.value(&["non_finite_value"]), 1.0);
        assert_eq!(t.requests.value(&["otlp_http", "200"]), 1.0);
    }

    #[tokio::test]
    async fn json_request_gets_a_json_response() {
        let (app, _) = app();
        let body = serde_json::to_vec(&request(&[1.0])).unwrap();
        let (status, ct, body) = call_raw(&app, post(body, "application/json", None)).await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("partialSuccess").is_none_or(|p| p.is_null()), "{v}");
    }

    #[tokio::test]
    async fn bad_bodies_get_4xx_with_a_status_message_in_the_request_encoding() {
        let (app, t) = app();
        // Malformed protobuf → 400 with a protobuf google.rpc.Status.
        let (status, ct, body) =
            call_raw(&app, post(vec![0xff, 0xff, 0xff], "application/x-protobuf", None)).await;
        assert_eq!((status, ct.as_str()), (StatusCode::BAD_REQUEST, "application/x-protobuf"));
        let s = RpcStatus::decode(&*body).unwrap();
        assert_eq!(s.code, tonic::Code::InvalidArgument as i32);
        assert!(s.message.contains("cannot decode protobuf"), "{}", s.message);
        // JSON of the wrong shape → 400 with a JSON Status.
        let (status, ct, body) =
            call_raw(&app, post(br#"{"resourceMetrics":{}}"#.to_vec(), "application/json", None)).await;
        assert_eq!((status, ct.as_str()), (StatusCode::BAD_REQUEST, "application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], 3);
        assert!(v["message"].as_str().unwrap().contains("JSON"), "{v}");
        // Bad gzip → 400.
        let (status, _, body) =
            call_raw(&app, post(request(&[1.0]).encode_to_vec(), "application/x-protobuf", Some("gzip")))
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(RpcStatus::decode(&*body).unwrap().message.contains("gzip"));
        // Wrong content type → 415.
        let (status, _, body) = call_raw(&app, post(b"x".to_vec(), "text/plain", None)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(RpcStatus::decode(&*body).unwrap().message.contains("text/plain"));
        assert_eq!(t.requests.value(&["otlp_http", "400"]), 3.0);
        assert_eq!(t.requests.value(&["otlp_http", "415"]), 1.0);
    }

    #[tokio::test]
    async fn under_pressure_requests_are_refused_as_retryable() {
        let telemetry = Arc::new(Telemetry::default());
        let cfg = Config::default();
        let p = Pipeline::new(&cfg, Arc::clone(&telemetry)).unwrap();
        let mut state = AppState::new(&cfg, p.sink(), p.scoreboard(), Arc::clone(&telemetry), p.ready_flag());
        state.admission = Arc::new(crate::http::admission::Admission::new(0, 0, std::time::Duration::ZERO));
        let app = router(state);
        let resp = app
            .clone()
            .oneshot(post(request(&[1.0]).encode_to_vec(), "application/x-protobuf", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header_str(resp.headers(), header::RETRY_AFTER), Some("1"));
        let resp = app.oneshot(write_req(compress(b""), "application/x-protobuf")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(telemetry.samples_received.value(&["otlp_http"]), 0.0);
        assert_eq!(telemetry.ingest_refused.value(&["remote_write", "max_concurrent_requests"]), 1.0);
    }

    #[tokio::test]
    async fn over_the_memory_ceiling_ingest_is_refused_naming_the_limit() {
        let telemetry = Arc::new(Telemetry::default());
        // A ceiling far below any process's resident memory.
        let cfg = Config {
            limits: crate::config::LimitsConfig { max_memory_bytes: 4096, ..Default::default() },
            ..Config::default()
        };
        let p = Pipeline::new(&cfg, Arc::clone(&telemetry)).unwrap();
        let state = AppState::new(&cfg, p.sink(), p.scoreboard(), Arc::clone(&telemetry), p.ready_flag());
        let app = router(state);
        let resp = app.clone().oneshot(write_req(compress(b""), "application/x-protobuf")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header_str(resp.headers(), header::RETRY_AFTER), Some("1"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("limits.max_memory_bytes = 4096"), "{body}");
        assert_eq!(telemetry.ingest_refused.value(&["remote_write", "max_memory_bytes"]), 1.0);
        // Probes and /metrics still answer.
        let resp = app
            .oneshot(axum::http::Request::get("/-/healthy").body(axum::body::Body::empty()).unwrap())
            .await;
        assert_eq!(resp.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn remote_write_v2_answers_with_written_headers_and_names_a_bad_reference() {
    let (app, t) = app();
    // symbols: "", __name__, dwcp_latency_ms, instance, n1; series 2 points past the table.
    let mut body = Vec::new();
    for sym in ["", "__name__", "dwcp_latency_ms", "instance", "n1"] {
        crate::proto::wire::put_len_field(&mut body, 4, sym.as_bytes());
    }
    let sample = |value: f64| {
        let mut s = Vec::new();
        crate::proto::wire::put_key(&mut s, 1, crate::proto::wire::I64);
        s.extend_from_slice(&value.to_bits().to_le_bytes());
        crate::proto::wire::put_key(&mut s, 2, crate::proto::wire::VARINT);
        crate::proto::wire::put_varint(&mut s, 1_700_000_000_000);
        s
    };
    for refs in [[1u8, 2, 3, 4], [1, 2, 3, 9]] {
        let mut ts = Vec::new();
        crate::proto::wire::put_len_field(&mut ts, 1, &refs);
        crate::proto::wire::put_len_field(&mut ts, 2, &sample(2.0));
        crate::proto::wire::put_len_field(&mut body, 5, &ts);
    }
    let req = write_req(compress(&body), crate::proto::remote_write_v2::CONTENT_TYPE);
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(h("X-Prometheus-Remote-Write-Samples-Written").as_deref(), Some("1"));
    assert_eq!(h("X-Prometheus-Remote-Write-Histograms-Written").as_deref(), Some("0"));
    assert_eq!(h("X-Prometheus-Remote-Write-Exemplars-Written").as_deref(), Some("0"));
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("invalid_symbol_ref=1"), "{body}");
    assert!(body.contains("label reference 9 is outside the symbol table of 5 symbols"), "{body}");
    assert_eq!(t.requests.value(&["remote_write_v2", "400"]), 1.0);
    assert_eq!(t.samples_received.value(&["remote_write_v2"]), 2.0);
}
