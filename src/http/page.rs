//! The small live page at `/`: entities, their state and current scores.

use std::fmt::Write as _;

use crate::export::CheckScores;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the page (refreshes itself every 5 s).
pub fn render(check: &CheckScores) -> String {
    let mut rows = String::new();
    let mut anomalous = 0;
    for e in &check.entities {
        let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={}", esc(v))).collect();
        let (conf, sev, top) = match &e.score {
            Some(s) => {
                anomalous += usize::from(s.anomalous);
                let top = s
                    .ranked_features()
                    .into_iter()
                    .take(3)
                    .filter(|&i| s.contributions[i] > 0.05)
                    .map(|i| format!("{} {:.0}%", esc(&check.features[i]), 100.0 * s.contributions[i]))
                    .collect::<Vec<_>>()
                    .join(", ");
                (format!("{:.3}", s.confidence), s.severity.as_str(), top)
            }
            None => ("–".into(), "–", String::new()),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{sev}\"><td>{}</td><td>{}</td><td>{conf}</td><td>{sev}</td><td>{top}</td></tr>",
            labels.join(" "),
            e.state.as_str()
        );
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>dwcp-anomaly</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}
.warning{{background:#fff3cd}} .critical{{background:#f8d7da}} .info{{background:#e7f1ff}}
</style></head><body><h1>dwcp-anomaly</h1>
<p>Profile <b>{}</b> · {} entities · {anomalous} anomalous ·
<a href="/metrics">/metrics</a> · <a href="/api/v1/status">status JSON</a></p>
<table><tr><th>entity</th><th>state</th><th>confidence</th><th>severity</th><th>top features</th></tr>
{rows}</table></body></html>"#,
        esc(&check.profile),
        check.entities.len()
    )
}
