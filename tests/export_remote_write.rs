//! Remote-write out against a local receiver that answers with scripted statuses: 5xx and
//! 429 are retried with backoff, 4xx is not, and what arrives decodes to the score series.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use tokio::sync::watch;

use dwcp_anomaly::internals::check::{CheckScores, EntityScores};
use dwcp_anomaly::internals::config::{RemoteWriteConfig, RemoteWriteMessage};
use dwcp_anomaly::internals::detect::{EnsembleScore, ModelState, Severity};
use dwcp_anomaly::internals::export::ScoreWriter;
use dwcp_anomaly::internals::export::remote_write::{RemoteWriteClient, SendFailure};
use dwcp_anomaly::internals::proto::remote_write::decode;
use dwcp_anomaly::internals::telemetry::Telemetry;

#[derive(Default)]
struct Receiver {
    script: Mutex<Vec<u16>>,
    bodies: Mutex<Vec<(HeaderMap, Vec<u8>)>>,
}

async fn handle(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let status = {
        let mut s = r.script.lock();
        if s.is_empty() { 204 } else { s.remove(0) }
    };
    r.bodies.lock().push((headers, body.to_vec()));
    (StatusCode::from_u16(status).unwrap(), [("Retry-After", "0")])
}

async fn receiver(script: Vec<u16>) -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver { script: Mutex::new(script), ..Default::default() });
    let app = Router::new().route("/api/v1/write", post(handle)).with_state(Arc::clone(&r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn config(url: &str) -> RemoteWriteConfig {
    RemoteWriteConfig {
        url: url.into(),
        timeout: Duration::from_secs(2),
        max_samples_per_send: 5,
        max_retries: 3,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        queue_capacity: 4,
        headers: [("X-Scope-OrgID".to_string(), "tenant-1".to_string())].into(),
        bearer_token: Some("s3cret".into()),
        bearer_token_file: None,
        basic_auth: None,
        tls_config: None,
        protobuf_message: RemoteWriteMessage::V1,
    }
}

fn check() -> CheckScores {
    let score = EnsembleScore {
        confidence: 0.95,
        anomalous: true,
        voted: true,
        threshold: 0.5,
        severity: Severity::Critical,
        contributions: vec![0.8, 0.2],
        expected: Vec::new(),
        detectors: Vec::new(),
        flag_rate: None,
    };
    CheckScores {
        timestamp_ms: 1_700_000_000_000,
        profile: "dwcp".into(),
        features: vec!["latency_ms".to_string(), "cpu_pct".to_string()].into(),
        entities: vec![
            EntityScores {
                labels: vec![("instance".to_string(), "n1".to_string())].into(),
                state: ModelState::Ready,
                score: Some(score),
                values: vec![1.0, 2.0],
                rules: Some("multivariate"),
            }
            .into(),
        ],
        merged: Vec::new(),
    }
}

#[tokio::test]
async fn server_errors_and_429_are_retried_then_succeed() {
    let (url, r) = receiver(vec![500, 429, 503]).await;
    let t = Arc::new(Telemetry::default());
    let client = RemoteWriteClient::new(config(&url), "rw".into(), Arc::clone(&t)).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    let body = client.encode(&check()).remove(0).0;
    assert_eq!(client.send(body, &mut rx).await, Ok(()));
    assert_eq!(r.bodies.lock().len(), 4);
    assert_eq!(t.export_retries.value(&["rw"]), 3.0);
    let (headers, _) = &r.bodies.lock()[0];
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-scope-orgid"], "tenant-1");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (url, r) = receiver(vec![400]).await;
    let client = RemoteWriteClient::new(config(&url), "rw".into(), Arc::new(Telemetry::default())).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    let body = client.encode(&check()).remove(0).0;
    assert_eq!(client.send(body, &mut rx).await, Err(SendFailure::Rejected(400)));
    assert_eq!(r.bodies.lock().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (url, r) = receiver(vec![500; 10]).await;
    let client = RemoteWriteClient::new(config(&url), "rw".into(), Arc::new(Telemetry::default())).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    let body = client.encode(&check()).remove(0).0;
    assert_eq!(client.send(body, &mut rx).await, Err(SendFailure::RetriesExhausted));
    assert_eq!(r.bodies.lock().len(), 4, "first attempt + max_retries");
}

#[tokio::test]
async fn a_check_is_batched_and_decodes_to_the_score_series() {
    let (url, r) = receiver(vec![]).await;
    let t = Arc::new(Telemetry::default());
    let client = RemoteWriteClient::new(config(&url), "rw".into(), Arc::clone(&t)).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    client.write(&check(), &mut rx).await;
    let bodies = r.bodies.lock();
    // score, flag, severity, 2 feature scores, 3 model states = 8 series in batches of 5.
    assert_eq!(bodies.len(), 2);
    let mut names = Vec::new();
    for (_, b) in bodies.iter() {
        let raw = snap::raw::Decoder::new().decompress_vec(b).unwrap();
        let req = decode(&raw).unwrap();
        for s in &req.series {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|l| (l.name, l.value)).collect();
            let mut sorted = labels.clone();
            sorted[1..].sort();
            assert_eq!(labels, sorted, "labels must be sorted");
            assert_eq!(s.samples[0].timestamp_ms, 1_700_000_000_000);
            names.push(format!("{:?}={}", labels, s.samples[0].value));
        }
    }
    assert_eq!(names.len(), 10, "score, flag, severity, 2 feature scores, 3 states, threshold, model info");
    assert!(names.iter().any(|n| n.contains("\"anomaly_flag\"") && n.ends_with("=1")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("(\"feature\", \"latency_ms\")") && n.ends_with("=0.8")),
        "{names:?}"
    );
    assert_eq!(t.export_sent.value(&["rw"]), 10.0);
}

/// Remote-write 2.0 as prost generates it from `io/prometheus/write/v2/types.proto`.
mod v2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

#[tokio::test]
async fn a_v2_target_gets_remote_write_2_0_requests() {
    use prost::Message;
    let (url, r) = receiver(vec![]).await;
    let mut cfg = config(&url);
    cfg.protobuf_message = RemoteWriteMessage::V2;
    cfg.max_samples_per_send = 100;
    let client = RemoteWriteClient::new(cfg, "rw2".into(), Arc::new(Telemetry::default())).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    client.write(&check(), &mut rx).await;
    let bodies = r.bodies.lock();
    assert_eq!(bodies.len(), 1);
    let (headers, body) = &bodies[0];
    assert_eq!(headers["content-type"], "application/x-protobuf;proto=io.prometheus.write.v2.Request");
    assert_eq!(headers["x-prometheus-remote-write-version"], "2.0.0");
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let req = v2::Request::decode(&*raw).unwrap();
    assert_eq!(req.symbols[0], "", "the symbol table starts with the empty string");
    assert_eq!(req.timeseries.len(), 10);
    let labels = |ts: &v2::TimeSeries| -> Vec<(String, String)> {
        ts.labels_refs
            .chunks(2)
            .map(|p| (req.symbols[p[0] as usize].clone(), req.symbols[p[1] as usize].clone()))
            .collect()
    };
    let flag = req.timeseries.iter().find(|ts| labels(ts)[0].1 == "anomaly_flag").unwrap();
    assert_eq!(
        labels(flag),
        [("__name__", "anomaly_flag"), ("instance", "n1"), ("profile", "dwcp")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!((flag.samples[0].value, flag.samples[0].timestamp), (1.0, 1_700_000_000_000));
    let unique: std::collections::BTreeSet<&String> = req.symbols.iter().collect();
    assert_eq!(unique.len(), req.symbols.len(), "each symbol once");
}

#[tokio::test]
async fn basic_auth_from_a_password_file_is_sent_and_never_shown() {
    let (url, r) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let (secret, path) = (dir.path().join("pw"), dir.path().join("c.yaml"));
    std::fs::write(&secret, "pa55word\n").unwrap();
    std::fs::write(
        &path,
        format!(
            "export:\n  remote_write:\n    - url: {url}\n      basic_auth:\n        username: scores\n        password_file: {}\n",
            secret.display()
        ),
    )
    .unwrap();
    let cfg = dwcp_anomaly::Config::load(Some(&path)).unwrap();
    assert!(!cfg.to_yaml().contains("pa55word"), "{}", cfg.to_yaml());
    let rw = cfg.export.remote_write[0].clone();
    let client = RemoteWriteClient::new(rw, "rw".into(), Arc::new(Telemetry::default())).unwrap();
    let (_tx, mut rx) = watch::channel(false);
    let body = client.encode(&check()).remove(0).0;
    assert_eq!(client.send(body, &mut rx).await, Ok(()));
    let (headers, _) = &r.bodies.lock()[0];
    // base64("scores:pa55word")
    assert_eq!(headers["authorization"], "Basic c2NvcmVzOnBhNTV3b3Jk");

    // Both kinds of credentials on one target is a config error naming the key.
    std::fs::write(
        &path,
        format!("export:\n  remote_write:\n    - url: {url}\n      bearer_token: t\n      basic_auth:\n        username: s\n"),
    )
    .unwrap();
    let err = dwcp_anomaly::Config::load(Some(&path)).unwrap_err().to_string();
    assert!(err.contains("export.remote_write[0].basic_auth"), "{err}");
}
