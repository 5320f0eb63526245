//! quantlens command line: `quantlens [PATH]` opens the window (the `gui` feature);
//! `report`, `render` and `bench` work headless.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use quantlens::model::Access;
use quantlens::model::variants::{VariantSpec, discover, load_variants_with, parse_variant_arg};
use quantlens::model::{Severity, Variant};
use quantlens::report::{
    ExplorerMetric, ReportOptions, SortKey, Thresholds, build_report, check, sort_layers, to_csv, to_json, to_markdown,
    to_model_explorer, to_table,
};

#[derive(Parser)]
#[command(name = "quantlens", version, about = "See what quantization did to your network")]
#[cfg_attr(
    not(feature = "gui"),
    command(after_help = "Built without the `gui` feature: no window, `render` or `bench-ui`.")
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A folder of precision variants or one .onnx file (opens the window).
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    path: Option<PathBuf>,
    /// Save one screenshot of the window once the model and its statistics are in, then exit.
    #[arg(long, value_name = "PNG")]
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    screenshot: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Per-layer report: quant params, weight statistics and error metrics per variant.
    Report {
        #[command(flatten)]
        input: Input,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Layer order.
        #[arg(long, value_enum, default_value_t = SortKey::Graph)]
        sort: SortKey,
        /// Add shared-bin histograms with this many bins, 1 to 4096 (JSON only).
        #[arg(long, value_parser = parse_bins)]
        bins: Option<usize>,
        /// The value overlaid on each node (with --format model-explorer).
        #[arg(long, value_enum, default_value_t = ExplorerMetric::Sqnr)]
        metric: ExplorerMetric,
        /// Write to this file instead of standard output (written atomically).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// CI gate: exit 1 with one line per quantized tensor below a threshold, 0 otherwise.
    Check {
        #[command(flatten)]
        input: Input,
        /// Lowest acceptable SQNR (dB) of any quantized tensor.
        #[arg(long, value_name = "DB")]
        min_sqnr: Option<f64>,
        /// Highest acceptable rmse/scale (0.289 is rounding alone).
        #[arg(long, value_name = "X")]
        max_rmse_scale: Option<f64>,
    },
    #[cfg(feature = "gui")]
    /// Renders what the window shows into a PNG, without a display (Vulkan, e.g. Mesa lavapipe).
    Render {
        /// A folder of variants or one .onnx file.
        path: PathBuf,
        /// The PNG to write (atomically).
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value_t = 1600)]
        width: u32,
        #[arg(long, default_value_t = 1000)]
        height: u32,
        /// 3D towers or the flat top-down view.
        #[arg(long, value_enum, default_value_t = ViewArg::ThreeD)]
        view: ViewArg,
        /// Select (and frame) the layer of this name.
        #[arg(long)]
        select: Option<String>,
    },
    #[cfg(feature = "gui")]
    /// Measures the window headless: open → first frame, CPU time per frame, RSS over reopens.
    BenchUi {
        /// A folder of variants or one .onnx file.
        path: PathBuf,
        /// Measured frames (the camera moves, the selection changes every 10).
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Times the same model is opened again (each open frees the previous).
        #[arg(long, default_value_t = 10)]
        cycles: usize,
    },
    /// Times the statistics kernels on synthetic tensors (ns per value, one thread); JSON.
    BenchKernels {
        /// Repetitions per kernel.
        #[arg(long, default_value_t = 50)]
        reps: usize,
    },
    /// Times import, statistics and histograms of a folder; prints JSON with peak RSS.
    Bench {
        #[command(flatten)]
        input: Input,
        /// Histogram bins, 1 to 4096.
        #[arg(long, default_value_t = 64, value_parser = parse_bins)]
        bins: usize,
    },
}

#[derive(clap::Args)]
struct Input {
    /// A folder of variants (`*float*`, `*int8*`, `*uint8*` .onnx) or one .onnx file.
    path: Option<PathBuf>,
    /// NAME=PATH names a variant file (repeatable; replaces folder discovery). A bare NAME
    /// picks the variant that `check` and `--format model-explorer` look at.
    #[arg(long = "variant", value_name = "NAME=PATH|NAME")]
    variants: Vec<String>,
}

