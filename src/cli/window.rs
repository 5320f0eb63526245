//! The window and what needs it: `quantlens [PATH]`, `render`, `bench-ui`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_FAILED;
#[cfg(feature = "gui")]
use super::{ColourArg, RunArg, ViewArg, refuse_missing};

#[cfg(feature = "gui")]
fn app_exit_code(exit: bevy::app::AppExit) -> ExitCode {
    match exit {
        bevy::app::AppExit::Success => ExitCode::SUCCESS,
        bevy::app::AppExit::Error(code) => ExitCode::from(code.get()),
    }
}

#[cfg(feature = "gui")]
pub fn open(path: Option<PathBuf>, screenshot: Option<PathBuf>, panel: &super::PanelArgs) -> ExitCode {
    if let Some(p) = &path
        && let Err(code) = refuse_missing(p)
    {
        return code;
    }
    app_exit_code(quantlens::app::window_app(path, screenshot, panel.settings()).run())
}

#[cfg(not(feature = "gui"))]
pub fn open(_path: Option<PathBuf>, _screenshot: Option<PathBuf>, _panel: &super::PanelArgs) -> ExitCode {
    eprintln!("quantlens: built without the `gui` feature; use `quantlens report PATH` (see --help)");
    ExitCode::from(EXIT_FAILED)
}

/// What `render` draws besides the model.
#[cfg(feature = "gui")]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub view: ViewArg,
    pub select: Option<String>,
    pub colour: Option<ColourArg>,
    pub runs: Vec<RunArg>,
    pub panel: super::PanelArgs,
}

#[cfg(feature = "gui")]
pub fn render(path: PathBuf, out: PathBuf, p: Picture) -> ExitCode {
    use quantlens::layout::ColourMetric;
    use quantlens::view::run::RunCommand;
    if let Err(code) = refuse_missing(&path) {
        return code;
    }
    let mode = match p.view {
        ViewArg::ThreeD => quantlens::layout::ViewMode::ThreeD,
        ViewArg::TwoD => quantlens::layout::ViewMode::TwoD,
    };
    let metric = p.colour.map(|c| match c {
        ColourArg::OpType => ColourMetric::OpType,
        ColourArg::Sqnr => ColourMetric::Sqnr,
        ColourArg::Range => ColourMetric::Range,
        ColourArg::RmseScale => ColourMetric::RmseOverScale,
        ColourArg::WorstBlock => ColourMetric::WorstBlock,
        ColourArg::Nan => ColourMetric::NanPresent,
        ColourArg::ActivationSqnr => ColourMetric::ActivationSqnr,
        ColourArg::Clipping => ColourMetric::Clipping,
        ColourArg::Sensitivity => ColourMetric::Sensitivity,
    });
    let runs = p
        .runs
        .iter()
        .map(|r| match r {
            RunArg::Activations => RunCommand::Activations,
            RunArg::Evaluate => RunCommand::Evaluate { full: false },
            RunArg::Full => RunCommand::Evaluate { full: true },
            RunArg::Sensitivity => RunCommand::Sensitivity,
        })
        .collect();
    let (width, height, select) = (p.width, p.height, p.select);
    let settings = p.panel.settings();
    let opts = quantlens::app::RenderOptions { path, out, width, height, mode, select, metric, runs, settings };
    app_exit_code(quantlens::app::headless_app(&opts).run())
}

#[cfg(feature = "gui")]
pub fn bench_ui(path: PathBuf, frames: usize, cycles: usize) -> ExitCode {
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
