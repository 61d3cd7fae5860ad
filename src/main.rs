//! `dwcp-anomaly`: the command line. Parses arguments, sets up logging, loads the config and
//! runs a command; the only place that uses `anyhow`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use tracing::{error, info, warn};

use dwcp_anomaly::config::{Config, LogFormat};
use dwcp_anomaly::http::{self, AppState};
use dwcp_anomaly::ingest;
use dwcp_anomaly::pipeline::Pipeline;
use dwcp_anomaly::simulate::{self, Injection, PushOptions, Simulator};
use dwcp_anomaly::telemetry::Telemetry;

#[derive(Parser)]
#[command(
    name = "dwcp-anomaly",
    version,
    about = "Anomaly detection for Prometheus and OpenTelemetry metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: remote-write in, scores out on /metrics and remote-write.
    Serve(ServeArgs),
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The YAML file.
        file: PathBuf,
    },
    /// Generate synthetic DWCP traffic with injected anomalies.
    Simulate(SimulateArgs),
    /// Fit every enabled detector on normal data (labeled CSV) and write the state `serve` loads.
    Train(TrainArgs),
    /// Replay labeled CSV datasets through the detectors; write an accuracy report and plots.
    Eval(EvalArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// A CSV in the common format (one entity), or a directory of them (train.csv of a
    /// train/test directory is used).
    #[arg(long)]
    data: PathBuf,
    /// YAML config file (profile, detectors).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where the state is written (`serve --state-dir` reads it).
    #[arg(long)]
    state_dir: PathBuf,
    /// `job` label of the trained entities (their `instance` is the file name).
    #[arg(long, default_value = "dwcp")]
    job: String,
}

#[derive(Args)]
struct EvalArgs {
    /// A CSV in the common format, or a directory searched recursively (a directory holding
    /// train.csv + test.csv is one dataset). Repeat to evaluate several together: the totals
    /// are over all of them.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// YAML config file (detectors, thresholds, refit schedule).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Output directory for report.json, report.md and plots.
    #[arg(long)]
    out: PathBuf,
    /// Set the threshold from this false-positive rate (overrides detect.threshold).
    #[arg(long)]
    target_fpr: Option<f64>,
    /// Share of a lone CSV used for the initial fit.
    #[arg(long, default_value_t = 0.3)]
    fit_fraction: f64,
    /// Run only these detectors (comma-separated, e.g. zscore,iforest).
    #[arg(long, value_delimiter = ',')]
    detectors: Vec<String>,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// Also write each dataset's per-point scores (`<dataset>.scores.csv`).
    #[arg(long)]
    scores: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// YAML config file (default: embedded defaults).
    #[arg(long, short, env = "DWCP_ANOMALY_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding `listen` in the config.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// State directory, overriding `state_dir` in the config.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address, overriding `otlp.grpc_listen` in the config.
    #[arg(long)]
    otlp_grpc_listen: Option<SocketAddr>,
    /// Also feed the service simulated DWCP traffic with injected anomalies (1 s checks).
    #[arg(long)]
    demo: bool,
}

#[derive(Args)]
struct SimulateArgs {
    #[command(subcommand)]
    output: SimOutput,
    /// Number of entities (`dwcp-node-01` …).
    #[arg(long, default_value_t = 5, global = true)]
    entities: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Time between two points.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    step: Duration,
    /// Length of the load cycle (seasonality).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, global = true)]
    period: Duration,
    /// Inject an anomaly: ENTITY:KIND:START:DURATION (e.g. 2:spike:5m:1m); repeatable.
    /// Kinds: spike, level_shift, drift, packet_loss_burst, latency_jitter, cpu_saturation.
    #[arg(long = "anomaly", global = true)]
    anomalies: Vec<String>,
    /// Also inject anomalies at random about this often (0 = none).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, global = true)]
    anomaly_every: Duration,
    /// Length of random anomalies.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    anomaly_length: Duration,
    /// No random anomalies before this time.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, global = true)]
    warmup: Duration,
}

