//! Compact storage of an encoded parallel corpus.
//!
//! Each side is a [`TokenColumn`]: all sentences' subword ids in one flat
//! array plus one offset per sentence. Ids are stored as `u16` when the
//! side's vocabulary has at most 65,536 entries (every usual NMT vocabulary:
//! fairseq IWSLT14 ~10K, WMT14 32K-40K), else as `u32`. For a WMT14-sized
//! corpus (4.5M pairs, ~27 tokens per side) that is ~0.5 GB of ids with
//! `u16` (~1 GB with `u32`), where `Vec<Vec<u32>>` would add 24 bytes of
//! header plus allocator overhead per sentence. Bos/eos are not stored:
//! [`crate::data::batch`] adds them when it pads.

use rayon::prelude::*;
use vocab::{Vocab, VocabError};

use crate::data::error::{DataError, Origin, Report, Side};
use crate::data::filter::LengthFilter;
use crate::data::readers::{CorpusSpec, Pair, PairReader, RawPairs, ReadOptions};

/// What the corpus pipeline needs from a vocabulary: its size and
/// `encode`. Every [`vocab::Vocab`] is one (pass `&*boxed` for a
/// `Box<dyn Vocab>`); the narrow trait lets tests and benchmarks use tiny
/// stand-in vocabularies without implementing the whole `Vocab` interface.
pub trait SentenceEncoder: Sync {
    /// Number of ids, special tokens included ([`vocab::Vocab::len`]).
    fn vocab_len(&self) -> usize;
    /// Subword ids of `text` without bos/eos ([`vocab::Vocab::encode`]).
    fn encode_sentence(&self, text: &str) -> Result<Vec<u32>, VocabError>;
}

impl<V: Vocab + ?Sized> SentenceEncoder for V {
    fn vocab_len(&self) -> usize {
        self.len()
    }
    fn encode_sentence(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        self.encode(text)
    }
}

/// How wide a stored id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdWidth {
    U16,
    U32,
}

