//! OTLP in, end to end: the official OpenTelemetry Python SDK (`tests/fixtures/otel_replay.py`)
//! exports the DWCP gauges and a counter of three service instances — two over OTLP/gRPC, one
//! over OTLP/HTTP, all gzip-compressed — with a spike injected into two of them; the service
//! maps them to its entities and flags the anomalous ones on `/metrics`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dwcp_anomaly::internals::telemetry::names::{SAMPLES_RECEIVED, SAMPLES_REJECTED, SAMPLES_UNMATCHED};

/// `name{labels} value` lines of `family` in an exposition, as (instance, value).
fn values(text: &str, family: &str, filter: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(filter))
        .filter_map(|l| {
            let inst = l.split("instance=\"").nth(1)?.split('"').next()?.to_string();
            let v = l.rsplit(' ').next()?.parse().ok()?;
            Some((inst, v))
        })
        .collect()
}

fn counter(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn opentelemetry_sdk_exports_over_grpc_and_http_and_the_spikes_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state_n(dir.path(), 3);
    let replay = dir.path().join("replay");
    let replay_s = replay.to_str().unwrap();
    // 20 s of the same entities at 1 s steps; entities 1 and 2 spike from 8 s to 18 s.
    run_cli(&[
        "simulate",
        "--entities",
        "3",
        "--step",
        "1s",
        "--seed",
        "3",
        "--anomaly",
        "1:spike:8s:10s",
        "--anomaly",
        "2:spike:8s:10s",
        "csv",
        "--out",
        replay_s,
        "--duration",
        "20s",
    ]);

    let (port, grpc_port) = (free_port(), free_port());
    let config = format!("check_interval: 1s\nstate_dir: {}\n", state.display());
    let svc = start_service_grpc("serve", dir.path(), port, grpc_port, &config).await;

    let csv = |n: u32| replay.join(format!("dwcp-node-0{n}.csv")).display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otel_replay.py");
    let args: Vec<String> = vec![
        script.display().to_string(),
        "--interval".into(),
        "1".into(),
        "--target".into(),
        format!("dwcp-node-01=grpc:http://127.0.0.1:{grpc_port}:{}", csv(1)),
        "--target".into(),
        format!("dwcp-node-02=http:http://127.0.0.1:{port}/v1/metrics:{}", csv(2)),
        "--target".into(),
        format!("dwcp-node-03=grpc:http://127.0.0.1:{grpc_port}:{}", csv(3)),
    ];
    let mut client_proc = spawn("otel_replay", &common::python(), &args, dir.path());

    // Watch /metrics while the SDK exports: highest flag and ensemble score per instance.
    let http = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let mut max_flag: BTreeMap<String, f64> = BTreeMap::new();
    let mut scored: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = String::new();
    let start = Instant::now();
    while client_proc.alive() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replay still running after 60 s\n{}",
            client_proc.tail()
        );
        if let Some(text) = get_ok(&http, format!("http://127.0.0.1:{port}/metrics")).await {
            for (inst, v) in values(&text, "anomaly_flag", "") {
                let m = max_flag.entry(inst).or_insert(0.0);
                *m = m.max(v);
            }
            for (inst, _) in values(&text, "anomaly_score", "detector=\"ensemble\"") {
                *scored.entry(inst).or_default() += 1;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let client_log = client_proc.tail();
    assert!(client_log.contains("row 20/20"), "the SDK client did not finish:\n{client_log}");
    assert!(!client_log.contains("flush failed"), "an SDK export failed:\n{client_log}");
    let svc_log = svc.tail();
    for inst in ["dwcp-node-01", "dwcp-node-02", "dwcp-node-03"] {
        assert!(
            scored.get(inst).copied().unwrap_or(0) >= 5,
            "{inst} scored too rarely: {scored:?}\n{svc_log}"
        );
    }
    assert_eq!(max_flag.get("dwcp-node-01"), Some(&1.0), "gRPC spike not flagged: {max_flag:?}\n{svc_log}");
    assert_eq!(max_flag.get("dwcp-node-02"), Some(&1.0), "HTTP spike not flagged: {max_flag:?}\n{svc_log}");
    assert_eq!(max_flag.get("dwcp-node-03"), Some(&0.0), "normal instance flagged: {max_flag:?}\n{svc_log}");

    // Both protocols delivered; the counter (`dwcp.packets` → `dwcp_packets_total`) is a
    // series no DWCP feature selects; nothing was rejected.
    let last = get_ok(&http, format!("http://127.0.0.1:{port}/metrics")).await.unwrap_or(last);
    // 8 series (7 gauges and the counter) per instance and row; the SDK's shutdown may
    // export one more row.
    let grpc = counter(&last, &format!("{SAMPLES_RECEIVED}{{protocol=\"otlp_grpc\"}}"));
    let http_n = counter(&last, &format!("{SAMPLES_RECEIVED}{{protocol=\"otlp_http\"}}"));
    assert!((320.0..=336.0).contains(&grpc) && (160.0..=168.0).contains(&http_n), "{grpc} {http_n}\n{last}");
    assert!(counter(&last, SAMPLES_UNMATCHED) >= 60.0, "{last}");
    let rejected: f64 = last
        .lines()
        .filter(|l| l.starts_with(&format!("{SAMPLES_REJECTED}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 0.0, "{last}");
}

/// Data points of `metric` in the recorded requests of `protocol`, as (attributes, value).
fn recorded(lines: &str, protocol: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["protocol"] != protocol {
            continue;
        }
        for rm in v["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            let service = &rm["resource"]["attributes"][0];
            assert_eq!(service["key"], "service.name", "{rm:#}");
            assert_eq!(service["value"]["stringValue"], format!("scores-{protocol}"), "{rm:#}");
            for m in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten() {
                if m["name"] != metric {
                    continue;
                }
                for p in m["gauge"]["dataPoints"].as_array().into_iter().flatten() {
                    let attrs = p["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            (
                                a["key"].as_str().unwrap().to_string(),
                                a["value"]["stringValue"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    out.push((attrs, p["asDouble"].as_f64().unwrap()));
                }
            }
        }
    }
    out
}

/// Starts `tests/fixtures/otlp_sink.py` writing to `out`; returns it once it listens.
async fn start_sink(dir: &Path, grpc_port: u16, http_port: u16, out: &Path) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp_sink.py");
    let sink_args = vec![
        script.display().to_string(),
        "--grpc-port".into(),
        grpc_port.to_string(),
        "--http-port".into(),
        http_port.to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let sink = spawn("otlp_sink", &common::python(), &sink_args, dir);
    eventually(Duration::from_secs(20), "the OTLP sink to listen", || async {
        std::fs::read_to_string(&sink.log).unwrap_or_default().contains("ready").then_some(())
    })
    .await;
    sink
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_are_exported_over_otlp_grpc_and_http_to_an_independent_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());
    let (grpc_port, http_port) = (free_port(), free_port());
    let out = dir.path().join("requests.jsonl");
    let _sink = start_sink(dir.path(), grpc_port, http_port, &out).await;

    let port = free_port();
    let config = format!(
        "check_interval: 1s\nstate_dir: {}\nexport:\n  otlp:\n    \
         - endpoint: http://127.0.0.1:{grpc_port}\n      gzip: true\n      service_name: scores-grpc\n      \
         headers: {{x-tenant: dwcp}}\n    \
         - endpoint: http://127.0.0.1:{http_port}/v1/metrics\n      protocol: http_protobuf\n      \
         gzip: true\n      service_name: scores-http\n      headers: {{X-Tenant: dwcp}}\n",
        state.display()
    );
    let svc = start_service("serve", dir.path(), port, &config).await;
    push_simulated(port, "8s", Some("3s:5s"));

    for protocol in ["grpc", "http"] {
        let points =
            eventually(Duration::from_secs(20), &format!("flagged scores over {protocol}"), || async {
                let lines = std::fs::read_to_string(&out).unwrap_or_default();
                let flags = recorded(&lines, protocol, "anomaly_flag");
                flags.iter().any(|(_, v)| *v == 1.0).then_some(lines)
            })
            .await;
        let lines = &points;
        let first = lines.lines().find(|l| l.contains(&format!("\"protocol\": \"{protocol}\""))).unwrap();
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        if protocol == "http" {
            // (gRPC servers decompress before the application sees the call.)
            assert_eq!(v["encoding"], "gzip", "{protocol} not compressed: {v}");
        }
        assert_eq!(v["tenant"], "dwcp", "{protocol} without the configured header: {v}");
        let scores = recorded(lines, protocol, "anomaly_score");
        let (attrs, value) =
            scores.iter().find(|(a, _)| a.get("detector").map(String::as_str) == Some("ensemble")).unwrap();
        assert_eq!(attrs.get("instance").map(String::as_str), Some("dwcp-node-01"), "{attrs:?}");
        assert_eq!(attrs.get("job").map(String::as_str), Some("dwcp"), "{attrs:?}");
        assert_eq!(attrs.get("profile").map(String::as_str), Some("dwcp"), "{attrs:?}");
        assert!((0.0..=1.0).contains(value), "{value}");
        assert!(!attrs.contains_key("__name__"), "{attrs:?}");
        let features: std::collections::BTreeSet<String> = recorded(lines, protocol, "anomaly_feature_score")
            .into_iter()
            .filter_map(|(a, _)| a.get("feature").cloned())
            .collect();
        assert_eq!(features.len(), 7, "{features:?}");
        let states = recorded(lines, protocol, "anomaly_model_state");
        assert!(states.iter().any(|(a, v)| a.get("state").map(String::as_str) == Some("ready") && *v == 1.0));
    }
    let metrics = get_ok(
        &dwcp_anomaly::internals::retry::http_client().build().unwrap(),
        format!("http://127.0.0.1:{port}/metrics"),
    )
    .await
    .unwrap();
    for id in ["otlp[0]", "otlp[1]"] {
        let line = format!("dwcp_anomaly_export_samples_sent_total{{exporter=\"{id}\"}}");
        assert!(
            metrics.lines().any(|l| l.starts_with(&line) && !l.ends_with(" 0")),
            "{id}\n{metrics}\n{}",
            svc.tail()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn own_metrics_and_request_spans_go_out_through_the_opentelemetry_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc_port, http_port) = (free_port(), free_port());
    let out = dir.path().join("requests.jsonl");
    let _sink = start_sink(dir.path(), grpc_port, http_port, &out).await;

    let port = free_port();
    let cfg = dir.path().join("serve.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{port}\ncheck_interval: 1s\n")).unwrap();
    let env = [
        ("OTEL_METRICS_EXPORTER", "otlp".to_string()),
        ("OTEL_TRACES_EXPORTER", "otlp".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{grpc_port}")),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test".to_string()),
    ];
    let svc = spawn_env("serve", &service_bin(), &serve_args(&cfg, 0), dir.path(), &env);
    let http = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    eventually(Duration::from_secs(20), "service ready", || {
        get_ok(&http, format!("http://127.0.0.1:{port}/-/ready"))
    })
    .await;
    push_simulated(port, "3s", None);

    let lines = eventually(Duration::from_secs(20), "own metrics and spans at the receiver", || async {
        let lines = std::fs::read_to_string(&out).unwrap_or_default();
        let received = recorded_sum(&lines, SAMPLES_RECEIVED, "remote_write");
        (received > 0.0 && lines.contains("POST /api/v1/write")).then_some(lines)
    })
    .await;
    let span_line = lines.lines().find(|l| l.contains("\"grpc_traces\"")).unwrap();
    let v: serde_json::Value = serde_json::from_str(span_line).unwrap();
    let rs = &v["request"]["resourceSpans"][0];
    let resource = rs["resource"]["attributes"].to_string();
    assert!(resource.contains("dwcp-anomaly") && resource.contains("deployment.environment"), "{resource}");
    let span = &rs["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "POST /api/v1/write", "{span}");
    assert_eq!(span["kind"], "SPAN_KIND_SERVER", "{span}");
    assert!(span["attributes"].to_string().contains("http.response.status_code"), "{span}");
    drop(svc);
}

/// Latest value of own metric `name` with attribute `protocol` in the recorded metric requests.
fn recorded_sum(lines: &str, name: &str, protocol: &str) -> f64 {
    let mut latest = 0.0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["protocol"] != "grpc" {
            continue;
        }
        for rm in v["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            for m in rm["scopeMetrics"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["metrics"].as_array().into_iter().flatten())
            {
                if m["name"] != name {
                    continue;
                }
                for p in m["sum"]["dataPoints"].as_array().into_iter().flatten() {
                    if p["attributes"].to_string().contains(&format!("\"{protocol}\"")) {
                        latest = p["asDouble"].as_f64().unwrap_or(0.0);
                    }
                }
            }
        }
    }
    latest
}
