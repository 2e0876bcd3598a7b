//! Fixtures for the tests, benchmarks and examples of this and other crates (feature
//! `test-support`, which their `[dev-dependencies]` turn on): small, randomly initialised
//! bundles. Not part of the library proper.

use std::fs;
use std::path::{Path, PathBuf};

use tch::{nn, Device};

use crate::bundle::{
    save, BundleConfig, BundleContents, BundleMetadata, WeightsDtype, FORMAT_VERSION,
};
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::seq2seq::Seq2Seq;

/// Writes a small, randomly initialised bundle with a joint vocabulary
/// trained on `lines`: a real bundle in every respect but its weights. For
/// tests and smoke checks of the tools that load bundles.
pub fn write_untrained_bundle(
    dir: &Path,
    lines: &[&str],
    vocab_size: usize,
    langs: (&str, &str),
    seed: i64,
) -> Result<BundleConfig, ModelError> {
    let train = vocab::TrainConfig {
        vocab_size,
        min_frequency: 1,
        ..Default::default()
    };
    write_untrained_bundle_with(dir, lines.iter().copied(), &train, langs, seed, |m| m)
}

/// [`write_untrained_bundle`] with any vocabulary settings and architecture:
/// `shape` gets a small default (embedding and hidden size 16, no dropout,
/// shared embeddings, sized to the trained vocabulary) and returns the
/// architecture to build (benchmarks use the presets' shapes).
pub fn write_untrained_bundle_with<I, S>(
    dir: &Path,
    lines: I,
    train: &vocab::TrainConfig,
    (src_lang, tgt_lang): (&str, &str),
    seed: i64,
    shape: impl FnOnce(ModelConfig) -> ModelConfig,
) -> Result<BundleConfig, ModelError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let joint = vocab::train_lines(train, lines)?;
    let scratch = tempfile_dir(dir)?;
    let vocab_path = scratch.join("vocab.json");
    vocab::Vocab::save(&joint, &vocab_path)?;
    let n = vocab::Vocab::len(&joint) as i64;
    tch::manual_seed(seed);
    let vars = nn::VarStore::new(Device::Cpu);
    let model = shape(ModelConfig {
        embed_dim: 16,
        hidden_dim: 16,
        dropout: 0.0,
        share_embeddings: true,
        ..ModelConfig::new(n, n)
    });
    Seq2Seq::new(&vars.root(), &model)?;
    let config = BundleConfig {
        format_version: FORMAT_VERSION,
        src_lang: src_lang.into(),
        tgt_lang: tgt_lang.into(),
        src_vocab: "vocab.json".into(),
        tgt_vocab: "vocab.json".into(),
        model,
    };
    let metadata = BundleMetadata {
        format_version: FORMAT_VERSION,
        ..Default::default()
    };
    let files = vec![("vocab.json".to_string(), vocab_path)];
    let result = save(
        dir,
        &BundleContents {
            config: &config,
            metadata: &metadata,
            vars: &vars,
            vocab_files: &files,
            dtype: WeightsDtype::Float32,
        },
    );
    let _ = fs::remove_dir_all(&scratch);
    result.map(|()| config)
}

/// A scratch directory beside `dir` (same filesystem), removed by the caller.
fn tempfile_dir(dir: &Path) -> Result<PathBuf, ModelError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let scratch = parent.join(format!(
        ".scratch-{}-{}",
        std::process::id(),
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    fs::create_dir_all(&scratch).map_err(|e| ModelError::io(&scratch, e))?;
    Ok(scratch)
}

/// The log-probabilities `[T + 1, tgt_vocab]` (float64) that `bundle` gives, teacher-forced
/// on the target ids `tgt` (`T` of them, without BOS or EOS), at every target position for
/// the source ids `src` (EOS last): row `t` is the distribution of the token after `tgt[..t]`.
pub fn teacher_forced_log_probs(bundle: &crate::Bundle, src: &[i64], tgt: &[i64]) -> tch::Tensor {
    use tch::{Kind, Tensor};
    let mut tgt_in = vec![vocab::BOS_ID as i64];
    tgt_in.extend(tgt);
    tch::no_grad(|| {
        bundle
            .model
            .forward(
                &Tensor::from_slice(src).unsqueeze(0),
                &Tensor::from_slice(&[src.len() as i64]),
                &Tensor::from_slice(&tgt_in).unsqueeze(0),
                &bundle.model.context(false),
            )
            .squeeze_dim(0)
            .log_softmax(-1, Kind::Double)
    })
}

/// The ids of the source pieces `src` (as a translation reports them, `</s>` last) in
/// `bundle`'s source vocabulary.
pub fn source_ids(bundle: &crate::Bundle, src: &[String]) -> Vec<i64> {
    src.iter()
        .map(|p| match p.as_str() {
            "</s>" => vocab::EOS_ID as i64,
            p => bundle.src_vocab.piece_to_id(p).unwrap() as i64,
        })
        .collect()
}

/// The log-probability that the bundle in `dir` gives the target `tgt` (pieces) for the
/// source `src` (pieces, `</s>` last), teacher-forced: (with the final EOS, without it). What
/// the tests compare a search's reported scores with.
pub fn teacher_forced_log_prob(dir: &Path, src: &[String], tgt: &[String]) -> (f64, f64) {
    let bundle = crate::Bundle::load(dir, Device::Cpu).unwrap();
    let src_ids = source_ids(&bundle, src);
    let mut gold: Vec<i64> = tgt
        .iter()
        .map(|p| bundle.tgt_vocab.piece_to_id(p).unwrap() as i64)
        .collect();
    let log_probs = teacher_forced_log_probs(&bundle, &src_ids, &gold);
    gold.push(vocab::EOS_ID as i64);
    let per_token: Vec<f64> = (0..gold.len())
        .map(|t| log_probs.double_value(&[t as i64, gold[t]]))
        .collect();
    let without_eos: f64 = per_token[..tgt.len()].iter().sum();
    (without_eos + per_token[tgt.len()], without_eos)
}
