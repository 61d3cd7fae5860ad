//! Ensemble: weighted vote of calibrated detector scores, threshold and severity.

use super::{DetectError, Detector, Expected, FeatureVector, Score, normalise};

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
    /// Its calibrated score.
    pub score: Score,
}

/// The ensemble's verdict on one vector.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleScore {
    /// Weighted vote of calibrated scores, in [0, 1].
    pub confidence: f64,
    /// `confidence >= threshold`.
    pub anomalous: bool,
    /// Severity band of the confidence (None when not anomalous).
    pub severity: Severity,
    /// Per-feature contributions, weighted by each detector's score.
    pub contributions: Vec<f64>,
    /// Expected value and band per feature from the first detector that models them.
    pub expected: Vec<Expected>,
    /// Each member's score.
    pub detectors: Vec<DetectorScore>,
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
}

impl Ensemble {
    /// An ensemble with the given members and bands.
    pub fn new(members: Vec<Member>, threshold: f64, warning: f64, critical: f64) -> Self {
        Self { members, threshold, warning, critical }
    }

    /// Severity of a confidence value.
    pub fn severity(&self, confidence: f64) -> Severity {
        severity(confidence, self.threshold, self.warning, self.critical)
    }

    /// Fits every member on the same history.
    pub fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        self.members.iter_mut().try_for_each(|m| m.detector.fit(history))
    }

    /// Scores with every member and combines.
    pub fn score(&self, x: &FeatureVector) -> Result<EnsembleScore, DetectError> {
        let nf = x.values.len();
        let mut detectors = Vec::with_capacity(self.members.len());
        let (mut num, mut den) = (0.0, 0.0);
        let mut contributions = vec![0.0; nf];
        let mut expected = Vec::new();
        for m in &self.members {
            let s = m.detector.score(x)?;
            num += m.weight * s.value;
            den += m.weight;
            for (c, sc) in contributions.iter_mut().zip(&s.contributions) {
                *c += m.weight * s.value.max(1e-6) * sc;
            }
            if expected.is_empty() && !s.expected.is_empty() {
                expected = s.expected.clone();
            }
            detectors.push(DetectorScore { detector: m.detector.name(), score: s });
        }
        normalise(&mut contributions);
        let confidence = if den > 0.0 { (num / den).clamp(0.0, 1.0) } else { 0.0 };
        let severity = self.severity(confidence);
        Ok(EnsembleScore {
            confidence,
            anomalous: severity != Severity::None,
            severity,
            contributions,
            expected,
            detectors,
        })
    }

    /// Online update of every member.
    pub fn update(&mut self, x: &FeatureVector) {
        self.members.iter_mut().for_each(|m| m.detector.update(x));
    }

    /// The batched member's network input for `values` (see [`Detector::batch_input`]).
    pub fn batch_input(&self, values: &[f64], input: &mut Vec<f32>) -> bool {
        self.members.iter().any(|m| m.detector.batch_input(values, input))
    }

    /// Hands the network's output to the batched member (see [`Detector::batch_output`]).
    pub fn batch_output(&mut self, timestamp_ms: i64, input: &[f32], output: &[f32]) {
        for m in &mut self.members {
            m.detector.batch_output(timestamp_ms, input, output);
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
        let e = Ensemble::new(
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
