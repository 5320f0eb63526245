//! Per-channel summaries along a quantization axis.

use serde::Serialize;

use super::source::{ChannelMap, Values};
use crate::model::tensor::ReadError;

/// Range and moments of one channel's finite values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelSummary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub abs_max: f64,
    pub count: u64,
}

/// Summaries of every channel of `values` along `axis`.
///
/// # Errors
/// When external data can no longer be read.
#[allow(clippy::cast_precision_loss)]
pub fn channel_summaries(values: Values<'_>, axis: usize) -> Result<Vec<ChannelSummary>, ReadError> {
    let map = ChannelMap::along(&values.shape(), axis);
    let mut acc = vec![(f64::INFINITY, f64::NEG_INFINITY, 0.0f64, 0u64); map.channels()];
    values.for_each_chunk(|start, chunk| {
        for (k, &v) in chunk.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            if let Some(a) = acc.get_mut(map.channel(start + k)) {
                let v = f64::from(v);
                a.0 = a.0.min(v);
                a.1 = a.1.max(v);
                a.2 += v;
                a.3 += 1;
            }
        }
    })?;
    Ok(acc
        .into_iter()
        .map(|(min, max, sum, count)| {
            let (min, max) = if count == 0 { (f64::NAN, f64::NAN) } else { (min, max) };
            ChannelSummary { min, max, mean: sum / count.max(1) as f64, abs_max: min.abs().max(max.abs()), count }
        })
        .collect())
}

/// Min, max and mean of a list of per-channel values (scales, zero points, ranges).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub count: usize,
}

/// The [`Spread`] of `values`; `None` when empty.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let (mut min, mut max, mut sum, mut count) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for v in values {
        min = min.min(v);
        max = max.max(v);
        sum += v;
        count += 1;
    }
    (count > 0).then(|| Spread { min, max, mean: sum / count as f64, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_along_axis_zero_and_one() {
        // shape [2, 3]: rows are channels along axis 0, columns along axis 1
        let v = [1.0f32, 2.0, 3.0, -4.0, 5.0, 6.0];
        let t = crate::model::tensor::TensorData {
            dtype: crate::model::DType::Float32,
            shape: vec![2, 3],
            bytes: crate::model::TensorBytes::from_vec(v.iter().flat_map(|f| f.to_le_bytes()).collect()),
        };
        let rows = channel_summaries(Values::Raw(&t), 0).unwrap();
        assert_eq!((rows[0].min, rows[0].max, rows[1].min, rows[1].abs_max), (1.0, 3.0, -4.0, 6.0));
        let cols = channel_summaries(Values::Raw(&t), 1).unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!((cols[0].min, cols[0].max, cols[2].mean), (-4.0, 1.0, 4.5));
    }
}
