//! Training Unigram or BPE vocabularies from raw text with `tokenizers`.
//!
//! Text goes through the same normalizer and word splitting as encoding (see
//! [`crate::hf`]); word counts are taken once and handed to the trainers.
//!
//! Training is deterministic: the same lines and [`TrainConfig`] give the same pieces with
//! the same ids and scores, byte for byte in `tokenizer.json`, on any machine and in any
//! process, so two runs of one config share their vocabulary (checkpoint averaging and
//! ensembles need that). `tokenizers`' Unigram trainer alone is not: see [`on_one_thread`]
//! and [`canonical_unigram`].

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;

use rayon::prelude::*;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::{
    AddedToken, ModelWrapper, NormalizedString, Normalizer, OffsetReferential, OffsetType,
    PreTokenizedString, PreTokenizer,
};

use crate::hf::{metaspace, normalizer, HfVocab, METASPACE};
use crate::special::{NUM_SPECIAL, SPECIAL_PIECES, UNK_ID};
use crate::VocabError;

/// Which subword algorithm to train: the one spelling of it, for `nmt-vocab train --model`
/// (see [`crate::cli`]) and a training config's `vocab.kind` (serde: `unigram`, `bpe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// SentencePiece-style unigram language model (Kudo 2018).
    #[default]
    Unigram,
    /// Byte-pair encoding over characters (Sennrich et al. 2016).
    Bpe,
}

