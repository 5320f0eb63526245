//! Tensor payloads: where an initializer's bytes live and how to stream them as `f32`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::dtype::{DType, decode_f32};

/// Elements decoded per chunk when streaming a tensor (64 KiB of `f32`: the passes that
/// follow each decode then read it from the nearest caches).
pub const CHUNK_ELEMS: usize = 16 * 1024;

/// Bytes read from an external-data file per system call.
const READ_BLOCK: usize = 1 << 20;

/// A model file's bytes, which in-memory tensors keep ranges of.
#[derive(Debug)]
pub enum FileBytes {
    /// Read into memory (the window: the file may be rewritten while it is open).
    Owned(Vec<u8>),
    /// Mapped from the file (the command line: see [`super::format::Access`]).
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m,
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Clone, Debug)]
pub enum TensorBytes {
    /// In memory: a byte range of a shared buffer (the model file's own bytes, see
    /// `model::onnx::wire`, or a payload decoded from typed protobuf fields), never copied again.
    Memory { buf: Arc<FileBytes>, range: std::ops::Range<usize> },
    /// A byte range of an external-data file, read chunk by chunk on demand, so that
    /// gigabytes of weights never need to be resident at once.
    External { path: Arc<PathBuf>, offset: u64, len: u64 },
    /// The transpose of a row-major `[rows, stride]` array of 4- or 8-bit elements held in
    /// `buf[range]`, cut to `cols` columns: element `(k, n)` of the `[cols, rows]` tensor
    /// is stored element `n · stride + k` (`MatMulNBits`' packed `B`, read in the float
    /// `MatMul`'s `[K, N]` orientation without a copy).
    Transposed { buf: Arc<FileBytes>, range: std::ops::Range<usize>, rows: usize, stride: usize, cols: usize },
}

/// A decodable tensor payload with its validated shape.
#[derive(Clone, Debug)]
pub struct TensorData {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub bytes: TensorBytes,
}

/// A failure to read a tensor payload at statistics time (external files can change).
#[derive(Debug, thiserror::Error)]
#[error("cannot read tensor data: {0}")]
pub struct ReadError(#[from] pub std::io::Error);

impl TensorBytes {
    /// All of `bytes`, in memory.
    #[must_use]
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self::Memory { range: 0..bytes.len(), buf: Arc::new(FileBytes::Owned(bytes)) }
    }

    /// The bytes, when they are in memory in element order.
    #[must_use]
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Self::Memory { buf, range } => buf.get(range.clone()),
            Self::External { .. } | Self::Transposed { .. } => None,
        }
    }

    /// Elements `start..start + out.len()` of a [`Self::Transposed`] view of `dtype` (2 to
    /// 8 bits), as stored (unsigned), into `out`; the stored positions are walked
    /// incrementally (one step of `stride` per element, no division).
    fn transposed_into(&self, dtype: DType, start: usize, out: &mut [u8]) {
        let Self::Transposed { buf, range, rows, stride, .. } = self else { return };
        let bytes = buf.get(range.clone()).unwrap_or_default();
        let rows = (*rows).max(1);
        let (mut k, mut n) = (start / rows, start % rows);
        let mut at = n * stride + k;
        macro_rules! walk {
            ($get:expr) => {
                for o in out.iter_mut() {
                    *o = $get(at);
                    n += 1;
                    if n == rows {
                        n = 0;
                        k += 1;
                        at = k;
                    } else {
                        at += stride;
                    }
                }
            };
        }
        match dtype {
            DType::Int8 | DType::Uint8 => walk!(|at: usize| bytes.get(at).copied().unwrap_or(0)),
            DType::Int4 | DType::Uint4 => {
                walk!(|at: usize| bytes.get(at >> 1).map_or(0, |b| (b >> ((at & 1) << 2)) & 0x0f));
            }
            DType::UintBits(bits) => walk!(|at: usize| super::dtype::bits_at(bytes, at, bits)),
            _ => out.fill(0),
        }
    }
}

