//! Shared by the speed benchmarks against PyTorch (`bench/run_model_benchmarks.sh`):
//! the files both sides read, so that Rust and Python run identical id batches
//! through identical weights.
//!
//! Every exchange file is a safetensors file (tch writes it, `bench/pytorch/model.py`
//! reads it), with tensors named `<batch index, 4 digits>.<field>`.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// The Multi30k folder beside the repository (read-only shared data).
pub fn multi30k_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/multi30k"
    ))
}

/// Lines of a text file, without line ends.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// One teacher-forced training batch, padded with the pad id.
pub struct TrainBatch {
    /// `[B, S]` i64, each row ends with EOS.
    pub src: Tensor,
    /// `[B]` i64
    pub src_lengths: Tensor,
    /// `[B, T]` i64: BOS + target.
    pub tgt_in: Tensor,
    /// `[B, T]` i64: target + EOS.
    pub tgt_out: Tensor,
    /// Non-pad positions of `tgt_out`.
    pub tgt_tokens: i64,
    /// Non-pad positions of each row of `tgt_out`: `[B]` on the host.
    pub tgt_lengths: Vec<i64>,
}

/// One batch of source sentences for search, in the order `translate` forms them.
pub struct SearchBatch {
    /// `[B, S]` i64
    pub src: Tensor,
    /// `[B]` i64
    pub lengths: Tensor,
    /// `[B]` i64: line number of each row in the input file.
    pub index: Tensor,
}

/// Pads `rows` to one `[rows, longest]` i64 tensor.
pub fn pad(rows: &[Vec<i64>]) -> Tensor {
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = vec![vocab::PAD_ID as i64; rows.len() * longest];
    for (r, ids) in rows.iter().enumerate() {
        flat[r * longest..r * longest + ids.len()].copy_from_slice(ids);
    }
    Tensor::from_slice(&flat).view([rows.len() as i64, longest as i64])
}

fn lengths(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_slice(&rows.iter().map(|r| r.len() as i64).collect::<Vec<_>>())
}

/// Builds a training batch from `(source ids, target ids)` pairs (no specials yet).
pub fn train_batch(pairs: &[(Vec<i64>, Vec<i64>)]) -> TrainBatch {
    let (bos, eos) = (vocab::BOS_ID as i64, vocab::EOS_ID as i64);
    let src: Vec<Vec<i64>> = pairs
        .iter()
        .map(|(s, _)| s.iter().copied().chain([eos]).collect())
        .collect();
    let tgt_in: Vec<Vec<i64>> = pairs
        .iter()
        .map(|(_, t)| [bos].into_iter().chain(t.iter().copied()).collect())
        .collect();
    let tgt_out: Vec<Vec<i64>> = pairs
        .iter()
        .map(|(_, t)| t.iter().copied().chain([eos]).collect())
        .collect();
    TrainBatch {
        src: pad(&src),
        src_lengths: lengths(&src),
        tgt_in: pad(&tgt_in),
        tgt_out: pad(&tgt_out),
        tgt_tokens: tgt_out.iter().map(|r| r.len() as i64).sum(),
        tgt_lengths: tgt_out.iter().map(|r| r.len() as i64).collect(),
    }
}

fn key(i: usize, field: &str) -> String {
    format!("{i:04}.{field}")
}

/// Writes named tensors as one safetensors file.
pub fn write_tensors(path: &Path, named: Vec<(String, Tensor)>) -> Result<()> {
    let named: Vec<(String, Tensor)> = named
        .into_iter()
        .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&named, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a safetensors file into a name → tensor map.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect())
}

fn take(map: &mut BTreeMap<String, Tensor>, name: &str, path: &Path) -> Result<Tensor> {
    map.remove(name)
        .with_context(|| format!("{}: missing tensor {name}", path.display()))
}

/// Writes the tensors `fields(batch)` of each batch as one safetensors file, those of batch
/// `i` named `key(i, field)`.
fn write_batches<B>(
    path: &Path,
    batches: &[B],
    fields: impl Fn(&B) -> Vec<(&'static str, &Tensor)>,
) -> Result<()> {
    let mut named = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        for (field, t) in fields(b) {
            named.push((key(i, field), t.shallow_clone()));
        }
    }
    write_tensors(path, named)
}

