//! Model bundles: one directory holding everything needed to translate.
//!
//! ```text
//! bundle/
//!   config.json        format version, languages, vocabulary file names, architecture
//!   model.safetensors  weights (float32, or float16 to ship small)
//!   metadata.json      step, epoch, validation scores, training-data fingerprint
//!   <vocabulary files> as named in config.json (one file when the vocabulary is joint)
//! ```
//!
//! Loading checks the format version, the architecture, every weight's name and
//! shape, and fails with an error naming the file on anything missing, truncated
//! or mismatched; it never panics.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::atomic::write_dir_atomically;
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::seq2seq::Seq2Seq;

/// The bundle format of plain bundles (float weights only); this code writes it for them,
/// so that older builds read them too.
pub const FORMAT_VERSION: u32 = 1;
/// The format of bundles with compressed weights (a codebook and packed indices per
/// compressed tensor, see [`WeightStorage`]; rank-K factors). This code reads every version.
pub const FORMAT_VERSION_COMPRESSED: u32 = 2;
/// The format of bundles with int8 weights (`model.int8` in `config.json`; per matrix `W`,
/// `W_int8_q` int8, `W_int8_scale` float32 per-row steps, `W_int8_rest` the float rows). A
/// version of its own, so that builds without int8 kernels refuse these bundles by version.
pub const FORMAT_VERSION_INT8: u32 = 3;
/// Suffix of an int8 matrix's per-row steps, stored in float32 whatever the other weights'
/// type (they multiply every output of their row; float16 would add its own rounding).
const INT8_SCALE: &str = "_int8_scale";
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const METADATA_FILE: &str = "metadata.json";

/// `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    pub format_version: u32,
    /// Source language code, e.g. `de`.
    pub src_lang: String,
    /// Target language code, e.g. `en`.
    pub tgt_lang: String,
    /// Source vocabulary file name inside the bundle.
    pub src_vocab: String,
    /// Target vocabulary file name inside the bundle (the same name when joint).
    pub tgt_vocab: String,
    pub model: ModelConfig,
}

/// `metadata.json`: where the weights come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleMetadata {
    pub format_version: u32,
    pub step: u64,
    pub epoch: u64,
    /// Validation scores by name (`loss`, `ppl`, `bleu`, ...).
    #[serde(default)]
    pub validation: BTreeMap<String, f64>,
    /// A hash of the training data, to tell which data a model saw.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
    /// What the model was trained on, in a few words for its users: the data and its
    /// domain (`[data] description` in the training config, `nmt-bundle describe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Anything else a producer wants to record.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// How weights are stored on disk. Loading always gives float32 weights. (On the command
/// line: `f16`, `f32`; see [`crate::cli`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightsDtype {
    #[default]
    Float32,
    /// Half the size; for shipping.
    Float16,
}

/// The number type a loaded model computes in (whatever its weights are stored in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ComputeDtype {
    /// 32-bit floats, as trained.
    #[default]
    Float32,
    /// bfloat16 weights and activations; log-probabilities and scores stay float32. Faster
    /// where the hardware multiplies bf16 (x86 CPUs with AMX or AVX512-BF16, recent GPUs);
    /// a few outputs change (docs/BENCHMARKS.md).
    Bfloat16,
}

impl ComputeDtype {
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Bfloat16 => "bfloat16",
        }
    }
}

impl std::str::FromStr for ComputeDtype {
    type Err = String;

    /// `float32` (or `f32`), `bfloat16` (or `bf16`), in any case, spaces around ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float32" | "f32" => Ok(Self::Float32),
            "bfloat16" | "bf16" => Ok(Self::Bfloat16),
            _ => Err(format!(
                "invalid compute dtype {s:?}: expected float32 or bfloat16"
            )),
        }
    }
}

/// A loaded bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: BundleConfig,
    pub metadata: BundleMetadata,
    /// Owns the weights of `model`.
    pub vars: nn::VarStore,
    pub model: Seq2Seq,
    pub src_vocab: Box<dyn vocab::Vocab>,
    pub tgt_vocab: Box<dyn vocab::Vocab>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::bundle(path, format!("invalid JSON: {e}")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ModelError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| ModelError::bundle(path, e.to_string()))?;
    fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// Reads and checks `config.json` alone (cheap: no weights).
