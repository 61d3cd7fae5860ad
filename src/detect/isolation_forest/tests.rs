use super::*;
use crate::rng::Rng;
use crate::testing::{gaussian_series, vector};

const NF: usize = 5;

fn fitted(history: &[FeatureVector], cfg: &IsolationForestConfig) -> IsolationForestDetector {
    let mut d = IsolationForestDetector::new(cfg, history[0].values.len(), 6.0);
    d.fit(history).unwrap();
    d
}

fn default_fitted(n: usize, seed: u64) -> IsolationForestDetector {
    fitted(&gaussian_series(n, NF, seed), &IsolationForestConfig::default())
}

/// A normal vector with feature `k` pushed `by` standard deviations out.
fn outlier(rng: &mut Rng, k: usize, by: f64) -> FeatureVector {
    let mut v: Vec<f64> = (0..NF).map(|_| rng.normal()).collect();
    v[k] = by;
    vector(0, &v)
}

fn rows(xs: &[FeatureVector]) -> Vec<&[f64]> {
    xs.iter().map(|x| x.values.as_slice()).collect()
}

#[test]
fn average_path_length_matches_scikit_learn() {
    assert_eq!(average_path_length(0.0), 0.0);
    assert_eq!(average_path_length(1.0), 0.0);
    assert_eq!(average_path_length(2.0), 1.0);
    // sklearn.ensemble._iforest._average_path_length([256]) = 10.244770920116851
    assert!((average_path_length(256.0) - 10.244_770_920_119_917).abs() < 1e-12);
}

/// A normal vector with `m` features (from `first` on, cyclically) 6–10 σ out, random signs.
fn far_in(rng: &mut Rng, first: usize, m: usize) -> FeatureVector {
    let mut v: Vec<f64> = (0..NF).map(|_| rng.normal()).collect();
    for j in 0..m {
        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        v[(first + j) % NF] = sign * (6.0 + rng.uniform() * 4.0);
    }
    vector(0, &v)
}

#[test]
fn flags_clear_outliers_and_few_normal_points() {
    let d = default_fitted(1000, 11);
    let fresh = gaussian_series(3000, NF, 12);
    let fp = fresh.iter().filter(|x| d.score(x).unwrap().value >= 0.5).count();
    assert!(fp * 100 <= 2 * fresh.len(), "{fp} of {} normal vectors scored >= 0.5", fresh.len());

    // "Clear" for an isolation forest: outside the cloud in most features. A point extreme
    // in one feature only lands in the same leaf as the most extreme training points (split
    // thresholds never lie beyond the training range), so it scores like a 1-in-100 normal
    // point; that case is the z-score's job (see `single_feature_outliers_rank_high`).
    let mut rng = Rng::new(13);
    let n = 200;
    let hits = (0..n).filter(|&i| d.score(&far_in(&mut rng, i, 4)).unwrap().value >= 0.5).count();
    assert!(hits * 100 >= 95 * n, "only {hits} of {n} outliers scored >= 0.5");
}

#[test]
fn single_feature_outliers_rank_high() {
    let d = default_fitted(1000, 14);
    let normal: Vec<f64> = gaussian_series(2000, NF, 15).iter().map(|x| d.score(x).unwrap().raw).collect();
    let mut rng = Rng::new(16);
    let n = 100;
    let above: Vec<f64> = (0..n)
        .map(|i| {
            let raw = d.score(&far_in(&mut rng, i, 1)).unwrap().raw;
            normal.iter().filter(|&&r| r >= raw).count() as f64 / normal.len() as f64
        })
        .collect();
    println!("single-feature outliers: fraction of normal scores above {above:?}");
    let mean = above.iter().sum::<f64>() / n as f64;
    assert!(mean < 0.2, "{mean}");
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let history = gaussian_series(600, NF, 21);
    let cfg = IsolationForestConfig::default();
    let (a, b) = (fitted(&history, &cfg), fitted(&history, &cfg));
    assert_eq!(a.forest(), b.forest());
    for x in gaussian_series(50, NF, 22) {
        assert_eq!(a.score(&x).unwrap(), b.score(&x).unwrap());
    }
    let c = fitted(&history, &IsolationForestConfig { seed: 2, ..cfg });
    assert_ne!(a.forest(), c.forest());
}

