//! Seeded, deterministic inputs shared by unit tests.

use crate::detect::FeatureVector;
use crate::rng::Rng;

/// `n` vectors of `features` independent standard normals, 10 s apart.
pub fn gaussian_series(n: usize, features: usize, seed: u64) -> Vec<FeatureVector> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| FeatureVector {
            timestamp_ms: i as i64 * 10_000,
            values: (0..features).map(|_| rng.normal()).collect(),
        })
        .collect()
}

/// One vector at step `i`.
pub fn vector(i: i64, values: &[f64]) -> FeatureVector {
    FeatureVector { timestamp_ms: i * 10_000, values: values.to_vec() }
}
