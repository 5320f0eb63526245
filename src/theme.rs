//! Every colour quantlens draws with, as sRGB triples in `0..=1` (the app converts them
//! to Bevy and egui colours). Blocks use a fixed palette of [`Swatch`]es so that the 3D
//! view needs one material per swatch, not one per block.

/// An sRGB colour, components in `0..=1`.
pub type Rgb = [f32; 3];

pub const BACKGROUND: Rgb = [0.10, 0.11, 0.13];
pub const EDGE: Rgb = [0.55, 0.58, 0.64];
pub const SELECTED: Rgb = [1.0, 1.0, 1.0];
pub const COUNTERPART: Rgb = [0.35, 0.85, 1.0];
pub const UNMATCHED: Rgb = [1.0, 0.35, 0.85];
pub const BADGE: Rgb = [0.95, 0.75, 0.25];
pub const TEXT: Rgb = [0.92, 0.93, 0.95];
pub const TEXT_DIM: Rgb = [0.62, 0.65, 0.70];
/// Per-variant colours in histograms and range bars: float, int8, uint8, others.
pub const VARIANTS: [Rgb; 5] =
    [[0.40, 0.70, 1.00], [1.00, 0.55, 0.25], [0.45, 0.85, 0.45], [0.85, 0.45, 0.90], [0.90, 0.85, 0.35]];

/// Categorical colours of op types.
const OPS: [Rgb; 12] = [
    [0.30, 0.55, 0.95], // Conv
    [0.95, 0.55, 0.20], // MatMul / Gemm
    [0.55, 0.80, 0.35], // Add / Sub
    [0.85, 0.35, 0.40], // Relu & other activations
    [0.65, 0.45, 0.85], // Normalization
    [0.95, 0.80, 0.30], // Pooling
    [0.40, 0.80, 0.80], // Reshape family
    [0.80, 0.50, 0.65], // Mul / Div
    [0.60, 0.60, 0.45], // Concat / Split
    [0.50, 0.65, 0.95], // Softmax
    [0.75, 0.70, 0.60], // Gather
    [0.55, 0.55, 0.58], // other
];

/// Steps of each continuous ramp.
pub const RAMP_STEPS: u16 = 16;
const OP_BASE: u16 = 0;
const QUALITY_BASE: u16 = OPS.len() as u16;
const MAGNITUDE_BASE: u16 = QUALITY_BASE + RAMP_STEPS;
const NEUTRAL_INDEX: u16 = MAGNITUDE_BASE + RAMP_STEPS;
const BAD_INDEX: u16 = NEUTRAL_INDEX + 1;
const GOOD_INDEX: u16 = NEUTRAL_INDEX + 2;
/// Number of swatches.
pub const SWATCHES: u16 = GOOD_INDEX + 1;

/// One colour of the block palette.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Swatch(pub u16);

impl Swatch {
    /// No value to show.
    pub const NEUTRAL: Self = Self(NEUTRAL_INDEX);
    /// A definite problem (NaN present).
    pub const BAD: Self = Self(BAD_INDEX);
    /// A definite pass.
    pub const GOOD: Self = Self(GOOD_INDEX);

    /// The categorical swatch of an op type.
    #[must_use]
    pub fn op(op: &str) -> Self {
        let i = match op {
            "Conv" | "QLinearConv" | "ConvInteger" | "ConvTranspose" => 0,
            "MatMul" | "Gemm" | "QLinearMatMul" | "MatMulInteger" | "QGemm" | "FusedMatMul" => 1,
            "Add" | "Sub" | "QLinearAdd" | "Sum" => 2,
            "Relu" | "Sigmoid" | "Tanh" | "Gelu" | "LeakyRelu" | "Clip" | "HardSwish" | "Erf" | "Elu" => 3,
            "LayerNormalization" | "BatchNormalization" | "InstanceNormalization" | "GroupNormalization" => 4,
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "QLinearGlobalAveragePool" | "GlobalMaxPool" => 5,
            "Reshape" | "Transpose" | "Flatten" | "Squeeze" | "Unsqueeze" | "Shape" | "Identity" => 6,
            "Mul" | "Div" | "QLinearMul" | "Pow" | "Sqrt" => 7,
            "Concat" | "Split" | "Slice" | "QLinearConcat" => 8,
            "Softmax" | "LogSoftmax" => 9,
            "Gather" | "GatherElements" | "Embedding" => 10,
            _ => 11,
        };
        Self(OP_BASE + i)
    }

