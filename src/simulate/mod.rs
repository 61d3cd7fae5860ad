//! Synthetic DWCP traffic with injected anomalies, for demos, tests and training.
//!
//! One deterministic generator ([`Simulator`]) feeds three outputs: labeled CSV in the common
//! dataset format ([`write_csv`]), a Prometheus scrape target ([`serve`]) and pushes over
//! remote-write or OTLP ([`push`], also the load generator of the scale benchmark). Normal traffic has a seasonal load cycle that drives bandwidth, CPU and
//! latency together, plus per-entity noise; each anomaly kind perturbs the features a real
//! incident of that kind would.

mod push;
mod schedule;
mod targets;

use std::fmt;
use std::str::FromStr;

use crate::rng::Rng;

pub use push::{PushError, PushOptions, PushReport, PushTarget, push};
pub use schedule::{Injection, parse_injection, random_schedule};
pub use targets::{render_exposition, serve, write_csv};

/// Feature names of the `dwcp` profile, in vector order.
pub const FEATURES: [&str; 7] = [
    "bandwidth_mbps",
    "latency_ms",
    "packet_loss_pct",
    "jitter_ms",
    "cpu_pct",
    "memory_pct",
    "error_rate_pct",
];

/// Metric names the `dwcp` profile selects, in the order of [`FEATURES`].
pub const METRICS: [&str; 7] = [
    "dwcp_bandwidth_mbps",
    "dwcp_latency_ms",
    "dwcp_packet_loss_percent",
    "dwcp_jitter_ms",
    "dwcp_cpu_usage_percent",
    "dwcp_memory_usage_percent",
    "dwcp_error_rate_percent",
];

/// Kinds of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKind {
    /// Latency ×5 and errors up: a short hiccup.
    Spike,
    /// Bandwidth drops to a third and stays there.
    LevelShift,
    /// Latency and jitter creep up over the anomaly's duration.
    Drift,
    /// Packet loss jumps by several percent, errors follow.
    PacketLossBurst,
    /// Latency and jitter rise together (congestion).
    LatencyJitter,
    /// CPU pinned near 100 %, memory up, latency follows.
    CpuSaturation,
}

impl AnomalyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AnomalyKind; 6] = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::PacketLossBurst,
        AnomalyKind::LatencyJitter,
        AnomalyKind::CpuSaturation,
    ];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::Drift => "drift",
            AnomalyKind::PacketLossBurst => "packet_loss_burst",
            AnomalyKind::LatencyJitter => "latency_jitter",
            AnomalyKind::CpuSaturation => "cpu_saturation",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnomalyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnomalyKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown anomaly kind {s:?}, expected one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, Clone)]
struct EntityParams {
    bandwidth: f64,
    latency: f64,
    jitter: f64,
    memory: f64,
    phase: f64,
}

/// One entity's values at one step, and whether an anomaly is active.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Feature values in [`FEATURES`] order.
    pub values: [f64; 7],
    /// The active anomaly, if any.
    pub anomaly: Option<AnomalyKind>,
}

/// Deterministic generator: the same seed, entity count and schedule give the same points.
#[derive(Debug, Clone)]
pub struct Simulator {
    params: Vec<EntityParams>,
    memory: Vec<f64>,
    rngs: Vec<Rng>,
    injections: Vec<Injection>,
    period_steps: f64,
    step: u64,
}

impl Simulator {
    /// `entities` entities; a load cycle of `period_steps` steps; anomalies as scheduled.
    pub fn new(entities: usize, seed: u64, period_steps: u64, injections: Vec<Injection>) -> Self {
        let mut rng = Rng::new(seed);
        let params: Vec<EntityParams> = (0..entities)
            .map(|_| EntityParams {
                bandwidth: 400.0 + 600.0 * rng.uniform(),
                latency: 10.0 + 30.0 * rng.uniform(),
                jitter: 1.0 + 3.0 * rng.uniform(),
                memory: 40.0 + 30.0 * rng.uniform(),
                phase: std::f64::consts::TAU * rng.uniform(),
            })
            .collect();
        Self {
            memory: params.iter().map(|p| p.memory).collect(),
            rngs: (0..entities).map(|i| Rng::new(seed.wrapping_mul(31).wrapping_add(i as u64 + 1))).collect(),
            params,
            injections,
            period_steps: period_steps.max(2) as f64,
            step: 0,
        }
    }

    /// Number of entities.
    pub fn entities(&self) -> usize {
        self.params.len()
    }

    /// Index of the next step [`Simulator::next_step`] returns.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The entity's `instance` label value, e.g. `dwcp-node-03`.
    pub fn entity_name(i: usize) -> String {
        format!("dwcp-node-{:02}", i + 1)
    }

    /// The scheduled anomalies.
    pub fn injections(&self) -> &[Injection] {
        &self.injections
    }

