//! Model inputs, read one sample at a time (memory bounded by one sample, whatever the
//! data set's size): seeded random tensors shaped by the model's input facts; the rows of
//! a `.npy` (samples along axis 0) or of a `.npz` whose arrays are named after the model's
//! inputs (`x` for a single-input model; labels `y`); or image files, one file or a folder,
//! with one sub-folder per class (labels) as torchvision's `ImageFolder` reads it.
//! Dynamic dimensions take `--dim NAME=N`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::InferError;
use super::npy::{NpyData, RowReader, npz_names};
use crate::model::{DType, Dim, Graph};

/// How images become a model input: resized (optionally the shorter side to `size`, then
/// centre-cropped), scaled to `[0, 1]`, then `(v − mean[c]) / std[c]` per channel (in RGB
/// order, or BGR when `bgr`). The defaults leave `[0, 1]` values.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Resize the shorter side to this, then crop the model's size from the centre
    /// (torchvision's `Resize(size)` + `CenterCrop`); without it, resize to the model's
    /// size directly.
    pub size: Option<u32>,
    pub bgr: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self { mean: [0.0; 3], std: [1.0; 3], size: None, bgr: false }
    }
}

/// Where the samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// Standard-normal floats (integer inputs: zeros), from a seeded generator.
    Random { seed: u64 },
    /// A `.npy` array whose rows are the samples (a single-input model).
    Npy(PathBuf),
    /// A `.npz` with one array per model input (or `x`), rows along axis 0; labels `y`.
    Npz(PathBuf),
    /// An image file, a folder of images, or a folder of class sub-folders.
    Images(PathBuf, ImageOptions),
}

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl std::str::FromStr for InputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ext = Path::new(s).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match s.split_once(':') {
            None if s == "random" => Ok(Self::Random { seed: 0 }),
            Some(("random", seed)) => {
                seed.parse().map(|seed| Self::Random { seed }).map_err(|_| format!("`{seed}` is not a seed"))
            }
            _ if ext.as_deref() == Some("npy") => Ok(Self::Npy(PathBuf::from(s))),
            _ if ext.as_deref() == Some("npz") => Ok(Self::Npz(PathBuf::from(s))),
            _ if is_image(Path::new(s)) || Path::new(s).is_dir() => {
                Ok(Self::Images(PathBuf::from(s), ImageOptions::default()))
            }
            _ => Err(format!(
                "inputs are `random`, `random:SEED`, a .npy or .npz file, an image (png, jpeg) or a folder of \
                 images, not `{s}`"
            )),
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

/// A model input as the graph declares it, its dynamic dimensions resolved.
#[derive(Clone, Debug)]
struct ModelInput {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
}

impl ModelInput {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The model's inputs, their dynamic dimensions resolved by `dims`.
fn input_shapes(g: &Graph, dims: &HashMap<String, usize>) -> Result<Vec<ModelInput>, InferError> {
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
            // one sample's values must fit memory: a huge declared shape is refused, not allocated
            let values = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if values.is_none_or(|n| n > MAX_SAMPLE_VALUES) {
                return Err(InferError::Input(format!(
                    "input `{}` {shape:?} holds more than {MAX_SAMPLE_VALUES} values per sample",
                    t.name
                )));
            }
            Ok(ModelInput { name: t.name.clone(), dtype: t.dtype.unwrap_or(DType::Float32), shape })
        })
        .collect()
}

/// The most values one sample of one input may hold (1 GiB of f32).
const MAX_SAMPLE_VALUES: usize = 1 << 28;

/// Where a stream's samples come from.
enum Source {
    Random(Rng),
    /// One reader per model input.
    Arrays(Vec<RowReader>),
    Images {
        files: VecDeque<PathBuf>,
        options: ImageOptions,
        layout: ImageLayout,
    },
}

/// Samples for a model, read one at a time.
pub struct SampleStream {
    inputs: Vec<ModelInput>,
    source: Source,
    /// Samples still to give.
    left: usize,
    /// Only these rows (ascending), when selected.
    keep: Option<VecDeque<usize>>,
    row: usize,
}

impl SampleStream {
    /// How many samples the stream will give at most.
    #[must_use]
    pub fn len(&self) -> usize {
        let available = match &self.source {
            Source::Random(_) => usize::MAX,
            Source::Arrays(r) => r.first().map_or(0, RowReader::rows_left),
            Source::Images { files, .. } => files.len(),
        };
        self.keep.as_ref().map_or(available, VecDeque::len).min(available).min(self.left)
    }

