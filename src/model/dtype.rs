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
    Bool,
    /// A type quantlens cannot decode (string, complex, float8, …), with its ONNX code.
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
            Self::Bool => "bool".into(),
            Self::Unsupported(code) => format!("unsupported({code})"),
        }
    }

    /// True for floating-point types.
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, Self::Float32 | Self::Float64 | Self::Float16 | Self::BFloat16)
    }

    /// True for the integer types quantized weights are stored in.
    #[must_use]
    pub fn is_quantized_int(self) -> bool {
        matches!(self, Self::Int8 | Self::Uint8 | Self::Int16 | Self::Uint16 | Self::Int4 | Self::Uint4 | Self::Int32)
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
            Self::Unsupported(_) => None,
            other => n.checked_mul(other.elem_bytes()? as u64),
        }
    }

    /// Bytes per element for byte-aligned types.
    #[must_use]
    pub fn elem_bytes(self) -> Option<usize> {
        Some(match self {
            Self::Int8 | Self::Uint8 | Self::Bool => 1,
            Self::Int16 | Self::Uint16 | Self::Float16 | Self::BFloat16 => 2,
            Self::Int32 | Self::Uint32 | Self::Float32 => 4,
            Self::Int64 | Self::Uint64 | Self::Float64 => 8,
            Self::Int4 | Self::Uint4 | Self::Unsupported(_) => return None,
        })
    }
}

/// Decodes elements `[start, start + out.len())` of little-endian `bytes` of type `dtype`
/// into `out` as `f32`. `bytes` must start at element `start` for byte-aligned types and at
/// element 0 for 4-bit types (whose elements share bytes). Integer values are converted
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
