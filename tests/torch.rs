//! PyTorch files read without Python: every file PyTorch 2.11 wrote for the resnet8
//! fixture (`tests/data/torch/`, copied from the steering folder's `torch-fixtures`:
//! `state_dict`s, whole modules, TorchScript; FX and eager; per-channel and per-tensor)
//! against what PyTorch itself reported (`reference.json`); their rows beside the ONNX
//! variants of the same network; hostile pickles refused without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{data, load_file};
use quantlens::model::variants::load_variants;
use quantlens::model::{ActRole, LayerWeight, Variant, VariantKind, VariantSpec};
use quantlens::report::{ReportOptions, build_report};

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("torch/reference.json")).unwrap()).unwrap()
}

fn layer<'a>(v: &'a Variant, name: &str) -> &'a quantlens::model::Layer {
    v.layers.iter().find(|l| v.model.graph.nodes[l.node].name == name).unwrap_or_else(|| panic!("no layer {name}"))
}

#[test]
fn every_file_reads_as_pytorch_reported_it() {
    let reference = reference();
    let float = load_file("torch/resnet8_float.pt");
    for (file, r) in reference["files"].as_object().unwrap() {
        let v = load_file(&format!("torch/{file}"));
        let weights = r["weights"].as_object().unwrap();
        assert_eq!(v.layers.len(), weights.len(), "{file}: one layer per quantized module");
        for (module, w) in weights {
            let l = layer(&v, module);
            let LayerWeight::Quantized(q) = &l.weight else { panic!("{file} {module}: not quantized") };
            let p = q.params.as_ref().unwrap();
            let what = format!("{file} {module}");
            // scales as quantlens holds them (f32), zero points and axis exactly
            let scales: Vec<f32> = w["scales"].as_array().map_or_else(
                || vec![w["scale"].as_f64().unwrap() as f32],
                |s| s.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            );
            assert_eq!(p.scale, scales, "{what}: scales");
            let zps: Vec<i32> = w["zero_points"].as_array().map_or_else(
                || vec![w["zero_point"].as_f64().unwrap() as i32],
                |s| s.iter().map(|x| x.as_f64().unwrap() as i32).collect(),
            );
            assert_eq!(p.zero_point, zps, "{what}: zero points");
            assert_eq!(p.axis, w["axis"].as_u64().map(|a| a as usize), "{what}: axis");
            let t = v.model.graph.tensor(q.q_tensor).unwrap().data.as_ref().unwrap();
            let shape: Vec<u64> = w["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            assert_eq!(t.shape, shape, "{what}: shape");
            let ints = t.to_f32_vec().unwrap();
            let first: Vec<f32> =
                w["int_repr_first8"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            assert_eq!(&ints[..8], first.as_slice(), "{what}: integers (channels-last strides read in C order)");
            // the layer's output quantization
            let out = quantlens::model::layer_activations(&v.model.graph, l.node)
                .into_iter()
                .find(|a| a.role == ActRole::Output)
                .unwrap_or_else(|| panic!("{what}: no output quantization"));
            assert_eq!(out.scale, w["output_scale"].as_f64().unwrap() as f32, "{what}: output scale");
            assert_eq!(
                i64::from(out.zero_point),
                w["output_zero_point"].as_i64().unwrap(),
                "{what}: output zero point"
            );
        }
        // the SQNR against the float file, as PyTorch computed it
        let report = build_report(&[float.clone(), v], ReportOptions::default());
        for (module, w) in weights {
            let row = report.layers.iter().find(|l| &l.layer == module).unwrap();
            let m = row.variants[1].metrics.as_ref().unwrap();
            let expected = w["sqnr_db"].as_f64().unwrap();
            assert!((m.sqnr_db - expected).abs() < 0.01, "{file} {module}: {} vs {expected}", m.sqnr_db);
        }
    }
}

#[test]
fn float_files_hold_the_onnx_float_weights() {
    let onnx = load_file("resnet8/resnet8_float.onnx");
    for file in ["torch/resnet8_float.pt", "torch/resnet8_float_script.pt"] {
        let pt = load_file(file);
        assert_eq!(pt.layers.len(), 10);
        for l in &pt.layers {
            let name = &pt.model.graph.nodes[l.node].name;
            let (LayerWeight::Float(a), LayerWeight::Float(b)) = (&l.weight, &layer(&onnx, name).weight) else {
                panic!("{file} {name}: float weights expected")
            };
            let a = pt.model.graph.tensor(*a).unwrap().data.as_ref().unwrap();
            let b = onnx.model.graph.tensor(*b).unwrap().data.as_ref().unwrap();
            assert_eq!(a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap(), "{file} {name}");
            assert!(matches!(a.bytes, quantlens::model::TensorBytes::Memory { .. }));
        }
    }
}

#[test]
fn pytorch_rows_line_up_with_the_onnx_rows() {
    // the bundled example's three ONNX variants and PyTorch's int8 of the same network
    let specs: Vec<VariantSpec> = [
        ("float", VariantKind::Float, "resnet8/resnet8_float.onnx"),
        ("int8", VariantKind::Int8, "resnet8/resnet8_int8.onnx"),
        ("uint8", VariantKind::Uint8, "resnet8/resnet8_uint8.onnx"),
        ("torch_int8", VariantKind::Other, "torch/resnet8_int8.pt"),
    ]
    .into_iter()
    .map(|(name, kind, rel)| VariantSpec { name: name.into(), kind, path: data(rel) })
    .collect();
    let variants: Vec<Variant> = load_variants(&specs).into_iter().map(Result::unwrap).collect();
    let report = build_report(&variants, ReportOptions { histogram_bins: Some(16) });
    let rows: Vec<_> = report.layers.iter().filter(|l| l.variants.len() == 4).collect();
    assert_eq!(rows.len(), 10, "every layer on one row across the four variants");
    for row in rows {
        let torch = row.variants.iter().find(|v| v.variant == "torch_int8").unwrap();
        let ort = row.variants.iter().find(|v| v.variant == "int8").unwrap();
        let (a, b) = (torch.metrics.as_ref().unwrap().sqnr_db, ort.metrics.as_ref().unwrap().sqnr_db);
        // two quantizers of the same weights: both healthy, not the same numbers
        assert!(a > 35.0 && b > 35.0, "{}: torch {a} dB, onnxruntime {b} dB", row.layer);
        let h = row.histogram.as_ref().unwrap();
        assert_eq!(h.counts.len(), 4, "{}: one shared-bin histogram per variant", row.layer);
        let n: u64 = h.counts[3].iter().sum();
        assert_eq!(n, torch.stats.as_ref().unwrap().count);
    }
}

/// A torch-like zip holding `pickle` as `t/data.pkl` and `storages` as `t/data/<i>`.
fn archive(pickle: &[u8], storages: &[&[u8]]) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("t/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    for (i, s) in storages.iter().enumerate() {
        zip.start_file(format!("t/data/{i}"), stored).unwrap();
        zip.write_all(s).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A `state_dict` pickle `{name: _rebuild_tensor_v2(storage 0, 0, size, stride, False, {})}`.
fn tensor_pickle(storage: &str, size: &[u8], stride: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\n)R(X\x09\x00\x00\x00fc.weightctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\n".to_vec();
    p.extend_from_slice(storage.as_bytes());
    p.extend_from_slice(b"\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00(");
    p.extend_from_slice(size);
    p.extend_from_slice(b"t(");
    p.extend_from_slice(stride);
    p.extend_from_slice(b"t\x89}tRu.");
    p
}

fn load_bytes(bytes: &[u8], name: &str) -> Result<Variant, String> {
    let dir = std::env::temp_dir().join(format!("quantlens-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let spec = VariantSpec { name: "x".into(), kind: VariantKind::Other, path };
    load_variants(&[spec]).pop().unwrap().map_err(|e| e.to_string())
}

#[test]
fn hostile_files_are_refused_with_a_reason() {
    // a well-formed one first: a 2×2 float weight
    let four: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let ok = archive(&tensor_pickle("FloatStorage", b"K\x02K\x02", b"K\x02K\x01"), &[&four]);
    let v = load_bytes(&ok, "ok.pt").unwrap();
    assert_eq!(v.layers.len(), 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "short storage",
            archive(&tensor_pickle("FloatStorage", b"K\x04K\x04", b"K\x04K\x01"), &[&four]),
            "holds 16 bytes",
        ),
        (
            "stride past the end",
            archive(&tensor_pickle("FloatStorage", b"K\x02K\x02", b"K\x09K\x01"), &[&four]),
            "reaches",
        ),
        (
            "huge declared shape",
            archive(
                &tensor_pickle("FloatStorage", b"J\xff\xff\xff\x7fJ\xff\xff\xff\x7f", b"J\xff\xff\xff\x7fK\x01"),
                &[&four],
            ),
            "holds 16 bytes",
        ),
        (
            "unknown storage",
            archive(&tensor_pickle("ComplexFloatStorage", b"K\x02K\x02", b"K\x02K\x01"), &[&four]),
            "not read",
        ),
        ("missing storage", archive(&tensor_pickle("FloatStorage", b"K\x02K\x02", b"K\x02K\x01"), &[]), "no entry"),
        ("4 GiB string", archive(b"\x80\x02X\xff\xff\xff\xff", &[]), "cut short"),
        (
            "off the allow-list",
            archive(b"\x80\x02ctorch._utils\n_rebuild_device_tensor_from_numpy\n)R.", &[]),
            "allow-list",
        ),
        ("not a zip", b"PK\x03\x04 nothing".to_vec(), "not a torch zip"),
        // a 1-D weight is a norm layer's scale, not a layer
        ("only a norm weight", archive(&tensor_pickle("FloatStorage", b"K\x04", b"K\x01"), &[&four]), "no module"),
        ("no pickle", archive(b"", &[]).into_iter().collect(), "no data.pkl"),
    ];
    for (what, bytes, reason) in cases {
        let bytes = if what == "no pickle" {
            use std::io::Write as _;
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            zip.start_file("t/other", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(b"x").unwrap();
            zip.finish().unwrap().into_inner()
        } else {
            bytes
        };
        let e = load_bytes(&bytes, "x.pt").unwrap_err();
        assert!(e.contains(reason) && e.contains("x.pt"), "{what}: {e}");
    }
    // one bad module among good ones: the file opens without it, and says why
    let two = tensor_pickle("FloatStorage", b"K\x02K\x02", b"K\x02K\x01");
    let bad_entry = b"X\x0a\x00\x00\x00bad.weightctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x001X\x03\x00\x00\x00cpuK\x04tQK\x00(K\x08K\x08t(K\x08K\x01t\x89}tR";
    let mut both = two[..two.len() - 2].to_vec();
    both.extend_from_slice(bad_entry);
    both.extend_from_slice(b"u.");
    let v = load_bytes(&archive(&both, &[&four, &four]), "partly.pt").unwrap();
    assert_eq!(v.layers.len(), 1, "the good module");
    let issue = v.model.graph.issues.iter().find(|i| i.subject == "bad").unwrap();
    assert!(issue.message.contains("reaches"), "{issue}");
    // deep nesting and a memo bomb inside a real archive: refused or read, never a hang
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b"]".as_slice(), 100_000).flatten());
    deep.extend(std::iter::repeat_n(b"a".as_slice(), 99_999).flatten());
    deep.push(b'.');
    let e = load_bytes(&archive(&deep, &[]), "x.pt").unwrap_err();
    assert!(e.contains("deeper than"), "{e}");
    let mut bomb = b"\x80\x02]q\x00".to_vec();
    for _ in 0..20 {
        // each level holds the previous one twice: 2^20 paths, one object each
        bomb.extend_from_slice(b"h\x00h\x00\x86q\x00");
    }
    bomb.push(b'.');
    let e = load_bytes(&archive(&bomb, &[]), "x.pt").unwrap_err();
    assert!(e.contains("no module"), "{e}");
}

#[test]
fn a_folder_of_onnx_and_pytorch_files_opens_as_one_model() {
    let dir = std::env::temp_dir().join(format!("quantlens-mixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [
        ("resnet8/resnet8_float.onnx", "resnet8_float.onnx"),
        ("resnet8/resnet8_int8.onnx", "resnet8_int8.onnx"),
        ("torch/resnet8_int8_state_dict.pt", "torch_int8.pt"),
        ("torch/resnet8_int8.pt", "broken.pth"),
    ] {
        std::fs::copy(data(from), dir.join(to)).unwrap();
    }
    // a broken PyTorch file is named with its reason; the rest of the folder reports
    // (exit 2: data refused)
    std::fs::write(dir.join("broken.pth"), b"PK\x03\x04 cut").unwrap();
    let (code, out, err) = common::cli(&["report", dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.pth") && err.contains("not a PyTorch file"), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = json["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"torch_int8"), "a second int8 file is named by its stem: {names:?}");
    let stem = json["layers"].as_array().unwrap().iter().find(|l| l["layer"] == "stem_conv").unwrap();
    assert_eq!(stem["variants"].as_array().unwrap().len(), 3, "one row: float, int8 and PyTorch's int8");
    // files named explicitly
    let float = format!("float={}", dir.join("resnet8_float.onnx").display());
    let torch = format!("pt={}", dir.join("torch_int8.pt").display());
    let (code, out, err) = common::cli(&["report", "--variant", &float, "--variant", &torch, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["variants"][1]["name"], "pt");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scoped_export_names_meet_module_paths() {
    // the ONNX float model as torch.onnx.export names nodes: `/stem_conv/Conv`, …
    let mut onnx = load_file("resnet8/resnet8_float.onnx");
    for l in &onnx.layers {
        let n = &mut onnx.model.graph.nodes[l.node];
        n.name = format!("/{}/{}", n.name, n.op_type);
    }
    let torch = load_file("torch/resnet8_int8_state_dict.pt");
    let rows = quantlens::model::match_layers(&[onnx, torch], 0);
    let by_name = rows
        .iter()
        .filter(|r| matches!(r.members.get(1).copied().flatten(), Some((_, quantlens::model::MatchHow::NodeName))))
        .count();
    assert_eq!(by_name, 10, "every module found by its path");
}

#[test]
fn a_quantized_embedding_reads_as_pytorch_dequantizes_it() {
    // per_channel_affine_float_qparams: real zero points, written by PyTorch as
    // per_channel_affine with a float zero-point tensor (scripts/make_torch_embedding.py)
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("torch/embedding_reference.json")).unwrap()).unwrap();
    let v = load_file("torch/embedding_int8.pt");
    let l = layer(&v, "embed");
    let LayerWeight::Float(t) = l.weight else { panic!("dequantized on read: a float weight") };
    let values = v.model.graph.tensor(t).unwrap().data.as_ref().unwrap().to_f32_vec().unwrap();
    let expected: Vec<f32> =
        reference["dequantized"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(values.len(), 64 * 16);
    for (i, (a, b)) in values.iter().zip(&expected).enumerate() {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{i}: {a} vs PyTorch's {b}");
    }
    let note = v.model.graph.issues.iter().find(|i| i.subject == "embed").unwrap();
    assert_eq!(note.severity, quantlens::model::Severity::Warning);
    assert!(note.message.contains("float_qparams"), "{note}");
    // beside the float file: its SQNR, the head Linear exact
    let report = build_report(&[load_file("torch/embedding_float.pt"), v], ReportOptions::default());
    let embed = report.layers.iter().find(|l| l.layer == "embed").unwrap();
    assert!(embed.variants[1].metrics.as_ref().unwrap().sqnr_db > 40.0);
}