    /// True when the stream gives nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At most `n` samples.
    #[must_use]
    pub fn take_at_most(mut self, n: usize) -> Self {
        self.left = self.left.min(n);
        self
    }

    /// Only the rows `rows` (any order; each once), in ascending order.
    #[must_use]
    pub fn select(mut self, mut rows: Vec<usize>) -> Self {
        rows.sort_unstable();
        rows.dedup();
        self.keep = Some(rows.into());
        self
    }

    /// Passes over one sample; `None` at the end.
    fn skip(&mut self) -> Option<Result<(), InferError>> {
        match &mut self.source {
            Source::Random(_) => self.produce().map(|r| r.map(|_| ())),
            Source::Arrays(readers) => readers
                .iter_mut()
                .map(RowReader::skip_row)
                .collect::<Option<Result<Vec<()>, _>>>()
                .map(|r| r.map(|_| ())),
            Source::Images { files, .. } => files.pop_front().map(|_| Ok(())),
        }
    }

    fn produce(&mut self) -> Option<Result<Sample, InferError>> {
        match &mut self.source {
            Source::Random(rng) => Some(Ok(self
                .inputs
                .iter()
                .map(|i| {
                    let data = if i.dtype.is_float() {
                        NpyData::F32((0..i.len()).map(|_| rng.normal()).collect())
                    } else {
                        NpyData::I64(vec![0; i.len()])
                    };
                    InputTensor { name: i.name.clone(), shape: i.shape.clone(), data }
                })
                .collect())),
            Source::Arrays(readers) => readers
                .iter_mut()
                .zip(&self.inputs)
                .map(|(r, i)| {
                    r.next_row()
                        .map(|d| d.map(|data| InputTensor { name: i.name.clone(), shape: i.shape.clone(), data }))
                })
                .collect::<Option<Result<Sample, _>>>(),
            Source::Images { files, options, layout } => {
                let path = files.pop_front()?;
                let input = self.inputs.first()?;
                Some(
                    load_image(&path, *layout, options)
                        .map(|data| vec![InputTensor { name: input.name.clone(), shape: input.shape.clone(), data }]),
                )
            }
        }
    }
}

impl Iterator for SampleStream {
    type Item = Result<Sample, InferError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.left == 0 {
                return None;
            }
            if let Some(keep) = &mut self.keep {
                match keep.front() {
                    None => return None,
                    Some(&k) if k > self.row => {
                        self.row += 1;
                        if let Err(e) = self.skip()? {
                            return Some(Err(e));
                        }
                        continue;
                    }
                    Some(_) => {
                        keep.pop_front();
                    }
                }
            }
            self.row += 1;
            self.left -= 1;
            return self.produce();
        }
    }
}

/// The samples of `spec` for the model `g`, read as they are asked for (at most `n`).
///
/// # Errors
/// When a dimension is dynamic and not given, the file cannot be opened or does not fit
/// the model's inputs.
#[allow(clippy::implicit_hasher)]
pub fn open_samples(
    g: &Graph,
    spec: &InputSpec,
    n: usize,
    dims: &HashMap<String, usize>,
) -> Result<SampleStream, InferError> {
    let inputs = input_shapes(g, dims)?;
    let source = match spec {
        InputSpec::Random { seed } => Source::Random(Rng::new(*seed)),
        InputSpec::Npy(path) => {
            let input = single_input(&inputs, "an array file")?;
            let reader = RowReader::open_npy(path)?;
            check_rows(&reader, input, path, "")?;
            Source::Arrays(vec![reader])
        }
        InputSpec::Npz(path) => Source::Arrays(npz_readers(&inputs, path)?),
        InputSpec::Images(path, options) => {
            let input = single_input(&inputs, "an image")?;
            let layout = ImageLayout::of(input)?;
            let files = image_files(path)?.into_iter().map(|(f, _)| f).collect();
            Source::Images { files, options: options.clone(), layout }
        }
    };
    Ok(SampleStream { inputs, source, left: n, keep: None, row: 0 })
}

/// `n` samples for the model `g` from `spec`, all in memory ([`open_samples`] reads them
/// one at a time).
///
/// # Errors
/// As [`open_samples`], and when a sample cannot be read.
#[allow(clippy::implicit_hasher)]
pub fn samples(
    g: &Graph,
    spec: &InputSpec,
    n: usize,
    dims: &HashMap<String, usize>,
) -> Result<Vec<Sample>, InferError> {
    open_samples(g, spec, n, dims)?.collect()
}

