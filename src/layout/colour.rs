//! Colour by metric: which swatch a block gets for the chosen metric, and the legend.

use crate::report::{LayerReport, LayerVariant};
use crate::theme::{Swatch, magnitude_rgb, quality_rgb};
use crate::view::run::BlockRun;

/// The quantity blocks are coloured by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColourMetric {
    #[default]
    OpType,
    /// Weight SQNR against float; float blocks show the worst of their row.
    Sqnr,
    /// Largest absolute weight value (log scale).
    Range,
    /// `rmse/scale`: ≈ 0.289 is healthy rounding.
    RmseOverScale,
    /// The worst block's (or channel's) `rmse/scale`: one bad block in 10⁵ shows.
    WorstBlock,
    /// NaN or infinity in the weight.
    NanPresent,
    /// The lowest `xmodel_err` of the layer's activations (a run of the variants).
    ActivationSqnr,
    /// The largest share of an activation's float values its quantization clips.
    Clipping,
    /// What keeping the layer in float recovers, against the costliest layer (the
    /// sensitivity sweep).
    Sensitivity,
}

impl ColourMetric {
    pub const ALL: [Self; 9] = [
        Self::OpType,
        Self::Sqnr,
        Self::Range,
        Self::RmseOverScale,
        Self::WorstBlock,
        Self::NanPresent,
        Self::ActivationSqnr,
        Self::Clipping,
        Self::Sensitivity,
    ];

    /// Its name in menus and the legend.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::OpType => "op type",
            Self::Sqnr => "weight SQNR",
            Self::Range => "weight range",
            Self::RmseOverScale => "rmse/scale",
            Self::WorstBlock => "worst block rmse/scale",
            Self::NanPresent => "NaN/Inf present",
            Self::ActivationSqnr => "activation SQNR (run)",
            Self::Clipping => "activation clipping (run)",
            Self::Sensitivity => "sensitivity (run)",
        }
    }

    /// Whether the colour comes from a run of the variants (blocks recolour when one ends).
    #[must_use]
    pub fn needs_run(self) -> bool {
        matches!(self, Self::ActivationSqnr | Self::Clipping | Self::Sensitivity)
    }

    /// Whether the colour depends on statistics (blocks recolour when they arrive).
    #[must_use]
    pub fn needs_stats(self) -> bool {
        self != Self::OpType
    }
}

/// SQNR mapped to the quality ramp: 10 dB and below red, 40 dB and above green.
pub const SQNR_RED_DB: f64 = 10.0;
pub const SQNR_GREEN_DB: f64 = 40.0;
pub use crate::stats::metrics::HEALTHY_RMSE_OVER_SCALE;
/// The range colour spans `10^RANGE_LOG10.0 ..= 10^RANGE_LOG10.1`.
const RANGE_LOG10: (f64, f64) = (-2.0, 1.0);

fn sqnr_t(db: f64) -> f64 {
    (db - SQNR_RED_DB) / (SQNR_GREEN_DB - SQNR_RED_DB)
}

/// `rmse/scale` on the quality ramp (1 healthy, 0 four times off): the towers' and the
/// block heatmaps' colour.
#[must_use]
pub fn rmse_t(v: f64) -> f64 {
    // one octave away from 0.289 is half-way to red
    1.0 - ((v / HEALTHY_RMSE_OVER_SCALE).log2().abs() / 2.0)
}

/// Clipped share on a log ramp: 0.01 % and below green, 0.1 % half-way, 1 % and above red.
fn clip_t(share: f64) -> f64 {
    if share <= 0.0 { 1.0 } else { 1.0 - f64::midpoint(share.log10(), 4.0).clamp(0.0, 1.0) }
}

fn range_t(absmax: f64) -> f64 {
    (absmax.max(1e-30).log10() - RANGE_LOG10.0) / (RANGE_LOG10.1 - RANGE_LOG10.0)
}

/// The swatch of one block: its op type, its own entry of the row's report (if the block
/// is a layer and stats are in), the whole row (for the reference's worst SQNR), and what
/// a run of the variants found about it.
#[must_use]
pub fn block_swatch(
    metric: ColourMetric,
    op: &str,
    own: Option<&LayerVariant>,
    row: Option<&LayerReport>,
    is_reference: bool,
    run: BlockRun,
) -> Swatch {
    match metric {
        ColourMetric::ActivationSqnr => {
            run.activation_sqnr.filter(|d| !d.is_nan()).map_or(Swatch::NEUTRAL, |d| Swatch::quality(sqnr_t(d)))
        }
        ColourMetric::Clipping => run.clip.map_or(Swatch::NEUTRAL, |c| Swatch::quality(clip_t(c))),
        ColourMetric::Sensitivity => run.cost.map_or(Swatch::NEUTRAL, |c| Swatch::quality(1.0 - c)),
        ColourMetric::OpType => Swatch::op(op),
        ColourMetric::Sqnr => {
            // every tensor of the layer, worst first; exact tensors are lossless
            let db = if is_reference {
                row.and_then(LayerReport::ranked_sqnr)
            } else {
                own.and_then(LayerVariant::ranked_sqnr)
            };
            db.filter(|d| !d.is_nan())
                .map_or(Swatch::NEUTRAL, |d| Swatch::quality(if d == f64::INFINITY { 1.0 } else { sqnr_t(d) }))
        }
        ColourMetric::Range => own
            .and_then(|v| v.stats.as_ref())
            .filter(|s| s.count > 0)
            .map_or(Swatch::NEUTRAL, |s| Swatch::magnitude(range_t(s.min.abs().max(s.max.abs())))),
        ColourMetric::RmseOverScale => own
            .and_then(|v| v.metrics.as_ref())
            .and_then(|m| m.rmse_over_scale)
            .map_or(Swatch::NEUTRAL, |r| Swatch::quality(rmse_t(r))),
        ColourMetric::WorstBlock => own
            .and_then(|v| v.metrics.as_ref())
            .and_then(|m| m.channels.as_ref()?.worst.first())
            .map_or(Swatch::NEUTRAL, |w| Swatch::quality(rmse_t(w.rmse_over_scale))),
        ColourMetric::NanPresent => own
            .and_then(|v| v.stats.as_ref())
            .map_or(Swatch::NEUTRAL, |s| if s.nan + s.inf > 0 { Swatch::BAD } else { Swatch::GOOD }),
    }
}

