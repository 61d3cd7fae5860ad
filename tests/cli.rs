//! The command line as users run it: `check-config` on fixture files (exact error text),
//! `simulate csv` output in the common dataset format, and graceful shutdown of `serve`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/config/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn check_config(name: &str) -> (bool, String, String) {
    let out = Command::new(service_bin()).args(["check-config", &fixture(name)]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn valid_configs_print_the_effective_config() {
    for name in ["seed.yaml", "full.yaml"] {
        let (ok, stdout, stderr) = check_config(name);
        assert!(ok, "{name}: {stderr}");
        assert!(stderr.contains("valid"), "{stderr}");
        assert!(stdout.contains("check_interval:"), "{stdout}");
    }
    let (_, stdout, _) = check_config("seed.yaml");
    assert!(stdout.contains("slack_webhook_url: <secret>"), "secrets are masked: {stdout}");
    assert!(stdout.contains("staleness: 5m"), "defaults are filled in: {stdout}");
}

#[test]
fn invalid_configs_name_file_key_and_line() {
    let cases = [
        ("unknown_key.yaml", "line 4: detect.zscore.windw: unknown field `windw`"),
        ("ill_typed.yaml", "line 2: vectorize.max_entities: "),
        ("bare_duration.yaml", "check_interval: invalid duration \"10\""),
        (
            "invalid_values.yaml",
            "vectorize.profile: unknown profile \"nope\", expected one of dwcp, node, per_series",
        ),
        ("invalid_values.yaml", "detect.threshold: must be within [0, 1], got 1.5"),
        ("invalid_values.yaml", "detect.zscore.window: must be >= 2, got 1"),
        ("bad_selector.yaml", "vectorize.profiles.bad.features[0].series[0]: invalid selector"),
        ("bad_url.yaml", "export.remote_write[0].url: must be an http(s) URL"),
        ("slack_without_url.yaml", "alert.slack_webhook_url: required when slack_enabled is true"),
    ];
    for (name, expected) in cases {
        let (ok, _, stderr) = check_config(name);
        assert!(!ok, "{name} passed");
        assert!(stderr.contains(&fixture(name)), "{name}: file not named in {stderr}");
        assert!(stderr.contains(expected), "{name}: expected {expected:?} in {stderr}");
    }
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out =
        Command::new(service_bin()).args(["serve", "--config", "/nonexistent/dwcp.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read config file /nonexistent/dwcp.yaml"), "{stderr}");
}

#[test]
fn simulate_writes_labeled_csv_in_the_dataset_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(service_bin())
        .args([
            "simulate",
            "--entities",
            "2",
            "--step",
            "10s",
            "--anomaly",
            "2:packet_loss_burst:10m:2m",
            "csv",
        ])
        .args(["--out", dir.path().to_str().unwrap(), "--duration", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.path().join("dwcp-node-02.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,bandwidth_mbps,latency_ms,packet_loss_pct,jitter_ms,cpu_pct,memory_pct,error_rate_pct,label"
    );
    assert_eq!(lines.len(), 361);
    assert!(lines[1].starts_with("2024-01-01T00:00:00Z,"));
    assert!(lines[61].starts_with("2024-01-01T00:10:00Z,") && lines[61].ends_with(",1"), "{}", lines[61]);
    assert_eq!(lines.iter().filter(|l| l.ends_with(",1")).count(), 12);
    let normal = std::fs::read_to_string(dir.path().join("dwcp-node-01.csv")).unwrap();
    assert!(normal.lines().skip(1).all(|l| l.ends_with(",0")));
}

#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut p = spawn(
        "serve",
        &service_bin(),
        &["serve".into(), "--listen".into(), format!("127.0.0.1:{port}")],
        dir.path(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "service did not listen\n{}", p.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill").args(["-TERM", &p.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    while p.alive() {
        assert!(start.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM\n{}", p.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(log.contains("Shutdown signal received."), "{log}");
    assert!(log.contains("Stopped."), "{log}");
}
