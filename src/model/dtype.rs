//! ONNX element types and their decoding to `f32`.

use serde::Serialize;

/// An ONNX `TensorProto.DataType`, narrowed to what quantlens reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Float32,
    Float64,
    Float16,
    BFloat16,
    Int8,
    Uint8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Int4,
    Uint4,
    /// Unsigned integers of 2, 3, 5, 6 or 7 bits packed as a little-endian bit stream
    /// (element `i` at bit `i · bits`): `MatMulNBits`' other widths.
    UintBits(u8),
    /// The four float8 types of ONNX (opset 19): sign, exponent and mantissa bits, bias;
    /// `fn`: no infinities, `uz`: no negative zero (its code is the NaN).
    Float8E4M3FN,
    Float8E4M3FNUZ,
    Float8E5M2,
    Float8E5M2FNUZ,
    Bool,
    /// A type quantlens cannot decode (string, complex, …), with its ONNX code.
    Unsupported(i32),
}

impl DType {
    /// Maps an ONNX data type code.
    #[must_use]
    pub fn from_onnx(code: i32) -> Self {
        match code {
            1 => Self::Float32,
            2 => Self::Uint8,
            3 => Self::Int8,
            4 => Self::Uint16,
            5 => Self::Int16,
            6 => Self::Int32,
            7 => Self::Int64,
            9 => Self::Bool,
            10 => Self::Float16,
            11 => Self::Float64,
            12 => Self::Uint32,
            13 => Self::Uint64,
            16 => Self::BFloat16,
            17 => Self::Float8E4M3FN,
            18 => Self::Float8E4M3FNUZ,
            19 => Self::Float8E5M2,
            20 => Self::Float8E5M2FNUZ,
            21 => Self::Uint4,
            22 => Self::Int4,
            other => Self::Unsupported(other),
        }
    }

    /// Short lowercase name, as used in reports.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::Float32 => "float32".into(),
            Self::Float64 => "float64".into(),
            Self::Float16 => "float16".into(),
            Self::BFloat16 => "bfloat16".into(),
            Self::Int8 => "int8".into(),
            Self::Uint8 => "uint8".into(),
            Self::Int16 => "int16".into(),
            Self::Uint16 => "uint16".into(),
            Self::Int32 => "int32".into(),
            Self::Uint32 => "uint32".into(),
            Self::Int64 => "int64".into(),
            Self::Uint64 => "uint64".into(),
            Self::Int4 => "int4".into(),
            Self::Uint4 => "uint4".into(),
            Self::UintBits(b) => format!("uint{b}"),
            Self::Float8E4M3FN => "float8e4m3fn".into(),
            Self::Float8E4M3FNUZ => "float8e4m3fnuz".into(),
            Self::Float8E5M2 => "float8e5m2".into(),
            Self::Float8E5M2FNUZ => "float8e5m2fnuz".into(),
            Self::Bool => "bool".into(),
            Self::Unsupported(code) => format!("unsupported({code})"),
        }
    }

    /// True for floating-point types.
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, Self::Float32 | Self::Float64 | Self::Float16 | Self::BFloat16)
    }

    /// True for the float8 types (quantized weights' storage, not float weights).
    #[must_use]
    pub fn is_float8(self) -> bool {
        matches!(self, Self::Float8E4M3FN | Self::Float8E4M3FNUZ | Self::Float8E5M2 | Self::Float8E5M2FNUZ)
    }

    /// True for the types quantized weights are stored in (integers and float8).
    #[must_use]
    pub fn is_quantized_int(self) -> bool {
        matches!(
            self,
            Self::Int8
                | Self::Uint8
                | Self::Int16
                | Self::Uint16
                | Self::Int4
                | Self::Uint4
                | Self::Int32
                | Self::UintBits(_)
        ) || self.is_float8()
    }

    /// The largest finite value of a float8 type.
    #[must_use]
    pub fn float8_max(self) -> Option<f32> {
        Some(match self {
            Self::Float8E4M3FN => 448.0,
            Self::Float8E4M3FNUZ => 240.0,
            Self::Float8E5M2 | Self::Float8E5M2FNUZ => 57_344.0,
            _ => return None,
        })
    }

    /// `(qmin, qmax)` of an integer type.
    #[must_use]
    pub fn int_range(self) -> Option<(i64, i64)> {
        Some(match self {
            Self::Int8 => (-128, 127),
            Self::Uint8 => (0, 255),
            Self::Int16 => (-32_768, 32_767),
            Self::Uint16 => (0, 65_535),
            Self::Int4 => (-8, 7),
            Self::Uint4 => (0, 15),
            Self::UintBits(b) => (0, (1i64 << b) - 1),
            Self::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
            Self::Uint32 => (0, i64::from(u32::MAX)),
            _ => return None,
        })
    }

    /// Bytes needed for `n` elements, `None` for undecodable types or overflow.
    #[must_use]
    pub fn byte_len(self, n: u64) -> Option<u64> {
        match self {
            Self::Int4 | Self::Uint4 => n.checked_add(1).map(|v| v / 2),
            Self::UintBits(b) => n.checked_mul(u64::from(b)).map(|v| v.div_ceil(8)),
            Self::Unsupported(_) => None,
            other => n.checked_mul(other.elem_bytes()? as u64),
        }
    }

    /// Bytes per element for byte-aligned types.
    #[must_use]
    pub fn elem_bytes(self) -> Option<usize> {
        Some(match self {
            Self::Int8
            | Self::Uint8
            | Self::Bool
            | Self::Float8E4M3FN
            | Self::Float8E4M3FNUZ
            | Self::Float8E5M2
            | Self::Float8E5M2FNUZ => 1,
            Self::Int16 | Self::Uint16 | Self::Float16 | Self::BFloat16 => 2,
            Self::Int32 | Self::Uint32 | Self::Float32 => 4,
            Self::Int64 | Self::Uint64 | Self::Float64 => 8,
            Self::Int4 | Self::Uint4 | Self::UintBits(_) | Self::Unsupported(_) => return None,
        })
    }
}

