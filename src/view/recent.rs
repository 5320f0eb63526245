//! Recently opened folders: a small text file (one path a line) in the user's config
//! folder, written atomically.

use std::path::{Path, PathBuf};

/// How many folders are remembered.
pub const MAX_RECENT: usize = 10;

/// `$XDG_CONFIG_HOME/quantlens/recent.txt` or `~/.config/quantlens/recent.txt`;
/// `QUANTLENS_CONFIG_DIR` overrides the folder (tests, portable installs).
#[must_use]
pub fn recent_file() -> Option<PathBuf> {
    let dir = std::env::var_os("QUANTLENS_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("quantlens")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/quantlens")))?;
    Some(dir.join("recent.txt"))
}

/// Reads the list; a missing or unreadable file is an empty list.
#[must_use]
pub fn load_recent(file: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(file)
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).take(MAX_RECENT).collect())
        .unwrap_or_default()
}

/// Moves `path` to the front, without duplicates, keeping at most [`MAX_RECENT`].
pub fn push_recent(list: &mut Vec<PathBuf>, path: PathBuf) {
    list.retain(|p| p != &path);
    list.insert(0, path);
    list.truncate(MAX_RECENT);
}

/// Writes the list atomically (temporary file, then rename).
///
/// # Errors
/// When the folder cannot be created or the file written.
pub fn save_recent(file: &Path, list: &[PathBuf]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for p in list {
        text.push_str(&p.display().to_string());
        text.push('\n');
    }
    let tmp = file.with_extension("txt.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_list_round_trips_without_duplicates() {
        let dir = std::env::temp_dir().join(format!("quantlens-recent-{}", std::process::id()));
        let file = dir.join("sub/recent.txt");
        let mut list = Vec::new();
        for i in 0..12 {
            push_recent(&mut list, PathBuf::from(format!("/m/{i}")));
        }
        push_recent(&mut list, PathBuf::from("/m/5"));
        assert_eq!(list.len(), MAX_RECENT);
        assert_eq!(list[0], PathBuf::from("/m/5"));
        assert_eq!(list.iter().filter(|p| p.ends_with("5")).count(), 1);
        save_recent(&file, &list).unwrap();
        assert_eq!(load_recent(&file), list);
        assert!(load_recent(&dir.join("missing.txt")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
