//! `quantlens render` draws the bundled example without a display (Vulkan through Mesa's
//! lavapipe on CI): the PNG has the requested size and is not blank.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

fn render(args: &[&str], name: &str) -> image::RgbImage {
    let out = std::env::temp_dir().join(format!("quantlens-render-{}-{name}", std::process::id()));
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/example");
    let run = Command::new(env!("CARGO_BIN_EXE_quantlens"))
        .arg("render")
        .arg(&example)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(run.status.success(), "render failed: {}", String::from_utf8_lossy(&run.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    std::fs::remove_file(&out).unwrap();
    img
}

/// Distinct colours (quantized to 5 bits a channel) in the middle of the picture, where
/// the towers stand between the panels.
fn tower_colours(img: &image::RgbImage) -> usize {
    let (w, h) = img.dimensions();
    let mut seen = HashSet::new();
    for y in (h * 3 / 10..h * 6 / 10).step_by(2) {
        for x in (w * 3 / 10..w * 7 / 10).step_by(2) {
            let p = img.get_pixel(x, y).0;
            seen.insert((p[0] >> 3, p[1] >> 3, p[2] >> 3));
        }
    }
    seen.len()
}

#[test]
fn renders_the_example_in_3d_and_2d() {
    let img = render(&["--width", "960", "--height", "600"], "3d.png");
    assert_eq!(img.dimensions(), (960, 600));
    let colours = tower_colours(&img);
    assert!(colours >= 12, "3D picture looks blank: {colours} colours");
    let img = render(&["--width", "800", "--height", "520", "--view", "2d", "--select", "s2_conv1"], "2d.png");
    assert_eq!(img.dimensions(), (800, 520));
    let colours = tower_colours(&img);
    assert!(colours >= 8, "2D picture looks blank: {colours} colours");
}

#[test]
fn render_reports_a_missing_layer_and_a_bad_folder() {
    let out = std::env::temp_dir().join(format!("quantlens-render-{}-missing.png", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_quantlens"))
        .args(["render", "/nonexistent/models", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/models"));
    assert!(!out.exists());
}