/// Element `i` of a little-endian bit stream of `bits`-bit unsigned integers (1 ≤ bits ≤ 8;
/// 0 past the end).
#[must_use]
pub fn bits_at(bytes: &[u8], i: usize, bits: u8) -> u8 {
    let bit = i * usize::from(bits);
    let lo = u16::from(bytes.get(bit / 8).copied().unwrap_or(0));
    let hi = u16::from(bytes.get(bit / 8 + 1).copied().unwrap_or(0));
    let mask = (1u16 << bits) - 1;
    #[allow(clippy::cast_possible_truncation)]
    let v = (((hi << 8) | lo) >> (bit % 8)) & mask;
    v as u8
}

/// The value of float8 code `b`: `exp` exponent bits, `man` mantissa bits, exponent bias
/// `bias`; `ieee`: the top exponent is infinity and NaN (e5m2), else only all ones is NaN
/// (e4m3fn); `uz`: code 0x80 is the NaN and there is no negative zero.
fn float8(b: u8, exp: u32, man: u32, bias: i32, ieee: bool, uz: bool) -> f32 {
    if uz && b == 0x80 {
        return f32::NAN;
    }
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = u32::from(b >> man) & ((1 << exp) - 1);
    let m = u32::from(b) & ((1 << man) - 1);
    let top = (1 << exp) - 1;
    if !uz && ieee && e == top {
        return if m == 0 { sign * f32::INFINITY } else { f32::NAN };
    }
    if !uz && !ieee && e == top && m == (1 << man) - 1 {
        return f32::NAN;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
    let frac = m as f32 / (1u32 << man) as f32;
    #[allow(clippy::cast_possible_wrap)]
    let v = if e == 0 { frac * 2f32.powi(1 - bias) } else { (1.0 + frac) * 2f32.powi(e as i32 - bias) };
    sign * v
}

/// The 256 values of a float8 type, by code.
fn float8_table(dtype: DType) -> &'static [f32; 256] {
    use std::sync::LazyLock;
    fn table(f: impl Fn(u8) -> f32) -> [f32; 256] {
        let mut t = [0f32; 256];
        for (b, v) in (0..=255u8).zip(t.iter_mut()) {
            *v = f(b);
        }
        t
    }
    static E4M3FN: LazyLock<[f32; 256]> = LazyLock::new(|| table(|b| float8(b, 4, 3, 7, false, false)));
    static E4M3FNUZ: LazyLock<[f32; 256]> = LazyLock::new(|| table(|b| float8(b, 4, 3, 8, false, true)));
    static E5M2: LazyLock<[f32; 256]> = LazyLock::new(|| table(|b| float8(b, 5, 2, 15, true, false)));
    static E5M2FNUZ: LazyLock<[f32; 256]> = LazyLock::new(|| table(|b| float8(b, 5, 2, 16, true, true)));
    match dtype {
        DType::Float8E4M3FNUZ => &E4M3FNUZ,
        DType::Float8E5M2 => &E5M2,
        DType::Float8E5M2FNUZ => &E5M2FNUZ,
        _ => &E4M3FN,
    }
}

