//! Rolling z-score: per-feature mean and standard deviation over the last `window` values.
//!
//! O(1) per value: a ring buffer with running sums (recomputed exactly each time the ring
//! wraps, so rounding never accumulates). NaN values are skipped. A value further than
//! `clip`·std from the mean is held back instead of entering the window, so one outlier
//! cannot inflate the spread and mask the ones after it; if outliers keep coming for half a
//! window, they are a new level and all enter at once (the detector adapts). The raw score
//! is the largest |z| over the features; contributions are each feature's share of Σz².

use crate::config::ZScoreConfig;

use super::calibrate::{Calibrator, gaussian_two_sided, score_from_tail};
use super::history::{MISSING, Q16};
use super::{DetectError, Detector, Expected, FeatureVector, Score, normalise};

/// Points a window needs before it scores.
const MIN_POINTS: usize = 5;
/// The spread a feature's std floor is taken from is at least this share of the median spread
/// of the entity's features over the fit history.
const TYPICAL_SD_SHARE: f64 = 0.1;

/// Median of the positive finite values (0 when there are none).
pub(super) fn median_positive(v: &[f64]) -> f64 {
    let mut p: Vec<f64> = v.iter().copied().filter(|x| x.is_finite() && *x > 0.0).collect();
    if p.is_empty() {
        return 0.0;
    }
    p.sort_by(f64::total_cmp);
    p[p.len() / 2]
}

#[derive(Debug, Clone)]
struct Rolling {
    /// The window as i16 codes of `quant` (issue 28: a quarter of the bytes of f64 values);
    /// the running sums are of the codes, integers summed exactly, so what leaves the window
    /// is exactly what entered it. They are recomputed whenever the codes are rescaled.
    ring: Vec<i16>,
    quant: Q16,
    head: usize,
    len: usize,
    n: usize,
    sum: f64,
    sumsq: f64,
    writes: usize,
    held: Vec<f64>,
    /// Smallest standard deviation used, from the feature's spread over the fit history.
    min_std: f64,
    /// [`mean_std`](Self::mean_std), kept current by [`refresh`](Self::refresh) whenever
    /// the window or `min_std` changes, so scoring does no sqrt per feature.
    stats: Option<(f64, f64)>,
}

impl Rolling {
    fn new(window: usize) -> Self {
        Rolling {
            ring: vec![MISSING; window],
            quant: Q16::UNSET,
            head: 0,
            len: 0,
            n: 0,
            sum: 0.0,
            sumsq: 0.0,
            writes: 0,
            held: Vec::new(),
            min_std: 0.0,
            stats: None,
        }
    }

    /// Sets the standard deviation floor (see `min_std`).
    fn set_min_std(&mut self, min_std: f64) {
        self.min_std = min_std;
        self.refresh();
    }

    fn push(&mut self, x: f64) {
        let cap = self.ring.len();
        let old = std::mem::replace(&mut self.ring[self.head], MISSING);
        if self.len == cap && old != MISSING {
            let old = f64::from(old);
            self.sum -= old;
            self.sumsq -= old * old;
            self.n -= 1;
        }
        let quant = self.quant;
        let code = self.quant.pack(x, &mut self.ring, 0, 1);
        self.ring[self.head] = code;
        self.head = (self.head + 1) % cap;
        self.len = (self.len + 1).min(cap);
        self.writes += 1;
        if self.writes.is_multiple_of(cap) {
            self.quant.narrow(&mut self.ring, 0, 1);
        }
        if self.quant != quant {
            self.resum();
        } else if code != MISSING {
            let c = f64::from(code);
            self.sum += c;
            self.sumsq += c * c;
            self.n += 1;
        }
        self.refresh();
    }

    /// The running sums from the codes held.
    fn resum(&mut self) {
        let codes = self.ring.iter().filter(|&&c| c != MISSING).map(|&c| f64::from(c));
        (self.n, self.sum, self.sumsq) = codes.fold((0, 0.0, 0.0), |(n, s, q), v| (n + 1, s + v, q + v * v));
    }

