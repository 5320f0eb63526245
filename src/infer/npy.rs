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

/// The element type of an array, as its `descr` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Descr {
    F4,
    F8,
    I4,
    I8,
}

impl Descr {
    fn parse(descr: &str) -> Result<Self, String> {
        match descr {
            "<f4" => Ok(Self::F4),
            "<f8" => Ok(Self::F8),
            "<i4" => Ok(Self::I4),
            "<i8" => Ok(Self::I8),
            other => Err(format!("dtype {other} is not read (float32/64, int32/64 are)")),
        }
    }

    fn size(self) -> usize {
        match self {
            Self::F4 | Self::I4 => 4,
            Self::F8 | Self::I8 => 8,
        }
    }

    /// Values from little-endian bytes (a whole number of elements).
    #[allow(clippy::cast_possible_truncation)]
    fn decode(self, bytes: &[u8]) -> NpyData {
        let word = |c: &[u8]| -> [u8; 8] { c.try_into().unwrap_or_default() };
        match self {
            Self::F4 => {
                NpyData::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            Self::F8 => NpyData::F32(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(word(c)) as f32).collect()),
            Self::I8 => NpyData::I64(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(word(c))).collect()),
            Self::I4 => NpyData::I64(
                bytes.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            ),
        }
    }
}

/// What the header of a `.npy` says.
struct Header {
    descr: Descr,
    shape: Vec<usize>,
    values: usize,
}

/// The length of the header that follows the `len` prelude bytes (magic, version, length).
fn header_len(prelude: &[u8]) -> Result<(usize, usize), String> {
    let rest = prelude.strip_prefix(b"\x93NUMPY".as_slice()).ok_or("not a .npy file (no \\x93NUMPY magic)")?;
    match rest {
        [1, _, a, b, ..] => Ok((10, usize::from(u16::from_le_bytes([*a, *b])))),
        [2 | 3, _, a, b, c, d, ..] => Ok((12, u32::from_le_bytes([*a, *b, *c, *d]) as usize)),
        [1..=3, ..] | [] => Err("cut short".into()),
        [v, ..] => Err(format!("unknown .npy version {v}")),
    }
}

fn parse_header(header: &[u8]) -> Result<Header, String> {
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
    let values = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let descr = Descr::parse(descr)?;
    values.checked_mul(descr.size()).ok_or("shape overflows")?;
    Ok(Header { descr, shape, values })
}

/// Parses the bytes of a `.npy` file.
///
/// # Errors
/// As [`read_npy`], with the reason.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    let (at, len) = header_len(bytes)?;
    let header = bytes.get(at..at + len).ok_or("header cut short")?;
    let h = parse_header(header)?;
    let data = bytes.get(at + len..).unwrap_or_default();
    let need = h.values * h.descr.size();
    let data = data
        .get(..need)
        .ok_or_else(|| format!("{} values need {need} bytes, the file holds {}", h.values, data.len()))?;
    Ok(NpyArray { shape: h.shape, data: h.descr.decode(data) })
}

/// An array read row by row (along axis 0) from a `.npy` file or a `.npz` member, so that a
/// data set of any size is read in bounded memory.
pub struct RowReader {
    /// The whole array's shape.
    pub shape: Vec<usize>,
    descr: Descr,
    row_bytes: usize,
    rows_left: usize,
    reader: Box<dyn std::io::Read + Send>,
    path: std::path::PathBuf,
    buf: Vec<u8>,
}

