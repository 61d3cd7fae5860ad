//! Outputs of the simulator: labeled CSV and a scrape target (pushes are in `push`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::info;

use crate::rfc3339;

use super::{FEATURES, METRICS, Point, Simulator};

/// Writes `steps` steps as one labeled CSV per entity (`<dir>/<instance>.csv`, columns
/// `timestamp,<features>,label`), the common dataset format. Returns the files written.
pub fn write_csv(
    sim: &mut Simulator,
    dir: &Path,
    steps: u64,
    start_ms: i64,
    step: Duration,
    mut progress: impl FnMut(u64),
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let paths: Vec<_> =
        (0..sim.entities()).map(|i| dir.join(format!("{}.csv", Simulator::entity_name(i)))).collect();
    let mut files = paths
        .iter()
        .map(|p| std::fs::File::create(p).map(std::io::BufWriter::new))
        .collect::<std::io::Result<Vec<_>>>()?;
    for f in &mut files {
        writeln!(f, "timestamp,{},label", FEATURES.join(","))?;
    }
    let mut line = String::new();
    for k in 0..steps {
        let ts = rfc3339::format(start_ms + k as i64 * step.as_millis() as i64);
        for (f, p) in files.iter_mut().zip(sim.next_step()) {
            line.clear();
            line.push_str(&ts);
            for v in p.values {
                let _ = write!(line, ",{v:.4}");
            }
            let _ = writeln!(line, ",{}", u8::from(p.anomaly.is_some()));
            f.write_all(line.as_bytes())?;
        }
        progress(k + 1);
    }
    for f in &mut files {
        f.flush()?;
    }
    Ok(paths)
}

/// The Prometheus text exposition of one step: the seven DWCP gauges per entity (label
/// `instance`), plus `dwcp_sim_anomaly_active{instance,kind}` as ground truth.
pub fn render_exposition(points: &[Point]) -> String {
    let mut out = String::new();
    for (f, metric) in METRICS.iter().enumerate() {
        let _ = writeln!(out, "# TYPE {metric} gauge");
        for (i, p) in points.iter().enumerate() {
            let _ = writeln!(out, "{metric}{{instance=\"{}\"}} {}", Simulator::entity_name(i), p.values[f]);
        }
    }
    let _ = writeln!(
        out,
        "# HELP dwcp_sim_anomaly_active 1 while an injected anomaly is active.\n# TYPE dwcp_sim_anomaly_active gauge"
    );
    for (i, p) in points.iter().enumerate() {
        let kind = p.anomaly.map_or("none", |k| k.as_str());
        let _ = writeln!(
            out,
            "dwcp_sim_anomaly_active{{instance=\"{}\",kind=\"{kind}\"}} {}",
            Simulator::entity_name(i),
            u8::from(p.anomaly.is_some())
        );
    }
    out
}

/// Serves the simulation as a scrape target on `/metrics`, advancing one step per `step` of
/// wall time since start. Returns when `shutdown` fires.
pub async fn serve(
    listen: SocketAddr,
    sim: Simulator,
    step: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let started = tokio::time::Instant::now();
    let state = Arc::new(Mutex::new((sim, Vec::<Point>::new())));
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let state = Arc::clone(&state);
            async move {
                let due = (started.elapsed().as_millis() / step.as_millis().max(1)) as u64;
                let mut guard = state.lock();
                let (sim, last) = &mut *guard;
                while sim.step() <= due {
                    log_injections(sim, crate::rfc3339::now_ms(), step);
                    *last = sim.next_step();
                }
                render_exposition(last)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    info!(addr = %listener.local_addr()?, "Simulated DWCP scrape target listening.");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

/// Logs the injections that start at the simulator's next step (at `ts`, steps of `step`), as
/// `serve --demo` does, so detections can be checked against them.
pub(super) fn log_injections(sim: &Simulator, ts: i64, step: Duration) {
    for inj in sim.injections().iter().filter(|i| i.start_step == sim.step()) {
        info!(
            kind = %inj.kind,
            entity = %Simulator::entity_name(inj.entity),
            start = %rfc3339::format(ts),
            duration = ?step * inj.steps as u32,
            "Injecting an anomaly."
        );
    }
}
