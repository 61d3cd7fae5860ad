//! Ensemble: weighted vote of calibrated detector scores, threshold and severity.
//!
//! With online recalibration (`detect.recalibrate`) the ensemble keeps each member's recent
//! raw scores — every scored vector, flagged or not — and at every fit re-maps raw scores to
//! [0, 1] by that distribution ([`Calibrator::fit_robust`]) instead of trusting the member's
//! own calibration on the fit history. The fit history leaves flagged vectors out, so it is
//! calmer than the data, and a calibration learned on it drifts: more flags, a calmer history,
//! more flags. The recent scores include what was flagged, so the vote's false-positive rate
//! stays near its target as machines drift; a member falls back to its own calibration until
//! `min_points` recent scores exist.
//!
//! A member listed in `detect.alone_fpr` also flags a vector on its own, without the vote,
//! when its calibrated score reaches that rate's level: the vote asks detectors to agree, but
//! one that sees what the others cannot (k-means scores changes of movement; the others score
//! levels, blind to a drop that stays inside the usual range) would be outvoted. Its score is
//! then mapped linearly from `[its level, 1]` onto `[threshold, 1]` and the confidence is the
//! larger of that and the vote, so `anomalous` still means `confidence >= threshold` and the
//! severity bands keep their meaning.
//!
//! With `detect.hold_ratio` < 1 the flag has hysteresis: once a vector is flagged, the next
//! ones stay flagged (severity `info` at least) while the confidence is at least
//! `hold_ratio × threshold`. An incident's first vectors are the most surprising; the detectors
//! adapt (and refits absorb what was not flagged), so the confidence sags below the threshold
//! long before the incident ends. Detection delay is unchanged: only the onset decides it.

use std::any::Any;
use std::collections::VecDeque;

use crate::config::{DetectConfig, FprControlConfig, RecalibrateConfig};

use super::calibrate::Calibrator;
use super::lstm_ae::LstmAeDetector;
use super::{DetectError, Detector, Expected, FeatureVector, History, Score, normalise};

/// How bad an anomaly is (the seed's bands on ensemble confidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Below the threshold: not an anomaly.
    None = 0,
    /// Anomalous but below `severity_warning`: logged only.
    Info = 1,
    /// From `severity_warning` up to `severity_critical`.
    Warning = 2,
    /// Above `severity_critical`.
    Critical = 3,
}

impl Severity {
    /// The severities of an anomaly, in rising order (`CheckStats::anomalies` is indexed so).
    pub const ANOMALOUS: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// Lowercase name, the `severity` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One detector and its vote weight.
pub struct Member {
    /// Weight in the vote (> 0).
    pub weight: f64,
    /// The detector.
    pub detector: Box<dyn Detector>,
}

/// One detector's calibrated score inside an ensemble result.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorScore {
    /// Detector name.
    pub detector: &'static str,
    /// Its calibrated and raw score. Its `contributions` and `expected` are empty: they are
    /// folded into the [`EnsembleScore`]'s (call [`Detector::score`] for a member's own).
    pub score: Score,
}

/// The ensemble's verdict on one vector.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleScore {
    /// Weighted vote of calibrated scores, in [0, 1].
    pub confidence: f64,
    /// `confidence >= threshold`.
    pub anomalous: bool,
    /// The confidence this vector had to reach to be flagged: `detect.threshold` (or the one
    /// `target_fpr` gives), or its hysteresis level while a flag was held from the previous
    /// vector. Exported as `anomaly_threshold`, which dashboards draw instead of fixed lines.
    pub threshold: f64,
    /// The weighted vote alone reached the threshold (without members flagging alone or
    /// hysteresis).
    pub voted: bool,
    /// Severity band of the confidence (None when not anomalous).
    pub severity: Severity,
    /// Per-feature contributions, weighted by each detector's score.
    pub contributions: Vec<f64>,
    /// Expected value and band per feature from the first detector that models them.
    pub expected: Vec<Expected>,
    /// Each member's score.
    pub detectors: Vec<DetectorScore>,
    /// The share of the entity's recent vectors (`detect.fpr_control.window`) that were flagged
    /// (this one included), exported as `anomaly_flag_rate`.
    pub flag_rate: Option<f64>,
}

