//! `serve`: the service, and `serve --demo` with its built-in simulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tracing::{error, info, warn};

use dwcp_anomaly::internals::config::{Config, WebConfig};
use dwcp_anomaly::internals::http::auth::WebAuth;
use dwcp_anomaly::internals::http::{self, AppState};
use dwcp_anomaly::internals::ingest;
use dwcp_anomaly::internals::pipeline::Pipeline;
use dwcp_anomaly::internals::simulate::{self, PushOptions, Simulator};
use dwcp_anomaly::internals::telemetry::Telemetry;

use super::{init_logging, shutdown_signal};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// YAML config file (default: embedded defaults).
    #[arg(long, short, env = "DWCP_ANOMALY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Listen address, overriding `listen` in the config.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// State directory, overriding `state_dir` in the config.
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address, overriding `otlp.grpc_listen` in the config.
    #[arg(long)]
    pub(crate) otlp_grpc_listen: Option<SocketAddr>,
    /// Web configuration file (exporter-toolkit format), overriding `web_config_file`.
    #[arg(long = "web.config.file")]
    pub(crate) web_config_file: Option<PathBuf>,
    /// Also feed the service simulated DWCP traffic with injected anomalies (1 s checks).
    #[arg(long)]
    pub(crate) demo: bool,
}

pub(crate) async fn serve(args: ServeArgs) -> Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg.log.level, cfg.log.format);
    if let Some(listen) = args.listen {
        cfg.listen = listen;
    }
    if let Some(dir) = args.state_dir {
        cfg.state_dir = Some(dir);
    }
    if let Some(f) = args.web_config_file {
        cfg.web_config_file = Some(f);
    }
    let mut tls_config = None;
    let auth = match &cfg.web_config_file {
        None => None,
        Some(path) => {
            let web = WebConfig::load(path).map_err(|e| anyhow::anyhow!("web_config_file {e}"))?;
            tls_config = web.tls_server_config.clone().map(|t| (path.clone(), t));
            let auth =
                WebAuth::new(&web).map_err(|e| anyhow::anyhow!("web_config_file {}: {e}", path.display()))?;
            info!(
                file = %path.display(),
                users = web.basic_auth_users.len(),
                bearer_tokens = web.bearer_tokens.len(),
                open_metrics = web.open_metrics,
                "Authentication on: every request but /-/healthy and /-/ready needs credentials."
            );
            auth
        }
    };
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
    let telemetry = Arc::new(Telemetry::new(cfg.check_interval));
    let otel = dwcp_anomaly::internals::telemetry::otel::init(&cfg.otel, &telemetry)?;
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
    .with_history(pipeline.history())
    .with_auth(auth);
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
    // One reloadable TLS configuration per listener (ALPN differs), reloaded on SIGHUP.
    let tls = match &tls_config {
        None => None,
        Some((path, t)) => {
            let load = |alpn: &[u8]| {
                http::tls::TlsSource::new(t, &[alpn])
                    .map_err(|e| anyhow::anyhow!("web_config_file {}: {e}", path.display()))
            };
            let sources = (load(http::tls::ALPN_HTTP1)?, load(http::tls::ALPN_H2)?);
            reload_on_hangup(vec![Arc::clone(&sources.0), Arc::clone(&sources.1)]);
            info!(
                cert_file = %t.cert_file.display(),
                client_auth = ?t.client_auth_type,
                "TLS on for HTTP and OTLP/gRPC; the certificate is reloaded when its files change or on SIGHUP."
            );
            Some(sources)
        }
    };
    let shutdown = shutdown_signal();
    for target in &cfg.scrape {
        info!(url = %target.url, interval = ?target.interval, "Scraping.");
        let task = ingest::scrape::run(
            target.clone(),
            ingest::remote_write::Limits::from_config(&cfg.ingest),
            pipeline.sink(),
            Arc::clone(&telemetry),
            shutdown.clone(),
        );
        tokio::spawn(task);
    }
    let pipeline_task = pipeline.spawn(shutdown.clone())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, "Listening: POST /api/v1/write, POST /v1/metrics (OTLP/HTTP), GET /metrics, GET /.");
    if let Some(l) = grpc_listener {
        let grpc_addr = l.local_addr()?;
        info!(addr = %grpc_addr, "Listening: OTLP/gRPC MetricsService/Export.");
        let mut stop = shutdown.clone();
        let grpc_state = state.clone();
        let grpc_tls = tls.as_ref().map(|t| Arc::clone(&t.1));
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = http::otlp::serve_grpc(l, grpc_tls, grpc_state, done).await {
                error!(error = %e, "OTLP/gRPC server failed.");
            }
        });
    }
    if args.demo {
        let sim = demo_simulator();
        // The push task's first step goes out now, one step a second: the page lists the
        // schedule so detections can be checked against it.
        let injected =
            sim.injected_anomalies(dwcp_anomaly::internals::rfc3339::now_ms(), Duration::from_secs(1));
        state.history.lock().injections = injected;
        let opts = PushOptions::remote_write(
            format!("http://127.0.0.1:{}/api/v1/write", addr.port()),
            Duration::from_secs(1),
            "dwcp-demo".into(),
        );
        tokio::spawn(simulate::push(sim, opts, shutdown.clone()));
    }
    let mut http_shutdown = shutdown.clone();
    let stopped = async move {
        let _ = http_shutdown.wait_for(|s| *s).await;
    };
    match tls {
        None => axum::serve(listener, http::router(state)).with_graceful_shutdown(stopped).await,
        Some((source, _)) => {
            let listener = http::tls::TlsListener::new(listener, source)?;
            axum::serve(listener, http::router(state)).with_graceful_shutdown(stopped).await
        }
    }
    .context("HTTP server failed")?;
    if tokio::time::timeout(Duration::from_secs(15), pipeline_task).await.is_err() {
        warn!("Pipeline did not stop within 15s.");
    }
    tokio::task::spawn_blocking(move || otel.shutdown()).await.ok();
    info!("Stopped.");
    Ok(())
}

/// Reloads every TLS source on SIGHUP (which would otherwise end the process).
fn reload_on_hangup(sources: Vec<Arc<http::tls::TlsSource>>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            warn!("Cannot listen for SIGHUP; the certificate is still reloaded when its files change.");
            return;
        };
        while hup.recv().await.is_some() {
            for s in &sources {
                s.reload_logged("SIGHUP");
            }
        }
    });
    #[cfg(not(unix))]
    drop(sources);
}

fn demo_simulator() -> Simulator {
    // One step per second: warm-up of 60 s, then an anomaly every ~40 s lasting 15 s.
    let schedule = simulate::random_schedule(5, 1_000_000, 60, 40, 15, 42);
    Simulator::new(5, 42, 600, schedule)
}
