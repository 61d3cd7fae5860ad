//! Commands of the docs that no other test runs: `serve --demo` as the README and
//! `docs/getting-started.md` show it (the pages it serves and the anomaly it logs), and the
//! `eval` recipe of `docs/troubleshooting.md` that compares a config with a candidate.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn demo_mode_serves_scores_and_logs_a_detected_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> =
        ["serve", "--demo", "--listen", &format!("127.0.0.1:{port}"), "--otlp-grpc-listen", "127.0.0.1:0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut p = spawn("demo", &service_bin(), &args, dir.path());
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "demo ready", || get_ok(&client, format!("{base}/-/ready"))).await;

    // Warm-up is min_fit_points (30) checks of 1 s; then every entity is scored.
    let metrics = eventually(Duration::from_secs(90), "ensemble scores for the five entities", || async {
        let m = get_ok(&client, format!("{base}/metrics")).await?;
        let scored = (1..=5)
            .filter(|i| {
                m.contains(&format!(r#"anomaly_model_state{{instance="dwcp-node-0{i}",job="dwcp-demo",profile="dwcp",state="ready"}} 1"#))
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
        log.lines()
            .any(|l| {
                l.contains("Anomaly detected.") && l.contains("severity=") && l.contains("top_features=")
            })
            .then_some(())
    })
    .await;
    // The dashboard's count by metric and severity distribution read this counter.
    let metrics = get_ok(&client, format!("{base}/metrics")).await.expect("/metrics");
    let counted =
        metrics.lines().filter(|l| l.starts_with("dwcp_anomaly_events_total{profile=\"dwcp\",feature=\""));
    let counted: Vec<&str> = counted.filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0")).collect();
    assert!(!counted.is_empty() && counted.iter().all(|l| l.contains("severity=\"")), "{metrics}");
    stop(&mut p);
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(log.contains("Demo mode: 1 s checks"), "{log}");
    // Issue 16: the log is written to a file here, not a terminal, so it carries no colour codes.
    assert!(!log.contains('\x1b'), "ANSI escapes in a log that is not a terminal: {log}");
}

/// `report.json`'s ensemble row of the only dataset.
fn ensemble(out: &std::path::Path) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    report["datasets"][0]["detectors"]["ensemble"].clone()
}

/// The YAML block of `docs/troubleshooting.md` whose first line names `file`.
fn doc_yaml(file: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/troubleshooting.md")).unwrap();
    doc.split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.starts_with(&format!("# {file}:")))
        .unwrap_or_else(|| panic!("no ```yaml block starting '# {file}:' in docs/troubleshooting.md"))
        .to_string()
}

#[test]
fn the_eval_recipe_compares_two_configs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    simulate_two_events(&data);
    // The files as the page shows them, and a target_fpr above the default tail.
    let files = [
        ("current", doc_yaml("current.yaml")),
        ("candidate", doc_yaml("candidate.yaml")),
        ("looser", "detect:\n  target_fpr: 0.005\n".to_string()),
    ];
    let mut rows = Vec::new();
    for (name, text) in files {
        let cfg = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&cfg, text).unwrap();
        let out = dir.path().join("out").join(name);
        let o = Command::new(service_bin())
            .args(["eval", "--config", cfg.to_str().unwrap(), "--data", data_arg])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(out.join("report.md").is_file());
        rows.push(ensemble(&out));
    }
    let flagged = |row: &serde_json::Value| row["fpr"].as_f64().expect("fpr in report.json");
    assert!(rows[0]["event_recall"].as_f64().unwrap() > 0.0, "{}", rows[0]);
    assert!(rows[1]["event_recall"].as_f64().unwrap() > 0.0, "the candidate still detects: {}", rows[1]);
    // The directions the page claims: the candidate flags no more, target_fpr 0.005 no fewer.
    assert!(flagged(&rows[1]) <= flagged(&rows[0]), "the candidate flagged more: {rows:?}");
    assert!(flagged(&rows[2]) >= flagged(&rows[0]), "target_fpr 0.005 flagged fewer: {rows:?}");
}
