//! Error metrics of a quantized tensor against its float original, as the established
//! tools define them (SQNR as onnxruntime's `qdq_loss_debug`).

use serde::Serialize;

use super::source::{ChannelMap, Values};
use crate::model::quant::QuantParams;
use crate::model::tensor::ReadError;

/// onnxruntime's ε: `np.finfo(float).eps`.
pub const SQNR_EPS: f64 = f64::EPSILON;

/// How far `y` (dequantized) is from `x` (float). Pairs where either value is not finite
/// are skipped and counted in `skipped`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorMetrics {
    /// `20·log10(max(‖x‖, ε) / max(‖x − y‖, ε))`.
    pub sqnr_db: f64,
    pub mse: f64,
    pub max_abs: f64,
    /// `x·y / (‖x‖‖y‖)`; NaN when either norm is 0.
    pub cosine: f64,
    /// `‖x − y‖ / ‖x‖`.
    pub norm_l2: f64,
    /// `sqrt(mean(((x − y) / scale)²))` with each element's own scale: the error in
    /// quantization steps. Uniform rounding gives 1/√12 ≈ 0.289; far above that, the
    /// range is clipping or the parameters are off.
    pub rmse_over_scale: Option<f64>,
    pub count: u64,
    pub skipped: u64,
}

/// Compares `x` and `y` element by element (same length and layout). `params`, when
/// given, supplies the per-element scale for `rmse_over_scale`.
///
/// # Errors
/// When external data can no longer be read, or the lengths differ.
#[allow(clippy::cast_precision_loss)]
pub fn compare(x: Values<'_>, y: Values<'_>, params: Option<&QuantParams>) -> Result<ErrorMetrics, ReadError> {
    if x.len() != y.len() {
        return Err(ReadError(std::io::Error::other(format!("cannot compare {} values with {}", x.len(), y.len()))));
    }
    let map = params.map(|p| ChannelMap::new(&y.shape(), p));
    let (mut rx, mut ry) = (x.reader()?, y.reader()?);
    let (mut bx, mut by) = (Vec::new(), Vec::new());
    let (mut xx, mut yy, mut xy, mut dd, mut dd_scaled, mut max_abs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut count, mut skipped) = (0u64, 0u64);
    while let (Some(start), Some(_)) = (rx.next_chunk(&mut bx)?, ry.next_chunk(&mut by)?) {
        for (k, (&a, &b)) in bx.iter().zip(&by).enumerate() {
            if !(a.is_finite() && b.is_finite()) {
                skipped += 1;
                continue;
            }
            let (a, b) = (f64::from(a), f64::from(b));
            let d = a - b;
            xx += a * a;
            yy += b * b;
            xy += a * b;
            dd += d * d;
            max_abs = max_abs.max(d.abs());
            if let (Some(p), Some(m)) = (params, &map) {
                let s = f64::from(p.scale.get(m.channel(start + k)).copied().unwrap_or(f32::NAN));
                dd_scaled += (d / s) * (d / s);
            }
            count += 1;
        }
    }
    let (nx, ny, nd) = (xx.sqrt(), yy.sqrt(), dd.sqrt());
    let n = count.max(1) as f64;
    Ok(ErrorMetrics {
        sqnr_db: 20.0 * (nx.max(SQNR_EPS) / nd.max(SQNR_EPS)).log10(),
        mse: dd / n,
        max_abs,
        cosine: if nx > 0.0 && ny > 0.0 { xy / (nx * ny) } else { f64::NAN },
        norm_l2: if nx > 0.0 { nd / nx } else { f64::NAN },
        rmse_over_scale: params.map(|_| (dd_scaled / n).sqrt()),
        count,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_tensors_hit_the_epsilon_clamp() {
        let x = [1.0f32, -2.0, 3.0];
        let m = compare(Values::Slice(&x), Values::Slice(&x), None).unwrap();
        let expected = 20.0 * (14f64.sqrt() / f64::EPSILON).log10();
        assert!((m.sqnr_db - expected).abs() < 1e-9);
        assert_eq!((m.mse, m.max_abs), (0.0, 0.0));
        assert!((m.cosine - 1.0).abs() < 1e-12);
    }

    #[test]
    fn known_error() {
        // x = [3, 4], y = [3, 3]: ‖x‖ = 5, ‖x−y‖ = 1 → SQNR = 20·log10(5) dB
        let m = compare(Values::Slice(&[3.0, 4.0]), Values::Slice(&[3.0, 3.0]), None).unwrap();
        assert!((m.sqnr_db - 20.0 * 5f64.log10()).abs() < 1e-12);
        assert!((m.mse - 0.5).abs() < 1e-12 && (m.norm_l2 - 0.2).abs() < 1e-12);
        assert!((m.cosine - 21.0 / (5.0 * 18f64.sqrt())).abs() < 1e-12);
    }
}
