//! Times the isolation forest the way `benches/iforest_vs_sklearn.py` times scikit-learn:
//! 100 trees, sample size 256, 7 Gaussian features, 10 000 training rows, then one-vector
//! calls and one batch over 100 000 vectors. Prints `key=value` lines the script parses.
//!
//! Run: `cargo run --release --example iforest_bench`.

use std::hint::black_box;
use std::time::Instant;

use dwcp_anomaly::internals::detect::{Forest, ForestParams};
use dwcp_anomaly::internals::rng::Rng;

const FEATURES: usize = 7;
const TRAIN: usize = 10_000;
const SCORE: usize = 100_000;

fn gaussian(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n * FEATURES).map(|_| rng.normal()).collect()
}

/// Best of `reps` timings of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let train = gaussian(TRAIN, 1);
    let rows: Vec<&[f64]> = train.chunks_exact(FEATURES).collect();
    let params = ForestParams { trees: 100, sample_size: 256, seed: 1 };
    let t = Instant::now();
    let forest = Forest::train(&rows, FEATURES, &params).expect("training data is valid");
    let fit = t.elapsed().as_secs_f64();

    let xs = gaussian(SCORE, 2);
    let mut out = vec![0.0; SCORE];
    let batch = best_of(5, || {
        forest.score_batch(black_box(&xs), &mut out).expect("shapes match");
    });
    let single = best_of(5, || {
        for x in xs.chunks_exact(FEATURES) {
            black_box(forest.score(black_box(x)).expect("shapes match"));
        }
    });
    let mut contrib = vec![0.0; FEATURES];
    let with_contrib = best_of(5, || {
        for x in xs.chunks_exact(FEATURES) {
            black_box(forest.score_into(black_box(x), &mut contrib).expect("shapes match"));
        }
    });
    let mean = out.iter().sum::<f64>() / SCORE as f64;
    println!("nodes={} fit_ms={:.3} mean_score={mean:.4}", forest.n_nodes(), fit * 1e3);
    println!("rust_batch_ns_per_vector={:.1}", batch * 1e9 / SCORE as f64);
    println!("rust_single_ns_per_vector={:.1}", single * 1e9 / SCORE as f64);
    println!("rust_single_contrib_ns_per_vector={:.1}", with_contrib * 1e9 / SCORE as f64);
}
