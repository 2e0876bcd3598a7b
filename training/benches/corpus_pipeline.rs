//! Memory and speed of the corpus pipeline at WMT14 scale (not a unit
//! test; results go to docs/BENCHMARKS.md, "Corpus pipeline").
//!
//! ```text
//! cargo bench -p training --bench corpus_pipeline -- [--pairs N] [--vocab V]
//!     [--mode ids|text] [--max-tokens T] [--epochs E] [--dir DIR]
//! ```
//! - `ids` (default): synthetic token ids with a WMT14-like length
//!   distribution (log-normal, mean ≈ 27 subwords per side, 1..=250, target
//!   correlated with source) pushed into the compact store;
//! - `text`: the same lengths written as synthetic text files (`DIR`, a
//!   temporary folder by default) and read back through the streaming
//!   reader + parallel encoder with a word vocabulary.
//!
//! Then batching: planner set-up, one epoch plan, and padding every batch
//! of the epoch. Peak RSS is the kernel's VmHWM for the whole process.
//! Hand-written argument parsing: a bench target gets raw args and adding
//! clap here would buy nothing.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use training::data::{
    BatchConfig, CorpusBuilder, CorpusSpec, EncodedCorpus, LengthFilter, ReadOptions,
    SentenceEncoder, TokenBatcher,
};
use vocab::{VocabError, UNK_ID};

