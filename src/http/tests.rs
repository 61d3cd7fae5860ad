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
async fn malformed_bodies_get_4xx_with_a_reason() {
    let (app, t) = app();
    let (status, body) = call(&app, write_req(b"garbage".to_vec(), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("snappy"), "{body}");
    let (status, body) = call(&app, write_req(compress(&[0xff, 0xff]), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("protobuf"), "{body}");
    let (status, body) =
        call(&app, write_req(compress(b""), "application/x-protobuf;proto=io.prometheus.write.v2.Request"))
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
    assert!(body.contains("<table>"));
}