impl EnsembleScore {
    /// Indices of features by decreasing contribution.
    pub fn ranked_features(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.contributions.len()).collect();
        idx.sort_by(|&a, &b| self.contributions[b].total_cmp(&self.contributions[a]));
        idx
    }
}

/// Combines detectors by weighted vote.
pub struct Ensemble {
    members: Vec<Member>,
    threshold: f64,
    warning: f64,
    critical: f64,
    recal: Option<Recalibration>,
    /// Per member: the calibrated score from which it flags on its own.
    alone: Vec<Option<f64>>,
    /// Hysteresis: a held flag stays raised down to `hold_ratio ×` the live threshold (1 = off).
    hold_ratio: f64,
    /// Whether the last scored vector was flagged.
    holding: bool,
    control: Option<FprControl>,
}

/// Live false-positive control (`detect.fpr_control`): the vote's threshold rises while the
/// vote flags more of the recent vectors than its tail rate promises, and falls back when it
/// flags fewer than half of it, in steps of a tenth of a decade, within
/// `[threshold, threshold + max_decades]`.
///
/// Only the vote is corrected. A member flagging alone, and hysteresis, keep their own rates:
/// on the labeled servers those flags are mostly incidents, and correcting them by their rate
/// cost a quarter of the events (docs/accuracy.md). Raising the vote was measured neutral to
/// better on every family, since it acts only where calibration has drifted (`step` below).
struct FprControl {
    /// The vote's promised tail rate.
    target: f64,
    min_points: usize,
    /// Score units per step (a tenth of a decade).
    step: f64,
    max_raise: f64,
    /// Current raise of the threshold, in score units.
    raise: f64,
    /// Vectors the vote flagged over the last `window` scored vectors; `None` when the
    /// threshold is not corrected (only the flag rate is measured).
    voted: Option<BlockWindow>,
    /// All flags over the same window.
    flagged: BlockWindow,
    since_step: usize,
}

/// Scored vectors between two corrections of the threshold.
const CONTROL_EVERY: usize = 100;

impl FprControl {
    fn new(cfg: &FprControlConfig, target: f64, decades: f64) -> Self {
        Self {
            target,
            min_points: cfg.min_points,
            step: 0.1 / decades,
            max_raise: cfg.max_decades / decades,
            raise: 0.0,
            voted: cfg.enabled.then(|| BlockWindow::new(cfg.window)),
            flagged: BlockWindow::new(cfg.window),
            since_step: 0,
        }
    }

    fn record(&mut self, voted: bool, flagged: bool) {
        self.flagged.push(flagged);
        let Some(window) = &mut self.voted else { return };
        window.push(voted);
        self.since_step += 1;
        if self.since_step < CONTROL_EVERY || window.len() < self.min_points {
            return;
        }
        self.since_step = 0;
        let rate = window.rate();
        if rate > self.target {
            self.raise = (self.raise + self.step).min(self.max_raise);
        } else if rate < self.target / 2.0 {
            self.raise = (self.raise - self.step).max(0.0);
        }
    }
}

/// How many of the last `capacity` booleans were `true`, counted in blocks of
/// [`CONTROL_EVERY`]: one byte per block instead of a bit per boolean (50 bytes for the default
/// 5000, where bits took 632; issue 28). It spans the last whole blocks (`capacity` rounded up
/// to a block) and the one being filled, so at every block's end — where the controller looks —
/// it holds exactly the last `capacity` booleans when `capacity` is a multiple of a block, and
/// `anomaly_flag_rate` between two ends is over up to a block more.
#[derive(Debug, Clone)]
struct BlockWindow {
    /// Ring of `true` counts of whole blocks; once full, `next` is the oldest.
    blocks: Vec<u8>,
    blocks_max: usize,
    next: usize,
    /// `true` among the whole blocks held.
    ones: usize,
    /// The block being filled: booleans, of them `true`.
    open: (usize, usize),
}

