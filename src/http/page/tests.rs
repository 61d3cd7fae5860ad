use std::sync::Arc;

use super::query::{parse_labels, same_labels};
use super::*;
use crate::check::history::PageHistory;
use crate::detect::{DetectorScore, EnsembleScore, Expected, Score};

const FEATURES: [&str; 2] = ["latency_ms", "cpu_pct"];

fn entity(instance: &str, conf: Option<f64>) -> EntityScores {
    let score = conf.map(|c| {
        let severity = if c >= 0.9 {
            Severity::Critical
        } else if c >= 0.7 {
            Severity::Warning
        } else if c >= 0.5 {
            Severity::Info
        } else {
            Severity::None
        };
        EnsembleScore {
            confidence: c,
            anomalous: c >= 0.5,
            voted: c >= 0.5,
            threshold: 0.5,
            severity,
            contributions: vec![0.8, 0.2],
            expected: vec![
                Expected { value: 40.0, lower: 30.0, upper: 50.0 },
                Expected { value: 20.0, lower: 10.0, upper: 30.0 },
            ],
            detectors: vec![DetectorScore {
                detector: "zscore",
                score: Score { value: c, raw: c, contributions: vec![0.8, 0.2], expected: Vec::new() },
            }],
            flag_rate: None,
        }
    });
    EntityScores {
        labels: Arc::from(vec![
            ("instance".to_string(), instance.to_string()),
            ("job".to_string(), "dwcp".to_string()),
        ]),
        state: if conf.is_some() { ModelState::Ready } else { ModelState::Warming },
        score,
        values: vec![210.0, 25.0],
        rules: None,
    }
}

fn check(entities: Vec<EntityScores>) -> CheckScores {
    CheckScores {
        timestamp_ms: 1_700_000_000_000,
        profile: "dwcp".into(),
        features: FEATURES.iter().map(|s| s.to_string()).collect::<Vec<_>>().into(),
        entities: entities.into_iter().map(Into::into).collect(),
        merged: Vec::new(),
    }
}

fn q(entity: Option<&str>, severity: Option<Severity>, profile: Option<&str>) -> PageQuery {
    PageQuery { entity: entity.map(Into::into), profile: profile.map(Into::into), severity }
}

