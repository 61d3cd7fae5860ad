//! Seasonal hybrid ESD (S-H-ESD; Hochenbaum, Vallis & Kejariwal 2017, Twitter's
//! `AnomalyDetection`): a robust seasonal baseline per feature plus a generalized ESD test on
//! the residuals, with median/MAD in place of mean/std (the "hybrid" variant).
//!
//! Per feature the detector keeps a ring of the last `window` values — or, inside an entity
//! model, reads the same values from the model's buffered history
//! ([`SeasonalEsdDetector::sharing_history`]: the unflagged vectors the last fit took, then every
//! vector since). The decomposition is
//! the piecewise-median one: the seasonal baseline of a phase is the median of the window's
//! values at that phase (= seasonal component + level, the level being the window median),
//! and a residual is value − baseline. The period is configured or, with `period: 0`, found
//! at `fit` per feature from the autocorrelation of the history (see [`detect_period`]); it
//! stays fixed until the next `fit`.
//!
//! Design choices:
//! - Incremental: `update` only writes the ring (O(1) per feature). Every `recompute_every`
//!   updates (and in `fit`) the per-phase medians, the residual median/MAD and the ESD
//!   verdict on the window are rebuilt (O(window · max_anoms · window) per feature, amortised
//!   over `recompute_every` vectors). ESD critical values depend only on the number of
//!   finite points and `alpha`, so they are cached across features and recomputes.
//! - Residuals of the window are leave-one-out: each point is compared with the median of
//!   its phase group *without itself*. With only a few cycles per window an in-sample median
//!   is pulled towards the point it explains, which would shrink the residual spread and make
//!   both the MAD and the calibration too lenient for new (out-of-sample) points.
//! - Raw score = max over features of the robust residual |r − median(r)| / σ, σ = 1.4826·MAD
//!   (1.2533 · mean absolute deviation when more than half the residuals are equal). The ESD
//!   critical value λ for the current window (the value the next outlier would have to beat)
//!   decides whether a feature is an ESD outlier ([`SeasonalEsdDetector::outliers`]) and is the
//!   half-width of the `expected` band, so Grafana draws the seasonal baseline ± λσ. The
//!   calibrated score is the [`Calibrator`] tail of the raw score on the fit window's
//!   leave-one-out residuals (Gaussian tail with a Bonferroni correction when too few).
//! - Values are stored unclipped: medians and MAD tolerate up to half the window being
//!   outliers, and clipping would make a level shift permanent.

pub use crate::config::SeasonalEsdConfig;

use super::calibrate::{Calibrator, gaussian_two_sided, score_from_tail};
use super::history::F32Base;
use super::stats::{mad_sorted, median, median_sorted, t_upper_quantile};
use super::zscore::median_positive;
use super::{DetectError, Detector, Expected, FeatureVector, History, Score, normalise};

const NAME: &str = "sesd";
/// Finite values a feature's window needs before it scores.
const MIN_POINTS: usize = 8;

use crate::config::sesd::MIN_FIT;
/// Smallest autocorrelation that counts as seasonality.
const MIN_ACF: f64 = 0.3;
/// A shorter lag whose autocorrelation is at least this share of the best one wins (so a
/// multiple of the true period is not picked because noise favoured it).
const HARMONIC_SHARE: f64 = 0.9;
/// MAD → standard deviation for Gaussian data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Mean absolute deviation → standard deviation for Gaussian data.
const MEAN_AD_TO_SIGMA: f64 = 1.2533;
/// Critical-value tables kept (one per distinct window count).
const CRIT_CACHE: usize = 4;
/// Smallest residual σ of a feature, as a share of the median σ of the entity's features.
const TYPICAL_SIGMA_SHARE: f64 = 0.1;