impl BlockWindow {
    fn new(capacity: usize) -> Self {
        let blocks_max = capacity.max(1).div_ceil(CONTROL_EVERY);
        Self { blocks: Vec::new(), blocks_max, next: 0, ones: 0, open: (0, 0) }
    }

    fn push(&mut self, bit: bool) {
        self.open.0 += 1;
        self.open.1 += usize::from(bit);
        if self.open.0 < CONTROL_EVERY {
            return;
        }
        let count = self.open.1 as u8;
        self.open = (0, 0);
        self.ones += usize::from(count);
        if self.blocks.len() < self.blocks_max {
            self.blocks.push(count);
        } else {
            self.ones -= usize::from(self.blocks[self.next]);
            self.blocks[self.next] = count;
            self.next = (self.next + 1) % self.blocks_max;
        }
    }

    fn len(&self) -> usize {
        self.blocks.len() * CONTROL_EVERY + self.open.0
    }

    /// Fraction of `true` (0 when empty).
    fn rate(&self) -> f64 {
        let len = self.len();
        if len == 0 { 0.0 } else { (self.ones + self.open.1) as f64 / len as f64 }
    }
}

/// Online recalibration state (see the module docs).
struct Recalibration {
    window: usize,
    min_points: usize,
    decades: f64,
    /// Per member: its raw scores on the last `window` scored vectors, oldest first, as f32
    /// (5 000 × 5 members: 98 KiB per entity less than f64, issue 28).
    recent: Vec<VecDeque<f32>>,
    /// Per member: the calibrator fitted on `recent` at the last fit.
    calibrators: Vec<Option<Calibrator>>,
}

impl Ensemble {
    /// An ensemble with the given members and bands.
    pub fn new(members: Vec<Member>, threshold: f64, warning: f64, critical: f64) -> Self {
        let alone = vec![None; members.len()];
        Self {
            members,
            threshold,
            warning,
            critical,
            recal: None,
            alone,
            hold_ratio: 1.0,
            holding: false,
            control: None,
        }
    }

    /// Applies the ensemble options of `cfg`: online recalibration (`recalibrate`) and the
    /// members that flag on their own (`alone_fpr`, matched by detector name).
    /// Rules left unset in `cfg` (`alone_fpr`, `hold_ratio`) are applied later, per entity,
    /// with [`set_alone`](Self::set_alone) and [`set_hold`](Self::set_hold).
    pub fn configure(self, cfg: &DetectConfig) -> Self {
        let decades = cfg.calibration_decades;
        let mut e =
            self.with_recalibration(&cfg.recalibrate, decades).with_hold(cfg.hold_ratio.unwrap_or(1.0));
        // The flag rate is always measured (anomaly_flag_rate); the threshold is corrected only
        // with `fpr_control.enabled`.
        let target = 10f64.powf(-e.threshold * decades);
        e = e.with_fpr_control(&cfg.fpr_control, target, decades);
        if let Some(alone) = &cfg.alone_fpr {
            e.set_alone(|name| alone.get(name).copied(), decades);
        }
        e
    }

    /// Sets the hysteresis ratio (see [`with_hold`](Self::with_hold)).
    pub fn set_hold(&mut self, ratio: f64) {
        self.hold_ratio = ratio.clamp(0.0, 1.0);
    }

    /// Measures the share of flagged vectors over `cfg.window` and, with `cfg.enabled`, holds
    /// the vote to the tail rate `target` on live data (see `detect.fpr_control`; `decades` as in
    /// [`super::calibrate`]).
    pub fn with_fpr_control(mut self, cfg: &FprControlConfig, target: f64, decades: f64) -> Self {
        self.control = Some(FprControl::new(cfg, target, decades));
        self
    }

    /// The threshold the vote has to reach now: the configured one plus the live correction.
    pub fn live_threshold(&self) -> f64 {
        self.threshold + self.control.as_ref().map_or(0.0, |c| c.raise)
    }