impl RowReader {
    /// Reads the header from `reader` (a `.npy` stream).
    fn new(mut reader: Box<dyn std::io::Read + Send>, path: &Path) -> Result<Self, InferError> {
        let mut prelude = [0u8; 12];
        let io = |e: std::io::Error| bad(path, e.to_string());
        reader.read_exact(&mut prelude[..10]).map_err(io)?;
        if prelude.get(6).is_some_and(|&v| v >= 2) {
            reader.read_exact(&mut prelude[10..]).map_err(io)?;
        }
        let (_, len) = header_len(&prelude).map_err(|e| bad(path, e))?;
        let mut header = vec![0; len];
        reader.read_exact(&mut header).map_err(io)?;
        let h = parse_header(&header).map_err(|e| bad(path, e))?;
        let rows = h.shape.first().copied().unwrap_or(1);
        let row_values = if h.shape.is_empty() { 1 } else { h.values / rows.max(1) };
        Ok(Self {
            shape: h.shape,
            descr: h.descr,
            row_bytes: row_values * h.descr.size(),
            rows_left: if h.values == 0 { 0 } else { rows },
            reader,
            path: path.to_path_buf(),
            buf: Vec::new(),
        })
    }

    /// Opens a `.npy` file.
    ///
    /// # Errors
    /// When the file cannot be opened or its header read.
    pub fn open_npy(path: &Path) -> Result<Self, InferError> {
        let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
        Self::new(Box::new(std::io::BufReader::new(file)), path)
    }

    /// Opens the member `name` (without `.npy`) of a `.npz`: stored members are read in
    /// place, deflated ones (`savez_compressed`) inflated as they are read.
    ///
    /// # Errors
    /// When the archive cannot be read, lacks the member, or compresses it otherwise.
    pub fn open_npz(path: &Path, name: &str) -> Result<Self, InferError> {
        use std::io::{Read as _, Seek as _};
        let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
        let mut zip =
            zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(path, format!("not a .npz: {e}")))?;
        let entry = zip.by_name(&format!("{name}.npy")).map_err(|e| bad(path, format!("{name}: {e}")))?;
        let (method, start, size) = (entry.compression(), entry.data_start(), entry.compressed_size());
        drop(entry);
        let start = start.ok_or_else(|| bad(path, format!("{name}: no data offset")))?;
        let mut file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
        file.seek(std::io::SeekFrom::Start(start)).map_err(|e| bad(path, e.to_string()))?;
        let raw = std::io::BufReader::new(file).take(size);
        let reader: Box<dyn std::io::Read + Send> = match method {
            zip::CompressionMethod::Stored => Box::new(raw),
            zip::CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(raw)),
            other => return Err(bad(path, format!("{name} is compressed with {other}, not read"))),
        };
        Self::new(reader, path)
    }

    /// Rows not yet read.
    #[must_use]
    pub fn rows_left(&self) -> usize {
        self.rows_left
    }

    fn read_row(&mut self) -> Option<Result<&[u8], InferError>> {
        if self.rows_left == 0 {
            return None;
        }
        self.rows_left -= 1;
        self.buf.resize(self.row_bytes, 0);
        match self.reader.read_exact(&mut self.buf) {
            Ok(()) => Some(Ok(&self.buf)),
            Err(e) => {
                self.rows_left = 0;
                Some(Err(bad(&self.path, format!("cut short: {e}"))))
            }
        }
    }

    /// The next row's values.
    pub fn next_row(&mut self) -> Option<Result<NpyData, InferError>> {
        let descr = self.descr;
        self.read_row().map(|r| r.map(|bytes| descr.decode(bytes)))
    }

    /// Passes over the next row.
    pub fn skip_row(&mut self) -> Option<Result<(), InferError>> {
        self.read_row().map(|r| r.map(|_| ()))
    }

    /// Every remaining row as one array.
    ///
    /// # Errors
    /// When the data is cut short.
    pub fn read_all(mut self) -> Result<NpyArray, InferError> {
        let mut bytes = Vec::new();
        while let Some(row) = self.read_row() {
            bytes.extend_from_slice(row?);
        }
        Ok(NpyArray { shape: self.shape, data: self.descr.decode(&bytes) })
    }
}

/// The names of the arrays of a `.npz` (without `.npy`).
///
/// # Errors
/// When the file is not a zip archive.
pub fn npz_names(path: &Path) -> Result<Vec<String>, InferError> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(path, format!("not a .npz: {e}")))?;
    Ok(zip.file_names().filter_map(|n| Some(n.ok()?.strip_suffix(".npy")?.to_string())).collect())
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