#[test]
fn trees_respect_the_depth_limit_and_sample_size() {
    let history = gaussian_series(1000, NF, 31);
    let params = ForestParams { trees: 20, sample_size: 256, seed: 3 };
    let f = Forest::train(&rows(&history), NF, &params).unwrap();
    assert_eq!((f.n_trees(), f.sample_size(), f.n_features()), (20, 256, NF));
    assert!(f.n_nodes() <= 20 * 511);
    // Depth <= ceil(log2 256) = 8, each leaf adding at most c(256): E[h] <= 8 + c(256).
    for x in gaussian_series(100, NF, 32) {
        let h = f.path_length(&x.values).unwrap();
        assert!(h > 0.0 && h <= 8.0 + average_path_length(256.0), "{h}");
    }
    // Fewer rows than the sample size: ψ is the row count.
    let small = Forest::train(&rows(&history[..40]), NF, &params).unwrap();
    assert_eq!(small.sample_size(), 40);
}

#[test]
fn single_batch_and_contribution_paths_agree() {
    let history = gaussian_series(800, NF, 41);
    // 13 trees: one full lockstep group of 8 and a remainder of 5.
    let params = ForestParams { trees: 13, sample_size: 256, seed: 4 };
    let f = Forest::train(&rows(&history), NF, &params).unwrap();
    let mut xs = gaussian_series(301, NF, 42);
    xs[7].values[2] = f64::NAN;
    xs[8].values = vec![f64::NAN; NF];
    xs[9].values[0] = f64::INFINITY;
    let flat: Vec<f64> = xs.iter().flat_map(|x| x.values.iter().copied()).collect();
    let mut batch = vec![0.0; xs.len()];
    f.score_batch(&flat, &mut batch).unwrap();
    let mut contrib = vec![0.0; NF];
    for (x, b) in xs.iter().zip(&batch) {
        let s = f.score(&x.values).unwrap();
        let si = f.score_into(&x.values, &mut contrib).unwrap();
        assert!((s - b).abs() < 1e-12 && (s - si).abs() < 1e-12, "{s} {b} {si}");
    }
    assert!(f.score_batch(&flat[1..], &mut batch).is_err());
    assert!(f.score_into(&xs[0].values, &mut [0.0; 2]).is_err());
}

#[test]
fn scores_are_bounded_and_nan_safe() {
    let mut history = gaussian_series(400, NF, 51);
    // Missing values in training, including all-NaN vectors that fit must skip.
    for (i, x) in history.iter_mut().enumerate() {
        if i % 7 == 0 {
            x.values[i % NF] = f64::NAN;
        }
        if i % 50 == 0 {
            x.values = vec![f64::NAN; NF];
        }
    }
    let d = fitted(&history, &IsolationForestConfig::default());
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300, 0.0, f64::MIN_POSITIVE];
    let mut rng = Rng::new(52);
    for _ in 0..2000 {
        let v: Vec<f64> = (0..NF)
            .map(|_| match rng.below(3) {
                0 => specials[rng.below(specials.len() as u64) as usize],
                1 => rng.normal() * 10f64.powi(rng.below(6) as i32),
                _ => rng.normal(),
            })
            .collect();
        let s = d.score(&vector(0, &v)).unwrap();
        assert!((0.0..=1.0).contains(&s.value), "{v:?} -> {}", s.value);
        assert!(s.raw.is_nan() || (s.raw > 0.0 && s.raw <= 1.0), "{v:?} -> raw {}", s.raw);
        let total: f64 = s.contributions.iter().sum();
        assert!(s.contributions.iter().all(|c| (0.0..=1.0).contains(c)));
        assert!(total == 0.0 || (total - 1.0).abs() < 1e-9, "{total}");
    }
    let all_nan = d.score(&vector(0, &[f64::NAN; NF])).unwrap();
    assert_eq!((all_nan.value, all_nan.contributions.iter().sum::<f64>()), (0.0, 0.0));
    // A missing value is scored like the training median, not like an extreme.
    let typical = d.score(&vector(0, &[0.0; NF])).unwrap().value;
    let missing = d.score(&vector(0, &[f64::NAN, 0.0, 0.0, 0.0, 0.0])).unwrap().value;
    assert!((typical - missing).abs() < 0.2, "{typical} vs {missing}");
}

#[test]
fn contributions_name_the_anomalous_feature() {
    let d = default_fitted(1000, 61);
    let mut rng = Rng::new(62);
    for k in 0..NF {
        for by in [-8.0, 7.0] {
            let s = d.score(&outlier(&mut rng, k, by)).unwrap();
            let top = (0..NF).max_by(|&a, &b| s.contributions[a].total_cmp(&s.contributions[b]));
            assert_eq!(top, Some(k), "feature {k} at {by}: {:?}", s.contributions);
            assert!(s.contributions[k] > 0.4, "{:?}", s.contributions);
        }
    }
}