impl TensorData {
    /// Number of elements (validated against the byte length at import).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// True when the tensor holds no element.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams all elements as `f32`, in order, in chunks: `f(first_index, values)`.
    ///
    /// # Errors
    /// Only for external data that can no longer be read.
    pub fn for_each_chunk(&self, mut f: impl FnMut(usize, &[f32])) -> Result<(), ReadError> {
        let mut reader = self.reader()?;
        let mut buf = Vec::new();
        while let Some(start) = reader.next_chunk(&mut buf)? {
            f(start, &buf);
        }
        Ok(())
    }

    /// Streams the stored bytes of a tensor with a fixed element size, in chunks of whole
    /// elements of about `bytes` bytes: `f(first_index, bytes)` (no decoding: the fast path
    /// of 8-bit tensors).
    ///
    /// # Errors
    /// Only for external data that can no longer be read; an unsupported element size
    /// (4-bit types) streams nothing.
    pub fn for_each_raw_block(&self, bytes: usize, mut f: impl FnMut(usize, &[u8])) -> Result<(), ReadError> {
        let Some(elem) = self.dtype.elem_bytes() else { return Ok(()) };
        let len = usize::try_from(self.len()).unwrap_or(usize::MAX);
        let step = (bytes / elem).max(1);
        if let TensorBytes::Transposed { .. } = self.bytes {
            // gathered element by element (8-bit views only: 4-bit ones have no elem size)
            let mut block = Vec::new();
            for start in (0..len).step_by(step) {
                block.resize(step.min(len - start), 0);
                self.bytes.transposed_into(self.dtype, start, &mut block);
                f(start, &block);
            }
            return Ok(());
        }
        match self.open_external()? {
            None => {
                let bytes = self.bytes.in_memory().unwrap_or_default();
                for start in (0..len).step_by(step) {
                    let n = step.min(len - start);
                    f(start, bytes.get(start * elem..(start + n) * elem).unwrap_or_default());
                }
            }
            Some(mut file) => {
                let mut raw = Vec::new();
                for start in (0..len).step_by(step) {
                    let n = step.min(len - start);
                    raw.resize(n * elem, 0);
                    file.read_exact(&mut raw)?;
                    f(start, &raw);
                }
            }
        }
        Ok(())
    }

    /// The external-data range, opened and buffered (`None` for data in memory).
    fn open_external(&self) -> Result<Option<std::io::BufReader<std::io::Take<File>>>, ReadError> {
        let TensorBytes::External { path, offset, len } = &self.bytes else { return Ok(None) };
        let mut file = File::open(path.as_path())?;
        file.seek(SeekFrom::Start(*offset))?;
        Ok(Some(std::io::BufReader::with_capacity(READ_BLOCK, file.take(*len))))
    }

    /// A pull-based chunk reader (so that two tensors can be read in lockstep).
    ///
    /// # Errors
    /// When an external-data file cannot be opened.
    pub fn reader(&self) -> Result<ChunkReader<'_>, ReadError> {
        Ok(ChunkReader {
            data: self,
            external: self.open_external()?,
            raw: Vec::new(),
            pos: 0,
            len: usize::try_from(self.len()).unwrap_or(usize::MAX),
        })
    }

    /// Reads the whole tensor into memory as `f32` (for small tensors: scales, zero points).
    ///
    /// # Errors
    /// Only for external data that can no longer be read.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, ReadError> {
        let mut v = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0).min(1 << 24));
        self.for_each_chunk(|_, c| v.extend_from_slice(c))?;
        Ok(v)
    }

    /// Path of the external file, if the data lives in one.
    #[must_use]
    pub fn external_path(&self) -> Option<&Path> {
        match &self.bytes {
            TensorBytes::External { path, .. } => Some(path.as_path()),
            TensorBytes::Memory { .. } | TensorBytes::Transposed { .. } => None,
        }
    }
}

