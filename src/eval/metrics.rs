//! Accuracy arithmetic on one labeled series: point, point-adjusted and event metrics,
//! detection delay and the area under the precision–recall curve.
//!
//! An *event* is a maximal run of label-1 points. Point-adjust (Xu et al. 2018) counts every
//! point of an event as detected once any of its points is flagged; it flatters detectors on
//! long events and is reported beside, never instead of, plain point metrics. Values that are
//! undefined (precision with no flagged point, recall with no labeled point) are `None`.

use serde::Serialize;

/// Metrics of one detector on one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN).
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// F1 after point-adjust.
    pub pa_f1: Option<f64>,
    /// Events with at least one flagged point / events.
    pub event_recall: Option<f64>,
    /// FP / (FP + TN): flagged share of normal points.
    pub fpr: Option<f64>,
    /// Mean points from an event's start to its first flagged point (detected events only).
    pub delay_mean_points: Option<f64>,
    /// Median of the same.
    pub delay_median_points: Option<f64>,
    /// Mean delay in seconds.
    pub delay_mean_seconds: Option<f64>,
    /// Median delay in seconds.
    pub delay_median_seconds: Option<f64>,
    /// Average precision over all score thresholds.
    pub auc_pr: Option<f64>,
    /// Labeled events.
    pub events: usize,
    /// Events detected.
    pub events_detected: usize,
    /// True positives (points).
    pub tp: usize,
    /// False positives (points).
    pub fp: usize,
    /// False negatives (points).
    pub fn_: usize,
    /// True negatives (points).
    pub tn: usize,
}

/// Label-1 runs as `[start, end)` index ranges.
pub fn events(labels: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l == 1, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len()));
    }
    out
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn f1(p: Option<f64>, r: Option<f64>) -> Option<f64> {
    match (p, r) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Computes every metric. `flags` are the detector's decisions, `scores` its continuous
/// scores (for AUC-PR), `timestamps` in milliseconds (for delays in seconds).
pub fn evaluate(labels: &[u8], flags: &[bool], scores: &[f64], timestamps: &[i64]) -> Metrics {
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    for (&l, &f) in labels.iter().zip(flags) {
        match (l == 1, f) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let evs = events(labels);
    let (mut detected, mut pa_tp) = (0, tp);
    let (mut delay_pts, mut delay_s) = (Vec::new(), Vec::new());
    for &(s, e) in &evs {
        if let Some(first) = (s..e).find(|&i| flags[i]) {
            detected += 1;
            pa_tp += (s..e).filter(|&i| !flags[i]).count();
            delay_pts.push((first - s) as f64);
            delay_s.push((timestamps[first] - timestamps[s]) as f64 / 1000.0);
        }
    }
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let pa_fn = tp + fn_ - pa_tp;
    let pa_p = ratio(pa_tp, pa_tp + fp);
    let pa_r = ratio(pa_tp, pa_tp + pa_fn);
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Metrics {
        precision,
        recall,
        f1: f1(precision, recall),
        pa_f1: f1(pa_p, pa_r),
        event_recall: ratio(detected, evs.len()),
        fpr: ratio(fp, fp + tn),
        delay_mean_points: mean(&delay_pts),
        delay_median_points: median(&mut delay_pts),
        delay_mean_seconds: mean(&delay_s),
        delay_median_seconds: median(&mut delay_s),
        auc_pr: average_precision(labels, scores),
        events: evs.len(),
        events_detected: detected,
        tp,
        fp,
        fn_,
        tn,
    }
}

/// Average precision: Σ over distinct score thresholds (descending) of ΔRecall × Precision.
pub fn average_precision(labels: &[u8], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l == 1).count();
    if positives == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..labels.len()).collect();
    let key = |i: usize| if scores[i].is_nan() { f64::NEG_INFINITY } else { scores[i] };
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = key(idx[i]);
        while i < idx.len() && key(idx[i]) == s {
            if labels[idx[i]] == 1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
    }
    Some(ap)
}

/// Precision–recall points over distinct thresholds, for plotting: `(recall, precision)`.
pub fn pr_curve(labels: &[u8], scores: &[f64]) -> Vec<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l == 1).count().max(1);
    let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| scores[i].is_finite()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] == 1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        out.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_fixture() {
        // Three events: [2,5) detected at its 2nd point, [8,10) missed, [12,14) detected at once.
        // Flags: 3, 4 (TP), 6 (FP), 12 (TP), 15 (FP).
        let labels = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0];
        let flagged = [3, 4, 6, 12, 15];
        let flags: Vec<bool> = (0..16).map(|i| flagged.contains(&i)).collect();
        let ts: Vec<i64> = (0..16).map(|i| i * 60_000).collect();
        let scores: Vec<f64> = flags.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect();
        let m = evaluate(&labels, &flags, &scores, &ts);
        assert_eq!((m.tp, m.fp, m.fn_, m.tn), (3, 2, 4, 7));
        assert_eq!(m.precision, Some(0.6));
        assert_eq!(m.recall, Some(3.0 / 7.0));
        assert!((m.f1.unwrap() - 0.5).abs() < 1e-12);
        // Point-adjust: events 1 and 3 fully detected → TP 5, FN 2, FP 2.
        let (pp, pr) = (5.0 / 7.0, 5.0 / 7.0);
        assert!((m.pa_f1.unwrap() - 2.0 * pp * pr / (pp + pr)).abs() < 1e-12);
        assert_eq!(m.events, 3);
        assert_eq!(m.events_detected, 2);
        assert_eq!(m.event_recall, Some(2.0 / 3.0));
        assert_eq!(m.fpr, Some(2.0 / 9.0));
        // Delays: 1 point (60 s) and 0 points.
        assert_eq!(m.delay_mean_points, Some(0.5));
        assert_eq!(m.delay_median_points, Some(0.5));
        assert_eq!(m.delay_mean_seconds, Some(30.0));
        // Scores are 1 on the 5 flagged points: precision 3/5 at recall 3/7, then all points.
        let ap = 3.0 / 7.0 * 0.6 + (1.0 - 3.0 / 7.0) * 7.0 / 16.0;
        assert!((m.auc_pr.unwrap() - ap).abs() < 1e-12, "{:?} vs {ap}", m.auc_pr);
    }

    #[test]
    fn perfect_and_empty_cases() {
        let labels = [0, 1, 1, 0];
        let flags = [false, true, true, false];
        let m = evaluate(&labels, &flags, &[0.0, 0.9, 0.8, 0.1], &[0, 1, 2, 3]);
        assert_eq!(m.f1, Some(1.0));
        assert_eq!(m.auc_pr, Some(1.0));
        assert_eq!(m.fpr, Some(0.0));
        let none = evaluate(&[0, 0], &[false, false], &[0.0, 0.0], &[0, 1]);
        assert_eq!((none.precision, none.recall, none.f1, none.event_recall), (None, None, None, None));
        assert_eq!(none.fpr, Some(0.0));
        assert_eq!(events(&[1, 1, 0, 1]), [(0, 2), (3, 4)]);
        assert_eq!(pr_curve(&[1, 0], &[0.9, 0.1]), [(1.0, 1.0), (1.0, 0.5)]);
    }
}
