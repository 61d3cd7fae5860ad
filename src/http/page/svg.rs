//! Inline SVG: sparklines of scores and feature timelines with their expected band.

use std::fmt::Write as _;

/// Polylines through the finite points of `ys` (a NaN breaks the line), scaled from
/// `[lo, hi]` to a `w`×`h` box; every coordinate stays inside the box.
fn polylines(ys: &[f32], lo: f32, hi: f32, w: f32, h: f32, class: &str, out: &mut String) {
    let n = ys.len().max(2) - 1;
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut seg = String::new();
    let flush = |seg: &mut String, out: &mut String| {
        if !seg.is_empty() {
            let _ = write!(out, r#"<polyline class="{class}" points="{}"/>"#, seg.trim_end());
            seg.clear();
        }
    };
    for (i, y) in ys.iter().enumerate() {
        if !y.is_finite() {
            flush(&mut seg, out);
            continue;
        }
        let x = w * i as f32 / n as f32;
        let v = ((y - lo) / span).clamp(0.0, 1.0);
        let _ = write!(seg, "{:.1},{:.1} ", x, h - 1.0 - v * (h - 2.0));
    }
    flush(&mut seg, out);
}

/// A 120×24 sparkline of scores in [0, 1].
pub fn sparkline(ys: &[f32]) -> String {
    let (w, h) = (120.0, 24.0);
    let mut s = format!(
        r#"<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect class="frame" x="0" y="0" width="{w}" height="{h}"/>"#
    );
    polylines(ys, 0.0, 1.0, w, h, "line", &mut s);
    s.push_str("</svg>");
    s
}

/// A 480×90 timeline of one feature: the expected band (lower..upper) shaded, expected
/// dashed, observed solid; `points` are `[observed, expected, lower, upper]`.
pub fn timeline(points: &[[f32; 4]]) -> String {
    let (w, h) = (480.0f32, 90.0f32);
    let finite = points.iter().flatten().copied().filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut s = format!(r#"<svg class="timeline" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#);
    // The band: upper edge left to right, lower edge back, per run of finite bands.
    let n = points.len().max(2) - 1;
    let span = hi - lo;
    let y = |v: f32| h - 1.0 - ((v - lo) / span).clamp(0.0, 1.0) * (h - 2.0);
    let mut run: Vec<(f32, f32, f32)> = Vec::new();
    let flush = |run: &mut Vec<(f32, f32, f32)>, s: &mut String| {
        if run.len() >= 2 {
            let mut pts = String::new();
            for (x, _, up) in run.iter() {
                let _ = write!(pts, "{x:.1},{:.1} ", y(*up));
            }
            for (x, low, _) in run.iter().rev() {
                let _ = write!(pts, "{x:.1},{:.1} ", y(*low));
            }
            let _ = write!(s, r#"<polygon class="band" points="{}"/>"#, pts.trim_end());
        }
        run.clear();
    };
    for (i, p) in points.iter().enumerate() {
        if p[2].is_finite() && p[3].is_finite() {
            run.push((w * i as f32 / n as f32, p[2], p[3]));
        } else {
            flush(&mut run, &mut s);
        }
    }
    flush(&mut run, &mut s);
    let col = |k: usize| points.iter().map(|p| p[k]).collect::<Vec<f32>>();
    polylines(&col(1), lo, hi, w, h, "expected", &mut s);
    polylines(&col(0), lo, hi, w, h, "observed", &mut s);
    let _ = write!(
        s,
        r#"<text x="2" y="10">{}</text><text x="2" y="{:.0}">{}</text></svg>"#,
        short(hi),
        h - 3.0,
        short(lo)
    );
    s
}

/// A compact number for axis labels.
pub fn short(v: f32) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
