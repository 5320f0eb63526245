//! The command line: clap types, exit codes and loading shared by the subcommands, one
//! file per subcommand (`report`, `check`, `bench`, the window's `render`/`bench-ui`).

mod bench;
mod check;
mod eval;
mod export;
mod report;
mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use quantlens::infer::{Edit, ImageOptions, InputSpec};
use quantlens::model::Access;
use quantlens::model::variants::{VariantSpec, discover, load_variants_with, parse_variant_arg};
use quantlens::model::{Severity, Variant};
use quantlens::report::{ExplorerMetric, SortKey};

#[derive(Parser)]
#[command(name = "quantlens", version, about = "See what quantization did to your network")]
#[cfg_attr(
    not(feature = "gui"),
    command(after_help = "Built without the `gui` feature: no window, `render` or `bench-ui`.")
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A folder of precision variants or one .onnx file (opens the window).
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    path: Option<PathBuf>,
    /// Save one screenshot of the window once the model and its statistics are in, then exit.
    #[arg(long, value_name = "PNG")]
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    screenshot: Option<PathBuf>,
    #[command(flatten)]
    panel: PanelArgs,
}

/// What the window's Run panel runs the variants on (the window and `render`).
#[allow(clippy::doc_markdown)] // clap help text: no Markdown backticks
#[derive(clap::Args)]
pub struct PanelArgs {
    /// Run panel: unlabelled inputs (random[:SEED], a .npy, .npz, an image or a folder).
    #[arg(long = "inputs", value_name = "SPEC")]
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    inputs: Option<InputSpec>,
    /// Run panel: labelled data (a .npz with y, or a folder of class sub-folders); by
    /// default one found beside the model.
    #[arg(long = "data", value_name = "SPEC")]
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    data: Option<InputSpec>,
    /// Run panel: samples of a quick run.
    #[arg(long = "samples", value_name = "N")]
    #[cfg_attr(not(feature = "gui"), arg(hide = true))]
    samples: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
}

