use crate::config::ConfigErrors;
use std::f64::consts::TAU;
use std::time::Instant;

use super::*;
use crate::rng::Rng;
use crate::testing::vector;

const PERIOD: usize = 48;

/// Three seasonal features (period [`PERIOD`], different levels, amplitudes and phases) with
/// Gaussian noise of standard deviation `NOISE[i]`.
const NOISE: [f64; 3] = [0.5, 2.0, 0.3];

fn seasonal(n: usize, seed: u64) -> Vec<FeatureVector> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|t| {
            let ph = TAU * t as f64 / PERIOD as f64;
            let values = vec![
                10.0 + 5.0 * ph.sin() + NOISE[0] * rng.normal(),
                100.0 + 20.0 * (ph + 1.0).sin() + NOISE[1] * rng.normal(),
                2.0 * (2.0 * ph).cos() + 1.0 * ph.sin() + NOISE[2] * rng.normal(),
            ];
            vector(t as i64, &values)
        })
        .collect()
}

fn test_cfg() -> SeasonalEsdConfig {
    SeasonalEsdConfig { enabled: true, window: 480, recompute_every: 24, ..Default::default() }
}

fn fitted(history: &[FeatureVector], cfg: &SeasonalEsdConfig) -> SeasonalEsdDetector {
    let mut d = SeasonalEsdDetector::new(cfg, history[0].values.len(), 6.0);
    d.fit(history).unwrap();
    d
}

#[test]
fn student_t_quantiles_match_tables() {
    for (q, df, want) in [
        (0.025, 10.0, 2.228_138_852),
        (0.005, 30.0, 2.749_995_654),
        (0.025, 1.0, 12.706_204_74),
        (0.05, 1000.0, 1.646_379_12),
    ] {
        let got = t_upper_quantile(q, df);
        assert!((got - want).abs() < 1e-6 * want, "t({q}, {df}) = {got}, want {want}");
    }
}

#[test]
fn esd_critical_values_match_rosner_example() {
    // NIST/SEMATECH e-Handbook 1.3.5.17.3: n = 54, alpha = 0.05, r = 10.
    let want = [3.159, 3.151, 3.144, 3.136, 3.128, 3.120, 3.112, 3.103, 3.094, 3.085];
    let got = critical_values(54, 10, 0.05);
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1.5e-3, "{got:?}");
    }
    assert_eq!(critical_values(2, 1, 0.05), vec![f64::INFINITY]);
}

#[test]
fn esd_finds_injected_outliers_only() {
    let mut rng = Rng::new(5);
    let mut xs: Vec<f64> = (0..500).map(|_| rng.normal()).collect();
    let crit = critical_values(500, 10, 0.05);
    let sorted = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    // Median/MAD makes the test a little liberal: a chance outlier in pure noise is possible.
    let clean = esd_count(&sorted(&xs), &crit);
    assert!(clean <= 1, "{clean}");
    xs[10] = 9.0;
    xs[200] = -8.0;
    xs[300] = 7.0;
    assert_eq!(esd_count(&sorted(&xs), &crit), clean + 3);
}

#[test]
fn leave_one_out_median_matches_brute_force() {
    let s = [1.0, 2.0, 4.0, 7.0, 11.0, 12.0];
    for m in 2..=s.len() {
        for k in 0..m {
            let mut rest: Vec<f64> = s[..m].to_vec();
            rest.remove(k);
            assert_eq!(loo_median(&s[..m], k), median_sorted(&rest), "m {m} k {k}");
        }
    }
    let mut v = vec![5.0, 1.0, 3.0, 2.0];
    assert_eq!(median(&mut v), 2.5);
}

#[test]
fn mad_of_sorted_matches_brute_force() {
    let mut rng = Rng::new(8);
    for n in 1..40 {
        let mut s: Vec<f64> = (0..n).map(|_| (rng.normal() * 4.0).round()).collect();
        s.sort_by(f64::total_cmp);
        let med = median_sorted(&s);
        let mut dev: Vec<f64> = s.iter().map(|x| (x - med).abs()).collect();
        dev.sort_by(f64::total_cmp);
        assert_eq!(mad_sorted(&s, med), median_sorted(&dev), "{s:?}");
    }
}