impl IdWidth {
    /// `U16` when every id of a vocabulary of `vocab_len` entries fits.
    pub fn for_vocab_len(vocab_len: usize) -> IdWidth {
        if vocab_len <= 1 << 16 {
            IdWidth::U16
        } else {
            IdWidth::U32
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ids {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// The ids of one stored sentence, borrowed from a [`TokenColumn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenIds<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl<'a> TokenIds<'a> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        match self {
            TokenIds::U16(s) => s.len(),
            TokenIds::U32(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        let (a, b): (&'a [u16], &'a [u32]) = match *self {
            TokenIds::U16(s) => (s, &[]),
            TokenIds::U32(s) => (&[], s),
        };
        // One of the two is empty; chaining keeps a single concrete type.
        ChainExact {
            a: a.iter(),
            b: b.iter(),
        }
    }

    /// The ids as `u32`s.
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

/// `Iterator::chain` is not `ExactSizeIterator`; this one is, for two
/// slices of different id widths of which one is empty.
struct ChainExact<'a> {
    a: std::slice::Iter<'a, u16>,
    b: std::slice::Iter<'a, u32>,
}

impl Iterator for ChainExact<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        match self.a.next() {
            Some(&x) => Some(u32::from(x)),
            None => self.b.next().copied(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.a.len() + self.b.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for ChainExact<'_> {}

/// All sentences of one side: flat ids plus offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenColumn {
    ids: Ids,
    /// `offsets[i]..offsets[i + 1]` are sentence `i`'s ids; `len() + 1`
    /// entries.
    offsets: Vec<u64>,
}

impl TokenColumn {
    /// An empty column storing ids with `width`.
    pub fn new(width: IdWidth) -> Self {
        TokenColumn {
            ids: match width {
                IdWidth::U16 => Ids::U16(Vec::new()),
                IdWidth::U32 => Ids::U32(Vec::new()),
            },
            offsets: vec![0],
        }
    }

    /// The storage width.
    pub fn width(&self) -> IdWidth {
        match self.ids {
            Ids::U16(_) => IdWidth::U16,
            Ids::U32(_) => IdWidth::U32,
        }
    }

    /// Appends one sentence; fails if an id does not fit the width.
    pub fn push(&mut self, ids: &[u32]) -> Result<(), DataError> {
        match &mut self.ids {
            Ids::U16(v) => {
                for &id in ids {
                    let narrow = u16::try_from(id).map_err(|_| {
                        DataError::Invalid(format!(
                            "token id {id} does not fit the 16-bit storage chosen for this side"
                        ))
                    })?;
                    v.push(narrow);
                }
                self.offsets.push(v.len() as u64);
            }
            Ids::U32(v) => {
                v.extend_from_slice(ids);
                self.offsets.push(v.len() as u64);
            }
        }
        Ok(())
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of stored tokens.
    pub fn num_tokens(&self) -> usize {
        self.offsets[self.len()] as usize
    }

    /// Token count of sentence `i`.
    pub fn seq_len(&self, i: usize) -> usize {
        (self.offsets[i + 1] - self.offsets[i]) as usize
    }

    /// Sentence `i`'s ids; panics if `i >= len()` like slice indexing.
    pub fn get(&self, i: usize) -> TokenIds<'_> {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        match &self.ids {
            Ids::U16(v) => TokenIds::U16(&v[a..b]),
            Ids::U32(v) => TokenIds::U32(&v[a..b]),
        }
    }

    /// Bytes of heap this column holds (capacity, not just length).
    pub fn heap_bytes(&self) -> usize {
        let ids = match &self.ids {
            Ids::U16(v) => v.capacity() * 2,
            Ids::U32(v) => v.capacity() * 4,
        };
        ids + self.offsets.capacity() * 8
    }

    fn shrink_to_fit(&mut self) {
        match &mut self.ids {
            Ids::U16(v) => v.shrink_to_fit(),
            Ids::U32(v) => v.shrink_to_fit(),
        }
        self.offsets.shrink_to_fit();
    }
}

/// `sha256:<hex>` of what `hasher` was fed: how the data fingerprints and a fine-tuning
/// run's parent (`crate::init_from`) name content.
pub(crate) fn sha256_tag(hasher: sha2::Sha256) -> String {
    use sha2::Digest;
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// An encoded parallel corpus: two [`TokenColumn`]s of equal length. Pair
/// `i` (its "index", what [`crate::data::Batch::indices`] holds) is
/// `(src(i), tgt(i))`; [`EncodedCorpus::number`] maps it back to its
/// position in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedCorpus {
    src: TokenColumn,
    tgt: TokenColumn,
    numbers: Vec<u64>,
}

/// How many pairs are encoded in parallel at a time when streaming: large
/// enough to keep every core busy, small enough to be negligible in memory.
const CHUNK: usize = 1 << 15;

type Encoded = Result<(Vec<u32>, Vec<u32>), (Side, VocabError)>;

fn encode_pair<S, T>(src: &str, tgt: &str, sv: &S, tv: &T) -> Encoded
where
    S: SentenceEncoder + ?Sized,
    T: SentenceEncoder + ?Sized,
{
    let s = sv.encode_sentence(src).map_err(|e| (Side::Source, e))?;
    let t = tv.encode_sentence(tgt).map_err(|e| (Side::Target, e))?;
    Ok((s, t))
}

impl TokenColumn {
    /// Feeds the column to `hasher` in a form independent of the id width
    /// (u16 and u32 storage of the same ids hash alike).
    fn hash_into(&self, hasher: &mut sha2::Sha256) {
        use sha2::Digest;
        hasher.update((self.len() as u64).to_le_bytes());
        for i in 0..self.len() {
            hasher.update((self.seq_len(i) as u32).to_le_bytes());
            match self.get(i) {
                TokenIds::U16(ids) => ids
                    .iter()
                    .for_each(|&id| hasher.update(u32::from(id).to_le_bytes())),
                TokenIds::U32(ids) => ids.iter().for_each(|&id| hasher.update(id.to_le_bytes())),
            }
        }
    }
}

impl EncodedCorpus {
    /// `sha256:<hex>` of the encoded pairs in order (source and target ids
    /// after filtering): two runs trained on the same data with the same
    /// vocabulary have the same fingerprint, which bundles record.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        self.src.hash_into(&mut hasher);
        self.tgt.hash_into(&mut hasher);
        sha256_tag(hasher)
    }

    /// Reads and encodes a corpus in one streaming pass: text is read and
    /// encoded chunk by chunk on all cores (order kept), so only the
    /// compact ids stay in memory. The report counts skipped and filtered
    /// pairs.
    pub fn read<S, T>(
        spec: &CorpusSpec,
        opts: &ReadOptions,
        src_vocab: &S,
        tgt_vocab: &T,
        filter: &LengthFilter,
    ) -> Result<(EncodedCorpus, Report), DataError>
    where
        S: SentenceEncoder + ?Sized,
        T: SentenceEncoder + ?Sized,
    {
        filter.validate()?;
        let mut reader = PairReader::open(spec, opts)?;
        let mut builder = CorpusBuilder::for_vocabs(src_vocab, tgt_vocab);
        let mut filtered = Report::default();
        let mut kept_per_part = vec![0u64; spec.parts.len()];
        let mut chunk: Vec<Pair> = Vec::with_capacity(CHUNK);
        loop {
            chunk.clear();
            for pair in reader.by_ref().take(CHUNK) {
                chunk.push(pair?);
            }
            if chunk.is_empty() {
                break;
            }
            let encoded: Vec<Encoded> = chunk
                .par_iter()
                .map(|p| encode_pair(&p.src, &p.tgt, src_vocab, tgt_vocab))
                .collect();
            for (pair, enc) in chunk.iter().zip(encoded) {
                let (s, t) = enc.map_err(|(side, source)| DataError::Encode {
                    at: reader.locate(&pair.origin, side),
                    side,
                    source,
                })?;
                let before = builder.len();
                builder.push_filtered(&s, &t, pair.origin.number, filter, &mut filtered)?;
                if builder.len() > before {
                    kept_per_part[pair.origin.part as usize] += 1;
                }
            }
        }
        let mut report = reader.report().clone();
        report.filtered = filtered.filtered;
        report.kept_per_part = kept_per_part;
        report.pairs_kept = builder.len() as u64;
        Ok((builder.finish(), report))
    }

    /// Encodes pairs already read into memory (on all cores, order kept).
    /// The report's `pairs_seen` is `raw.len()`.
    pub fn encode<S, T>(
        raw: &RawPairs,
        src_vocab: &S,
        tgt_vocab: &T,
        filter: &LengthFilter,
    ) -> Result<(EncodedCorpus, Report), DataError>
    where
        S: SentenceEncoder + ?Sized,
        T: SentenceEncoder + ?Sized,
    {
        filter.validate()?;
        let mut builder = CorpusBuilder::for_vocabs(src_vocab, tgt_vocab);
        let mut report = Report {
            pairs_seen: raw.len() as u64,
            ..Report::default()
        };
        for start in (0..raw.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(raw.len());
            let encoded: Vec<Encoded> = (start..end)
                .into_par_iter()
                .map(|i| {
                    let (s, t) = raw.get(i);
                    encode_pair(s, t, src_vocab, tgt_vocab)
                })
                .collect();
            for (i, enc) in (start..end).zip(encoded) {
                let (s, t) = enc.map_err(|(side, source)| DataError::Encode {
                    at: raw.locate(i, side),
                    side,
                    source,
                })?;
                builder.push_filtered(&s, &t, raw.origins[i].number, filter, &mut report)?;
            }
        }
        report.pairs_kept = builder.len() as u64;
        Ok((builder.finish(), report))
    }

    /// A source-only corpus for translation: every input line becomes one
    /// pair with an empty target, nothing is filtered, and pair `i` is
    /// input line `i` (0-based). Errors name `name` and the 1-based line.
    pub fn encode_sources<L, V>(
        name: &str,
        lines: &[L],
        vocab: &V,
    ) -> Result<EncodedCorpus, DataError>
    where
        L: AsRef<str> + Sync,
        V: SentenceEncoder + ?Sized,
    {
        let mut src = TokenColumn::new(IdWidth::for_vocab_len(vocab.vocab_len()));
        let mut tgt = TokenColumn::new(IdWidth::U16);
        for start in (0..lines.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(lines.len());
            let encoded: Vec<Result<Vec<u32>, VocabError>> = lines[start..end]
                .par_iter()
                .map(|l| vocab.encode_sentence(l.as_ref()))
                .collect();
            for (i, enc) in (start..end).zip(encoded) {
                let ids = enc.map_err(|source| DataError::Encode {
                    at: Origin {
                        path: name.into(),
                        line: i as u64 + 1,
                    },
                    side: Side::Source,
                    source,
                })?;
                src.push(&ids)?;
                tgt.push(&[])?;
            }
        }
        let numbers = (0..lines.len() as u64).collect();
        src.shrink_to_fit();
        Ok(EncodedCorpus { src, tgt, numbers })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Source ids of pair `i` (no bos/eos).
    pub fn src(&self, i: usize) -> TokenIds<'_> {
        self.src.get(i)
    }

    /// Target ids of pair `i` (no bos/eos).
    pub fn tgt(&self, i: usize) -> TokenIds<'_> {
        self.tgt.get(i)
    }

    /// The source column.
    pub fn src_column(&self) -> &TokenColumn {
        &self.src
    }

    /// The target column.
    pub fn tgt_column(&self) -> &TokenColumn {
        &self.tgt
    }

    /// Position of pair `i` in the input ([`crate::data::PairOrigin::number`]): differs
    /// from `i` once pairs were skipped or filtered.
    pub fn number(&self, i: usize) -> u64 {
        self.numbers[i]
    }

    /// Heap bytes held by the corpus.
    pub fn heap_bytes(&self) -> usize {
        self.src.heap_bytes() + self.tgt.heap_bytes() + self.numbers.capacity() * 8
    }
}

/// Builds an [`EncodedCorpus`] pair by pair (used by the readers, and by
/// callers that already have ids, such as benchmarks).
#[derive(Debug, Clone)]
pub struct CorpusBuilder {
    src: TokenColumn,
    tgt: TokenColumn,
    numbers: Vec<u64>,
    src_vocab_len: usize,
    tgt_vocab_len: usize,
}

impl CorpusBuilder {
    /// A builder whose id widths suit the two vocabularies; ids are checked
    /// against the vocabulary sizes.
    pub fn for_vocabs<S, T>(src_vocab: &S, tgt_vocab: &T) -> Self
    where
        S: SentenceEncoder + ?Sized,
        T: SentenceEncoder + ?Sized,
    {
        Self::with_vocab_lens(src_vocab.vocab_len(), tgt_vocab.vocab_len())
    }