pub fn read_config(dir: &Path) -> Result<BundleConfig, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::bundle(dir, "no such bundle directory"));
    }
    let path = dir.join(CONFIG_FILE);
    // Check the version before the fields, so an old or future bundle says so
    // instead of failing on a field it does not know.
    let raw: serde_json::Value = read_json(&path)?;
    match raw.get("format_version").and_then(|v| v.as_u64()) {
        Some(v)
            if [
                FORMAT_VERSION,
                FORMAT_VERSION_COMPRESSED,
                FORMAT_VERSION_INT8,
            ]
            .map(u64::from)
            .contains(&v) => {}
        Some(v) => {
            return Err(ModelError::bundle(
                &path,
                format!(
                    "bundle format version {v}, this build reads versions {FORMAT_VERSION}, \
                     {FORMAT_VERSION_COMPRESSED} and {FORMAT_VERSION_INT8}"
                ),
            ))
        }
        None => return Err(ModelError::bundle(&path, "missing field format_version")),
    }
    let config: BundleConfig = serde_json::from_value(raw)
        .map_err(|e| ModelError::bundle(&path, format!("invalid config: {e}")))?;
    config
        .model
        .validate()
        .map_err(|e| ModelError::bundle(&path, e.to_string()))?;
    Ok(config)
}

/// Reads `metadata.json` alone (no weights); errors name the file.
pub fn read_metadata(dir: &Path) -> Result<BundleMetadata, ModelError> {
    read_json(&dir.join(METADATA_FILE))
}

impl Bundle {
    /// Loads a bundle onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let config = read_config(dir)?;
        if config.model.int8.is_some() {
            // fbgemm's int8 kernels are CPU-only; say so now rather than at the first step.
            let refuse = |why: String| ModelError::bundle(dir.join(CONFIG_FILE), why);
            if device != Device::Cpu {
                return Err(refuse(format!(
                    "this bundle has int8 weights, which run on the CPU only (fbgemm), not \
                     on {device:?}: load it with --device cpu, or use the float bundle"
                )));
            }
            quantized::check_supported().map_err(|e| refuse(e.to_string()))?;
        }
        let metadata = read_metadata(dir)?;
        let src_vocab = load_vocab(dir, &config.src_vocab, config.model.src_vocab_size)?;
        let tgt_vocab = load_vocab(dir, &config.tgt_vocab, config.model.tgt_vocab_size)?;
        let mut vars = nn::VarStore::new(device);
        let model = Seq2Seq::new(&vars.root(), &config.model)?;
        load_weights(&mut vars, &dir.join(WEIGHTS_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            metadata,
            vars,
            model,
            src_vocab,
            tgt_vocab,
        })
    }
}

fn load_vocab(dir: &Path, name: &str, expected: i64) -> Result<Box<dyn vocab::Vocab>, ModelError> {
    if name.contains('/') || name.contains("..") {
        return Err(ModelError::bundle(
            dir.join(CONFIG_FILE),
            format!("vocabulary file {name:?} must be a plain file name"),
        ));
    }
    let path = dir.join(name);
    let v = vocab::load(&path)?;
    if v.len() as i64 != expected {
        return Err(ModelError::bundle(
            &path,
            format!(
                "vocabulary has {} entries but the model was built for {expected}",
                v.len()
            ),
        ));
    }
    Ok(v)
}

/// Copies weights from a safetensors file into `vars`, checking names and shapes.
pub fn load_weights(vars: &mut nn::VarStore, path: &Path) -> Result<(), ModelError> {
    if !path.is_file() {
        return Err(ModelError::bundle(path, "missing weights file"));
    }
    let stored: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| {
            ModelError::bundle(
                path,
                format!("unreadable or truncated safetensors file: {e}"),
            )
        })?
        .into_iter()
        .collect();
    let variables = vars.variables();
    let stored = decode_codebooks(stored, path)?;
    let mut missing: Vec<&String> = variables
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .collect();
    missing.sort();
    if let Some(first) = missing.first() {
        return Err(ModelError::bundle(
            path,
            format!("{} weight(s) missing, first: {first}", missing.len()),
        ));
    }
    if let Some(extra) = stored.keys().find(|k| !variables.contains_key(*k)) {
        return Err(ModelError::bundle(
            path,
            format!("unexpected weight {extra}: the file does not match config.json"),
        ));
    }
    tch::no_grad(|| {
        for (name, var) in &variables {
            let value = &stored[name];
            if value.size() != var.size() {
                return Err(ModelError::bundle(
                    path,
                    format!(
                        "weight {name} has shape {:?}, config.json implies {:?}",
                        value.size(),
                        var.size()
                    ),
                ));
            }
            let float =
                |k: Kind| matches!(k, Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double);
            // Int8 variables (int8 bundles' codes) take int8 values only, the others floats.
            if var.kind() == Kind::Int8 && value.kind() != Kind::Int8 {
                return Err(ModelError::bundle(
                    path,
                    format!("weight {name} has type {:?}, expected int8", value.kind()),
                ));
            }
            if var.kind() != Kind::Int8 && !float(value.kind()) {
                return Err(ModelError::bundle(
                    path,
                    format!("weight {name} has non-float type {:?}", value.kind()),
                ));
            }
            let mut var = var.shallow_clone();
            var.f_copy_(value)?;
        }
        Ok(())
    })
}

