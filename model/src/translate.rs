//! Text in, text out: encode with the source vocabulary, batch by length,
//! beam search, decode with the target vocabulary, restore input order.
//! Shared by `nmt-translate`, `nmt-eval translate` and `nmt-serve`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use tch::{Device, Kind, Tensor};

use crate::beam::{beam_search, BeamOptions, UnkPolicy};
use crate::bundle::Bundle;
use crate::error::ModelError;
use crate::search::Hypothesis;
use crate::seq2seq::Seq2Seq;

/// Shown for the EOS the source carries (the training pipeline appends one).
pub const SOURCE_EOS_PIECE: &str = "</s>";

/// How to translate.
#[derive(Clone, Debug)]
pub struct TranslateOptions {
    /// Search settings. `beam.keep_attention` is decided by [`translate`] itself, whatever
    /// it holds here: attention is kept exactly when `return_attention` or
    /// [`UnkPolicy::Replace`] needs it (copying it to the host costs time every step).
    pub beam: BeamOptions,
    /// Padded source positions per batch (`max source length × sentences`).
    pub max_tokens: usize,
    /// Sentences per batch.
    pub max_sentences: usize,
    /// Longer sources are cut to this many subword tokens (with a warning flag in the result).
    pub max_source_tokens: usize,
    /// Keep attention weights and token pieces in the result.
    pub return_attention: bool,
    /// Batches decoded side by side on the CPU, each by its own thread with its own
    /// share of libtorch's intra-op threads (all of them reading the same weights). On a
    /// few cores this beats one batch at a time with every thread on each small
    /// operation (no wake-ups and joins between threads at every operation). 1 decodes
    /// one batch at a time; ignored off the CPU.
    pub workers: usize,
    /// Translate each text sentence by sentence ([`crate::sentences`]): cut at line breaks
    /// and sentence ends, a sentence longer than `max_source_tokens` cut at clause
    /// punctuation or between words, the pieces batched like any other, the translations
    /// joined with the text's own spacing, line breaks and blank lines. A text's `score` is
    /// then the sum over its sentences, and its k-th alternative joins each sentence's k-th
    /// (or best) one. Ignored with `return_attention`, whose matrix is one text's.
    pub split_sentences: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        Self {
            beam: BeamOptions::default(),
            max_tokens: 6000,
            max_sentences: 128,
            max_source_tokens: 250,
            return_attention: false,
            workers: 1,
            split_sentences: false,
        }
    }
}

/// Another hypothesis from the n-best list.
#[derive(Clone, Debug, PartialEq)]
pub struct Alternative {
    pub text: String,
    /// Log-probability of the output under the model.
    pub score: f64,
    /// What the n-best list is sorted by (see [`Translation::ranking_score`]).
    pub ranking_score: f64,
}

/// The translation of one input line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    pub text: String,
    /// Log-probability of the output under the model (0 for empty input).
    pub score: f64,
    /// What the n-best list is sorted by: beam search's length-normalised (and
    /// coverage-penalised) score, greedy search's log-probability (0 for empty input).
    pub ranking_score: f64,
    /// The rest of the n-best list, best first.
    pub alternatives: Vec<Alternative>,
    /// The source was longer than `max_source_tokens` and was cut.
    pub truncated: bool,
    /// Source pieces (with the final `</s>`), when attention was asked for.
    pub source_tokens: Vec<String>,
    /// Target pieces, when attention was asked for.
    pub target_tokens: Vec<String>,
    /// `[target_tokens][source_tokens]`, when asked for.
    pub attention: Vec<Vec<f32>>,
}

/// Translates `texts` with `bundle`; `progress` is called with the number of
/// texts finished after each batch.
pub fn translate(
    bundle: &Bundle,
    texts: &[String],
    opts: &TranslateOptions,
    progress: impl FnMut(usize),
) -> Result<Vec<Translation>, ModelError> {
    if opts.split_sentences && !opts.return_attention {
        translate_by_sentence(bundle, texts, opts, progress)
    } else {
        translate_whole(bundle, texts, opts, progress)
    }
}