/// Decodes elements `[start, start + out.len())` of little-endian `bytes` of type `dtype`
/// into `out` as `f32`. `bytes` must start at element `start` for byte-aligned types and at
/// element 0 for sub-byte types (whose elements share bytes). Integer values are converted
/// exactly up to 2^24; this is the value domain, not the dequantized one.
pub fn decode_f32(dtype: DType, bytes: &[u8], start: usize, out: &mut [f32]) {
    macro_rules! le {
        ($t:ty, $n:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                #[allow(clippy::cast_lossless)]
                let v = <$t>::from_le_bytes(a) as f32;
                *o = v;
            }
        };
    }
    match dtype {
        DType::Float32 => le!(f32, 4),
        DType::Float64 => le!(f64, 8),
        DType::Int8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = f32::from(b.cast_signed())),
        DType::Uint8 | DType::Bool => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = f32::from(b)),
        DType::Int16 => le!(i16, 2),
        DType::Uint16 => le!(u16, 2),
        DType::Int32 => le!(i32, 4),
        DType::Uint32 => le!(u32, 4),
        DType::Int64 => le!(i64, 8),
        DType::Uint64 => le!(u64, 8),
        DType::Float16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BFloat16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::Int4 | DType::Uint4 => {
            for (k, o) in out.iter_mut().enumerate() {
                let i = start + k;
                let byte = bytes.get(i / 2).copied().unwrap_or(0);
                let nib = if i.is_multiple_of(2) { byte & 0x0f } else { byte >> 4 };
                *o = if dtype == DType::Int4 {
                    // sign-extend the 4-bit value
                    f32::from((nib << 4).cast_signed() >> 4)
                } else {
                    f32::from(nib)
                };
            }
        }
        DType::UintBits(b) => {
            for (k, o) in out.iter_mut().enumerate() {
                *o = f32::from(bits_at(bytes, start + k, b));
            }
        }
        DType::Float8E4M3FN | DType::Float8E4M3FNUZ | DType::Float8E5M2 | DType::Float8E5M2FNUZ => {
            let table = float8_table(dtype);
            out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = table[usize::from(b)]);
        }
        DType::Unsupported(_) => out.iter_mut().for_each(|o| *o = f32::NAN),
    }
}