/// Suffixes of the tensors that hold one compressed weight `W` in `model.safetensors`
/// (format version 2): `W::levels` (float32 `[K]`, sorted), `W::codes` (uint8, the index
/// into the levels of each element of the compressed rows, row-major, packed two per byte
/// when K ≤ 16), `W::layout` (int64 `[first row, end row, bits, W's shape...]`) and `W::rest` (the
/// other rows as plain floats; absent when every row is compressed).
const LEVELS: &str = "::levels";
const CODES: &str = "::codes";
const LAYOUT: &str = "::layout";
const REST: &str = "::rest";

/// Which weights a bundle stores as a codebook and packed indices, by name: the rows that
/// hold only a few distinct values (after [`crate::compress::round_clip`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightStorage {
    pub codebooks: BTreeMap<String, std::ops::Range<i64>>,
}

/// The most distinct values a codebook may hold (indices are stored in one byte at most).
pub const MAX_LEVELS: i64 = 256;

/// Splits `t`'s rows `rows` into (levels, packed codes, bits), and the other rows.
fn encode_codebook(
    name: &str,
    t: &Tensor,
    rows: &std::ops::Range<i64>,
) -> Result<(Tensor, Tensor, i64, Option<Tensor>), ModelError> {
    let n = t.size()[0];
    if rows.start < 0 || rows.end > n || rows.start >= rows.end {
        return Err(ModelError::Input(format!(
            "weight {name}: rows {rows:?} outside its {n} rows"
        )));
    }
    let (chosen, rest) = crate::cell::split_rows(t, rows, 0);
    let (levels, inverse) = chosen
        .to_kind(Kind::Float)
        .flatten(0, -1)
        .internal_unique(true, true);
    let k = levels.size()[0];
    if k > MAX_LEVELS {
        return Err(ModelError::Input(format!(
            "weight {name} has {k} distinct values in the rows to store as codes (at most \
             {MAX_LEVELS}); round more coarsely or clip (--clip) to bound the values"
        )));
    }
    let bits = if k <= 16 { 4 } else { 8 };
    let codes = inverse.to_kind(Kind::Uint8);
    let codes = if bits == 4 {
        // Two codes per byte, the first in the low nibble; an odd count gets a zero pad.
        let padded = if codes.size()[0] % 2 == 1 {
            Tensor::cat(&[codes, Tensor::zeros([1], (Kind::Uint8, t.device()))], 0)
        } else {
            codes
        };
        let pairs = padded.view([-1, 2]);
        (pairs.select(1, 0) + pairs.select(1, 1) * 16).to_kind(Kind::Uint8)
    } else {
        codes
    };
    Ok((levels, codes, bits, rest))
}

/// Replaces each compressed weight's stored tensors by the float weight they describe.
fn decode_codebooks(
    mut stored: BTreeMap<String, Tensor>,
    path: &Path,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let names: Vec<String> = stored
        .keys()
        .filter_map(|k| k.strip_suffix(LAYOUT).map(str::to_string))
        .collect();
    for name in names {
        let bad =
            |what: String| ModelError::bundle(path, format!("compressed weight {name}: {what}"));
        let mut take = |suffix: &str| stored.remove(&format!("{name}{suffix}"));
        let layout = take(LAYOUT).ok_or_else(|| bad("no layout".into()))?;
        let levels = take(LEVELS).ok_or_else(|| bad(format!("no {LEVELS} tensor")))?;
        let codes = take(CODES).ok_or_else(|| bad(format!("no {CODES} tensor")))?;
        let rest = take(REST);
        let layout: Vec<i64> = Vec::try_from(&layout.to_kind(Kind::Int64))
            .map_err(|e| bad(format!("unreadable layout: {e}")))?;
        let (start, end, bits, shape) = match layout[..] {
            [start, end, bits, ref shape @ ..] if !shape.is_empty() => {
                (start, end, bits, shape.to_vec())
            }
            _ => {
                return Err(bad(format!(
                    "layout {layout:?}: expected [start, end, bits, shape...]"
                )))
            }
        };
        let k = levels.size().first().copied().unwrap_or(0);
        if !(0 <= start && start < end && end <= shape[0])
            || !(bits == 4 || bits == 8)
            || shape.iter().any(|&d| d <= 0)
            || !(1..=MAX_LEVELS).contains(&k)
        {
            return Err(bad(format!("invalid layout {layout:?} with {k} levels")));
        }
        if codes.kind() != Kind::Uint8 || codes.dim() != 1 {
            return Err(bad(format!(
                "codes of type {:?} and {} dimensions, expected uint8 [N]",
                codes.kind(),
                codes.dim()
            )));
        }
        let mut chosen_shape = shape.clone();
        chosen_shape[0] = end - start;
        let elements: i64 = chosen_shape.iter().product();
        let unpacked = if bits == 4 {
            let low = codes.bitwise_and(15);
            let high = codes.bitwise_right_shift_tensor_scalar(4);
            Tensor::stack(&[low, high], 1).flatten(0, -1)
        } else {
            codes
        };
        let expected = if bits == 4 {
            (elements + 1) / 2 * 2
        } else {
            elements
        };
        if unpacked.size()[0] != expected {
            return Err(bad(format!(
                "{} codes for {elements} elements",
                unpacked.size()[0]
            )));
        }
        let index = unpacked.narrow(0, 0, elements).to_kind(Kind::Int64);
        if index.max().int64_value(&[]) >= k {
            return Err(bad(format!("a code points past the {k} levels")));
        }
        let chosen = levels
            .to_kind(Kind::Float)
            .index_select(0, &index)
            .view(chosen_shape.as_slice());
        let mut rest_shape = shape.clone();
        rest_shape[0] = shape[0] - (end - start);
        let full = match rest {
            None if rest_shape[0] == 0 => chosen,
            None => return Err(bad(format!("no {REST} tensor for the other rows"))),
            Some(rest) if rest.size() != rest_shape => {
                return Err(bad(format!(
                    "{REST} has shape {:?}, expected {rest_shape:?}",
                    rest.size()
                )))
            }
            Some(rest) => {
                crate::cell::join_rows(&chosen, Some(&rest.to_kind(Kind::Float)), start, 0)
            }
        };
        stored.insert(name, full);
    }
    Ok(stored)
}