#[test]
fn entities_are_sorted_by_score_and_unscored_last() {
    let c = check(vec![
        entity("low", Some(0.1)),
        entity("warm", None),
        entity("high", Some(0.95)),
        entity("mid", Some(0.6)),
    ]);
    let (_, html) = render(&c, &PageHistory::shared(), &PageQuery::default());
    let pos = |s: &str| html.find(&format!("instance={s} ")).unwrap_or_else(|| panic!("{s} missing: {html}"));
    assert!(pos("high") < pos("mid") && pos("mid") < pos("low") && pos("low") < pos("warm"), "{html}");
    assert!(html.contains("<b>2 anomalous</b>"), "{html}");
    assert!(html.contains(r#"<td class="sev critical">critical</td>"#), "{html}");
}

#[test]
fn rows_are_bounded() {
    let c = check((0..MAX_ROWS + 50).map(|i| entity(&format!("n{i}"), Some(i as f64 / 1000.0))).collect());
    let (rows, matched) = select(&c, &PageQuery::default());
    assert_eq!((rows.len(), matched), (MAX_ROWS, MAX_ROWS + 50));
    // The highest scores are kept, in order.
    assert_eq!(&*rows[0].labels[0].1, format!("n{}", MAX_ROWS + 49));
    assert_eq!(&*rows[MAX_ROWS - 1].labels[0].1, "n50");
}

#[test]
fn severity_and_profile_filters() {
    let c = check(vec![
        entity("a", Some(0.95)),
        entity("b", Some(0.75)),
        entity("c", Some(0.55)),
        entity("d", Some(0.1)),
    ]);
    let names = |q: &PageQuery| select(&c, q).0.iter().map(|e| e.labels[0].1.clone()).collect::<Vec<_>>();
    assert_eq!(names(&q(None, Some(Severity::Warning), None)), ["a", "b"]);
    assert_eq!(names(&q(None, Some(Severity::Critical), None)), ["a"]);
    assert_eq!(names(&q(None, Some(Severity::Info), Some("dwcp"))), ["a", "b", "c"]);
    assert!(names(&q(None, None, Some("node"))).is_empty());
    let (_, html) = render(&c, &PageHistory::shared(), &q(None, None, Some("node")));
    assert!(html.contains("No entities of profile <b>node</b>"), "{html}");
    let (_, html) = render(&c, &PageHistory::shared(), &q(None, Some(Severity::Warning), None));
    assert!(html.contains(r#"<a class="on" href="/?severity=warning">warning+</a>"#), "{html}");
    assert!(!html.contains("instance=c "), "{html}");
}

#[test]
fn entity_lookup_accepts_any_label_order() {
    let c = check(vec![entity("n1", Some(0.95)), entity("n2", Some(0.2))]);
    let h = PageHistory::shared();
    for wanted in [
        r#"job="dwcp",instance="n1""#,
        r#"instance="n1",job="dwcp""#,
        r#"{ job = "dwcp" , instance="n1" }"#,
        "job=dwcp instance=n1",
        "job%3D%22dwcp%22%2Cinstance%3D%22n1%22",
    ] {
        let (status, html) = render(&c, &h, &q(Some(wanted), None, None));
        assert_eq!(status, StatusCode::OK, "{wanted}: {html}");
        assert!(html.contains("<h1>instance=n1 job=dwcp</h1>"), "{wanted}: {html}");
        assert!(html.contains("<td>zscore</td>") || html.contains("<td>ensemble</td>"), "{html}");
        assert!(html.contains("210.0"), "observed value shown: {html}");
    }
}

#[test]
fn unknown_entity_is_a_404_saying_so() {
    let c = check(vec![entity("n1", Some(0.95))]);
    for wanted in [r#"job="dwcp",instance="n9""#, r#"instance="n1""#, "not a label list"] {
        let (status, html) = render(&c, &PageHistory::shared(), &q(Some(wanted), None, None));
        assert_eq!(status, StatusCode::NOT_FOUND, "{wanted}");
        assert!(html.contains("No such entity"), "{html}");
    }
}

#[test]
fn label_parsing() {
    let want = vec![("a".to_string(), "x, \"y\"".to_string()), ("b".to_string(), "2".to_string())];
    assert_eq!(parse_labels(r#"b="2", a="x, \"y\"""#), Some(want.clone()));
    assert!(same_labels(&[want[1].clone(), want[0].clone()], &want));
    assert!(!same_labels(&want[..1], &want));
    assert_eq!(parse_labels(""), None);
    assert_eq!(parse_labels("a"), None);
    assert_eq!(parse_labels(r#"a="unterminated"#), None);
}

#[test]
fn everything_is_escaped() {
    let mut e = entity("<script>alert(1)</script>", Some(0.95));
    e.labels = Arc::from(vec![("instance".to_string(), "<b>\"&'".to_string())]);
    let mut c = check(vec![e]);
    c.profile = "<i>".into();
    let h = PageHistory::shared();
    h.lock().record(&c);
    let (_, html) = render(&c, &h, &PageQuery::default());
    assert!(!html.contains("<b>\"&'") && !html.contains("<i>"), "{html}");
    assert!(html.contains("instance=&lt;b&gt;&quot;&amp;&#39;"), "{html}");
    // The link carries the entity percent-encoded.
    assert!(html.contains("/?entity=instance%3D%22%3Cb%3E%5C%22%26%27%22"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external URL");
}

#[test]
fn sparkline_stays_in_its_box_and_breaks_at_gaps() {
    let s = svg::sparkline(&[0.0, 1.0, f32::NAN, 2.0, -1.0]);
    assert_eq!(s.matches("<polyline").count(), 2, "{s}");
    for pts in s.split("points=\"").skip(1) {
        for xy in pts.split('"').next().unwrap().split(' ') {
            let (x, y) = xy.split_once(',').unwrap();
            let (x, y): (f32, f32) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((0.0..=120.0).contains(&x) && (0.0..=24.0).contains(&y), "{xy} in {s}");
        }
    }
    assert!(!svg::sparkline(&[]).contains("<polyline"));
    let t = svg::timeline(&[[1.0, 2.0, 0.0, 3.0], [5.0, 2.0, 0.0, 3.0], [f32::NAN; 4]]);
    assert!(t.contains("<polygon class=\"band\"") && t.contains("class=\"observed\""), "{t}");
}

#[test]
fn history_feeds_sparklines_anomalies_and_injections() {
    let h = PageHistory::shared();
    for (i, conf) in [0.1, 0.2, 0.95, 0.97, 0.1].into_iter().enumerate() {
        let mut c = check(vec![entity("n1", Some(conf)), entity("n2", Some(0.1))]);
        c.timestamp_ms += i as i64 * 1000;
        h.lock().record(&c);
    }
    h.lock().injections = vec![crate::check::history::InjectedAnomaly {
        kind: "spike".into(),
        entity: "dwcp-node-01".into(),
        start_ms: 1_700_000_001_000,
        duration_ms: 5000,
    }];
    {
        let g = h.lock();
        let a: Vec<_> = g.anomalies().collect();
        assert_eq!(a.len(), 1, "one anomaly over two checks");
        assert_eq!((a[0].confidence, a[0].ongoing), (0.97, false));
        assert_eq!(a[0].top[0].name, "latency_ms");
        assert_eq!((a[0].top[0].observed, a[0].top[0].expected), (210.0, 40.0));
        let e = g.entity(&check(vec![entity("n1", None)]).entities[0].labels).unwrap();
        assert_eq!(e.confidence(), [0.1, 0.2, 0.95, 0.97, 0.1]);
        assert_eq!(e.feature(0, 2)[0], [210.0, 40.0, 30.0, 50.0]);
    }
    let c = check(vec![entity("n1", Some(0.1))]);
    let (_, html) = render(&c, &h, &PageQuery::default());
    assert!(html.contains("<polyline class=\"line\""), "{html}");
    assert!(html.contains("210.0 vs 40.0"), "{html}");
    assert!(html.contains("<td>spike</td><td>dwcp-node-01</td>"), "{html}");
    let (_, html) = render(&c, &h, &q(Some(r#"job="dwcp",instance="n1""#), None, None));
    assert!(html.contains("<polygon class=\"band\""), "{html}");
}