    /// Learns `x`, holding back outliers beyond `clip` standard deviations (see module docs).
    fn learn(&mut self, x: f64, clip: f64) {
        let outlier = x.is_finite() && self.mean_std().is_some_and(|(m, s)| (x - m).abs() > clip * s);
        if !outlier {
            self.held.clear();
            self.push(x);
            return;
        }
        self.held.push(x);
        if self.held.len() >= (self.ring.len() / 2).max(1) {
            for v in std::mem::take(&mut self.held) {
                self.push(v);
            }
        }
    }

    /// Mean and standard deviation of the window; `None` below [`MIN_POINTS`] values.
    fn mean_std(&self) -> Option<(f64, f64)> {
        self.stats
    }

    /// Recomputes the cached [`mean_std`](Self::mean_std) from the running sums.
    fn refresh(&mut self) {
        self.stats = self.compute_mean_std();
    }

    fn compute_mean_std(&self) -> Option<(f64, f64)> {
        if self.n < MIN_POINTS {
            return None;
        }
        let n = self.n as f64;
        let offset = self.sum / n;
        let step = self.quant.step();
        let var = ((self.sumsq - n * offset * offset) / (n - 1.0)).max(0.0) * step * step;
        let mean = self.quant.at(offset);
        // A feature that is flat for a window still has a scale: its long-run spread (from the
        // fit history) times `min_std_ratio`, or 0.1 % of its level.
        let floor = (1e-3 * mean.abs()).max(self.min_std) + 1e-9;
        Some((mean, var.sqrt().max(floor)))
    }
}

/// The rolling z-score detector for one entity.
#[derive(Debug, Clone)]
pub struct ZScoreDetector {
    cfg: ZScoreConfig,
    decades: f64,
    features: Vec<Rolling>,
    calibrator: Option<Calibrator>,
    fitted: bool,
}

impl ZScoreDetector {
    /// A detector for `n_features` features.
    pub fn new(cfg: &ZScoreConfig, n_features: usize, decades: f64) -> Self {
        Self {
            cfg: cfg.clone(),
            decades,
            features: vec![Rolling::new(cfg.window); n_features],
            calibrator: None,
            fitted: false,
        }
    }

    /// Raw score (largest |z|) of `x`, with each feature's contribution and expected band
    /// written into `contrib` and `expected` (cleared first; their capacity is reused).
    /// `None` when no feature has both a window to score against and a finite value.
    fn raw_into(
        &self,
        x: &FeatureVector,
        contrib: &mut Vec<f64>,
        expected: &mut Vec<Expected>,
    ) -> Option<f64> {
        let mut maxz: Option<f64> = None;
        contrib.clear();
        expected.clear();
        for (r, &v) in self.features.iter().zip(&x.values) {
            match r.mean_std() {
                Some((mean, std)) => {
                    let b = self.cfg.band * std;
                    expected.push(Expected { value: mean, lower: mean - b, upper: mean + b });
                    if v.is_finite() {
                        let z = (v - mean) / std;
                        maxz = Some(maxz.map_or(z.abs(), |m: f64| m.max(z.abs())));
                        contrib.push(z * z);
                    } else {
                        contrib.push(0.0);
                    }
                }
                None => {
                    expected.push(Expected { value: f64::NAN, lower: f64::NAN, upper: f64::NAN });
                    contrib.push(0.0);
                }
            }
        }
        normalise(contrib);
        maxz
    }

    fn calibrated(&self, raw: f64, n_features: usize) -> f64 {
        match &self.calibrator {
            Some(c) => c.score(raw),
            // Before enough history: Gaussian tail with a Bonferroni correction over features.
            None => score_from_tail((n_features as f64 * gaussian_two_sided(raw)).min(1.0), self.decades),
        }
    }
}