// (doc comments are clap's help text: no Markdown backticks)
#[allow(clippy::doc_markdown)]
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
        /// Run every variant (tract) on these inputs and compare their activations (JSON
        /// `activations`): `random`, `random:SEED`, a .npy whose rows are samples, a .npz
        /// with one array per model input, an image or a folder of images.
        #[arg(long, value_name = "SPEC")]
        inputs: Option<InputSpec>,
        /// How many samples to run (at most the data's).
        #[arg(long, default_value_t = 1)]
        samples: usize,
        #[command(flatten)]
        run: RunArgs,
        /// Write to this file instead of standard output (written atomically).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Accuracy of every variant on labelled data (tract): top-1 with a 95 % interval,
    /// top-5, agreement with float.
    Eval {
        #[command(flatten)]
        input: Input,
        /// Labelled data: a .npz with `x` (samples along axis 0) and integer labels `y`, or
        /// a folder with one sub-folder of images per class (classes in sorted order).
        #[arg(long, value_name = "SPEC")]
        data: InputSpec,
        /// Quick evaluation on this many samples, stratified by class.
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// Every sample instead.
        #[arg(long, conflicts_with = "samples")]
        full: bool,
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Which layer costs the most: each quantized layer kept in float alone (tract), its
    /// accuracy (with --data) or output SQNR against float, largest gain first.
    Sensitivity {
        #[command(flatten)]
        input: Input,
        /// Labelled data (a .npz with `x`, `y`, or a folder of class sub-folders):
        /// accuracy; without it, output SQNR on --inputs.
        #[arg(long, value_name = "SPEC")]
        data: Option<InputSpec>,
        /// Unlabelled inputs, as report --inputs takes them (without --data).
        #[arg(long, value_name = "SPEC", default_value = "random")]
        inputs: InputSpec,
        /// Samples (stratified by class with --data).
        #[arg(long, default_value_t = 100)]
        samples: usize,
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Writes a variant with edited quantization parameters as a new .onnx (atomically,
    /// never over an input).
    Export {
        #[command(flatten)]
        input: Input,
        /// An edit: LAYER.weight_scale=V, LAYER.weight_scale*=F, LAYER.weight_zero_point=Z,
        /// LAYER.input_scale*=F, LAYER.output_scale*=F (repeatable).
        #[arg(long = "set", value_name = "EDIT", required = true)]
        edits: Vec<Edit>,
        /// The file to write.
        #[arg(long, short)]
        out: PathBuf,
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
        /// Highest acceptable rmse/scale of any one channel or block of a weight.
        #[arg(long, value_name = "X")]
        max_block_rmse_scale: Option<f64>,
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
        /// Colour the towers by this.
        #[arg(long, value_enum)]
        colour: Option<ColourArg>,
        /// Run the variants first, as the Run panel does (repeatable, in order); labelled
        /// data is looked up beside the model.
        #[arg(long = "run", value_enum)]
        runs: Vec<RunArg>,
        #[command(flatten)]
        panel: PanelArgs,
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
    /// Times tract on every variant with every compared activation captured: plan build
    /// and seconds per sample per variant, peak RSS; JSON.
    BenchInfer {
        #[command(flatten)]
        input: Input,
        /// Inputs, as report --inputs takes them.
        #[arg(long, value_name = "SPEC", default_value = "random")]
        inputs: InputSpec,
        #[arg(long, default_value_t = 8)]
        samples: usize,
        #[command(flatten)]
        run: RunArgs,
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

/// How inputs are shaped and, for images, prepared.
#[allow(clippy::doc_markdown)] // clap help text: no Markdown backticks
#[derive(clap::Args)]
struct RunArgs {
    /// The size of a dynamic input dimension: NAME=N (repeatable).
    #[arg(long = "dim", value_name = "NAME=N", value_parser = parse_dim)]
    dims: Vec<(String, usize)>,
    /// Images: subtracted per channel after scaling pixels to [0, 1]; one value or three
    /// (R,G,B, in the model's channel order).
    #[arg(long, value_name = "M[,M,M]", default_value = "0", value_parser = parse_channels)]
    mean: [f32; 3],
    /// Images: the divisor per channel after the mean; one value or three.
    #[arg(long, value_name = "S[,S,S]", default_value = "1", value_parser = parse_channels)]
    std: [f32; 3],
    /// Images: resize the shorter side to this, then crop the model's size from the
    /// centre (without it, images are resized to the model's size).
    #[arg(long, value_name = "PIXELS")]
    size: Option<u32>,
    /// Images: the model takes BGR channels (as OpenCV and Caffe models do) instead of RGB.
    #[arg(long)]
    bgr: bool,
}

impl PanelArgs {
    /// The Run panel's settings these give (defaults where not given).
    #[cfg(feature = "gui")]
    fn settings(&self) -> quantlens::app::run::RunSettings {
        let mut s = quantlens::app::run::RunSettings::default();
        if let Some(i) = &self.inputs {
            s.inputs = self.run.spec(i.clone());
        }
        if let Some(d) = &self.data {
            s.data = Some(self.run.spec(d.clone()));
            s.data_given = true;
        }
        if let Some(n) = self.samples {
            s.samples = n.max(1);
        }
        s.dims = self.run.dims();
        s
    }
}

impl RunArgs {
    fn dims(&self) -> HashMap<String, usize> {
        self.dims.iter().cloned().collect()
    }

    /// `spec` with these image options.
    fn spec(&self, spec: InputSpec) -> InputSpec {
        match spec {
            InputSpec::Images(path, _) => {
                InputSpec::Images(path, ImageOptions { mean: self.mean, std: self.std, size: self.size, bgr: self.bgr })
            }
            other => other,
        }
    }
}

/// One value for every channel, or three.
fn parse_channels(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|_| format!("`{v}` is not a number")))
        .collect::<Result<_, _>>()?;
    match *values.as_slice() {
        [v] if v.is_finite() => Ok([v; 3]),
        [a, b, c] if [a, b, c].iter().all(|v| v.is_finite()) => Ok([a, b, c]),
        _ => Err(format!("give one finite value or three (R,G,B), not `{s}`")),
    }
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

/// The towers' colouring (`render --colour`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColourArg {
    OpType,
    Sqnr,
    Range,
    RmseScale,
    WorstBlock,
    Nan,
    ActivationSqnr,
    Clipping,
    Sensitivity,
}

/// A run of the variants (`render --run`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunArg {
    Activations,
    Evaluate,
    Full,
    Sensitivity,
}

/// Output of the commands that print a table or JSON.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TableOrJson {
    Table,
    Json,
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

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
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
        Some(Command::Report { input, format, sort, bins, metric, inputs, samples, run, out }) => {
            let run = inputs.map(|spec| report::RunInputs { spec: run.spec(spec), samples, dims: run.dims() });
            report::run(&input, format, sort, bins, metric, run.as_ref(), out.as_deref())
        }
        Some(Command::Check { input, min_sqnr, max_rmse_scale, max_block_rmse_scale }) => {
            check::run(&input, min_sqnr, max_rmse_scale, max_block_rmse_scale)
        }
        Some(Command::Export { input, edits, out }) => export::run(&input, &edits, &out),
        Some(Command::Sensitivity { input, data, inputs, samples, format, run }) => {
            let data = data.map(|d| run.spec(d));
            eval::sensitivity(&input, data.as_ref(), &run.spec(inputs), samples, format, &run.dims())
        }
        Some(Command::Eval { input, data, samples, full, format, run }) => {
            let n = if full { usize::MAX } else { samples };
            eval::run(&input, &run.spec(data), n, format, &run.dims())
        }
        Some(Command::Bench { input, bins }) => bench::run(&input, bins),
        Some(Command::BenchInfer { input, inputs, samples, run }) => {
            bench::infer(&input, &run.spec(inputs), samples, &run.dims())
        }
        Some(Command::BenchKernels { reps }) => bench::kernels(reps),
        #[cfg(feature = "gui")]
        Some(Command::Render { path, out, width, height, view, select, colour, runs, panel }) => {
            let picture = window::Picture { width, height, view, select, colour, runs, panel };
            window::render(path, out, picture)
        }
        #[cfg(feature = "gui")]
        Some(Command::BenchUi { path, frames, cycles }) => window::bench_ui(path, frames, cycles),
        None => window::open(cli.path, cli.screenshot, &cli.panel),
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
    // a file that cannot be read is named; the rest of the folder still reports (exit 2)
    if ok.is_empty() {
        return Err(ExitCode::from(EXIT_FAILED));
    }
    let mut data_errors = failed;
    for v in &ok {
        for issue in &v.model.graph.issues {
            data_errors |= issue.severity == Severity::Error;
            eprintln!("quantlens: {issue}: {}", v.spec.path.display());
        }
    }
    Ok((ok, data_errors))
}

fn parse_bins(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("`{s}` is not a number of bins"))?;
    if (1..=quantlens::stats::MAX_BINS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("bins must be 1 to {}", quantlens::stats::MAX_BINS))
    }
}

/// `NAME=N` of `--dim`.
fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (name, n) = s.split_once('=').ok_or_else(|| format!("--dim expects NAME=N, got `{s}`"))?;
    let n = n.parse().map_err(|_| format!("`{n}` is not a size"))?;
    Ok((name.to_string(), n))
}