#[test]
fn detects_the_true_period_and_no_period_in_noise() {
    let d = fitted(&seasonal(960, 1), &test_cfg());
    assert_eq!(d.periods(), vec![PERIOD; 3]);
    let mut rng = Rng::new(2);
    let noise: Vec<f64> = (0..480).map(|_| rng.normal()).collect();
    assert_eq!(detect_period(&noise, 240), None);
    // A trend alone is not seasonality.
    let trend: Vec<f64> = (0..480).map(|t| t as f64 * 0.1 + 0.01 * rng.normal()).collect();
    assert_eq!(detect_period(&trend, 240), None);
    // A daily-like pulse train (not a sine) with gaps.
    let pulse: Vec<f64> = (0..600)
        .map(|t| {
            if t % 60 == 3 {
                f64::NAN
            } else if t % 60 < 10 {
                5.0
            } else {
                0.0
            }
        })
        .collect();
    assert_eq!(detect_period(&pulse, 300), Some(60));
}

#[test]
fn flags_injected_spikes_and_few_normal_points() {
    let series = seasonal(960 + 3000, 11);
    let (history, stream) = series.split_at(960);
    let mut d = fitted(history, &test_cfg());
    let mut rng = Rng::new(12);
    let mut spikes = std::collections::BTreeSet::new();
    let mut i = 20;
    while i < stream.len() {
        spikes.insert(i);
        i += 40 + rng.below(30) as usize;
    }
    let (mut hit, mut normal_high, mut normal) = (0, 0, 0);
    for (j, x) in stream.iter().enumerate() {
        let mut x = x.clone();
        if spikes.contains(&j) {
            let f = rng.below(3) as usize;
            let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            x.values[f] += sign * (6.0 + 4.0 * rng.uniform()) * NOISE[f];
            let s = d.score(&x).unwrap();
            if s.value >= 0.5 {
                hit += 1;
                assert!(d.outliers(&x).unwrap()[f], "spike at {j} scored but not an ESD outlier");
                let top = (0..3).max_by(|&a, &b| s.contributions[a].total_cmp(&s.contributions[b]));
                assert_eq!(top, Some(f), "{:?}", s.contributions);
            }
        } else {
            normal += 1;
            if d.score(&x).unwrap().value >= 0.5 {
                normal_high += 1;
            }
        }
        d.update(&x);
    }
    let recall = hit as f64 / spikes.len() as f64;
    let fpr = normal_high as f64 / normal as f64;
    println!("sesd synthetic: recall {recall:.3} ({hit}/{}), fpr {fpr:.4}", spikes.len());
    assert!(recall >= 0.9, "recall {recall}");
    assert!(fpr <= 0.02, "fpr {fpr}");
}

#[test]
fn expected_band_follows_the_season() {
    let series = seasonal(960, 3);
    let d = fitted(&series, &test_cfg());
    // The next point is phase 960 % 48 = 0: feature 0's baseline is about 10 + 5 sin(0).
    let s = d.score(&vector(0, &[10.0, 100.0 + 20.0 * 1f64.sin(), 2.0])).unwrap();
    let e = s.expected[0];
    assert!((e.value - 10.0).abs() < 0.5, "{e:?}");
    assert!(e.lower < e.value && e.value < e.upper);
    assert!(s.value < 0.5, "{s:?}");
}