impl Input {
    /// The bare `--variant NAME` (no `=PATH`), if any.
    fn selected(&self) -> Result<Option<&str>, String> {
        let bare: Vec<&str> = self.variants.iter().map(String::as_str).filter(|v| !v.contains('=')).collect();
        match bare.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(format!("pick one variant, not {}: {}", bare.len(), bare.join(", "))),
        }
    }
}

#[cfg(feature = "gui")]
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViewArg {
    #[value(name = "3d")]
    ThreeD,
    #[value(name = "2d")]
    TwoD,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
    /// A Markdown summary (variants, worst tensors, differing nodes) for pull requests.
    Md,
    /// Node data for Google's Model Explorer (overlays the same .onnx; see --metric).
    ModelExplorer,
}

/// Exit codes: 0 fine (warnings allowed), 1 nothing usable, 2 loaded but some tensors refused.
const EXIT_FAILED: u8 = 1;
const EXIT_DATA_ERRORS: u8 = 2;

fn main() -> ExitCode {
    // usage errors exit with 1 like every other failure: 2 means "report written, some
    // tensors refused", which a CI script must be able to tell apart
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Some(Command::Report { input, format, sort, bins, metric, out }) => {
            run_report(&input, format, sort, bins, metric, out.as_deref())
        }
        Some(Command::Check { input, min_sqnr, max_rmse_scale }) => run_check(&input, min_sqnr, max_rmse_scale),
        Some(Command::Bench { input, bins }) => run_bench(&input, bins),
        Some(Command::BenchKernels { reps }) => {
            let ns: serde_json::Map<String, serde_json::Value> =
                quantlens::report::bench::kernels(reps).into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
            println!("{:#}", serde_json::json!({ "ns_per_value": ns }));
            ExitCode::SUCCESS
        }
        #[cfg(feature = "gui")]
        Some(Command::Render { path, out, width, height, view, select }) => {
            run_render(path, out, width, height, view, select)
        }
        #[cfg(feature = "gui")]
        Some(Command::BenchUi { path, frames, cycles }) => run_bench_ui(path, frames, cycles),
        None => open_window(cli.path, cli.screenshot),
    }
}

#[cfg_attr(not(feature = "gui"), allow(dead_code))]
fn refuse_missing(path: &Path) -> Result<(), ExitCode> {
    if path.exists() {
        return Ok(());
    }
    eprintln!("quantlens: error: no such file or folder: {}", path.display());
    Err(ExitCode::from(EXIT_FAILED))
}

#[cfg(feature = "gui")]
fn app_exit_code(exit: bevy::app::AppExit) -> ExitCode {
    match exit {
        bevy::app::AppExit::Success => ExitCode::SUCCESS,
        bevy::app::AppExit::Error(code) => ExitCode::from(code.get()),
    }
}

#[cfg(feature = "gui")]
fn open_window(path: Option<PathBuf>, screenshot: Option<PathBuf>) -> ExitCode {
    if let Some(p) = &path
        && let Err(code) = refuse_missing(p)
    {
        return code;
    }
    app_exit_code(quantlens::app::window_app(path, screenshot).run())
}

#[cfg(not(feature = "gui"))]
fn open_window(_path: Option<PathBuf>, _screenshot: Option<PathBuf>) -> ExitCode {
    eprintln!("quantlens: built without the `gui` feature; use `quantlens report PATH` (see --help)");
    ExitCode::from(EXIT_FAILED)
}

#[cfg(feature = "gui")]
fn run_render(path: PathBuf, out: PathBuf, width: u32, height: u32, view: ViewArg, select: Option<String>) -> ExitCode {
    if let Err(code) = refuse_missing(&path) {
        return code;
    }
    let mode = match view {
        ViewArg::ThreeD => quantlens::layout::ViewMode::ThreeD,
        ViewArg::TwoD => quantlens::layout::ViewMode::TwoD,
    };
    let opts = quantlens::app::RenderOptions { path, out, width, height, mode, select };
    app_exit_code(quantlens::app::headless_app(&opts).run())
}