/// Everything `save` writes besides the weights.
pub struct BundleContents<'a> {
    pub config: &'a BundleConfig,
    pub metadata: &'a BundleMetadata,
    pub vars: &'a nn::VarStore,
    /// Vocabulary files to copy in, by the names `config` gives them.
    pub vocab_files: &'a [(String, PathBuf)],
    pub dtype: WeightsDtype,
}

/// Writes the bundle files into `dir` (which must exist); no atomicity.
pub fn write_bundle_files(dir: &Path, contents: &BundleContents) -> Result<(), ModelError> {
    write_bundle_files_with(dir, contents, &WeightStorage::default())
}

/// [`write_bundle_files`] with some weights stored as codebooks (`config.json` must then
/// say format version [`FORMAT_VERSION_COMPRESSED`]).
fn write_bundle_files_with(
    dir: &Path,
    contents: &BundleContents,
    storage: &WeightStorage,
) -> Result<(), ModelError> {
    write_json(&dir.join(CONFIG_FILE), contents.config)?;
    write_json(&dir.join(METADATA_FILE), contents.metadata)?;
    for (name, source) in contents.vocab_files {
        let target = dir.join(name);
        fs::copy(source, &target).map_err(|e| ModelError::io(source, e))?;
    }
    let stored_kind = match contents.dtype {
        WeightsDtype::Float32 => Kind::Float,
        WeightsDtype::Float16 => Kind::Half,
    };
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in contents.vars.variables() {
        let t = var.detach().to_device(Device::Cpu);
        let Some(rows) = storage.codebooks.get(&name) else {
            // int8 codes keep their type, their steps stay float32 (INT8_SCALE).
            let kind = if !t.is_floating_point() || name.ends_with(INT8_SCALE) {
                t.kind()
            } else {
                stored_kind
            };
            named.push((name, t.to_kind(kind).contiguous()));
            continue;
        };
        // The codebook takes the values as they are (rounded values are exact in float16
        // too, but a codebook has no reason to lose anything); the other rows follow dtype.
        let (levels, codes, bits, rest) = encode_codebook(&name, &t, rows)?;
        let mut layout = vec![rows.start, rows.end, bits];
        layout.extend(t.size());
        named.push((format!("{name}{LEVELS}"), levels.contiguous()));
        named.push((format!("{name}{CODES}"), codes.contiguous()));
        named.push((format!("{name}{LAYOUT}"), Tensor::from_slice(&layout)));
        if let Some(rest) = rest {
            named.push((
                format!("{name}{REST}"),
                rest.to_kind(stored_kind).contiguous(),
            ));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let path = dir.join(WEIGHTS_FILE);
    Tensor::write_safetensors(&named, &path).map_err(|e| ModelError::bundle(&path, e.to_string()))
}

/// Sets (or with `None` removes) the description of the bundle in `dir` (its training data
/// and domain, [`BundleMetadata::description`]): `metadata.json` is rewritten through a
/// temporary file and a rename, so a crash leaves the old file or the new one.
pub fn set_description(
    dir: &Path,
    description: Option<&str>,
) -> Result<BundleMetadata, ModelError> {
    let path = dir.join(METADATA_FILE);
    let mut metadata = read_metadata(dir)?;
    metadata.description = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from);
    let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
    write_json(&tmp, &metadata)?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| ModelError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| ModelError::io(&path, e))?;
    Ok(metadata)
}