/// Training options.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Subword algorithm.
    pub model: ModelType,
    /// Ids in the result, the 4 special ones included. The result has exactly
    /// this many unless the text is too small to give them.
    pub vocab_size: usize,
    /// BPE: a merge needs a pair seen at least this often. Unigram: words
    /// (space-separated) seen fewer times are left out of training (their
    /// characters still count). 0 and 1 keep everything.
    pub min_frequency: u64,
    /// Fraction of character occurrences the alphabet must cover, in (0, 1],
    /// as SentencePiece's `--character_coverage`: the rarest characters making
    /// up the remaining mass are dropped and encode as unk. Control characters
    /// are always dropped.
    pub character_coverage: f64,
    /// Longest piece, in characters.
    pub max_piece_length: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelType::Unigram,
            vocab_size: 8000,
            min_frequency: 2,
            character_coverage: 1.0,
            max_piece_length: 16,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), VocabError> {
        let min = NUM_SPECIAL as usize + 1;
        if self.vocab_size < min {
            return Err(VocabError::Train(format!(
                "vocabulary size {} is below the minimum of {min} (4 special ids + 1)",
                self.vocab_size
            )));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(VocabError::Train(format!(
                "vocabulary size {} does not fit in u32 ids",
                self.vocab_size
            )));
        }
        if !(self.character_coverage > 0.0 && self.character_coverage <= 1.0) {
            return Err(VocabError::Train(format!(
                "character coverage {} is outside (0, 1]",
                self.character_coverage
            )));
        }
        if self.max_piece_length == 0 {
            return Err(VocabError::Train(
                "max piece length must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Trains one vocabulary on the lines of all `inputs` together (a joint
/// vocabulary when given both sides of a corpus; call once per file for
/// separate ones). Files must be UTF-8; a bad line is an error naming file
/// and line.
pub fn train_files<P: AsRef<Path>>(
    config: &TrainConfig,
    inputs: &[P],
) -> Result<HfVocab, VocabError> {
    config.validate()?;
    if inputs.is_empty() {
        return Err(VocabError::Train("no input files".into()));
    }
    let mut counter = WordCounter::new()?;
    for input in inputs {
        let path = input.as_ref();
        let file = std::fs::File::open(path).map_err(|e| VocabError::io(path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut buf = Vec::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| VocabError::io(path, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let line =
                String::from_utf8(std::mem::take(&mut buf)).map_err(|e| VocabError::Input {
                    path: path.display().to_string(),
                    line: line_no,
                    message: format!("not valid UTF-8 ({})", e.utf8_error()),
                })?;
            chunk.push(line);
            if chunk.len() == CHUNK {
                counter.add(&chunk)?;
                chunk.clear();
            }
        }
        counter.add(&chunk)?;
    }
    counter.train(config)
}

/// Trains one vocabulary on in-memory lines.
pub fn train_lines<I, S>(config: &TrainConfig, lines: I) -> Result<HfVocab, VocabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    config.validate()?;
    let mut counter = WordCounter::new()?;
    let mut chunk = Vec::with_capacity(CHUNK);
    for line in lines {
        chunk.push(line.as_ref().to_string());
        if chunk.len() == CHUNK {
            counter.add(&chunk)?;
            chunk.clear();
        }
    }
    counter.add(&chunk)?;
    counter.train(config)
}

/// Lines normalized and split per batch, in parallel.
const CHUNK: usize = 16_384;

/// Counts of `▁`-prefixed words, exactly as encoding will see them.
struct WordCounter {
    normalizer: tokenizers::NormalizerWrapper,
    words: HashMap<String, u64>,
}

impl WordCounter {
    fn new() -> Result<Self, VocabError> {
        Ok(WordCounter {
            normalizer: normalizer()?,
            words: HashMap::new(),
        })
    }

    fn add(&mut self, lines: &[String]) -> Result<(), VocabError> {
        let normalizer = &self.normalizer;
        let splitter = metaspace();
        let counts = lines
            .par_iter()
            .try_fold(HashMap::new, |mut counts: HashMap<String, u64>, line| {
                let mut normalized = NormalizedString::from(line.as_str());
                normalizer.normalize(&mut normalized)?;
                let mut words = PreTokenizedString::from(normalized);
                splitter.pre_tokenize(&mut words)?;
                for (word, _, _) in
                    words.get_splits(OffsetReferential::Normalized, OffsetType::Byte)
                {
                    if let Some(n) = counts.get_mut(word) {
                        *n += 1;
                    } else {
                        counts.insert(word.to_string(), 1);
                    }
                }
                Ok::<_, tokenizers::Error>(counts)
            })
            .try_reduce(HashMap::new, |mut a, b| {
                for (w, n) in b {
                    *a.entry(w).or_default() += n;
                }
                Ok(a)
            })
            .map_err(|e| VocabError::Train(format!("splitting text into words: {e}")))?;
        for (w, n) in counts {
            *self.words.entry(w).or_default() += n;
        }
        Ok(())
    }

    fn train(self, config: &TrainConfig) -> Result<HfVocab, VocabError> {
        if self.words.is_empty() {
            return Err(VocabError::Train("the input holds no text".into()));
        }
        let alphabet = alphabet(&self.words, config.character_coverage);
        let max_chars = config.vocab_size - NUM_SPECIAL as usize;
        if alphabet.len() > max_chars {
            return Err(VocabError::Train(format!(
                "vocabulary size {} is too small for the {} characters kept at coverage {}: \
                 raise the vocabulary size to at least {} or lower the character coverage",
                config.vocab_size,
                alphabet.len(),
                config.character_coverage,
                alphabet.len() + NUM_SPECIAL as usize
            )));
        }
        let words = split_at_dropped(self.words, &alphabet);
        let specials: Vec<AddedToken> = SPECIAL_PIECES
            .iter()
            .map(|p| AddedToken::from(p.to_string(), true))
            .collect();
        let lib = |e: tokenizers::Error| VocabError::Train(e.to_string());
        let model = match config.model {
            ModelType::Unigram => {
                // Sorted so that training sees the words in a fixed order.
                let mut sentences: Vec<(String, u32)> = words
                    .into_iter()
                    .filter(|(_, n)| *n >= config.min_frequency)
                    .map(|(w, n)| (w, n.min(u32::MAX as u64) as u32))
                    .collect();
                sentences.sort_unstable();
                let trainer = UnigramTrainer::builder()
                    .show_progress(false)
                    .vocab_size(config.vocab_size as u32)
                    .special_tokens(specials)
                    .unk_token(Some(SPECIAL_PIECES[UNK_ID as usize].to_string()))
                    .max_piece_length(config.max_piece_length)
                    .initial_alphabet(alphabet.iter().copied().collect())
                    .build()
                    .map_err(|e| VocabError::Train(e.to_string()))?;
                let mut model = Unigram::default();
                on_one_thread(|| trainer.do_train(sentences, &mut model))?.map_err(lib)?;
                ModelWrapper::Unigram(canonical_unigram(&model)?)
            }
            ModelType::Bpe => {
                let trainer = BpeTrainer::builder()
                    .show_progress(false)
                    .vocab_size(config.vocab_size)
                    .min_frequency(config.min_frequency)
                    .special_tokens(specials)
                    .initial_alphabet(alphabet.iter().copied().collect())
                    .max_token_length(Some(config.max_piece_length))
                    .build();
                let counts = words
                    .into_iter()
                    .map(|(w, n)| (compact_str::CompactString::from(w), n))
                    .collect();
                let mut model = BPE::builder()
                    .unk_token(SPECIAL_PIECES[UNK_ID as usize].to_string())
                    .fuse_unk(true)
                    .build()
                    .map_err(lib)?;
                trainer.do_train(&counts, &mut model).map_err(lib)?;
                ModelWrapper::BPE(model)
            }
        };
        HfVocab::from_model(model)
    }
}

/// The characters kept: most frequent first until `coverage` of all
/// character occurrences is reached; `▁` always, control characters never.
fn alphabet(words: &HashMap<String, u64>, coverage: f64) -> BTreeSet<char> {
    let mut counts: HashMap<char, u64> = HashMap::new();
    for (word, n) in words {
        for c in word.chars() {
            *counts.entry(c).or_default() += n;
        }
    }
    let mut by_count: Vec<(char, u64)> = counts
        .into_iter()
        .filter(|(c, _)| !c.is_control())
        .collect();
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = by_count.iter().map(|(_, n)| n).sum();
    let mut kept = BTreeSet::new();
    kept.insert(METASPACE);
    let mut covered = 0u64;
    for (c, n) in by_count {
        if coverage < 1.0 && covered as f64 >= coverage * total as f64 {
            break;
        }
        covered += n;
        kept.insert(c);
    }
    kept
}

/// Cuts words at characters outside `alphabet` (as SentencePiece's trainer
/// does), so dropped characters never reach the model and encode as unk.
fn split_at_dropped(
    words: HashMap<String, u64>,
    alphabet: &BTreeSet<char>,
) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::with_capacity(words.len());
    for (word, n) in words {
        if word.chars().all(|c| alphabet.contains(&c)) {
            *out.entry(word).or_default() += n;
            continue;
        }
        for part in word.split(|c: char| !alphabet.contains(&c)) {
            if !part.is_empty() {
                *out.entry(part.to_string()).or_default() += n;
            }
        }
    }
    out
}

/// Runs `train` in a rayon pool of one thread. `tokenizers`' Unigram trainer cuts its E-step
/// and its pruning pass into one chunk per thread of the current pool and adds up their
/// floating-point partial sums, so with more threads the scores (and then which pieces
/// survive a near-tie) would depend on the machine's core count. A pool of its own rather
/// than `tokenizers`' process-wide parallelism switch: that switch would also serialize
/// other threads' work, and two trainings at once would race to set and restore it. The
/// cost is small: the words are counted in parallel before (`WordCounter::add`).
fn on_one_thread<T: Send>(train: impl FnOnce() -> T + Send) -> Result<T, VocabError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| VocabError::Train(format!("starting the training thread: {e}")))?;
    Ok(pool.install(train))
}

/// The score step `tokenizers`' Unigram trainer adds between the required characters it
/// inserts at the end of training (`min_score_penalty_delta` in its `finalize`).
const INSERTED_CHAR_STEP: f64 = 0.0001;

/// `model` with its hash-order choices made canonical. The last step of `tokenizers`'
/// Unigram trainer (`finalize`) walks a hash set, randomly ordered per process, of the
/// characters every vocabulary must hold; those that training dropped (seen only in words
/// under `min_frequency`, or always inside a longer piece) get the scores `min`, `min + s`,
/// `min + 2s`, ... in that walk's order (`min` the lowest score, `s` =
/// [`INSERTED_CHAR_STEP`]). It then sorts the pieces by score, ties left in the walk's
/// order too. Both are permutations: the pieces and the multiset of scores are the same
/// every time, only which character gets which of those scores, and the ids of tied pieces,
/// change. So: the single characters holding the scores of that sequence get them again in
/// code-point order (lowest score first), and the pieces are ordered by score, then by
/// text. Both depend only on what every run shares.
fn canonical_unigram(model: &Unigram) -> Result<Unigram, VocabError> {
    let all: Vec<(String, f64)> = model.iter().cloned().collect();
    let (specials, pieces) = all.split_at((NUM_SPECIAL as usize).min(all.len()));
    let mut pieces = pieces.to_vec();
    let lowest = pieces
        .iter()
        .map(|(_, score)| *score)
        .fold(f64::INFINITY, f64::min);
    let single_chars: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].0.chars().count() == 1)
        .collect();
    // The scores the trainer hands out, computed as it does (`min + penalty`, the penalty
    // growing by one step at a time), for as long as some single character holds one.
    let mut inserted_scores = Vec::new();
    let mut penalty = 0.0;
    loop {
        let score = lowest + penalty;
        if !single_chars.iter().any(|&i| pieces[i].1 == score) {
            break;
        }
        inserted_scores.push(score);
        penalty += INSERTED_CHAR_STEP;
    }
    let mut holders: Vec<usize> = single_chars
        .into_iter()
        .filter(|&i| inserted_scores.contains(&pieces[i].1))
        .collect();
    let mut scores: Vec<f64> = holders.iter().map(|&i| pieces[i].1).collect();
    scores.sort_by(f64::total_cmp);
    holders.sort_by(|&a, &b| pieces[a].0.cmp(&pieces[b].0));
    for (i, score) in holders.into_iter().zip(scores) {
        pieces[i].1 = score;
    }
    pieces.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let vocab = specials.iter().cloned().chain(pieces).collect();
    Unigram::from(vocab, Some(UNK_ID as usize), model.byte_fallback())
        .map_err(|e| VocabError::Train(e.to_string()))
}