struct Args {
    pairs: usize,
    vocab: usize,
    mode: String,
    max_tokens: usize,
    epochs: u64,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        pairs: 4_500_000,
        vocab: 32_000,
        mode: "ids".into(),
        max_tokens: 4096,
        epochs: 1,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // cargo bench passes this to harness-less targets
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--pairs" => a.pairs = num(value()?)?,
            "--vocab" => a.vocab = num(value()?)?,
            "--max-tokens" => a.max_tokens = num(value()?)?,
            "--epochs" => a.epochs = num(value()?)? as u64,
            "--mode" => a.mode = value()?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

/// Kernel-reported memory of this process (kB) for a `/proc/self/status`
/// field such as VmHWM (peak RSS) or VmRSS.
fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

/// Lengths like WMT14 en-de after 32K BPE: log-normal with σ = 0.6 and
/// mean 27, clipped to 1..=250; target = source × exp(N(0, 0.2)).
fn lengths(rng: &mut ChaCha8Rng) -> (usize, usize) {
    let sigma = 0.6f64;
    let mu = 27f64.ln() - sigma * sigma / 2.0;
    let gauss = |rng: &mut ChaCha8Rng| {
        // Box-Muller: avoids a rand_distr dependency for one normal draw.
        let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let s = (mu + sigma * gauss(rng)).exp();
    let t = s * (0.2 * gauss(rng)).exp();
    let clip = |x: f64| (x.round() as usize).clamp(1, 250);
    (clip(s), clip(t))
}

/// Whitespace words `wN` → id N (a stand-in for a subword model).
struct NumberedWords {
    ids: HashMap<String, u32>,
    len: usize,
}

impl SentenceEncoder for NumberedWords {
    fn vocab_len(&self) -> usize {
        self.len
    }
    fn encode_sentence(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        Ok(text
            .split_ascii_whitespace()
            .map(|w| self.ids.get(w).copied().unwrap_or(UNK_ID))
            .collect())
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let mut rng = ChaCha8Rng::seed_from_u64(2014);
    let t0 = Instant::now();
    let corpus = match args.mode.as_str() {
        "ids" => {
            let mut b = CorpusBuilder::with_vocab_lens(args.vocab, args.vocab);
            let (mut src, mut tgt) = (Vec::new(), Vec::new());
            for i in 0..args.pairs {
                let (s, t) = lengths(&mut rng);
                src.clear();
                tgt.clear();
                src.extend((0..s).map(|_| rng.gen_range(4..args.vocab as u32)));
                tgt.extend((0..t).map(|_| rng.gen_range(4..args.vocab as u32)));
                b.push(&src, &tgt, i as u64)?;
            }
            let c = b.finish();
            println!("build (ids)       {:8.2} s", t0.elapsed().as_secs_f64());
            c
        }
        "text" => {
            let tmp;
            let dir = match &args.dir {
                Some(d) => d.clone(),
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let (sp, tp) = (dir.join("synth.src"), dir.join("synth.tgt"));
            {
                let mut fs = BufWriter::new(std::fs::File::create(&sp)?);
                let mut ft = BufWriter::new(std::fs::File::create(&tp)?);
                for _ in 0..args.pairs {
                    let (s, t) = lengths(&mut rng);
                    for (f, n) in [(&mut fs, s), (&mut ft, t)] {
                        for k in 0..n {
                            let sep = if k + 1 == n { "\n" } else { " " };
                            write!(f, "w{}{sep}", rng.gen_range(4..args.vocab))?;
                        }
                    }
                }
                fs.flush()?;
                ft.flush()?;
            }
            let bytes = std::fs::metadata(&sp)?.len() + std::fs::metadata(&tp)?.len();
            println!(
                "write text        {:8.2} s  ({:.0} MiB)",
                t0.elapsed().as_secs_f64(),
                bytes as f64 / (1 << 20) as f64
            );
            let vocab = NumberedWords {
                ids: (4..args.vocab)
                    .map(|i| (format!("w{i}"), i as u32))
                    .collect(),
                len: args.vocab,
            };
            let hwm_before = status_kb("VmHWM");
            let t1 = Instant::now();
            let (c, report) = EncodedCorpus::read(
                &CorpusSpec::new(&sp, &tp),
                &ReadOptions::default(),
                &vocab,
                &vocab,
                &LengthFilter::default(),
            )?;
            let secs = t1.elapsed().as_secs_f64();
            println!(
                "read+encode       {secs:8.2} s  ({:.0} pairs/s, {:.1} MiB/s text), peak before {}",
                report.pairs_kept as f64 / secs,
                bytes as f64 / (1 << 20) as f64 / secs,
                mib(hwm_before)
            );
            c
        }
        m => return Err(format!("unknown --mode {m} (ids or text)").into()),
    };
    let tokens = corpus.src_column().num_tokens() + corpus.tgt_column().num_tokens();
    println!(
        "corpus            {} pairs, {} tokens ({:.1}/side/pair), ids {:?}/{:?}, heap {:.0} MiB",
        corpus.len(),
        tokens,
        tokens as f64 / 2.0 / corpus.len().max(1) as f64,
        corpus.src_column().width(),
        corpus.tgt_column().width(),
        corpus.heap_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "memory after load VmRSS {}  VmHWM {}",
        mib(status_kb("VmRSS")),
        mib(status_kb("VmHWM"))
    );

    let t = Instant::now();
    let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(args.max_tokens), 1)?;
    println!("batcher set-up    {:8.2} s", t.elapsed().as_secs_f64());
    for epoch in 0..args.epochs {
        let t = Instant::now();
        let plan = batcher.epoch(epoch);
        let plan_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (mut real, mut padded, mut n) = (0usize, 0usize, 0usize);
        for batch in plan.batches(&corpus, 0) {
            real += batch.src_tokens + batch.tgt_tokens;
            padded += batch.batch_size * (batch.src_len + batch.tgt_len);
            n += 1;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "epoch {epoch}: plan {plan_s:.2} s ({} batches); collate {s:.2} s = {:.0} batches/s, {:.1} M real tokens/s, padding {:.1}%",
            plan.len(),
            n as f64 / s,
            real as f64 / s / 1e6,
            100.0 * (padded - real) as f64 / padded as f64
        );
    }
    println!("peak RSS (VmHWM)  {}", mib(status_kb("VmHWM")));
    Ok(())
}