    /// A quality ramp step: `t = 0` bad (red) … `t = 1` good (green). NaN is neutral.
    #[must_use]
    pub fn quality(t: f64) -> Self {
        ramp_index(t).map_or(Self::NEUTRAL, |k| Self(QUALITY_BASE + k))
    }

    /// A magnitude ramp step (viridis-like, dark to bright). NaN is neutral.
    #[must_use]
    pub fn magnitude(t: f64) -> Self {
        ramp_index(t).map_or(Self::NEUTRAL, |k| Self(MAGNITUDE_BASE + k))
    }

    /// Every swatch, in palette order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..SWATCHES).map(Self)
    }

    /// Its colour.
    #[must_use]
    pub fn rgb(self) -> Rgb {
        let i = self.0;
        if i < QUALITY_BASE {
            OPS.get(usize::from(i - OP_BASE)).copied().unwrap_or(OPS[11])
        } else if i < MAGNITUDE_BASE {
            quality_rgb(f32::from(i - QUALITY_BASE) / f32::from(RAMP_STEPS - 1))
        } else if i < NEUTRAL_INDEX {
            magnitude_rgb(f32::from(i - MAGNITUDE_BASE) / f32::from(RAMP_STEPS - 1))
        } else if i == BAD_INDEX {
            [0.90, 0.20, 0.20]
        } else if i == GOOD_INDEX {
            [0.30, 0.80, 0.40]
        } else {
            [0.42, 0.43, 0.46]
        }
    }
}

fn ramp_index(t: f64) -> Option<u16> {
    if t.is_nan() {
        return None;
    }
    Some((t.clamp(0.0, 1.0) * f64::from(RAMP_STEPS - 1)).round() as u16)
}

fn lerp3(stops: &[Rgb], t: f32) -> Rgb {
    let n = stops.len().saturating_sub(1).max(1);
    let x = t.clamp(0.0, 1.0) * n as f32;
    let i = (x.floor() as usize).min(n - 1);
    let f = x - i as f32;
    let (a, b) = (stops.get(i).copied().unwrap_or_default(), stops.get(i + 1).copied().unwrap_or_default());
    [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}

/// Red → orange → yellow → green.
#[must_use]
pub fn quality_rgb(t: f32) -> Rgb {
    lerp3(&[[0.86, 0.18, 0.18], [0.95, 0.55, 0.15], [0.95, 0.85, 0.25], [0.30, 0.80, 0.40]], t)
}

/// Dark purple → blue → teal → yellow (viridis-like).
#[must_use]
pub fn magnitude_rgb(t: f32) -> Rgb {
    lerp3(&[[0.27, 0.00, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38], [0.99, 0.91, 0.14]], t)
}

/// The colour of variant `i` in plots.
#[must_use]
pub fn variant_rgb(i: usize) -> Rgb {
    VARIANTS.get(i).copied().unwrap_or(VARIANTS[VARIANTS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swatches_are_distinct_and_in_range() {
        let all: Vec<Swatch> = Swatch::all().collect();
        assert_eq!(all.len(), usize::from(SWATCHES));
        for s in &all {
            assert!(s.rgb().iter().all(|c| (0.0..=1.0).contains(c)), "{s:?}");
        }
        assert_eq!(Swatch::quality(0.0).rgb(), quality_rgb(0.0));
        assert_eq!(Swatch::quality(1.0).rgb(), quality_rgb(1.0));
        assert_ne!(Swatch::quality(0.0), Swatch::quality(1.0));
        assert_eq!(Swatch::quality(f64::NAN), Swatch::NEUTRAL);
        assert_eq!(Swatch::quality(7.0), Swatch::quality(1.0), "clamped");
        assert_ne!(Swatch::op("Conv"), Swatch::op("MatMul"));
        assert_eq!(Swatch::op("QLinearConv"), Swatch::op("Conv"));
    }
}
