//! `onnx::forest::read` against the implementations it imports from: a scikit-learn
//! `IsolationForest` exported by skl2onnx scores the same as scikit-learn's own
//! `score_samples` and as onnxruntime running the ONNX graph, and so does the shipped
//! `models/isolation_forest.onnx`. The references come from `tests/fixtures/sklearn_forest.py`
//! (python3 with scikit-learn, skl2onnx and onnxruntime from training/requirements.txt; a
//! missing module fails the test, it is never skipped).
//!
//! scikit-learn casts `X` to float32 before walking its trees and the ONNX graph takes a
//! float32 input, so every point is scored as `v as f32 as f64`: for those values the
//! imported float32 thresholds make exactly scikit-learn's decisions (see
//! `src/detect/isolation_forest/onnx.rs`).

mod common;

use std::path::Path;
use std::process::Command;

use dwcp_anomaly::internals::detect::Forest;
use dwcp_anomaly::internals::onnx::forest as onnx_forest;
use serde_json::Value;

const TOLERANCE: f64 = 1e-5;

/// Runs the fixture with `args`; panics with its stderr when it fails.
fn fixture(args: &[&str]) {
    let python = common::python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn_forest.py");
    let out = Command::new(python).arg(&script).args(args).output().expect("run Python");
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}); it needs scikit-learn, skl2onnx and onnxruntime: \
         `bash scripts/test.sh` installs them into .venv and sets DWCP_ANOMALY_PYTHON\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Points as float32-rounded f64 (null → NaN).
fn points(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f64::NAN, |x| x as f32 as f64)).collect()
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Largest |(-forest score) - reference| over the points, checked against [`TOLERANCE`].
fn max_diff(forest: &Forest, points: &[Vec<f64>], reference: &[f64], what: &str) -> f64 {
    assert_eq!(points.len(), reference.len());
    let mut max = 0.0f64;
    for (i, (x, &want)) in points.iter().zip(reference).enumerate() {
        let got = -forest.score(x).unwrap();
        let diff = (got - want).abs();
        assert!(diff <= TOLERANCE, "point {i} {x:?}: forest {got}, {what} {want} (|diff| {diff:.2e})");
        max = max.max(diff);
    }
    eprintln!("{what}: {} points, max |diff| {max:.3e}", points.len());
    max
}

#[test]
fn imported_sklearn_forest_matches_score_samples_and_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    fixture(&["train", "--out", dir.path().to_str().unwrap()]);
    let forest = onnx_forest::read(&std::fs::read(dir.path().join("forest.onnx")).unwrap()).unwrap();
    let want = read_json(&dir.path().join("forest.json"));
    assert_eq!(forest.n_features() as u64, want["n_features"].as_u64().unwrap());
    assert_eq!(forest.n_trees() as u64, want["n_estimators"].as_u64().unwrap());
    assert_eq!(forest.sample_size() as u64, want["max_samples"].as_u64().unwrap());

    let points = points(&want["points"]);
    let sklearn = max_diff(&forest, &points, &floats(&want["score_samples"]), "scikit-learn score_samples");
    // Both compute in f64 from the same trees: only summation order differs.
    assert!(sklearn < 1e-12, "{sklearn:e}");
    max_diff(&forest, &points, &floats(&want["onnxruntime"]), "onnxruntime score_samples");
}

#[test]
fn shipped_model_matches_onnxruntime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/isolation_forest.onnx");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores.json");
    let metadata = root.join("models/isolation_forest.json");
    fixture(&[
        "onnxruntime",
        "--model",
        model.to_str().unwrap(),
        "--metadata",
        metadata.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (forest, info) = onnx_forest::read_with_info(&std::fs::read(&model).unwrap()).unwrap();
    let meta = read_json(&metadata);
    assert_eq!(forest.n_features(), meta["features"].as_array().unwrap().len());
    assert_eq!(forest.sample_size() as u64, meta["training"]["max_samples"].as_u64().unwrap());
    assert_eq!(info.input_name, meta["input_name"].as_str().unwrap());
    assert_eq!(info.score_output.as_deref(), meta["output_name"].as_str());

    let want = read_json(&out);
    let points = points(&want["points"]);
    assert!(points.iter().any(|p| p.iter().all(|v| v.is_nan())), "the fixture scores missing values too");
    max_diff(&forest, &points, &floats(&want["score_samples"]), "onnxruntime score_samples (shipped model)");
}
