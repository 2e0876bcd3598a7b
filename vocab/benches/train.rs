//! Training and encoding speed on the full Multi30k training text.
//! Run: `cargo bench -p vocab --bench train` (figures go to docs/BENCHMARKS.md).

use std::time::Instant;

use vocab::{train_files, ModelType, TrainConfig, Vocab};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/multi30k");

fn main() {
    let de = format!("{DATA}/train.de");
    let en = format!("{DATA}/train.en");
    if !std::path::Path::new(&de).is_file() {
        eprintln!("note: {DATA} is absent; nothing to measure");
        return;
    }
    let text: Vec<String> = std::fs::read_to_string(&de)
        .unwrap()
        .lines()
        .chain(std::fs::read_to_string(&en).unwrap().lines())
        .map(String::from)
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Multi30k train.de + train.en joint ({} lines), {threads} threads",
        text.len()
    );
    println!("| model | vocab size | train (median of 3) | encode all lines | lines/s |");
    println!("|---|---|---|---|---|");
    for model in [ModelType::Unigram, ModelType::Bpe] {
        for vocab_size in [8000, 16000] {
            let config = TrainConfig {
                model,
                vocab_size,
                ..TrainConfig::default()
            };
            let mut times = Vec::new();
            let mut trained = None;
            for _ in 0..3 {
                let t = Instant::now();
                trained = Some(train_files(&config, &[&de, &en]).unwrap());
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let v = trained.unwrap();
            let t = Instant::now();
            let mut ids = 0usize;
            for line in &text {
                ids += v.encode(line).unwrap().len();
            }
            let enc = t.elapsed().as_secs_f64();
            assert!(ids > text.len());
            println!(
                "| {model:?} | {} | {:.2} s | {:.2} s | {:.0} |",
                v.len(),
                times[1],
                enc,
                text.len() as f64 / enc
            );
        }
    }
}
