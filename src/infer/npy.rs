//! `.npy` and `.npz` readers (numpy's format, versions 1–3, little-endian C-order `f4`, `f8`,
//! `i4`, `i8`): enough for input arrays; `.npz` through the `zip` crate.

use std::path::Path;

use super::InferError;

/// The data of an array.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

fn bad(path: &Path, reason: impl Into<String>) -> InferError {
    InferError::Read { what: "a .npy array", reason: reason.into(), path: path.to_path_buf() }
}

/// Reads `path`.
///
/// # Errors
/// When the file is not a `.npy` array of a supported type, or is cut short.
pub fn read_npy(path: &Path) -> Result<NpyArray, InferError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    parse_npy(&bytes).map_err(|e| bad(path, e))
}

/// Parses the bytes of a `.npy` file.
///
/// # Errors
/// As [`read_npy`], with the reason.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    let rest = bytes.strip_prefix(b"\x93NUMPY".as_slice()).ok_or("not a .npy file (no \\x93NUMPY magic)")?;
    let (&major, rest) = rest.split_first().ok_or("cut short")?;
    let (_, rest) = rest.split_first().ok_or("cut short")?;
    let (len, rest) = match major {
        1 => {
            let (l, r) = rest.split_at_checked(2).ok_or("cut short")?;
            (usize::from(u16::from_le_bytes([l[0], l[1]])), r)
        }
        2 | 3 => {
            let (l, r) = rest.split_at_checked(4).ok_or("cut short")?;
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, r)
        }
        v => return Err(format!("unknown .npy version {v}")),
    };
    let (header, data) = rest.split_at_checked(len).ok_or("header cut short")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let after = header.get(at + key.len() + 2..)?.trim_start().strip_prefix(':')?.trim_start();
        Some(after)
    };
    let descr = field("descr").and_then(|s| s.strip_prefix('\'')?.split('\'').next()).ok_or("no descr")?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err("Fortran-order arrays are not read; save with np.ascontiguousarray".into());
    }
    let shape_text = field("shape").and_then(|s| s.strip_prefix('(')?.split(')').next()).ok_or("no shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape ({shape_text})")))
        .collect::<Result<_, _>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let need = |size: usize| -> Result<&[u8], String> {
        let bytes = n.checked_mul(size).ok_or("shape overflows")?;
        data.get(..bytes).ok_or_else(|| format!("{n} values need {bytes} bytes, the file holds {}", data.len()))
    };
    let data = match descr {
        "<f4" => NpyData::F32(need(4)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        #[allow(clippy::cast_possible_truncation)]
        "<f8" => NpyData::F32(
            need(8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).collect(),
        ),
        "<i8" => NpyData::I64(
            need(8)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
        ),
        "<i4" => NpyData::I64(
            need(4)?.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        ),
        other => return Err(format!("dtype {other} is not read (float32/64, int32/64 are)")),
    };
    Ok(NpyArray { shape, data })
}

/// Reads every array of a `.npz` archive, by name (without `.npy`).
///
/// # Errors
/// When the file is not a zip archive of readable `.npy` arrays.
pub fn read_npz(path: &Path) -> Result<std::collections::BTreeMap<String, NpyArray>, InferError> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(path, format!("not a .npz: {e}")))?;
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(path, e.to_string()))?;
        let name = entry.name().map_err(|e| bad(path, e.to_string()))?.trim_end_matches(".npy").to_string();
        // (arrays beyond 4 GiB are not inputs quantlens reads)
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size().min(1 << 32)).unwrap_or(0));
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| bad(path, e.to_string()))?;
        let array = parse_npy(&bytes).map_err(|e| bad(path, format!("{name}: {e}")))?;
        out.insert(name, array);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_what_numpy_writes() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse_npy(&npy("<f4", "(2, 3)", &data)).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, NpyData::F32(vec![1.5, -2.0, 3.25, 0.0, 7.0, 8.0]));
        let ids: Vec<u8> = [101i64, 2023].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<i8", "(2,)", &ids)).unwrap().data, NpyData::I64(vec![101, 2023]));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse_npy(b"PK\\x03\\x04").unwrap_err().contains("not a .npy"));
        assert!(parse_npy(&npy("<f4", "(2, 3)", &[0; 8])).unwrap_err().contains("need 24 bytes"));
        assert!(parse_npy(&npy("<c8", "(1,)", &[0; 8])).unwrap_err().contains("not read"));
        assert!(parse_npy(&npy("<f4", "(4294967296, 4294967296, 16)", &[])).unwrap_err().contains("overflow"));
    }
}
