//! Score calibration: raw detector scores → [0, 1] by their distribution on normal data.
//!
//! A plain empirical CDF saturates at the largest training score and makes every flagged
//! point "critical". Instead the calibrated score is a log tail probability: with `p` the
//! fraction of normal training scores at or above the raw score, `score = -log10(p) / decades`
//! clamped to [0, 1]. Beyond the 90th percentile the tail is extrapolated with an exponential
//! fitted to the excesses (peaks over threshold), so scores keep rising past the training
//! maximum. With the default 6 decades: 0.5 ↔ p = 1e-3, 0.7 ↔ 6e-5, 0.9 ↔ 4e-6.

/// Fewer raw scores than this and `fit` keeps the detector's parametric fallback.
pub const MIN_EMPIRICAL: usize = 100;
const TAIL_QUANTILE: f64 = 0.9;
/// Training scores kept as the body's knots, at evenly spaced ranks (issue 28: 512 bytes per
/// detector and entity, where keeping up to 2048 scores took 8 KiB with long fit windows).
const KNOTS: usize = 128;

/// How the tail beyond the 90th percentile is scaled.
#[derive(Debug, Clone, Copy)]
enum Tail {
    MeanExcess,
    MedianExcess,
}

/// Maps raw scores to calibrated scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrator {
    /// At most [`KNOTS`] training scores, sorted, at evenly spaced ranks ([`knot_rank`]) of
    /// the `n` scores fitted on; between two knots the rank is interpolated linearly, so with
    /// at most [`KNOTS`] scores every one is a knot and ranks are exact. Nothing else grows
    /// with the history: a table of the body's calibrated scores saved a log10 per score
    /// (~20 ns) and cost as many bytes again, per detector and entity (issue 28). f32:
    /// rounding keeps the order, so ranks move only where two training scores round together.
    knots: Vec<f32>,
    /// Finite training scores fitted on.
    n: usize,
    tail_u: f64,
    tail_p: f64,
    tail_scale: f64,
    decades: f64,
}

impl Calibrator {
    /// Fits on raw scores of normal data; `None` when fewer than [`MIN_EMPIRICAL`] are finite.
    pub fn fit(raw: &[f64], decades: f64) -> Option<Self> {
        Self::fit_tail(raw, decades, Tail::MeanExcess)
    }

    /// Like [`fit`](Self::fit) for scores that may hold a few anomalies (a service's recent
    /// scores): the tail's scale is the median excess over the 90th percentile divided by
    /// ln 2 (the exponential's median), which a minority of huge excesses does not inflate,
    /// where the mean excess would make the tail — and every later anomaly — look ordinary.
    pub fn fit_robust(raw: &[f64], decades: f64) -> Option<Self> {
        Self::fit_tail(raw, decades, Tail::MedianExcess)
    }

    fn fit_tail(raw: &[f64], decades: f64, tail: Tail) -> Option<Self> {
        let mut v: Vec<f64> = raw.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < MIN_EMPIRICAL {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let iu = ((n as f64 * TAIL_QUANTILE) as usize).min(n - 1);
        let tail_u = v[iu];
        let excess: Vec<f64> = v[iu..].iter().map(|x| x - tail_u).filter(|e| *e > 0.0).collect();
        let spread = (v[n - 1] - v[0]).abs().max(tail_u.abs()).max(1e-12);
        let mean_excess = match (excess.is_empty(), tail) {
            (true, _) => 0.0,
            (false, Tail::MeanExcess) => excess.iter().sum::<f64>() / excess.len() as f64,
            // `excess` is sorted (from the sorted `v`): its median is its middle.
            (false, Tail::MedianExcess) => {
                let m = excess.len();
                let median =
                    if m % 2 == 1 { excess[m / 2] } else { 0.5 * (excess[m / 2 - 1] + excess[m / 2]) };
                median / std::f64::consts::LN_2
            }
        };
        Some(Self {
            tail_p: (n - iu) as f64 / (n + 1) as f64,
            tail_u,
            tail_scale: mean_excess.max(spread * 1e-3),
            knots: (0..n.min(KNOTS)).map(|j| v[knot_rank(j, n)] as f32).collect(),
            n,
            decades,
        })
    }

    /// Probability that a normal raw score is at least `raw`.
    pub fn tail_probability(&self, raw: f64) -> f64 {
        if raw.is_nan() {
            return 1.0;
        }
        if raw > self.tail_u {
            return self.tail_p * (-(raw - self.tail_u) / self.tail_scale).exp();
        }
        body_probability(self.n, self.below(raw))
    }

    /// Training scores below `raw`: exact at the knots, linear between them.
    fn below(&self, raw: f64) -> f64 {
        let j = self.knots.partition_point(|x| f64::from(*x) < raw);
        if j == 0 {
            return 0.0;
        }
        if j == self.knots.len() {
            return self.n as f64;
        }
        // Knot `j - 1` (rank `ra`) is below `raw` and knot `j` (rank `rb`) is not: between
        // `ra + 1` and `rb` training scores are below it.
        let (ra, rb) = (knot_rank(j - 1, self.n) as f64, knot_rank(j, self.n) as f64);
        let (a, b) = (f64::from(self.knots[j - 1]), f64::from(self.knots[j]));
        let share = if b > a { ((raw - a) / (b - a)).clamp(0.0, 1.0) } else { 1.0 };
        ra + 1.0 + share * (rb - ra - 1.0)
    }

    /// Calibrated score in [0, 1]: `score_from_tail(tail_probability(raw))`.
    pub fn score(&self, raw: f64) -> f64 {
        score_from_tail(self.tail_probability(raw), self.decades)
    }
}

/// Rank in the `n` sorted training scores of knot `j` (of `min(n, KNOTS)`).
fn knot_rank(j: usize, n: usize) -> usize {
    if n <= KNOTS { j } else { (j * (n - 1) + (KNOTS - 1) / 2) / (KNOTS - 1) }
}

/// Empirical tail probability of a raw score with `below` of `n` training scores below it.
fn body_probability(n: usize, below: f64) -> f64 {
    (n as f64 - below + 1.0) / (n + 1) as f64
}

/// `-log10(p) / decades`, clamped to [0, 1].
pub fn score_from_tail(p: f64, decades: f64) -> f64 {
    if p.is_nan() {
        return 0.0;
    }
    // `+ 0.0` turns -0.0 (p = 1) into 0.0, which reads better on /metrics.
    (-p.max(1e-300).log10() / decades).clamp(0.0, 1.0) + 0.0
}

/// Complementary error function (Numerical Recipes `erfcc`, relative error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Two-sided Gaussian tail probability `P(|Z| >= z)`.
pub fn gaussian_two_sided(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((gaussian_two_sided(1.959_964) - 0.05).abs() < 1e-6);
        assert!((gaussian_two_sided(3.0) - 0.002_699_8).abs() < 1e-7);
    }

