//! onnxruntime's `MatMulNBits` (domain `com.microsoft`): its packed `B` (`[N, n_blocks,
//! blob]`, `bits` (2–8) per element as a little-endian bit stream: low nibble first for 4
//! bits, no bit wasted for 3, 5, 6, 7) becomes a `[K, N]` view of the file's
//! bytes in the float `MatMul`'s orientation ([`TensorBytes::Transposed`], no copy), its
//! scales (`[N · n_blocks]`) and zero points (packed like `B`, or absent: the midpoint
//! `2^(bits − 1)`) the blocked parameters of that view (`[n_blocks, N]`, blocks along
//! axis 0), so that the layer is read like a blocked `DequantizeLinear`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::model::dtype::DType;
use crate::model::graph::{Dim, Graph, Issue, Severity, Tensor, TensorKind};
use crate::model::tensor::{FileBytes, TensorBytes, TensorData};

/// External data files mapped so far (a model's weights share one or a few).
type Maps = HashMap<PathBuf, Arc<FileBytes>>;

/// `B`'s bytes as a range of a shared buffer: in memory already, or its external-data
/// range mapped (read-only, never resident whole: the view reads it in place). A 7B
/// model's 3.5 GB of packed weights live in external data.
fn shared_range(bytes: &TensorBytes, maps: &mut Maps) -> Result<(Arc<FileBytes>, std::ops::Range<usize>), String> {
    match bytes {
        TensorBytes::Memory { buf, range } => Ok((Arc::clone(buf), range.clone())),
        TensorBytes::External { path, offset, len } => {
            let buf = if let Some(b) = maps.get(path.as_path()) {
                Arc::clone(b)
            } else {
                let b = Arc::new(
                    crate::model::format::map_file(path)
                        .ok_or_else(|| format!("B's external data {} cannot be mapped", path.display()))?,
                );
                maps.insert(path.as_path().to_path_buf(), Arc::clone(&b));
                b
            };
            let start = usize::try_from(*offset).map_err(|_| "offset too large")?;
            let end = start.checked_add(usize::try_from(*len).map_err(|_| "length too large")?).ok_or("overflow")?;
            if end > buf.len() {
                return Err(format!(
                    "B's external range {start}..{end} is past the end of its file ({} bytes)",
                    buf.len()
                ));
            }
            Ok((buf, start..end))
        }
        TensorBytes::Transposed { .. } => Err("B is read twice".into()),
    }
}

/// Rewrites every `MatMulNBits` of `g` as described above; one that cannot be read keeps
/// its tensors and gets an issue.
pub(crate) fn unpack(g: &mut Graph) {
    let nodes: Vec<usize> = (0..g.nodes.len()).filter(|&n| g.nodes[n].op_type == "MatMulNBits").collect();
    let mut maps = HashMap::new();
    for n in nodes {
        if let Err(reason) = unpack_one(g, n, &mut maps) {
            let subject = g.nodes.get(n).map(|node| node.label(n)).unwrap_or_default();
            g.issues.push(Issue { severity: Severity::Error, subject, message: format!("MatMulNBits: {reason}") });
        }
    }
}

/// Bits per element of the view's type.
fn dtype_bits(d: DType) -> u8 {
    match d {
        DType::Uint4 => 4,
        DType::UintBits(b) => b,
        _ => 8,
    }
}

fn owned(dtype: DType, shape: Vec<u64>, bytes: Vec<u8>) -> TensorData {
    TensorData { dtype, shape, bytes: TensorBytes::from_vec(bytes) }
}

/// Values of `bits` bits as a little-endian bit stream (two 4-bit values per byte, low
/// nibble first; one byte each for 8 bits).
fn pack(values: &[u8], bits: u64) -> Vec<u8> {
    let bits = usize::try_from(bits).unwrap_or(8);
    let mut out = vec![0u8; (values.len() * bits).div_ceil(8)];
    for (i, &v) in values.iter().enumerate() {
        let at = i * bits;
        let wide = u16::from(v) << (at % 8);
        #[allow(clippy::cast_possible_truncation)]
        for (k, byte) in [wide as u8, (wide >> 8) as u8].into_iter().enumerate() {
            if let Some(slot) = out.get_mut(at / 8 + k) {
                *slot |= byte;
            }
        }
    }
    out
}