/// Saves a bundle atomically: `dir` holds the old bundle or the new one, never a mix.
pub fn save(dir: &Path, contents: &BundleContents) -> Result<(), ModelError> {
    write_dir_atomically(dir, |tmp| write_bundle_files(tmp, contents))
}

/// [`save`] with the weights `storage` names stored as codebooks; the bundle gets format
/// version [`FORMAT_VERSION_COMPRESSED`] when there are any.
pub fn save_with_storage(
    dir: &Path,
    contents: &BundleContents,
    storage: &WeightStorage,
) -> Result<(), ModelError> {
    let mut config = contents.config.clone();
    let mut metadata = contents.metadata.clone();
    let version = if config.model.int8.is_some() {
        Some(FORMAT_VERSION_INT8)
    } else if !storage.codebooks.is_empty() || config.model.low_rank.is_some() {
        Some(FORMAT_VERSION_COMPRESSED)
    } else {
        None
    };
    if let Some(version) = version {
        config.format_version = version;
        metadata.format_version = version;
    }
    let contents = BundleContents {
        config: &config,
        metadata: &metadata,
        ..*contents
    };
    write_dir_atomically(dir, |tmp| write_bundle_files_with(tmp, &contents, storage))
}

impl Bundle {
    /// Converts the loaded weights so that the model computes in `dtype` from now on.
    pub fn set_compute_dtype(&mut self, dtype: ComputeDtype) {
        match dtype {
            ComputeDtype::Float32 => self.vars.float(),
            ComputeDtype::Bfloat16 => self.vars.bfloat16(),
        }
        // The conversion gives every variable new storage: lay cuDNN's buffer out again.
        self.model.flatten_for_cudnn();
    }

    /// Runs the input and forget gates soft (as trained) or hard (1 where the pre-activation
    /// is ≥ 0, else 0) at inference, whatever `config.json` says; models shared from this
    /// bundle afterwards ([`Self::share_model`]) do the same.
    pub fn set_gate_inference(&mut self, inference: crate::gates::GateInference) {
        self.config.model.gates.inference = inference;
        self.model.set_gate_inference(inference);
    }

    /// A second handle on this bundle's model that another thread can own: its own
    /// `Seq2Seq` whose parameters are views of the same weight storage (no copy of the
    /// weights; the memory cost is the short-lived random initialisation). For decoding
    /// batches side by side (inference only: nothing may write to the weights meanwhile).
    /// The returned store must outlive the model.
    pub fn share_model(&self) -> Result<(nn::VarStore, Seq2Seq), ModelError> {
        crate::seq2seq::share_weights(&self.vars, &self.config.model)
    }

    /// The vocabulary files of this bundle as `save` takes them: each
    /// distinct name once (a joint vocabulary is one file), with its path.
    pub fn vocab_files(&self) -> Vec<(String, PathBuf)> {
        let mut names = vec![self.config.src_vocab.clone()];
        if self.config.tgt_vocab != self.config.src_vocab {
            names.push(self.config.tgt_vocab.clone());
        }
        names
            .into_iter()
            .map(|name| {
                let path = self.dir.join(&name);
                (name, path)
            })
            .collect()
    }
}

impl WeightsDtype {
    /// The name `metadata.json` records (`float32`, `float16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Float16 => "float16",
        }
    }
}

/// Copies the bundle in `input` to `output` with its weights stored as
/// `dtype` (float16 halves the size for shipping; loading gives float32
/// again). `output` is written atomically and must not be `input`.
/// `metadata.json` keeps everything and records the stored type.
pub fn convert(input: &Path, output: &Path, dtype: WeightsDtype) -> Result<Bundle, ModelError> {
    refuse_same_dir(input, output)?;
    let bundle = Bundle::load(input, Device::Cpu)?;
    if bundle.metadata.extra.contains_key("compression") {
        // Converting would store the decoded weights densely under a note that says
        // "compressed"; convert the original, then compress the copy.
        return Err(ModelError::bundle(
            input,
            "this bundle is compressed; convert the original bundle, then compress the copy",
        ));
    }
    write_derived(
        output,
        &bundle,
        (&bundle.config, &bundle.vars),
        None,
        dtype,
        &WeightStorage::default(),
    )
}