/// One legend entry: a colour and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub rgb: crate::theme::Rgb,
    pub label: String,
}

/// The legend of `metric`; for op types, of the ops present.
#[must_use]
pub fn legend(metric: ColourMetric, ops_present: &[String]) -> Vec<LegendEntry> {
    let e = |rgb, label: &str| LegendEntry { rgb, label: label.to_string() };
    let none = e(Swatch::NEUTRAL.rgb(), "no weight / not computed");
    match metric {
        ColourMetric::OpType => {
            let mut seen: Vec<Swatch> = Vec::new();
            let mut out = Vec::new();
            for op in ops_present {
                let s = Swatch::op(op);
                if let Some(i) = seen.iter().position(|x| *x == s) {
                    if let Some(entry) = out.get_mut(i) {
                        let entry: &mut LegendEntry = entry;
                        if entry.label.len() < 40 {
                            entry.label.push_str(", ");
                            entry.label.push_str(op);
                        }
                    }
                } else {
                    seen.push(s);
                    out.push(e(s.rgb(), op));
                }
            }
            out
        }
        ColourMetric::Sqnr => vec![
            e(quality_rgb(0.0), &format!("≤ {SQNR_RED_DB:.0} dB")),
            e(quality_rgb(0.5), &format!("{:.0} dB", f64::midpoint(SQNR_RED_DB, SQNR_GREEN_DB))),
            e(quality_rgb(1.0), &format!("≥ {SQNR_GREEN_DB:.0} dB")),
            none,
        ],
        ColourMetric::Range => vec![
            e(magnitude_rgb(0.0), "|w| ≤ 0.01"),
            e(magnitude_rgb(1.0 / 3.0), "|w| ≈ 0.1"),
            e(magnitude_rgb(2.0 / 3.0), "|w| ≈ 1"),
            e(magnitude_rgb(1.0), "|w| ≥ 10"),
            none,
        ],
        ColourMetric::RmseOverScale | ColourMetric::WorstBlock => vec![
            e(quality_rgb(1.0), "≈ 0.289 (rounding only)"),
            e(quality_rgb(0.5), "2× off"),
            e(quality_rgb(0.0), "≥ 4× off (clipping / bad params)"),
            none,
        ],
        ColourMetric::NanPresent => {
            vec![e(Swatch::GOOD.rgb(), "finite"), e(Swatch::BAD.rgb(), "NaN / Inf present"), none]
        }
        ColourMetric::ActivationSqnr => {
            let not_run = e(Swatch::NEUTRAL.rgb(), "not run yet (Run: Activations)");
            vec![
                e(quality_rgb(0.0), &format!("≤ {SQNR_RED_DB:.0} dB")),
                e(quality_rgb(0.5), &format!("{:.0} dB", f64::midpoint(SQNR_RED_DB, SQNR_GREEN_DB))),
                e(quality_rgb(1.0), &format!("≥ {SQNR_GREEN_DB:.0} dB")),
                not_run,
            ]
        }
        ColourMetric::Clipping => vec![
            e(quality_rgb(1.0), "≤ 0.01 % clipped"),
            e(quality_rgb(0.5), "0.1 %"),
            e(quality_rgb(0.0), "≥ 1 % clipped"),
            e(Swatch::NEUTRAL.rgb(), "not run yet (Run: Activations)"),
        ],
        ColourMetric::Sensitivity => vec![
            e(quality_rgb(1.0), "costs nothing in float's place"),
            e(quality_rgb(0.0), "the costliest layer"),
            e(Swatch::NEUTRAL.rgb(), "not run yet (Run: Sensitivity)"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_map_the_documented_anchors() {
        assert_eq!(Swatch::quality(sqnr_t(5.0)), Swatch::quality(0.0));
        assert_eq!(Swatch::quality(sqnr_t(45.0)), Swatch::quality(1.0));
        assert_eq!(Swatch::quality(rmse_t(HEALTHY_RMSE_OVER_SCALE)), Swatch::quality(1.0));
        assert_eq!(Swatch::quality(rmse_t(HEALTHY_RMSE_OVER_SCALE * 4.0)), Swatch::quality(0.0));
        assert_eq!(Swatch::quality(rmse_t(HEALTHY_RMSE_OVER_SCALE / 4.0)), Swatch::quality(0.0));
        assert!((range_t(0.1) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((clip_t(0.0), clip_t(1e-4), clip_t(1e-3), clip_t(0.01), clip_t(0.5)), (1.0, 1.0, 0.5, 0.0, 0.0));
    }

    #[test]
    fn op_legend_merges_ops_of_one_colour() {
        let ops: Vec<String> = ["Conv", "QLinearConv", "Relu"].iter().map(ToString::to_string).collect();
        let l = legend(ColourMetric::OpType, &ops);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].label, "Conv, QLinearConv");
    }
}