/// Decodes integer elements (for zero points) as `i32`; non-integers are truncated.
#[must_use]
pub fn decode_i32_all(dtype: DType, bytes: &[u8], n: usize) -> Vec<i32> {
    let mut f = vec![0f32; n];
    decode_f32(dtype, bytes, 0, &mut f);
    #[allow(clippy::cast_possible_truncation)]
    f.into_iter().map(|v| v as i32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_codes_decode_as_the_onnx_types_define_them() {
        let one = |d: DType, b: u8| {
            let mut o = [0f32];
            decode_f32(d, &[b], 0, &mut o);
            o[0]
        };
        // e4m3fn: 1.0 = 0x38, max 448 = 0x7E, NaN = 0x7F, smallest subnormal 2^-9 = 0x01
        assert_eq!([one(DType::Float8E4M3FN, 0x38), one(DType::Float8E4M3FN, 0x7E)], [1.0, 448.0]);
        assert!(one(DType::Float8E4M3FN, 0x7F).is_nan() && one(DType::Float8E4M3FN, 0xFF).is_nan());
        assert_eq!((one(DType::Float8E4M3FN, 0x01), one(DType::Float8E4M3FN, 0x80)), (2f32.powi(-9), -0.0));
        // e4m3fnuz: bias 8, max 240 = 0x7F, 0x80 the NaN
        assert_eq!([one(DType::Float8E4M3FNUZ, 0x40), one(DType::Float8E4M3FNUZ, 0x7F)], [1.0, 240.0]);
        assert!(one(DType::Float8E4M3FNUZ, 0x80).is_nan());
        // e5m2: IEEE-like, 1.0 = 0x3C, max 57344 = 0x7B, 0x7C infinity
        assert_eq!([one(DType::Float8E5M2, 0x3C), one(DType::Float8E5M2, 0x7B)], [1.0, 57_344.0]);
        assert_eq!(one(DType::Float8E5M2, 0xFC), f32::NEG_INFINITY);
        // e5m2fnuz: bias 16, 0x7F = 57344 (no infinity), subnormal 0x01 = 2^-17
        assert_eq!([one(DType::Float8E5M2FNUZ, 0x7F), one(DType::Float8E5M2FNUZ, 0x01)], [57_344.0, 2f32.powi(-17)]);
        for d in [DType::Float8E4M3FN, DType::Float8E4M3FNUZ, DType::Float8E5M2, DType::Float8E5M2FNUZ] {
            assert_eq!(Some(one(d, 0x7F).max(one(d, 0x7E)).max(one(d, 0x7B))), d.float8_max(), "{}", d.name());
        }
    }

    #[test]
    fn bit_streams_unpack_low_bits_first() {
        // 3-bit elements 1..=8 (mod 8): bits 001 010 011 100 101 110 111 000, little-endian
        let values: Vec<u8> = (1..=8u8).map(|v| v % 8).collect();
        let mut bytes = vec![0u8; 3];
        for (i, v) in values.iter().enumerate() {
            for b in 0..3 {
                if v >> b & 1 == 1 {
                    bytes[(i * 3 + b) / 8] |= 1 << ((i * 3 + b) % 8);
                }
            }
        }
        let mut out = [0f32; 8];
        decode_f32(DType::UintBits(3), &bytes, 0, &mut out);
        assert_eq!(out.map(|v| v as u8).to_vec(), values);
        assert_eq!(DType::UintBits(3).byte_len(8), Some(3));
        assert_eq!(DType::UintBits(2).int_range(), Some((0, 3)));
    }

    #[test]
    fn int4_sign_extends_and_unpacks_low_nibble_first() {
        // bytes: 0xF7 -> elements [7, -1]; 0x08 -> [-8, 0]
        let mut out = [0f32; 4];
        decode_f32(DType::Int4, &[0xF7, 0x08], 0, &mut out);
        assert_eq!(out, [7.0, -1.0, -8.0, 0.0]);
        decode_f32(DType::Uint4, &[0xF7, 0x08], 0, &mut out);
        assert_eq!(out, [7.0, 15.0, 8.0, 0.0]);
        let mut tail = [0f32; 2];
        decode_f32(DType::Int4, &[0xF7, 0x08], 1, &mut tail);
        assert_eq!(tail, [-1.0, -8.0]);
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(DType::Int4.byte_len(3), Some(2));
        assert_eq!(DType::Float32.byte_len(u64::MAX), None);
        assert_eq!(DType::BFloat16.byte_len(5), Some(10));
        assert_eq!(DType::Unsupported(999).byte_len(1), None);
    }

    #[test]
    fn decodes_half_types() {
        let mut out = [0f32; 2];
        let h = half::f16::from_f32(1.5).to_le_bytes();
        let b = half::bf16::from_f32(-2.0).to_le_bytes();
        decode_f32(DType::Float16, &h, 0, &mut out[..1]);
        decode_f32(DType::BFloat16, &b, 0, &mut out[1..]);
        assert_eq!(out, [1.5, -2.0]);
    }
}