    #[test]
    fn calibrated_score_is_monotone_and_bounded() {
        let raw: Vec<f64> = (0..1000).map(|i| (i as f64 / 1000.0) * 3.0).collect();
        let c = Calibrator::fit(&raw, 6.0).unwrap();
        let mut prev = -1.0;
        for i in 0..200 {
            let s = c.score(i as f64 * 0.05);
            assert!((0.0..=1.0).contains(&s));
            assert!(s >= prev, "not monotone at {i}");
            prev = s;
        }
        // Half the training scores lie above 1.5: p ≈ 0.5.
        assert!((c.tail_probability(1.5) - 0.5).abs() < 0.01);
        // Far beyond the training maximum the score saturates.
        assert_eq!(c.score(100.0), 1.0);
        assert_eq!(c.score(f64::NAN), 0.0);
    }

    #[test]
    fn table_lookup_equals_the_direct_formula() {
        let raw: Vec<f64> = (0..700).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let c = Calibrator::fit(&raw, 6.0).unwrap();
        for i in -20..1200 {
            let r = i as f64 / 100.0;
            assert_eq!(c.score(r).to_bits(), score_from_tail(c.tail_probability(r), 6.0).to_bits(), "{r}");
        }
    }

    #[test]
    fn robust_tail_is_not_loosened_by_a_few_anomalies() {
        // 2000 normal scores (uniform on [0, 1)) plus 3 % huge ones, as in a window that
        // held an incident.
        let mut raw: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 2000) as f64 / 2000.0).collect();
        raw.extend(std::iter::repeat_n(50.0, 60));
        let mean = Calibrator::fit(&raw, 6.0).unwrap();
        let robust = Calibrator::fit_robust(&raw, 6.0).unwrap();
        // A clear outlier of the normal scores: the robust tail calls it rare (p < 1e-3), the
        // mean-excess tail, stretched by the anomalies, does not.
        assert!(robust.tail_probability(2.0) < 1e-3, "{}", robust.tail_probability(2.0));
        assert!(mean.tail_probability(2.0) > 0.05, "{}", mean.tail_probability(2.0));
        // The body is the same empirical distribution.
        assert_eq!(robust.score(0.5), mean.score(0.5));
    }

    #[test]
    fn knots_keep_the_body_within_a_rank_or_two_of_every_score() {
        // 5000 skewed scores (a long fit window): 128 knots instead of 5000 values, and the body
        // probability of any raw score stays within 0.1 % of its exact empirical value.
        let raw: Vec<f64> = (0..5000).map(|i| (((i * 7919) % 5000) as f64 / 5000.0).powi(3) * 10.0).collect();
        let c = Calibrator::fit(&raw, 6.0).unwrap();
        assert_eq!(c.knots.len(), KNOTS);
        let mut sorted = raw.clone();
        sorted.sort_by(f64::total_cmp);
        for i in 0..=900 {
            let r = i as f64 / 100.0;
            if r > c.tail_u {
                break;
            }
            let below = sorted.partition_point(|x| *x < r);
            let exact = body_probability(sorted.len(), below as f64);
            assert!(
                (c.tail_probability(r) - exact).abs() < 1e-3,
                "{r}: {} vs {exact}",
                c.tail_probability(r)
            );
        }
        // With at most KNOTS scores every one is a knot and ranks are exact.
        let few: Vec<f64> = (0..120).map(|i| ((i * 37) % 120) as f64).collect();
        let c = Calibrator::fit(&few, 6.0).unwrap();
        assert_eq!(c.tail_probability(10.0), body_probability(120, 10.0));
        assert_eq!(c.tail_probability(10.5), body_probability(120, 11.0));
    }

    #[test]
    fn too_few_scores_gives_no_calibrator() {
        assert!(Calibrator::fit(&[1.0; 10], 6.0).is_none());
    }

    #[test]
    fn constant_training_scores_do_not_divide_by_zero() {
        let c = Calibrator::fit(&[2.0; 500], 6.0).unwrap();
        assert!(c.score(2.0) < 0.01);
        assert!(c.score(3.0) > 0.99);
    }
}
