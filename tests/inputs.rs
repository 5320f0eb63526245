//! Every way quantlens reads samples, against the arrays they were written from
//! (`scripts/make_input_fixtures.py`): a deflated `.npz`, a folder of class sub-folders of
//! PNGs, and a `.npz` with one int64 array per input of a three-input token model, whose
//! activations are checked against onnxruntime's `qdq_loss_debug` (`tokens_golden.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{assert_db_close, cli, data, load};
use quantlens::infer::npy::NpyData;
use quantlens::infer::{ImageOptions, InputSpec, labelled_samples, samples};

fn floats(d: &NpyData) -> &[f32] {
    match d {
        NpyData::F32(v) => v,
        NpyData::I64(_) => panic!("integer data"),
    }
}

#[test]
fn a_deflated_npz_streams_the_same_rows_as_the_npy() {
    let variants = load("resnet8");
    let g = &variants[0].model.graph;
    let none = HashMap::new();
    let npy = samples(g, &InputSpec::Npy(data("infer/resnet8_inputs.npy")), 10, &none).unwrap();
    let npz = samples(g, &InputSpec::Npz(data("infer/resnet8_inputs_compressed.npz")), 10, &none).unwrap();
    assert_eq!(npy.len(), 4);
    assert_eq!(npy, npz);
    let three = samples(g, &InputSpec::Npz(data("infer/resnet8_inputs_compressed.npz")), 3, &none).unwrap();
    assert_eq!(three.as_slice(), &npy[..3]);
}

#[test]
fn an_image_folder_gives_the_digits_rows_and_their_classes() {
    let variants = load("digits");
    let g = &variants[0].model.graph;
    let none = HashMap::new();
    let spec = InputSpec::Images(data("digits/images"), ImageOptions::default());
    let (stream, labels) = labelled_samples(g, &spec, &none).unwrap();
    let images: Vec<_> = stream.collect::<Result<_, _>>().unwrap();
    assert_eq!((images.len(), labels.len()), (60, 60));
    let (rows, y) = labelled_samples(g, &InputSpec::Npz(data("digits/digits.npz")), &none).unwrap();
    let rows: Vec<_> = rows.take_at_most(60).collect::<Result<_, _>>().unwrap();
    // files sorted class by class; each named after its row
    let mut files: Vec<(i64, String)> = Vec::new();
    for class in 0..10 {
        let mut names: Vec<String> = std::fs::read_dir(data(&format!("digits/images/{class}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| (class, n)));
    }
    for ((image, label), (class, name)) in images.iter().zip(&labels).zip(&files) {
        let row: usize = name.trim_start_matches("row_").trim_end_matches(".png").parse().unwrap();
        assert_eq!((*label, y[row]), (*class, *class), "{name}");
        assert_eq!(image[0].shape, [1, 1, 8, 8]);
        // the PNG holds round(x·255): back to x within half a grey level
        for (a, b) in floats(&image[0].data).iter().zip(floats(&rows[row][0].data)) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{name}: {a} vs {b}");
        }
    }
    // mean and std are applied per channel after scaling to [0, 1]
    let spec = InputSpec::Images(
        data("digits/images/0/row_0000.png"),
        ImageOptions { mean: [0.5; 3], std: [0.25; 3], ..ImageOptions::default() },
    );
    let one = samples(g, &spec, 5, &none).unwrap();
    assert_eq!(one.len(), 1);
    for (a, b) in floats(&one[0][0].data).iter().zip(floats(&images[0][0].data)) {
        assert!((a - (b - 0.5) / 0.25).abs() < 1e-5);
    }
    // the window's and CI's way: eval straight from the folder
    let dir = data("digits");
    let images = data("digits/images");
    let (code, out, err) =
        cli(&["eval", dir.to_str().unwrap(), "--data", images.to_str().unwrap(), "--full", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["samples"], 60);
    assert!(json["variants"]["float"]["top1"].as_f64().unwrap() > 0.9, "{json}");
    // a flat folder has no classes: refused for labelled data
    let (code, _, err) = cli(&["eval", dir.to_str().unwrap(), "--data", data("digits/images/3").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no class sub-folders"), "{err}");
}

#[test]
fn three_int64_inputs_run_and_match_onnxruntime() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("tokens_golden.json")).unwrap()).unwrap();
    let dir = data("tokens");
    let npz = data(golden["inputs"].as_str().unwrap());
    let base = ["report", dir.to_str().unwrap(), "--format", "json", "--bins", "32"];
    // dynamic dimensions are named with the option that sets them
    let (code, _, err) = cli(&[&base[..], &["--inputs", npz.to_str().unwrap()]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("--dim batch=N"), "{err}");
    let args = ["--inputs", npz.to_str().unwrap(), "--samples", "4", "--dim", "batch=1", "--dim", "sequence=12"];
    let (code, out, err) = cli(&[&base[..], &args[..]].concat());
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = json["activations"].as_array().unwrap();
    let mut checked = 0;
    for (variant, tensors) in golden["variants"].as_object().unwrap() {
        for (tensor, e) in tensors.as_object().unwrap() {
            let Some(row) = rows.iter().find(|r| r["tensor"] == tensor.as_str()) else {
                panic!("no activation {tensor}")
            };
            let v = row["variants"].as_array().unwrap().iter().find(|v| v["variant"] == variant.as_str()).unwrap();
            for (key, ours) in [("qdq_err", "qdq_err_db"), ("xmodel_err", "xmodel_err_db")] {
                let (ours, theirs) = (v[ours].as_f64().unwrap(), e[key].as_f64().unwrap());
                assert_db_close(ours, theirs, &format!("{variant} {tensor} {key}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 22, "11 activations in int8 and uint8");
    // running histograms: every value of the 4 samples counted once, on the row's shared bins
    for row in rows {
        let float = &row["float"];
        let count = float["stats"]["count"].as_u64().unwrap();
        let h = &float["histogram"];
        let total: u64 = h["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(total + h["nonfinite"].as_u64().unwrap(), count, "{}", row["tensor"]);
        assert!(h["counts"].as_array().unwrap().len() <= 32);
        for v in row["variants"].as_array().unwrap() {
            let vh = &v["histogram"];
            assert_eq!((&vh["lo"], &vh["hi"]), (&h["lo"], &h["hi"]), "shared edges");
            assert_eq!(vh["counts"].as_array().unwrap().len(), h["counts"].as_array().unwrap().len());
            let total: u64 = vh["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
            assert_eq!(total, v["stats"]["count"].as_u64().unwrap());
        }
    }
}
