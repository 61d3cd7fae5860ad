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
        ("ill_typed.yaml", "line 2: vectorize.max_entities: expected a whole number >= 0, got \"lots\""),
        (
            "wrong_type.yaml",
            "line 3: detect.zscore.window: expected a whole number >= 0, got \"a few hundred\"",
        ),
        ("syntax_error.yaml", "line 3: detect.zscore: YAML syntax error: unclosed bracket '{'"),
        (
            "mis_indented.yaml",
            "line 3: (root): YAML structure error: this line's indentation matches no key above it",
        ),
        (
            "flat_block.yaml",
            "line 2: detect.zscore: YAML structure error: expected the keys of `zscore` on the following lines",
        ),
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
    // The OS error once, not again as the message's own cause.
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
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
        &[
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--otlp-grpc-listen".into(),
            "127.0.0.1:0".into(),
        ],
        dir.path(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "service did not listen\n{}", p.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut p);
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(log.contains("Shutdown signal received."), "{log}");
    assert!(log.contains("Stopped."), "{log}");
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(service_bin()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test]
async fn trained_state_makes_entities_ready_at_once_and_a_corrupt_one_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let (data, state) = (dir.path().join("data"), dir.path().join("state"));
    run(&[
        "simulate",
        "--entities",
        "2",
        "--step",
        "10s",
        "csv",
        "--out",
        data.to_str().unwrap(),
        "--duration",
        "2h",
    ]);
    let out = run(&["train", "--data", data.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dwcp-node-01: fitted on 360 normal vectors"), "{stdout}");
    assert!(state.join("models.state").is_file());

    let port = free_port();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("check_interval: 1s\nlisten: 127.0.0.1:{port}\nstate_dir: {}\n", state.display()),
    )
    .unwrap();
    let svc = spawn("serve", &service_bin(), &serve_args(&cfg, 0), dir.path());
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "service ready", || get_ok(&client, format!("{base}/-/ready"))).await;
    let url = format!("{base}/api/v1/write");
    run(&["simulate", "--entities", "1", "--step", "1s", "push", "--url", &url, "--duration", "2s"]);
    let metrics = eventually(Duration::from_secs(10), "a ready entity", || async {
        let m = get_ok(&client, format!("{base}/metrics")).await?;
        m.contains(
            r#"anomaly_model_state{instance="dwcp-node-01",job="dwcp",profile="dwcp",state="ready"} 1"#,
        )
        .then_some(m)
    })
    .await;
    // Two vectors of live data are far below min_fit_points: ready means restored.
    assert!(metrics.contains(r#"anomaly_score{detector="ensemble",instance="dwcp-node-01""#), "{metrics}");
    drop(svc);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("Restored model state."), "{log}");

    std::fs::write(state.join("models.state"), b"DWCPSTAT\x01\x00\x00\x00garbage").unwrap();
    let port2 = free_port();
    std::fs::write(
        &cfg,
        format!("check_interval: 1s\nlisten: 127.0.0.1:{port2}\nstate_dir: {}\n", state.display()),
    )
    .unwrap();
    let svc2 = spawn("serve2", &service_bin(), &serve_args(&cfg, 0), dir.path());
    eventually(Duration::from_secs(20), "service ready despite corrupt state", || {
        get_ok(&client, format!("http://127.0.0.1:{port2}/-/ready"))
    })
    .await;
    drop(svc2);
    let log = std::fs::read_to_string(dir.path().join("serve2.log")).unwrap();
    assert!(log.contains("Ignoring saved state") && log.contains("models.state is corrupt"), "{log}");
}

#[test]
fn train_rejects_columns_that_do_not_match_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.csv");
    std::fs::write(&f, "timestamp,a,label\n2024-01-01T00:00:00Z,1,0\n").unwrap();
    let out = Command::new(service_bin())
        .args(["train", "--data", f.to_str().unwrap(), "--state-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("x.csv: columns [\"a\"] do not match profile dwcp's features"), "{stderr}");
}

