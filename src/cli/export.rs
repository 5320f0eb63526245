//! `quantlens export`: a variant with edited quantization parameters, as a new file.

use std::path::Path;
use std::process::ExitCode;

use quantlens::infer::{Edit, apply_edits};

use super::{EXIT_FAILED, Input, load};
use quantlens::write::write_atomically;

/// Applies `edits` to the variant `--variant NAME` picks and writes it to `out`; nothing
/// is written when an edit names no layer.
pub fn run(input: &Input, edits: &[Edit], out: &Path) -> ExitCode {
    let fail = |e: String| {
        eprintln!("quantlens: error: {e}");
        ExitCode::from(EXIT_FAILED)
    };
    let name = match input.selected() {
        Ok(Some(n)) => n.to_string(),
        Ok(None) => return fail("pick the variant to export with --variant NAME".into()),
        Err(e) => return fail(e),
    };
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(vi) = variants.iter().position(|v| v.spec.name == name) else {
        let names: Vec<&str> = variants.iter().map(|v| v.spec.name.as_str()).collect();
        return fail(format!("no variant `{name}` (have: {})", names.join(", ")));
    };
    let reference = quantlens::report::reference_index(&variants);
    let bytes = match apply_edits(&variants, reference, vi, edits) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if let Err(e) = write_atomically(out, &bytes, &variants) {
        return fail(e);
    }
    let source = variants.get(vi).map(|v| v.spec.path.display().to_string()).unwrap_or_default();
    eprintln!("quantlens: wrote {} with {} edit(s) of {source}", out.display(), edits.len());
    ExitCode::SUCCESS
}
