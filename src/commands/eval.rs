//! `eval`: replay labelled datasets through the detectors; report and plots.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use dwcp_anomaly::internals::config::{Config, DetectConfig, LogFormat};

use super::init_logging;

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// A CSV in the common format, or a directory searched recursively (a directory holding
    /// train.csv + test.csv is one dataset). Repeat to evaluate several together: the totals
    /// are over all of them.
    #[arg(long, required = true)]
    pub(crate) data: Vec<PathBuf>,
    /// YAML config file (detectors, thresholds, refit schedule).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Output directory for report.json, report.md and plots.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Set the threshold from this false-positive rate (overrides detect.threshold).
    #[arg(long)]
    pub(crate) target_fpr: Option<f64>,
    /// Share of a lone CSV used for the initial fit.
    #[arg(long, default_value_t = 0.3)]
    pub(crate) fit_fraction: f64,
    /// Run only these detectors (comma-separated, e.g. zscore,iforest).
    #[arg(long, value_delimiter = ',')]
    pub(crate) detectors: Vec<String>,
    /// Skip the plots.
    #[arg(long)]
    pub(crate) no_plots: bool,
    /// Also write each dataset's per-point scores (`<dataset>.scores.csv`).
    #[arg(long)]
    pub(crate) scores: bool,
}

pub(crate) fn eval_cmd(args: EvalArgs) -> Result<()> {
    use dwcp_anomaly::internals::eval::{self, EvalOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Without a config file: the ensemble measured best across families, not the service's
    // conservative defaults (docs/accuracy.md).
    let mut cfg = match &args.config {
        Some(path) => Config::load(Some(path))?,
        None => Config { detect: DetectConfig::ensemble(), ..Config::load(None)? },
    };
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
    let sources = dwcp_anomaly::internals::dataset::discover_all(&args.data)?;
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
