//! Values against the goldens that onnx + numpy + onnxruntime computed for the fixtures:
//! quant params, dequantized weights, statistics, error metrics and shared histograms.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use common::{close, data, f64s, first_values, golden, load, params};
use quantlens::report::{LayerReport, Report, ReportOptions, build_report};
use quantlens::stats::{Summary, Values};
use serde_json::Value;

fn check_stats(s: &Summary, g: &Value, what: &str) {
    assert_eq!(s.count, g["count"].as_u64().unwrap(), "{what} count");
    assert_eq!(s.nan, g["nan"].as_u64().unwrap(), "{what} nan");
    assert_eq!(s.inf, g["inf"].as_u64().unwrap(), "{what} inf");
    for (k, v) in [
        ("min", s.min),
        ("max", s.max),
        ("mean", s.mean),
        ("std", s.std),
        ("q25", s.q25),
        ("q50", s.q50),
        ("q75", s.q75),
    ] {
        close(v, g[k].as_f64().unwrap(), 1e-5, &format!("{what} {k}"));
    }
}

fn layer_row<'a>(report: &'a Report, layer: &str) -> &'a LayerReport {
    report.layers.iter().find(|l| l.layer == layer).unwrap_or_else(|| panic!("layer {layer} not in report"))
}

fn check_model(model: &str) {
    let gold = golden();
    let gm = &gold[model];
    let folder = gm["float_file"].as_str().unwrap().split('/').next().unwrap();
    let variants = load(folder);
    let report = build_report(&variants, ReportOptions { histogram_bins: Some(32) });
    assert_eq!(report.reference, "float");
    let layers = gm["layers"].as_array().unwrap();
    assert!(layers.len() >= 4);
    for gl in layers {
        let name = gl["layer"].as_str().unwrap();
        let row = layer_row(&report, name);
        let float = row.variants.iter().find(|v| v.variant == "float").unwrap();
        assert_eq!(float.weight, gl["float_weight"].as_str().unwrap());
        check_stats(float.stats.as_ref().unwrap(), &gl["float_stats"], &format!("{name} float"));
        for (vname, gv) in gl["variants"].as_object().unwrap() {
            let what = format!("{model}/{name}/{vname}");
            let lv = row.variants.iter().find(|v| &v.variant == vname).unwrap_or_else(|| panic!("{what} missing"));
            assert_eq!(lv.weight, gv["weight_q"].as_str().unwrap(), "{what} weight");
            assert_eq!(lv.dtype, gv["dtype"].as_str().unwrap(), "{what} dtype");
            let v = variants.iter().find(|v| &v.spec.name == vname).unwrap();
            let (p, q) = params(v, gv["weight_q"].as_str().unwrap());
            let scales: Vec<f64> = p.scale.iter().map(|&s| f64::from(s)).collect();
            assert_eq!(scales, f64s(&gv["scale"]), "{what} scales");
            let zps: Vec<f64> = p.zero_point.iter().map(|&z| f64::from(z)).collect();
            assert_eq!(zps, f64s(&gv["zero_point"]), "{what} zero points");
            if p.per_channel() {
                assert_eq!(p.axis, Some(gv["axis"].as_u64().unwrap() as usize), "{what} axis");
            }
            let first = first_values(Values::Dequantized(q, p), 16);
            for (i, (a, e)) in first.iter().zip(f64s(&gv["dequant_first"])).enumerate() {
                assert!((a - e).abs() <= 1e-6, "{what} dequant[{i}]: {a} vs {e}");
            }
            check_stats(lv.stats.as_ref().unwrap(), &gv["dequant_stats"], &what);
            let m = lv.metrics.as_ref().unwrap();
            let gmx = &gv["metrics"];
            close(m.sqnr_db, gmx["sqnr_db"].as_f64().unwrap(), 1e-5, &format!("{what} sqnr"));
            close(m.mse, gmx["mse"].as_f64().unwrap(), 1e-5, &format!("{what} mse"));
            close(m.max_abs, gmx["max_abs"].as_f64().unwrap(), 1e-5, &format!("{what} max_abs"));
            close(m.cosine, gmx["cosine"].as_f64().unwrap(), 1e-5, &format!("{what} cosine"));
            close(m.norm_l2, gmx["norm_l2"].as_f64().unwrap(), 1e-5, &format!("{what} norm_l2"));
            close(
                m.rmse_over_scale.unwrap(),
                gmx["rmse_over_scale"].as_f64().unwrap(),
                1e-5,
                &format!("{what} rmse/scale"),
            );
        }
        let h = row.histogram.as_ref().unwrap();
        let gh = &gl["histogram"];
        close(h.lo, gh["lo"].as_f64().unwrap(), 1e-12, "hist lo");
        close(h.hi, gh["hi"].as_f64().unwrap(), 1e-12, "hist hi");
        for (i, lv) in row.variants.iter().enumerate() {
            let expected: Vec<u64> =
                gh["counts"][&lv.variant].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
            assert_eq!(h.counts[i], expected, "{model}/{name} histogram of {}", lv.variant);
            assert_eq!(h.counts[i].iter().sum::<u64>(), lv.stats.as_ref().unwrap().count, "counts sum to elements");
        }
    }
}

#[test]
fn resnet8_matches_golden_values() {
    check_model("resnet8");
}

#[test]
fn transformer_matches_golden_values() {
    check_model("transformer");
}

#[test]
fn qoperator_weights_match_golden_values() {
    let gold = golden();
    for (file, entries) in gold["qoperator"].as_object().unwrap() {
        let v = quantlens::model::variants::load_variant(
            &quantlens::model::VariantSpec {
                name: "q".into(),
                kind: quantlens::model::VariantKind::Other,
                path: data(file),
            },
            quantlens::model::Access::Map,
        )
        .unwrap();
        for e in entries.as_array().unwrap() {
            let (p, q) = params(&v, e["weight_q"].as_str().unwrap());
            let scales: Vec<f64> = p.scale.iter().map(|&s| f64::from(s)).collect();
            assert_eq!(scales, f64s(&e["scale"]), "{file} scales");
            let zps: Vec<f64> = p.zero_point.iter().map(|&z| f64::from(z)).collect();
            assert_eq!(zps, f64s(&e["zero_point"]), "{file} zero points");
            assert_eq!(q.dtype.name(), e["dtype"].as_str().unwrap());
            for (a, x) in first_values(Values::Dequantized(q, p), 16).iter().zip(f64s(&e["dequant_first"])) {
                assert!((a - x).abs() <= 1e-6, "{file}: {a} vs {x}");
            }
        }
    }
}