/// One feature's window and its last decomposition.
#[derive(Debug, Clone)]
struct Feature {
    /// Value of point `t` sits at `t % window`. Grows to `window` as points arrive instead of
    /// being allocated whole: a fit fills it from the history it is given, which may be
    /// shorter than `window` (an entity model caps `window` at `fit_window` for that reason,
    /// issue 28). Values are f32 offsets from `base`.
    ring: Vec<f32>,
    base: F32Base,
    /// Configured or detected period (0 = none).
    period: usize,
    /// Period the last decomposition used (1 when the window held < 2 cycles).
    used_period: usize,
    /// Seasonal + level per phase `t % used_period`.
    baseline: Vec<f64>,
    /// Median of the window's residuals.
    center: f64,
    /// Robust standard deviation of the residuals.
    sigma: f64,
    /// ESD critical value for the next outlier.
    lambda: f64,
    /// Outliers the ESD test found in the window.
    anomalies: usize,
    ready: bool,
}

impl Feature {
    fn new(period: usize) -> Self {
        Feature {
            ring: Vec::new(),
            base: F32Base::UNSET,
            period,
            used_period: 1,
            baseline: Vec::new(),
            center: 0.0,
            sigma: f64::NAN,
            lambda: f64::NAN,
            anomalies: 0,
            ready: false,
        }
    }

    /// Robust residual of `v` at point `t`, with the baseline; `None` before the first
    /// decomposition.
    fn residual(&self, t: u64, v: f64) -> Option<(f64, f64)> {
        if !self.ready {
            return None;
        }
        let base = self.baseline[(t % self.used_period as u64) as usize] + self.center;
        Some(((v - base) / self.sigma, base))
    }
}

/// The seasonal hybrid ESD detector for one entity.
#[derive(Debug, Clone)]
pub struct SeasonalEsdDetector {
    cfg: SeasonalEsdConfig,
    decades: f64,
    features: Vec<Feature>,
    /// Index of the next point (points since the start of the fit window).
    t: u64,
    /// Updates since the last decomposition.
    since: usize,
    crit_cache: Vec<(usize, Vec<f64>)>,
    calibrator: Option<Calibrator>,
    fitted: bool,
    /// The window is the entity model's buffered history ([`Self::sharing_history`]): the
    /// features keep no ring.
    shared: bool,
    /// With a shared window, `t` at the last fit: the vectors the vote had flagged before it
    /// stay out of the window (a fit leaves them out), every one after it takes part (a
    /// ring's updates take them all).
    fit_t: u64,
}

impl SeasonalEsdDetector {
    /// A detector for `n_features` features; `decades` is the calibration range (see
    /// [`super::calibrate`]).
    pub fn new(cfg: &SeasonalEsdConfig, n_features: usize, decades: f64) -> Self {
        Self {
            cfg: cfg.clone(),
            decades,
            features: vec![Feature::new(cfg.period); n_features],
            t: 0,
            since: 0,
            crit_cache: Vec::new(),
            calibrator: None,
            fitted: false,
            shared: false,
            fit_t: 0,
        }
    }

