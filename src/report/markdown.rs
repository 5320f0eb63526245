//! A Markdown summary for pull-request comments: the variants, counts, the worst tensors
//! per quantized variant and the nodes that differ.

use std::fmt::Write as _;

use super::build::Report;
use super::format::sqnr_text;

/// How many of the worst tensors each variant lists.
pub const WORST_LISTED: usize = 10;

/// The summary of `report`.
#[must_use]
pub fn to_markdown(report: &Report) -> String {
    let mut out = String::from("## quantlens report\n\n");
    let _ = writeln!(out, "| variant | file | opset | nodes | layers |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for v in &report.variants {
        let reference = if v.name == report.reference { " (reference)" } else { "" };
        let _ = writeln!(out, "| {}{reference} | `{}` | {} | {} | {} |", v.name, v.file, v.opset, v.nodes, v.layers);
    }
    let constants = report.layers.iter().filter(|l| l.constant).count();
    let _ = writeln!(out, "\n{} layers ({constants} scalar constants).", report.layers.len());
    for v in report.variants.iter().filter(|v| v.name != report.reference) {
        let mut rows: Vec<(f64, String)> = Vec::new();
        let (mut compared, mut exact) = (0, 0);
        for l in &report.layers {
            for lv in l.variants.iter().filter(|lv| lv.variant == v.name) {
                for init in &lv.initializers {
                    let Some(m) = &init.metrics else { continue };
                    compared += 1;
                    if m.exact {
                        exact += 1;
                    } else if !l.constant {
                        let rmse = m.rmse_over_scale.map_or_else(|| "–".into(), |r| format!("{r:.3}"));
                        let line = format!(
                            "| {} | {} `{}` | {} | {:.3e} | {rmse} |",
                            l.layer,
                            init.role.name(),
                            init.float,
                            sqnr_text(m),
                            m.mse
                        );
                        rows.push((m.sqnr_db, line));
                    }
                }
            }
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let _ = writeln!(out, "\n### {}\n", v.name);
        let _ = writeln!(out, "{compared} tensors compared with float, {exact} exact.\n");
        if !rows.is_empty() {
            let _ = writeln!(out, "Worst {} by SQNR:\n", rows.len().min(WORST_LISTED));
            let _ = writeln!(out, "| layer | tensor | SQNR dB | MSE | rmse/scale |");
            let _ = writeln!(out, "|---|---|---:|---:|---:|");
            for (_, line) in rows.iter().take(WORST_LISTED) {
                let _ = writeln!(out, "{line}");
            }
        }
        let acts: Vec<_> = report
            .activations
            .as_deref()
            .map(super::format::worst_activations)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, av)| av.variant == v.name)
            .collect();
        if !acts.is_empty() {
            let _ = writeln!(out, "\nWorst {} activations by SQNR against float:\n", acts.len().min(WORST_LISTED));
            let _ = writeln!(out, "| activation | layer | SQNR dB | own Q/DQ dB | clipped |");
            let _ = writeln!(out, "|---|---|---:|---:|---:|");
            for (a, av) in acts.iter().take(WORST_LISTED) {
                let db = |d: Option<f64>| d.map_or_else(|| "–".into(), |d| format!("{d:.2}"));
                let clip = av.clip_fraction.map_or_else(|| "–".into(), |c| format!("{:.3} %", 100.0 * c));
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {clip} |",
                    a.tensor,
                    a.layer,
                    db(av.xmodel_err_db),
                    db(av.qdq_err_db)
                );
            }
        }
        if let Some(d) = report.unmatched.get(&v.name).filter(|d| !d.is_empty()) {
            let list = |ns: &[crate::model::NodeRef]| {
                ns.iter().map(|n| format!("`{}` ({})", n.node, n.op)).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(out);
            if !d.missing.is_empty() {
                let _ = writeln!(out, "Not in {}: {}", v.name, list(&d.missing));
            }
            if !d.extra.is_empty() {
                let _ = writeln!(out, "Only in {}: {}", v.name, list(&d.extra));
            }
        }
    }
    out
}
