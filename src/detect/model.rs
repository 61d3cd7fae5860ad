//! One entity's models: ensemble, history buffer, warm-up and refit schedule.

use std::sync::Arc;

use crate::config::DetectConfig;

use super::history::History;
use super::{
    DetectError, Ensemble, EnsembleScore, FeatureVector, IsolationForestDetector, KMeansDetector,
    LstmAeDetector, LstmModel, Member, PretrainedForest, SeasonalEsdConfig, SeasonalEsdDetector,
    ZScoreDetector,
};

/// Lifecycle of an entity's models (`anomaly_model_state{state}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    /// Collecting history before the first fit.
    Warming,
    /// Fitted and scoring.
    Ready,
    /// Fitted, but the entity sent nothing new for a while.
    Stale,
}

impl ModelState {
    /// All states, in label order.
    pub const ALL: [ModelState; 3] = [ModelState::Warming, ModelState::Ready, ModelState::Stale];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Warming => "warming",
            ModelState::Ready => "ready",
            ModelState::Stale => "stale",
        }
    }
}

/// What an entity's data looks like at its first fit, which picks the vote rules that
/// `detect.alone_fpr` and `detect.hold_ratio` leave unset. Chosen on the ASD, SMD and NAB
/// families (docs/accuracy.md): server entities with many moving metrics and single series
/// need different rules, and the number of features that move is what tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Several features move: k-means flags alone at a 3 % recent tail (changes of movement
    /// inside the usual range, which the level detectors miss), the z-score at 0.02 % (long
    /// level shifts the others adapt to), and a flag is held down to 0.6 × the threshold.
    Multivariate,
    /// At most one feature moves: the z-score flags alone at 1.5 % and seasonal ESD at 0.1 %
    /// (on one metric k-means' difference scores are mostly noise), no hysteresis.
    Univariate,
}

impl Shape {
    /// The shape of `history`: how many features take more than one finite value.
    pub fn of(history: impl IntoIterator<Item = impl AsRef<[f64]>>) -> Shape {
        let mut first: Vec<f64> = Vec::new();
        let mut moving: Vec<bool> = Vec::new();
        for x in history {
            let x = x.as_ref();
            if first.len() < x.len() {
                first.resize(x.len(), f64::NAN);
                moving.resize(x.len(), false);
            }
            for (i, v) in x.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                if first[i].is_nan() {
                    first[i] = *v;
                } else if *v != first[i] {
                    moving[i] = true;
                }
            }
        }
        if moving.iter().filter(|m| **m).count() > 1 { Shape::Multivariate } else { Shape::Univariate }
    }

    /// The `rules` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Multivariate => "multivariate",
            Shape::Univariate => "univariate",
        }
    }

    /// Tail rate from which `detector` flags on its own, for this shape.
    pub fn alone_fpr(self, detector: &str) -> Option<f64> {
        match (self, detector) {
            (Shape::Multivariate, "kmeans") => Some(0.03),
            (Shape::Multivariate, "zscore") => Some(0.0002),
            (Shape::Univariate, "zscore") => Some(0.015),
            (Shape::Univariate, "sesd") => Some(0.001),
            _ => None,
        }
    }

    /// Hysteresis ratio for this shape.
    pub fn hold_ratio(self) -> f64 {
        match self {
            Shape::Multivariate => 0.6,
            Shape::Univariate => 1.0,
        }
    }
}

/// Builds entity models from configuration.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    cfg: DetectConfig,
    n_features: usize,
    lstm: Option<Arc<LstmModel>>,
    forest: Option<Arc<PretrainedForest>>,
}

impl ModelSpec {
    /// A spec for vectors of `n_features` features. `detect.lstm_ae` takes part only once
    /// its network is given with [`with_lstm`](Self::with_lstm).
    pub fn new(cfg: &DetectConfig, n_features: usize) -> Self {
        Self { cfg: cfg.clone(), n_features, lstm: None, forest: None }
    }

    /// The loaded autoencoder network shared by every entity's `lstm_ae` detector.
    pub fn with_lstm(mut self, model: Arc<LstmModel>) -> Self {
        self.lstm = Some(model);
        self
    }

    /// Imported isolation-forest trees every entity's `iforest` scores with.
    pub fn with_forest(mut self, forest: Arc<PretrainedForest>) -> Self {
        self.forest = Some(forest);
        self
    }

