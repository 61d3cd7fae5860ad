//! `eval`: labeled replay with an accuracy report and plots.
//!
//! Every dataset is replayed through [`crate::pipeline::replay`] — the serve path, online
//! refits included — and every detector of the ensemble is judged at the ensemble threshold,
//! plus the ensemble itself. Results go to `report.json` (machine-readable), `report.md`
//! (tables) and per-dataset SVG plots.

pub mod metrics;
mod plot;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use thiserror::Error;

use crate::config::Config;
use crate::dataset::{self, DatasetError, Source, Table};
use crate::detect::DetectError;
use crate::export::ENSEMBLE;
use crate::pipeline::replay::{Replay, ReplayError};

pub use metrics::Metrics;
pub use report::{Report, write_report};

/// Why an evaluation failed.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Train and test files disagree on columns.
    #[error("{test}: columns {found:?} differ from {train}'s {expected:?}")]
    Columns {
        /// The train file.
        train: PathBuf,
        /// The test file.
        test: PathBuf,
        /// Train columns.
        expected: Vec<String>,
        /// Test columns.
        found: Vec<String>,
    },
    /// Too little data to fit.
    #[error("{dataset}: {source}")]
    Fit {
        /// Dataset name.
        dataset: String,
        /// The cause.
        #[source]
        source: DetectError,
    },
    /// The replay could not start (invalid profile, model not loadable).
    #[error("{0}")]
    Replay(#[from] ReplayError),
    /// Output could not be written.
    #[error("cannot write {file}: {source}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Options of one evaluation run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Share of a lone CSV used for the initial fit (the rest is scored).
    pub fit_fraction: f64,
    /// Write plots.
    pub plots: bool,
    /// Write every dataset's per-point scores (`<dataset>.scores.csv`: label, ensemble flag,
    /// each detector's calibrated score), for offline analysis.
    pub scores: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { fit_fraction: 0.3, plots: true, scores: false }
    }
}

/// The scored part of one dataset, kept for plots.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Timestamps (ms).
    pub timestamps: Vec<i64>,
    /// Labels.
    pub labels: Vec<u8>,
    /// Scores per detector (`ensemble` first), NaN while warming.
    pub scores: BTreeMap<String, Vec<f64>>,
    /// Raw (uncalibrated) scores per detector, NaN while warming.
    pub raw: BTreeMap<String, Vec<f64>>,
    /// Ensemble decisions.
    pub flags: Vec<bool>,
    /// Per-feature contributions of the ensemble at each point.
    pub contributions: Vec<Vec<f64>>,
    /// Feature names.
    pub features: Vec<String>,
}

/// Results of one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetResult {
    /// Dataset name.
    pub name: String,
    /// Scored points.
    pub points: usize,
    /// Labeled events in the scored part.
    pub events: usize,
    /// Points used for the initial fit.
    pub fit_points: usize,
    /// Metrics per detector, `ensemble` included.
    pub detectors: BTreeMap<String, Metrics>,
    /// Scores etc. for plots (not serialised).
    #[serde(skip)]
    pub trace: Trace,
}

