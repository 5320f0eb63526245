//! onnxruntime's `MatMulNBits` (domain `com.microsoft`): at import its packed `B` (`[N,
//! n_blocks, blob]`, `bits` (2–8) per element as a little-endian bit stream: low nibble
//! first for 4 bits, no bit wasted for 3, 5, 6, 7) becomes a `[K, N]` view of the file's
//! bytes in the float `MatMul`'s orientation ([`TensorBytes::Transposed`], no copy); its
//! scales (`[N · n_blocks]`) and zero points (packed like `B`, floats (HQQ), or absent:
//! the midpoint `2^(bits − 1)`) stay as written and are read by [`params`] straight into
//! the blocked parameters of that view (`[n_blocks, N]`, blocks along axis 0, one copy),
//! so that the layer is read like a blocked `DequantizeLinear`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::model::dtype::DType;
use crate::model::graph::{Dim, Graph, Issue, Severity};
use crate::model::quant::QuantParams;
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

/// Views every `MatMulNBits`' `B` as described above; one that cannot be read keeps its
/// tensors and gets an issue.
pub(crate) fn unpack(g: &mut Graph) {
    let nodes: Vec<usize> =
        g.nodes.iter().enumerate().filter(|(_, n)| n.op_type == "MatMulNBits").map(|(i, _)| i).collect();
    let mut maps = HashMap::new();
    for n in nodes {
        let subject = g.nodes.get(n).map(|node| node.label(n)).unwrap_or_default();
        match unpack_one(g, n, &mut maps) {
            Err(reason) => {
                g.issues.push(Issue { severity: Severity::Error, subject, message: format!("MatMulNBits: {reason}") });
            }
            Ok(()) if act_order_with_packed_zero_points(g, n) => g.issues.push(Issue {
                severity: Severity::Warning,
                subject,
                message: "MatMulNBits: act-order g_idx with packed zero points, read as the operator defines \
                          them (zp[n, g_idx[k]]); onnxruntime 1.23's CPU kernel ignores such zero points (it \
                          subtracts 8 for 4 bits), so its outputs differ from these weights"
                    .into(),
            }),
            Ok(()) => {}
        }
    }
}

/// The block of each row `k` of `B` from `g_idx` (act-order GPTQ groups rows by
/// importance): `None` when it is absent or the plain `k / block` (onnxruntime's writers
/// may add it without reordering anything). Dequantization is then `(q[n, k] − zp[n,
/// g[k]]) · scale[n, g[k]]`, the operator's definition, which onnxruntime follows with
/// float zero points or none.
fn g_idx(g: &Graph, n: usize, k: u64, block: u64) -> Result<Option<Vec<u32>>, String> {
    let Some(t) = g.nodes.get(n).and_then(|node| node.input(4)) else { return Ok(None) };
    let d = g.tensors.get(t).and_then(|t| t.data.as_ref()).ok_or("g_idx has no data")?;
    if d.len() != k {
        return Err(format!("g_idx holds {} entries for K {k}", d.len()));
    }
    let blocks = k.div_ceil(block);
    let v = d.to_f32_vec().map_err(|e| e.to_string())?;
    let mut groups = Vec::with_capacity(v.len());
    for (row, &b) in v.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        if !(b >= 0.0 && b < blocks as f32 && b.fract() == 0.0) {
            return Err(format!("g_idx gives row {row} block {b}, not one of the {blocks} blocks"));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        groups.push(b as u32);
    }
    let plain = groups.iter().enumerate().all(|(i, &b)| u64::from(b) == i as u64 / block);
    Ok((!plain).then_some(groups))
}

/// Whether node `n` has a reordering `g_idx` and packed (integer) zero points: the case
/// onnxruntime's CPU kernel reads differently (measured with 1.23.2: it runs float zero
/// points and absent ones by the definition, and ignores packed ones).
fn act_order_with_packed_zero_points(g: &Graph, n: usize) -> bool {
    let packed = g
        .nodes
        .get(n)
        .and_then(|node| node.input(3))
        .and_then(|z| g.tensors.get(z))
        .and_then(|t| t.data.as_ref())
        .is_some_and(|z| z.dtype == DType::Uint8);
    packed && shape_of(g, n).is_ok_and(|(k, _, _, block)| matches!(g_idx(g, n, k, block), Ok(Some(_))))
}

/// `K`, `N`, `bits`, `block_size` of node `n`, checked.
fn shape_of(g: &Graph, n: usize) -> Result<(u64, u64, u64, u64), String> {
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
    Ok((k, nn, bits, block))
}

/// The element type of `bits`-bit values.
#[allow(clippy::cast_possible_truncation)]
fn dtype_of(bits: u64) -> DType {
    match bits {
        4 => DType::Uint4,
        8 => DType::Uint8,
        b => DType::UintBits(b as u8),
    }
}

