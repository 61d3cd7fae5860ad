use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::AlertConfig;
use crate::detect::{EnsembleScore, Expected, Severity};
use crate::vectorize::EntityLabels;

fn score(confidence: f64, severity: Severity) -> EnsembleScore {
    EnsembleScore {
        confidence,
        anomalous: severity != Severity::None,
        voted: severity != Severity::None,
        threshold: 0.5,
        severity,
        contributions: vec![0.1, 0.9],
        expected: vec![Expected { value: 1.0, lower: 0.0, upper: 2.0 }; 2],
        detectors: Vec::new(),
        flag_rate: None,
    }
}

fn tracker(resolve_after: u32, throttle_s: u64) -> AlertTracker {
    AlertTracker::new(&AlertConfig {
        resolve_after,
        throttle: Duration::from_secs(throttle_s),
        ..AlertConfig::default()
    })
}

fn step(t: &mut AlertTracker, s: &EnsembleScore, now: i64) -> Option<AlertEvent> {
    let labels: EntityLabels = Arc::from(vec![("instance".to_string(), "a".to_string())]);
    let features = ["cpu_pct".to_string(), "latency_ms".to_string()];
    t.observe(1, &labels, "dwcp", &features, &[50.0, 300.0], s, now)
}

#[test]
fn fires_escalates_and_resolves() {
    let mut t = tracker(2, 300);
    let fired = step(&mut t, &score(0.75, Severity::Warning), 0).unwrap();
    assert_eq!(fired.kind, AlertKind::Firing);
    assert_eq!(fired.features[0].feature, "latency_ms");
    assert_eq!(fired.features[0].value, 300.0);
    assert_eq!(fired.entity(), "instance=\"a\"");
    assert!(step(&mut t, &score(0.72, Severity::Warning), 1000).is_none(), "same severity: no repeat");
    let esc = step(&mut t, &score(0.95, Severity::Critical), 2000).unwrap();
    assert_eq!(esc.kind, AlertKind::Escalated);
    assert_eq!(esc.started_ms, 0);
    assert!(step(&mut t, &score(0.1, Severity::None), 3000).is_none(), "one normal check is not enough");
    let res = step(&mut t, &score(0.1, Severity::None), 4000).unwrap();
    assert_eq!(res.kind, AlertKind::Resolved);
    assert_eq!(res.severity, Severity::Critical);
}

#[test]
fn refiring_inside_the_throttle_is_suppressed() {
    let mut t = tracker(1, 300);
    assert!(step(&mut t, &score(0.8, Severity::Warning), 0).is_some());
    assert!(step(&mut t, &score(0.0, Severity::None), 10_000).is_some());
    assert!(step(&mut t, &score(0.8, Severity::Warning), 20_000).is_none(), "within 5 m");
    assert!(
        step(&mut t, &score(0.0, Severity::None), 30_000).is_none(),
        "nothing announced, nothing to resolve"
    );
    assert!(step(&mut t, &score(0.8, Severity::Warning), 400_000).is_some(), "after 5 m");
}

#[test]
fn escalation_passes_the_throttle() {
    let mut t = tracker(1, 300);
    assert!(step(&mut t, &score(0.8, Severity::Warning), 0).is_some());
    assert!(step(&mut t, &score(0.0, Severity::None), 10_000).is_some());
    assert!(step(&mut t, &score(0.8, Severity::Warning), 20_000).is_none(), "throttled");
    let esc = step(&mut t, &score(0.95, Severity::Critical), 30_000).expect("escalation is never throttled");
    assert_eq!(esc.kind, AlertKind::Escalated);
    let res = step(&mut t, &score(0.0, Severity::None), 40_000).expect("announced by the escalation");
    assert_eq!((res.kind, res.severity, res.started_ms), (AlertKind::Resolved, Severity::Critical, 20_000));
}

#[test]
fn resolve_repeats_the_firing_labels_and_features() {
    let mut t = tracker(1, 300);
    let fired = step(&mut t, &score(0.8, Severity::Warning), 0).unwrap();
    let mut normal = score(0.0, Severity::None);
    normal.contributions = vec![0.9, 0.1];
    let res = step(&mut t, &normal, 10_000).unwrap();
    assert_eq!(res.features, fired.features, "receivers match the resolve on the firing labels");
    assert_eq!(res.timestamp_ms, 10_000);
}

#[test]
fn a_restored_tracker_neither_refires_nor_forgets_to_resolve() {
    let mut t = tracker(2, 300);
    let fired = step(&mut t, &score(0.8, Severity::Warning), 0).unwrap();
    let saved = t.snapshot(1000);
    let json = serde_json::to_string(&saved).unwrap();
    let mut u = tracker(2, 300);
    u.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(u.active(), vec![fired.clone()]);
    assert!(step(&mut u, &score(0.8, Severity::Warning), 60_000).is_none(), "still firing: no re-page");
    assert!(step(&mut u, &score(0.0, Severity::None), 70_000).is_none());
    let res = step(&mut u, &score(0.0, Severity::None), 80_000).expect("resolves after restart");
    assert_eq!((res.kind, res.started_ms), (AlertKind::Resolved, 0));
}

#[test]
fn alert_state_file_round_trips_and_names_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(state::load(dir.path()).unwrap().is_none());
    let mut t = tracker(2, 300);
    step(&mut t, &score(0.8, Severity::Warning), 0).unwrap();
    let saved = t.snapshot(5);
    state::save(dir.path(), &saved).unwrap();
    assert_eq!(state::load(dir.path()).unwrap(), Some(saved));
    std::fs::write(state::path_in(dir.path()), b"{not json").unwrap();
    let err = state::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("alerts.json") && err.contains("corrupt"), "{err}");
    std::fs::write(state::path_in(dir.path()), br#"{"version": 99}"#).unwrap();
    let err = state::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("version 99"), "{err}");
}
