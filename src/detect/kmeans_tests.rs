use crate::config::ConfigErrors;
use std::f64::consts::TAU;
use std::time::Instant;

use super::*;
use crate::detect::seasonal_esd::tests::{asd_omi1, auc};
use crate::rng::Rng;
use crate::testing::vector;

/// Three metrics: two seasonal with noise, one noisy constant.
fn normal_series(n: usize, seed: u64) -> Vec<FeatureVector> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|t| {
            let t = t as f64;
            let values = vec![
                50.0 + 3.0 * (TAU * t / 30.0).sin() + 0.5 * rng.normal(),
                10.0 + rng.normal(),
                100.0 + 5.0 * (TAU * t / 100.0).sin() + rng.normal(),
            ];
            vector(t as i64, &values)
        })
        .collect()
}

fn fitted(history: &[FeatureVector], cfg: &KMeansConfig) -> KMeansDetector {
    let mut d = KMeansDetector::new(cfg, history[0].values.len(), 6.0);
    d.fit(history).unwrap();
    d
}

#[test]
fn features_are_smoothed_lagged_differences() {
    let cfg = KMeansConfig { smooth: 2, lag: 1, ..Default::default() };
    let d = KMeansDetector::new(&cfg, 2, 6.0);
    assert_eq!(d.dims(), 4);
    let raw: [&[f64]; 4] = [&[0.0, 1.0], &[1.0, 1.0], &[3.0, f64::NAN], &[6.0, 1.0]];
    let mut f = Vec::new();
    d.features_into(&raw, &mut f);
    // Metric 0: diffs 1, 2, 3 → smoothed (2+3)/2 = 2.5 now, (1+2)/2 = 1.5 one step back.
    // Metric 1: every diff touches the NaN or is 0 → 0.
    assert_eq!(f, vec![2.5, 1.5, 0.0, 0.0]);
}

#[test]
fn oscillation_scores_higher_than_normal() {
    let series = normal_series(4000, 21);
    let (history, stream) = series.split_at(2000);
    let mut d = fitted(history, &KMeansConfig::default());
    let anomalous = 1000..1060;
    let (mut normal_high, mut normal, mut sum_normal) = (0, 0, 0.0);
    let (mut sum_anom, mut anom_high) = (0.0, 0);
    for (j, x) in stream.iter().enumerate() {
        let mut x = x.clone();
        if anomalous.contains(&j) {
            // Metric 1 starts to flap by ±4 standard deviations.
            x.values[1] += if j % 2 == 0 { 4.0 } else { -4.0 };
        }
        let s = d.score(&x).unwrap();
        if anomalous.contains(&j) {
            sum_anom += s.value;
            anom_high += usize::from(s.value >= 0.5);
            if j > anomalous.start + 2 {
                assert!(s.contributions[1] > 0.5, "{j}: {:?}", s.contributions);
            }
        } else if !(anomalous.start..anomalous.end + 10).contains(&j) {
            normal += 1;
            sum_normal += s.value;
            normal_high += usize::from(s.value >= 0.5);
        }
        d.update(&x);
    }
    let (mean_anom, mean_normal) = (sum_anom / anomalous.len() as f64, sum_normal / normal as f64);
    let fpr = normal_high as f64 / normal as f64;
    println!(
        "kmeans synthetic: mean score anomalous {mean_anom:.3} normal {mean_normal:.3}; \
         anomalous flagged {anom_high}/{}; normal fpr {fpr:.4}",
        anomalous.len()
    );
    assert!(mean_anom > mean_normal + 0.3, "{mean_anom} vs {mean_normal}");
    assert!(anom_high * 10 >= anomalous.len() * 8, "{anom_high} flagged");
    assert!(fpr <= 0.03, "fpr {fpr}");
}

#[test]
fn same_seed_same_model() {
    let history = normal_series(600, 3);
    let cfg = KMeansConfig { k: 3, ..Default::default() };
    let (a, b) = (fitted(&history, &cfg), fitted(&history, &cfg));
    assert_eq!(a.centroids(), b.centroids());
    assert_eq!(a.centroids().len(), 3);
    assert_eq!(a.centroids()[0].len(), 18);
    let x = vector(0, &[55.0, 9.0, 101.0]);
    assert_eq!(a.score(&x).unwrap(), b.score(&x).unwrap());
}

#[test]
fn nan_input_never_panics() {
    let mut history = normal_series(500, 4);
    for (t, x) in history.iter_mut().enumerate() {
        if t % 5 == 0 {
            x.values[0] = f64::NAN;
        }
        x.values[2] = f64::NAN;
    }
    let mut d = fitted(&history, &KMeansConfig::default());
    for i in 0..50 {
        let x = vector(i, &[f64::NAN, if i % 2 == 0 { f64::NAN } else { 10.0 }, 1e300]);
        let s = d.score(&x).unwrap();
        assert!((0.0..=1.0).contains(&s.value), "{s:?}");
        d.update(&x);
    }
    // All-NaN (and constant) history degenerates to identical vectors but still fits.
    let flat: Vec<FeatureVector> = (0..100).map(|i| vector(i, &[f64::NAN, 3.0])).collect();
    let mut d = fitted(&flat, &KMeansConfig::default());
    let s = d.score(&vector(0, &[1.0, 3.0])).unwrap();
    assert!(s.value.is_finite());
    d.update(&vector(0, &[1.0, 3.0]));
}

#[test]
fn scores_zero_until_the_window_fills() {
    let mut d = fitted(&normal_series(300, 5), &KMeansConfig::default());
    d.recent.clear();
    for i in 0..8 {
        let x = vector(i, &[1e6, -1e6, 0.0]);
        let s = d.score(&x).unwrap();
        assert_eq!((s.value, s.raw), (0.0, 0.0));
        assert_eq!(s.contributions, vec![0.0; 3]);
        d.update(&x);
    }
    assert!(d.score(&vector(8, &[1e6, -1e6, 0.0])).unwrap().raw > 0.0);
}

