//! Helpers for end-to-end tests: free ports, child processes that are always cleaned up,
//! polling instead of sleeping, and the Prometheus HTTP API.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the race is accepted in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().unwrap().port()
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// The last lines of the process's log, for failure messages.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident memory (`VmRSS` from `/proc`, Linux).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
            .unwrap();
        kb * 1024
    }
}

/// The value of the series whose line starts with `prefix` (name and labels) in the exposition
/// `text`; 0 when there is none.
pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Starts `program` with `args`, stdout and stderr to `<dir>/<name>.log`.
pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Proc {
    spawn_env(name, program, args, dir, &[])
}

/// [`spawn`] with extra environment variables.
pub fn spawn_env(name: &str, program: &Path, args: &[String], dir: &Path, env: &[(&str, String)]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    Proc { name: name.into(), child, log }
}

/// Path of a required system binary; panics with an install hint when missing.
pub fn require(binary: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(binary);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{binary} not found on PATH: install it with `apt-get install -y --no-install-recommends {package}` \
         (the README's test command does this)"
    );
}

/// The Python interpreter of the tests' peers (OpenTelemetry SDK, aiosmtpd, training scripts):
/// the one the service probes for ONNX Runtime, `DWCP_ANOMALY_PYTHON` (set by
/// `scripts/test.sh` to its virtual environment) or `python3`.
pub fn python() -> PathBuf {
    dwcp_anomaly::internals::onnx::python()
}

/// The service binary built by cargo for this test run.
pub fn service_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dwcp-anomaly"))
}

/// Polls `f` every 250 ms until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// GETs `url` and returns the body when the status is 2xx.
pub async fn get_ok(client: &reqwest::Client, url: impl AsRef<str>) -> Option<String> {
    let r = client.get(url.as_ref()).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// GETs `url` with `query` parameters (encoded by reqwest) and parses the JSON answer; None
/// when the request or the body fails.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
) -> Option<serde_json::Value> {
    client.get(url).query(query).send().await.ok()?.json().await.ok()
}

