//! `serve --web.config.file`: no, wrong and right credentials on every protected endpoint of
//! a real process on loopback (401 / 401 / 2xx; gRPC `UNAUTHENTICATED` / OK), the health probes
//! open, every refusal counted by reason, and no secret in the log.

mod common;

use base64::Engine as _;
use common::*;
use dwcp_anomaly::internals::proto::remote_write;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

const PASSWORD: &str = "correct-horse-battery";
const TOKEN: &str = "tok-0123456789abcdef0123";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn remote_write_body() -> Vec<u8> {
    let mut enc = remote_write::Encoder::default();
    enc.series(
        &[("__name__", "dwcp_latency_ms"), ("instance", "n1"), ("job", "dwcp")],
        &[(12.0, dwcp_anomaly::internals::rfc3339::now_ms())],
    );
    remote_write::compress(&enc.finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_everywhere_but_the_health_probes() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  ops: {hash}\nbearer_tokens:\n  - {TOKEN}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    )
    .unwrap();
    let (port, grpc_port) = (free_port(), free_port());
    let svc = start_service_grpc(
        "auth",
        dir.path(),
        port,
        grpc_port,
        &format!(
            "web_config_file: {}\ningest:\n  max_request_bytes: 65536\n  max_decoded_bytes: 65536\n",
            web.display()
        ),
    )
    .await;
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    for probe in ["/-/healthy", "/-/ready"] {
        let r = client.get(format!("{base}{probe}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe} stays open");
    }
    let wrong = basic("ops", "wrong-password");
    let cases: [(&str, &str); 5] = [
        ("POST", "/api/v1/write"),
        ("POST", "/v1/metrics"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/status"),
        ("GET", "/"),
    ];
    for (method, path) in cases {
        let send = |auth: Option<String>| {
            let mut req = match method {
                "POST" if path == "/api/v1/write" => client
                    .post(format!("{base}{path}"))
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(remote_write_body()),
                "POST" => client
                    .post(format!("{base}{path}"))
                    .header("Content-Type", "application/x-protobuf")
                    .body(prost::Message::encode_to_vec(&ExportMetricsServiceRequest::default())),
                _ => client.get(format!("{base}{path}")),
            };
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send()
        };
        let none = send(None).await.unwrap();
        assert_eq!(none.status(), 401, "{method} {path} without credentials");
        let challenge: Vec<_> = none.headers().get_all("www-authenticate").iter().collect();
        assert!(challenge.iter().any(|v| v.to_str().unwrap().starts_with("Basic")), "{challenge:?}");
        assert_eq!(none.headers()["x-frame-options"], "deny");
        assert_eq!(send(Some(wrong.clone())).await.unwrap().status(), 401, "{method} {path} wrong password");
        assert_eq!(
            send(Some("Bearer not-the-token-at-all".into())).await.unwrap().status(),
            401,
            "{method} {path} wrong token"
        );
        for right in [basic("ops", PASSWORD), format!("Bearer {TOKEN}")] {
            let r = send(Some(right)).await.unwrap();
            assert!(r.status().is_success(), "{method} {path} with credentials: {}", r.status());
        }
    }

    // OTLP/gRPC: the same credentials in the metadata.
    let mut grpc = MetricsServiceClient::connect(format!("http://127.0.0.1:{grpc_port}")).await.unwrap();
    let err = grpc.export(ExportMetricsServiceRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let mut req = tonic::Request::new(ExportMetricsServiceRequest::default());
    req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    grpc.export(req).await.unwrap();
    // The credentials are checked before the message is read: a message over the decoding
    // limit is refused for its missing credentials, not decoded (it would be refused for its
    // size with them).
    let mut big = ExportMetricsServiceRequest::default();
    big.resource_metrics.push(opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
        schema_url: "x".repeat(200_000),
        ..Default::default()
    });
    let err = grpc.export(big.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let mut req = tonic::Request::new(big);
    req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let err = grpc.export(req).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Unauthenticated, "{err}");

    // Every refusal counted by listener and reason, and no secret anywhere in the log.
    let metrics = client
        .get(format!("{base}/metrics"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (listener, reason) in [("http", "missing"), ("http", "invalid"), ("otlp_grpc", "missing")] {
        let line = format!("dwcp_anomaly_auth_failures_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
        assert!(metrics.lines().any(|l| l.starts_with(&line) && !l.ends_with(" 0")), "{line}\n{metrics}");
    }
    let log = std::fs::read_to_string(&svc.log).unwrap();
    for secret in [PASSWORD, TOKEN, "wrong-password", hash.as_str()] {
        assert!(!log.contains(secret), "the log holds a secret: {log}");
    }
    assert!(log.contains("Authentication on"), "{log}");
}

#[test]
fn a_web_config_with_bad_tls_or_a_bad_hash_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  key_file: a.key\n", "tls_server_config.cert_file"),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAnyClientCert\n",
            "tls_server_config.client_auth_type",
        ),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS11\n", "TLS11"),
        ("basic_auth_users:\n  ops: plaintext\n", "basic_auth_users.ops"),
        ("basic_auth_user:\n  ops: x\n", "basic_auth_user"),
    ] {
        let web = dir.path().join("web.yml");
        std::fs::write(&web, text).unwrap();
        let out = std::process::Command::new(service_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--web.config.file", web.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(key) && stderr.contains("web.yml"), "{key}: {stderr}");
    }
}