    /// The shared autoencoder, when `lstm_ae` takes part.
    pub fn lstm(&self) -> Option<&Arc<LstmModel>> {
        self.lstm.as_ref().filter(|_| self.cfg.lstm_ae.enabled)
    }

    /// Names of the enabled detectors, in ensemble order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.cfg.zscore.enabled {
            names.push("zscore");
        }
        if self.cfg.iforest.enabled {
            names.push("iforest");
        }
        if self.cfg.sesd.enabled {
            names.push("sesd");
        }
        if self.cfg.kmeans.enabled {
            names.push("kmeans");
        }
        if self.lstm().is_some() {
            names.push(super::lstm_ae::NAME);
        }
        names
    }

    /// A fresh (warming) model for one entity.
    pub fn build(&self) -> EntityModel {
        let c = &self.cfg;
        let mut members = Vec::new();
        if c.zscore.enabled {
            members.push(Member {
                weight: c.zscore.weight,
                detector: Box::new(ZScoreDetector::new(&c.zscore, self.n_features, c.calibration_decades)),
            });
        }
        if c.iforest.enabled {
            members.push(Member {
                weight: c.iforest.weight,
                detector: Box::new(match &self.forest {
                    Some(f) => IsolationForestDetector::pretrained(Arc::clone(f), c.calibration_decades),
                    None => IsolationForestDetector::new(&c.iforest, self.n_features, c.calibration_decades),
                }),
            });
        }
        if c.sesd.enabled {
            // Seasonal ESD reads its window from the buffered history (`sharing_history`), which
            // holds `fit_window` vectors: a longer window cannot fill. (Keeping its own ring,
            // every refit restarted it from the fit history, so points beyond `fit_window` were
            // only those since the last refit: 20 KB per entity at the defaults, issue 28.)
            let sesd = SeasonalEsdConfig {
                window: c.sesd.window.min(c.fit_window.max(crate::config::sesd::MIN_FIT)),
                ..c.sesd.clone()
            };
            members.push(Member {
                weight: c.sesd.weight,
                detector: Box::new(
                    SeasonalEsdDetector::new(&sesd, self.n_features, c.calibration_decades).sharing_history(),
                ),
            });
        }
        if c.kmeans.enabled {
            members.push(Member {
                weight: c.kmeans.weight,
                detector: Box::new(KMeansDetector::new(&c.kmeans, self.n_features, c.calibration_decades)),
            });
        }
        if let Some(model) = self.lstm() {
            let detector = LstmAeDetector::new(
                Arc::clone(model),
                c.lstm_ae.score_steps.unwrap_or(model.window),
                c.calibration_decades,
            );
            members.push(Member { weight: c.lstm_ae.weight, detector: Box::new(detector) });
        }
        EntityModel {
            ensemble: Ensemble::new(
                members,
                c.effective_threshold(),
                c.severity_warning,
                c.severity_critical,
            )
            .configure(c),
            history: History::new(self.n_features, c.fit_window),
            fit_window: c.fit_window,
            min_fit_points: c.min_fit_points,
            fit_every_ms: c.fit_every.as_millis() as i64,
            last_fit_ms: None,
            auto_rules: (c.shape_rules && (c.alone_fpr.is_none() || c.hold_ratio.is_none())).then_some(
                AutoRules {
                    alone: c.alone_fpr.is_none(),
                    hold: c.hold_ratio.is_none(),
                    decades: c.calibration_decades,
                },
            ),
            shape: None,
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone)]
pub struct Step {
    /// State after the step.
    pub state: ModelState,
    /// The score, once the model is ready.
    pub score: Option<EnsembleScore>,
    /// The models were (re)fitted before scoring this vector.
    pub fitted: bool,
}

/// One entity's ensemble plus the history it is (re)fitted on.
pub struct EntityModel {
    ensemble: Ensemble,
    history: History,
    fit_window: usize,
    min_fit_points: usize,
    fit_every_ms: i64,
    last_fit_ms: Option<i64>,
    /// Which vote rules the configuration left to the entity's shape.
    auto_rules: Option<AutoRules>,
    /// The shape chosen at the first fit, when rules are left to it.
    shape: Option<Shape>,
}

#[derive(Debug, Clone, Copy)]
struct AutoRules {
    alone: bool,
    hold: bool,
    decades: f64,
}

