use super::*;
use crate::config::OnnxBackend;
use crate::detect::FeatureVector;

fn dwcp_features() -> Vec<String> {
    crate::simulate::FEATURES.iter().map(|s| s.to_string()).collect()
}

fn config(backend: OnnxBackend) -> Config {
    let mut cfg = Config::default();
    cfg.detect.lstm_ae.enabled = true;
    cfg.onnx.backend = backend;
    cfg
}

#[test]
fn builtin_model_runs_on_tract_batched_as_alone() {
    let m = load_lstm(&config(OnnxBackend::Tract), "dwcp", &dwcp_features()).unwrap().unwrap();
    assert_eq!((m.window, m.n_features, m.net.backend()), (32, 7, "tract"));
    let mut rng = crate::rng::Rng::new(5);
    let input: Vec<f32> = (0..3 * m.window_len()).map(|_| rng.normal() as f32).collect();
    let mut batched = Vec::new();
    m.reconstruct(&input, 3, &mut batched).unwrap();
    for (k, window) in input.chunks(m.window_len()).enumerate() {
        let mut alone = Vec::new();
        m.reconstruct(window, 1, &mut alone).unwrap();
        let diff =
            alone.iter().zip(&batched[k * m.window_len()..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "window {k}: {diff}");
    }
}

#[test]
fn disabled_or_foreign_profile_never_loads() {
    assert!(load_lstm(&Config::default(), "dwcp", &dwcp_features()).unwrap().is_none());
    let other = vec!["a".to_string()];
    assert!(load_lstm(&config(OnnxBackend::Tract), "node", &other).unwrap().is_none());
}

#[test]
fn a_directory_picks_the_model_trained_on_the_profiles_features() {
    let dir = tempfile::tempdir().unwrap();
    // Two "families": dwcp's 7 features under a/, the same model relabelled with other
    // names under b/, and a stray file with unreadable metadata.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("lstm_autoencoder.onnx"), BUILTIN_LSTM).unwrap();
    std::fs::write(a.join("lstm_autoencoder.json"), BUILTIN_LSTM_METADATA).unwrap();
    let mut other = BUILTIN_LSTM_METADATA.to_string();
    for (k, f) in dwcp_features().iter().enumerate() {
        other = other.replace(&format!("\"{f}\""), &format!("\"f{k}\""));
    }
    std::fs::write(b.join("lstm_autoencoder.onnx"), BUILTIN_LSTM).unwrap();
    std::fs::write(b.join("lstm_autoencoder.json"), &other).unwrap();
    std::fs::write(dir.path().join("0.onnx"), b"not a model").unwrap();
    std::fs::write(dir.path().join("0.json"), b"{").unwrap();
    let mut cfg = config(OnnxBackend::Tract);
    cfg.detect.lstm_ae.model = Some(dir.path().to_path_buf());

    let m = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap().unwrap();
    assert_eq!(m.source, a.join("lstm_autoencoder.onnx").display().to_string());
    let fs: Vec<String> = (0..7).map(|k| format!("f{k}")).collect();
    let m = load_lstm(&cfg, "csv", &fs).unwrap().unwrap();
    assert_eq!(m.source, b.join("lstm_autoencoder.onnx").display().to_string());
    // No model for these features: left out, not an error.
    assert!(load_lstm(&cfg, "csv", &fs[..3]).unwrap().is_none());
}

#[test]
fn bad_model_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    let mut cfg = config(OnnxBackend::Tract);
    cfg.detect.lstm_ae.model = Some(model.clone());
    let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains("m.json"), "{err}");
    std::fs::write(dir.path().join("m.json"), BUILTIN_LSTM_METADATA).unwrap();
    std::fs::write(&model, b"not a model").unwrap();
    let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
    assert!(err.contains("m.onnx: not an ONNX model"), "{err}");
    // The right model with a window its metadata gets wrong.
    std::fs::write(&model, BUILTIN_LSTM).unwrap();
    let wrong = BUILTIN_LSTM_METADATA.replace("\"window\": 32", "\"window\": 16");
    std::fs::write(dir.path().join("m.json"), wrong).unwrap();
    let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
    assert!(err.contains("m.onnx: input \"input\" is [?, 32, 7], expected [batch, 16, 7]"), "{err}");
    // A tensor name the graph does not have.
    let renamed = BUILTIN_LSTM_METADATA.replace("\"output_name\": \"output\"", "\"output_name\": \"recon\"");
    std::fs::write(dir.path().join("m.json"), renamed).unwrap();
    let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
    assert!(
        err.contains("the metadata names output \"recon\", the model's outputs are [\"output\"]"),
        "{err}"
    );
    // Features in another order.
    let mut swapped = dwcp_features();
    swapped.swap(0, 1);
    std::fs::write(dir.path().join("m.json"), BUILTIN_LSTM_METADATA).unwrap();
    let err = load_lstm(&cfg, "dwcp", &swapped).unwrap_err().to_string();
    assert!(err.contains("m.json: model features") && err.contains("same order"), "{err}");
}