/// Where a translated text's pieces come from: its gaps verbatim, its sentences from the
/// translated units (a sentence cut to fit is several).
enum Slot {
    Gap(String),
    Units(std::ops::Range<usize>),
}

/// [`translate`] with `split_sentences`: every sentence of every text (cut to fit) is one
/// unit of [`translate_whole`], and each text is put back together from its units.
fn translate_by_sentence(
    bundle: &Bundle,
    texts: &[String],
    opts: &TranslateOptions,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Translation>, ModelError> {
    let lang = bundle.config.src_lang.as_str();
    let count = |t: &str| -> Result<usize, ModelError> { Ok(bundle.src_vocab.encode(t)?.len()) };
    let mut units: Vec<String> = Vec::new();
    let mut layouts: Vec<Vec<Slot>> = Vec::with_capacity(texts.len());
    for text in texts {
        let mut slots = Vec::new();
        for piece in crate::sentences::split(lang, text) {
            match piece {
                crate::sentences::Piece::Gap(g) => slots.push(Slot::Gap(g)),
                crate::sentences::Piece::Sentence(s) => {
                    let first = units.len();
                    units.extend(crate::sentences::fit(&s, opts.max_source_tokens, &count)?);
                    slots.push(Slot::Units(first..units.len()));
                }
            }
        }
        layouts.push(slots);
    }
    // Texts finished, reported in proportion to the units done (units finish in length
    // order, not text by text).
    let (total, mut done, mut reported) = (units.len().max(1), 0usize, 0usize);
    let whole = TranslateOptions {
        split_sentences: false,
        ..opts.clone()
    };
    let translated = translate_whole(bundle, &units, &whole, |n| {
        done += n;
        let texts_done = done * texts.len() / total;
        if texts_done > reported {
            progress(texts_done - reported);
            reported = texts_done;
        }
    })?;
    if reported < texts.len() {
        progress(texts.len() - reported);
    }
    Ok(layouts
        .into_iter()
        .map(|slots| assemble(&slots, &translated))
        .collect())
}

/// One text from its slots: gaps as they were, each sentence's units joined with a space.
/// A text without a sentence translates to nothing, as an empty text does.
fn assemble(slots: &[Slot], units: &[Translation]) -> Translation {
    let ranges: Vec<&std::ops::Range<usize>> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Units(r) => Some(r),
            Slot::Gap(_) => None,
        })
        .collect();
    if ranges.is_empty() {
        return Translation::default();
    }
    let used = || ranges.iter().flat_map(|r| units[(*r).clone()].iter());
    // The k-th text: each unit's k-th alternative, or its best where it has fewer.
    let version = |k: usize| -> (String, f64, f64) {
        let (mut text, mut score, mut ranking) = (String::new(), 0.0, 0.0);
        for slot in slots {
            match slot {
                Slot::Gap(g) => text.push_str(g),
                Slot::Units(r) => {
                    let parts: Vec<&str> = units[r.clone()]
                        .iter()
                        .map(
                            |u| match k.checked_sub(1).and_then(|i| u.alternatives.get(i)) {
                                Some(alt) => {
                                    score += alt.score;
                                    ranking += alt.ranking_score;
                                    alt.text.as_str()
                                }
                                None => {
                                    score += u.score;
                                    ranking += u.ranking_score;
                                    u.text.as_str()
                                }
                            },
                        )
                        .collect();
                    text.push_str(&parts.join(" "));
                }
            }
        }
        (text, score, ranking)
    };
    let (text, score, ranking_score) = version(0);
    let alternatives = (1..=used().map(|u| u.alternatives.len()).max().unwrap_or(0))
        .map(|k| {
            let (text, score, ranking_score) = version(k);
            Alternative {
                text,
                score,
                ranking_score,
            }
        })
        .collect();
    Translation {
        text,
        score,
        ranking_score,
        alternatives,
        truncated: used().any(|u| u.truncated),
        ..Default::default()
    }
}

