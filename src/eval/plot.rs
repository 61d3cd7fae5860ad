//! SVG plots per dataset: score timeline with labeled windows shaded and the threshold line,
//! per-feature contributions around detected events, and precision–recall curves.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

use crate::export::ENSEMBLE;

use super::metrics::{events, pr_curve};
use super::{DatasetResult, EvalError};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const MAX_POINTS: usize = 4000;
static REGISTER: Once = Once::new();

/// File-name stem of a dataset's plots (`asd/omi-1` → `asd__omi-1`).
pub fn file_stem(name: &str) -> String {
    name.replace(['/', '\\'], "__")
}

fn err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Write { file: file.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Writes `<stem>.timeline.svg`, `<stem>.contributions.svg` and `<stem>.pr.svg` into `out`.
pub fn write_plots(r: &DatasetResult, threshold: f64, out: &Path) -> Result<Vec<PathBuf>, EvalError> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let stem = file_stem(&r.name);
    let files = vec![
        out.join(format!("{stem}.timeline.svg")),
        out.join(format!("{stem}.contributions.svg")),
        out.join(format!("{stem}.pr.svg")),
    ];
    timeline(r, threshold, &files[0]).map_err(|e| err(&files[0], e))?;
    contributions(r, &files[1]).map_err(|e| err(&files[1], e))?;
    pr(r, &files[2]).map_err(|e| err(&files[2], e))?;
    Ok(files)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The x-axis label of point `x` of an axis over the points `shown`: its time (UTC), to the
/// minute, or the date only where the axis spans more than three days.
fn time_label(timestamps: &[i64], shown: std::ops::Range<usize>, x: f64) -> String {
    let at = |i: usize| timestamps.get(i.min(timestamps.len().saturating_sub(1))).copied();
    let Some(ts) = at(x.max(0.0) as usize) else { return String::new() };
    let span = at(shown.end.saturating_sub(1)).unwrap_or(ts) - at(shown.start).unwrap_or(ts);
    let text = crate::rfc3339::format(ts); // 2026-01-02T03:04:05Z
    if span > 3 * 86_400_000 { text[..10].to_string() } else { text[5..16].replace('T', " ") }
}

/// Bucketed maxima so long series stay readable and small.
fn downsample(v: &[f64]) -> Vec<(f64, f64)> {
    let step = v.len().div_ceil(MAX_POINTS).max(1);
    v.chunks(step)
        .enumerate()
        .map(|(i, c)| {
            let m = c.iter().copied().filter(|x| x.is_finite()).fold(f64::NAN, f64::max);
            ((i * step) as f64, if m.is_nan() { 0.0 } else { m })
        })
        .collect()
}

fn timeline(r: &DatasetResult, threshold: f64, file: &Path) -> DrawResult {
    let t = &r.trace;
    let n = t.labels.len().max(1) as f64;
    let root = SVGBackend::new(file, (1400, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} — ensemble score (labeled anomalies shaded)", r.name), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..n, 0f64..1.05f64)?;
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc("score")
        .x_label_formatter(&|x| time_label(&t.timestamps, 0..t.timestamps.len(), *x))
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(events(&t.labels).into_iter().map(|(s, e)| {
        Rectangle::new([(s as f64, 0.0), (e as f64, 1.05)], RGBColor(255, 160, 160).mix(0.45).filled())
    }))?;
    for (i, (name, scores)) in t.scores.iter().filter(|(k, _)| k.as_str() != ENSEMBLE).enumerate() {
        let color = PALETTE[(i + 1) % PALETTE.len()].mix(0.45);
        chart
            .draw_series(LineSeries::new(downsample(scores), color))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if let Some(scores) = t.scores.get(ENSEMBLE) {
        chart
            .draw_series(LineSeries::new(downsample(scores), PALETTE[0].stroke_width(2)))?
            .label(ENSEMBLE)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PALETTE[0].stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new(vec![(0.0, threshold), (n, threshold)], RED.stroke_width(1)))?
        .label(format!("threshold {threshold:.2}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn contributions(r: &DatasetResult, file: &Path) -> DrawResult {
    let t = &r.trace;
    // Up to three detected events, each shown from 20 points before to 20 after.
    let detected: Vec<(usize, usize)> =
        events(&t.labels).into_iter().filter(|&(s, e)| (s..e).any(|i| t.flags[i])).take(3).collect();
    let root = SVGBackend::new(file, (1400, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    // With one feature every anomaly is all its own: a flat line at 1 says nothing.
    let note = match (detected.is_empty(), t.features.as_slice()) {
        (true, _) => Some(format!("{}: no detected event", r.name)),
        (false, [only]) => {
            Some(format!("{}: one feature ({only}), every detected event is attributed to it", r.name))
        }
        _ => None,
    };
    if let Some(note) = note {
        root.draw(&Text::new(note, (20, 20), ("sans-serif", 18)))?;
        root.present()?;
        return Ok(());
    }
    let panels = root.split_evenly((1, detected.len()));
    for (panel, &(s, e)) in panels.iter().zip(&detected) {
        let (lo, hi) = (s.saturating_sub(20), (e + 20).min(t.labels.len()));
        let nf = t.features.len();
        let mut mass = vec![0.0; nf];
        for row in &t.contributions[lo..hi] {
            for (m, c) in mass.iter_mut().zip(row) {
                *m += c;
            }
        }
        let mut top: Vec<usize> = (0..nf).collect();
        top.sort_by(|&a, &b| mass[b].total_cmp(&mass[a]));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("event at {}: top features", time_label(&t.timestamps, s..e, s as f64)),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(lo as f64..hi as f64, 0f64..1.05f64)?;
        chart
            .configure_mesh()
            .x_desc("time (UTC)")
            .y_desc("share")
            .x_labels(4)
            .x_label_formatter(&|x| time_label(&t.timestamps, lo..hi, *x))
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(s as f64, 0.0), (e as f64, 1.05)],
            RGBColor(255, 160, 160).mix(0.35).filled(),
        )))?;
        for (k, &f) in top.iter().take(4).enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts: Vec<(f64, f64)> = (lo..hi).map(|i| (i as f64, t.contributions[i][f])).collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(t.features[f].clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

fn pr(r: &DatasetResult, file: &Path) -> DrawResult {
    let t = &r.trace;
    let root = SVGBackend::new(file, (600, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} — precision–recall", r.name), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..1.0f64, 0f64..1.05f64)?;
    chart.configure_mesh().x_desc("recall").y_desc("precision").draw()?;
    for (i, (name, scores)) in t.scores.iter().enumerate() {
        let s: Vec<f64> = scores.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect();
        let color = PALETTE[i % PALETTE.len()];
        let auc = r.detectors.get(name).and_then(|m| m.auc_pr).unwrap_or(0.0);
        chart
            .draw_series(LineSeries::new(pr_curve(&t.labels, &s), color.stroke_width(2)))?
            .label(format!("{name} (AP {auc:.3})"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