/// Reads a tensor chunk by chunk; see [`TensorData::reader`].
pub struct ChunkReader<'a> {
    data: &'a TensorData,
    external: Option<std::io::BufReader<std::io::Take<File>>>,
    raw: Vec<u8>,
    pos: usize,
    len: usize,
}

impl ChunkReader<'_> {
    /// Decodes the next chunk into `out` (replacing its contents) and returns the index of
    /// its first element, or `None` at the end.
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn next_chunk(&mut self, out: &mut Vec<f32>) -> Result<Option<usize>, ReadError> {
        if self.pos >= self.len {
            return Ok(None);
        }
        let start = self.pos;
        let count = CHUNK_ELEMS.min(self.len - start);
        out.clear();
        out.resize(count, 0.0);
        let dtype = self.data.dtype;
        match (&self.data.bytes, self.external.as_mut()) {
            (TensorBytes::Transposed { .. }, _) => {
                self.raw.resize(count, 0);
                self.data.bytes.transposed_into(dtype, start, &mut self.raw);
                match dtype {
                    DType::Int8 => out.iter_mut().zip(&self.raw).for_each(|(o, &v)| *o = f32::from(v.cast_signed())),
                    DType::Int4 => {
                        out.iter_mut().zip(&self.raw).for_each(|(o, &v)| *o = f32::from((v << 4).cast_signed() >> 4));
                    }
                    _ => out.iter_mut().zip(&self.raw).for_each(|(o, &v)| *o = f32::from(v)),
                }
            }
            (TensorBytes::Memory { .. }, _) => {
                let bytes = self.data.bytes.in_memory().unwrap_or_default();
                decode_f32(dtype, chunk_bytes(dtype, bytes, start, count), 0, out);
            }
            (TensorBytes::External { .. }, Some(reader)) => {
                self.raw.resize(byte_span(dtype, start, count), 0);
                reader.read_exact(&mut self.raw)?;
                decode_f32(dtype, &self.raw, 0, out);
            }
            (TensorBytes::External { .. }, None) => return Err(ReadError(std::io::Error::other("reader not open"))),
        }
        self.pos += count;
        Ok(Some(start))
    }
}

/// Bits per element of a sub-byte type.
fn sub_byte_bits(dtype: DType) -> usize {
    match dtype {
        DType::UintBits(b) => usize::from(b),
        _ => 4,
    }
}

/// Bytes covering `count` elements from element `start` (whose bit offset is a whole byte
/// for sub-byte types, since chunks hold a multiple of 8 elements).
fn byte_span(dtype: DType, start: usize, count: usize) -> usize {
    if let Some(b) = dtype.elem_bytes() {
        return count * b;
    }
    let bits = sub_byte_bits(dtype);
    ((start + count) * bits).div_ceil(8) - start * bits / 8
}

fn chunk_bytes(dtype: DType, bytes: &[u8], start: usize, count: usize) -> &[u8] {
    let (from, len) = match dtype.elem_bytes() {
        Some(b) => (start * b, count * b),
        None => (start * sub_byte_bits(dtype) / 8, byte_span(dtype, start, count)),
    };
    bytes.get(from..from + len).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_memory_tensor_across_chunks() {
        let n = CHUNK_ELEMS + 10;
        let bytes: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let t = TensorData { dtype: DType::Float32, shape: vec![n as u64], bytes: TensorBytes::from_vec(bytes) };
        let mut seen = 0usize;
        let mut starts = vec![];
        t.for_each_chunk(|start, c| {
            starts.push(start);
            for (k, v) in c.iter().enumerate() {
                assert_eq!(*v, (start + k) as f32);
            }
            seen += c.len();
        })
        .unwrap();
        assert_eq!(seen, n);
        assert_eq!(starts, vec![0, CHUNK_ELEMS]);
    }
}
