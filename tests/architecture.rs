//! The module arrows of `src/`, read from the code: every `crate::<module>` a module's
//! non-test code names is an import. Keeps the rules of docs/architecture.md: no import loop
//! between modules, the data model (`sample`) imports nothing, `config` and `telemetry`
//! import no stage, and `detect` stays pure CPU (no protocol, file format or I/O stage).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The stages of the flow and the modules that serve them with I/O.
const STAGES: [&str; 11] = [
    "ingest",
    "vectorize",
    "detect",
    "check",
    "pipeline",
    "export",
    "alert",
    "http",
    "onnx",
    "simulate",
    "eval",
];

/// The crate's modules in the order `lib.rs` declares them.
fn declared() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .filter_map(|l| l.split_once(';').map(|(m, _)| m.to_string()))
        .collect()
}

fn modules() -> BTreeSet<String> {
    declared().into_iter().collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file that are not tests or comments: a test file, or everything after a
/// `#[cfg(test)]` that opens an inline `mod`, is left out.
fn code_lines(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy();
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "testing.rs" {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t == "#[cfg(test)]"
            && lines.get(i + 1).is_some_and(|n| n.trim().starts_with("mod ") && n.contains('{'))
        {
            break;
        }
        if !t.starts_with("//") {
            out.push(t.to_string());
        }
    }
    out
}

/// module → (imported module → first place it is named).
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let modules = modules();
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(SRC).unwrap().to_string_lossy().into_owned();
        let from = rel.split(['/', '.']).next().unwrap().to_string();
        if !modules.contains(&from) {
            continue; // the binary's own modules (main.rs, commands/)
        }
        for (n, line) in code_lines(&file).iter().enumerate() {
            for (at, _) in line.match_indices("crate::") {
                let to: String =
                    line[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if to != from && modules.contains(&to) {
                    edges.entry(from.clone()).or_default().entry(to).or_insert(format!("{rel}:{}", n + 1));
                }
            }
        }
    }
    edges
}

#[test]
fn no_import_loop_between_modules() {
    let edges = imports();
    // Depth-first search for a back edge; report the loop with where each arrow comes from.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for to in edges.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            let arrows: Vec<String> =
                cycle.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]])).collect();
            panic!("import loop:\n  {}", arrows.join("\n  "));
        }
    }
}

#[test]
fn leaves_and_the_pure_detect_stage_keep_their_walls() {
    let edges = imports();
    let named = |m: &str| edges.get(m).cloned().unwrap_or_default();
    assert!(named("sample").is_empty(), "sample is the data-model leaf, yet imports {:?}", named("sample"));
    for leaf in ["config", "telemetry", "proto"] {
        let stages: Vec<_> =
            named(leaf).into_iter().filter(|(to, _)| STAGES.contains(&to.as_str())).collect();
        assert!(stages.is_empty(), "{leaf} imports a stage: {stages:?}");
    }
    let banned = ["proto", "onnx", "http", "ingest", "export", "alert", "check", "pipeline", "telemetry"];
    let found: Vec<_> = named("detect").into_iter().filter(|(to, _)| banned.contains(&to.as_str())).collect();
    assert!(found.is_empty(), "detect must stay pure CPU, yet imports {found:?}");
}

#[test]
fn lib_lists_each_module_after_what_it_imports() {
    let edges = imports();
    let order = declared();
    let pos = |m: &str| order.iter().position(|o| o == m).unwrap();
    for (from, tos) in &edges {
        for (to, at) in tos {
            assert!(pos(to) < pos(from), "lib.rs lists {from} before {to}, which it imports ({at})");
        }
    }
}
