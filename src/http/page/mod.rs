//! The live page at `/`: server-rendered HTML with inline SVG, no script, no external URL.
//!
//! The overview lists entities by current score (at most [`MAX_ROWS`]) with state, severity
//! and a sparkline of recent ensemble scores, the recent anomalies with their top features
//! (observed vs expected) and, in demo mode, the injected anomalies. `/?entity=…` (the link
//! alerts carry, labels in any order) shows one entity's detector scores and feature
//! timelines. Filters are plain links and a GET form; the page refreshes itself every 5 s.
//! The history comes from [`crate::check::history`], copied under its lock and rendered
//! after, so a page view never holds up the check loop.

mod query;
mod svg;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use axum::http::StatusCode;

use crate::check::history::{PageHistory, SharedHistory};
use crate::check::{CheckScores, EntityScores};
use crate::detect::{ModelState, Severity};
use crate::vectorize::entity_string;

pub use query::PageQuery;

/// Entities listed on the overview.
pub const MAX_ROWS: usize = 200;

/// HTML-escapes `s`.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn time(ms: i64) -> String {
    let t = crate::rfc3339::format(ms);
    t.get(11..19).map_or(t.clone(), str::to_string)
}

fn num(v: f64) -> String {
    svg::short(v as f32)
}

fn labels_text(labels: &[(String, String)]) -> String {
    labels.iter().map(|(k, v)| format!("{k}={}", esc(v))).collect::<Vec<_>>().join(" ")
}