impl Detector for ZScoreDetector {
    fn name(&self) -> &'static str {
        "zscore"
    }

    fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        let nf = self.features.len();
        self.features = vec![Rolling::new(self.cfg.window); nf];
        let sds: Vec<f64> = (0..nf)
            .map(|f| {
                let col: Vec<f64> = history
                    .iter()
                    .filter_map(|x| x.values.get(f).copied())
                    .filter(|v| v.is_finite())
                    .collect();
                if col.len() < 2 {
                    return f64::NAN;
                }
                let m = col.iter().sum::<f64>() / col.len() as f64;
                (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (col.len() - 1) as f64).sqrt()
            })
            .collect();
        // A feature that did not move over the fit history (a rarely stepping one, or one
        // whose steps were flagged and left out of refits) would otherwise have no floor but
        // 0.1 % of its level, and its next ordinary step would score |z| ~ 10⁹.
        let typical = TYPICAL_SD_SHARE * median_positive(&sds);
        for (r, sd) in self.features.iter_mut().zip(&sds) {
            if sd.is_finite() {
                r.set_min_std(self.cfg.min_std_ratio * sd.max(typical));
            }
        }
        let mut raws = Vec::with_capacity(history.len());
        let (mut contrib, mut expected) = (Vec::with_capacity(nf), Vec::with_capacity(nf));
        // Scores from a half-empty window are wilder than any the service will see later;
        // calibrating on them would make every real anomaly look ordinary.
        let warm = self.cfg.window.min(history.len() / 2);
        for (i, x) in history.iter().enumerate() {
            if x.values.len() != nf {
                return Err(DetectError::Shape { expected: nf, found: x.values.len() });
            }
            if i >= warm
                && let Some(raw) = self.raw_into(x, &mut contrib, &mut expected)
            {
                raws.push(raw);
            }
            self.update(x);
        }
        self.calibrator = Calibrator::fit(&raws, self.decades);
        self.fitted = true;
        Ok(())
    }

    fn score(&self, x: &FeatureVector) -> Result<Score, DetectError> {
        let n = self.features.len();
        let mut out = Score {
            value: 0.0,
            raw: f64::NAN,
            contributions: Vec::with_capacity(n),
            expected: Vec::with_capacity(n),
        };
        self.score_into(x, &mut out)?;
        Ok(out)
    }

    /// Allocation-free once `out`'s vectors have grown to the feature count: the window
    /// statistics are cached per feature, so this is one subtraction and division per
    /// feature plus the calibration lookup. No window yet: value 0, raw NaN, no `expected`.
    fn score_into(&self, x: &FeatureVector, out: &mut Score) -> Result<(), DetectError> {
        if !self.fitted {
            return Err(DetectError::NotFitted("zscore"));
        }
        if x.values.len() != self.features.len() {
            return Err(DetectError::Shape { expected: self.features.len(), found: x.values.len() });
        }
        match self.raw_into(x, &mut out.contributions, &mut out.expected) {
            Some(raw) => {
                out.value = self.calibrated(raw, x.values.len());
                out.raw = raw;
            }
            None => {
                out.value = 0.0;
                out.raw = f64::NAN;
                out.expected.clear();
            }
        }
        Ok(())
    }

    fn update(&mut self, x: &FeatureVector) {
        for (r, &v) in self.features.iter_mut().zip(&x.values) {
            r.learn(v, self.cfg.clip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{gaussian_series, vector};

    fn fitted(history: &[FeatureVector]) -> ZScoreDetector {
        let mut d = ZScoreDetector::new(&ZScoreConfig::default(), history[0].values.len(), 6.0);
        d.fit(history).unwrap();
        d
    }

    #[test]
    fn rolling_stats_match_a_direct_computation() {
        let mut r = Rolling::new(4);
        for x in [1.0, 2.0, f64::NAN, 4.0, 8.0, 16.0, 3.0] {
            r.push(x);
        }
        // Window holds 4, 8, 16, 3; the sums are of codes.
        let vals = [4.0, 8.0, 16.0, 3.0];
        let m = vals.iter().sum::<f64>() / 4.0;
        let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 3.0;
        assert_eq!(r.n, 4);
        let offset = r.sum / 4.0;
        assert!((r.quant.at(offset) - m).abs() < 1e-12);
        let step = r.quant.step();
        assert!(((r.sumsq - 4.0 * offset * offset) / 3.0 * step * step - v).abs() < 1e-9);
    }

    #[test]
    fn flags_a_spike_and_names_its_feature() {
        let history = gaussian_series(400, 3, 7);
        let mut d = fitted(&history);
        let mut normal_high = 0;
        for x in gaussian_series(300, 3, 8) {
            if d.score(&x).unwrap().value >= 0.5 {
                normal_high += 1;
            }
            d.update(&x);
        }
        assert!(normal_high <= 3, "{normal_high} of 300 normal vectors scored >= 0.5");
        let spike = vector(0, &[0.0, 12.0, 0.0]);
        let s = d.score(&spike).unwrap();
        assert!(s.value > 0.9, "spike scored {}", s.value);
        assert!(s.contributions[1] > 0.9, "{:?}", s.contributions);
        assert!(s.expected[1].upper < 12.0);
    }

    #[test]
    fn level_shift_keeps_scoring_high() {
        let history = gaussian_series(400, 2, 1);
        let mut d = fitted(&history);
        let mut high = 0;
        for i in 0..30 {
            let x = vector(i, &[10.0, 0.0]);
            if d.score(&x).unwrap().value >= 0.5 {
                high += 1;
            }
            d.update(&x);
        }
        assert!(high >= 28, "only {high} of 30 shifted points flagged");
        // After half a window of the new level the detector has adapted to it.
        let x = vector(31, &[10.0, 0.0]);
        assert!(d.score(&x).unwrap().value < 0.5);
    }

    #[test]
    fn a_step_of_a_feature_flat_in_the_fit_history_stays_finite() {
        // Feature 2 never moved over the fit history (a rarely stepping counter).
        let history: Vec<FeatureVector> = gaussian_series(400, 2, 4)
            .into_iter()
            .map(|mut x| {
                x.values.push(0.0);
                x
            })
            .collect();
        let d = fitted(&history);
        // Its ordinary step of 0.05 scored |z| = 5·10⁷ with a level-only floor; now the floor
        // is a share of the other features' spread and the step stays finite.
        let small = d.score(&vector(0, &[0.0, 0.0, 0.05])).unwrap();
        assert!(small.raw < 20.0, "{}", small.raw);
        // A step as large as the other features' whole spread is still an anomaly.
        let big = d.score(&vector(0, &[0.0, 0.0, 2.0])).unwrap();
        assert!(big.value > 0.9, "{}", big.value);
    }

    #[test]
    fn nan_features_are_ignored_not_fatal() {
        let history = gaussian_series(200, 2, 3);
        let mut d = fitted(&history);
        let s = d.score(&vector(0, &[f64::NAN, 0.1])).unwrap();
        assert!(s.value.is_finite());
        assert_eq!(s.contributions[0], 0.0);
        d.update(&vector(0, &[f64::NAN, f64::NAN]));
        let all_nan = d.score(&vector(0, &[f64::NAN, f64::NAN])).unwrap();
        assert_eq!(all_nan.value, 0.0);
    }

    #[test]
    fn score_before_fit_and_wrong_shape_are_errors() {
        let d = ZScoreDetector::new(&ZScoreConfig::default(), 2, 6.0);
        assert_eq!(d.score(&vector(0, &[1.0, 2.0])), Err(DetectError::NotFitted("zscore")));
        let d = fitted(&gaussian_series(50, 2, 3));
        assert!(matches!(d.score(&vector(0, &[1.0])), Err(DetectError::Shape { .. })));
    }
}