/// A new bundle in `output` made from `source`: its vocabulary, `config` and `vars`, its
/// metadata with `note` (a key and value, e.g. how it was compressed) and the stored
/// weight type added; written atomically with `storage`, then loaded back.
fn write_derived(
    output: &Path,
    source: &Bundle,
    (config, vars): (&BundleConfig, &nn::VarStore),
    note: Option<(&str, serde_json::Value)>,
    dtype: WeightsDtype,
    storage: &WeightStorage,
) -> Result<Bundle, ModelError> {
    let mut metadata = source.metadata.clone();
    if let Some((key, value)) = note {
        metadata.extra.insert(key.into(), value);
    }
    metadata.extra.insert(
        "weights_dtype".into(),
        serde_json::Value::String(dtype.name().into()),
    );
    save_with_storage(
        output,
        &BundleContents {
            config,
            metadata: &metadata,
            vars,
            vocab_files: &source.vocab_files(),
            dtype,
        },
        storage,
    )?;
    Bundle::load(output, Device::Cpu)
}

/// Fails when `output` is `input` (a copy must go elsewhere).
fn refuse_same_dir(input: &Path, output: &Path) -> Result<(), ModelError> {
    if let (Ok(a), Ok(b)) = (fs::canonicalize(input), fs::canonicalize(output)) {
        if a == b {
            return Err(ModelError::bundle(
                output,
                "the output is the input bundle; write the new copy elsewhere",
            ));
        }
    }
    Ok(())
}

/// Copies the bundle in `input` to `output` with the chosen weights rounded (and clipped,
/// [`crate::compress::round_clip`]) and stored as codebooks: format version 2, smaller on
/// disk, float weights again when loaded. The other weights are stored as `dtype`.
/// `metadata.json` records the method and its parameters under `compression`.
pub fn compress_round_clip(
    input: &Path,
    output: &Path,
    set: crate::compress::ParamSet,
    rc: crate::compress::RoundClip,
    dtype: WeightsDtype,
) -> Result<Bundle, ModelError> {
    rc.check()?;
    let bundle = load_uncompressed(input, output)?;
    let chosen = crate::compress::round_clip(&bundle.vars, &bundle.config.model, set, rc)?;
    let note = serde_json::json!({
        "method": if rc.clip.is_some() { "round_clip" } else { "round" },
        "round": rc.round,
        "clip": rc.clip,
        "params": set.name(),
        "tensors": chosen.len(),
    });
    let storage = WeightStorage {
        codebooks: chosen.into_iter().map(|s| (s.name, s.rows)).collect(),
    };
    write_derived(
        output,
        &bundle,
        (&bundle.config, &bundle.vars),
        Some(("compression", note)),
        dtype,
        &storage,
    )
}

/// Loads `input` for a compression that changes the architecture's weights: refuses writing
/// onto it and compressing a bundle twice.
fn load_uncompressed(input: &Path, output: &Path) -> Result<Bundle, ModelError> {
    refuse_same_dir(input, output)?;
    let bundle = Bundle::load(input, Device::Cpu)?;
    if bundle.metadata.extra.contains_key("compression") {
        return Err(ModelError::bundle(
            input,
            "this bundle is compressed already; compress the original",
        ));
    }
    Ok(bundle)
}

/// The variables of a model built from `config` (on the CPU), filled from `source` (a
/// store's variables by name): those it shares by name are copied; each new one, named
/// `base` + one of `suffixes`, comes from `derive(base, base's rows chosen by rows_of(base,
/// row count), the other rows)`, which returns one tensor per suffix (in order, `None` for
/// the rest's suffix when every row is chosen). `derive` runs once per base matrix. Returns
/// the store and how many matrices were derived.
fn derived_vars(
    source: &std::collections::HashMap<String, Tensor>,
    config: &ModelConfig,
    suffixes: &[&str],
    rows_of: impl Fn(&str, i64) -> std::ops::Range<i64>,
    mut derive: impl FnMut(&str, &Tensor, Option<Tensor>) -> Result<Vec<Option<Tensor>>, ModelError>,
) -> Result<(nn::VarStore, usize), ModelError> {
    let target = nn::VarStore::new(Device::Cpu);
    Seq2Seq::new(&target.root(), config)?;
    // base name → one tensor per suffix.
    let mut derived: BTreeMap<String, Vec<Option<Tensor>>> = BTreeMap::new();
    tch::no_grad(|| -> Result<(), ModelError> {
        for (name, mut var) in target.variables() {
            let value = if let Some(t) = source.get(&name) {
                t.shallow_clone()
            } else {
                let (base, part) = suffixes
                    .iter()
                    .enumerate()
                    .find_map(|(i, suffix)| name.strip_suffix(suffix).map(|b| (b, i)))
                    .ok_or_else(|| ModelError::Input(format!("no weight for {name}")))?;
                let w = source
                    .get(base)
                    .ok_or_else(|| ModelError::Input(format!("no weight {base} to compress")))?;
                if !derived.contains_key(base) {
                    let rows = rows_of(base, w.size()[0]);
                    let (chosen, rest) = crate::cell::split_rows(w, &rows, 0);
                    derived.insert(base.to_string(), derive(base, &chosen, rest)?);
                }
                derived[base][part]
                    .as_ref()
                    .map(Tensor::shallow_clone)
                    .ok_or_else(|| {
                        ModelError::Input(format!("{name}: every row of {base} is compressed"))
                    })?
            };
            var.f_copy_(&value)?;
        }
        Ok(())
    })?;
    Ok((target, derived.len()))
}

