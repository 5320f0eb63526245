//! onnxruntime's `MatMulNBits` (domain `com.microsoft`): its packed `B` (`[N, n_blocks,
//! blob]`, `bits` per element, low nibble first) becomes a `[K, N]` view of the file's
//! bytes in the float `MatMul`'s orientation ([`TensorBytes::Transposed`], no copy), its
//! scales (`[N · n_blocks]`) and zero points (packed like `B`, or absent: the midpoint
//! `2^(bits − 1)`) the blocked parameters of that view (`[n_blocks, N]`, blocks along
//! axis 0), so that the layer is read like a blocked `DequantizeLinear`.

use std::sync::Arc;

use crate::model::dtype::DType;
use crate::model::graph::{Dim, Graph, Issue, Severity, Tensor, TensorKind};
use crate::model::tensor::{TensorBytes, TensorData};

/// Rewrites every `MatMulNBits` of `g` as described above; one that cannot be read keeps
/// its tensors and gets an issue.
pub(crate) fn unpack(g: &mut Graph) {
    let nodes: Vec<usize> = (0..g.nodes.len()).filter(|&n| g.nodes[n].op_type == "MatMulNBits").collect();
    for n in nodes {
        if let Err(reason) = unpack_one(g, n) {
            let subject = g.nodes.get(n).map(|node| node.label(n)).unwrap_or_default();
            g.issues.push(Issue { severity: Severity::Error, subject, message: format!("MatMulNBits: {reason}") });
        }
    }
}

fn owned(dtype: DType, shape: Vec<u64>, bytes: Vec<u8>) -> TensorData {
    TensorData { dtype, shape, bytes: TensorBytes::from_vec(bytes) }
}

/// Two 4-bit values per byte, low nibble first (or one byte each for 8 bits).
fn pack(values: &[u8], bits: u64) -> Vec<u8> {
    if bits == 8 {
        return values.to_vec();
    }
    values.chunks(2).map(|p| (p.first().copied().unwrap_or(0) & 0x0f) | (p.get(1).copied().unwrap_or(0) << 4)).collect()
}

#[allow(clippy::cast_possible_truncation)]
fn unpack_one(g: &mut Graph, n: usize) -> Result<(), String> {
    let node = g.nodes.get(n).ok_or("no node")?;
    let attr = |name: &str| node.attr_int(name).and_then(|v| u64::try_from(v).ok());
    let (k, nn, bits, block) = (attr("K"), attr("N"), attr("bits").unwrap_or(4), attr("block_size"));
    let (Some(k), Some(nn), Some(block)) = (k, nn, block) else { return Err("no K, N or block_size".into()) };
    if bits != 4 && bits != 8 {
        return Err(format!("{bits}-bit weights are not read yet (4 and 8 are)"));
    }
    if block == 0 || k == 0 || nn == 0 {
        return Err(format!("K {k}, N {nn}, block_size {block}: nothing to read"));
    }
    if node.input(4).is_some() {
        return Err("act-order (g_idx) is not read yet".into());
    }
    let (b_id, s_id) = (node.input(1).ok_or("no B")?, node.input(2).ok_or("no scales")?);
    let zp_id = node.input(3);
    let blocks = k.div_ceil(block);
    let blob = block * bits / 8;
    let b = g.tensors.get(b_id).and_then(|t| t.data.as_ref()).ok_or("B has no data")?;
    let TensorBytes::Memory { buf, range } = &b.bytes else { return Err("B is not in memory (external data)".into()) };
    if b.dtype != DType::Uint8 || b.len() != nn * blocks * blob {
        return Err(format!(
            "B {:?} of {} is not [N, n_blocks, blob] = [{nn}, {blocks}, {blob}] of uint8",
            b.shape,
            b.dtype.name()
        ));
    }
    let size = |v: u64| usize::try_from(v).map_err(|_| "too large".to_string());
    let dtype = if bits == 4 { DType::Uint4 } else { DType::Uint8 };
    let view = TensorData {
        dtype,
        shape: vec![k, nn],
        bytes: TensorBytes::Transposed {
            buf: Arc::clone(buf),
            range: range.clone(),
            rows: size(nn)?,
            stride: size(blocks * block)?,
            cols: size(k)?,
        },
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
    if let Some(z) = zp_id.and_then(|z| g.tensors.get(z)).and_then(|t| t.data.as_ref()) {
        if z.dtype.is_float() {
            return Err("float zero points are not read yet".into());
        }
        let bytes = z.to_f32_vec().map_err(|e| e.to_string())?;
        let per_row = if bits == 4 { bu.div_ceil(2) } else { bu };
        if bytes.len() != nu * per_row {
            return Err(format!("{} zero-point bytes for N {nn} × {blocks} blocks", bytes.len()));
        }
        for row in 0..nu {
            for j in 0..bu {
                let v = if bits == 4 {
                    let byte = bytes.get(row * per_row + j / 2).copied().unwrap_or(0.0) as u8;
                    if j % 2 == 0 { byte & 0x0f } else { byte >> 4 }
                } else {
                    bytes.get(row * per_row + j).copied().unwrap_or(0.0) as u8
                };
                if let Some(slot) = t_zps.get_mut(j * nu + row) {
                    *slot = v;
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
    let zp_data = owned(dtype, pshape.clone(), pack(&t_zps, bits));
    if let Some(z) = zp_id {
        if let Some(t) = g.tensors.get_mut(z) {
            t.shape = dims(&pshape);
            t.dtype = Some(dtype);
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