#[derive(Subcommand)]
enum SimOutput {
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
    /// Push the simulation as remote-write in real time.
    Push {
        /// Remote-write URL.
        #[arg(long, default_value = "http://127.0.0.1:9490/api/v1/write")]
        url: String,
        /// `job` label of the pushed series.
        #[arg(long, default_value = "dwcp")]
        job: String,
        /// Stop after this long (default: until interrupted).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Serve(args) => serve(args).await,
                    Command::CheckConfig { file } => check_config(&file),
                    Command::Simulate(args) => simulate_cmd(args).await,
                    Command::Train(args) => tokio::task::spawn_blocking(move || train_cmd(args)).await?,
                    Command::Eval(args) => tokio::task::spawn_blocking(move || eval_cmd(args)).await?,
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal (and never with NO_COLOR set): a log file or journald gets
    // plain text instead of ANSI escapes.
    use std::io::IsTerminal as _;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(color);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn check_config(file: &Path) -> Result<()> {
    let cfg = Config::load(Some(file))?;
    print!("{}", cfg.to_yaml());
    eprintln!("{}: valid", file.display());
    Ok(())
}

fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        info!("Shutdown signal received.");
        let _ = tx.send(true);
    });
    rx
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg.log.level, cfg.log.format);
    if let Some(listen) = args.listen {
        cfg.listen = listen;
    }
    if let Some(dir) = args.state_dir {
        cfg.state_dir = Some(dir);
    }
    if let Some(a) = args.otlp_grpc_listen {
        cfg.otlp.grpc_listen = Some(a);
    }
    if args.demo {
        cfg.check_interval = Duration::from_secs(1);
        info!("Demo mode: 1 s checks, simulated traffic for 5 entities with an anomaly about every 40 s.");
    }
    if let Some(dir) = &cfg.state_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create state dir {}", dir.display()))?;
    }
    let telemetry = Arc::new(Telemetry::default());
    let otel = dwcp_anomaly::telemetry::otel::init(&cfg.otel, &telemetry)?;
    if !otel.signals().is_empty() {
        info!(signals = ?otel.signals(), "Exporting own telemetry over OTLP (OTEL_EXPORTER_OTLP_* environment).");
    }
    let pipeline = Pipeline::new(&cfg, Arc::clone(&telemetry)).context("cannot build pipeline")?;
    let state = AppState::new(
        &cfg,
        pipeline.sink(),
        pipeline.scoreboard(),
        Arc::clone(&telemetry),
        pipeline.ready_flag(),
    )
    .with_history(pipeline.history());
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let grpc_listener = match cfg.otlp.grpc_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (otlp.grpc_listen)"))?,
        ),
        None => None,
    };
    let shutdown = shutdown_signal();
    for target in &cfg.scrape {
        info!(url = %target.url, interval = ?target.interval, "Scraping.");
        let task =
            ingest::scrape::run(target.clone(), pipeline.sink(), Arc::clone(&telemetry), shutdown.clone());
        tokio::spawn(task);
    }
    let pipeline_task = pipeline.spawn(shutdown.clone())?;
    info!(%addr, "Listening: POST /api/v1/write, POST /v1/metrics (OTLP/HTTP), GET /metrics, GET /.");
    if let Some(l) = grpc_listener {
        let grpc_addr = l.local_addr()?;
        info!(addr = %grpc_addr, "Listening: OTLP/gRPC MetricsService/Export.");
        let mut stop = shutdown.clone();
        let grpc_state = state.clone();
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = http::otlp::serve_grpc(l, grpc_state, done).await {
                error!(error = %e, "OTLP/gRPC server failed.");
            }
        });
    }
    if args.demo {
        let sim = demo_simulator();
        // The push task's first step goes out now, one step a second: the page lists the
        // schedule so detections can be checked against it.
        let injected = sim.injected_anomalies(dwcp_anomaly::pipeline::now_ms(), Duration::from_secs(1));
        state.history.lock().injections = injected;
        let opts = PushOptions {
            url: format!("http://127.0.0.1:{}/api/v1/write", addr.port()),
            interval: Duration::from_secs(1),
            job: "dwcp-demo".into(),
            steps: None,
        };
        tokio::spawn(simulate::push(sim, opts, shutdown.clone()));
    }
    let mut http_shutdown = shutdown.clone();
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move {
            let _ = http_shutdown.wait_for(|s| *s).await;
        })
        .await
        .context("HTTP server failed")?;
    if tokio::time::timeout(Duration::from_secs(15), pipeline_task).await.is_err() {
        warn!("Pipeline did not stop within 15s.");
    }
    tokio::task::spawn_blocking(move || otel.shutdown()).await.ok();
    info!("Stopped.");
    Ok(())
}

fn demo_simulator() -> Simulator {
    // One step per second: warm-up of 60 s, then an anomaly every ~40 s lasting 15 s.
    let schedule = simulate::random_schedule(5, 1_000_000, 60, 40, 15, 42);
    Simulator::new(5, 42, 600, schedule)
}

