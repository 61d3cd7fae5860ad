//! Where the bytes go (issue 28): heap bytes per entity of each detector alone, of the service's
//! default and of the ensemble preset, and of the vectorizer's per-series state, at the 7 `dwcp`
//! features with the default window settings.
//!
//!     cargo bench --bench model_bytes
//!     cargo bench --bench model_bytes -- scale.yaml   # only the rows whose name has this
//!
//! A counting global allocator measures the heap: each configuration builds `ENTITIES` entity
//! models and steps each through no vector (a new entity), `min_fit_points` vectors (its first
//! fit) and enough vectors to fill its history (`fit_window`, recalibration windows) and refit,
//! then the bytes still allocated are divided by the entity count. Under
//! `cargo test` (no `--bench` argument) it runs a few entities only, as a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use dwcp_anomaly::internals::config::{Config, DetectConfig, VectorizeConfig};
use dwcp_anomaly::internals::detect::{FeatureVector, ModelSpec};
use dwcp_anomaly::internals::ingest::ObserveStats;
use dwcp_anomaly::internals::rng::Rng;
use dwcp_anomaly::internals::sample::{LabelRef, SampleRef};
use dwcp_anomaly::internals::simulate::METRICS;
use dwcp_anomaly::internals::vectorize::Vectorizer;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const FEATURES: usize = 7;
const STEP_MS: i64 = 10_000;

/// Heap bytes per entity of `cfg`'s models after `vectors` steps each.
fn model_bytes(cfg: &DetectConfig, entities: usize, vectors: usize) -> f64 {
    let mut spec = ModelSpec::new(cfg, FEATURES);
    let full = Config { detect: cfg.clone(), ..Config::default() };
    let vectorizer = Vectorizer::new(&VectorizeConfig::default()).unwrap();
    let profile = vectorizer.profile();
    if cfg.lstm_ae.enabled {
        match dwcp_anomaly::internals::onnx::load_lstm(&full, &profile.name, &profile.feature_names()) {
            Ok(Some(m)) => spec = spec.with_lstm(m),
            _ => return f64::NAN,
        }
    }
    // A shared forest (`iforest.model`) is one per profile: not counted per entity.
    match dwcp_anomaly::internals::onnx::load_forest(&full, &profile.feature_names()) {
        Ok(Some(f)) => spec = spec.with_forest(f),
        Ok(None) => {}
        Err(_) => return f64::NAN,
    }
    drop(vectorizer);
    let mut rng = Rng::new(7);
    let before = live();
    let mut models: Vec<_> = (0..entities).map(|_| spec.build()).collect();
    for i in 0..vectors {
        for m in models.iter_mut() {
            let x = FeatureVector {
                timestamp_ms: 1_700_000_000_000 + i as i64 * STEP_MS,
                values: (0..FEATURES).map(|f| 10.0 * (f + 1) as f64 + rng.normal()).collect(),
            };
            m.step(x).expect("the detectors score");
        }
    }
    let bytes = (live() - before) as f64 / entities as f64;
    drop(models);
    bytes
}

/// Heap bytes per entity of the vectorizer holding `entities` `dwcp` entities (7 series each).
fn vectorizer_bytes(entities: usize) -> f64 {
    let before = live();
    let mut v =
        Vectorizer::new(&VectorizeConfig { max_entities: entities, ..VectorizeConfig::default() }).unwrap();
    let mut stats = ObserveStats::default();
    for e in 0..entities {
        let instance = format!("dwcp-node-{e:06}");
        for m in METRICS {
            let labels = [
                LabelRef { name: "__name__", value: m },
                LabelRef { name: "instance", value: &instance },
                LabelRef { name: "job", value: "dwcp" },
            ];
            v.observe(&labels, &[SampleRef { value: 1.0, timestamp_ms: 1_700_000_000_000 }], &mut stats);
        }
    }
    let _ = v.assemble(1_700_000_000_000);
    let bytes = (live() - before) as f64 / entities as f64;
    drop(v);
    bytes
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench model_bytes -- scale zscore`: only the rows naming one of these.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let entities = if full { 50 } else { 3 };
    let mut rows: Vec<(String, DetectConfig)> = Vec::new();
    for d in ["zscore", "iforest", "sesd", "kmeans", "lstm_ae"] {
        let mut c = DetectConfig::default();
        c.enable_only(&[d]).unwrap();
        rows.push((format!("{d} alone (default windows)"), c));
    }
    let mut shared = DetectConfig::default();
    shared.enable_only(&["iforest"]).unwrap();
    shared.iforest.model = Some("models/isolation_forest.onnx".into());
    rows.push(("iforest alone, the shipped forest shared by the profile (`iforest.model`)".into(), shared));
    rows.push(("service default (z-score)".into(), DetectConfig::default()));
    let scale = std::fs::read_to_string("benches/scale.yaml").expect("run from the crate root");
    let scale = Config::parse(&scale).expect("benches/scale.yaml is valid").detect;
    rows.push((
        "benches/scale.yaml (five detectors, shipped forest and LSTM, default windows)".into(),
        scale,
    ));
    rows.push(("ensemble preset (eval without config)".into(), DetectConfig::ensemble()));
    println!("| what | vectors stepped | heap bytes per entity |");
    println!("|---|---|---|");
    for (name, cfg) in
        rows.iter().filter(|(name, _)| only.is_empty() || only.iter().any(|o| name.contains(o.as_str())))
    {
        let windows = [cfg.fit_window, cfg.recalibrate.window, cfg.fpr_control.window, cfg.sesd.window];
        let filled = if full { windows.into_iter().max().unwrap_or(0) + 100 } else { cfg.min_fit_points + 5 };
        // Just built (what every new entity costs at once), just fitted, windows full.
        for vectors in [0, cfg.min_fit_points, filled] {
            let b = model_bytes(cfg, entities, vectors);
            if b.is_nan() {
                println!("| {name} | — | no model for the dwcp features |");
                break;
            }
            println!("| {name} | {vectors} | {:.0} ({:.1} KiB) |", b, b / 1024.0);
        }
    }
    let v = vectorizer_bytes(if full { 10_000 } else { 10 });
    println!("| vectorizer, per entity (7 series) | — | {v:.0} ({:.1} KiB) |", v / 1024.0);
}
