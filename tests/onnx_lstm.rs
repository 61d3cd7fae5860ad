//! The LSTM autoencoder on both engines: the shipped model and one freshly trained by
//! `training/train_lstm_autoencoder.py` give the same reconstructions and scores as Python's
//! onnxruntime (within 1e-4) on ONNX Runtime and on tract, and a service with `lstm_ae` on
//! reports its engine and scores a pushed spike.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dwcp_anomaly::internals::config::{Config, OnnxBackend};
use dwcp_anomaly::internals::detect::{Detector, FeatureVector, LstmAeDetector, LstmModel};
use dwcp_anomaly::internals::onnx;
use dwcp_anomaly::internals::simulate::FEATURES;

const TOLERANCE: f64 = 1e-4;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dwcp_features() -> Vec<String> {
    FEATURES.iter().map(|s| s.to_string()).collect()
}

/// Runs a Python script from the repo; panics with its stderr when it fails (a missing
/// package is a failure: the README's test command installs them).
fn python(args: &[&str], env: &[(&str, &str)]) {
    let out = Command::new(common::python())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        common::python().display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Reference {
    window: usize,
    features: usize,
    input: Vec<f32>,
    output: Vec<f32>,
    score: Vec<f64>,
    raw: Vec<f64>,
}

/// onnxruntime's outputs for `windows` random windows through `model`.
fn reference(model: &Path, dir: &Path, windows: usize) -> Reference {
    let out = dir.join("reference.json");
    let script = repo().join("tests/fixtures/onnx_reference.py");
    python(
        &[script.to_str().unwrap(), model.to_str().unwrap(), out.to_str().unwrap(), &windows.to_string()],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let floats =
        |k: &str| -> Vec<f64> { v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    Reference {
        window: v["window"].as_u64().unwrap() as usize,
        features: v["features"].as_u64().unwrap() as usize,
        input: floats("input").into_iter().map(|x| x as f32).collect(),
        output: floats("output").into_iter().map(|x| x as f32).collect(),
        score: floats("score"),
        raw: floats("raw"),
    }
}

fn load(model: Option<&Path>, backend: OnnxBackend, features: &[String]) -> Arc<LstmModel> {
    let mut cfg = Config::default();
    cfg.detect.lstm_ae.enabled = true;
    cfg.detect.lstm_ae.model = model.map(Path::to_path_buf);
    cfg.onnx.backend = backend;
    let m = onnx::load_lstm(&cfg, "test", features).unwrap().expect("lstm_ae enabled");
    assert_eq!(m.net.backend(), backend.as_str());
    m
}

/// Every engine against onnxruntime: the batched network output, and the detector's raw
/// score computed from the windows in raw units (standardisation, order, error).
fn check_parity(model_file: &Path, model: Option<&Path>, features: &[String], dir: &Path) {
    let r = reference(model_file, dir, 24);
    let per = r.window * r.features;
    for backend in [OnnxBackend::Native, OnnxBackend::Ort, OnnxBackend::Tract] {
        let m = load(model, backend, features);
        assert_eq!((m.window, m.n_features), (r.window, r.features));
        let mut out = Vec::new();
        m.reconstruct(&r.input, r.score.len(), &mut out).unwrap();
        let net_diff = out.iter().zip(&r.output).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
        let mut score_diff: f64 = 0.0;
        for (k, expected) in r.score.iter().enumerate() {
            let raw = &r.raw[k * per..(k + 1) * per];
            let history: Vec<FeatureVector> = raw
                .chunks(r.features)
                .take(r.window - 1)
                .enumerate()
                .map(|(t, v)| FeatureVector { timestamp_ms: t as i64, values: v.to_vec() })
                .collect();
            // The whole window, as the training script scores it.
            let mut d = LstmAeDetector::new(Arc::clone(&m), r.window, 6.0);
            d.fit(&history).unwrap();
            let last = FeatureVector { timestamp_ms: 99, values: raw[per - r.features..].to_vec() };
            let s = d.score(&last).unwrap();
            score_diff = score_diff.max((s.raw - expected).abs() / expected.max(1.0));
        }
        eprintln!(
            "{} on {backend:?}: max |output diff| {net_diff:.2e}, max score diff {score_diff:.2e}",
            m.source
        );
        assert!(net_diff < TOLERANCE, "{backend:?}: outputs differ from onnxruntime by {net_diff}");
        assert!(score_diff < TOLERANCE, "{backend:?}: scores differ from onnxruntime by {score_diff}");
    }
}

#[test]
fn shipped_model_matches_onnxruntime_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in model (no `model` set) is the committed file.
    let file = repo().join("models/lstm_autoencoder.onnx");
    assert_eq!(std::fs::read(&file).unwrap(), onnx::BUILTIN_LSTM);
    check_parity(&file, None, &dwcp_features(), dir.path());
}

#[test]
fn a_freshly_trained_model_loads_on_every_engine_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("models");
    let bin = env!("CARGO_BIN_EXE_dwcp-anomaly");
    let script = repo().join("training/train_lstm_autoencoder.py");
    python(
        &[
            script.to_str().unwrap(),
            "--synthetic",
            "--entities",
            "2",
            "--duration",
            "40m",
            "--window",
            "8",
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--output",
            out.to_str().unwrap(),
        ],
        &[("DWCP_ANOMALY_BIN", bin)],
    );
    let model = out.join("lstm_autoencoder.onnx");
    check_parity(&model, Some(&model), &dwcp_features(), dir.path());
}

#[tokio::test]
async fn a_service_with_lstm_ae_reports_its_engine_and_scores_a_spike() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::trained_state(dir.path());
    let port = common::free_port();
    let config = format!(
        "check_interval: 1s\nstate_dir: {}\nonnx:\n  backend: ort\ndetect:\n  lstm_ae:\n    enabled: true\n    weight: 2\n",
        state.display()
    );
    let mut svc = common::start_service("lstm", dir.path(), port, &config).await;
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let metrics = common::get_ok(&client, &url).await.unwrap();
    assert!(metrics.contains("onnx_backend=\"ort\""), "{}", grep(&metrics, "build_info"));
    // Before the spike the model sees normal traffic; during it the window's error explodes.
    let push = tokio::task::spawn_blocking(move || common::push_simulated(port, "14s", Some("6s:8s")));
    let mut scores = Vec::new();
    while !push.is_finished() {
        if let Some(m) = common::get_ok(&client, &url).await
            && let Some(v) = m
                .lines()
                .find(|l| l.starts_with("anomaly_score{") && l.contains("detector=\"lstm_ae\""))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        {
            scores.push(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    push.await.unwrap();
    common::stop(&mut svc);
    let peak = scores.iter().copied().fold(0.0, f64::max);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    assert!(peak > 0.9, "lstm_ae never scored the spike: {scores:?}");
    assert!(scores[0] < 0.5, "lstm_ae scored normal traffic high: {scores:?}");
    let log = svc.tail();
    assert!(log.contains("Running ONNX models on ONNX Runtime"), "{log}");
}

fn grep(text: &str, what: &str) -> String {
    text.lines().filter(|l| l.contains(what)).collect::<Vec<_>>().join("\n")
}