/// Runs an instant PromQL query; returns `(labels, value)` pairs.
pub async fn prom_query(client: &reqwest::Client, base: &str, q: &str) -> Vec<(serde_json::Value, f64)> {
    let url = format!("{base}/api/v1/query");
    let v = get_json(client, &url, &[("query", q)]).await.unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a range query with a 1 s step; returns `(labels, [(t, value)])` per series.
pub async fn prom_range(
    client: &reqwest::Client,
    base: &str,
    q: &str,
    start: f64,
    end: f64,
) -> Vec<(serde_json::Value, Vec<(f64, f64)>)> {
    let url = format!("{base}/api/v1/query_range");
    let (start, end) = (start.to_string(), end.to_string());
    let params = [("query", q), ("start", &start), ("end", &end), ("step", "1")];
    let v = get_json(client, &url, &params).await.unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let pts = s["values"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .map(|x| {
                                    (
                                        x[0].as_f64().unwrap_or(0.0),
                                        x[1].as_str().and_then(|y| y.parse().ok()).unwrap_or(f64::NAN),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (s["metric"].clone(), pts)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `dwcp-anomaly simulate ARGS serve` listening on loopback `port` (the scrape target
/// standing in for exporters).
pub fn spawn_simulator(dir: &Path, port: u16, args: &[&str]) -> Proc {
    let mut all: Vec<String> =
        std::iter::once("simulate").chain(args.iter().copied()).map(String::from).collect();
    all.extend(["serve".to_string(), "--listen".to_string(), format!("127.0.0.1:{port}")]);
    spawn("simulate", &service_bin(), &all, dir)
}

/// Starts Prometheus on `port` with `config` (YAML text); `receiver` enables remote-write in.
pub fn start_prometheus(name: &str, port: u16, config: &str, dir: &Path, receiver: bool) -> Proc {
    let bin = require("prometheus", "prometheus");
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config).unwrap();
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.join(format!("{name}-data")).display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--storage.remote.flush-deadline=1s".into(),
        "--log.level=warn".into(),
    ];
    if receiver {
        args.push("--web.enable-remote-write-receiver".into());
    }
    spawn(name, &bin, &args, dir)
}

/// Runs the service binary with `args` to completion; panics with its stderr on failure.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    let out = Command::new(service_bin()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// 30 h of one simulated entity at a 1 min step with two labelled events (a CPU saturation
/// at 20 h, a packet-loss burst at 26 h), written as a dataset under `data`: the small
/// labelled family the `eval` tests replay.
pub fn simulate_two_events(data: &Path) {
    run_cli(&[
        "simulate",
        "--entities",
        "1",
        "--step",
        "1m",
        "--anomaly",
        "1:cpu_saturation:20h:30m",
        "--anomaly",
        "1:packet_loss_burst:26h:20m",
        "csv",
        "--out",
        data.to_str().unwrap(),
        "--duration",
        "30h",
    ]);
}

/// Trains a state directory on 2 h of one simulated entity (seed 3), so a service started
/// with it scores at once instead of warming up.
pub fn trained_state(dir: &Path) -> PathBuf {
    trained_state_n(dir, 1)
}

/// [`trained_state`] for `entities` simulated entities (`dwcp-node-01` …).
pub fn trained_state_n(dir: &Path, entities: u32) -> PathBuf {
    let (data, state) = (dir.join("data"), dir.join("state"));
    let (data_s, state_s) = (data.to_str().unwrap(), state.to_str().unwrap());
    let n = entities.to_string();
    run_cli(&[
        "simulate",
        "--entities",
        &n,
        "--step",
        "10s",
        "--seed",
        "3",
        "csv",
        "--out",
        data_s,
        "--duration",
        "2h",
    ]);
    run_cli(&["train", "--data", data_s, "--state-dir", state_s]);
    state
}

/// Pushes `duration` of that entity to the service on `port` in real time, with a spike
/// (`START:DURATION`, e.g. `4s:60s`) when given.
pub fn push_simulated(port: u16, duration: &str, spike: Option<&str>) {
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let mut args = vec!["simulate", "--entities", "1", "--step", "1s", "--seed", "3"];
    let spec;
    if let Some(a) = spike {
        spec = format!("1:spike:{a}");
        args.extend(["--anomaly", &spec]);
    }
    args.extend(["push", "--url", &url, "--duration", duration]);
    run_cli(&args);
}

/// Starts `serve` with `config` (YAML; `listen` is set to `port`) and waits until it is ready.
/// Its OTLP/gRPC listener takes any free port.
pub async fn start_service(name: &str, dir: &Path, port: u16, config: &str) -> Proc {
    start_service_grpc(name, dir, port, 0, config).await
}

/// [`start_service`] with the OTLP/gRPC listener on `grpc_port`.
pub async fn start_service_grpc(name: &str, dir: &Path, port: u16, grpc_port: u16, config: &str) -> Proc {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{port}\n{config}")).unwrap();
    let args = serve_args(&cfg, grpc_port);
    let p = spawn(name, &service_bin(), &args, dir);
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    eventually(Duration::from_secs(20), &format!("{name} ready"), || {
        get_ok(&client, format!("http://127.0.0.1:{port}/-/ready"))
    })
    .await;
    p
}

/// Arguments of `serve` with config file `cfg` and the OTLP/gRPC listener on loopback
/// `grpc_port` (0: any free port, so that tests running at once never collide on 4317).
pub fn serve_args(cfg: &Path, grpc_port: u16) -> Vec<String> {
    vec![
        "serve".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--otlp-grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
    ]
}

/// Sends SIGTERM to `p` and waits (15 s at most) for it to exit.
pub fn stop(p: &mut Proc) {
    let status = Command::new("kill").args(["-TERM", &p.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    while p.alive() {
        assert!(start.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM\n{}", p.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An alert event for entity `instance="n1",job="dwcp"` (profile dwcp) that started at
/// 2026-01-01T00:00:00Z, with `features` as (name, contribution, value, expected).
pub fn alert_event(
    kind: dwcp_anomaly::internals::alert::AlertKind,
    severity: dwcp_anomaly::internals::detect::Severity,
    confidence: f64,
    features: &[(&str, f64, f64, f64)],
    at_ms: i64,
) -> dwcp_anomaly::internals::alert::AlertEvent {
    dwcp_anomaly::internals::alert::AlertEvent {
        kind,
        labels: std::sync::Arc::from(vec![
            ("instance".to_string(), "n1".to_string()),
            ("job".to_string(), "dwcp".to_string()),
        ]),
        profile: "dwcp".into(),
        severity,
        confidence,
        features: features
            .iter()
            .map(|&(feature, contribution, value, expected)| {
                dwcp_anomaly::internals::alert::FeatureContribution {
                    feature: feature.into(),
                    contribution,
                    value,
                    expected,
                }
            })
            .collect(),
        started_ms: ALERT_T0,
        timestamp_ms: at_ms,
    }
}

/// 2026-01-01T00:00:00Z in ms, the start of [`alert_event`]'s anomaly.
pub const ALERT_T0: i64 = 1_767_225_600_000;
