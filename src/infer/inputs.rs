//! Model inputs: seeded random tensors shaped by the model's input facts, or the rows of a
//! `.npy` array (samples along axis 0). Dynamic dimensions take `--dim NAME=N`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::InferError;
use super::npy::{NpyArray, NpyData, read_npy};
use crate::model::{DType, Dim, Graph};

/// Where the samples come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// Standard-normal floats (integer inputs: zeros), from a seeded generator.
    Random { seed: u64 },
    /// A `.npy` array whose rows are the samples (a single-input model).
    Npy(PathBuf),
}

impl std::str::FromStr for InputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "random" => Ok(Self::Random { seed: 0 }),
            Some(("random", seed)) => {
                seed.parse().map(|seed| Self::Random { seed }).map_err(|_| format!("`{seed}` is not a seed"))
            }
            _ if s.to_ascii_lowercase().ends_with(".npy") => Ok(Self::Npy(PathBuf::from(s))),
            _ => Err(format!("inputs are `random`, `random:SEED` or a .npy file, not `{s}`")),
        }
    }
}

/// One input tensor of one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// The inputs of one run, in the model's input order.
pub type Sample = Vec<InputTensor>;

/// A model input as the graph declares it, its dynamic dimensions resolved by `dims`.
fn input_shapes(g: &Graph, dims: &HashMap<String, usize>) -> Result<Vec<(String, DType, Vec<usize>)>, InferError> {
    g.inputs
        .iter()
        .filter_map(|&t| g.tensor(t))
        .filter(|t| t.data.is_none())
        .map(|t| {
            let shape = t.shape.as_ref().ok_or_else(|| {
                InferError::Input(format!("input `{}` declares no shape; give one with --dim", t.name))
            })?;
            let shape = shape
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => {
                        usize::try_from(*n).map_err(|_| InferError::Input(format!("input `{}` is too large", t.name)))
                    }
                    Dim::Symbolic(s) => dims.get(s).copied().ok_or_else(|| {
                        let s = if s.is_empty() { "?" } else { s };
                        InferError::Input(format!(
                            "input `{}` has the dynamic dimension `{s}`: give it with --dim {s}=N",
                            t.name
                        ))
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((t.name.clone(), t.dtype.unwrap_or(DType::Float32), shape))
        })
        .collect()
}

/// `n` samples for the model `g` from `spec`.
///
/// # Errors
/// When a dimension is dynamic and not given, the `.npy` cannot be read or does not fit
/// the model's input, or an input type is not float or integer.
#[allow(clippy::implicit_hasher)]
pub fn samples(
    g: &Graph,
    spec: &InputSpec,
    n: usize,
    dims: &HashMap<String, usize>,
) -> Result<Vec<Sample>, InferError> {
    let inputs = input_shapes(g, dims)?;
    match spec {
        InputSpec::Random { seed } => {
            let mut rng = Rng::new(*seed);
            Ok((0..n)
                .map(|_| {
                    inputs
                        .iter()
                        .map(|(name, dtype, shape)| {
                            let len = shape.iter().product();
                            let data = if dtype.is_float() {
                                NpyData::F32((0..len).map(|_| rng.normal()).collect())
                            } else {
                                NpyData::I64(vec![0; len])
                            };
                            InputTensor { name: name.clone(), shape: shape.clone(), data }
                        })
                        .collect()
                })
                .collect())
        }
        InputSpec::Npy(path) => {
            let (name, shape) = single_input(&inputs)?;
            rows_as_samples(name, shape, &read_npy(path)?, n, path)
        }
    }
}

/// The one input of a single-input model.
fn single_input(inputs: &[(String, DType, Vec<usize>)]) -> Result<(&str, &[usize]), InferError> {
    match inputs {
        [(name, _, shape)] => Ok((name, shape)),
        _ => Err(InferError::Input(format!(
            "an array file holds one input; the model has {}: {}",
            inputs.len(),
            inputs.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The first `n` rows of `a` as samples of input `name` shaped `shape`.
fn rows_as_samples(
    name: &str,
    shape: &[usize],
    a: &NpyArray,
    n: usize,
    path: &std::path::Path,
) -> Result<Vec<Sample>, InferError> {
    let per_sample: usize = shape.iter().product();
    let row: usize = a.shape.iter().skip(1).product();
    if a.shape.is_empty() || row != per_sample {
        return Err(InferError::Input(format!(
            "{} has shape {:?}; its rows must each hold input `{name}` {shape:?} ({per_sample} values)",
            path.display(),
            a.shape
        )));
    }
    let rows = a.shape.first().copied().unwrap_or(0).min(n);
    Ok((0..rows)
        .map(|i| {
            let data = match &a.data {
                NpyData::F32(v) => NpyData::F32(v.get(i * row..(i + 1) * row).unwrap_or_default().to_vec()),
                NpyData::I64(v) => NpyData::I64(v.get(i * row..(i + 1) * row).unwrap_or_default().to_vec()),
            };
            vec![InputTensor { name: name.to_string(), shape: shape.to_vec(), data }]
        })
        .collect())
}

/// The samples and labels of a `.npz`: `x` (or the array named after the model's input),
/// rows along axis 0, and integer labels `y`.
///
/// # Errors
/// When the archive lacks `x` or `y`, `y` is not integer or not one label per row, or the
/// rows do not fit the model's input.
#[allow(clippy::implicit_hasher)]
pub fn labelled_samples(
    g: &Graph,
    path: &std::path::Path,
    dims: &HashMap<String, usize>,
) -> Result<(Vec<Sample>, Vec<i64>), InferError> {
    let inputs = input_shapes(g, dims)?;
    let (name, shape) = single_input(&inputs)?;
    let arrays = super::npy::read_npz(path)?;
    let missing =
        |what: &str| InferError::Input(format!("{} holds no array `{what}`: {}", path.display(), list(&arrays)));
    let x = arrays.get(name).or_else(|| arrays.get("x")).ok_or_else(|| missing("x"))?;
    let y = match &arrays.get("y").ok_or_else(|| missing("y"))?.data {
        NpyData::I64(y) => y.clone(),
        NpyData::F32(_) => return Err(InferError::Input(format!("labels `y` must be integers: {}", path.display()))),
    };
    let samples = rows_as_samples(name, shape, x, usize::MAX, path)?;
    if y.len() != samples.len() {
        return Err(InferError::Input(format!(
            "{} rows of `x` but {} labels in `y`: {}",
            samples.len(),
            y.len(),
            path.display()
        )));
    }
    Ok((samples, y))
}

fn list(arrays: &std::collections::BTreeMap<String, NpyArray>) -> String {
    format!("it has {}", arrays.keys().cloned().collect::<Vec<_>>().join(", "))
}

/// A small seeded generator (xorshift64*, Box–Muller normals): the same samples for every
/// variant and every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    #[allow(clippy::cast_precision_loss)]
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    #[allow(clippy::cast_possible_truncation)]
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("random".parse::<InputSpec>().unwrap(), InputSpec::Random { seed: 0 });
        assert_eq!("random:7".parse::<InputSpec>().unwrap(), InputSpec::Random { seed: 7 });
        assert_eq!("x.NPY".parse::<InputSpec>().unwrap(), InputSpec::Npy("x.NPY".into()));
        assert!("images/".parse::<InputSpec>().is_err());
    }

    #[test]
    fn dynamic_dimensions_need_a_size() {
        let mut g = Graph::default();
        g.tensors.push(crate::model::Tensor {
            name: "input_ids".into(),
            kind: crate::model::TensorKind::GraphInput,
            dtype: Some(DType::Int64),
            shape: Some(vec![Dim::Known(1), Dim::Symbolic("sequence".into())]),
            producer: None,
            consumers: Vec::new(),
            data: None,
        });
        g.inputs.push(0);
        let err = samples(&g, &InputSpec::Random { seed: 1 }, 1, &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("`input_ids`") && err.contains("--dim sequence=N"), "{err}");
        let dims = HashMap::from([("sequence".to_string(), 7)]);
        let s = samples(&g, &InputSpec::Random { seed: 1 }, 2, &dims).unwrap();
        assert_eq!((s.len(), s[0][0].shape.as_slice()), (2, [1, 7].as_slice()));
        assert_eq!(s[0][0].data, NpyData::I64(vec![0; 7]), "integer inputs are zeros");
    }

    #[test]
    fn random_normals_are_seeded_and_standard() {
        let mut a = Rng::new(3);
        let xs: Vec<f32> = (0..20_000).map(|_| a.normal()).collect();
        let mut b = Rng::new(3);
        assert!(xs.iter().all(|&x| x == b.normal()), "same seed, same samples");
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / 20_000.0;
        let var = xs.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }
}