    /// Sets which members flag on their own: `alone_fpr(name)` is a member's tail rate
    /// (`decades` as in [`super::calibrate`]), `None` leaves it to the vote.
    pub fn set_alone(&mut self, alone_fpr: impl Fn(&str) -> Option<f64>, decades: f64) {
        for (m, alone) in self.members.iter().zip(&mut self.alone) {
            *alone = alone_fpr(m.detector.name()).map(|fpr| (-fpr.log10() / decades).clamp(0.0, 1.0));
        }
    }

    /// Hysteresis: a flag stays raised while the confidence is at least `ratio × threshold`.
    pub fn with_hold(mut self, ratio: f64) -> Self {
        self.set_hold(ratio);
        self
    }

    /// Lets member `index` flag on its own from calibrated score `level` (see module docs).
    pub fn with_alone(mut self, index: usize, level: f64) -> Self {
        if let Some(a) = self.alone.get_mut(index) {
            *a = Some(level);
        }
        self
    }

    /// Recalibrates members online on their recent raw scores when `cfg.enabled`
    /// (`decades` as in [`super::calibrate`]).
    pub fn with_recalibration(mut self, cfg: &RecalibrateConfig, decades: f64) -> Self {
        self.recal = cfg.enabled.then(|| Recalibration {
            window: cfg.window.max(1),
            min_points: cfg.min_points,
            decades,
            recent: self.members.iter().map(|_| VecDeque::new()).collect(),
            calibrators: self.members.iter().map(|_| None).collect(),
        });
        self
    }

