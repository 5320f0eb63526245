//! Writing output files: atomically, never over an input model.

use std::path::Path;

use crate::model::Variant;

/// Writes through a temporary file in the same folder and renames it into place; refuses
/// to overwrite any input model.
///
/// # Errors
/// When `path` is one of the inputs, or the file cannot be written.
pub fn write_atomically(path: &Path, bytes: &[u8], inputs: &[Variant]) -> Result<(), String> {
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
