//! Shared fixtures for the trainer tests: a tiny encoder-decoder implementing
//! `TrainableModel`, a synthetic corpus batched by the real token batcher, and a word vocabulary.
#![allow(dead_code)]

#[path = "../../../test-support/pypi.rs"]
pub mod pypi;

use std::path::{Path, PathBuf};

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use training::corpus_source::{ordered_batches, CorpusBatches};
use training::data::{BatchConfig, CorpusBuilder, TokenBatcher};
use training::trainable::{BundleInfo, DynError, TrainableModel};

pub const VOCAB: i64 = 24;

/// Mean-pooled source embeddings added to each target embedding, dropout, a projection.
/// Small, but with every ingredient the trainer must handle: two inputs, dropout, padding.
pub struct TinyModel {
    pub vs: nn::VarStore,
    src_emb: nn::Embedding,
    tgt_emb: nn::Embedding,
    out: nn::Linear,
    pub dropout: f64,
}

impl TinyModel {
    pub fn new(seed: i64, dropout: f64) -> Self {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let src_emb = nn::embedding(&root / "src", VOCAB, 16, Default::default());
        let tgt_emb = nn::embedding(&root / "tgt", VOCAB, 16, Default::default());
        let out = nn::linear(&root / "out", 16, VOCAB, Default::default());
        Self {
            vs,
            src_emb,
            tgt_emb,
            out,
            dropout,
        }
    }

    /// [batch, 16]
    fn encode(&self, src: &Tensor, src_lengths: &Tensor) -> Tensor {
        let mask = src.ne(0).to_kind(Kind::Float).unsqueeze(-1);
        let sum = (self.src_emb.forward(src) * mask).sum_dim_intlist(1, false, Kind::Float);
        sum / src_lengths.to_kind(Kind::Float).unsqueeze(-1)
    }
}

impl TrainableModel for TinyModel {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        train: bool,
    ) -> Result<Tensor, DynError> {
        let enc = self.encode(src, src_lengths).unsqueeze(1);
        let h = (self.tgt_emb.forward(tgt_in) + enc)
            .tanh()
            .dropout(self.dropout, train);
        Ok(self.out.forward(&h))
    }

    fn greedy(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        max_len_a: f64,
        max_len_b: i64,
    ) -> Result<Vec<Vec<i64>>, DynError> {
        let max_len = (max_len_a * src.size()[1] as f64) as i64 + max_len_b;
        let enc = self.encode(src, src_lengths);
        let b = src.size()[0];
        let mut prev = Tensor::full([b], vocab::BOS_ID as i64, (Kind::Int64, Device::Cpu));
        let mut out = vec![Vec::new(); b as usize];
        let mut done = vec![false; b as usize];
        for _ in 0..max_len {
            let logits = self
                .out
                .forward(&(self.tgt_emb.forward(&prev) + &enc).tanh());
            prev = logits.argmax(-1, false);
            for (r, row) in out.iter_mut().enumerate() {
                let id = prev.int64_value(&[r as i64]);
                if id == vocab::EOS_ID as i64 {
                    done[r] = true;
                }
                if !done[r] {
                    row.push(id);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out)
    }

    fn save_bundle(&self, dir: &Path, _info: &BundleInfo) -> Result<(), DynError> {
        self.vs.save(dir.join("weights.safetensors"))?;
        Ok(())
    }

    fn load_weights(&mut self, dir: &Path) -> Result<(), DynError> {
        self.vs.load(dir.join("weights.safetensors"))?;
        Ok(())
    }
}

/// Pair `i` of a deterministic synthetic task: the target is the source shifted by one id.
pub fn pair(i: usize) -> (Vec<u32>, Vec<u32>) {
    let len = 2 + i % 5;
    let src: Vec<u32> = (0..len)
        .map(|k| 4 + ((i * 7 + k * 3) % (VOCAB as usize - 5)) as u32)
        .collect();
    let tgt: Vec<u32> = src
        .iter()
        .map(|&s| if s + 1 < VOCAB as u32 { s + 1 } else { 4 })
        .collect();
    (src, tgt)
}

/// Training batches over `n` synthetic pairs with the real batcher.
pub fn train_source(n: usize, budget: usize, seed: u64) -> CorpusBatches {
    let mut b = CorpusBuilder::with_vocab_lens(VOCAB as usize, VOCAB as usize);
    for i in 0..n {
        let (s, t) = pair(i);
        b.push(&s, &t, i as u64 + 1).unwrap();
    }
    let corpus = b.finish();
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(budget), seed).unwrap();
    CorpusBatches::new(corpus, batcher)
}

/// Validation batches over pairs `offset..offset+n`, and the reference texts.
/// A validation set ([`valid_set`] of `n` pairs from `offset`) with greedy BLEU by `scorer`
/// over [`WordVocab`].
pub fn bleu_validation<'a>(
    offset: usize,
    n: usize,
    scorer: &'a training::trainer::CorpusScorer<'a>,
) -> training::trainer::Validation<'a> {
    let (batches, references) = valid_set(offset, n);
    training::trainer::Validation::single(
        batches,
        Some(training::trainer::BleuSetup {
            references,
            vocab: &WordVocab,
            scorer,
        }),
    )
}