/// Copies the bundle in `input` to `output` with the chosen rows of every recurrent
/// layer's input and recurrent matrices replaced by their best rank-`rank` factors, stored
/// as factors and run as two GEMMs (`model.low_rank` in `config.json`, format version 2).
/// The other weights are stored as `dtype`; `metadata.json` records the method.
pub fn compress_low_rank(
    input: &Path,
    output: &Path,
    rows: crate::config::LowRankRows,
    rank: i64,
    dtype: WeightsDtype,
) -> Result<Bundle, ModelError> {
    let bundle = load_uncompressed(input, output)?;
    let low_rank = crate::config::LowRank { rank, rows };
    let mut config = bundle.config.clone();
    config.model.low_rank = Some(low_rank);
    config.model.validate()?;
    let hidden = config.model.hidden_dim;
    let (target, count) = derived_vars(
        &bundle.vars.variables(),
        &config.model,
        &["_svd_u", "_svd_v", "_svd_rest"],
        |_, n| low_rank.row_range(hidden, n),
        |_, chosen, rest| {
            let (u, v) = crate::compress::low_rank_factors(chosen, rank)?;
            Ok(vec![Some(u), Some(v), rest])
        },
    )?;
    let note = serde_json::json!({
        "method": "svd",
        "rank": rank,
        "params": rows_name(rows),
        "tensors": count,
    });
    write_compressed(output, &bundle, (&config, &target), note, dtype)
}

/// [`write_derived`] for a compression that changed the architecture's weights (`config`,
/// `vars`): the method's `note` under `compression`, no codebooks.
fn write_compressed(
    output: &Path,
    source: &Bundle,
    derived: (&BundleConfig, &nn::VarStore),
    note: serde_json::Value,
    dtype: WeightsDtype,
) -> Result<Bundle, ModelError> {
    write_derived(
        output,
        source,
        derived,
        Some(("compression", note)),
        dtype,
        &WeightStorage::default(),
    )
}

/// `--params` of a row choice.
fn rows_name(rows: crate::config::LowRankRows) -> &'static str {
    match rows {
        crate::config::LowRankRows::Gates => "gates",
        crate::config::LowRankRows::All => "recurrent",
    }
}

/// Copies the bundle in `input` to `output` with the chosen rows of every recurrent layer's
/// input and recurrent matrices in int8 with per-row steps ([`quantized::quantize_rows`]),
/// run by fbgemm's int8 kernel on the CPU (`model.int8` in `config.json`, format version
/// [`FORMAT_VERSION_INT8`]). The decoder's input and recurrent matrices of a layer share one
/// step per row ([`quantized::quantize_rows_joint`]), so that a search step runs them as one
/// int8 GEMM of `[x; h]` ([`crate::cell::Matrix::join_columns`]). With `linear`, the
/// attention's key (and query) projections, the decoder's `W_c` and the output projection are
/// int8 too, every row (the output projection as an int8 copy `output_int8_q` of its weight:
/// the float weight, the tied embedding, stays for the lookups). The other weights are stored
/// as `dtype`; `metadata.json` records the method.
pub fn compress_int8(
    input: &Path,
    output: &Path,
    rows: crate::config::LowRankRows,
    linear: bool,
    dtype: WeightsDtype,
) -> Result<Bundle, ModelError> {
    let bundle = load_uncompressed(input, output)?;
    let mut config = bundle.config.clone();
    config.model.int8 = Some(crate::config::Int8 { rows, linear });
    config.model.validate()?;
    let hidden = config.model.hidden_dim;
    let mut source = bundle.vars.variables();
    // The int8 copy of the output projection (`output_int8_*`) derives from its weight.
    let (weight, _) = bundle.model.output_projection();
    source.insert(OUTPUT_INT8_BASE.to_string(), weight.shallow_clone());
    let recurrent = |base: &str| base.contains(".rnn.weight_");
    let rows_of = |base: &str, n: i64| {
        if recurrent(base) {
            rows.range(hidden, n)
        } else {
            0..n
        }
    };
    let (target, count) = derived_vars(
        &source,
        &config.model,
        &["_int8_q", INT8_SCALE, "_int8_rest"],
        rows_of,
        |base, chosen, rest| {
            let quantize = |blocks: &[&Tensor]| {
                quantized::quantize_rows_joint(blocks)
                    .map_err(|e| ModelError::Config(e.to_string()))
            };
            // A decoder layer's W_ih and W_hh: quantized side by side, one step per row.
            let partner = decoder_partner(base).and_then(|p| source.get(&p).map(|w| (p, w)));
            let (q, step) = match partner {
                Some((p, w)) => {
                    let (other, _) = crate::cell::split_rows(w, &rows_of(&p, w.size()[0]), 0);
                    let (codes, step) = quantize(&[chosen, &other])?;
                    (codes[0].shallow_clone(), step)
                }
                None => {
                    let (codes, step) = quantize(&[chosen])?;
                    (codes[0].shallow_clone(), step)
                }
            };
            Ok(vec![Some(q), Some(step), rest])
        },
    )?;
    let note = serde_json::json!({
        "method": "int8",
        "params": if linear { "all" } else { rows_name(rows) },
        "tensors": count,
        "quantization": format!(
            "per-row symmetric, |q| <= {} (7 bits: fbgemm's AVX2 path saturates at 8); \
             a decoder layer's input and recurrent matrices share each row's step",
            quantized::QMAX
        ),
    });
    write_compressed(output, &bundle, (&config, &target), note, dtype)
}