    /// Fits every member on the same history; with recalibration, also refits each member's
    /// recalibration on its recent raw scores.
    pub fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        self.members.iter_mut().try_for_each(|m| m.detector.fit(history))?;
        self.refit_recalibration();
        Ok(())
    }

    /// [`fit`](Self::fit) inside an entity model: `all` is its buffered history (see
    /// [`Detector::fit_in`]).
    pub fn fit_in(&mut self, history: &[FeatureVector], all: &History) -> Result<(), DetectError> {
        self.members.iter_mut().try_for_each(|m| m.detector.fit_in(history, all))?;
        self.refit_recalibration();
        Ok(())
    }

    fn refit_recalibration(&mut self) {
        if let Some(r) = &mut self.recal {
            for (recent, cal) in r.recent.iter_mut().zip(&mut r.calibrators) {
                *cal = if recent.len() >= r.min_points {
                    let raw: Vec<f64> = recent.iter().map(|&v| f64::from(v)).collect();
                    Calibrator::fit_robust(&raw, r.decades)
                } else {
                    None
                };
            }
        }
    }

    /// Scores with every member and combines. With recalibration each member's raw score is
    /// also remembered (this is why scoring takes `&mut self`): score every vector once.
    pub fn score(&mut self, x: &FeatureVector) -> Result<EnsembleScore, DetectError> {
        let nf = x.values.len();
        let mut detectors = Vec::with_capacity(self.members.len());
        let (mut num, mut den) = (0.0, 0.0);
        let mut contributions = vec![0.0; nf];
        let mut expected = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let mut s = m.detector.score(x)?;
            if let Some(r) = &mut self.recal
                && s.raw.is_finite()
            {
                if let Some(c) = &r.calibrators[i] {
                    s.value = c.score(s.raw);
                }
                let recent = &mut r.recent[i];
                if recent.len() >= r.window {
                    recent.pop_front();
                }
                recent.push_back(s.raw.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32);
                if recent.len() == r.window && recent.capacity() > r.window {
                    // Full for good: give back what doubling reserved beyond the window.
                    recent.shrink_to_fit();
                }
            }
            num += m.weight * s.value;
            den += m.weight;
            for (c, sc) in contributions.iter_mut().zip(&s.contributions) {
                *c += m.weight * s.value.max(1e-6) * sc;
            }
            if expected.is_empty() && !s.expected.is_empty() {
                expected = std::mem::take(&mut s.expected);
            }
            // Folded into the ensemble's: not kept per member (issue 28: an entity's last
            // score is held until its next check, and five members' copies were ~1.5 KB).
            s.contributions = Vec::new();
            s.expected = Vec::new();
            detectors.push(DetectorScore { detector: m.detector.name(), score: s });
        }
        normalise(&mut contributions);
        let mut confidence = if den > 0.0 { (num / den).clamp(0.0, 1.0) } else { 0.0 };
        let live = self.live_threshold();
        let voted = confidence >= live;
        for (d, alone) in detectors.iter().zip(&self.alone) {
            if let Some(a) = *alone
                && d.score.value >= a
            {
                let share = if a < 1.0 { (d.score.value - a) / (1.0 - a) } else { 1.0 };
                confidence = confidence.max(live + share * (1.0 - live));
            }
        }
        let hold = live * self.hold_ratio;
        let threshold = if self.holding { hold } else { live };
        let mut severity = severity(confidence, live, self.warning, self.critical);
        if severity == Severity::None && self.holding && confidence >= hold {
            severity = Severity::Info;
        }
        self.holding = severity != Severity::None;
        let flag_rate = self.control.as_mut().map(|c| {
            c.record(voted, self.holding);
            c.flagged.rate()
        });
        Ok(EnsembleScore {
            confidence,
            anomalous: severity != Severity::None,
            threshold,
            voted,
            severity,
            contributions,
            expected,
            detectors,
            flag_rate,
        })
    }

    /// Online update of every member.
    pub fn update(&mut self, x: &FeatureVector) {
        self.members.iter_mut().for_each(|m| m.detector.update(x));
    }

    /// [`update`](Self::update) inside an entity model (see [`Detector::update_in`]).
    pub fn update_in(&mut self, x: &FeatureVector, all: &History) {
        self.members.iter_mut().for_each(|m| m.detector.update_in(x, all));
    }

    /// The LSTM autoencoder member, whose network runs batched over every entity of a check.
    fn lstm(&self) -> Option<&LstmAeDetector> {
        self.members.iter().find_map(|m| (m.detector.as_ref() as &dyn Any).downcast_ref())
    }

    /// The LSTM member's network input for `values` (see [`LstmAeDetector::batch_input`]);
    /// false without one.
    pub fn batch_input(&self, values: &[f64], input: &mut Vec<f32>) -> bool {
        self.lstm().is_some_and(|d| d.batch_input(values, input))
    }

    /// Hands the network's output to the LSTM member (see [`LstmAeDetector::batch_output`]).
    pub fn batch_output(&mut self, timestamp_ms: i64, input: &[f32], output: &[f32]) {
        let lstm = self.members.iter_mut().find_map(|m| (m.detector.as_mut() as &mut dyn Any).downcast_mut());
        if let Some(d) = lstm {
            LstmAeDetector::batch_output(d, timestamp_ms, input, output);
        }
    }
}

