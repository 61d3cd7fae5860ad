//! Replay of labeled tables through the same stages as `serve`.
//!
//! A table's columns become a profile whose features select metrics named after the columns;
//! every row is fed to the vectorizer as one sample per column, assembled at the row's
//! timestamp and scored by the [`Scorer`] — vectorize → detectors → ensemble → severity, the
//! code `serve` runs every `check_interval`, including its online refits (`fit_every` /
//! `fit_window`, on the row timestamps). `train` and `eval` use it.

use std::sync::Arc;
use std::time::Duration;

use crate::check::EntityScores;
use crate::config::{Config, FeatureConfig, FeatureKind, ProfileConfig};
use crate::dataset::Table;
use crate::detect::{DetectError, FeatureVector};
use crate::ingest::ObserveStats;
use crate::sample::{LABEL_INSTANCE, LABEL_NAME, LabelRef, SampleRef, SelectorError, is_metric_name};
use crate::vectorize::Vectorizer;

use super::Scorer;

/// Name of the profile built from a table's columns.
pub const REPLAY_PROFILE: &str = "replay";

/// A metric name for a column (invalid characters become `_`).
pub fn metric_for(column: &str) -> String {
    let mut m: String =
        column.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !is_metric_name(&m) {
        m.insert(0, '_');
    }
    m
}

/// `cfg` with a profile made of `columns` (gauges, entity label `instance`) and a staleness
/// long enough for any sampling interval.
pub fn replay_config(cfg: &Config, columns: &[String]) -> Config {
    let mut c = cfg.clone();
    let features = columns
        .iter()
        .map(|col| FeatureConfig {
            name: col.clone(),
            unit: String::new(),
            series: vec![metric_for(col)],
            per: None,
            kind: FeatureKind::Gauge,
            aggregation: Default::default(),
            merge_series: false,
            min: None,
            max: None,
            scale: 1.0,
            offset: 0.0,
        })
        .collect();
    c.vectorize.profiles.insert(
        REPLAY_PROFILE.into(),
        ProfileConfig { entity_labels: vec![LABEL_INSTANCE.into()], features },
    );
    c.vectorize.profile = REPLAY_PROFILE.into();
    c.vectorize.entity_labels = None;
    c.vectorize.staleness = c.vectorize.staleness.max(Duration::from_secs(30 * 86_400));
    c
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The columns do not make a valid profile.
    #[error(transparent)]
    Profile(#[from] SelectorError),
    /// A model could not be loaded.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
}

/// One entity replayed row by row.
pub struct Replay {
    vectorizer: Vectorizer,
    scorer: Scorer,
    metrics: Vec<String>,
    instance: String,
    entity: u64,
}

impl Replay {
    /// A replay of entity `instance` with the given columns under `cfg`'s detectors.
    pub fn new(cfg: &Config, instance: &str, columns: &[String]) -> Result<Self, ReplayError> {
        let c = replay_config(cfg, columns);
        let vectorizer = Vectorizer::new(&c.vectorize)?;
        let scorer = Scorer::new(&c, vectorizer.profile())?;
        let metrics: Vec<String> = columns.iter().map(|c| metric_for(c)).collect();
        let entity = vectorizer.entity_id(&[LabelRef { name: LABEL_INSTANCE, value: instance }]);
        Ok(Self { vectorizer, scorer, metrics, instance: instance.to_string(), entity })
    }

    /// Fits the entity's models on the label-0 rows of `table[range]`, as `train` does.
    pub fn fit(&mut self, table: &Table, range: std::ops::Range<usize>) -> Result<usize, DetectError> {
        let history: Vec<FeatureVector> = range
            .filter(|&i| table.labels[i] == 0)
            .map(|i| FeatureVector { timestamp_ms: table.timestamps[i], values: table.rows[i].clone() })
            .collect();
        let n = history.len();
        self.scorer.model(self.entity).fit_on(&history)?;
        Ok(n)
    }

    /// Names of the detectors in the ensemble, in order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.scorer.detector_names()
    }

    /// Feeds one row and runs one check at its timestamp; returns the entity's result.
    pub fn step(&mut self, timestamp_ms: i64, values: &[f64]) -> Option<EntityScores> {
        let mut stats = ObserveStats::default();
        for (metric, &value) in self.metrics.iter().zip(values) {
            let labels = [
                LabelRef { name: LABEL_NAME, value: metric },
                LabelRef { name: LABEL_INSTANCE, value: &self.instance },
            ];
            self.vectorizer.observe(&labels, &[SampleRef { value, timestamp_ms }], &mut stats);
        }
        let assembled = self.vectorizer.assemble(timestamp_ms);
        let (check, _, _) = self.scorer.check(assembled, timestamp_ms, None);
        check.entities.into_iter().next().map(Arc::unwrap_or_clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn a_replayed_spike_is_flagged_through_the_serve_path() {
        let cols = vec!["cpu".to_string(), "lat-ms".to_string()];
        let mut cfg = Config::default();
        cfg.detect.min_fit_points = 20;
        let mut r = Replay::new(&cfg, "host-1", &cols).unwrap();
        let mut rng = Rng::new(3);
        let mut flagged = Vec::new();
        for i in 0..300 {
            let spike = if i == 250 { 15.0 } else { 0.0 };
            let e = r.step(1_700_000_000_000 + i * 60_000, &[rng.normal() + spike, rng.normal()]);
            let e = e.unwrap();
            if e.score.as_ref().is_some_and(|s| s.anomalous) {
                flagged.push(i);
            }
        }
        assert!(flagged.contains(&250), "{flagged:?}");
        assert!(flagged.len() <= 3, "{flagged:?}");
        assert_eq!(metric_for("lat-ms"), "lat_ms");
        assert_eq!(metric_for("1x"), "_1x");
    }
}