#[test]
fn explicit_trees_reproduce_a_hand_computed_score() {
    // Tree 0: x0 <= 0.5 ? leaf(1 + c(2) = 2.0) : (x1 <= -1 ? leaf(2.0) : leaf(3.5)).
    // Nodes deliberately out of order, with an unreachable node at the end.
    let t0 = vec![
        TreeNode::Split { feature: 0, threshold: 0.5, left: 3, right: 1, missing_left: true },
        TreeNode::Split { feature: 1, threshold: -1.0, left: 2, right: 4, missing_left: false },
        TreeNode::Leaf { path_length: 2.0 },
        TreeNode::Leaf { path_length: 2.0 },
        TreeNode::Leaf { path_length: 3.5 },
        TreeNode::Leaf { path_length: 99.0 },
    ];
    // Tree 1: a single split on x1.
    let t1 = vec![
        TreeNode::Split { feature: 1, threshold: 0.0, left: 1, right: 2, missing_left: false },
        TreeNode::Leaf { path_length: 1.0 },
        TreeNode::Leaf { path_length: 4.0 },
    ];
    let f = Forest::from_trees(2, 4, &[t0, t1]).unwrap();
    assert_eq!((f.n_trees(), f.n_nodes(), f.sample_size()), (2, 8, 4));
    // c(4) = 2 (ln 3 + γ) - 2·3/4.
    let c4 = 2.0 * (3f64.ln() + 0.577_215_664_901_532_9) - 1.5;
    let expect = |h0: f64, h1: f64| 2f64.powf(-(h0 + h1) / 2.0 / c4);
    let cases = [
        ([0.5, 0.0], 2.0, 1.0),      // ties go left
        ([0.6, -1.0], 2.0, 1.0),     // right, then left
        ([0.6, 0.1], 3.5, 4.0),      // right, right
        ([f64::NAN, 5.0], 2.0, 4.0), // NaN follows missing_left = true
        ([1.0, f64::NAN], 3.5, 4.0), // NaN follows missing_left = false
    ];
    let mut contrib = [0.0; 2];
    for (x, h0, h1) in cases {
        let s = f.score(&x).unwrap();
        assert!((s - expect(h0, h1)).abs() < 1e-15, "{x:?}: {s} vs {}", expect(h0, h1));
        assert_eq!(f.path_length(&x).unwrap(), (h0 + h1) / 2.0);
        assert!((f.score_into(&x, &mut contrib).unwrap() - s).abs() < 1e-15);
    }
    // Path [0.6, 0.1]: tree 0 splits x0 then x1 (leaf split weighs double), tree 1 splits x1.
    // Credit weights use a fast 2^-h (0.03 %), hence the looser tolerance.
    let (w0, w1) = (2f64.powf(-3.5), 2f64.powf(-4.0));
    let c0 = 0.5 * w0;
    let c1 = w0 + w1;
    f.score_into(&[0.6, 0.1], &mut contrib).unwrap();
    assert!((contrib[0] - c0 / (c0 + c1)).abs() < 1e-3, "{contrib:?}");
}

#[test]
fn malformed_explicit_trees_are_rejected() {
    let leaf = TreeNode::Leaf { path_length: 1.0 };
    let split =
        |feature, left, right| TreeNode::Split { feature, threshold: 0.0, left, right, missing_left: false };
    let err = |trees: &[Vec<TreeNode>]| Forest::from_trees(2, 8, trees).unwrap_err().to_string();
    assert_eq!(err(&[]), "a forest needs at least 1 tree, got 0");
    assert_eq!(err(&[vec![]]), "tree 0, node 0: tree has no nodes");
    assert_eq!(
        err(&[vec![leaf], vec![split(0, 1, 5), leaf]]),
        "tree 1, node 0: child index 5 out of range (2 nodes)"
    );
    assert_eq!(err(&[vec![split(2, 1, 1), leaf]]), "tree 0, node 0: feature 2 out of range (2 features)");
    assert_eq!(err(&[vec![split(0, 1, 1), leaf]]), "tree 0, node 1: node reached twice (not a tree)");
    assert_eq!(err(&[vec![split(0, 0, 1), leaf]]), "tree 0, node 0: node reached twice (not a tree)");
    assert_eq!(
        err(&[vec![TreeNode::Leaf { path_length: f64::NAN }]]),
        "tree 0, node 0: leaf path length must be finite and >= 0, got NaN"
    );
    assert!(Forest::from_trees(2, 1, &[vec![leaf]]).is_err());
    assert!(Forest::from_trees(0, 8, &[vec![leaf]]).is_err());
}

