//! The original design's quick start, in Rust: embed the detector without HTTP.
//!
//!     cargo run --release --example embedded [-- CONFIG.yaml]
//!
//! Loads the configuration (the file given, or the embedded defaults), creates the detector,
//! the alert manager and the pipeline, trains it on ten minutes of normal vectors, starts it,
//! then feeds one `MetricVector` per second of simulated time — normal traffic with a latency
//! spike and a CPU saturation injected at known times — and prints each anomaly as it is found,
//! with its severity and top features (observed vs expected). Simulated time runs as fast as
//! the pipeline scores, so the whole run takes well under a second. `cargo test` runs it
//! (`test = true` in Cargo.toml) and checks that both injections were reported and the normal
//! period stayed quiet.

use dwcp_anomaly::{
    AlertKind, AlertManager, AnomalyDetector, Config, MetricVector, MonitoringPipeline, Severity,
};

const ENTITY: &str = "dwcp-link-1";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
/// Injected anomalies: (name, first second, last second).
const LATENCY_SPIKE: (&str, i64, i64) = ("latency spike", 300, 310);
const CPU_SATURATION: (&str, i64, i64) = ("CPU saturation", 420, 450);

/// What the run found: (second of the event, severity, top feature) of every firing anomaly.
type Found = Vec<(i64, Severity, String)>;

/// A small deterministic noise source (the example needs no random-number crate).
struct Noise(u64);

impl Noise {
    /// Roughly normal noise with standard deviation 1 (sum of uniforms).
    fn next(&mut self) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            sum += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        }
        sum - 6.0
    }
}

/// The link's metrics at second `s`, with the injected anomalies.
fn metrics(s: i64, noise: &mut Noise) -> MetricVector {
    let mut m = MetricVector {
        timestamp_ms: T0 + s * 1000,
        entity: ENTITY.into(),
        bandwidth_mbps: 940.0 + 15.0 * noise.next(),
        latency_ms: 12.0 + 0.8 * noise.next(),
        packet_loss_pct: (0.05 + 0.01 * noise.next()).max(0.0),
        jitter_ms: 1.5 + 0.2 * noise.next(),
        cpu_pct: 35.0 + 3.0 * noise.next(),
        memory_pct: 52.0 + 1.0 * noise.next(),
        error_rate_pct: (0.1 + 0.02 * noise.next()).max(0.0),
    };
    if (LATENCY_SPIKE.1..=LATENCY_SPIKE.2).contains(&s) {
        m.latency_ms *= 6.0;
        m.jitter_ms *= 4.0;
    }
    if (CPU_SATURATION.1..=CPU_SATURATION.2).contains(&s) {
        m.cpu_pct = 98.0 + noise.next().abs();
    }
    m
}

async fn run(config: Config) -> Result<Found, Box<dyn std::error::Error>> {
    // 1-4: configuration, detector, alert manager, pipeline.
    let detector = AnomalyDetector::new(&config)?;
    println!("detectors: {}", detector.detectors().join(", "));
    let alert_manager = AlertManager::new(&config);
    let mut pipeline = MonitoringPipeline::new(detector, alert_manager);

    // 5: train on historical normal data (ten minutes before the run).
    let mut noise = Noise(7);
    let normal: Vec<MetricVector> = (-600..0).map(|s| metrics(s, &mut noise)).collect();
    let report = pipeline.train(ENTITY, &normal)?;
    println!("trained on {} normal vectors: {:?}", report.used, report.state);

    // 6: start (the config's alert channels, and a channel of anomalies for us).
    let mut anomalies = pipeline.start()?;

    // 7: feed a vector every (simulated) second.
    let mut found = Found::new();
    for s in 0..540 {
        pipeline.process(metrics(s, &mut noise));
        while let Ok(a) = anomalies.try_recv() {
            let second = (a.timestamp_ms - T0) / 1000;
            let top: Vec<String> = a
                .features
                .iter()
                .map(|f| format!("{} {:.1} (expected {:.1})", f.feature, f.value, f.expected))
                .collect();
            println!(
                "t={second:>3}s {:<9} {} {:?} confidence {:.2}: {}",
                a.kind_str(),
                a.entity(),
                a.severity,
                a.confidence,
                top.join(", ")
            );
            if a.kind != AlertKind::Resolved {
                found.push((second, a.severity, a.top_feature().to_string()));
            }
        }
    }

    // 8: stop, delivering what the alert channels still hold.
    pipeline.stop().await;
    Ok(found)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(std::env::args_os().nth(1).as_deref().map(std::path::Path::new))?;
    let found = run(config).await?;
    for (name, from, to) in [LATENCY_SPIKE, CPU_SATURATION] {
        let hits = found.iter().filter(|(s, ..)| (from..=to + 5).contains(s)).count();
        println!("{name} at {from}-{to}s: {}", if hits > 0 { "reported" } else { "missed" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_injected_anomalies_are_reported_and_the_normal_period_is_quiet() {
        let found = run(Config::default()).await.unwrap();
        for (name, from, to) in [LATENCY_SPIKE, CPU_SATURATION] {
            let hits: Vec<_> = found.iter().filter(|(s, ..)| (from..=to + 5).contains(s)).collect();
            assert!(!hits.is_empty(), "{name} not reported: {found:?}");
            assert!(hits.iter().all(|(_, sev, _)| *sev >= Severity::Warning), "{name}: {hits:?}");
        }
        let spike_top = found.iter().find(|(s, ..)| (LATENCY_SPIKE.1..=LATENCY_SPIKE.2).contains(s)).unwrap();
        assert!(["latency_ms", "jitter_ms"].contains(&spike_top.2.as_str()), "{spike_top:?}");
        let cpu_top = found.iter().find(|(s, ..)| (CPU_SATURATION.1..=CPU_SATURATION.2).contains(s)).unwrap();
        assert_eq!(cpu_top.2, "cpu_pct", "{cpu_top:?}");
        let quiet: Vec<_> = found.iter().filter(|(s, ..)| *s < LATENCY_SPIKE.1).collect();
        assert!(quiet.is_empty(), "anomalies in the normal period: {quiet:?}");
    }
}