fn unpack_one(g: &mut Graph, n: usize, maps: &mut Maps) -> Result<(), String> {
    let (k, nn, bits, block) = shape_of(g, n)?;
    let node = g.nodes.get(n).ok_or("no node")?;
    let b_id = node.input(1).ok_or("no B")?;
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
    let dtype = dtype_of(bits);
    let (buf, range) = shared_range(&b.bytes, maps)?;
    let view = TensorData {
        dtype,
        shape: vec![k, nn],
        bytes: TensorBytes::Transposed { buf, range, rows: size(nn)?, stride: size(blocks * block)?, cols: size(k)? },
    };
    if let Some(t) = g.tensors.get_mut(b_id) {
        t.shape = Some(view.shape.iter().map(|&d| Dim::Known(d)).collect());
        t.dtype = Some(dtype);
        t.data = Some(view);
    }
    Ok(())
}

/// The blocked parameters of `MatMulNBits` node `n` (whose `B` [`unpack`] viewed as `[K,
/// N]`): scales and zero points transposed from `[N, n_blocks]` to `[n_blocks, N]`, blocks
/// along axis 0.
///
/// # Errors
/// A reason when the scales or zero points do not fit `N × n_blocks`.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn params(g: &Graph, n: usize) -> Result<QuantParams, String> {
    let (k, nn, bits, block) = shape_of(g, n)?;
    let groups = g_idx(g, n, k, block)?;
    let node = g.nodes.get(n).ok_or("no node")?;
    let (s_id, zp_id) = (node.input(2).ok_or("no scales")?, node.input(3));
    let size = |v: u64| usize::try_from(v).map_err(|_| "too large".to_string());
    let (nu, bu) = (size(nn)?, size(k.div_ceil(block))?);
    let s = g.tensors.get(s_id).and_then(|t| t.data.as_ref()).ok_or("scales have no data")?;
    if s.len() != (nu * bu) as u64 || !s.dtype.is_float() {
        return Err(format!("{} scales of {} for N {nn} × {bu} blocks", s.len(), s.dtype.name()));
    }
    // [N, n_blocks] (n-major) → [n_blocks, N]
    // (row by row: no division per element; 134 M blocks in a 4 B-parameter model)
    let transpose = |v: &[f32]| {
        let mut t = vec![0f32; nu * bu];
        for (n, row) in v.chunks_exact(bu.max(1)).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if let Some(slot) = t.get_mut(j * nu + n) {
                    *slot = x;
                }
            }
        }
        t
    };
    let scale = transpose(&s.to_f32_vec().map_err(|e| e.to_string())?);
    let dtype = dtype_of(bits);
    let mut zero_point = vec![1i32 << (bits - 1); nu * bu];
    let mut float_zero_point = None;
    let z = zp_id.and_then(|z| g.tensors.get(z)).and_then(|t| t.data.as_ref());
    match z {
        // HQQ: one float per block, not packed, shaped like the scales
        Some(z) if z.dtype.is_float() => {
            let v = z.to_f32_vec().map_err(|e| e.to_string())?;
            if v.len() != nu * bu {
                return Err(format!("{} float zero points for N {nn} × {bu} blocks", v.len()));
            }
            let t = transpose(&v);
            zero_point = t.iter().map(|&x| x.round() as i32).collect();
            float_zero_point = Some(t);
        }
        Some(z) => {
            if z.dtype != DType::Uint8 {
                return Err(format!("zero points of {} (packed uint8 expected)", z.dtype.name()));
            }
            let bytes: Vec<u8> = z.to_f32_vec().map_err(|e| e.to_string())?.into_iter().map(|v| v as u8).collect();
            // each row's zero points packed like B: ⌈n_blocks · bits / 8⌉ bytes
            let per_row = (bu * size(bits)?).div_ceil(8);
            if bytes.len() != nu * per_row {
                return Err(format!("{} zero-point bytes for N {nn} × {bu} blocks", bytes.len()));
            }
            for (row, packed) in bytes.chunks_exact(per_row.max(1)).enumerate() {
                for j in 0..bu {
                    if let Some(slot) = zero_point.get_mut(j * nu + row) {
                        *slot = i32::from(crate::model::dtype::bits_at(packed, j, bits as u8));
                    }
                }
            }
        }
        None => {}
    }
    Ok(QuantParams {
        scale,
        zero_point,
        axis: Some(0),
        block: Some(size(block)?),
        dtype,
        zero_point_dtype: z.map(|z| z.dtype),
        scale_tensor: Some(s_id),
        zero_point_tensor: zp_id,
        float_zero_point,
        groups,
    })
}