#[test]
fn nan_input_never_panics() {
    let mut series = seasonal(600, 4);
    for (t, x) in series.iter_mut().enumerate() {
        if t % 7 == 0 {
            x.values[0] = f64::NAN;
        }
        x.values[2] = f64::NAN;
    }
    let mut d = fitted(&series, &test_cfg());
    for i in 0..200 {
        let x = vector(i, &[f64::NAN, if i % 3 == 0 { f64::NAN } else { 100.0 }, f64::NAN]);
        let s = d.score(&x).unwrap();
        assert!((0.0..=1.0).contains(&s.value), "{s:?}");
        assert_eq!(s.contributions[0], 0.0);
        d.update(&x);
    }
    let all_nan = d.score(&vector(0, &[f64::NAN; 3])).unwrap();
    assert_eq!(all_nan.value, 0.0);
    // All-NaN history fits (nothing to score) without panicking.
    let empty: Vec<FeatureVector> = (0..50).map(|i| vector(i, &[f64::NAN; 3])).collect();
    let mut d = fitted(&empty, &test_cfg());
    assert_eq!(d.score(&vector(0, &[1.0, 2.0, 3.0])).unwrap().value, 0.0);
    d.update(&vector(0, &[1.0, 2.0, 3.0]));
}

#[test]
fn constant_feature_does_not_divide_by_zero() {
    let mut rng = Rng::new(6);
    let series: Vec<FeatureVector> = (0..300).map(|i| vector(i, &[5.0, 1.0 + 0.1 * rng.normal()])).collect();
    let d = fitted(&series, &test_cfg());
    assert_eq!(d.periods(), vec![0, 0]);
    assert!(d.score(&vector(0, &[5.0, 1.0])).unwrap().value < 0.5);
    assert!(d.score(&vector(0, &[6.0, 1.0])).unwrap().value > 0.9);
}

#[test]
fn same_input_same_model() {
    let series = seasonal(900, 9);
    let (a, b) = (fitted(&series, &test_cfg()), fitted(&series, &test_cfg()));
    let x = vector(0, &[11.0, 90.0, 0.5]);
    assert_eq!(a.score(&x).unwrap(), b.score(&x).unwrap());
}

#[test]
fn errors_before_fit_wrong_shape_and_short_history() {
    let mut d = SeasonalEsdDetector::new(&test_cfg(), 2, 6.0);
    assert_eq!(d.score(&vector(0, &[1.0, 2.0])), Err(DetectError::NotFitted("sesd")));
    let short: Vec<FeatureVector> = (0..5).map(|i| vector(i, &[1.0, 2.0])).collect();
    assert_eq!(
        d.fit(&short),
        Err(DetectError::NotEnoughData { detector: "sesd", needed: MIN_FIT, found: 5 })
    );
    let d = fitted(&seasonal(100, 1)[..], &test_cfg());
    assert!(matches!(d.score(&vector(0, &[1.0])), Err(DetectError::Shape { .. })));
    let mut d = SeasonalEsdDetector::new(&test_cfg(), 2, 6.0);
    assert!(matches!(d.fit(&seasonal(100, 1)), Err(DetectError::Shape { .. })));
}

