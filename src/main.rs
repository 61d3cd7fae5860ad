//! `dwcp-anomaly`: the command line. Parses arguments, sets up logging, loads the config and
//! runs a command (each in `commands/`); the only place that uses `anyhow`.

mod commands;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use commands::check_config;
use commands::eval::{EvalArgs, eval_cmd};
use commands::serve::{ServeArgs, serve};
use commands::simulate::{SimulateArgs, simulate_cmd};
use commands::train::{TrainArgs, train_cmd};

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

fn main() -> std::process::ExitCode {
    // `--version` says more than clap's one line: commit and ONNX backend (probed, so only here).
    if matches!(std::env::args().nth(1).as_deref(), Some("--version" | "-V")) {
        print!("{}", commands::long_version());
        return std::process::ExitCode::SUCCESS;
    }
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
