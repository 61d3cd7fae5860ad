//! Per-vector cost of the detectors' `score` paths (goal: isolation forest <= 1 µs/vector),
//! and per entity-check of each detector as `serve` steps it (`entity_check_7f`, issue 28).
//!
//! Run: `cargo bench --bench detectors` (add `-- --quick` for a fast pass). Each `single`
//! benchmark scores one vector per iteration, so criterion's time is ns per vector; the
//! `batch` ones score 1024 vectors per iteration (divide by 1024, or read the throughput).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dwcp_anomaly::internals::config::ZScoreConfig;
use dwcp_anomaly::internals::detect::{
    Detector, FeatureVector, Forest, ForestParams, IsolationForestConfig, IsolationForestDetector,
    ZScoreDetector,
};
use dwcp_anomaly::internals::rng::Rng;

const FEATURES: usize = 7;
const VECTORS: usize = 1024;

fn gaussian(n: usize, seed: u64) -> Vec<FeatureVector> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| FeatureVector {
            timestamp_ms: i as i64 * 10_000,
            values: (0..FEATURES).map(|_| rng.normal()).collect(),
        })
        .collect()
}

fn iforest(c: &mut Criterion) {
    let train = gaussian(10_000, 1);
    let rows: Vec<&[f64]> = train.iter().map(|x| x.values.as_slice()).collect();
    let params = ForestParams { trees: 100, sample_size: 256, seed: 1 };
    let forest = Forest::train(&rows, FEATURES, &params).expect("training data is valid");
    let mut detector = IsolationForestDetector::new(&IsolationForestConfig::default(), FEATURES, 6.0);
    detector.fit(&train).expect("training data is valid");
    let xs = gaussian(VECTORS, 2);
    let flat: Vec<f64> = xs.iter().flat_map(|x| x.values.iter().copied()).collect();

    let mut g = c.benchmark_group("iforest_100x256_7f");
    let mut i = 0;
    g.bench_function("single_score", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            forest.score(black_box(&xs[i].values))
        })
    });
    let mut contrib = vec![0.0; FEATURES];
    g.bench_function("single_score_into_contributions", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            forest.score_into(black_box(&xs[i].values), &mut contrib).map(|s| s + contrib[0])
        })
    });
    g.bench_function("single_detector_score", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            detector.score(black_box(&xs[i])).map(|s| s.value)
        })
    });
    let mut score = detector.score(&xs[0]).expect("fitted detector scores");
    g.bench_function("single_detector_score_into", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            detector.score_into(black_box(&xs[i]), &mut score).map(|()| score.value)
        })
    });
    let mut out = vec![0.0; VECTORS];
    g.throughput(Throughput::Elements(VECTORS as u64));
    g.bench_function("batch_1024", |b| {
        b.iter(|| forest.score_batch(black_box(&flat), &mut out).map(|()| out[0]))
    });
    g.finish();
}

fn zscore(c: &mut Criterion) {
    let mut d = ZScoreDetector::new(&ZScoreConfig::default(), FEATURES, 6.0);
    d.fit(&gaussian(400, 3)).expect("training data is valid");
    let xs = gaussian(VECTORS, 4);
    let mut i = 0;
    c.bench_function("zscore_7f/single_detector_score", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            d.score(black_box(&xs[i])).map(|s| s.value)
        })
    });
    let mut score = d.score(&xs[0]).expect("fitted detector scores");
    c.bench_function("zscore_7f/single_detector_score_into", |b| {
        b.iter(|| {
            i = (i + 1) % VECTORS;
            d.score_into(black_box(&xs[i]), &mut score).map(|()| score.value)
        })
    });
}

/// The whole native ensemble as `serve` runs it per vector: every enabled detector scores,
/// the vote combines, then every detector learns (`EntityModel::step`; refits excluded by a
/// `fit_every` longer than the run). Goal: < 20 µs per vector.
fn ensemble(c: &mut Criterion) {
    let mut cfg = dwcp_anomaly::internals::config::DetectConfig::default();
    cfg.enable_only(&dwcp_anomaly::internals::config::DETECTORS).expect("known detectors");
    cfg.fit_every = std::time::Duration::from_secs(1 << 30);
    let spec = dwcp_anomaly::internals::detect::ModelSpec::new(&cfg, FEATURES);
    let mut model = spec.build();
    let train = gaussian(2000, 5);
    model.fit_on(&train).expect("training data is valid");
    let xs = gaussian(VECTORS, 6);
    let mut i = 0;
    c.bench_function("ensemble_all_native_7f/step", |b| {
        b.iter(|| {
            let mut x = xs[i % VECTORS].clone();
            x.timestamp_ms = 20_000_000 + i as i64 * 10_000;
            i += 1;
            black_box(model.step(x).expect("fitted model scores"))
        })
    });
}

/// Cost per entity-check of each detector alone and of `benches/scale.yaml` (issue 28), as
/// `serve` pays it: `EntityModel::step` with the default windows, 10 s between vectors, so the
/// hourly refit on the 360-vector history and seasonal ESD's recomputes are included,
/// amortised. The isolation forest and the LSTM are the shipped `dwcp` models shared by the
/// profile (`iforest.model`, `lstm_ae`); the LSTM runs one window per call here, where a check
/// batches every entity's window into one call.
fn entity_check(c: &mut Criterion) {
    use dwcp_anomaly::internals::config::{Config, DetectConfig, VectorizeConfig};
    use dwcp_anomaly::internals::detect::ModelSpec;
    use dwcp_anomaly::internals::vectorize::Vectorizer;
    let mut rows: Vec<(String, DetectConfig)> = Vec::new();
    for d in dwcp_anomaly::internals::config::DETECTORS {
        let mut cfg = DetectConfig::default();
        cfg.enable_only(&[d]).expect("known detector");
        cfg.iforest.model = Some("models/isolation_forest.onnx".into());
        rows.push((d.to_string(), cfg));
    }
    let scale = std::fs::read_to_string("benches/scale.yaml").expect("run from the crate root");
    rows.push(("scale_yaml".into(), Config::parse(&scale).expect("benches/scale.yaml is valid").detect));
    let vectorizer = Vectorizer::new(&VectorizeConfig::default()).expect("default profile");
    let profile = vectorizer.profile();
    let mut g = c.benchmark_group("entity_check_7f");
    for (name, cfg) in rows {
        let full = Config { detect: cfg.clone(), ..Config::default() };
        let mut spec = ModelSpec::new(&cfg, FEATURES);
        if let Ok(Some(m)) =
            dwcp_anomaly::internals::onnx::load_lstm(&full, &profile.name, &profile.feature_names())
        {
            spec = spec.with_lstm(m);
        }
        if let Ok(Some(f)) = dwcp_anomaly::internals::onnx::load_forest(&full, &profile.feature_names()) {
            spec = spec.with_forest(f);
        }
        let mut model = spec.build();
        let xs = gaussian(VECTORS, 8);
        for (i, x) in gaussian(400, 7).into_iter().enumerate() {
            let x = FeatureVector { timestamp_ms: i as i64 * 10_000, ..x };
            model.step(x).expect("the detectors learn");
        }
        let mut i = 400;
        g.bench_function(name.as_str(), |b| {
            b.iter(|| {
                let mut x = xs[i % VECTORS].clone();
                x.timestamp_ms = i as i64 * 10_000;
                i += 1;
                black_box(model.step(x).expect("fitted model scores"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, iforest, zscore, ensemble, entity_check);
criterion_main!(benches);