/// The samples of `spec` with their labels: `y` of a `.npz`, or the class sub-folder (in
/// sorted order, numbered from 0) of each image.
///
/// # Errors
/// As [`open_samples`]; when `spec` has no labels, they are not integers, or not one per
/// sample.
#[allow(clippy::implicit_hasher)]
pub fn labelled_samples(
    g: &Graph,
    spec: &InputSpec,
    dims: &HashMap<String, usize>,
) -> Result<(SampleStream, Vec<i64>), InferError> {
    if matches!(spec, InputSpec::Random { .. } | InputSpec::Npy(_)) {
        return Err(InferError::Input(
            "labelled data is a .npz with `x` and `y`, or a folder of class sub-folders of images".into(),
        ));
    }
    let stream = open_samples(g, spec, usize::MAX, dims)?;
    let labels = match spec {
        InputSpec::Npz(path) => {
            let names = npz_names(path)?;
            if !names.iter().any(|n| n == "y") {
                return Err(InferError::Input(format!(
                    "{} holds no array `y` (labels): it has {}",
                    path.display(),
                    names.join(", ")
                )));
            }
            match RowReader::open_npz(path, "y")?.read_all()?.data {
                NpyData::I64(y) => y,
                NpyData::F32(_) => {
                    return Err(InferError::Input(format!("labels `y` must be integers: {}", path.display())));
                }
            }
        }
        InputSpec::Images(path, _) => {
            let files = image_files(path)?;
            files.into_iter().map(|(_, class)| class).collect::<Option<Vec<i64>>>().ok_or_else(|| {
                InferError::Input(format!(
                    "{} has no class sub-folders: labelled images are DIR/CLASS/IMAGE",
                    path.display()
                ))
            })?
        }
        InputSpec::Random { .. } | InputSpec::Npy(_) => Vec::new(),
    };
    if labels.len() != stream.len() {
        return Err(InferError::Input(format!("{} samples but {} labels", stream.len(), labels.len())));
    }
    Ok((stream, labels))
}