/// Reads what [`write_batches`] wrote: `make` builds each batch from a function that takes
/// its tensor of a field out of the file. An error when there is no batch.
fn read_batches<B>(
    path: &Path,
    mut make: impl FnMut(&mut dyn FnMut(&str) -> Result<Tensor>) -> Result<B>,
) -> Result<Vec<B>> {
    let mut map = read_tensors(path)?;
    let mut out = Vec::new();
    while map.contains_key(&key(out.len(), "src")) {
        let i = out.len();
        out.push(make(&mut |field| take(&mut map, &key(i, field), path))?);
    }
    if out.is_empty() {
        bail!("{}: no batches", path.display());
    }
    Ok(out)
}

/// `batches.safetensors`: training batches.
pub fn write_train_batches(path: &Path, batches: &[TrainBatch]) -> Result<()> {
    write_batches(path, batches, |b| {
        vec![
            ("src", &b.src),
            ("src_lengths", &b.src_lengths),
            ("tgt_in", &b.tgt_in),
            ("tgt_out", &b.tgt_out),
        ]
    })
}

/// Reads what [`write_train_batches`] wrote.
pub fn read_train_batches(path: &Path) -> Result<Vec<TrainBatch>> {
    read_batches(path, |field| {
        let tgt_out = field("tgt_out")?;
        let row_lengths = tgt_out
            .ne(vocab::PAD_ID as i64)
            .sum_dim_intlist(1, false, Kind::Int64);
        let tgt_lengths = Vec::<i64>::try_from(&row_lengths)?;
        let tgt_tokens = tgt_lengths.iter().sum();
        Ok(TrainBatch {
            src: field("src")?,
            src_lengths: field("src_lengths")?,
            tgt_in: field("tgt_in")?,
            tgt_out,
            tgt_tokens,
            tgt_lengths,
        })
    })
}

/// Cuts encoded sources (EOS included) into batches exactly as
/// `model::translate::translate` does: longest first, ties by line number,
/// at most `max_tokens` padded positions and `max_sentences` rows per batch.
pub fn search_batches(
    encoded: &[Vec<i64>],
    max_tokens: usize,
    max_sentences: usize,
) -> Vec<SearchBatch> {
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by(|&a, &b| encoded[b].len().cmp(&encoded[a].len()).then(a.cmp(&b)));
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let longest = encoded[order[start]].len();
        let fit = (max_tokens / longest.max(1)).clamp(1, max_sentences.max(1));
        let end = (start + fit).min(order.len());
        let rows: Vec<Vec<i64>> = order[start..end]
            .iter()
            .map(|&i| encoded[i].clone())
            .collect();
        out.push(SearchBatch {
            src: pad(&rows),
            lengths: lengths(&rows),
            index: Tensor::from_slice(
                &order[start..end]
                    .iter()
                    .map(|&i| i as i64)
                    .collect::<Vec<_>>(),
            ),
        });
        start = end;
    }
    out
}

/// `test_batches.safetensors`: search batches.
pub fn write_search_batches(path: &Path, batches: &[SearchBatch]) -> Result<()> {
    write_batches(path, batches, |b| {
        vec![
            ("src", &b.src),
            ("lengths", &b.lengths),
            ("index", &b.index),
        ]
    })
}

/// Reads what [`write_search_batches`] wrote.
pub fn read_search_batches(path: &Path) -> Result<Vec<SearchBatch>> {
    read_batches(path, |field| {
        Ok(SearchBatch {
            src: field("src")?,
            lengths: field("lengths")?,
            index: field("index")?,
        })
    })
}

/// Median of a sample (seconds).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Keeps freed memory in the process instead of returning it to the kernel.
///
/// libtorch's CPU allocator takes every tensor from glibc `malloc`; tensors above
/// 128 KiB (e.g. `[rows, vocab]` logits) are then fresh `mmap`s, so each step pays
/// page faults to zero new pages again. Raising the mmap threshold to its maximum
/// (32 MiB) and never trimming lets those buffers be reused. Returns false when
/// glibc refused a setting.
pub fn keep_freed_memory() -> bool {
    use nix::libc;
    // SAFETY: mallopt only changes allocator parameters; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
    }
}
