//! `simulate`: synthetic DWCP traffic with injected anomalies, served, pushed or written as CSV.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use dwcp_anomaly::internals::config::LogFormat;
use dwcp_anomaly::internals::simulate::{self, Injection, PushOptions, PushTarget, Simulator};

use super::{indicatif_like_progress, init_logging, shutdown_signal};

#[derive(Args)]
pub(crate) struct SimulateArgs {
    #[command(subcommand)]
    pub(crate) output: SimOutput,
    /// Number of entities (`dwcp-node-01` …).
    #[arg(long, default_value_t = 5, global = true)]
    pub(crate) entities: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1, global = true)]
    pub(crate) seed: u64,
    /// Time between two points (`push`/`serve`: wall time between steps).
    #[arg(long, visible_alias = "interval", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub(crate) step: Duration,
    /// Length of the load cycle (seasonality).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, global = true)]
    pub(crate) period: Duration,
    /// Inject an anomaly: ENTITY:KIND:START:DURATION (e.g. 2:spike:5m:1m); repeatable. START
    /// counts simulated time from the first point: from process start for `serve` and `push`.
    /// Kinds: spike, level_shift, drift, packet_loss_burst, latency_jitter, cpu_saturation.
    #[arg(long = "anomaly", global = true)]
    pub(crate) anomalies: Vec<String>,
    /// Also inject anomalies at random about this often (0 = none).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, global = true)]
    pub(crate) anomaly_every: Duration,
    /// Length of random anomalies.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    pub(crate) anomaly_length: Duration,
    /// No random anomalies before this time.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, global = true)]
    pub(crate) warmup: Duration,
}

#[derive(Subcommand)]
pub(crate) enum SimOutput {
    /// Write labeled CSV files (one per entity) in the common dataset format.
    Csv {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Simulated time span.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// First timestamp (RFC 3339).
        #[arg(long, default_value = "2024-01-01T00:00:00Z")]
        start: String,
    },
    /// Serve the simulation as a Prometheus scrape target in real time.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9491")]
        listen: SocketAddr,
    },
    /// Push the simulation in real time (remote-write 1.0 unless an OTLP target is given);
    /// prints what was offered, acknowledged, refused and dropped at the end.
    Push {
        /// Remote-write 1.0 URL.
        #[arg(long, visible_alias = "url", default_value = "http://127.0.0.1:9490/api/v1/write")]
        remote_write: String,
        /// Push OTLP/HTTP protobuf to this URL instead (e.g. http://127.0.0.1:9490/v1/metrics).
        #[arg(long, conflicts_with = "otlp_grpc")]
        otlp_http: Option<String>,
        /// Push OTLP/gRPC to this endpoint instead (e.g. http://127.0.0.1:4317).
        #[arg(long)]
        otlp_grpc: Option<String>,
        /// `job` label of the pushed series.
        #[arg(long, default_value = "dwcp")]
        job: String,
        /// Stop after this long (default: until interrupted).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Samples per request, rounded to whole entities (Prometheus sends up to 2000).
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Retries of a request the receiver answers 429/5xx/UNAVAILABLE, before its samples
        /// are counted as dropped.
        #[arg(long, default_value_t = 5)]
        retries: u32,
    },
}

pub(crate) async fn simulate_cmd(args: SimulateArgs) -> Result<()> {
    init_logging("info", LogFormat::Text);
    if args.entities == 0 {
        bail!("--entities must be at least 1");
    }
    if args.step.is_zero() {
        bail!("--step must be > 0");
    }
    let step_ms = args.step.as_millis() as u64;
    let steps_of = |d: Duration| (d.as_millis() as u64 / step_ms).max(1);
    let total = match &args.output {
        SimOutput::Csv { duration, .. } | SimOutput::Push { duration: Some(duration), .. } => {
            steps_of(*duration)
        }
        _ => u64::MAX / 4,
    };
    let mut schedule: Vec<Injection> = args
        .anomalies
        .iter()
        .map(|a| simulate::parse_injection(a, args.step))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    if let Some(bad) = schedule.iter().find(|i| i.entity >= args.entities) {
        bail!("--anomaly names entity {} but only {} entities are simulated", bad.entity + 1, args.entities);
    }
    if !args.anomaly_every.is_zero() {
        schedule.extend(simulate::random_schedule(
            args.entities,
            total.min(100_000_000),
            steps_of(args.warmup),
            steps_of(args.anomaly_every),
            steps_of(args.anomaly_length),
            args.seed,
        ));
    }
    let sim = Simulator::new(args.entities, args.seed, steps_of(args.period), schedule);
    let shutdown = shutdown_signal();
    match args.output {
        SimOutput::Csv { out, start, .. } => {
            let start_ms = dwcp_anomaly::internals::rfc3339::parse(&start).with_context(|| {
                format!("--start {start:?} is not an RFC 3339 UTC time like 2024-01-01T00:00:00Z")
            })?;
            let mut sim = sim;
            let bar = indicatif_like_progress(total);
            let files = simulate::write_csv(&mut sim, &out, total, start_ms, args.step, bar)
                .with_context(|| format!("cannot write CSV files to {}", out.display()))?;
            eprintln!();
            for i in sim.injections() {
                eprintln!(
                    "anomaly: {} {} steps {}..{}",
                    Simulator::entity_name(i.entity),
                    i.kind,
                    i.start_step,
                    i.start_step + i.steps
                );
            }
            eprintln!("wrote {} files to {}", files.len(), out.display());
        }
        SimOutput::Serve { listen } => simulate::serve(listen, sim, args.step, shutdown).await?,
        SimOutput::Push {
            remote_write,
            otlp_http,
            otlp_grpc,
            job,
            duration,
            batch,
            concurrency,
            retries,
        } => {
            let target = match (otlp_http, otlp_grpc) {
                (Some(url), _) => PushTarget::OtlpHttp(url),
                (_, Some(url)) => PushTarget::OtlpGrpc(url),
                _ => PushTarget::RemoteWrite(remote_write),
            };
            let start_ms = dwcp_anomaly::internals::rfc3339::now_ms();
            for i in sim.injected_anomalies(start_ms, args.step) {
                eprintln!(
                    "anomaly: {} {} from {} for {}",
                    i.entity,
                    i.kind,
                    dwcp_anomaly::internals::rfc3339::format(i.start_ms),
                    humantime::format_duration(Duration::from_millis(i.duration_ms as u64))
                );
            }
            let opts = PushOptions {
                target,
                interval: args.step,
                job,
                steps: duration.map(steps_of),
                batch,
                concurrency,
                retries,
            };
            let report = simulate::push(sim, opts, shutdown).await?;
            println!("{report}");
        }
    }
    Ok(())
}
