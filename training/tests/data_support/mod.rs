//! Shared helpers of the `data_*` tests: a tiny whitespace vocabulary (so
//! the corpus tests do not depend on trained subword models) and paths to
//! the shared real data.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use training::data::{CorpusSpec, RawPairs, ReadOptions, SentenceEncoder};
use vocab::{VocabError, UNK_ID};

/// Whitespace-separated words → ids 4.., built from a list of texts
/// (implements only the pipeline's narrow [`SentenceEncoder`]);
/// unknown words map to UNK. A word `FAIL` makes `encode` fail, to test
/// error propagation.
pub struct WordVocab {
    ids: HashMap<String, u32>,
    words: Vec<String>,
}

impl WordVocab {
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ids = HashMap::new();
        let mut words: Vec<String> = ["<pad>", "<unk>", "<s>", "</s>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for t in texts {
            for w in t.split_whitespace() {
                if !ids.contains_key(w) {
                    ids.insert(w.to_string(), words.len() as u32);
                    words.push(w.to_string());
                }
            }
        }
        WordVocab { ids, words }
    }

    /// A vocabulary of exactly `n` entries (`w4`, `w5`, …), to test id widths.
    pub fn numbered(n: usize) -> Self {
        let names: Vec<String> = (4..n).map(|i| format!("w{i}")).collect();
        Self::build(names.iter().map(|s| s.as_str()))
    }
}

impl WordVocab {
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        text.split_whitespace()
            .map(|w| {
                if w == "FAIL" {
                    Err(VocabError::Other("test vocabulary refuses FAIL".into()))
                } else {
                    Ok(self.ids.get(w).copied().unwrap_or(UNK_ID))
                }
            })
            .collect()
    }

    /// Words of `ids`, specials skipped, joined by spaces.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter(|&&i| i > 3)
            .map(|&i| {
                self.words
                    .get(i as usize)
                    .map(|s| s.as_str())
                    .unwrap_or("<unk>")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl SentenceEncoder for WordVocab {
    fn vocab_len(&self) -> usize {
        self.len()
    }

    fn encode_sentence(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        self.encode(text)
    }
}

/// `shared/data/REL` beside the repository. Panics, saying why, when it is
/// not there: only tests marked
/// `#[ignore = "needs ../shared/data (the project's corpora)"]` call this, and
/// `make test` runs them when the corpora are there.
pub fn shared(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(rel);
    assert!(
        p.exists(),
        "this test needs ../shared/data (the project's corpora), and {} is absent",
        p.display()
    );
    p
}

/// The de–en corpus of Multi30k split `split` (`train`, `valid` or `test`) in the shared data
/// (see [`shared`]), and its pairs read with the default options.
pub fn multi30k(split: &str) -> (CorpusSpec, RawPairs) {
    let spec = CorpusSpec::prefix(shared("multi30k").join(split), "de", "en");
    let (raw, _) = RawPairs::read(&spec, &ReadOptions::default()).unwrap();
    (spec, raw)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A new temporary folder holding a source and a target file, each given as `(name,
/// contents)`; returns the folder and the two paths.
pub fn pair_files(
    src: (&str, impl AsRef<[u8]>),
    tgt: (&str, impl AsRef<[u8]>),
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), src.0, src.1);
    let tgt = write(dir.path(), tgt.0, tgt.1);
    (dir, src, tgt)
}

/// Lines of a file without the final newline.
pub fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|s| s.to_string())
        .collect()
}

/// The source ids of row `r` of `batch`, up to (without) its EOS.
pub fn source_ids(batch: &training::data::Batch, r: usize) -> Vec<u32> {
    let row = &batch.src[r * batch.src_len..(r + 1) * batch.src_len];
    row.iter()
        .take_while(|&&x| x != vocab::EOS_ID as i64)
        .map(|&x| x as u32)
        .collect()
}