/// Replays one dataset.
pub fn evaluate_source(
    cfg: &Config,
    source: &Source,
    opts: &EvalOptions,
    progress: &AtomicUsize,
) -> Result<DatasetResult, EvalError> {
    let (fit, test, fit_range, score_range) = match source {
        Source::Split { train, test, .. } => {
            let (tr, te) = (dataset::read_csv(train)?, dataset::read_csv(test)?);
            if tr.columns != te.columns {
                return Err(EvalError::Columns {
                    train: train.clone(),
                    test: test.clone(),
                    expected: tr.columns,
                    found: te.columns,
                });
            }
            let (nf, nt) = (tr.len(), te.len());
            (Some(tr), te, 0..nf, 0..nt)
        }
        Source::Single { path, .. } => {
            let t = dataset::read_csv(path)?;
            let cut = ((t.len() as f64) * opts.fit_fraction.clamp(0.0, 1.0)) as usize;
            let n = t.len();
            (None, t, 0..cut, cut..n)
        }
    };
    let name = source.name().to_string();
    let fit_table: &Table = fit.as_ref().unwrap_or(&test);
    let mut replay = Replay::new(cfg, &name, &test.columns)?;
    let fit_points = if fit_range.is_empty() {
        0
    } else {
        replay.fit(fit_table, fit_range).map_err(|source| EvalError::Fit { dataset: name.clone(), source })?
    };
    let mut trace = Trace { features: test.columns.clone(), ..Trace::default() };
    let detectors = replay.detector_names();
    for d in std::iter::once(ENSEMBLE).chain(detectors.iter().copied()) {
        trace.scores.insert(d.to_string(), Vec::with_capacity(score_range.len()));
    }
    let threshold = cfg.detect.effective_threshold();
    let mut det_flags: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for i in score_range {
        let e = replay.step(test.timestamps[i], &test.rows[i]);
        let score = e.as_ref().and_then(|e| e.score.as_ref());
        trace.timestamps.push(test.timestamps[i]);
        trace.labels.push(test.labels[i]);
        trace.flags.push(score.is_some_and(|s| s.anomalous));
        trace
            .contributions
            .push(score.map_or_else(|| vec![0.0; test.columns.len()], |s| s.contributions.clone()));
        let ens = score.map_or(f64::NAN, |s| s.confidence);
        if let Some(v) = trace.scores.get_mut(ENSEMBLE) {
            v.push(ens);
        }
        for d in &detectors {
            let member = score.and_then(|s| s.detectors.iter().find(|x| x.detector == *d));
            let v = member.map_or(f64::NAN, |x| x.score.value);
            trace.raw.entry(d.to_string()).or_default().push(member.map_or(f64::NAN, |x| x.score.raw));
            if let Some(s) = trace.scores.get_mut(*d) {
                s.push(v);
            }
            det_flags.entry(d.to_string()).or_default().push(v >= threshold);
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    let mut results = BTreeMap::new();
    for (d, scores) in &trace.scores {
        let flags = if d == ENSEMBLE { trace.flags.clone() } else { det_flags.remove(d).unwrap_or_default() };
        let s: Vec<f64> = scores.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect();
        results.insert(d.clone(), metrics::evaluate(&trace.labels, &flags, &s, &trace.timestamps));
    }
    Ok(DatasetResult {
        name,
        points: trace.labels.len(),
        events: metrics::events(&trace.labels).len(),
        fit_points,
        detectors: results,
        trace,
    })
}

/// Rows that will be scored, for the progress bar.
pub fn count_points(sources: &[Source], fit_fraction: f64) -> usize {
    sources
        .iter()
        .map(|s| {
            let rows =
                |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count().saturating_sub(1));
            match s {
                Source::Split { test, .. } => rows(test),
                Source::Single { path, .. } => {
                    let n = rows(path);
                    n - (n as f64 * fit_fraction) as usize
                }
            }
        })
        .sum()
}

/// Evaluates every source, one per core; results keep the sources' order. A dataset that
/// fails (bad file) does not stop the others.
pub fn evaluate_all(
    cfg: &Config,
    sources: &[Source],
    opts: &EvalOptions,
    progress: &AtomicUsize,
    done: &AtomicUsize,
) -> Vec<Result<DatasetResult, EvalError>> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(sources.len()).max(1);
    let mut slots: Vec<Option<Result<DatasetResult, EvalError>>> = (0..sources.len()).map(|_| None).collect();
    let slots_ref = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sources.len() {
                        break;
                    }
                    let r = evaluate_source(cfg, &sources[i], opts, progress);
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut g) = slots_ref.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(EvalError::Dataset(DatasetError::Empty(PathBuf::new())))))
        .collect()
}

/// Writes the report files and plots into `out`; `skipped` lists datasets that failed.
pub fn write_outputs(
    results: &[DatasetResult],
    skipped: &[(String, String)],
    cfg: &Config,
    out: &Path,
    opts: &EvalOptions,
) -> Result<Report, EvalError> {
    std::fs::create_dir_all(out).map_err(|source| EvalError::Write { file: out.to_path_buf(), source })?;
    let report = write_report(results, skipped, cfg, out)?;
    if opts.plots {
        for r in results {
            plot::write_plots(r, cfg.detect.effective_threshold(), out)?;
        }
    }
    if opts.scores {
        for r in results {
            write_scores(r, out)?;
        }
    }
    Ok(report)
}

/// Writes `<out>/<dataset>.scores.csv`: point index, label, ensemble flag, then one column per
/// detector (`ensemble` first) with its calibrated score, then each detector's raw score as
/// `<detector>_raw` (empty while warming).
fn write_scores(r: &DatasetResult, out: &Path) -> Result<PathBuf, EvalError> {
    use std::fmt::Write as _;
    let file = out.join(format!("{}.scores.csv", plot::file_stem(&r.name)));
    let t = &r.trace;
    let names: Vec<&String> = std::iter::once(ENSEMBLE)
        .filter_map(|e| t.scores.get_key_value(e).map(|(k, _)| k))
        .chain(t.scores.keys().filter(|k| k.as_str() != ENSEMBLE))
        .collect();
    let raw: Vec<(&String, &Vec<f64>)> = t.raw.iter().collect();
    let mut text = String::from("i,label,flag");
    for n in &names {
        let _ = write!(text, ",{n}");
    }
    for (n, _) in &raw {
        let _ = write!(text, ",{n}_raw");
    }
    text.push('\n');
    for i in 0..t.labels.len() {
        let _ = write!(text, "{i},{},{}", t.labels[i], u8::from(t.flags[i]));
        for n in &names {
            let v = t.scores[*n][i];
            if v.is_finite() {
                let _ = write!(text, ",{v:.6}");
            } else {
                text.push(',');
            }
        }
        for (_, v) in &raw {
            let v = v[i];
            if v.is_finite() {
                let _ = write!(text, ",{v:.6}");
            } else {
                text.push(',');
            }
        }
        text.push('\n');
    }
    std::fs::write(&file, text).map_err(|source| EvalError::Write { file: file.clone(), source })?;
    Ok(file)
}
