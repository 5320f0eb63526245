//! onnxruntime's `GatherBlockQuantized` (domain `com.microsoft`, quantized embeddings):
//! `data` blocked along `quantize_axis` with `scales` (and `zero_points`) shaped like it
//! with that axis in blocks of `block_size`, read like a blocked `DequantizeLinear`.
//! onnxruntime's quantizer writes `data` as int4/uint4 (zero point 0 when absent), read
//! as it is. Packed `uint8` data follows `MatMulNBits`' conventions instead (two 4-bit
//! values per byte along the last axis, zero points packed alike, absent ones the midpoint
//! 8 or 128): this pass rewrites it as uint4 (a view of the same bytes) with its zero
//! points written out, so that later stages see the first form.

use crate::model::dtype::{DType, bits_at};
use crate::model::graph::{Dim, Graph, Issue, Severity, Tensor, TensorKind};
use crate::model::tensor::{TensorBytes, TensorData};

/// Rewrites the packed `uint8` form of every `GatherBlockQuantized` of `g`; one that
/// cannot be read keeps its tensors and gets an issue naming it.
pub(crate) fn unpack(g: &mut Graph) {
    let nodes: Vec<usize> =
        g.nodes.iter().enumerate().filter(|(_, n)| n.op_type == "GatherBlockQuantized").map(|(i, _)| i).collect();
    for n in nodes {
        if let Err(reason) = unpack_one(g, n) {
            let subject = g.nodes.get(n).map(|node| node.label(n)).unwrap_or_default();
            g.issues.push(Issue {
                severity: Severity::Error,
                subject,
                message: format!("GatherBlockQuantized: {reason}"),
            });
        }
    }
}

#[allow(clippy::cast_possible_truncation)]
fn unpack_one(g: &mut Graph, n: usize) -> Result<(), String> {
    let node = g.nodes.get(n).ok_or("no node")?;
    let bits = node.attr_int("bits").unwrap_or(4);
    let block = node.attr_int("block_size").unwrap_or(128);
    let (data_id, zp_id) = (node.input(0).ok_or("no data")?, node.input(3));
    let Some(d) = g.tensors.get(data_id).and_then(|t| t.data.clone()) else { return Ok(()) };
    if d.dtype != DType::Uint8 {
        return Ok(()); // int4 / uint4 / int8 data: read as it is
    }
    if bits != 4 && bits != 8 {
        return Err(format!("bits {bits} (4 and 8 are defined for uint8 data)"));
    }
    let rank = d.shape.len();
    let qaxis = node.attr_int("quantize_axis").unwrap_or(1);
    let last = i64::try_from(rank).unwrap_or(0) - 1;
    if bits == 4 && qaxis != last && qaxis != -1 {
        return Err(format!("packed 4-bit data quantized along axis {qaxis}, not the last"));
    }
    let (dtype, factor) = if bits == 4 { (DType::Uint4, 2) } else { (DType::Uint8, 1) };
    let mut shape = d.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l *= factor;
    }
    let dims = |s: &[u64]| Some(s.iter().map(|&v| Dim::Known(v)).collect());
    // zero points: packed like the data per row of the blocked shape, or the midpoint
    let blocks_shape: Vec<u64> = {
        let mut s = shape.clone();
        let b = u64::try_from(block).ok().filter(|&b| b > 0).ok_or(format!("block_size {block}"))?;
        let axis = usize::try_from(if qaxis < 0 { qaxis + i64::try_from(rank).unwrap_or(0) } else { qaxis })
            .map_err(|_| format!("quantize_axis {qaxis}"))?;
        let dim = s.get_mut(axis).ok_or(format!("quantize_axis {qaxis} of a rank-{rank} tensor"))?;
        *dim = dim.div_ceil(b);
        s
    };
    let count = usize::try_from(blocks_shape.iter().product::<u64>()).map_err(|_| "too large")?;
    if count > 1 << 26 {
        return Err(format!("{count} blocks: implausibly many"));
    }
    let row = usize::try_from(*blocks_shape.last().unwrap_or(&1)).unwrap_or(1).max(1);
    let mut zps = vec![if bits == 4 { 8u8 } else { 128 }; count];
    if let Some(z) = zp_id.and_then(|z| g.tensors.get(z)).and_then(|t| t.data.as_ref()) {
        if z.dtype != DType::Uint8 {
            return Err(format!("zero points of {} beside uint8 data", z.dtype.name()));
        }
        let bytes: Vec<u8> = z.to_f32_vec().map_err(|e| e.to_string())?.into_iter().map(|v| v as u8).collect();
        let per_row = if bits == 4 { row.div_ceil(2) } else { row };
        if bytes.len() != count / row * per_row {
            return Err(format!("{} zero-point bytes for {count} blocks", bytes.len()));
        }
        for (r, packed) in bytes.chunks_exact(per_row.max(1)).enumerate() {
            for j in 0..row {
                if let Some(slot) = zps.get_mut(r * row + j) {
                    *slot = if bits == 4 { bits_at(packed, j, 4) } else { packed.get(j).copied().unwrap_or(0) };
                }
            }
        }
    }
    let packed_zps: Vec<u8> = if bits == 4 {
        zps.chunks(2)
            .map(|p| (p.first().copied().unwrap_or(0) & 0x0f) | (p.get(1).copied().unwrap_or(0) << 4))
            .collect()
    } else {
        zps
    };
    let zp_data = TensorData { dtype, shape: blocks_shape.clone(), bytes: TensorBytes::from_vec(packed_zps) };
    if let Some(t) = g.tensors.get_mut(data_id) {
        t.shape = dims(&shape);
        t.dtype = Some(dtype);
        t.data = Some(TensorData { dtype, shape: shape.clone(), bytes: d.bytes });
    }
    if let Some(z) = zp_id {
        if let Some(t) = g.tensors.get_mut(z) {
            t.shape = dims(&blocks_shape);
            t.dtype = Some(dtype);
            t.data = Some(zp_data);
        }
    } else {
        let name = format!("{}__quantlens_zero_point", g.tensors.get(data_id).map_or("", |t| t.name.as_str()));
        g.tensors.push(Tensor {
            name,
            kind: TensorKind::Initializer,
            dtype: Some(dtype),
            shape: dims(&blocks_shape),
            producer: None,
            consumers: vec![n],
            data: Some(zp_data),
        });
        let id = g.tensors.len() - 1;
        if let Some(node) = g.nodes.get_mut(n) {
            node.inputs.resize(node.inputs.len().max(4), None);
            if let Some(slot) = node.inputs.get_mut(3) {
                *slot = Some(id);
            }
        }
    }
    Ok(())
}