#[cfg(feature = "gui")]
fn run_bench_ui(path: PathBuf, frames: usize, cycles: usize) -> ExitCode {
    if let Err(code) = refuse_missing(&path) {
        return code;
    }
    match quantlens::app::bench::bench_ui(path, frames, cycles) {
        Ok(json) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn specs(input: &Input) -> Result<Vec<VariantSpec>, String> {
    let files: Vec<&String> = input.variants.iter().filter(|v| v.contains('=')).collect();
    if !files.is_empty() {
        return files.into_iter().map(|a| parse_variant_arg(a).map_err(|e| e.to_string())).collect();
    }
    let Some(path) = &input.path else {
        return Err("give a folder or .onnx file, or --variant NAME=PATH".into());
    };
    discover(path).map_err(|e| e.to_string())
}

/// Loads every variant; prints each failure on one line. `None` when none loaded.
fn load(input: &Input) -> Result<(Vec<Variant>, bool), ExitCode> {
    let specs = specs(input).map_err(|e| {
        eprintln!("quantlens: error: {e}");
        ExitCode::from(EXIT_FAILED)
    })?;
    let mut ok = Vec::new();
    let mut failed = false;
    // a short-lived process: files are mapped, not read (see `model::Access`)
    for r in load_variants_with(&specs, Access::Map) {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => {
                eprintln!("quantlens: error: {e}");
                failed = true;
            }
        }
    }
    if failed || ok.is_empty() {
        return Err(ExitCode::from(EXIT_FAILED));
    }
    let mut data_errors = false;
    for v in &ok {
        for issue in &v.model.graph.issues {
            data_errors |= issue.severity == Severity::Error;
            eprintln!("quantlens: {issue}: {}", v.spec.path.display());
        }
    }
    Ok((ok, data_errors))
}

fn run_report(
    input: &Input,
    format: Format,
    sort: SortKey,
    bins: Option<usize>,
    metric: ExplorerMetric,
    out: Option<&Path>,
) -> ExitCode {
    let selected = match input.selected() {
        Ok(None) => None,
        Ok(Some(name)) if format == Format::ModelExplorer => Some(name),
        Ok(Some(name)) => {
            eprintln!(
                "quantlens: error: `--variant {name}` picks a variant for --format model-explorer only \
                 (name a variant file with --variant NAME=PATH)"
            );
            return ExitCode::from(EXIT_FAILED);
        }
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (variants, data_errors) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut report = build_report(&variants, ReportOptions { histogram_bins: bins });
    sort_layers(&mut report, sort);
    let text = match format {
        Format::Table => Ok(to_table(&report)),
        Format::Csv => Ok(to_csv(&report)),
        Format::Md => Ok(to_markdown(&report)),
        Format::Json => to_json(&report).map_err(|e| format!("cannot write JSON: {e}")),
        Format::ModelExplorer => to_model_explorer(&report, &variants, metric, selected),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let written = match out {
        Some(path) => write_atomically(path, text.as_bytes(), &variants),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    if let Err(e) = written {
        eprintln!("quantlens: error: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    if data_errors { ExitCode::from(EXIT_DATA_ERRORS) } else { ExitCode::SUCCESS }
}

/// `quantlens check`: 0 when every compared tensor meets the thresholds, 1 otherwise
/// (including tensors that could not be read: the gate cannot vouch for them).
fn run_check(input: &Input, min_sqnr_db: Option<f64>, max_rmse_over_scale: Option<f64>) -> ExitCode {
    let variant = match input.selected() {
        Ok(v) => v.map(String::from),
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let thresholds = Thresholds { min_sqnr_db, max_rmse_over_scale, variant };
    if thresholds.min_sqnr_db.is_none() && thresholds.max_rmse_over_scale.is_none() {
        eprintln!("quantlens: error: give a threshold: --min-sqnr DB and/or --max-rmse-scale X");
        return ExitCode::from(EXIT_FAILED);
    }
    let (variants, data_errors) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let report = build_report(&variants, ReportOptions::default());
    let verdict = match check(&report, &thresholds) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for f in &verdict.failures {
        println!("{f}");
    }
    let summary = format!(
        "{} of {} tensors below threshold ({})",
        verdict.failures.len(),
        verdict.checked,
        verdict.variants.join(", ")
    );
    if data_errors {
        eprintln!("quantlens: check: some tensors could not be read (see above): failing");
        return ExitCode::from(EXIT_FAILED);
    }
    if verdict.failures.is_empty() {
        eprintln!("quantlens: check passed: {summary}");
        ExitCode::SUCCESS
    } else {
        eprintln!("quantlens: check failed: {summary}");
        ExitCode::from(EXIT_FAILED)
    }
}

/// Writes through a temporary file in the same folder and renames it into place; refuses
/// to overwrite any input model.
fn write_atomically(path: &Path, bytes: &[u8], inputs: &[Variant]) -> Result<(), String> {
    let same = |a: &Path| match (a.canonicalize(), path.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if inputs.iter().any(|v| same(&v.spec.path)) {
        return Err(format!("refusing to overwrite an input model: {}", path.display()));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("cannot write {e}: {}", path.display()))
}

/// Peak resident set size in MiB since the last reset (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A bin count from the command line: 1 to [`quantlens::stats::MAX_BINS`].
fn parse_bins(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("`{s}` is not a number of bins"))?;
    if (1..=quantlens::stats::MAX_BINS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("bins must be 1 to {}", quantlens::stats::MAX_BINS))
    }
}

/// Resets the kernel's peak-RSS mark so each phase reports its own peak (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn run_bench(input: &Input, bins: usize) -> ExitCode {
    let total = Instant::now();
    // the window's import (files read into memory), timed apart and dropped
    let t = Instant::now();
    let read_ok = specs(input).map(|s| load_variants_with(&s, Access::Read).iter().all(Result::is_ok));
    let import_read_s = t.elapsed().as_secs_f64();
    reset_peak_rss();
    let t = Instant::now();
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let import_s = t.elapsed().as_secs_f64();
    let import_rss = peak_rss_mib();
    reset_peak_rss();
    let phases = quantlens::report::bench::run_phases(&variants, bins);
    let phases_rss = peak_rss_mib();
    reset_peak_rss();
    let t = Instant::now();
    let with_hist = build_report(&variants, ReportOptions { histogram_bins: Some(bins) });
    let report_s = t.elapsed().as_secs_f64();
    let report_rss = peak_rss_mib();
    let file_bytes: u64 = variants.iter().map(|v| std::fs::metadata(&v.spec.path).map_or(0, |m| m.len())).sum();
    let external: u64 = variants
        .iter()
        .flat_map(|v| v.model.graph.tensors.iter())
        .filter_map(|t| match &t.data.as_ref()?.bytes {
            quantlens::model::TensorBytes::External { len, .. } => Some(*len),
            quantlens::model::TensorBytes::Memory { .. } => None,
        })
        .sum();
    let json = serde_json::json!({
        "variants": variants.len(),
        "layers": with_hist.layers.len(),
        "histogrammed_layers": with_hist.layers.iter().filter(|l| l.histogram.is_some()).count(),
        "files_mb": file_bytes as f64 / 1e6,
        "external_data_mb": external as f64 / 1e6,
        "import_s": import_s,
        "import_read_s": if read_ok == Ok(true) { Some(import_read_s) } else { None },
        "stats_histograms_s": phases.stats_histograms_s,
        "stats_histograms_by_variant_s": variants
            .iter()
            .zip(&phases.by_variant_s)
            .map(|(v, s)| (v.spec.name.clone(), serde_json::json!(s)))
            .collect::<serde_json::Map<_, _>>(),
        "import_stats_histograms_s": import_s + phases.stats_histograms_s,
        "metrics_s": phases.metrics_s,
        "summaries": phases.summaries,
        "histograms": phases.histograms,
        "compared": phases.compared,
        "full_report_s": report_s,
        "wall_s": total.elapsed().as_secs_f64(),
        "peak_rss_import_mb": import_rss * 1.048_576,
        "peak_rss_phases_mb": phases_rss * 1.048_576,
        "peak_rss_report_mb": report_rss * 1.048_576,
        "threads": rayon::current_num_threads(),
    });
    println!("{json:#}");
    ExitCode::SUCCESS
}