impl EntityModel {
    /// Whether [`step`](Self::step) at `timestamp_ms` (re)fits before scoring.
    fn fit_due(&self, timestamp_ms: i64) -> bool {
        match self.last_fit_ms {
            None => self.history.len() >= self.min_fit_points,
            Some(t) => timestamp_ms - t >= self.fit_every_ms,
        }
    }

    /// Appends the network input of a batched detector for the vector that the next
    /// [`step`](Self::step) scores; false when there is none or the step will refit first
    /// (that step then scores the window alone).
    /// With `defer`, as [`step_deferring`](Self::step_deferring) takes it, a fit that is due
    /// waits, so the step scores from the network's output.
    pub fn batch_input(&self, timestamp_ms: i64, values: &[f64], input: &mut Vec<f32>, defer: bool) -> bool {
        self.is_ready() && (defer || !self.fit_due(timestamp_ms)) && self.ensemble.batch_input(values, input)
    }

    /// Hands the network's output for the input appended by [`batch_input`](Self::batch_input).
    pub fn batch_output(&mut self, timestamp_ms: i64, input: &[f32], output: &[f32]) {
        self.ensemble.batch_output(timestamp_ms, input, output);
    }

    /// Scores `x` (once fitted), then learns from it; fits when due.
    pub fn step(&mut self, x: FeatureVector) -> Result<Step, DetectError> {
        self.step_deferring(x, false)
    }

    /// [`step`](Self::step), except that a fit that is due waits when `defer` (a later step
    /// fits): the vector is scored by the models the entity has, or not at all before its
    /// first fit.
    pub fn step_deferring(&mut self, x: FeatureVector, defer: bool) -> Result<Step, DetectError> {
        let fitted = !defer && self.fit_due(x.timestamp_ms);
        if fitted {
            self.refit(x.timestamp_ms)?;
        }
        let score = match self.last_fit_ms {
            Some(_) => Some(self.ensemble.score(&x)?),
            None => None,
        };
        self.ensemble.update_in(&x, &self.history);
        // Only what the vote itself flagged stays out of refits. A vector flagged by one member
        // alone (`alone_fpr`) or held by hysteresis is less certain; leaving those out starved
        // the history of exactly what that member finds unusual, so refits saw calmer data than
        // the stream and flagged ever more (SMD: F1 0.242 → 0.201 when the z-score also flagged
        // alone; with this rule 0.241, and ASD's event recall 0.906 → 0.939).
        let flagged = score.as_ref().is_some_and(|s| s.voted);
        self.history.push(x.timestamp_ms, &x.values, flagged);
        let state = if score.is_some() { ModelState::Ready } else { ModelState::Warming };
        Ok(Step { state, score, fitted })
    }

    /// Whether a fit is due as of the newest vector held (one that
    /// [`step_deferring`](Self::step_deferring) left for later).
    pub fn fit_pending(&self) -> bool {
        self.history.newest_ms().is_some_and(|t| self.fit_due(t))
    }

    /// Fits now if a fit is due as of the newest vector held, stamped with that vector's time
    /// (the next refit is due `fit_every` after it); false when none was due.
    pub fn fit_pending_now(&mut self) -> Result<bool, DetectError> {
        match self.history.newest_ms().filter(|&t| self.fit_due(t)) {
            Some(t) => self.refit(t).map(|()| true),
            None => Ok(false),
        }
    }

    /// Fits on the buffered history, leaving out vectors the ensemble's vote flagged.
    pub fn refit(&mut self, now_ms: i64) -> Result<(), DetectError> {
        let normal = self.history.unflagged();
        self.choose_shape(&normal);
        self.ensemble.fit_in(&normal, &self.history)?;
        self.last_fit_ms = Some(now_ms);
        Ok(())
    }

    /// At the first fit, picks the rules the configuration left to the entity's shape.
    fn choose_shape(&mut self, history: &[FeatureVector]) {
        let Some(auto) = self.auto_rules.filter(|_| self.shape.is_none()) else { return };
        let shape = Shape::of(history.iter().map(|x| &x.values));
        self.shape = Some(shape);
        if auto.alone {
            self.ensemble.set_alone(|name| shape.alone_fpr(name), auto.decades);
        }
        if auto.hold {
            self.ensemble.set_hold(shape.hold_ratio());
        }
    }