pub fn valid_set(offset: usize, n: usize) -> (Vec<training::trainable::HostBatch>, Vec<String>) {
    let mut b = CorpusBuilder::with_vocab_lens(VOCAB as usize, VOCAB as usize);
    let mut refs = Vec::new();
    for i in offset..offset + n {
        let (s, t) = pair(i);
        b.push(&s, &t, i as u64 + 1).unwrap();
        refs.push(WordVocab.decode(&t).unwrap());
    }
    let corpus = b.finish();
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(64), 0).unwrap();
    (ordered_batches(&corpus, &batcher), refs)
}

/// Ids ↔ words `w4`, `w5`, ...
pub struct WordVocab;

impl vocab::Vocab for WordVocab {
    fn len(&self) -> usize {
        VOCAB as usize
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>, vocab::VocabError> {
        text.split_whitespace()
            .map(|w| {
                w.strip_prefix('w')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| vocab::VocabError::Other(w.into()))
            })
            .collect()
    }
    fn decode(&self, ids: &[u32]) -> Result<String, vocab::VocabError> {
        Ok(ids
            .iter()
            .filter(|&&i| i >= 4)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" "))
    }
    fn kind(&self) -> vocab::VocabKind {
        vocab::VocabKind::Unigram
    }
    fn normalize(&self, text: &str) -> Result<String, vocab::VocabError> {
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
    fn id_to_piece(&self, id: u32) -> Option<String> {
        ((id as i64) < VOCAB).then(|| format!("w{id}"))
    }
    fn piece_to_id(&self, piece: &str) -> Option<u32> {
        piece.strip_prefix('w').and_then(|n| n.parse().ok())
    }
    fn save(&self, _path: &Path) -> Result<(), vocab::VocabError> {
        Err(vocab::VocabError::Other("WordVocab is not saved".into()))
    }
    fn file_name(&self) -> &'static str {
        "words.txt"
    }
}

use vocab::Vocab as _;

/// sacreBLEU-exact corpus BLEU from the evaluation crate.
pub fn bleu(hyps: &[String], refs: &[String]) -> Result<f64, DynError> {
    let refs = vec![refs.to_vec()];
    Ok(evaluation::corpus_bleu(hyps, &refs, &evaluation::BleuOptions::default())?.score)
}

/// libtorch's random generator is process-wide and tests run on parallel threads: tests that
/// seed it and rely on the draws hold this lock.
pub fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `nmt-train` arguments that quietly train on the config `cfg` into `run_dir`, then `extra`.
pub fn train_args<'a>(cfg: &'a str, run_dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--config", cfg, "--run-dir", run_dir, "--quiet"];
    args.extend_from_slice(extra);
    args
}

/// `nmt-train` arguments that quietly resume the run in `run_dir` up to update `max_steps`.
pub fn resume_args<'a>(run_dir: &'a str, max_steps: &'a str) -> [&'a str; 6] {
    [
        "--run-dir",
        run_dir,
        "--resume",
        "--quiet",
        "--max-steps",
        max_steps,
    ]
}

/// Writes `dir/tiny.toml`, a de→en run on `dir`'s `train.*` and `valid.*` files with a tiny
/// model (two layers a side, 16-wide embeddings and states), and returns its path.
/// `max_len` and `vocab_size` go to `[data]` and `[vocab]`; `training` is the body of the
/// `[training]` section (and may add sections after it).
pub fn write_tiny_config(dir: &Path, max_len: usize, vocab_size: usize, training: &str) -> PathBuf {
    let cfg = dir.join("tiny.toml");
    let text = format!(
        r#"
[data]
src_lang = "de"
tgt_lang = "en"
train = "train"
valid = "valid"
max_len = {max_len}

[vocab]
size = {vocab_size}

[model]
embed_dim = 16
hidden_dim = 16
encoder_layers = 2
decoder_layers = 2
dropout = 0.2

[training]
{training}"#
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `(step, loss as written)` of every record of `<run>/train.jsonl` (empty when absent), for
/// the tests that compare loss curves across kills and resumes.
pub fn train_log(run: &Path) -> Vec<(u64, String)> {
    let Ok(text) = std::fs::read_to_string(run.join("train.jsonl")) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v["loss"].to_string())))
        .collect()
}

/// The pinned TensorBoard release whose reader the event-file tests use.
pub const TENSORBOARD_PIN: &str = "2.21.0";

/// Every scalar series in the event files of `run/tensorboard/` as TensorBoard itself reads
/// them (its `EventAccumulator`, which also drops what a `SessionLog START` purges): tag →
/// `(step, value)` in step order. The pinned `tensorboard` package is installed into the
/// venv on first use; a test that calls this fails, saying why, when it cannot be.
pub fn tensorboard_scalars(run: &Path) -> std::collections::BTreeMap<String, Vec<(u64, f64)>> {
    let check = format!(
        "import tensorboard, sys; sys.exit(tensorboard.__version__ != {TENSORBOARD_PIN:?})"
    );
    let python = pypi::pinned("tensorboard", TENSORBOARD_PIN, &check)
        .unwrap_or_else(|e| panic!("the TensorBoard reader is needed: {e}"));
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(run.join(training::tensorboard::TENSORBOARD_DIR))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reading the event files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