    /// Same as [`CorpusBuilder::for_vocabs`] from vocabulary sizes.
    pub fn with_vocab_lens(src_vocab_len: usize, tgt_vocab_len: usize) -> Self {
        CorpusBuilder {
            src: TokenColumn::new(IdWidth::for_vocab_len(src_vocab_len)),
            tgt: TokenColumn::new(IdWidth::for_vocab_len(tgt_vocab_len)),
            numbers: Vec::new(),
            src_vocab_len,
            tgt_vocab_len,
        }
    }

    /// Number of pairs so far.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Appends a pair (ids without bos/eos); `number` is its input position.
    pub fn push(&mut self, src: &[u32], tgt: &[u32], number: u64) -> Result<(), DataError> {
        for (side, ids, n) in [
            (Side::Source, src, self.src_vocab_len),
            (Side::Target, tgt, self.tgt_vocab_len),
        ] {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= n) {
                return Err(DataError::Invalid(format!(
                    "pair {number}: {side} token id {bad} is outside the vocabulary of {n} entries"
                )));
            }
        }
        self.src.push(src)?;
        self.tgt.push(tgt)?;
        self.numbers.push(number);
        Ok(())
    }

    /// Appends the pair if `filter` keeps it, else counts it in `report`.
    pub fn push_filtered(
        &mut self,
        src: &[u32],
        tgt: &[u32],
        number: u64,
        filter: &LengthFilter,
        report: &mut Report,
    ) -> Result<(), DataError> {
        match filter.check(src.len(), tgt.len()) {
            Some(reason) => {
                report.filter(reason);
                Ok(())
            }
            None => self.push(src, tgt, number),
        }
    }

    /// The finished corpus, with spare capacity released.
    pub fn finish(mut self) -> EncodedCorpus {
        self.src.shrink_to_fit();
        self.tgt.shrink_to_fit();
        self.numbers.shrink_to_fit();
        EncodedCorpus {
            src: self.src,
            tgt: self.tgt,
            numbers: self.numbers,
        }
    }
}

/// Puts items tagged with corpus indices back in index order, e.g.
/// translations produced batch by batch: `items` must hold each index in
/// `0..n` exactly once.
pub fn restore_order<T>(
    n: usize,
    items: impl IntoIterator<Item = (usize, T)>,
) -> Result<Vec<T>, DataError> {
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, item) in items {
        let slot = slots.get_mut(i).ok_or_else(|| {
            DataError::Invalid(format!("restore_order: index {i} is outside 0..{n}"))
        })?;
        if slot.replace(item).is_some() {
            return Err(DataError::Invalid(format!(
                "restore_order: index {i} given twice"
            )));
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.ok_or_else(|| DataError::Invalid(format!("restore_order: index {i} missing")))
        })
        .collect()
}
