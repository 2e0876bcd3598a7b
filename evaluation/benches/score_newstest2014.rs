//! Time to score newstest2014 (3003 lines) in-process: corpus BLEU (13a), corpus
//! chrF, chrF++ and sentence BLEU, each from raw strings (tokenization included).
//!
//! Run through `bench/eval/bench_eval.sh`, which prepares the hypothesis file, times
//! sacreBLEU's Python API on the same files in the same run, and prints both.
//! Environment: `NMT_EVAL_BENCH_REF`, `NMT_EVAL_BENCH_HYP` (files), `NMT_EVAL_BENCH_RUNS`.
//!
//! A plain timing loop rather than criterion: the figure wanted is one median per
//! metric, set beside sacreBLEU's time measured the same way, and a harness-free
//! bench keeps criterion's dependency tree out of the workspace build.

use std::time::{Duration, Instant};

use evaluation::{corpus_bleu, corpus_chrf, Bleu, BleuOptions, ChrfOptions};

fn lines(var: &str) -> Vec<String> {
    let path = std::env::var(var)
        .unwrap_or_else(|_| panic!("set {var}; run bench/eval/bench_eval.sh, which sets it"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn median_of(runs: usize, mut f: impl FnMut() -> f64) -> (Duration, f64) {
    let mut times = Vec::with_capacity(runs);
    let mut last = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        last = std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[runs / 2], last)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let refs = vec![lines("NMT_EVAL_BENCH_REF")];
    let hyps = lines("NMT_EVAL_BENCH_HYP");
    let runs: usize = std::env::var("NMT_EVAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let bleu_opts = BleuOptions::default();
    let chrf_opts = ChrfOptions::default();
    let chrfpp_opts = ChrfOptions::chrf_plus_plus();
    let report = |name: &str, (t, score): (Duration, f64)| {
        println!(
            "rust {name:<16} {:>8.1} ms  (score {score:.4}, {} lines, median of {runs})",
            t.as_secs_f64() * 1e3,
            hyps.len()
        );
    };
    report(
        "corpus_bleu",
        median_of(runs, || {
            corpus_bleu(&hyps, &refs, &bleu_opts).unwrap().score
        }),
    );
    report(
        "corpus_chrf",
        median_of(runs, || {
            corpus_chrf(&hyps, &refs, &chrf_opts).unwrap().score
        }),
    );
    report(
        "corpus_chrf++",
        median_of(runs, || {
            corpus_chrf(&hyps, &refs, &chrfpp_opts).unwrap().score
        }),
    );
    report(
        "sentence_bleu",
        median_of(runs, || {
            let bleu = Bleu::new(&refs, bleu_opts.clone()).unwrap();
            let scores = bleu.sentence_scores(&hyps).unwrap();
            scores.iter().map(|s| s.score).sum::<f64>() / scores.len() as f64
        }),
    );
}