    /// A detector inside an entity model, whose window is read from the model's buffered
    /// history instead of a ring of its own: the same values were kept twice (issue 28: 28
    /// bytes per point at 7 features, 10 KB per entity at the defaults). The window holds what
    /// a ring would: the unflagged vectors the fit took, then every vector since (when the
    /// history holds no more than `window` vectors, as many fewer as flagged vectors the fit
    /// skipped are still buffered). Fits and updates then come through [`Detector::fit_in`]
    /// and [`Detector::update_in`].
    pub fn sharing_history(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Period per feature in points (0 = no seasonality), as configured or detected by `fit`.
    pub fn periods(&self) -> Vec<usize> {
        self.features.iter().map(|f| f.period).collect()
    }

    /// Per feature: is `x`'s value an ESD outlier of the current window (robust residual
    /// beyond the critical value λ)? NaN values and features without a baseline are not.
    pub fn outliers(&self, x: &FeatureVector) -> Result<Vec<bool>, DetectError> {
        self.check(x)?;
        Ok(self
            .features
            .iter()
            .zip(&x.values)
            .map(|(f, &v)| f.residual(self.t, v).is_some_and(|(z, _)| z.abs() > f.lambda))
            .collect())
    }

    fn check(&self, x: &FeatureVector) -> Result<(), DetectError> {
        if !self.fitted {
            return Err(DetectError::NotFitted(NAME));
        }
        if x.values.len() != self.features.len() {
            return Err(DetectError::Shape { expected: self.features.len(), found: x.values.len() });
        }
        Ok(())
    }

    /// Points per feature the ring holds once full.
    fn window(&self) -> usize {
        self.cfg.window.max(MIN_FIT)
    }

    fn window_len(&self) -> usize {
        (self.t as usize).min(self.window())
    }

    /// ESD critical values λ_1..λ_k for `n` finite points (cached).
    fn critical(&mut self, n: usize) -> Vec<f64> {
        if let Some((_, c)) = self.crit_cache.iter().find(|(m, _)| *m == n) {
            return c.clone();
        }
        let k = ((self.cfg.max_anoms * n as f64) as usize).clamp(1, n.saturating_sub(2).max(1));
        let c = critical_values(n, k, self.cfg.alpha);
        if self.crit_cache.len() >= CRIT_CACHE {
            self.crit_cache.remove(0);
        }
        self.crit_cache.push((n, c.clone()));
        c
    }

    /// Rebuilds every feature's decomposition; returns each feature's leave-one-out residuals
    /// over the window (chronological, NaN where the value is missing).
    fn recompute(&mut self) -> Vec<Vec<f64>> {
        let (len, t, w) = (self.window_len() as u64, self.t, self.window() as u64);
        let columns = self
            .features
            .iter()
            .map(|f| (t - len..t).map(|tt| f.base.unpack(f.ring[(tt % w) as usize])).collect())
            .collect();
        self.recompute_on(columns)
    }

    /// [`recompute`](Self::recompute) on each feature's window values (`window_len` of them,
    /// chronological).
    fn recompute_on(&mut self, columns: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
        let t = self.t;
        let mut all = Vec::with_capacity(self.features.len());
        for (i, vals) in columns.into_iter().enumerate() {
            let len = vals.len();
            let start = t.saturating_sub(len as u64);
            let finite = vals.iter().filter(|v| v.is_finite()).count();
            if finite < MIN_POINTS {
                self.features[i].ready = false;
                all.push(vec![f64::NAN; len]);
                continue;
            }
            let period = self.features[i].period;
            let used = if period >= 2 && len >= 2 * period { period } else { 1 };
            let (level, baseline, resid) = decompose(&vals, start, used);
            let mut r: Vec<f64> = resid.iter().copied().filter(|v| v.is_finite()).collect();
            r.sort_unstable_by(f64::total_cmp);
            // A constant feature still has a scale: changes of 0.1 % of its level count.
            let (center, sigma) = robust_scale(&r, 1e-3 * level.abs() + 1e-9);
            let crit = self.critical(r.len());
            let anomalies = esd_count(&r, &crit);
            let f = &mut self.features[i];
            f.used_period = used;
            f.baseline = baseline;
            f.center = center;
            f.sigma = sigma;
            f.anomalies = anomalies;
            f.lambda = crit[anomalies.min(crit.len() - 1)];
            f.ready = true;
            all.push(resid);
        }
        // A feature that is flat over the window (a rarely stepping one) has a residual
        // spread of ~0 and would score its next ordinary step |z| ~ 10⁹: floor every σ at a
        // share of the entity's typical σ.
        let sigmas: Vec<f64> = self.features.iter().filter(|f| f.ready).map(|f| f.sigma).collect();
        let floor = TYPICAL_SIGMA_SHARE * median_positive(&sigmas);
        for f in self.features.iter_mut().filter(|f| f.ready) {
            f.sigma = f.sigma.max(floor);
        }
        self.since = 0;
        all
    }

    /// Fits on each feature's window values (chronological, all of one length): detects the
    /// periods, fills the rings (unless shared), decomposes and calibrates on the window's
    /// leave-one-out residuals.
    fn fit_columns(&mut self, columns: Vec<Vec<f64>>) {
        let len = columns.first().map_or(0, Vec::len);
        for (f, col) in self.features.iter_mut().zip(&columns) {
            let period = match self.cfg.period {
                0 => detect_period(col, len / 2).unwrap_or(0),
                p => p,
            };
            *f = Feature::new(period);
            if !self.shared {
                let mut base = F32Base::UNSET;
                f.ring = col.iter().map(|v| base.pack(*v)).collect();
                f.base = base;
            }
        }
        self.t = len as u64;
        let resid = if self.shared { self.recompute_on(columns) } else { self.recompute() };
        let raws: Vec<f64> = (0..len)
            .filter_map(|j| {
                self.features
                    .iter()
                    .zip(&resid)
                    .filter(|(f, _)| f.ready)
                    .map(|(f, r)| ((r[j] - f.center) / f.sigma).abs())
                    .filter(|z| z.is_finite())
                    .reduce(f64::max)
            })
            .collect();
        self.calibrator = Calibrator::fit(&raws, self.decades);
        self.fitted = true;
    }

    fn raw(&self, x: &FeatureVector) -> Option<(f64, Vec<f64>, Vec<Expected>)> {
        let mut maxz: Option<f64> = None;
        let mut contrib = Vec::with_capacity(x.values.len());
        let mut expected = Vec::with_capacity(x.values.len());
        for (f, &v) in self.features.iter().zip(&x.values) {
            match f.residual(self.t, v) {
                Some((z, base)) => {
                    let b = f.lambda * f.sigma;
                    expected.push(Expected { value: base, lower: base - b, upper: base + b });
                    if z.is_finite() {
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
        normalise(&mut contrib);
        maxz.map(|z| (z, contrib, expected))
    }

    fn calibrated(&self, raw: f64) -> f64 {
        match &self.calibrator {
            Some(c) => c.score(raw),
            None => {
                let n = self.features.len() as f64;
                score_from_tail((n * gaussian_two_sided(raw)).min(1.0), self.decades)
            }
        }
    }
}

impl Detector for SeasonalEsdDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        let nf = self.features.len();
        if let Some(x) = history.iter().find(|x| x.values.len() != nf) {
            return Err(DetectError::Shape { expected: nf, found: x.values.len() });
        }
        enough_to_fit(history)?;
        let recent = &history[history.len().saturating_sub(self.window())..];
        let columns = (0..nf).map(|i| recent.iter().map(|x| x.values[i]).collect()).collect();
        self.fit_columns(columns);
        Ok(())
    }

    fn fit_in(&mut self, history: &[FeatureVector], all: &History) -> Result<(), DetectError> {
        if !self.shared {
            return self.fit(history);
        }
        let nf = self.features.len();
        if all.width() != nf {
            return Err(DetectError::Shape { expected: nf, found: all.width() });
        }
        enough_to_fit(history)?;
        // The newest `window` vectors the vote did not flag: what `fit` takes from `history`.
        let columns = all.columns(self.window(), |_, flagged| !flagged);
        self.fit_columns(columns);
        self.fit_t = self.t;
        Ok(())
    }

    fn score(&self, x: &FeatureVector) -> Result<Score, DetectError> {
        self.check(x)?;
        Ok(match self.raw(x) {
            Some((raw, contributions, expected)) => {
                Score { value: self.calibrated(raw), raw, contributions, expected }
            }
            None => Score {
                value: 0.0,
                raw: f64::NAN,
                contributions: vec![0.0; x.values.len()],
                expected: Vec::new(),
            },
        })
    }

    fn update(&mut self, x: &FeatureVector) {
        if !self.fitted || x.values.len() != self.features.len() {
            return;
        }
        let (t, window) = (self.t, self.window());
        for (f, &v) in self.features.iter_mut().zip(&x.values) {
            if f.ring.len() < window {
                // Points arrive in order from the fit on, so the next one is the ring's end.
                debug_assert_eq!(f.ring.len() as u64, t);
                if f.ring.len() == f.ring.capacity() {
                    f.ring.reserve_exact(f.ring.len().clamp(1, window - f.ring.len()));
                }
                let p = f.base.pack(v);
                f.ring.push(p);
            } else {
                f.ring[(t % window as u64) as usize] = f.base.pack(v);
            }
        }
        self.t += 1;
        self.since += 1;
        if self.since >= self.cfg.recompute_every.max(1) {
            self.recompute();
        }
    }

    fn update_in(&mut self, x: &FeatureVector, all: &History) {
        if !self.shared {
            return self.update(x);
        }
        if !self.fitted || x.values.len() != self.features.len() {
            return;
        }
        self.t += 1;
        self.since += 1;
        if self.since >= self.cfg.recompute_every.max(1) {
            // What a ring would hold: the unflagged vectors the fit took, then every vector
            // since (the newest `t - fit_t - 1` of `all`; `x` is not in it yet).
            let since_fit = (self.t - self.fit_t - 1) as usize;
            let mut columns = all.columns(self.window_len() - 1, |age, flagged| age < since_fit || !flagged);
            for (col, v) in columns.iter_mut().zip(&x.values) {
                col.push(*v);
            }
            self.recompute_on(columns);
        }
    }
}

/// `NotEnoughData` when `history` is shorter than [`MIN_FIT`].
fn enough_to_fit(history: &[FeatureVector]) -> Result<(), DetectError> {
    if history.len() < MIN_FIT {
        return Err(DetectError::NotEnoughData { detector: NAME, needed: MIN_FIT, found: history.len() });
    }
    Ok(())
}

/// Piecewise-median decomposition of `vals` (point `start + j` at index `j`) with `period`
/// phases: the level (window median), the per-phase medians (seasonal + level) and the
/// leave-one-out residuals.
fn decompose(vals: &[f64], start: u64, period: usize) -> (f64, Vec<f64>, Vec<f64>) {
    // One sort by (phase, value) instead of a vector per phase: a single allocation.
    let mut pts: Vec<(usize, f64, usize)> = vals
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(j, &v)| (((start + j as u64) % period as u64) as usize, v, j))
        .collect();
    let mut all: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let level = median(&mut all);
    pts.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut baseline = vec![level; period];
    let mut resid = vec![f64::NAN; vals.len()];
    let mut s = Vec::new();
    for g in pts.chunk_by(|a, b| a.0 == b.0) {
        s.clear();
        s.extend(g.iter().map(|p| p.1));
        baseline[g[0].0] = median_sorted(&s);
        for (k, &(_, v, j)) in g.iter().enumerate() {
            // Equal values give equal leave-one-out medians, so the unstable sort is safe.
            let reference = if s.len() > 1 { loo_median(&s, k) } else { level };
            resid[j] = v - reference;
        }
    }
    (level, baseline, resid)
}

/// Median of sorted `s` without its element `k` (`s.len() >= 2`).
fn loo_median(s: &[f64], k: usize) -> f64 {
    let m = s.len() - 1;
    let at = |i: usize| if i < k { s[i] } else { s[i + 1] };
    if m % 2 == 1 { at(m / 2) } else { 0.5 * (at(m / 2 - 1) + at(m / 2)) }
}

/// Median and robust standard deviation of sorted finite `r`, σ at least `floor`.
fn robust_scale(r: &[f64], floor: f64) -> (f64, f64) {
    let center = median_sorted(r);
    let mad = mad_sorted(r, center);
    let sigma = if mad > 0.0 {
        MAD_TO_SIGMA * mad
    } else {
        MEAN_AD_TO_SIGMA * r.iter().map(|x| (x - center).abs()).sum::<f64>() / r.len().max(1) as f64
    };
    (center, if sigma.is_finite() { sigma.max(floor) } else { floor })
}

/// Generalized ESD (hybrid: median/MAD) on sorted finite `xs` with critical values
/// λ_1..λ_k: the largest `i` with R_i > λ_i, where R_i is the most extreme robust deviation
/// after removing the `i - 1` previous extremes. The most extreme point is always at one end
/// of the remaining sorted range, so each step costs O(log n).
fn esd_count(xs: &[f64], crit: &[f64]) -> usize {
    let (mut lo, mut hi) = (0, xs.len());
    let mut found = 0;
    for (i, &lambda) in crit.iter().enumerate() {
        let s = &xs[lo..hi];
        if s.len() < 3 {
            break;
        }
        let med = median_sorted(s);
        let mad = MAD_TO_SIGMA * mad_sorted(s, med);
        if mad.is_nan() || mad <= 0.0 {
            break;
        }
        let (dl, dh) = (med - s[0], s[s.len() - 1] - med);
        if dl.max(dh) / mad > lambda {
            found = i + 1;
        }
        if dh >= dl {
            hi -= 1;
        } else {
            lo += 1;
        }
    }
    found
}

/// Rosner's generalized ESD critical values λ_1..λ_k for `n` points at level `alpha`:
/// λ_i = (n − i)·t / √((n − i − 1 + t²)(n − i + 1)), t the upper α/(2(n − i + 1)) quantile of
/// Student's t with n − i − 1 degrees of freedom.
/// Never empty: with fewer than 3 points nothing can be an outlier (λ = ∞).
fn critical_values(n: usize, k: usize, alpha: f64) -> Vec<f64> {
    let crit: Vec<f64> = (1..=k)
        .take_while(|&i| n >= i + 2)
        .map(|i| {
            let m = (n - i + 1) as f64;
            let df = (n - i - 1) as f64;
            let t = t_upper_quantile(alpha / (2.0 * m), df);
            (n - i) as f64 * t / ((df + t * t) * m).sqrt()
        })
        .collect();
    if crit.is_empty() { vec![f64::INFINITY] } else { crit }
}

/// Season length of `xs` in points, or `None` when it has no clear seasonality.
///
/// The series (NaN → mean) is linearly detrended; its (biased) autocorrelation is computed
/// for lags up to `max_lag`. Candidates start after the first lag where the ACF drops to
/// ≤ 0, because a smooth series is highly correlated with itself at short lags without
/// being seasonal. The best candidate must reach `MIN_ACF`; a shorter lag near one of its
/// divisors with ≥ 90 % of its ACF is preferred, so noise cannot promote a multiple.
pub fn detect_period(xs: &[f64], max_lag: usize) -> Option<usize> {
    let n = xs.len();
    let finite: Vec<f64> = xs.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < MIN_POINTS || max_lag < 2 || n < 4 {
        return None;
    }
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let y: Vec<f64> = xs.iter().map(|v| if v.is_finite() { *v } else { mean }).collect();
    // Least-squares line through (j, y_j).
    let nf = n as f64;
    let jm = (nf - 1.0) / 2.0;
    let ym = y.iter().sum::<f64>() / nf;
    let sxy: f64 = y.iter().enumerate().map(|(j, v)| (j as f64 - jm) * (v - ym)).sum();
    let sxx: f64 = (0..n).map(|j| (j as f64 - jm).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let y: Vec<f64> = y.iter().enumerate().map(|(j, v)| v - ym - slope * (j as f64 - jm)).collect();
    let c0: f64 = y.iter().map(|v| v * v).sum();
    if c0.is_nan() || c0 <= 1e-300 {
        return None;
    }
    let max_lag = max_lag.min(n / 2);
    let acf: Vec<f64> =
        (0..=max_lag).map(|l| y[..n - l].iter().zip(&y[l..]).map(|(a, b)| a * b).sum::<f64>() / c0).collect();
    let first_neg = (1..=max_lag).find(|&l| acf[l] <= 0.0)?;
    let (best, best_acf) = (first_neg.max(2)..=max_lag)
        .map(|l| (l, acf[l]))
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    if best < 2 || best_acf < MIN_ACF {
        return None;
    }
    // Largest divisor first: the shortest lag that explains the peak wins.
    for d in (2..=best / first_neg.max(2)).rev() {
        let centre = (best as f64 / d as f64).round() as usize;
        let near = (centre.saturating_sub(1).max(2)..=(centre + 1).min(max_lag))
            .map(|l| (l, acf[l]))
            .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        if near.0 >= first_neg && near.1 >= HARMONIC_SHARE * best_acf {
            return Some(near.0);
        }
    }
    Some(best)
}

#[cfg(test)]
#[path = "seasonal_esd_tests.rs"]
pub(super) mod tests;