    /// The schedule as wall-clock times, for the page: step 0 at `start_ms`, one step per `step`.
    pub fn injected_anomalies(
        &self,
        start_ms: i64,
        step: std::time::Duration,
    ) -> Vec<crate::check::history::InjectedAnomaly> {
        let step_ms = step.as_millis() as i64;
        let mut out: Vec<_> = self
            .injections
            .iter()
            .map(|i| crate::check::history::InjectedAnomaly {
                kind: i.kind.to_string(),
                entity: Self::entity_name(i.entity),
                start_ms: start_ms + i.start_step as i64 * step_ms,
                duration_ms: i.steps as i64 * step_ms,
            })
            .collect();
        out.sort_by_key(|i| i.start_ms);
        out
    }

    /// Generates every entity's point for the current step and advances.
    pub fn next_step(&mut self) -> Vec<Point> {
        let k = self.step;
        self.step += 1;
        // Looked up once per step, not once per entity: a load run has 100k entities.
        let mut active: Vec<Injection> = self
            .injections
            .iter()
            .filter(|i| k >= i.start_step && k < i.start_step + i.steps)
            .copied()
            .collect();
        active.sort_by_key(|i| i.entity);
        (0..self.params.len())
            .map(|e| {
                // The first scheduled one when several overlap (the sort is stable).
                let at = active.partition_point(|i| i.entity < e);
                let inj = active.get(at).filter(|i| i.entity == e).copied();
                self.point(e, k, inj)
            })
            .collect()
    }

    fn point(&mut self, e: usize, k: u64, active: Option<Injection>) -> Point {
        let p = &self.params[e];
        let rng = &mut self.rngs[e];
        let load = 1.0 + 0.3 * (std::f64::consts::TAU * k as f64 / self.period_steps + p.phase).sin();
        let mut bw = p.bandwidth * load * (1.0 + 0.03 * rng.normal());
        let mut lat = p.latency * (0.9 + 0.1 * load) * (1.0 + 0.05 * rng.normal());
        let mut loss = (0.05 + 0.02 * rng.normal()).max(0.0);
        let mut jit = p.jitter * (1.0 + 0.1 * rng.normal());
        let mut cpu = 20.0 + 30.0 * load + 2.0 * rng.normal();
        self.memory[e] = p.memory + 0.95 * (self.memory[e] - p.memory) + 0.5 * rng.normal();
        let mut mem = self.memory[e];
        let mut err = (0.02 + 0.01 * rng.normal()).max(0.0);
        if let Some(inj) = active {
            let progress = (k - inj.start_step) as f64 / inj.steps.max(1) as f64;
            match inj.kind {
                AnomalyKind::Spike => {
                    lat *= 5.0;
                    err += 3.0;
                }
                AnomalyKind::LevelShift => bw *= 0.35,
                AnomalyKind::Drift => {
                    lat *= 1.0 + 2.0 * progress;
                    jit *= 1.0 + progress;
                }
                AnomalyKind::PacketLossBurst => {
                    loss += 8.0;
                    err += 2.0;
                }
                AnomalyKind::LatencyJitter => {
                    lat *= 2.5;
                    jit *= 4.0;
                }
                AnomalyKind::CpuSaturation => {
                    cpu = 97.0 + rng.normal();
                    mem += 20.0;
                    lat *= 1.6;
                }
            }
        }
        Point {
            values: [
                bw.max(0.0),
                lat.max(0.0),
                loss.min(100.0),
                jit.max(0.0),
                cpu.clamp(0.0, 100.0),
                mem.clamp(0.0, 100.0),
                err.min(100.0),
            ],
            anomaly: active.map(|i| i.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_labels_follow_the_schedule() {
        let inj = vec![Injection { entity: 1, kind: AnomalyKind::Spike, start_step: 5, steps: 3 }];
        let mut a = Simulator::new(3, 7, 100, inj.clone());
        let mut b = Simulator::new(3, 7, 100, inj);
        for k in 0..10u64 {
            let (pa, pb) = (a.next_step(), b.next_step());
            assert_eq!(pa, pb);
            assert_eq!(pa[1].anomaly.is_some(), (5..8).contains(&k), "step {k}");
            assert!(pa[0].anomaly.is_none() && pa[2].anomaly.is_none());
        }
    }

    #[test]
    fn every_kind_moves_its_features() {
        for kind in AnomalyKind::ALL {
            let inj = vec![Injection { entity: 0, kind, start_step: 100, steps: 20 }];
            let mut sim = Simulator::new(1, 3, 1000, inj);
            let points: Vec<Point> = (0..120).map(|_| sim.next_step().remove(0)).collect();
            let mean = |r: std::ops::Range<usize>, f: usize| {
                r.clone().map(|i| points[i].values[f]).sum::<f64>() / r.len() as f64
            };
            let moved = (0..7).any(|f| {
                let (before, during) = (mean(60..100, f), mean(110..120, f));
                (during - before).abs() > 0.3 * before.abs().max(1.0)
            });
            assert!(moved, "{kind} changed nothing");
        }
    }
}
