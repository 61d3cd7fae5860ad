//! `docs/configuration.md` documents exactly the keys the config structs accept.
//!
//! **Accepted keys** come from the structs themselves: `Config::default()`, with one item in
//! every list of sections (`scrape`, `export.remote_write`, `export.otlp`, a profile's
//! `features`) and one entry named `NAME` in every map whose keys the user picks
//! (`vectorize.profiles`, `detect.alone_fpr`), is serialized to a value tree. No field skips
//! serialization, so every field appears, `None` ones as `null`. Each path from the root to a
//! leaf is a key: nested mappings are joined with `.`, a list of mappings adds `[]`
//! (`scrape[].url`), a list of scalars, an empty mapping (`headers`, `labels`: free-form
//! string maps) or a scalar ends the path.
//!
//! **Documented keys** are read from the reference in two places:
//! - the first column of its tables: the first backticked name is a full path, each further
//!   backticked name in the cell is a sibling of it (`` `detect.zscore.enabled` / `weight` ``
//!   documents `detect.zscore.weight`); a name containing `*` is a pointer to another
//!   section, not a key;
//! - its `yaml` examples (the list items and profiles are documented by an annotated example),
//!   walked as above; under a map whose keys the user picks, the example's key (`links`) is
//!   read as `NAME`, and everything under an accepted leaf (`headers: {X-Scope-OrgID: ..}`)
//!   belongs to that leaf. Every example must also load through the real parser, whose
//!   `deny_unknown_fields` rejects a misspelt key.
//!
//! The test fails with the list of accepted keys the reference does not mention and of
//! documented keys (or intermediate sections) that no struct has.

use std::collections::BTreeSet;

use dwcp_anomaly::internals::config::{
    Config, FeatureConfig, OtlpExportConfig, ProfileConfig, RemoteWriteConfig, ScrapeConfig,
};
use serde_json::Value;

const REFERENCE: &str = include_str!("../docs/configuration.md");

/// Collects every leaf path of `v` below `prefix` into `leaves` and every intermediate
/// path into `sections`; `rename` maps a key to the name the path uses.
fn walk(
    v: &Value,
    prefix: &str,
    rename: &dyn Fn(&str, &str) -> String,
    leaves: &mut BTreeSet<String>,
    sections: &mut BTreeSet<String>,
) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        Value::Object(m) if !m.is_empty() => {
            if !prefix.is_empty() {
                sections.insert(prefix.to_string());
            }
            for (k, child) in m {
                walk(child, &join(&rename(prefix, k)), rename, leaves, sections);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            sections.insert(prefix.to_string());
            let list = format!("{prefix}[]");
            for item in items {
                walk(item, &list, rename, leaves, sections);
            }
        }
        _ => {
            leaves.insert(prefix.to_string());
        }
    }
}

/// Paths whose keys the user picks; written `PATH.NAME` in the reference.
const NAMED_MAPS: &[&str] = &["vectorize.profiles", "detect.alone_fpr"];

fn rename(prefix: &str, key: &str) -> String {
    if NAMED_MAPS.contains(&prefix) { "NAME".to_string() } else { key.to_string() }
}

fn item<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_saphyr::from_str(yaml).expect("list item parses")
}

/// Accepted keys (leaves) and sections, from the structs.
fn accepted() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cfg = Config::default();
    let scrape: ScrapeConfig = item("url: http://127.0.0.1:9100/metrics");
    let rw: RemoteWriteConfig = item("url: http://127.0.0.1:9090/api/v1/write");
    let otlp: OtlpExportConfig = item("endpoint: http://127.0.0.1:4317");
    let feature: FeatureConfig = item("name: f\nseries: [m]");
    cfg.scrape.push(scrape);
    cfg.export.remote_write.push(rw);
    cfg.export.otlp.push(otlp);
    cfg.vectorize.profiles.insert(
        "NAME".into(),
        ProfileConfig { entity_labels: vec!["instance".into()], features: vec![feature] },
    );
    cfg.detect.alone_fpr = Some([("NAME".to_string(), 0.02)].into());
    cfg.detect.hold_ratio = Some(0.6);
    let tree = serde_json::to_value(&cfg).expect("config serializes");
    let (mut leaves, mut sections) = (BTreeSet::new(), BTreeSet::new());
    walk(&tree, "", &|_, k| k.to_string(), &mut leaves, &mut sections);
    (leaves, sections)
}

/// Keys named in the first column of the reference's tables.
fn table_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for line in REFERENCE.lines() {
        let Some(rest) = line.strip_prefix('|') else { continue };
        let cell = rest.split('|').next().unwrap_or("");
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = names.first() else { continue };
        if first.contains('*') {
            continue;
        }
        let parent = first.rsplit_once('.').map(|(p, _)| p);
        keys.push(first.to_string());
        for sibling in &names[1..] {
            keys.push(match parent {
                Some(p) => format!("{p}.{sibling}"),
                None => sibling.to_string(),
            });
        }
    }
    keys
}

/// The reference's `yaml` examples.
fn yaml_examples() -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in REFERENCE.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// True when `key` is an accepted leaf or section, or lies under an accepted leaf.
fn exists(key: &str, leaves: &BTreeSet<String>, sections: &BTreeSet<String>) -> bool {
    leaves.contains(key)
        || sections.contains(key)
        || leaves.iter().any(|leaf| key.starts_with(&format!("{leaf}.")))
}

#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let (leaves, sections) = accepted();
    assert!(leaves.contains("detect.zscore.window"), "walk found {leaves:?}");
    assert!(leaves.contains("scrape[].url") && leaves.contains("detect.alone_fpr.NAME"));

    let mut documented = BTreeSet::new();
    for key in table_keys() {
        documented.insert(key);
    }
    let examples = yaml_examples();
    assert!(examples.len() >= 4, "the reference's yaml examples were not found");
    for example in &examples {
        if let Err(e) = Config::parse(example) {
            panic!("an example in docs/configuration.md does not load: {e}\n{example}");
        }
        let tree: Value = serde_saphyr::from_str(example).expect("example is YAML");
        let (mut ex_leaves, mut ex_sections) = (BTreeSet::new(), BTreeSet::new());
        walk(&tree, "", &rename, &mut ex_leaves, &mut ex_sections);
        documented.extend(ex_leaves);
    }

    let undocumented: Vec<&String> = leaves
        .iter()
        .filter(|k| !documented.contains(*k) && !documented.iter().any(|d| d.starts_with(&format!("{k}."))))
        .collect();
    let nonexistent: Vec<&String> = documented.iter().filter(|k| !exists(k, &leaves, &sections)).collect();
    assert!(
        undocumented.is_empty() && nonexistent.is_empty(),
        "docs/configuration.md is out of sync with the config structs\n\
         accepted but not documented: {undocumented:#?}\n\
         documented but not accepted: {nonexistent:#?}"
    );
}
