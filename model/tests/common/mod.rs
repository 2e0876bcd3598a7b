//! A tiny trained model shared by the tests: it learns to reverse short
//! sequences of ids, so that its output distributions look like a trained
//! translation model's (peaked, ending with EOS) rather than random.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use model::{ModelConfig, Seq2Seq};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

pub const VOCAB: i64 = 14;

/// A few German and English lines to train the tiny vocabularies of test bundles on.
#[allow(dead_code)] // not every test binary writes bundles
pub const LINES: &[&str] = &[
    "ein hund läuft über die wiese",
    "zwei männer spielen fußball im park",
    "eine frau liest ein buch",
    "a dog runs across the meadow",
    "two men play soccer in the park",
    "a woman reads a book",
];

/// Three short lines (two German, one English) that the tests translate with bundles whose
/// vocabularies were trained on [`LINES`].
#[allow(dead_code)] // not every test binary translates
pub const TEXTS: &[&str] = &[
    "ein hund läuft über die wiese",
    "eine frau liest",
    "two men play",
];

/// The translations of `texts` by bundles `a` and `b` with the default options, paired line
/// by line.
#[allow(dead_code)] // not every test binary translates
pub fn translate_both(
    a: &model::Bundle,
    b: &model::Bundle,
    texts: &[String],
) -> Vec<(model::translate::Translation, model::translate::Translation)> {
    use model::translate::{translate, TranslateOptions};
    let opts = TranslateOptions::default();
    let a = translate(a, texts, &opts, |_| {}).unwrap();
    let b = translate(b, texts, &opts, |_| {}).unwrap();
    a.into_iter().zip(b).collect()
}

/// Fails unless `a` and `b` are the same text with scores less than `tolerance` apart;
/// `context` starts the failure messages.
#[allow(dead_code)] // not every test binary translates
pub fn assert_same_translation(
    a: &model::translate::Translation,
    b: &model::translate::Translation,
    tolerance: f64,
    context: &str,
) {
    assert_eq!(a.text, b.text, "{context}");
    assert!(
        (a.score - b.score).abs() < tolerance,
        "{context}: {} vs {}",
        a.score,
        b.score
    );
}

/// Runs `nmt-bundle` with `args`: whether it succeeded, its stdout and its stderr.
#[allow(dead_code)] // not every test binary runs nmt-bundle
pub fn nmt_bundle(args: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nmt-bundle"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// libtorch's default generator is one for the whole process, and the tests of a binary run
/// in parallel threads: whoever seeds it must keep the others off it until done drawing.
static GLOBAL_RNG: Mutex<()> = Mutex::new(());

/// Runs `f` with libtorch's global generator seeded with `seed` and no other test of this
/// binary drawing from it meanwhile, so that seeded models and data are the same every run.
pub fn with_seed<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _only_us = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}

/// [`with_seed`] for a whole scope: seeds libtorch's global generator with `seed` and keeps
/// the other tests of this binary off it until the returned guard is dropped.
#[allow(dead_code)] // not every test binary seeds this way
pub fn seeded(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    let guard = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    guard
}

/// Random source rows of ids in 4..VOCAB with lengths 2..=6, padded: (src [B, 6], lengths [B]).
pub fn random_sources(batch: i64, seed: i64) -> (Tensor, Tensor) {
    with_seed(seed, || draw_sources(batch))
}

/// [`random_sources`] from the generator as it stands (the caller holds it).
fn draw_sources(batch: i64) -> (Tensor, Tensor) {
    let lengths = Tensor::randint_low(2, 7, [batch], (Kind::Int64, Device::Cpu));
    let ids = Tensor::randint_low(4, VOCAB, [batch, 6], (Kind::Int64, Device::Cpu));
    let mask = Tensor::arange(6, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&lengths.unsqueeze(1));
    (ids * mask.to_kind(Kind::Int64), lengths)
}

