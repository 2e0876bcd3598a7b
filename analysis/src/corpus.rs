//! The sentences an analysis runs over: read from files, checked against the bundle's
//! languages, encoded with its vocabularies, and batched so that the model's packed
//! teacher-forced pass keeps the batch order (rows sorted by target length, longest first).

use std::path::{Path, PathBuf};

use model::Bundle;
use tch::{Device, Tensor};

use crate::AnalysisError;

/// One sentence (pair) as ids and pieces.
#[derive(Clone, Debug)]
pub struct Sentence {
    /// Line number (1-based) in the source file.
    pub line: usize,
    /// Source ids, `</s>` included.
    pub src: Vec<i64>,
    /// Target ids without BOS and EOS; empty when no target was given.
    pub tgt: Vec<i64>,
    /// One piece per source id (`</s>` last).
    pub src_pieces: Vec<String>,
    /// One piece per decoder step: the token each step reads (`<s>`, then the target).
    pub tgt_pieces: Vec<String>,
}

impl Sentence {
    /// Decoder steps of a teacher-forced pass: the target and EOS.
    pub fn steps(&self) -> usize {
        self.tgt.len() + 1
    }
}

/// Reads at most `limit` lines (all with `None`) of a UTF-8 file; a line that is not UTF-8 is
/// an error naming it.
pub fn read_lines(path: &Path, limit: Option<usize>) -> Result<Vec<String>, AnalysisError> {
    let bytes = std::fs::read(path).map_err(|e| AnalysisError::io(path, e))?;
    let total = count_lines(&bytes);
    let take = limit.map_or(total, |n| n.min(total));
    let mut lines = Vec::with_capacity(take);
    // split() gives one more (empty) piece after a final newline; take() leaves it out.
    for (i, raw) in bytes.split(|&b| b == b'\n').take(take).enumerate() {
        let text = std::str::from_utf8(raw).map_err(|e| AnalysisError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("not UTF-8 ({e})"),
        })?;
        lines.push(text.trim_end_matches('\r').to_string());
    }
    Ok(lines)
}

/// Lines in `bytes`, a last line without a newline counted.
fn count_lines(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// Fails when a file's name says it holds another language than the bundle expects
/// (`test.en` given as German source). Names without a language suffix pass.
pub fn check_language(path: &Path, expected: &str, role: &str) -> Result<(), AnalysisError> {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return Ok(());
    };
    let looks_like_language = (2..=3).contains(&ext.len())
        && ext.chars().all(|c| c.is_ascii_lowercase())
        && !matches!(
            ext,
            "txt" | "tok" | "raw" | "out" | "hyp" | "ref" | "src" | "tgt"
        );
    if looks_like_language && ext != expected {
        return Err(AnalysisError::Input(format!(
            "{}: the file name says language {ext:?}, but the bundle's {role} language is \
             {expected:?} (swapped --src and --tgt, or another model's data?)",
            path.display()
        )));
    }
    Ok(())
}

/// Source (and target) files read together, encoded with the bundle's vocabularies.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub src: PathBuf,
    pub tgt: Option<PathBuf>,
    /// At most this many sentences (the first ones).
    pub limit: Option<usize>,
    /// Longer sources and targets are cut to this many pieces.
    pub max_tokens: usize,
}