fn entity_link(labels: &[(String, String)]) -> String {
    format!(r#"<a href="/?entity={}">{}</a>"#, url(&entity_string(labels)), labels_text(labels))
}

fn severity_of(e: &EntityScores) -> Severity {
    e.score.as_ref().map_or(Severity::None, |s| s.severity)
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        s => s.as_str(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}\
table{border-collapse:collapse}td,th{padding:3px 9px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:middle}\
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}\
tr.warning td{background:#fff3cd}tr.critical td{background:#f8d7da}tr.info td{background:#e7f1ff}\
.sev{font-weight:600}.sev.critical{color:#a4161a}.sev.warning{color:#8a6100}.sev.info{color:#1c5fb4}\
.state.warming{color:#8a6100}.state.stale{color:#777}.state.ready{color:#2b7a0b}\
.filters a{margin-right:.6em}.filters a.on{font-weight:700;text-decoration:none;color:#222}\
.muted{color:#777}.notice{padding:.6em 1em;background:#f8d7da;display:inline-block}\
svg .frame{fill:#fafafa;stroke:#ddd}svg .line{fill:none;stroke:#1c5fb4;stroke-width:1.5}\
svg .band{fill:#cfe3ff}svg .expected{fill:none;stroke:#5a7fb0;stroke-dasharray:4 3}\
svg .observed{fill:none;stroke:#c0392b;stroke-width:1.5}svg text{font-size:9px;fill:#777}\
svg.timeline{background:#fafafa;border:1px solid #ddd}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// Renders `/` for `q` from the latest check and the page history: 200, or 404 when
/// `?entity=` names no live entity.
pub fn render(check: &CheckScores, history: &SharedHistory, q: &PageQuery) -> (StatusCode, String) {
    match &q.entity {
        Some(entity) => render_entity(check, history, entity),
        None => (StatusCode::OK, render_overview(check, history, q)),
    }
}

/// The overview's entities: filtered, sorted by score (highest first; unscored last, then by
/// labels), at most [`MAX_ROWS`]; also the number that matched the filters.
fn select<'a>(check: &'a CheckScores, q: &PageQuery) -> (Vec<&'a EntityScores>, usize) {
    if q.profile.as_deref().is_some_and(|p| p != &*check.profile) {
        return (Vec::new(), 0);
    }
    let mut rows: Vec<&EntityScores> = check
        .entities
        .iter()
        .map(|e| &**e)
        .filter(|e| q.severity.is_none_or(|s| severity_of(e) >= s))
        .collect();
    let matched = rows.len();
    let conf = |e: &EntityScores| e.score.as_ref().map_or(-1.0, |s| s.confidence);
    let key = |e: &&EntityScores| (std::cmp::Reverse(OrdF64(conf(e))), e.labels.clone());
    if rows.len() > MAX_ROWS {
        rows.select_nth_unstable_by_key(MAX_ROWS - 1, key);
        rows.truncate(MAX_ROWS);
    }
    rows.sort_by_key(key);
    (rows, matched)
}

/// An f64 ordered by `total_cmp`, for sort keys.
struct OrdF64(f64);
impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn filter_links(check: &CheckScores, q: &PageQuery) -> String {
    let profile = q.profile.as_deref().map_or(String::new(), |p| format!("&profile={}", url(p)));
    let mut s = String::from("<p class=\"filters\">Severity: ");
    for (name, sev) in [
        ("all", None),
        ("info+", Some(Severity::Info)),
        ("warning+", Some(Severity::Warning)),
        ("critical", Some(Severity::Critical)),
    ] {
        let href = match sev {
            None => format!("/?{}", profile.trim_start_matches('&')),
            Some(s) => format!("/?severity={}{profile}", s.as_str()),
        };
        let on = if q.severity == sev { " class=\"on\"" } else { "" };
        let _ = write!(s, r#"<a{on} href="{}">{name}</a>"#, esc(&href));
    }
    let sev_field = q.severity.map_or(String::new(), |s| {
        format!(r#"<input type="hidden" name="severity" value="{}">"#, s.as_str())
    });
    let _ = write!(
        s,
        r#" · <form method="get" action="/" style="display:inline">Profile: <input name="profile" size="10" value="{}" placeholder="{}">{sev_field}<button>filter</button></form></p>"#,
        esc(q.profile.as_deref().unwrap_or("")),
        esc(&check.profile)
    );
    s
}

fn render_overview(check: &CheckScores, history: &SharedHistory, q: &PageQuery) -> String {
    let (rows, matched) = select(check, q);
    let wanted: Vec<&[(String, String)]> = rows.iter().map(|e| &*e.labels).collect();
    let hist = history.lock().snapshot(&wanted);
    let count = |st: ModelState| check.entities.iter().filter(|e| e.state == st).count();
    let anomalous = check.entities.iter().filter(|e| e.score.as_ref().is_some_and(|s| s.anomalous)).count();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>dwcp-anomaly</h1><p>Profile <b>{}</b> · {} entities ({} ready, {} warming, {} stale) · \
<b>{anomalous} anomalous</b> · last check {} · <a href=\"/metrics\">/metrics</a> · \
<a href=\"/api/v1/status\">status JSON</a></p>",
        esc(&check.profile),
        check.entities.len(),
        count(ModelState::Ready),
        count(ModelState::Warming),
        count(ModelState::Stale),
        if check.timestamp_ms > 0 { time(check.timestamp_ms) } else { "none yet".into() },
    );
    b.push_str(&filter_links(check, q));
    if let Some(p) = q.profile.as_deref().filter(|p| *p != &*check.profile) {
        let _ = write!(
            b,
            "<p class=\"notice\">No entities of profile <b>{}</b>: this instance runs profile <b>{}</b>.</p>",
            esc(p),
            esc(&check.profile)
        );
    }
    b.push_str("<h2>Entities</h2>");
    if rows.is_empty() {
        b.push_str("<p class=\"muted\">No entity matches.</p>");
    } else {
        if matched > rows.len() {
            let _ = write!(b, "<p class=\"muted\">Showing the top {} of {matched} by score.</p>", rows.len());
        }
        b.push_str(
            "<table><tr><th>entity</th><th>state</th><th>severity</th><th>confidence</th>\
<th>recent scores</th><th>top features</th></tr>",
        );
        for e in &rows {
            entity_row(&mut b, check, &hist, e);
        }
        b.push_str("</table>");
    }
    anomalies(&mut b, &hist);
    injections(&mut b, &hist, check.timestamp_ms);
    page("dwcp-anomaly", &b)
}

fn entity_row(b: &mut String, check: &CheckScores, hist: &PageHistory, e: &EntityScores) {
    let sev = severity_name(severity_of(e));
    let (conf, top) = match &e.score {
        Some(s) => {
            let top = s
                .ranked_features()
                .into_iter()
                .take(3)
                .filter(|&i| s.contributions[i] > 0.05)
                .map(|i| format!("{} {:.0}%", esc(&check.features[i]), 100.0 * s.contributions[i]))
                .collect::<Vec<_>>()
                .join(", ");
            (format!("{:.3}", s.confidence), top)
        }
        None => ("–".into(), String::new()),
    };
    let spark = hist.entity(&e.labels).map_or(String::new(), |h| svg::sparkline(&h.confidence()));
    let _ = write!(
        b,
        "<tr class=\"{sev}\"><td>{}</td><td class=\"state {st}\">{st}</td><td class=\"sev {sev}\">{sev}</td>\
<td class=\"num\">{conf}</td><td>{spark}</td><td>{top}</td></tr>",
        entity_link(&e.labels),
        st = e.state.as_str(),
    );
}

fn anomalies(b: &mut String, hist: &PageHistory) {
    b.push_str("<h2>Recent anomalies</h2>");
    let mut any = false;
    for a in hist.anomalies() {
        if !any {
            b.push_str(
                "<table><tr><th>start</th><th>until</th><th>entity</th><th>severity</th>\
<th>peak confidence</th><th>top features (observed vs expected)</th></tr>",
            );
            any = true;
        }
        let sev = severity_name(a.severity);
        let top = a
            .top
            .iter()
            .map(|f| {
                format!(
                    "{} {:.0}% ({} vs {})",
                    esc(&f.name),
                    100.0 * f.share,
                    num(f.observed),
                    num(f.expected)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            b,
            "<tr class=\"{sev}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"sev {sev}\">{sev}</td>\
<td class=\"num\">{:.3}</td><td>{top}</td></tr>",
            time(a.start_ms),
            if a.ongoing { "ongoing".to_string() } else { time(a.last_ms) },
            entity_link(&a.labels),
            a.confidence,
        );
    }
    if any {
        b.push_str("</table>");
    } else {
        b.push_str("<p class=\"muted\">None yet.</p>");
    }
}

fn injections(b: &mut String, hist: &PageHistory, now_ms: i64) {
    if hist.injections.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Injected anomalies (demo)</h2><table><tr><th>kind</th><th>entity</th><th>start</th>\
<th>duration</th><th>status</th></tr>",
    );
    // The ones that started plus the next few.
    let started = hist.injections.iter().filter(|i| i.start_ms <= now_ms).count();
    let from = started.saturating_sub(10);
    for i in hist.injections.iter().skip(from).take(started - from + 3) {
        let status = if now_ms < i.start_ms {
            "upcoming"
        } else if now_ms < i.start_ms + i.duration_ms {
            "active"
        } else {
            "done"
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{} s</td><td>{status}</td></tr>",
            esc(&i.kind),
            esc(&i.entity),
            time(i.start_ms),
            i.duration_ms / 1000,
        );
    }
    b.push_str("</table>");
}

fn render_entity(check: &CheckScores, history: &SharedHistory, wanted: &str) -> (StatusCode, String) {
    let found = query::parse_labels(wanted)
        .and_then(|w| check.entities.iter().find(|e| query::same_labels(&e.labels, &w)));
    let Some(e) = found else {
        let body = format!(
            "<h1>No such entity</h1><p class=\"notice\">No live entity has the labels <code>{}</code>.</p>\
<p>Entities are written as <code>job=\"a\",instance=\"b\"</code> (labels in any order). \
<a href=\"/\">All entities</a></p>",
            esc(wanted)
        );
        return (StatusCode::NOT_FOUND, page("dwcp-anomaly: no such entity", &body));
    };
    let hist = history.lock().snapshot(&[&*e.labels]);
    let h = hist.entity(&e.labels);
    let sev = severity_name(severity_of(e));
    let mut b = format!(
        "<h1>{}</h1><p><a href=\"/\">All entities</a> · profile <b>{}</b> · state \
<span class=\"state {st}\">{st}</span> · severity <span class=\"sev {sev}\">{sev}</span> · confidence {} · \
last check {}</p>",
        labels_text(&e.labels),
        esc(&check.profile),
        e.score.as_ref().map_or("–".into(), |s| format!("{:.3}", s.confidence)),
        time(check.timestamp_ms),
        st = e.state.as_str(),
    );
    for m in check.merged.iter().filter(|m| m.labels == e.labels) {
        let _ = write!(
            b,
            "<p class=\"notice\">Feature <b>{}</b> combines {} series of this entity: the entity labels \
             do not separate them. Keep the sender's labels (<code>honor_labels: true</code> on the scrape \
             job), add the label that differs to <code>vectorize.entity_labels</code>, or set \
             <code>merge_series: true</code> on the feature if this entity really has several.</p>",
            esc(check.features.get(m.feature as usize).map_or("?", String::as_str)),
            m.series
        );
    }
    b.push_str("<h2>Scores</h2><table><tr><th>detector</th><th>score</th><th>recent</th></tr>");
    let _ = write!(
        b,
        "<tr><td>ensemble</td><td class=\"num\">{}</td><td>{}</td></tr>",
        e.score.as_ref().map_or("–".into(), |s| format!("{:.3}", s.confidence)),
        h.map_or(String::new(), |h| svg::sparkline(&h.confidence()))
    );
    if let Some(h) = h {
        for (d, name) in h.detectors.iter().enumerate() {
            let now = e
                .score
                .as_ref()
                .and_then(|s| s.detectors.iter().find(|x| x.detector == *name))
                .map_or("–".into(), |x| format!("{:.3}", x.score.value));
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"num\">{now}</td><td>{}</td></tr>",
                esc(name),
                svg::sparkline(&h.detector(d))
            );
        }
    }
    b.push_str(
        "</table><h2>Features</h2><p class=\"muted\">Red: observed; dashed: expected; blue band: \
normal range.</p><table><tr><th>feature</th><th>observed</th><th>expected</th><th>band</th>\
<th>share</th><th>timeline</th></tr>",
    );
    for (f, name) in check.features.iter().enumerate() {
        let observed = e.values.get(f).map_or("–".into(), |v| num(*v));
        let (expected, band, share) = match &e.score {
            Some(s) => {
                let x = s.expected.get(f);
                (
                    x.map_or("–".into(), |x| num(x.value)),
                    x.filter(|x| x.lower.is_finite() && x.upper.is_finite())
                        .map_or("–".into(), |x| format!("{} – {}", num(x.lower), num(x.upper))),
                    s.contributions.get(f).map_or("–".into(), |c| format!("{:.0}%", 100.0 * c)),
                )
            }
            None => ("–".into(), "–".into(), "–".into()),
        };
        let line = h.map_or(String::new(), |h| svg::timeline(&h.feature(f, check.features.len())));
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"num\">{observed}</td><td class=\"num\">{expected}</td>\
<td class=\"num\">{band}</td><td class=\"num\">{share}</td><td>{line}</td></tr>",
            esc(name)
        );
    }
    b.push_str("</table>");
    let title = format!("dwcp-anomaly: {}", entity_string(&e.labels));
    (StatusCode::OK, page(&title, &b))
}
