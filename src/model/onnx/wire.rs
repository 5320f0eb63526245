//! Protobuf wire-format surgery for zero-copy import: the main graph's initializers lose
//! their `raw_data` fields before decoding, and the byte ranges of those fields in the
//! original buffer become the tensors' payloads (so a model is in memory once, not twice).
//!
//! Only `ModelProto.graph` (field 7) → `GraphProto.initializer` (field 5) →
//! `TensorProto.raw_data` (field 9) is rewritten; every other field is copied verbatim.
//! Anything unexpected (malformed varints, lengths past the end, groups, a repeated graph
//! field) returns `None`, and the caller decodes the original bytes as they are, which
//! gives the decoder's own error for broken files.

use std::ops::Range;

const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_RAW_DATA: u64 = 9;
const LEN: u8 = 2;

/// The pruned message and, per main-graph initializer in order, its `raw_data` range in
/// the original buffer (`None` when it had none).
pub struct Stripped {
    pub pruned: Vec<u8>,
    pub raw: Vec<Option<Range<usize>>>,
}

/// Strips the main graph's initializer payloads; `None` when the buffer is not a
/// well-formed message of the expected shape or holds no `raw_data` to strip.
#[must_use]
pub fn strip_raw_data(b: &[u8]) -> Option<Stripped> {
    let mut pruned = Vec::with_capacity(4096);
    let mut raw = Vec::new();
    let mut graphs = 0;
    for f in Fields::new(b, 0..b.len()) {
        let f = f?;
        if f.number == MODEL_GRAPH && f.wire == LEN {
            graphs += 1;
            if graphs > 1 {
                return None;
            }
            let graph = strip_graph(b, f.body, &mut raw)?;
            put_len_field(&mut pruned, MODEL_GRAPH, &graph);
        } else {
            pruned.extend_from_slice(b.get(f.whole)?);
        }
    }
    raw.iter().any(Option::is_some).then_some(Stripped { pruned, raw })
}

fn strip_graph(b: &[u8], body: Range<usize>, raw: &mut Vec<Option<Range<usize>>>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len().min(1 << 16));
    for f in Fields::new(b, body) {
        let f = f?;
        if f.number == GRAPH_INITIALIZER && f.wire == LEN {
            let (tensor, payload) = strip_tensor(b, f.body)?;
            raw.push(payload);
            put_len_field(&mut out, GRAPH_INITIALIZER, &tensor);
        } else {
            out.extend_from_slice(b.get(f.whole)?);
        }
    }
    Some(out)
}

/// The tensor without `raw_data`, and the range of its last `raw_data` (protobuf: the last
/// occurrence of a scalar field wins).
fn strip_tensor(b: &[u8], body: Range<usize>) -> Option<(Vec<u8>, Option<Range<usize>>)> {
    let mut out = Vec::new();
    let mut payload = None;
    for f in Fields::new(b, body) {
        let f = f?;
        if f.number == TENSOR_RAW_DATA && f.wire == LEN {
            payload = Some(f.body);
        } else {
            out.extend_from_slice(b.get(f.whole)?);
        }
    }
    Some((out, payload))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

fn put_len_field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
    put_varint(out, (number << 3) | u64::from(LEN));
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// One field of a message: its number, wire type, whole extent (tag included) and, for
/// length-delimited fields, the payload's extent.
struct Field {
    number: u64,
    wire: u8,
    whole: Range<usize>,
    body: Range<usize>,
}

/// The fields of the message at `range` of a buffer; yields `None` once on malformed input.
struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(b: &'a [u8], range: Range<usize>) -> Self {
        Self { b, pos: range.start, end: range.end.min(b.len()), failed: false }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).filter(|_| self.pos < self.end)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn field(&mut self) -> Option<Field> {
        let start = self.pos;
        let tag = self.varint()?;
        let (number, wire) = (tag >> 3, u8::try_from(tag & 7).ok()?);
        let mut body = self.pos..self.pos;
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos = self.pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let body_end = self.pos.checked_add(len)?;
                body = self.pos..body_end;
                self.pos = body_end;
            }
            5 => self.pos = self.pos.checked_add(4)?,
            _ => return None,
        }
        (self.pos <= self.end && number > 0).then_some(Field { number, wire, whole: start..self.pos, body })
    }
}

impl Iterator for Fields<'_> {
    type Item = Option<Field>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let f = self.field();
        self.failed = f.is_none();
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use tract_onnx::pb;

    fn tensor(name: &str, raw: &[u8]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: vec![i64::try_from(raw.len()).unwrap()],
            data_type: 2,
            raw_data: raw.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn stripped_model_decodes_to_the_same_model_without_payloads() {
        let graph = pb::GraphProto {
            name: "g".into(),
            initializer: vec![tensor("a", &[1, 2, 3]), tensor("empty", &[]), tensor("b", &[200; 300])],
            ..Default::default()
        };
        let model =
            pb::ModelProto { ir_version: 8, producer_name: "t".into(), graph: Some(graph), ..Default::default() };
        let bytes = model.encode_to_vec();
        let s = strip_raw_data(&bytes).unwrap();
        let decoded = pb::ModelProto::decode(s.pruned.as_slice()).unwrap();
        let mut expected = model.clone();
        for t in &mut expected.graph.as_mut().unwrap().initializer {
            t.raw_data.clear();
        }
        assert_eq!(decoded, expected);
        assert!(s.pruned.len() < bytes.len() - 300);
        // an empty bytes field is not encoded at all, so `empty` has no range
        let payloads: Vec<Option<&[u8]>> = s.raw.iter().map(|r| r.clone().map(|r| &bytes[r])).collect();
        assert_eq!(payloads, vec![Some(&[1u8, 2, 3][..]), None, Some(&[200u8; 300][..])]);
    }

    #[test]
    fn malformed_or_plain_buffers_are_left_alone() {
        assert!(strip_raw_data(&[]).is_none());
        assert!(strip_raw_data(&[0x3a, 0x80]).is_none(), "truncated length");
        assert!(strip_raw_data(&[0x3a, 0x05, 0x01]).is_none(), "length past the end");
        assert!(strip_raw_data(&[0x0b, 0x00]).is_none(), "group wire type");
        let plain = pb::ModelProto { graph: Some(pb::GraphProto::default()), ..Default::default() }.encode_to_vec();
        assert!(strip_raw_data(&plain).is_none(), "nothing to strip");
    }
}