impl Inputs {
    /// Reads, checks and encodes the sentences. Empty source lines are skipped (they have no
    /// tokens to look at); the count of those is returned too.
    pub fn load(&self, bundle: &Bundle) -> Result<(Vec<Sentence>, usize), AnalysisError> {
        check_language(&self.src, &bundle.config.src_lang, "source")?;
        let src_lines = read_lines(&self.src, self.limit)?;
        let tgt_lines = match &self.tgt {
            Some(path) => {
                check_language(path, &bundle.config.tgt_lang, "target")?;
                let lines = read_lines(path, self.limit)?;
                if lines.len() != src_lines.len() {
                    return Err(AnalysisError::Input(format!(
                        "{} has {} lines but {} has {} (the files must be parallel)",
                        self.src.display(),
                        src_lines.len(),
                        path.display(),
                        lines.len()
                    )));
                }
                Some(lines)
            }
            None => None,
        };
        let mut sentences = Vec::with_capacity(src_lines.len());
        let mut skipped = 0;
        for (i, src) in src_lines.iter().enumerate() {
            if src.trim().is_empty() {
                skipped += 1;
                continue;
            }
            let tgt = tgt_lines.as_ref().map(|t| t[i].as_str()).unwrap_or("");
            sentences.push(encode(bundle, i + 1, src, tgt, self.max_tokens)?);
        }
        if sentences.is_empty() {
            return Err(AnalysisError::Input(format!(
                "{}: no non-empty line to analyse",
                self.src.display()
            )));
        }
        Ok((sentences, skipped))
    }
}

/// Encodes one pair with the bundle's vocabularies (`tgt` may be empty).
pub fn encode(
    bundle: &Bundle,
    line: usize,
    src: &str,
    tgt: &str,
    max_tokens: usize,
) -> Result<Sentence, AnalysisError> {
    let mut src_ids = bundle.src_vocab.encode(src)?;
    src_ids.truncate(max_tokens);
    if src_ids.is_empty() {
        src_ids.push(vocab::UNK_ID);
    }
    src_ids.push(vocab::EOS_ID);
    let mut tgt_ids = bundle.tgt_vocab.encode(tgt)?;
    tgt_ids.truncate(max_tokens);
    let piece = |v: &dyn vocab::Vocab, id: u32| {
        v.id_to_piece(id)
            .unwrap_or_else(|| vocab::UNK_SURFACE.to_string())
    };
    let src_pieces = src_ids
        .iter()
        .map(|&id| piece(bundle.src_vocab.as_ref(), id))
        .collect();
    let tgt_pieces = std::iter::once(vocab::BOS_ID)
        .chain(tgt_ids.iter().copied())
        .map(|id| piece(bundle.tgt_vocab.as_ref(), id))
        .collect();
    Ok(Sentence {
        line,
        src: src_ids.iter().map(|&id| id as i64).collect(),
        tgt: tgt_ids.iter().map(|&id| id as i64).collect(),
        src_pieces,
        tgt_pieces,
    })
}

/// A pair given as the vocabularies' pieces (a translation's `source_tokens` and
/// `target_tokens`: exactly the ids the search used, which re-encoding the detokenized
/// text may not give back). A final `</s>` on either side is optional.
pub fn from_pieces(
    bundle: &Bundle,
    line: usize,
    src: &[String],
    tgt: &[String],
) -> Result<Sentence, AnalysisError> {
    let eos = "</s>";
    let ids = |v: &dyn vocab::Vocab, pieces: &[String], side: &str| {
        pieces
            .iter()
            .map(|p| {
                v.piece_to_id(p).map(i64::from).ok_or_else(|| {
                    AnalysisError::Input(format!("{side} piece {p:?} is not in the vocabulary"))
                })
            })
            .collect::<Result<Vec<i64>, _>>()
    };
    let src_body = src.strip_suffix(&[eos.to_string()]).unwrap_or(src);
    let tgt_body = tgt.strip_suffix(&[eos.to_string()]).unwrap_or(tgt);
    let mut src_ids = ids(bundle.src_vocab.as_ref(), src_body, "source")?;
    if src_ids.is_empty() {
        src_ids.push(vocab::UNK_ID as i64);
    }
    src_ids.push(vocab::EOS_ID as i64);
    let tgt_ids = ids(bundle.tgt_vocab.as_ref(), tgt_body, "target")?;
    let piece = |v: &dyn vocab::Vocab, id: i64| {
        v.id_to_piece(id as u32)
            .unwrap_or_else(|| vocab::UNK_SURFACE.to_string())
    };
    Ok(Sentence {
        line,
        src_pieces: src_ids
            .iter()
            .map(|&i| piece(bundle.src_vocab.as_ref(), i))
            .collect(),
        tgt_pieces: std::iter::once(vocab::BOS_ID as i64)
            .chain(tgt_ids.iter().copied())
            .map(|i| piece(bundle.tgt_vocab.as_ref(), i))
            .collect(),
        src: src_ids,
        tgt: tgt_ids,
    })
}