async fn simulate_cmd(args: SimulateArgs) -> Result<()> {
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
        SimOutput::Csv { duration, .. } => steps_of(*duration),
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
            let start_ms = dwcp_anomaly::rfc3339::parse(&start).with_context(|| {
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
        SimOutput::Push { url, job, duration } => {
            let opts = PushOptions { url, interval: args.step, job, steps: duration.map(steps_of) };
            simulate::push(sim, opts, shutdown).await?;
        }
    }
    Ok(())
}

fn train_cmd(args: TrainArgs) -> Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging("warn", LogFormat::Text);
    let sources = dwcp_anomaly::dataset::discover(&args.data)?;
    let bar = indicatif::ProgressBar::new(sources.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("training [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let trained =
        dwcp_anomaly::pipeline::train::train(&cfg, &sources, &args.job, &args.state_dir, |i, name| {
            bar.set_position(i as u64);
            bar.set_message(name.to_string());
        })?;
    bar.finish_and_clear();
    for (name, points, took) in &trained.entities {
        println!("{name}: fitted on {points} normal vectors in {:.1} ms", took.as_secs_f64() * 1e3);
    }
    println!("wrote {} ({} entities)", trained.file.display(), trained.entities.len());
    Ok(())
}

fn eval_cmd(args: EvalArgs) -> Result<()> {
    use dwcp_anomaly::eval::{self, EvalOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut cfg = Config::load(args.config.as_deref())?;
    init_logging("warn", LogFormat::Text);
    if let Some(fpr) = args.target_fpr {
        if !(fpr > 0.0 && fpr < 1.0) {
            bail!("--target-fpr must be within (0, 1), got {fpr}");
        }
        cfg.detect.target_fpr = Some(fpr);
    }
    if !args.detectors.is_empty() {
        let names: Vec<&str> = args.detectors.iter().map(String::as_str).collect();
        cfg.detect.enable_only(&names).map_err(anyhow::Error::msg)?;
    }
    if !(0.0..1.0).contains(&args.fit_fraction) {
        bail!("--fit-fraction must be within [0, 1), got {}", args.fit_fraction);
    }
    let sources = dwcp_anomaly::dataset::discover_all(&args.data)?;
    let opts = EvalOptions { fit_fraction: args.fit_fraction, plots: !args.no_plots, scores: args.scores };
    let total = eval::count_points(&sources, opts.fit_fraction);
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} points ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (progress, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let results = std::thread::scope(|s| {
        let worker = s.spawn(|| eval::evaluate_all(&cfg, &sources, &opts, &progress, &done));
        while !worker.is_finished() {
            bar.set_position(progress.load(Ordering::Relaxed) as u64);
            bar.set_message(format!("datasets {}/{}", done.load(Ordering::Relaxed), sources.len()));
            std::thread::sleep(Duration::from_millis(100));
        }
        worker.join().map_err(|_| anyhow::anyhow!("evaluation thread panicked"))
    })?;
    bar.finish_and_clear();
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    let mut first_error = None;
    for (source, r) in sources.iter().zip(results) {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => {
                eprintln!("skipped {}: {e}", source.name());
                skipped.push((source.name().to_string(), e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    if ok.is_empty()
        && let Some(e) = first_error
    {
        return Err(e.into());
    }
    let report = eval::write_outputs(&ok, &skipped, &cfg, &args.out, &opts)?;
    println!(
        "{:<28} {:>8} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "dataset/detector", "F1", "PA-F1", "ev.rec", "FPR", "delay", "AUC-PR"
    );
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.3}"));
    for (group, means) in
        report.groups.iter().map(|(g, m)| (g.as_str(), m)).chain(std::iter::once(("TOTAL", &report.totals)))
    {
        for (d, m) in means {
            println!(
                "{:<28} {:>8} {:>7} {:>7} {:>9} {:>7} {:>7}",
                format!("{group}/{d}"),
                f(m.f1),
                f(m.pa_f1),
                f(m.event_recall),
                f(m.fpr),
                f(m.delay_mean_points),
                f(m.auc_pr)
            );
        }
    }
    println!("wrote {} (report.json, report.md, plots)", args.out.display());
    Ok(())
}

/// A textual progress line on stderr, updated every 1 %.
fn indicatif_like_progress(total: u64) -> impl FnMut(u64) {
    let mut last = u64::MAX;
    move |done| {
        let pct = done * 100 / total.max(1);
        if pct != last {
            last = pct;
            eprint!("\rsimulating: {pct:3}% ({done}/{total} steps)");
        }
    }
}