/// Teacher-forcing tensors for the reversal task: (tgt_in [B, 7], tgt_out [B, 7]).
fn reversed_targets(src: &Tensor, lengths: &Tensor) -> (Tensor, Tensor) {
    let rev = model::rnn::reverse_within_length(&src.unsqueeze(-1), lengths).squeeze_dim(-1);
    let batch = src.size()[0];
    let bos = Tensor::full([batch, 1], vocab::BOS_ID as i64, (Kind::Int64, Device::Cpu));
    let tgt_in = Tensor::cat(&[&bos, &rev], 1);
    let pad = Tensor::zeros([batch, 1], (Kind::Int64, Device::Cpu));
    let tgt_out = Tensor::cat(&[&rev, &pad], 1);
    // EOS right after each reversed sequence.
    let eos_at = lengths.unsqueeze(1);
    let tgt_out = tgt_out.scatter_value(1, &eos_at, vocab::EOS_ID as f64);
    (tgt_in, tgt_out)
}

/// Trains the reversal model for `steps` Adam steps (a few seconds on a CPU).
pub fn trained_reverser(steps: usize) -> (nn::VarStore, Seq2Seq) {
    with_seed(0, || {
        // One intra-op thread, so that the trained weights (and what tests find in them) do
        // not depend on the machine's core count: libtorch splits reductions by thread.
        tch::set_num_threads(1);
        train_reverser(steps)
    })
}

fn train_reverser(steps: usize) -> (nn::VarStore, Seq2Seq) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        embed_dim: 24,
        hidden_dim: 32,
        dropout: 0.0,
        ..ModelConfig::new(VOCAB, VOCAB)
    };
    let model = Seq2Seq::new(&vs.root(), &cfg).expect("valid config");
    let mut opt = nn::Adam::default().build(&vs, 0.01).expect("optimizer");
    for step in 0..steps {
        tch::manual_seed(1000 + step as i64);
        let (src, lengths) = draw_sources(32);
        let (tgt_in, tgt_out) = reversed_targets(&src, &lengths);
        let logits = model.forward(&src, &lengths, &tgt_in, &model.context(true));
        let loss = token_loss(&logits, &tgt_out, VOCAB);
        opt.backward_step(&loss);
    }
    (vs, model)
}

/// The mean cross-entropy of `logits` `[B, T, vocab]` against `tgt_out` `[B, T]`, padding
/// (id 0) left out: the loss the tests train their tiny models on.
#[allow(dead_code)] // not every test binary trains
pub fn token_loss(logits: &Tensor, tgt_out: &Tensor, vocab: i64) -> Tensor {
    logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(
        &tgt_out.view([-1]),
        None,
        tch::Reduction::Mean,
        0,
        0.0,
    )
}

/// libtorch's own LSTM cell (`lstm_cell`) on the dense weights `w`: the reference that the
/// project's cell equations are checked against. Returns `(h', c')`.
#[allow(dead_code)] // not every test binary checks the cell
pub fn libtorch_lstm_cell(
    x: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w: &model::cell::LayerWeights,
) -> (Tensor, Tensor) {
    x.lstm_cell(
        &[h, c],
        w.w_ih.dense().unwrap(),
        w.w_hh.dense().unwrap(),
        Some(&w.b_ih),
        Some(&w.b_hh),
    )
}

/// A random bundle with `cell`; `tie_output`: the output projection is the embedding.
#[allow(dead_code)] // not every test binary writes one
pub fn original_with(root: &Path, name: &str, cell: model::CellKind, tie_output: bool) -> PathBuf {
    let dir = root.join(name);
    let train = vocab::TrainConfig {
        vocab_size: 50,
        min_frequency: 1,
        ..Default::default()
    };
    model::testing::write_untrained_bundle_with(&dir, LINES, &train, ("de", "en"), 31, |m| {
        model::ModelConfig {
            cell,
            tie_output,
            ..m
        }
    })
    .unwrap();
    dir
}

/// A random LSTM bundle with a tied output projection, written under `root` and compressed
/// with `--int8 --params all` (every matrix a search step multiplies by in int8).
#[allow(dead_code)] // not every test binary writes one
pub fn int8_all_lstm(root: &Path) -> model::Bundle {
    let input = original_with(root, "float", model::CellKind::Lstm, true);
    let out = root.join("int8-all");
    let rows = model::config::LowRankRows::All;
    model::bundle::compress_int8(
        &input,
        &out,
        rows,
        true,
        model::bundle::WeightsDtype::Float32,
    )
    .unwrap()
}