/// A padded batch for a teacher-forced pass, rows sorted by target length (longest first,
/// ties in input order), so [`model::Seq2Seq::forward_packed`] keeps the row order.
#[derive(Debug)]
pub struct Batch {
    /// `[B, S]` i64, padded with PAD.
    pub src: Tensor,
    /// `[B]` i64.
    pub src_lengths: Tensor,
    /// `[B, T]` i64: BOS then the target, padded.
    pub tgt_in: Tensor,
    /// `[B, T]` i64: the target then EOS, padded.
    pub tgt_out: Tensor,
    /// Decoder steps of each row (target length + 1), non-increasing.
    pub tgt_lengths: Vec<i64>,
    /// Source lengths on the host.
    pub src_lengths_host: Vec<i64>,
    /// For each row, the index of its sentence in the slice given to [`batches`].
    pub rows: Vec<usize>,
}

/// Batches of at most `max_rows` sentences and about `max_tokens` source + target tokens.
pub fn batches(
    sentences: &[Sentence],
    max_rows: usize,
    max_tokens: usize,
    device: Device,
) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sentences[i].steps()));
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        let (mut longest_src, mut longest_tgt) = (0, 0);
        while end < order.len() && end - start < max_rows.max(1) {
            let s = &sentences[order[end]];
            let src = longest_src.max(s.src.len());
            let tgt = longest_tgt.max(s.steps());
            if end > start && (src + tgt) * (end - start + 1) > max_tokens {
                break;
            }
            (longest_src, longest_tgt) = (src, tgt);
            end += 1;
        }
        out.push(make_batch(sentences, &order[start..end], device));
        start = end;
    }
    out
}

fn make_batch(sentences: &[Sentence], rows: &[usize], device: Device) -> Batch {
    let pad = vocab::PAD_ID as i64;
    let s_len = rows
        .iter()
        .map(|&i| sentences[i].src.len())
        .max()
        .unwrap_or(1);
    let t_len = rows
        .iter()
        .map(|&i| sentences[i].steps())
        .max()
        .unwrap_or(1);
    let mut src = vec![pad; rows.len() * s_len];
    let mut tgt_in = vec![pad; rows.len() * t_len];
    let mut tgt_out = vec![pad; rows.len() * t_len];
    for (r, &i) in rows.iter().enumerate() {
        let s = &sentences[i];
        src[r * s_len..r * s_len + s.src.len()].copy_from_slice(&s.src);
        tgt_in[r * t_len] = vocab::BOS_ID as i64;
        tgt_in[r * t_len + 1..r * t_len + 1 + s.tgt.len()].copy_from_slice(&s.tgt);
        tgt_out[r * t_len..r * t_len + s.tgt.len()].copy_from_slice(&s.tgt);
        tgt_out[r * t_len + s.tgt.len()] = vocab::EOS_ID as i64;
    }
    let b = rows.len() as i64;
    let src_lengths_host: Vec<i64> = rows
        .iter()
        .map(|&i| sentences[i].src.len() as i64)
        .collect();
    Batch {
        src: Tensor::from_slice(&src)
            .view([b, s_len as i64])
            .to_device(device),
        src_lengths: Tensor::from_slice(&src_lengths_host).to_device(device),
        tgt_in: Tensor::from_slice(&tgt_in)
            .view([b, t_len as i64])
            .to_device(device),
        tgt_out: Tensor::from_slice(&tgt_out)
            .view([b, t_len as i64])
            .to_device(device),
        tgt_lengths: rows.iter().map(|&i| sentences[i].steps() as i64).collect(),
        src_lengths_host,
        rows: rows.to_vec(),
    }
}