/// Severity from confidence: none below `threshold`, info below `warning`, warning up to and
/// including `critical`, critical above.
pub fn severity(confidence: f64, threshold: f64, warning: f64, critical: f64) -> Severity {
    if confidence.is_nan() || confidence < threshold {
        Severity::None
    } else if confidence < warning {
        Severity::Info
    } else if confidence <= critical {
        Severity::Warning
    } else {
        Severity::Critical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A detector that returns a fixed score, to test the vote arithmetic.
    struct Fixed(&'static str, f64, Vec<f64>);

    impl Detector for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn fit(&mut self, _: &[FeatureVector]) -> Result<(), DetectError> {
            Ok(())
        }
        fn score(&self, _: &FeatureVector) -> Result<Score, DetectError> {
            Ok(Score { value: self.1, raw: self.1, contributions: self.2.clone(), expected: Vec::new() })
        }
        fn update(&mut self, _: &FeatureVector) {}
    }

    /// A detector with a stale calibration: its raw score is |x₀| and its value claims the
    /// tail of a unit normal, however wide the data has become.
    struct Stale;

    impl Detector for Stale {
        fn name(&self) -> &'static str {
            "stale"
        }
        fn fit(&mut self, _: &[FeatureVector]) -> Result<(), DetectError> {
            Ok(())
        }
        fn score(&self, x: &FeatureVector) -> Result<Score, DetectError> {
            let raw = x.values[0].abs();
            let value = crate::detect::calibrate::score_from_tail(
                crate::detect::calibrate::gaussian_two_sided(raw),
                6.0,
            );
            Ok(Score { value, raw, contributions: vec![1.0], expected: Vec::new() })
        }
        fn update(&mut self, _: &FeatureVector) {}
    }

    #[test]
    fn recalibration_follows_drift_and_still_flags_a_spike() {
        use crate::rng::Rng;
        let cfg = RecalibrateConfig { enabled: true, window: 2000, min_points: 500 };
        // Threshold for a 1 % tail with 6 decades.
        let threshold = 2.0 / 6.0;
        let build = |recal: bool| {
            let e =
                Ensemble::new(vec![Member { weight: 1.0, detector: Box::new(Stale) }], threshold, 0.7, 0.9);
            if recal { e.with_recalibration(&cfg, 6.0) } else { e }
        };
        let (mut plain, mut recal) = (build(false), build(true));
        let mut rng = Rng::new(11);
        let (mut flagged_plain, mut flagged_recal, mut scored) = (0, 0, 0);
        // The data's spread triples after the fit: a stale calibration flags a third of it.
        for i in 0..6000 {
            if i % 100 == 0 {
                plain.fit(&[]).unwrap();
                recal.fit(&[]).unwrap();
            }
            let x = FeatureVector { timestamp_ms: i, values: vec![3.0 * rng.normal()] };
            let (p, r) = (plain.score(&x).unwrap(), recal.score(&x).unwrap());
            if i >= 1000 {
                scored += 1;
                flagged_plain += usize::from(p.anomalous);
                flagged_recal += usize::from(r.anomalous);
            }
        }
        let rate = |n: usize| n as f64 / scored as f64;
        assert!(rate(flagged_plain) > 0.25, "stale: {}", rate(flagged_plain));
        assert!(rate(flagged_recal) < 0.02, "recalibrated: {}", rate(flagged_recal));
        // A spike far outside the recent spread is still flagged, and severe.
        let spike = recal.score(&FeatureVector { timestamp_ms: 6000, values: vec![40.0] }).unwrap();
        assert!(spike.anomalous && spike.severity >= Severity::Warning, "{}", spike.confidence);
    }

    #[test]
    fn live_control_brings_the_vote_back_to_its_promised_rate() {
        use crate::rng::Rng;
        // A detector whose calibration promises a Gaussian tail on data that is wider: at the
        // 1 % threshold it flags about 15 % of the vectors.
        let threshold = 2.0 / 6.0;
        let cfg = FprControlConfig { enabled: true, window: 2000, min_points: 500, max_decades: 3.0 };
        let build = |control: bool| {
            let e =
                Ensemble::new(vec![Member { weight: 1.0, detector: Box::new(Stale) }], threshold, 0.7, 0.9);
            if control { e.with_fpr_control(&cfg, 0.01, 6.0) } else { e }
        };
        let (mut plain, mut held) = (build(false), build(true));
        let mut rng = Rng::new(5);
        let (mut flagged_plain, mut flagged_held, mut scored) = (0, 0, 0);
        let mut rate = None;
        for i in 0..20_000 {
            let x = FeatureVector { timestamp_ms: i, values: vec![1.8 * rng.normal()] };
            let (p, h) = (plain.score(&x).unwrap(), held.score(&x).unwrap());
            assert_eq!(p.flag_rate, None);
            rate = h.flag_rate;
            if i >= 10_000 {
                scored += 1;
                flagged_plain += usize::from(p.anomalous);
                flagged_held += usize::from(h.anomalous);
            }
        }
        let share = |n: usize| n as f64 / scored as f64;
        assert!(share(flagged_plain) > 0.1, "uncontrolled: {}", share(flagged_plain));
        assert!(share(flagged_held) < 0.02, "controlled: {}", share(flagged_held));
        // The exported rate is the window's, and the threshold says how far it rose.
        let rate = rate.unwrap();
        assert!(rate > 0.002 && rate < 0.02, "{rate}");
        assert!(held.live_threshold() > threshold + 0.1, "{}", held.live_threshold());
        // A spike still flags.
        let spike = held.score(&FeatureVector { timestamp_ms: 0, values: vec![40.0] }).unwrap();
        assert!(spike.anomalous);
    }

    #[test]
    fn the_raise_is_bounded_and_falls_back_when_the_data_calms() {
        let cfg = FprControlConfig { enabled: true, window: 1000, min_points: 500, max_decades: 1.0 };
        let mut e =
            Ensemble::new(vec![Member { weight: 1.0, detector: Box::new(Stale) }], 2.0 / 6.0, 0.7, 0.9)
                .with_fpr_control(&cfg, 0.01, 6.0);
        // Every vector far out: the raise stops at one decade.
        for i in 0..3000 {
            e.score(&FeatureVector { timestamp_ms: i, values: vec![10.0] }).unwrap();
        }
        assert!((e.live_threshold() - 3.0 / 6.0).abs() < 1e-9, "{}", e.live_threshold());
        // Then quiet: back to the configured threshold.
        for i in 0..5000 {
            e.score(&FeatureVector { timestamp_ms: i, values: vec![0.0] }).unwrap();
        }
        assert!((e.live_threshold() - 2.0 / 6.0).abs() < 1e-9, "{}", e.live_threshold());
    }

    #[test]
    fn block_window_counts_the_last_blocks() {
        let mut w = BlockWindow::new(300);
        for i in 0..1000 {
            w.push(i % 10 == 0 || (950..990).contains(&i));
        }
        // 700..999: 30 multiples of 10, 950..989 adds 36 (4 of its 40 are multiples of 10).
        assert_eq!(w.len(), 300);
        assert!((w.rate() - 66.0 / 300.0).abs() < 1e-12);
        // Inside a block: the whole blocks and the open one.
        for _ in 0..50 {
            w.push(true);
        }
        assert_eq!(w.len(), 350);
        assert!((w.rate() - 116.0 / 350.0).abs() < 1e-12);
        // A window that is not a whole number of blocks is rounded up to one.
        let mut w = BlockWindow::new(130);
        (0..1000).for_each(|i| w.push(i % 10 == 0));
        assert_eq!((w.len(), w.rate()), (200, 0.1));
    }

    #[test]
    fn a_member_flags_alone_above_its_level() {
        // k-means sees a change (0.9) that the three level detectors do not (0): the vote is
        // 0.225, below the 0.5 threshold.
        let members = || {
            vec![
                Member { weight: 1.0, detector: Box::new(Fixed("kmeans", 0.9, vec![1.0, 0.0])) },
                Member { weight: 3.0, detector: Box::new(Fixed("zscore", 0.0, vec![0.0, 1.0])) },
            ]
        };
        let x = FeatureVector { timestamp_ms: 0, values: vec![0.0, 0.0] };
        let r = Ensemble::new(members(), 0.5, 0.7, 0.9).score(&x).unwrap();
        assert!(!r.anomalous && (r.confidence - 0.225).abs() < 1e-12);
        // Allowed to flag alone from 0.4, it does: 0.9 maps from [0.4, 1] onto [0.5, 1].
        let r = Ensemble::new(members(), 0.5, 0.7, 0.9).with_alone(0, 0.4).score(&x).unwrap();
        assert!(r.anomalous);
        assert!((r.confidence - (0.5 + 0.5 * 0.5 / 0.6)).abs() < 1e-12, "{}", r.confidence);
        assert_eq!(r.severity, Severity::Critical);
        // Below its level it is only a vote.
        let r = Ensemble::new(members(), 0.5, 0.7, 0.9).with_alone(0, 0.95).score(&x).unwrap();
        assert!(!r.anomalous);
        // From configuration, by name: `alone_fpr: {kmeans: 0.01}` is level 2/6 with 6 decades.
        let cfg = DetectConfig {
            alone_fpr: Some([("kmeans".to_string(), 0.01)].into_iter().collect()),
            ..DetectConfig::default()
        };
        let e = Ensemble::new(members(), 0.5, 0.7, 0.9).configure(&cfg);
        assert_eq!(e.alone[0], Some(2.0 / 6.0));
        assert_eq!(e.alone[1], None);
    }

    #[test]
    fn a_flag_is_held_while_the_confidence_stays_above_the_hold_level() {
        use std::sync::{Arc, Mutex};
        /// Returns whatever value the test put in the shared cell.
        struct Dial(Arc<Mutex<f64>>);
        impl Detector for Dial {
            fn name(&self) -> &'static str {
                "dial"
            }
            fn fit(&mut self, _: &[FeatureVector]) -> Result<(), DetectError> {
                Ok(())
            }
            fn score(&self, _: &FeatureVector) -> Result<Score, DetectError> {
                let v = *self.0.lock().unwrap();
                Ok(Score { value: v, raw: v, contributions: vec![1.0], expected: Vec::new() })
            }
            fn update(&mut self, _: &FeatureVector) {}
        }
        let dial = Arc::new(Mutex::new(0.0));
        let mut e = Ensemble::new(
            vec![Member { weight: 1.0, detector: Box::new(Dial(dial.clone())) }],
            0.4,
            0.7,
            0.9,
        )
        .with_hold(0.5);
        let x = FeatureVector { timestamp_ms: 0, values: vec![0.0] };
        let mut flags = Vec::new();
        // An incident: quiet, a surprising onset, a sagging middle, then back to normal.
        for v in [0.3, 0.1, 0.6, 0.35, 0.25, 0.21, 0.15, 0.3, 0.45] {
            *dial.lock().unwrap() = v;
            let r = e.score(&x).unwrap();
            assert_eq!(r.anomalous, r.severity != Severity::None);
            flags.push(r.anomalous);
        }
        // 0.3 alone is below the threshold; after the 0.6 onset it holds down to 0.2.
        assert_eq!(flags, [false, false, true, true, true, true, false, false, true]);
    }

    #[test]
    fn severity_bands_follow_the_seed() {
        let s = |c| severity(c, 0.5, 0.7, 0.9);
        assert_eq!(s(0.49), Severity::None);
        assert_eq!(s(0.5), Severity::Info);
        assert_eq!(s(0.69), Severity::Info);
        assert_eq!(s(0.7), Severity::Warning);
        assert_eq!(s(0.9), Severity::Warning);
        assert_eq!(s(0.91), Severity::Critical);
        assert_eq!(s(f64::NAN), Severity::None);
    }

    #[test]
    fn weighted_vote_combines_scores_and_contributions() {
        let mut e = Ensemble::new(
            vec![
                Member { weight: 3.0, detector: Box::new(Fixed("a", 1.0, vec![1.0, 0.0])) },
                Member { weight: 1.0, detector: Box::new(Fixed("b", 0.2, vec![0.0, 1.0])) },
            ],
            0.5,
            0.7,
            0.9,
        );
        let r = e.score(&FeatureVector { timestamp_ms: 0, values: vec![0.0, 0.0] }).unwrap();
        assert!((r.confidence - 0.8).abs() < 1e-12);
        assert_eq!(r.severity, Severity::Warning);
        assert!(r.anomalous);
        // Detector a (weight 3, score 1) dominates feature 0: 3 / (3 + 0.2).
        assert!((r.contributions[0] - 3.0 / 3.2).abs() < 1e-9);
        assert_eq!(r.ranked_features(), [0, 1]);
        assert_eq!(r.detectors[1].detector, "b");
    }
}
