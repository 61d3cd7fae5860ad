use super::*;

const SEED: &str = r##"
enabled: true
check_interval: 10s

alert:
  slack_enabled: true
  slack_webhook_url: "https://hooks.slack.example/T000/B000/XXX"
  slack_channel: "#dwcp-alerts"
"##;

#[test]
fn empty_text_is_the_embedded_defaults() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    assert!(Config::default().validate().is_empty());
}

#[test]
fn the_seed_config_parses_unchanged() {
    let cfg = Config::parse(SEED).unwrap();
    assert!(cfg.enabled);
    assert_eq!(cfg.check_interval, Duration::from_secs(10));
    assert!(cfg.alert.slack_enabled);
    assert_eq!(cfg.alert.slack_channel, "#dwcp-alerts");
    assert!(cfg.validate().is_empty());
}

#[test]
fn unknown_key_names_path_and_line() {
    let err = Config::parse("detect:\n  zscore:\n    windw: 5\n").unwrap_err();
    assert_eq!(err.path, "detect.zscore.windw");
    assert_eq!(err.line, Some(3));
    assert!(err.reason.contains("windw"), "{}", err.reason);
}

#[test]
fn ill_typed_key_names_path_and_line() {
    let err = Config::parse("check_interval: 10s\ndetect:\n  fit_window: lots\n").unwrap_err();
    assert_eq!(err.path, "detect.fit_window");
    assert_eq!(err.line, Some(3));
}

#[test]
fn bare_integer_duration_is_rejected_with_hint() {
    let err = Config::parse("check_interval: 10\n").unwrap_err();
    assert_eq!(err.path, "check_interval");
    assert!(err.reason.contains("expected e.g. 10s"), "{}", err.reason);
}

#[test]
fn validation_reports_every_error_with_its_key() {
    let mut cfg = Config::default();
    cfg.detect.zscore.window = 1;
    cfg.detect.severity_warning = 0.95;
    cfg.vectorize.profile = "nope".into();
    cfg.alert.slack_enabled = true;
    let paths: Vec<String> = cfg.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        ["vectorize.profile", "detect.severity_warning", "detect.zscore.window", "alert.slack_webhook_url"]
    );
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "vectorize:\n  max_entities: 0\n").unwrap();
    let msg = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(msg.contains("bad.yaml"), "{msg}");
    assert!(msg.contains("vectorize.max_entities: must be >= 1"), "{msg}");
}

#[test]
fn secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook");
    std::fs::write(&secret, "https://hooks.example/abc\n").unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!("alert:\n  slack_enabled: true\n  slack_webhook_url_file: {}\n", secret.display()),
    )
    .unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.alert.slack_webhook_url, "https://hooks.example/abc");
    assert!(cfg.to_yaml().contains("<secret>"));
    assert!(!cfg.to_yaml().contains("hooks.example"));
}

#[test]
fn effective_yaml_round_trips() {
    let cfg = Config::parse(SEED).unwrap();
    let mut plain = cfg.clone();
    plain.alert.slack_webhook_url.clear();
    let again = Config::parse(&plain.to_yaml()).unwrap();
    assert_eq!(again, plain);
}

#[test]
fn target_fpr_sets_the_threshold() {
    let mut d = DetectConfig { target_fpr: Some(1e-3), ..DetectConfig::default() };
    assert!((d.effective_threshold() - 0.5).abs() < 1e-12);
    d.target_fpr = None;
    assert_eq!(d.effective_threshold(), d.threshold);
}