#[test]
fn errors_before_fit_on_wrong_shape_and_on_short_history() {
    let mut d = IsolationForestDetector::new(&IsolationForestConfig::default(), NF, 6.0);
    assert_eq!(d.score(&vector(0, &[0.0; NF])), Err(DetectError::NotFitted("iforest")));
    let mut history = gaussian_series(15, NF, 71);
    history.extend((0..10).map(|i| vector(i, &[f64::NAN; NF])));
    assert_eq!(
        d.fit(&history),
        Err(DetectError::NotEnoughData { detector: "iforest", needed: 16, found: 15 })
    );
    assert!(matches!(d.fit(&gaussian_series(20, 3, 72)), Err(DetectError::Shape { .. })));
    let d = default_fitted(100, 73);
    assert!(matches!(d.score(&vector(0, &[0.0; 3])), Err(DetectError::Shape { .. })));
}

#[test]
fn short_history_uses_the_fixed_mapping() {
    // 50 vectors: too few to calibrate empirically.
    let d = default_fitted(50, 81);
    assert!(d.calibrator.is_none());
    assert_eq!(d.calibrated(0.5), 0.0);
    assert_eq!(d.calibrated(0.75), 0.5);
    assert_eq!(d.calibrated(1.0), 1.0);
    let normal = d.score(&vector(0, &[0.0; NF])).unwrap();
    let far = d.score(&vector(0, &[30.0, -30.0, 30.0, -30.0, 30.0])).unwrap();
    assert!(normal.value < 0.2 && far.value > 0.25, "{normal:?} {far:?}");
}

/// Rows of an ASD CSV (`timestamp,f0..f18,label`): features and labels.
fn read_asd(name: &str) -> (Vec<FeatureVector>, Vec<bool>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/asd/omi-1/").to_string() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().skip(1).filter(|l| !l.is_empty()).enumerate() {
        let cols: Vec<&str> = line.split(',').collect();
        let values = cols[1..cols.len() - 1].iter().map(|c| c.parse().unwrap_or(f64::NAN)).collect();
        xs.push(FeatureVector { timestamp_ms: i as i64, values });
        labels.push(cols[cols.len() - 1].trim() == "1");
    }
    (xs, labels)
}