    /// Fits on external history (e.g. a training file) and keeps its newest `fit_window`
    /// vectors as the buffer for later refits.
    pub fn fit_on(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        self.refill(history.iter().map(|x| (x, false)));
        let now = history.last().map_or(0, |x| x.timestamp_ms);
        self.choose_shape(history);
        self.ensemble.fit_in(history, &self.history)?;
        self.last_fit_ms = Some(now);
        Ok(())
    }

    /// Restores a saved buffer and fits on it; the next refit is due `fit_every` after
    /// `last_fit_ms` (callers stagger it so restored entities do not all refit at once).
    pub fn restore(
        &mut self,
        history: Vec<(FeatureVector, bool)>,
        last_fit_ms: i64,
    ) -> Result<(), DetectError> {
        self.refill(history.iter().map(|(x, flagged)| (x, *flagged)));
        self.refit(last_fit_ms)
    }

    /// Replaces the buffered history by the newest `fit_window` of `rows`.
    fn refill<'a>(&mut self, rows: impl Iterator<Item = (&'a FeatureVector, bool)>) {
        self.history = History::new(self.history.width(), self.fit_window);
        for (x, flagged) in rows {
            self.history.push(x.timestamp_ms, &x.values, flagged);
        }
    }

    /// Vectors in the buffered history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The buffered history, oldest first, with the flagged marker.
    pub fn history(&self) -> impl Iterator<Item = (FeatureVector, bool)> + '_ {
        self.history
            .iter()
            .map(|(timestamp_ms, values, flagged)| (FeatureVector { timestamp_ms, values }, flagged))
    }

    /// Whether the model has been fitted.
    pub fn is_ready(&self) -> bool {
        self.last_fit_ms.is_some()
    }

    /// Which vote rules the entity runs (`anomaly_model_info{rules}`): its shape's
    /// (`multivariate`, `univariate`), or `configured` when `detect.alone_fpr` and
    /// `detect.hold_ratio` pin them; `None` before the first fit.
    pub fn rules(&self) -> Option<&'static str> {
        if !self.is_ready() {
            return None;
        }
        match (self.auto_rules, self.shape) {
            (None, _) => Some("configured"),
            (Some(_), Some(shape)) => Some(shape.as_str()),
            (Some(_), None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gaussian_series;

    #[test]
    fn warms_up_then_scores_and_refits_on_schedule() {
        let cfg = DetectConfig { min_fit_points: 20, fit_window: 50, ..DetectConfig::default() };
        let mut m = ModelSpec::new(&cfg, 2).build();
        let series = gaussian_series(100, 2, 5);
        let mut states = Vec::new();
        for x in series {
            states.push(m.step(x).unwrap().state);
        }
        assert!(states[..20].iter().all(|s| *s == ModelState::Warming));
        assert!(states[20..].iter().all(|s| *s == ModelState::Ready));
        assert_eq!(m.history.len(), 50);
    }

    #[test]
    fn flagged_vectors_are_left_out_of_refits() {
        let cfg = DetectConfig { min_fit_points: 30, ..DetectConfig::default() };
        let mut m = ModelSpec::new(&cfg, 1).build();
        for x in gaussian_series(200, 1, 9) {
            m.step(x).unwrap();
        }
        let spike = FeatureVector { timestamp_ms: 10_000_000, values: vec![50.0] };
        assert!(m.step(spike).unwrap().score.unwrap().anomalous);
        assert!(m.history.last_flagged().unwrap());
    }

    #[test]
    fn vectors_only_held_by_hysteresis_stay_in_refits() {
        let cfg = DetectConfig { min_fit_points: 30, hold_ratio: Some(0.1), ..DetectConfig::default() };
        let mut m = ModelSpec::new(&cfg, 1).build();
        for x in gaussian_series(200, 1, 9) {
            m.step(x).unwrap();
        }
        let spike = FeatureVector { timestamp_ms: 10_000_000, values: vec![50.0] };
        assert!(m.step(spike).unwrap().score.unwrap().voted);
        // A mild value right after: under the threshold, above 0.1 × it, so still flagged.
        let after = FeatureVector { timestamp_ms: 10_060_000, values: vec![2.5] };
        let s = m.step(after).unwrap().score.unwrap();
        assert!(s.anomalous && !s.voted, "confidence {}", s.confidence);
        assert!(!m.history.last_flagged().unwrap());
    }
}