#[test]
fn config_defaults_validation_and_unknown_keys() {
    let c = SeasonalEsdConfig::default();
    assert!(!c.enabled);
    assert_eq!((c.window, c.period, c.recompute_every), (1440, 0, 60));
    let mut e = ConfigErrors::default();
    c.validate(&mut e);
    assert!(e.into_vec().is_empty());
    let bad = SeasonalEsdConfig {
        weight: -1.0,
        window: 4,
        period: 3,
        max_anoms: 0.5,
        alpha: 0.0,
        recompute_every: 0,
        ..c
    };
    let mut e = ConfigErrors::default();
    bad.validate(&mut e);
    let msgs: Vec<String> = e.into_vec().iter().map(|e| format!("{}: {}", e.path, e.reason)).collect();
    assert_eq!(
        msgs,
        [
            "weight: must be >= 0, got -1",
            "window: must be >= 16, got 4",
            "period: must be 0 (detect) or within [2, window / 2 = 2], got 3",
            "max_anoms: must be within (0, 0.49], got 0.5",
            "alpha: must be within (0, 1), got 0",
            "recompute_every: must be >= 1, got 0",
        ]
    );
    let parsed: SeasonalEsdConfig = serde_json::from_str(r#"{"period": 288}"#).unwrap();
    assert_eq!(parsed, SeasonalEsdConfig { period: 288, ..Default::default() });
    assert!(serde_json::from_str::<SeasonalEsdConfig>(r#"{"perod": 288}"#).is_err());
}

#[test]
fn per_vector_cost() {
    let nf = 20;
    let mut rng = Rng::new(1);
    let series: Vec<FeatureVector> = (0..3000)
        .map(|t| {
            let ph = TAU * t as f64 / 288.0;
            vector(t as i64, &(0..nf).map(|i| i as f64 + ph.sin() + 0.1 * rng.normal()).collect::<Vec<_>>())
        })
        .collect();
    let cfg = SeasonalEsdConfig { period: 288, ..Default::default() };
    let (history, stream) = series.split_at(1500);
    let start = Instant::now();
    let mut d = fitted(history, &cfg);
    let fit = start.elapsed();
    let start = Instant::now();
    let mut sum = 0.0;
    for x in stream {
        sum += d.score(x).unwrap().value;
        d.update(x);
    }
    let per = start.elapsed() / stream.len() as u32;
    println!(
        "sesd cost ({nf} features, window 1440, period 288, recompute_every 60): fit {fit:?}, \
         score+update {per:?} per vector (sum {sum:.1})"
    );
}

/// ASD omi-1 (19 features, label column): `(train, test, labels)`.
pub(crate) fn asd_omi1() -> (Vec<FeatureVector>, Vec<FeatureVector>, Vec<bool>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/asd/omi-1/");
    let read = |name: &str| {
        let text = std::fs::read_to_string(format!("{dir}{name}")).unwrap();
        let mut xs = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in text.lines().skip(1).enumerate() {
            let cols: Vec<&str> = line.split(',').collect();
            let n = cols.len();
            let values = cols[1..n - 1].iter().map(|c| c.parse().unwrap_or(f64::NAN)).collect();
            xs.push(FeatureVector { timestamp_ms: i as i64 * 300_000, values });
            labels.push(cols[n - 1].trim() == "1");
        }
        (xs, labels)
    };
    let (train, _) = read("train.csv");
    let (test, labels) = read("test.csv");
    (train, test, labels)
}

/// AUC-ROC of `scores` against `labels` (ties count half).
pub(crate) fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[idx[k]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[test]
fn asd_omi1_anomalies_score_higher() {
    let (train, test, labels) = asd_omi1();
    let cfg = SeasonalEsdConfig { enabled: true, ..Default::default() };
    let mut d = fitted(&train[train.len() - 2 * cfg.window..], &cfg);
    println!("sesd asd omi-1 periods: {:?}", d.periods());
    let (mut values, mut raws) = (Vec::new(), Vec::new());
    for x in &test {
        let s = d.score(x).unwrap();
        values.push(s.value);
        raws.push(if s.raw.is_finite() { s.raw } else { 0.0 });
        d.update(x);
    }
    let mean = |want: bool| {
        let v: Vec<f64> = values.iter().zip(&labels).filter(|(_, l)| **l == want).map(|(v, _)| *v).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (m1, m0) = (mean(true), mean(false));
    let flagged = |want: bool| values.iter().zip(&labels).filter(|(v, l)| **l == want && **v >= 0.5).count();
    println!(
        "sesd asd omi-1: mean score anomalous {m1:.3} normal {m0:.3}; AUC(value) {:.3} \
         AUC(raw) {:.3}; flagged >= 0.5: {} anomalous, {} normal",
        auc(&values, &labels),
        auc(&raws, &labels),
        flagged(true),
        flagged(false)
    );
    assert!(m1 > m0, "anomalous rows mean {m1} <= normal rows mean {m0}");
}

#[test]
fn a_step_of_a_feature_flat_in_the_window_stays_finite() {
    // A fourth feature never moves over the window (a rarely stepping counter).
    let history: Vec<FeatureVector> = seasonal(960, 8)
        .into_iter()
        .map(|mut x| {
            x.values.push(0.0);
            x
        })
        .collect();
    let d = fitted(&history, &test_cfg());
    // Its ordinary step of 0.05 was |z| ~ 5·10⁷ with a level-only floor; now its σ is floored
    // at a share of the other features' and the step stays finite.
    let mut x = history[history.len() - PERIOD].clone();
    x.values[3] = 0.05;
    let s = d.score(&x).unwrap();
    assert!(s.raw < 20.0, "{}", s.raw);
    // A step as large as the other features' seasonal swing is still an anomaly.
    x.values[3] = 5.0;
    assert!(d.score(&x).unwrap().value > 0.9);
}

#[test]
fn a_shared_window_scores_exactly_as_its_own_ring() {
    // Values on a grid of 1/8 are exact as f32 offsets in both the ring and the history, so
    // reading the window from the entity's history must give the very same scores as keeping
    // a ring, through the fit and the recomputes that follow, with no ring held.
    let rounded = |x: FeatureVector| FeatureVector {
        values: x.values.iter().map(|v| (v * 8.0).round() / 8.0).collect(),
        ..x
    };
    let data: Vec<FeatureVector> = seasonal(900, 11).into_iter().map(rounded).collect();
    let cfg = test_cfg();
    let mut all = History::new(3, cfg.window);
    for x in &data[..400] {
        all.push(x.timestamp_ms, &x.values, false);
    }
    let mut own = fitted(&data[400 - cfg.window.min(400)..400], &cfg);
    let mut shared = SeasonalEsdDetector::new(&cfg, 3, 6.0).sharing_history();
    shared.fit_in(&data[..400], &all).unwrap();
    for x in &data[400..] {
        let (a, b) = (own.score(x).unwrap(), shared.score(x).unwrap());
        assert_eq!(
            (a.value.to_bits(), a.raw.to_bits()),
            (b.value.to_bits(), b.raw.to_bits()),
            "t={}",
            x.timestamp_ms
        );
        own.update(x);
        shared.update_in(x, &all);
        all.push(x.timestamp_ms, &x.values, false);
    }
    assert!(shared.features.iter().all(|f| f.ring.capacity() == 0));
    assert_eq!(shared.periods(), own.periods());
}

#[test]
fn a_shared_window_leaves_out_what_the_vote_flagged_before_the_fit() {
    // The buffered history holds flagged spikes before the fit and after it. The shared window
    // must be what a ring holds: the fit's unflagged vectors, then every vector since, flagged
    // or not; so every score equals a ring-keeping detector's, fitted on the unflagged history.
    let rounded = |x: FeatureVector| FeatureVector {
        values: x.values.iter().map(|v| (v * 8.0).round() / 8.0).collect(),
        ..x
    };
    let spike = |t: usize| (100..110).contains(&t) || (350..353).contains(&t);
    let data: Vec<FeatureVector> = seasonal(600, 5)
        .into_iter()
        .map(rounded)
        .enumerate()
        // Spikes of 1e3 keep the history's codes on a grid of 1/32 (of 1/8 too): exact.
        .map(|(t, x)| if spike(t) { FeatureVector { values: vec![1e3; 3], ..x } } else { x })
        .collect();
    let cfg = test_cfg();
    // Room for the window and the flagged vectors it skips (an entity model's history holds
    // `fit_window` vectors; where that is the window itself, the shared window is shorter by
    // the flagged vectors still buffered once the history wraps).
    let mut all = History::new(3, 2 * cfg.window);
    for (t, x) in data[..300].iter().enumerate() {
        all.push(x.timestamp_ms, &x.values, spike(t));
    }
    let unflagged: Vec<FeatureVector> =
        data[..300].iter().enumerate().filter(|(t, _)| !spike(*t)).map(|(_, x)| x.clone()).collect();
    let mut own = fitted(&unflagged, &cfg);
    let mut shared = SeasonalEsdDetector::new(&cfg, 3, 6.0).sharing_history();
    shared.fit_in(&unflagged, &all).unwrap();
    for (t, x) in data.iter().enumerate().skip(300) {
        assert_eq!(own.score(x).unwrap().value.to_bits(), shared.score(x).unwrap().value.to_bits(), "t={t}");
        own.update(x);
        shared.update_in(x, &all);
        all.push(x.timestamp_ms, &x.values, spike(t));
    }
}