/// The one input of a single-input model.
fn single_input<'a>(inputs: &'a [ModelInput], what: &str) -> Result<&'a ModelInput, InferError> {
    match inputs {
        [input] => Ok(input),
        _ => Err(InferError::Input(format!(
            "{what} holds one input; the model has {}: {} (give a .npz with one array per input)",
            inputs.len(),
            inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Checks that each row of `reader` holds one sample of `input`.
fn check_rows(reader: &RowReader, input: &ModelInput, path: &Path, member: &str) -> Result<(), InferError> {
    let row: usize = reader.shape.iter().skip(1).product();
    if reader.shape.is_empty() || row != input.len() {
        return Err(InferError::Input(format!(
            "{}{member} has shape {:?}; its rows must each hold input `{}` {:?} ({} values)",
            path.display(),
            reader.shape,
            input.name,
            input.shape,
            input.len()
        )));
    }
    Ok(())
}

/// A reader for each model input: the array named after it, or `x` for a single input.
fn npz_readers(inputs: &[ModelInput], path: &Path) -> Result<Vec<RowReader>, InferError> {
    let names = npz_names(path)?;
    let readers = inputs
        .iter()
        .map(|i| {
            let member = if names.contains(&i.name) {
                i.name.as_str()
            } else if inputs.len() == 1 && names.iter().any(|n| n == "x") {
                "x"
            } else {
                return Err(InferError::Input(format!(
                    "{} holds no array for input `{}`{}: it has {}",
                    path.display(),
                    i.name,
                    if inputs.len() == 1 { " (nor `x`)" } else { "" },
                    names.join(", ")
                )));
            };
            let reader = RowReader::open_npz(path, member)?;
            check_rows(&reader, i, path, &format!(":{member}"))?;
            Ok(reader)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<usize> = readers.iter().map(RowReader::rows_left).collect();
    if rows.windows(2).any(|w| w[0] != w[1]) {
        return Err(InferError::Input(format!(
            "{}: the inputs' arrays have different row counts {rows:?}",
            path.display()
        )));
    }
    Ok(readers)
}

/// The image files of `path` with their class: a file alone, the images of a folder
/// (sorted by name), or those of its class sub-folders (classes numbered in sorted order).
fn image_files(path: &Path) -> Result<Vec<(PathBuf, Option<i64>)>, InferError> {
    let read_dir = |dir: &Path| -> Result<Vec<PathBuf>, InferError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| InferError::Read { what: "an image folder", reason: e.to_string(), path: dir.to_path_buf() })?
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        entries.sort();
        Ok(entries)
    };
    if !path.is_dir() {
        return Ok(vec![(path.to_path_buf(), None)]);
    }
    let entries = read_dir(path)?;
    let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let files = if classes.is_empty() {
        entries.iter().filter(|p| is_image(p)).map(|p| (p.clone(), None)).collect::<Vec<_>>()
    } else {
        let mut files = Vec::new();
        for (class, dir) in (0i64..).zip(classes) {
            files.extend(read_dir(dir)?.into_iter().filter(|p| is_image(p)).map(|p| (p, Some(class))));
        }
        files
    };
    if files.is_empty() {
        return Err(InferError::Input(format!("{} holds no png or jpeg images", path.display())));
    }
    Ok(files)
}

/// Where an image's channels, rows and columns sit in the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ImageLayout {
    channels: usize,
    height: usize,
    width: usize,
    /// `(C, H, W)` order, else `(H, W, C)`.
    planar: bool,
}

impl ImageLayout {
    /// The layout of `(1, C, H, W)`, `(1, H, W, C)`, `(C, H, W)` or `(H, W, C)` with one or
    /// three channels.
    fn of(input: &ModelInput) -> Result<Self, InferError> {
        let dims = match input.shape.as_slice() {
            [1, rest @ ..] if rest.len() == 3 => rest,
            s if s.len() == 3 => s,
            _ => &[],
        };
        let channels = |c: usize| c == 1 || c == 3;
        match *dims {
            [c, h, w] if channels(c) => Ok(Self { channels: c, height: h, width: w, planar: true }),
            [h, w, c] if channels(c) => Ok(Self { channels: c, height: h, width: w, planar: false }),
            _ => Err(InferError::Input(format!(
                "input `{}` {:?} is not an image: (1, C, H, W) or (1, H, W, C) with 1 or 3 channels",
                input.name, input.shape
            ))),
        }
    }
}

/// One image as the model's input: resized and cropped as `options` say, in `layout`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
fn load_image(path: &Path, layout: ImageLayout, options: &ImageOptions) -> Result<NpyData, InferError> {
    use image::imageops::FilterType;
    let bad = |reason: String| InferError::Read { what: "an image", reason, path: path.to_path_buf() };
    let img = image::open(path).map_err(|e| bad(e.to_string()))?;
    let (w, h) = (
        u32::try_from(layout.width).map_err(|_| bad("too wide".into()))?,
        u32::try_from(layout.height).map_err(|_| bad("too tall".into()))?,
    );
    let img = match options.size {
        _ if img.width() == w && img.height() == h => img,
        None => img.resize_exact(w, h, FilterType::Triangle),
        Some(size) => {
            let shorter = img.width().min(img.height()).max(1);
            let scale = f64::from(size) / f64::from(shorter);
            let (rw, rh) =
                ((f64::from(img.width()) * scale).round() as u32, (f64::from(img.height()) * scale).round() as u32);
            if rw < w || rh < h {
                return Err(bad(format!("--size {size} gives {rw}×{rh}, smaller than the model's {w}×{h}")));
            }
            img.resize_exact(rw, rh, FilterType::Triangle).crop_imm((rw - w) / 2, (rh - h) / 2, w, h)
        }
    };
    let (pixels, c): (Vec<u8>, usize) =
        if layout.channels == 1 { (img.to_luma8().into_raw(), 1) } else { (img.to_rgb8().into_raw(), 3) };
    let plane = layout.height * layout.width;
    let mut out = vec![0f32; plane * c];
    for (p, px) in pixels.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            // BGR: the image's channel k goes to the model's channel 2 − k (mean and std in the model's order)
            let at = if options.bgr && c == 3 { 2 - k } else { k };
            let value = (f32::from(v) / 255.0 - options.mean[at.min(2)]) / options.std[at.min(2)];
            let slot = if layout.planar { at * plane + p } else { p * c + at };
            if let Some(o) = out.get_mut(slot) {
                *o = value;
            }
        }
    }
    Ok(NpyData::F32(out))
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
        assert_eq!("d.npz".parse::<InputSpec>().unwrap(), InputSpec::Npz("d.npz".into()));
        assert_eq!(
            "cat.JPG".parse::<InputSpec>().unwrap(),
            InputSpec::Images("cat.JPG".into(), ImageOptions::default())
        );
        assert!("no-such-folder/".parse::<InputSpec>().is_err());
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
        let huge = HashMap::from([("sequence".to_string(), usize::MAX / 2)]);
        let err = samples(&g, &InputSpec::Random { seed: 1 }, 1, &huge).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
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
