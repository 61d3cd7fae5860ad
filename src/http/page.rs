//! The small live page at `/`: entities, their state and current scores.

use std::fmt::Write as _;

use crate::export::CheckScores;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the page (refreshes itself every 5 s). With `only` (an alert's entity, as
/// `AlertEvent::entity` writes it: `job="a",instance="b"`), just that entity's row is shown.
pub fn render(check: &CheckScores, only: Option<&str>) -> String {
    let mut rows = String::new();
    let mut anomalous = 0;
    let selected = |e: &&crate::export::EntityScores| {
        only.is_none_or(|o| crate::vectorize::entity_string(&e.labels) == o)
    };
    for e in check.entities.iter().filter(selected) {
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
<p>Profile <b>{}</b> · {} entities · {anomalous} anomalous{} ·
<a href="/metrics">/metrics</a> · <a href="/api/v1/status">status JSON</a></p>
<table><tr><th>entity</th><th>state</th><th>confidence</th><th>severity</th><th>top features</th></tr>
{rows}</table></body></html>"#,
        esc(&check.profile),
        check.entities.len(),
        only.map_or(String::new(), |o| format!(" · showing <b>{}</b> (<a href=\"/\">all</a>)", esc(o)))
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::detect::ModelState;
    use crate::export::EntityScores;

    #[test]
    fn an_alert_link_shows_just_its_entity() {
        let entity = |i: &str| EntityScores {
            labels: Arc::from(vec![
                ("instance".to_string(), i.to_string()),
                ("job".to_string(), "dwcp".to_string()),
            ]),
            state: ModelState::Warming,
            score: None,
            values: Vec::new(),
        };
        let check = CheckScores {
            profile: "dwcp".into(),
            entities: vec![entity("n1"), entity("<n2>")],
            ..CheckScores::default()
        };
        let all = render(&check, None);
        assert!(all.contains("instance=n1") && all.contains("instance=&lt;n2&gt;"), "{all}");
        let one = render(&check, Some(r#"instance="<n2>",job="dwcp""#));
        assert!(!one.contains("instance=n1 ") && one.contains("instance=&lt;n2&gt;"), "{one}");
        assert!(one.contains("showing <b>instance=&quot;&lt;n2&gt;&quot;,job=&quot;dwcp&quot;</b>"), "{one}");
    }
}