#[test]
fn eval_reports_and_plots_a_simulated_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    simulate_two_events(&data);
    let o = run(&["eval", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let ens = &report["datasets"][0]["detectors"]["ensemble"];
    assert_eq!(report["datasets"][0]["events"], 2, "{stdout}");
    assert_eq!(ens["event_recall"], 1.0, "{ens}");
    // The ensemble eval runs without a config; its k-means alone rule flags at a 3 % tail by
    // design (docs/accuracy.md), so a short simulated run sits near that.
    assert!(ens["fpr"].as_f64().unwrap() < 0.05, "{ens}");
    for f in
        ["report.md", "dwcp-node-01.timeline.svg", "dwcp-node-01.contributions.svg", "dwcp-node-01.pr.svg"]
    {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The report says what ran and links its plots; the timeline's axis is time.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("Detectors: zscore, iforest, sesd, kmeans, lstm_ae. Threshold 0.384, target_fpr 0.005"),
        "{md}"
    );
    assert!(md.contains("[timeline](dwcp-node-01.timeline.svg)"), "{md}");
    let svg = std::fs::read_to_string(out.join("dwcp-node-01.timeline.svg")).unwrap();
    assert!(svg.contains("time (UTC)") && !svg.contains(">point<"), "timeline x axis");
    let empty = tempfile::tempdir().unwrap();
    let e = Command::new(service_bin())
        .args(["eval", "--data", empty.path().to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("no CSV datasets found under"));
}

#[test]
fn eval_of_a_univariate_series_on_defaults_finds_its_level_shift() {
    // One metric, a day at 1 min with a level shift labelled in the second half.
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("series.csv"), dir.path().join("out"));
    let mut csv = String::from("timestamp,value,label\n");
    for i in 0..1440i64 {
        let anomalous = (1000..1030).contains(&i);
        let v = 50.0 + 5.0 * ((i as f64) / 60.0).sin() + if anomalous { 40.0 } else { 0.0 };
        let ts = dwcp_anomaly::internals::rfc3339::format(1_700_000_000_000 + i * 60_000);
        csv.push_str(&format!("{ts},{v},{}\n", u8::from(anomalous)));
    }
    std::fs::write(&data, csv).unwrap();
    let o = run(&["eval", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    // Without a config eval runs the ensemble, whose rules follow the entity's shape (one
    // moving feature: the univariate rules), so no config needs to be picked by hand.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let ens = &report["datasets"][0]["detectors"]["ensemble"];
    assert_eq!(ens["event_recall"], 1.0, "{ens}\n{stdout}");
    // A day of data: recalibration (500 recent scores) barely starts, so the tail is looser
    // than on the labelled families' long series.
    assert!(ens["fpr"].as_f64().unwrap() < 0.08, "{ens}");
    // One feature: no flat contribution line, a sentence instead.
    let svg = std::fs::read_to_string(out.join("series.contributions.svg")).unwrap();
    assert!(svg.contains("one feature (value)") || svg.contains("no detected event"), "{svg}");
}

#[test]
fn version_names_the_commit_and_the_onnx_backend_found() {
    let version = |env: &[(&str, &str)]| {
        let out = Command::new(service_bin())
            .arg("--version")
            .env_remove("ORT_DYLIB_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A library named by ORT_DYLIB_PATH: its version comes from the file name.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&lib, b"").unwrap();
    let text = version(&[("ORT_DYLIB_PATH", lib.to_str().unwrap())]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], concat!("dwcp-anomaly ", env!("CARGO_PKG_VERSION")), "{text}");
    let commit = lines[1].strip_prefix("commit: ").unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    assert!(
        lines[2].starts_with("onnx backend: ONNX Runtime 1.32.0 (")
            && lines[2].contains(lib.to_str().unwrap())
            && lines[2].contains("found via ORT_DYLIB_PATH"),
        "{text}"
    );
    // Nothing to find: no library, and a Python without onnxruntime.
    let text = version(&[("DWCP_ANOMALY_PYTHON", "/nonexistent/python")]);
    assert!(text.contains("onnx backend: tract (built in; no ONNX Runtime library found"), "{text}");
}

/// `simulate push` speaks all three ingest protocols: every sample it reports acknowledged is
/// counted accepted by the service under that protocol, and the 50 entities are the same
/// entities whichever protocol carried them.
#[tokio::test]
async fn simulate_push_reports_what_each_protocol_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc) = (free_port(), free_port());
    let _svc = start_service_grpc("push", dir.path(), port, grpc, "check_interval: 1s\n").await;
    let base = format!("http://127.0.0.1:{port}");
    let targets = [
        ("remote_write", vec!["--remote-write".to_string(), format!("{base}/api/v1/write")]),
        ("otlp_http", vec!["--otlp-http".to_string(), format!("{base}/v1/metrics")]),
        ("otlp_grpc", vec!["--otlp-grpc".to_string(), format!("http://127.0.0.1:{grpc}")]),
    ];
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    for (protocol, target) in targets {
        let mut args = vec!["simulate", "--entities", "50", "--interval", "200ms", "push", "--batch", "100"];
        args.extend(target.iter().map(String::as_str));
        args.extend(["--duration", "1s"]);
        let out = run(&args);
        let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let field = |name: &str| {
            report.split(' ').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
        };
        // 5 steps of 50 entities × 7 metrics, 100 samples a request: 14 entities, 4 requests a step.
        let expected = [
            ("steps", 5),
            ("requests", 20),
            ("offered", 1750),
            ("acked", 1750),
            ("refusals", 0),
            ("dropped", 0),
        ];
        for (name, value) in expected {
            assert_eq!(field(name), Some(value), "{protocol} {name}: {report}");
        }
        let m = get_ok(&client, format!("{base}/metrics")).await.unwrap();
        let accepted = metric_value(
            &m,
            &format!("dwcp_anomaly_ingest_samples_accepted_total{{protocol=\"{protocol}\"}}"),
        );
        assert_eq!(accepted, 1750.0, "{protocol}");
    }
    let m = get_ok(&client, format!("{base}/metrics")).await.unwrap();
    assert_eq!(metric_value(&m, "dwcp_anomaly_entities "), 50.0, "{m}");
}