#[test]
fn errors_before_fit_wrong_shape_and_short_history() {
    let mut d = KMeansDetector::new(&KMeansConfig::default(), 3, 6.0);
    assert_eq!(d.score(&vector(0, &[1.0, 2.0, 3.0])), Err(DetectError::NotFitted("kmeans")));
    assert_eq!(
        d.fit(&normal_series(12, 1)),
        Err(DetectError::NotEnoughData { detector: "kmeans", needed: 18, found: 12 })
    );
    assert!(matches!(d.fit(&crate::testing::gaussian_series(50, 2, 1)), Err(DetectError::Shape { .. })));
    let d = fitted(&normal_series(18, 1), &KMeansConfig::default());
    assert!(matches!(d.score(&vector(0, &[1.0])), Err(DetectError::Shape { .. })));
}

#[test]
fn config_defaults_validation_and_unknown_keys() {
    let c = KMeansConfig::default();
    assert!(!c.enabled);
    assert_eq!((c.k, c.smooth, c.lag, c.max_iterations, c.seed), (2, 3, 5, 100, 1));
    let mut e = ConfigErrors::default();
    c.validate(&mut e);
    assert!(e.into_vec().is_empty());
    let bad = KMeansConfig { weight: f64::NAN, k: 0, smooth: 0, lag: 101, max_iterations: 0, ..c };
    let mut e = ConfigErrors::default();
    bad.validate(&mut e);
    let msgs: Vec<String> = e.into_vec().iter().map(|e| format!("{}: {}", e.path, e.reason)).collect();
    assert_eq!(
        msgs,
        [
            "weight: must be >= 0, got NaN",
            "k: must be within [1, 100], got 0",
            "smooth: must be >= 1, got 0",
            "lag: must be <= 100, got 101",
            "max_iterations: must be >= 1, got 0",
        ]
    );
    let parsed: KMeansConfig = serde_json::from_str(r#"{"k": 4, "enabled": true}"#).unwrap();
    assert_eq!(parsed, KMeansConfig { k: 4, enabled: true, ..Default::default() });
    assert!(serde_json::from_str::<KMeansConfig>(r#"{"clusters": 4}"#).is_err());
}

#[test]
fn per_vector_cost() {
    let nf = 20;
    let series = crate::testing::gaussian_series(3000, nf, 9);
    let (history, stream) = series.split_at(1440);
    let start = Instant::now();
    let mut d = fitted(history, &KMeansConfig::default());
    let fit = start.elapsed();
    let start = Instant::now();
    let mut sum = 0.0;
    for x in stream {
        sum += d.score(x).unwrap().value;
        d.update(x);
    }
    let per = start.elapsed() / stream.len() as u32;
    println!(
        "kmeans cost ({nf} metrics, {} dims, k 2, 1440 training points): fit {fit:?}, \
         score+update {per:?} per vector (sum {sum:.1})",
        d.dims()
    );
}

#[test]
fn asd_omi1_anomalies_score_higher() {
    let (train, test, labels) = asd_omi1();
    let mut d = fitted(&train[train.len() - 2880..], &KMeansConfig::default());
    let (mut values, mut raws) = (Vec::new(), Vec::new());
    for x in &test {
        let s = d.score(x).unwrap();
        values.push(s.value);
        raws.push(s.raw);
        d.update(x);
    }
    let mean = |want: bool| {
        let v: Vec<f64> = values.iter().zip(&labels).filter(|(_, l)| **l == want).map(|(v, _)| *v).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (m1, m0) = (mean(true), mean(false));
    let flagged = |want: bool| values.iter().zip(&labels).filter(|(v, l)| **l == want && **v >= 0.5).count();
    println!(
        "kmeans asd omi-1: mean score anomalous {m1:.3} normal {m0:.3}; AUC(value) {:.3} \
         AUC(raw) {:.3}; flagged >= 0.5: {} anomalous, {} normal",
        auc(&values, &labels),
        auc(&raws, &labels),
        flagged(true),
        flagged(false)
    );
    assert!(m1 > m0, "anomalous rows mean {m1} <= normal rows mean {m0}");
}

#[test]
fn a_step_of_a_metric_flat_in_the_fit_history_stays_finite() {
    // A fourth metric never moves over the fit history (a flag, a rarely stepping counter).
    let with_flat = |xs: &[FeatureVector]| -> Vec<FeatureVector> {
        xs.iter()
            .map(|x| {
                let mut v = x.values.clone();
                v.push(0.0);
                vector(x.timestamp_ms / 10_000, &v)
            })
            .collect()
    };
    let series = with_flat(&normal_series(2400, 5));
    let (history, stream) = series.split_at(2000);
    let mut d = fitted(history, &KMeansConfig::default());
    for x in &stream[..20] {
        d.update(x);
    }
    // Its ordinary step of 0.5 — small next to the other metrics' noise — was a distance of
    // ~10⁸ with a level-only floor; now it is finite and below a 4σ flap of metric 1.
    let mut step = stream[20].clone();
    step.values[3] = 0.5;
    let small = d.score(&step).unwrap();
    assert!(small.raw < 100.0, "step of a flat metric: raw {}", small.raw);
    let mut flap = stream[20].clone();
    flap.values[1] += 8.0;
    let big = d.score(&flap).unwrap();
    assert!(big.raw > small.raw, "flap {} vs flat step {}", big.raw, small.raw);
    assert!(big.value > 0.9, "a real jump is still anomalous: {}", big.value);
}
