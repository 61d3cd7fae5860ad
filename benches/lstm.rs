//! The LSTM autoencoder (shipped model, window 32, 7 features) on both engines.
//!
//! Run: `cargo bench --bench lstm` (add `-- --quick` for a fast pass). Needs ONNX Runtime's
//! library for the `ort` half (found like the service finds it: `ORT_DYLIB_PATH` or the
//! Python `onnxruntime` package; the tract half always runs). Throughput is per window, i.e.
//! per scored vector:
//! - `network_1000`: 1000 entities' windows through the network in calls of 256 (the check's
//!   batching, `detect.lstm_ae.max_batch`);
//! - `network_1`: one window per call (what a check without batching would pay per entity);
//! - `detector_1000`: the whole per-check path for 1000 entities — each detector builds its
//!   standardised window, one batched network pass, each scores from its slice;
//! - `load`: reading, checking and optimising the model (startup cost).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dwcp_anomaly::internals::config::{Config, OnnxBackend};
use dwcp_anomaly::internals::detect::{Detector, FeatureVector, LstmAeDetector, LstmModel};
use dwcp_anomaly::internals::rng::Rng;
use dwcp_anomaly::internals::simulate::FEATURES;

const ENTITIES: usize = 1000;
const BATCH: usize = 256;

fn config(backend: OnnxBackend) -> Config {
    let mut cfg = Config::default();
    cfg.detect.lstm_ae.enabled = true;
    cfg.onnx.backend = backend;
    cfg
}

fn load(cfg: &Config) -> Option<Arc<LstmModel>> {
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    match dwcp_anomaly::internals::onnx::load_lstm(cfg, "dwcp", &features) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping {:?}: {e}", cfg.onnx.backend);
            None
        }
    }
}

fn lstm(c: &mut Criterion) {
    for backend in [OnnxBackend::Native, OnnxBackend::Ort, OnnxBackend::Tract] {
        let cfg = config(backend);
        let Some(model) = load(&cfg) else { continue };
        let per = model.window_len();
        let mut rng = Rng::new(1);
        let input: Vec<f32> = (0..ENTITIES * per).map(|_| rng.normal() as f32).collect();
        let mut output = Vec::new();
        let mut g = c.benchmark_group(format!("lstm_ae_{}", backend.as_str()));
        g.throughput(Throughput::Elements(ENTITIES as u64));
        g.bench_function("network_1000", |b| {
            b.iter(|| {
                for chunk in input.chunks(BATCH * per) {
                    model.reconstruct(black_box(chunk), chunk.len() / per, &mut output).unwrap();
                }
            })
        });

        // 1000 fitted detectors, each with its own history.
        let mut detectors: Vec<LstmAeDetector> = (0..ENTITIES)
            .map(|e| {
                let history: Vec<FeatureVector> = (0..40)
                    .map(|t| FeatureVector {
                        timestamp_ms: t * 10_000,
                        values: model
                            .mean
                            .iter()
                            .zip(&model.std)
                            .map(|(m, s)| m + s * rng.normal())
                            .collect(),
                    })
                    .collect();
                let mut d = LstmAeDetector::new(Arc::clone(&model), model.window, 6.0);
                d.fit(&history[..(31 + e % 9)]).unwrap();
                d
            })
            .collect();
        let xs: Vec<FeatureVector> = (0..ENTITIES)
            .map(|_| FeatureVector {
                timestamp_ms: 1_000_000,
                values: model.mean.iter().zip(&model.std).map(|(m, s)| m + s * rng.normal()).collect(),
            })
            .collect();
        let mut batch_in = Vec::with_capacity(ENTITIES * per);
        g.bench_function("detector_1000", |b| {
            b.iter(|| {
                batch_in.clear();
                for (d, x) in detectors.iter().zip(&xs) {
                    d.batch_input(&x.values, &mut batch_in);
                }
                let mut sum = 0.0;
                for (k, chunk) in batch_in.chunks(BATCH * per).enumerate() {
                    model.reconstruct(chunk, chunk.len() / per, &mut output).unwrap();
                    for (j, window) in chunk.chunks(per).enumerate() {
                        let e = k * BATCH + j;
                        detectors[e].batch_output(
                            xs[e].timestamp_ms,
                            window,
                            &output[j * per..(j + 1) * per],
                        );
                        sum += detectors[e].score(&xs[e]).unwrap().value;
                    }
                }
                sum
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function("network_1", |b| {
            b.iter(|| model.reconstruct(black_box(&input[..per]), 1, &mut output).unwrap())
        });
        g.sample_size(10);
        g.bench_function("load", |b| b.iter(|| load(&cfg).unwrap()));
        g.finish();
    }
}

criterion_group!(benches, lstm);
criterion_main!(benches);