/// [`translate`] of each text as one unit.
fn translate_whole(
    bundle: &Bundle,
    texts: &[String],
    opts: &TranslateOptions,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Translation>, ModelError> {
    let device = bundle.vars.device();
    let mut results = vec![Translation::default(); texts.len()];
    // Encode everything first: vocabulary errors surface before any compute.
    let mut encoded: Vec<(usize, Vec<i64>)> = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let mut ids: Vec<i64> = bundle
            .src_vocab
            .encode(text)?
            .into_iter()
            .map(i64::from)
            .collect();
        if ids.len() > opts.max_source_tokens {
            ids.truncate(opts.max_source_tokens);
            results[i].truncated = true;
        }
        ids.push(vocab::EOS_ID as i64);
        encoded.push((i, ids));
    }
    let done_empty = texts.len() - encoded.len();
    if done_empty > 0 {
        progress(done_empty);
    }
    // Longest first: similar lengths share a batch and the first batch shows the memory peak.
    encoded.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < encoded.len() {
        let longest = encoded[start].1.len();
        let fit = (opts.max_tokens / longest.max(1)).clamp(1, opts.max_sentences.max(1));
        let end = (start + fit).min(encoded.len());
        batches.push(&encoded[start..end]);
        start = end;
    }
    let beam = BeamOptions {
        keep_attention: opts.return_attention || opts.beam.unk == UnkPolicy::Replace,
        ..opts.beam
    };
    let mut finish = |chunk: &[(usize, Vec<i64>)], hyps: Vec<Vec<Hypothesis>>| {
        for ((index, ids), nbest) in chunk.iter().zip(hyps) {
            results[*index] = to_translation(bundle, ids, nbest, opts, results[*index].truncated)?;
        }
        progress(chunk.len());
        Ok::<(), ModelError>(())
    };
    let workers = if device == Device::Cpu {
        opts.workers.clamp(1, batches.len().max(1))
    } else {
        1
    };
    if workers == 1 {
        for chunk in &batches {
            let hyps = decode_batch(&bundle.model, chunk, device, &beam)?;
            finish(chunk, hyps)?;
        }
        return Ok(results);
    }

    // Side by side: this thread and `workers - 1` helpers take the next batch off a shared
    // counter; this thread also turns finished batches into text as they come in.
    let replicas = (1..workers)
        .map(|_| bundle.share_model())
        .collect::<Result<Vec<_>, _>>()?;
    let share = crate::threads::IntraOpShare::new(workers);
    let next = AtomicUsize::new(0);
    let batches = &batches;
    let outcome = std::thread::scope(|scope| -> Result<(), ModelError> {
        let (tx, rx) = mpsc::channel::<(usize, Result<Vec<Vec<Hypothesis>>, ModelError>)>();
        for (vars, model) in replicas {
            let (tx, next, beam, share) = (tx.clone(), &next, &beam, &share);
            scope.spawn(move || {
                // The replica's store lives as long as the model it holds.
                let _store = vars;
                share.enter();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(chunk) = batches.get(i) else { break };
                    if tx
                        .send((i, decode_batch(&model, chunk, device, beam)))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        // Turns a decoded batch into text; after a failure no more batches are handed out
        // (the helpers finish the one they hold) and the first error is what the call returns.
        let mut settle = |i: usize, decoded: Result<Vec<Vec<Hypothesis>>, ModelError>| {
            if let Err(e) = decoded.and_then(|hyps| finish(batches[i], hyps)) {
                first_error.get_or_insert(e);
                next.store(batches.len(), Ordering::SeqCst);
            }
        };
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(chunk) = batches.get(i) else { break };
            settle(i, decode_batch(&bundle.model, chunk, device, &beam));
            while let Ok((j, decoded)) = rx.try_recv() {
                settle(j, decoded);
            }
        }
        for (j, decoded) in rx {
            settle(j, decoded);
        }
        first_error.map_or(Ok(()), Err)
    });
    drop(share);
    outcome?;
    Ok(results)
}

/// Beam search over one batch of encoded sources (`(input line, ids with EOS)`, longest
/// first), padded into `[B, S]` on `device`.
fn decode_batch(
    model: &Seq2Seq,
    chunk: &[(usize, Vec<i64>)],
    device: Device,
    beam: &BeamOptions,
) -> Result<Vec<Vec<Hypothesis>>, ModelError> {
    let longest = chunk.iter().map(|(_, ids)| ids.len()).max().unwrap_or(1);
    let mut flat = vec![vocab::PAD_ID as i64; chunk.len() * longest];
    for (row, (_, ids)) in chunk.iter().enumerate() {
        flat[row * longest..row * longest + ids.len()].copy_from_slice(ids);
    }
    let src = Tensor::from_slice(&flat)
        .view([chunk.len() as i64, longest as i64])
        .to_device(device);
    let lengths = Tensor::from_slice(
        &chunk
            .iter()
            .map(|(_, ids)| ids.len() as i64)
            .collect::<Vec<_>>(),
    )
    .to_device(device);
    model.check_source(&src, &lengths)?;
    beam_search(model, &src, &lengths.to_kind(Kind::Int64), beam)
}

/// Text, score, alternatives and (when asked for) attention of one sentence's n-best list.
fn to_translation(
    bundle: &Bundle,
    ids: &[i64],
    nbest: Vec<Hypothesis>,
    opts: &TranslateOptions,
    truncated: bool,
) -> Result<Translation, ModelError> {
    let mut nbest = nbest;
    if opts.beam.unk == UnkPolicy::Replace {
        for hyp in &mut nbest {
            replace_unknowns(hyp, ids, bundle);
        }
    }
    let mut result = Translation {
        truncated,
        ..Default::default()
    };
    let mut nbest = nbest.into_iter();
    if let Some(best) = nbest.next() {
        result.text = bundle.tgt_vocab.decode(&best.tokens)?;
        result.score = best.score;
        result.ranking_score = best.ranking_score;
        if opts.return_attention {
            result.source_tokens = ids
                .iter()
                .map(|&id| {
                    if id == vocab::EOS_ID as i64 {
                        SOURCE_EOS_PIECE.to_string()
                    } else {
                        bundle.src_vocab.id_to_piece(id as u32).unwrap_or_default()
                    }
                })
                .collect();
            result.target_tokens = best
                .tokens
                .iter()
                .map(|&id| bundle.tgt_vocab.id_to_piece(id).unwrap_or_default())
                .collect();
            result.attention = best.attention;
        }
    }
    for alt in nbest {
        result.alternatives.push(Alternative {
            text: bundle.tgt_vocab.decode(&alt.tokens)?,
            score: alt.score,
            ranking_score: alt.ranking_score,
        });
    }
    Ok(result)
}

/// Replaces each unknown token of `hyp` with the source token its attention weighs most
/// (the source's final EOS excluded), looked up by its piece in the target vocabulary
/// (the same id when the vocabulary is joint). An unknown source token, or a piece the
/// target vocabulary lacks, leaves the unknown token in place.
///
/// src_ids: the source ids the hypothesis was decoded from, EOS last; `hyp.attention` must
/// hold one row per target token.
fn replace_unknowns(hyp: &mut crate::search::Hypothesis, src_ids: &[i64], bundle: &Bundle) {
    let real = src_ids.len().saturating_sub(1);
    for (token, row) in hyp.tokens.iter_mut().zip(&hyp.attention) {
        if *token != vocab::UNK_ID || real == 0 {
            continue;
        }
        let Some((position, _)) = row[..real.min(row.len())]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
        else {
            continue;
        };
        let source = src_ids[position] as u32;
        if source == vocab::UNK_ID {
            continue;
        }
        if let Some(id) = bundle
            .src_vocab
            .id_to_piece(source)
            .and_then(|piece| bundle.tgt_vocab.piece_to_id(&piece))
        {
            *token = id;
        }
    }
}
