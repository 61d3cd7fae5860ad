//! The commands of the binary, one module each, and what they share: logging, the
//! shutdown signal and a progress line.

pub(crate) mod eval;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod train;

use std::path::Path;

use anyhow::Result;
use tokio::sync::watch;
use tracing::info;

use dwcp_anomaly::internals::config::{Config, LogFormat};

pub(crate) fn init_logging(level: &str, format: LogFormat) {
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

pub(crate) fn check_config(file: &Path) -> Result<()> {
    let cfg = Config::load(Some(file))?;
    print!("{}", cfg.to_yaml());
    eprintln!("{}: valid", file.display());
    Ok(())
}

pub(crate) fn shutdown_signal() -> watch::Receiver<bool> {
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

/// A textual progress line on stderr, updated every 1 %.
pub(crate) fn indicatif_like_progress(total: u64) -> impl FnMut(u64) {
    let mut last = u64::MAX;
    move |done| {
        let pct = done * 100 / total.max(1);
        if pct != last {
            last = pct;
            eprint!("\rsimulating: {pct:3}% ({done}/{total} steps)");
        }
    }
}

/// What `--version` prints: version, the commit built from, and the ONNX engine this machine
/// offers (ONNX Runtime with its version and library, or tract) as the default configuration
/// finds it (`ORT_DYLIB_PATH`, then the `onnxruntime` package of `DWCP_ANOMALY_PYTHON` or
/// `python3`; a config's `onnx.runtime_path` comes first when the service runs).
pub(crate) fn long_version() -> String {
    use dwcp_anomaly::internals::config::OnnxConfig;
    use dwcp_anomaly::internals::onnx::find_runtime;
    let backend = match find_runtime(&OnnxConfig::default()) {
        Some((path, via)) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let version = name.split_once(".so.").map_or("version unknown", |(_, v)| v);
            format!("ONNX Runtime {version} ({}, found via {via}); tract built in", path.display())
        }
        None => "tract (built in; no ONNX Runtime library found via ORT_DYLIB_PATH or the \
                 onnxruntime package of DWCP_ANOMALY_PYTHON/python3)"
            .to_string(),
    };
    format!(
        "dwcp-anomaly {}\ncommit: {}\nonnx backend: {backend}\n",
        env!("CARGO_PKG_VERSION"),
        env!("DWCP_GIT_COMMIT")
    )
}
