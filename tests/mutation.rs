//! Seeded mutation test: thousands of byte-level flips, truncations and insertions of each
//! fixture; import, layer finding and statistics must never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use std::path::Path;

use common::data;
use quantlens::model::onnx::model_from_bytes;
use quantlens::model::variants::{Variant, VariantKind, VariantSpec};
use quantlens::report::{ReportOptions, build_report};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, orig: &[u8]) -> Vec<u8> {
    let mut b = orig.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => {
            let i = rng.below(b.len());
            let n = 1 + rng.below(16);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(i..i, junk);
        }
        _ => {
            // overwrite a byte with a varint-ish large value (length/dim fields)
            let i = rng.below(b.len());
            b[i] = 0xff;
            if i + 1 < b.len() {
                b[i + 1] = 0x7f;
            }
        }
    }
    b
}

#[test]
fn mutated_fixtures_never_panic() {
    let files = [
        "resnet8/resnet8_float.onnx",
        "resnet8/resnet8_int8.onnx",
        "transformer/transformer_uint8.onnx",
        "qoperator/resnet8_qoperator_int8.onnx",
        "qoperator/transformer_dynamic_uint8.onnx",
    ];
    let per_file = 600;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut loaded, mut refused) = (0, 0);
    for f in files {
        let orig = std::fs::read(data(f)).unwrap();
        for _ in 0..per_file {
            let bytes = mutate(&mut rng, &orig);
            match model_from_bytes(&bytes, Path::new("mutant.onnx")) {
                Ok(model) => {
                    loaded += 1;
                    let spec = VariantSpec { name: "m".into(), kind: VariantKind::Float, path: "mutant.onnx".into() };
                    let v = Variant::new(spec, model);
                    let report = build_report(std::slice::from_ref(&v), ReportOptions { histogram_bins: Some(8) });
                    assert!(report.layers.len() <= v.layers.len());
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.to_string().contains("mutant.onnx"));
                }
            }
        }
    }
    assert_eq!(loaded + refused, files.len() * per_file);
    // both outcomes occur, so the test exercises deep paths, not just the decoder's refusal
    assert!(loaded > 100 && refused > 100, "loaded {loaded}, refused {refused}");
}