/// Whether `g_idx` (act-order GPTQ's block of each row of `B`) is the plain `k / block`:
/// onnxruntime's writers may add it without reordering anything.
fn g_idx_is_plain(g: &Graph, t: usize, k: u64, block: u64) -> Result<bool, String> {
    let d = g.tensors.get(t).and_then(|t| t.data.as_ref()).ok_or("g_idx has no data")?;
    if d.len() != k {
        return Err(format!("g_idx holds {} entries for K {k}", d.len()));
    }
    let v = d.to_f32_vec().map_err(|e| e.to_string())?;
    #[allow(clippy::cast_precision_loss)]
    Ok(v.iter().enumerate().all(|(i, &b)| b == (i as u64 / block) as f32))
}

#[allow(clippy::cast_possible_truncation)]
fn unpack_one(g: &mut Graph, n: usize, maps: &mut Maps) -> Result<(), String> {
    let node = g.nodes.get(n).ok_or("no node")?;
    let attr = |name: &str| node.attr_int(name).and_then(|v| u64::try_from(v).ok());
    let (k, nn, bits, block) = (attr("K"), attr("N"), attr("bits").unwrap_or(4), attr("block_size"));
    let (Some(k), Some(nn), Some(block)) = (k, nn, block) else { return Err("no K, N or block_size".into()) };
    if !(2..=8).contains(&bits) {
        return Err(format!("bits {bits} is outside 2–8"));
    }
    if block == 0 || k == 0 || nn == 0 {
        return Err(format!("K {k}, N {nn}, block_size {block}: nothing to read"));
    }
    if !(block * bits).is_multiple_of(8) {
        return Err(format!("blocks of {block} × {bits} bits do not fill whole bytes"));
    }
    if let Some(gi) = node.input(4)
        && !g_idx_is_plain(g, gi, k, block)?
    {
        return Err("act-order g_idx that reorders rows into blocks is not read yet".into());
    }
    let (b_id, s_id) = (node.input(1).ok_or("no B")?, node.input(2).ok_or("no scales")?);
    let zp_id = node.input(3);
    let blocks = k.div_ceil(block);
    let blob = block * bits / 8;
    let b = g.tensors.get(b_id).and_then(|t| t.data.as_ref()).ok_or("B has no data")?;
    if b.dtype != DType::Uint8 || b.len() != nn * blocks * blob {
        return Err(format!(
            "B {:?} of {} is not [N, n_blocks, blob] = [{nn}, {blocks}, {blob}] of uint8",
            b.shape,
            b.dtype.name()
        ));
    }
    let size = |v: u64| usize::try_from(v).map_err(|_| "too large".to_string());
    #[allow(clippy::cast_possible_truncation)]
    let dtype = match bits {
        4 => DType::Uint4,
        8 => DType::Uint8,
        b => DType::UintBits(b as u8),
    };
    let (buf, range) = shared_range(&b.bytes, maps)?;
    let view = TensorData {
        dtype,
        shape: vec![k, nn],
        bytes: TensorBytes::Transposed { buf, range, rows: size(nn)?, stride: size(blocks * block)?, cols: size(k)? },
    };
    // scales [N · n_blocks], n-major → [n_blocks, N]
    let s = g.tensors.get(s_id).and_then(|t| t.data.as_ref()).ok_or("scales have no data")?;
    if s.len() != nn * blocks || !s.dtype.is_float() {
        return Err(format!("{} scales of {} for N {nn} × {blocks} blocks", s.len(), s.dtype.name()));
    }
    let scales = s.to_f32_vec().map_err(|e| e.to_string())?;
    let (nu, bu) = (size(nn)?, size(blocks)?);
    let mut t_scales = vec![0f32; nu * bu];
    for (i, &v) in scales.iter().enumerate() {
        if let Some(slot) = t_scales.get_mut((i % bu) * nu + i / bu) {
            *slot = v;
        }
    }
    // zero points: packed like B per row (n), or absent (the midpoint)
    let mid = 1u8 << (bits - 1);
    let mut t_zps = vec![mid; nu * bu];
    let mut float_zps = None;
    if let Some(z) = zp_id.and_then(|z| g.tensors.get(z)).and_then(|t| t.data.as_ref())
        && z.dtype.is_float()
    {
        // HQQ: one float per block, not packed, shaped like the scales
        let v = z.to_f32_vec().map_err(|e| e.to_string())?;
        if v.len() != nu * bu {
            return Err(format!("{} float zero points for N {nn} × {blocks} blocks", v.len()));
        }
        let mut t = vec![0f32; nu * bu];
        for (i, &x) in v.iter().enumerate() {
            if let Some(slot) = t.get_mut((i % bu) * nu + i / bu) {
                *slot = x;
            }
        }
        float_zps = Some(t);
    } else if let Some(z) = zp_id.and_then(|z| g.tensors.get(z)).and_then(|t| t.data.as_ref()) {
        if z.dtype != DType::Uint8 {
            return Err(format!("zero points of {} (packed uint8 expected)", z.dtype.name()));
        }
        let bytes: Vec<u8> = z.to_f32_vec().map_err(|e| e.to_string())?.into_iter().map(|v| v as u8).collect();
        // each row's zero points packed like B: ⌈n_blocks · bits / 8⌉ bytes
        let per_row = (bu * size(bits)?).div_ceil(8);
        if bytes.len() != nu * per_row {
            return Err(format!("{} zero-point bytes for N {nn} × {blocks} blocks", bytes.len()));
        }
        for (row, packed) in bytes.chunks_exact(per_row.max(1)).enumerate() {
            for j in 0..bu {
                if let Some(slot) = t_zps.get_mut(j * nu + row) {
                    *slot = crate::model::dtype::bits_at(packed, j, dtype_bits(dtype));
                }
            }
        }
    }
    let pshape = vec![blocks, nn];
    let scale_bytes: Vec<u8> = t_scales.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dims = |shape: &[u64]| Some(shape.iter().map(|&d| Dim::Known(d)).collect());
    if let Some(t) = g.tensors.get_mut(b_id) {
        t.shape = dims(&view.shape);
        t.dtype = Some(dtype);
        t.data = Some(view);
    }
    if let Some(t) = g.tensors.get_mut(s_id) {
        t.shape = dims(&pshape);
        t.dtype = Some(DType::Float32);
        t.data = Some(owned(DType::Float32, pshape.clone(), scale_bytes));
    }
    let zp_data = match float_zps {
        Some(f) => owned(DType::Float32, pshape.clone(), f.iter().flat_map(|v| v.to_le_bytes()).collect()),
        None => owned(dtype, pshape.clone(), pack(&t_zps, bits)),
    };
    if let Some(z) = zp_id {
        if let Some(t) = g.tensors.get_mut(z) {
            t.shape = dims(&pshape);
            t.dtype = Some(zp_data.dtype);
            t.data = Some(zp_data);
        }
    } else {
        {
            // the implied midpoint as a tensor of its own, so that it reads like any zero point
            let name = format!("{}__quantlens_zero_point", g.tensors.get(b_id).map_or("", |t| t.name.as_str()));
            g.tensors.push(Tensor {
                name,
                kind: TensorKind::Initializer,
                dtype: Some(dtype),
                shape: dims(&pshape),
                producer: None,
                consumers: vec![n],
                data: Some(zp_data),
            });
            let id = g.tensors.len() - 1;
            if let Some(node) = g.nodes.get_mut(n) {
                while node.inputs.len() < 4 {
                    node.inputs.push(None);
                }
                if let Some(slot) = node.inputs.get_mut(3) {
                    *slot = Some(id);
                }
            }
        }
    }
    Ok(())
}