#[test]
fn shipped_forest_is_imported_and_flags_a_spike() {
    let mut cfg = Config::default();
    cfg.detect.iforest.enabled = true;
    cfg.detect.iforest.model =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/isolation_forest.onnx"));
    let f = load_forest(&cfg, &dwcp_features()).unwrap().unwrap();
    assert_eq!((f.forest.n_trees(), f.forest.sample_size()), (100, 256));
    let mut d = crate::detect::IsolationForestDetector::pretrained(f, 6.0);
    let mut rng = crate::rng::Rng::new(4);
    let normal = |rng: &mut crate::rng::Rng| -> Vec<f64> {
        [700.0, 25.0, 0.05, 2.5, 50.0, 55.0, 0.02].iter().map(|m| m * (1.0 + 0.05 * rng.normal())).collect()
    };
    let history: Vec<FeatureVector> =
        (0..500).map(|t| FeatureVector { timestamp_ms: t, values: normal(&mut rng) }).collect();
    use crate::detect::Detector;
    d.fit(&history).unwrap();
    let ok = d.score(&FeatureVector { timestamp_ms: 501, values: normal(&mut rng) }).unwrap();
    let mut spike = normal(&mut rng);
    spike[1] = 400.0;
    let bad = d.score(&FeatureVector { timestamp_ms: 502, values: spike }).unwrap();
    assert!(bad.value > 0.5 && ok.value < 0.5, "spike {} normal {}", bad.value, ok.value);
    let top = bad.contributions.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(top, 1, "{:?}", bad.contributions);
    // Features in another order are refused, naming the metadata file.
    let mut swapped = dwcp_features();
    swapped.swap(0, 1);
    let err = load_forest(&cfg, &swapped).unwrap_err().to_string();
    assert!(err.contains("isolation_forest.json: model features"), "{err}");
}

/// The native engine gives tract's output (to f32 rounding) for every LSTM shipped in
/// `models/` (dwcp's 7 features, ASD's and SMD's), on windows of normal values and on windows
/// far outside the training range (where the activations saturate), one at a time or batched;
/// and it refuses a graph of another shape with the reason.
#[test]
fn native_engine_matches_tract_on_every_shipped_lstm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for dir in [root.clone(), root.join("asd"), root.join("smd")] {
        let file = dir.join("lstm_autoencoder.onnx");
        let text = std::fs::read_to_string(dir.join("lstm_autoencoder.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let features: Vec<String> =
            v["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
        let net = |backend| {
            let mut cfg = config(backend);
            cfg.detect.lstm_ae.model = Some(file.clone());
            load_lstm(&cfg, "test", &features).unwrap().unwrap()
        };
        let (native, tract) = (net(OnnxBackend::Native), net(OnnxBackend::Tract));
        assert_eq!(native.net.backend(), "native");
        let mut rng = crate::rng::Rng::new(9);
        let per = native.window_len();
        let input: Vec<f32> =
            (0..5 * per).map(|k| (rng.normal() * if k < 3 * per { 1.0 } else { 40.0 }) as f32).collect();
        let (mut a, mut b, mut one) = (Vec::new(), Vec::new(), Vec::new());
        native.reconstruct(&input, 5, &mut a).unwrap();
        tract.reconstruct(&input, 5, &mut b).unwrap();
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 5e-5, "{}: native and tract differ by {diff}", file.display());
        native.reconstruct(&input[per..2 * per], 1, &mut one).unwrap();
        assert_eq!(one, a[per..2 * per], "a window alone is what it is in a batch");
    }
    let shape = Shape { window: 32, features: 7, input: "input".into(), output: "output".into() };
    let err = native_lstm::NativeLstm::new(b"not a model", &shape).err().unwrap();
    assert!(err.contains("protobuf"), "{err}");
    let forest = std::fs::read(root.join("isolation_forest.onnx")).unwrap();
    let err = native_lstm::NativeLstm::new(&forest, &shape).err().unwrap();
    assert_eq!(err, "expected two LSTM nodes, found 0");
}