/// Area under the ROC curve: probability that a positive outscores a negative (ties: half).
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann–Whitney U with average ranks over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * avg;
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[test]
fn asd_omi_1_anomalies_outscore_normal_rows() {
    let (train, _) = read_asd("train.csv");
    let (test, labels) = read_asd("test.csv");
    let d = fitted(&train, &IsolationForestConfig::default());
    let scores: Vec<f64> = test.iter().map(|x| d.score(x).unwrap().value).collect();
    let raws: Vec<f64> = test.iter().map(|x| d.score(x).unwrap().raw).collect();
    let mean = |want: bool| {
        let v: Vec<f64> = scores.iter().zip(&labels).filter(|(_, l)| **l == want).map(|(s, _)| *s).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (auc_value, auc_raw) = (auc(&scores, &labels), auc(&raws, &labels));
    println!(
        "asd omi-1: {} train, {} test ({} anomalous); mean calibrated score label 1 = {:.3}, \
         label 0 = {:.3}; AUC-ROC calibrated = {auc_value:.4}, raw = {auc_raw:.4}",
        train.len(),
        test.len(),
        labels.iter().filter(|l| **l).count(),
        mean(true),
        mean(false),
    );
    // Most omi-1 anomalies are level drops that stay inside the training range, which a
    // point-wise forest only partly sees: scikit-learn's IsolationForest (100 trees, 256
    // samples) reaches 0.57 / 0.61 / 0.71 for random_state 0 / 1 / 2, this one 0.58-0.67
    // for seeds 1-6. Assert a margin over chance rather than a seed-lucky 0.7.
    assert!(mean(true) > mean(false), "{} vs {}", mean(true), mean(false));
    assert!(auc_raw > 0.55, "AUC-ROC {auc_raw}");
}

/// A random tree of at most `depth` levels over `nf` features, as [`Forest::from_trees`]
/// takes it (root at 0), with leaf path lengths depth + c(random leaf size).
fn random_tree(rng: &mut Rng, nf: usize, depth: usize) -> Vec<TreeNode> {
    fn grow(rng: &mut Rng, nf: usize, level: usize, depth: usize, nodes: &mut Vec<TreeNode>) -> usize {
        let at = nodes.len();
        nodes.push(TreeNode::Leaf { path_length: 0.0 });
        if level == depth || (level > 0 && rng.below(4) == 0) {
            let size = 1.0 + rng.below(20) as f64;
            nodes[at] = TreeNode::Leaf { path_length: level as f64 + average_path_length(size) };
            return at;
        }
        let (feature, threshold, missing_left) =
            (rng.below(nf as u64) as usize, rng.normal(), rng.below(2) == 0);
        // Right child first: the layout must not rely on pre-order input.
        let right = grow(rng, nf, level + 1, depth, nodes);
        let left = grow(rng, nf, level + 1, depth, nodes);
        nodes[at] = TreeNode::Split { feature, threshold, left, right, missing_left };
        at
    }
    let mut nodes = Vec::new();
    grow(rng, nf, 0, depth, &mut nodes);
    nodes
}

/// The textbook score: walk each tree node by node, average, normalise.
fn straightforward_score(trees: &[Vec<TreeNode>], sample_size: usize, x: &[f64]) -> f64 {
    let total: f64 = trees
        .iter()
        .map(|t| {
            let mut i = 0;
            loop {
                match t[i] {
                    TreeNode::Leaf { path_length } => return path_length,
                    TreeNode::Split { feature, threshold, left, right, missing_left } => {
                        let v = x[feature];
                        let go_left = if v.is_nan() { missing_left } else { v <= threshold };
                        i = if go_left { left } else { right };
                    }
                }
            }
        })
        .sum();
    2f64.powf(-total / trees.len() as f64 / average_path_length(sample_size as f64))
}

#[test]
fn every_scoring_path_matches_the_straightforward_walk() {
    let mut rng = Rng::new(91);
    // 7 features take the short walk over a stack copy, 20 the general one; 13 trees leave
    // a partial lockstep group, depth 12 exceeds the usual 8, 37 rows a partial batch group.
    for (nf, trees, depth) in [(7, 13, 8), (7, 3, 12), (15, 9, 6), (20, 13, 8)] {
        let list: Vec<Vec<TreeNode>> = (0..trees).map(|_| random_tree(&mut rng, nf, depth)).collect();
        let f = Forest::from_trees(nf, 256, &list).unwrap();
        let xs: Vec<Vec<f64>> = (0..37)
            .map(|i| {
                (0..nf)
                    .map(|_| match rng.below(10) {
                        0 if i % 3 == 0 => f64::NAN,
                        1 => 4.0 * rng.normal(),
                        _ => rng.normal(),
                    })
                    .collect()
            })
            .collect();
        let flat: Vec<f64> = xs.iter().flatten().copied().collect();
        let mut batch = vec![0.0; xs.len()];
        f.score_batch(&flat, &mut batch).unwrap();
        let mut contrib = vec![0.0; nf];
        for (x, b) in xs.iter().zip(&batch) {
            let want = straightforward_score(&list, 256, x);
            let got = [f.score(x).unwrap(), f.score_into(x, &mut contrib).unwrap(), *b];
            assert!(got.iter().all(|s| (s - want).abs() < 1e-12), "{nf} features: {got:?} vs {want}");
        }
    }
}

/// A shared forest (`iforest.model`) scores from the first fit even when that fit is too short
/// to calibrate on (the default `min_fit_points` 30 < MIN_EMPIRICAL): with the fixed mapping,
/// as a forest of its own does, instead of NotFitted until an hourly refit.
#[test]
fn a_shared_forest_scores_after_a_first_fit_too_short_to_calibrate() {
    let train = gaussian_series(2000, NF, 81);
    let rows: Vec<&[f64]> = train.iter().map(|x| x.values.as_slice()).collect();
    let forest = Forest::train(&rows, NF, &ForestParams { trees: 50, sample_size: 128, seed: 3 }).unwrap();
    let shared = std::sync::Arc::new(PretrainedForest { forest, mean: vec![0.0; NF], std: vec![1.0; NF] });
    let mut d = IsolationForestDetector::pretrained(shared, 6.0);
    assert_eq!(d.score(&vector(0, &[0.0; NF])), Err(DetectError::NotFitted("iforest")));
    d.fit(&gaussian_series(30, NF, 82)).unwrap();
    let ordinary = d.score(&vector(0, &[0.1; NF])).unwrap().value;
    let far = d.score(&vector(0, &[8.0; NF])).unwrap().value;
    assert!(far > 0.3 && far > ordinary + 0.2, "far {far}, ordinary {ordinary}");
}