/// The name the output projection's int8 copy derives from (`output_int8_q`, ...): the
/// projection's weight, the target embedding when tied.
const OUTPUT_INT8_BASE: &str = "output";

/// The other recurrent matrix of a decoder layer (`decoder.rnn.weight_ih_l0` ↔
/// `decoder.rnn.weight_hh_l0`), or `None` for any other weight.
fn decoder_partner(base: &str) -> Option<String> {
    let rest = base.strip_prefix("decoder.rnn.")?;
    if let Some(layer) = rest.strip_prefix("weight_ih_l") {
        Some(format!("decoder.rnn.weight_hh_l{layer}"))
    } else {
        rest.strip_prefix("weight_hh_l")
            .map(|layer| format!("decoder.rnn.weight_ih_l{layer}"))
    }
}

/// Writes the average of the bundles in `inputs` (checkpoints of one run: the same
/// architecture and vocabularies) to `output`, with the first one's configuration,
/// vocabulary and metadata (which records the averaged sources under `averaged`).
pub fn average(
    inputs: &[PathBuf],
    output: &Path,
    dtype: WeightsDtype,
) -> Result<Bundle, ModelError> {
    let Some(first_dir) = inputs.first() else {
        return Err(ModelError::Input(
            "give at least one bundle to average".into(),
        ));
    };
    for input in inputs {
        refuse_same_dir(input, output)?;
    }
    let mut first = Bundle::load(first_dir, Device::Cpu)?;
    let refuse_compressed = |b: &Bundle| {
        if b.metadata.extra.contains_key("compression") {
            return Err(ModelError::bundle(
                &b.dir,
                "this bundle is compressed; average the original checkpoints, then compress",
            ));
        }
        Ok(())
    };
    refuse_compressed(&first)?;
    let mut others = Vec::new();
    for dir in &inputs[1..] {
        let b = Bundle::load(dir, Device::Cpu)?;
        refuse_compressed(&b)?;
        if b.config != first.config {
            return Err(ModelError::bundle(
                dir,
                format!(
                    "config.json differs from {}'s: only checkpoints of one model can be averaged",
                    first_dir.display()
                ),
            ));
        }
        for (name, _) in b.vocab_files() {
            let (a, b) = (fs::read(first.dir.join(&name)), fs::read(b.dir.join(&name)));
            if a.map_err(|e| ModelError::io(first.dir.join(&name), e))?
                != b.map_err(|e| ModelError::io(dir.join(&name), e))?
            {
                return Err(ModelError::bundle(
                    dir.join(&name),
                    "vocabulary differs from the first bundle's",
                ));
            }
        }
        others.push(b);
    }
    let stores: Vec<&nn::VarStore> = std::iter::once(&first.vars)
        .chain(others.iter().map(|b| &b.vars))
        .collect();
    let target = nn::VarStore::new(Device::Cpu);
    Seq2Seq::new(&target.root(), &first.config.model)?;
    crate::compress::average_into(&target, &stores)?;
    // The average's metadata: the newest checkpoint's (its step and epoch), without its
    // validation scores, which were measured on that checkpoint, not on the average.
    let mut metadata = std::iter::once(&first)
        .chain(&others)
        .max_by_key(|b| b.metadata.step)
        .map_or_else(|| first.metadata.clone(), |b| b.metadata.clone());
    metadata.validation.clear();
    first.metadata = metadata;
    let sources: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    write_derived(
        output,
        &first,
        (&first.config, &target),
        Some(("averaged", serde_json::json!(sources))),
        dtype,
        &WeightStorage::default(),
    )
}
