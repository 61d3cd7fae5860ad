//! Commands of `docs/getting-started.md` that no other test runs: `serve --demo` as the README
//! and the guide show it (the pages it serves and the anomaly it logs), and the configuration
//! guide's "validate, then print the effective config" step on the example config.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn demo_mode_serves_scores_and_logs_a_detected_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--demo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--otlp-grpc-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = spawn("demo", &service_bin(), &args, dir.path());
    let client = dwcp_anomaly::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "demo ready", || get_ok(&client, format!("{base}/-/ready"))).await;

    // Warm-up is min_fit_points (30) checks of 1 s; then every entity is scored.
    let metrics = eventually(Duration::from_secs(90), "ensemble scores for the five entities", || async {
        let m = get_ok(&client, format!("{base}/metrics")).await?;
        let scored = (1..=5)
            .filter(|i| {
                m.contains(&format!(r#"anomaly_model_state{{instance="dwcp-node-0{i}",job="dwcp",profile="dwcp",state="ready"}} 1"#))
            })
            .count();
        (scored == 5 && m.contains(r#"anomaly_score{detector="ensemble""#)).then_some(m)
    })
    .await;
    assert!(metrics.contains("dwcp_anomaly_vectors_scored_total"), "{metrics}");
    let page = get_ok(&client, format!("{base}/")).await.expect("the live page answers");
    assert!(page.contains("dwcp-node-01"), "{page}");

    // An anomaly is injected about every 40 s; the service logs each one it detects.
    eventually(Duration::from_secs(120), "an 'Anomaly detected.' log line", || async {
        let log = std::fs::read_to_string(&p.log).ok()?;
        log.lines().any(|l| l.contains("Anomaly detected.") && l.contains("severity=") && l.contains("top_features=")).then_some(())
    })
    .await;
    stop(&mut p);
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(log.contains("Demo mode: 1 s checks"), "{log}");
}
