//! `report.json` and `report.md`.
//!
//! `report.json` shape:
//! `{"config": {...}, "datasets": [{"name", "points", "events", "fit_points", "detectors":
//! {"ensemble": {precision, recall, f1, pa_f1, event_recall, fpr, delay_mean_points,
//! delay_median_points, delay_mean_seconds, delay_median_seconds, auc_pr, events,
//! events_detected, tp, fp, fn_, tn}, "zscore": {...}, ...}}], "groups": {"asd": {detector:
//! means}}, "totals": {detector: means}}`. Means are over datasets where a metric is defined
//! (`null` where it is undefined, e.g. recall on a series without events).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;

use super::{DatasetResult, EvalError};

/// Mean metrics of one detector over several datasets.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Means {
    /// Datasets averaged.
    pub datasets: usize,
    /// Mean precision.
    pub precision: Option<f64>,
    /// Mean recall.
    pub recall: Option<f64>,
    /// Mean F1.
    pub f1: Option<f64>,
    /// Mean point-adjusted F1.
    pub pa_f1: Option<f64>,
    /// Mean event recall.
    pub event_recall: Option<f64>,
    /// Mean false-positive rate.
    pub fpr: Option<f64>,
    /// Mean of the per-dataset mean delays (points).
    pub delay_mean_points: Option<f64>,
    /// Mean of the per-dataset median delays (points).
    pub delay_median_points: Option<f64>,
    /// Mean of the per-dataset mean delays (seconds).
    pub delay_mean_seconds: Option<f64>,
    /// Mean AUC-PR.
    pub auc_pr: Option<f64>,
    /// Events over all datasets.
    pub events: usize,
    /// Events detected over all datasets.
    pub events_detected: usize,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Settings that shape the numbers.
    pub config: serde_json::Value,
    /// Per dataset.
    pub datasets: Vec<DatasetResult>,
    /// Means per first path component (e.g. `asd`, `smd`, `nab`).
    pub groups: BTreeMap<String, BTreeMap<String, Means>>,
    /// Means over every dataset.
    pub totals: BTreeMap<String, Means>,
    /// Datasets that could not be evaluated: name and error.
    pub skipped: Vec<Skipped>,
}

