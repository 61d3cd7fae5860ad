//! `train`: fit every enabled detector on normal data and write the state `serve` loads.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use dwcp_anomaly::internals::config::{Config, LogFormat};

use super::init_logging;

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// A CSV in the common format (one entity), or a directory of them (train.csv of a
    /// train/test directory is used).
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// YAML config file (profile, detectors).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Where the state is written (`serve --state-dir` reads it).
    #[arg(long)]
    pub(crate) state_dir: PathBuf,
    /// `job` label of the trained entities (their `instance` is the file name).
    #[arg(long, default_value = "dwcp")]
    pub(crate) job: String,
}

pub(crate) fn train_cmd(args: TrainArgs) -> Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging("warn", LogFormat::Text);
    let sources = dwcp_anomaly::internals::dataset::discover(&args.data)?;
    let bar = indicatif::ProgressBar::new(sources.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("training [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let trained = dwcp_anomaly::internals::pipeline::train::train(
        &cfg,
        &sources,
        &args.job,
        &args.state_dir,
        |i, name| {
            bar.set_position(i as u64);
            bar.set_message(name.to_string());
        },
    )?;
    bar.finish_and_clear();
    for (name, points, took) in &trained.entities {
        println!("{name}: fitted on {points} normal vectors in {:.1} ms", took.as_secs_f64() * 1e3);
    }
    println!("wrote {} ({} entities)", trained.file.display(), trained.entities.len());
    Ok(())
}