/// A dataset left out of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Dataset name.
    pub name: String,
    /// Why (file, line and column for bad input).
    pub error: String,
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Means per detector over `results`.
pub fn means(results: &[&DatasetResult]) -> BTreeMap<String, Means> {
    let mut names: Vec<&String> = results.iter().flat_map(|r| r.detectors.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|d| {
            let ms: Vec<_> = results.iter().filter_map(|r| r.detectors.get(d)).collect();
            let m = Means {
                datasets: ms.len(),
                precision: mean(ms.iter().map(|m| m.precision)),
                recall: mean(ms.iter().map(|m| m.recall)),
                f1: mean(ms.iter().map(|m| m.f1)),
                pa_f1: mean(ms.iter().map(|m| m.pa_f1)),
                event_recall: mean(ms.iter().map(|m| m.event_recall)),
                fpr: mean(ms.iter().map(|m| m.fpr)),
                delay_mean_points: mean(ms.iter().map(|m| m.delay_mean_points)),
                delay_median_points: mean(ms.iter().map(|m| m.delay_median_points)),
                delay_mean_seconds: mean(ms.iter().map(|m| m.delay_mean_seconds)),
                auc_pr: mean(ms.iter().map(|m| m.auc_pr)),
                events: ms.iter().map(|m| m.events).sum(),
                events_detected: ms.iter().map(|m| m.events_detected).sum(),
            };
            (d.clone(), m)
        })
        .collect()
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

/// Builds the report and writes `report.json` and `report.md` into `out`.
pub fn write_report(
    results: &[DatasetResult],
    skipped: &[(String, String)],
    cfg: &Config,
    out: &Path,
) -> Result<Report, EvalError> {
    let mut groups: BTreeMap<String, Vec<&DatasetResult>> = BTreeMap::new();
    for r in results {
        let g = r.name.split('/').next().unwrap_or(&r.name).to_string();
        groups.entry(g).or_default().push(r);
    }
    let all: Vec<&DatasetResult> = results.iter().collect();
    let report = Report {
        config: serde_json::json!({
            "detectors": cfg.detect.enabled(),
            "threshold": cfg.detect.effective_threshold(),
            "target_fpr": cfg.detect.target_fpr,
            "calibration_decades": cfg.detect.calibration_decades,
            "fit_every": humantime::format_duration(cfg.detect.fit_every).to_string(),
            "fit_window": cfg.detect.fit_window,
            "min_fit_points": cfg.detect.min_fit_points,
        }),
        datasets: results.to_vec(),
        groups: groups.iter().map(|(g, rs)| (g.clone(), means(rs))).collect(),
        totals: means(&all),
        skipped: skipped
            .iter()
            .map(|(name, error)| Skipped { name: name.clone(), error: error.clone() })
            .collect(),
    };
    let write = |name: &str, text: String| {
        let file = out.join(name);
        std::fs::write(&file, text).map_err(|source| EvalError::Write { file, source })
    };
    write("report.json", serde_json::to_string_pretty(&report).unwrap_or_default())?;
    write("report.md", markdown(&report))?;
    Ok(report)
}

/// Seconds as people read them (`4m 30s`); `–` when unknown.
fn duration(seconds: Option<f64>) -> String {
    seconds.filter(|s| s.is_finite() && *s >= 0.0).map_or("–".into(), |s| {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    })
}

fn means_table(md: &mut String, m: &BTreeMap<String, Means>) {
    md.push_str("| detector | datasets | F1 | PA-F1 | precision | recall | event recall | FPR | delay (pts, mean) | delay (mean) | AUC-PR |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (d, x) in m {
        let _ = writeln!(
            md,
            "| {d} | {} | {} | {} | {} | {} | {} ({}/{}) | {} | {} | {} | {} |",
            x.datasets,
            fmt(x.f1),
            fmt(x.pa_f1),
            fmt(x.precision),
            fmt(x.recall),
            fmt(x.event_recall),
            x.events_detected,
            x.events,
            fmt(x.fpr),
            fmt(x.delay_mean_points),
            duration(x.delay_mean_seconds),
            fmt(x.auc_pr)
        );
    }
}

fn markdown(r: &Report) -> String {
    let mut md = String::from("# dwcp-anomaly eval report\n\n");
    let detectors = r.config["detectors"]
        .as_array()
        .map_or(String::new(), |d| d.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "));
    let target =
        r.config["target_fpr"].as_f64().map_or("none (fixed threshold)".to_string(), |f| f.to_string());
    let _ = writeln!(
        md,
        "Detectors: {detectors}. Threshold {:.3}, target_fpr {target}.\n\nSettings: `{}`\n",
        r.config["threshold"].as_f64().unwrap_or(f64::NAN),
        r.config
    );
    md.push_str("## Totals (means over datasets)\n\n");
    means_table(&mut md, &r.totals);
    for (g, m) in &r.groups {
        let _ = writeln!(md, "\n## {g}\n");
        means_table(&mut md, m);
    }
    if !r.skipped.is_empty() {
        md.push_str("\n## Skipped\n\n");
        for s in &r.skipped {
            let _ = writeln!(md, "- {}: {}", s.name, s.error);
        }
    }
    md.push_str("\n## Datasets\n");
    for d in &r.datasets {
        let _ = writeln!(
            md,
            "\n### {}\n\n{} points scored, {} events, fitted on {} points. Plots: [timeline]({stem}.timeline.svg) · \
             [contributions]({stem}.contributions.svg) · [precision–recall]({stem}.pr.svg)\n",
            d.name,
            d.points,
            d.events,
            d.fit_points,
            stem = super::plot::file_stem(&d.name)
        );
        md.push_str("| detector | F1 | PA-F1 | precision | recall | event recall | FPR | delay (pts mean / median) | delay (mean) | AUC-PR |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for (name, m) in &d.detectors {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} ({}/{}) | {} | {} / {} | {} | {} |",
                fmt(m.f1),
                fmt(m.pa_f1),
                fmt(m.precision),
                fmt(m.recall),
                fmt(m.event_recall),
                m.events_detected,
                m.events,
                fmt(m.fpr),
                fmt(m.delay_mean_points),
                fmt(m.delay_median_points),
                duration(m.delay_mean_seconds),
                fmt(m.auc_pr)
            );
        }
    }
    md
}
