//! int8 weights with fp32 activations on the CPU: per-row quantization of a weight matrix,
//! and `y = x · Wᵀ` run by fbgemm, the int8 GEMM library inside libtorch_cpu, which tch does
//! not bind; csrc/q8_shim.cpp reaches it (and says why it calls fbgemm directly rather than
//! libtorch's `fbgemm_linear_int8_weight_fp32_activation`).
//!
//! How a matrix is held: `W ≈ diag(s) · q`, `q` int8 `[R, C]` with `|q| ≤` [`QMAX`], `s`
//! float32 `[R]` (one step per row: per-output-channel, symmetric). fbgemm applies the steps
//! (and the bias) in its output stage. It quantizes `x` itself, per call, to uint8 over
//! `[min(x, 0), max(x, 0)]`: the result carries that rounding too (see [`error_bound`]).

mod ffi;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, Tensor};

/// Errors of the int8 layer. No C++ exception or panic crosses the FFI boundary: the shim
/// turns them into these.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The int8 kernels are fbgemm's, CPU-only.
    #[error(
        "int8 weights run on the CPU only (libtorch's fbgemm kernels); {what} is on {device:?}"
    )]
    NotCpu { what: &'static str, device: Device },
    /// Tensors of the wrong shape or type.
    #[error("int8 linear: {0}")]
    Shape(String),
    /// fbgemm refused (e.g. a CPU without AVX2), as libtorch said it.
    #[error("fbgemm int8 kernel: {0}")]
    Kernel(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The largest magnitude of a quantized weight: 63 (7 bits), not 127. On AVX2 CPUs without
/// VNNI, fbgemm multiplies uint8 activations by int8 weights with `vpmaddubsw`, which adds two
/// products into a saturating int16: 255·127·2 = 64770 overflows it and silently clips sums
/// (measured here: errors 3–7× the quantization bound, 7–14% of the output's range, on random
/// matrices), while 255·63·2 = 32130 fits. PyTorch's x86 backend avoids the same trap by
/// reducing the activations' range; this kernel quantizes activations itself, so the weights
/// give up the bit.
pub const QMAX: i64 = 63;

/// Quantizes each row of `w` symmetrically: `q = round(w / s)` with `s = max|w_row| / QMAX`,
/// so `|w − s·q| ≤ s/2` elementwise. An all-zero row gets `s = 1` (and `q = 0`).
///
/// w: float `[R, C]` → (q int8 `[R, C]`, s float32 `[R]`)
pub fn quantize_rows(w: &Tensor) -> Result<(Tensor, Tensor), QuantError> {
    if w.dim() != 2 || !w.is_floating_point() {
        return Err(QuantError::Shape(format!(
            "quantize a float matrix [R, C], got {:?} of {:?}",
            w.size(),
            w.kind()
        )));
    }
    let w = w.f_to_kind(Kind::Float)?;
    let max = w.f_abs()?.f_amax([1i64].as_slice(), false)?;
    let step = max / QMAX as f64;
    // Zero rows: the step above is 0; 1 keeps q = 0 and the division finite.
    let step = step.f_masked_fill(&step.eq(0.0), 1.0)?;
    let q = (&w / step.unsqueeze(1))
        .f_round()?
        .f_clamp(-QMAX, QMAX)?
        .f_to_kind(Kind::Int8)?;
    Ok((q, step))
}

/// [`quantize_rows`] of matrices with the same rows side by side, `[W_1 | W_2 | …]`: one step
/// per row for all of them (the largest magnitude of the row in any block), so that their
/// codes can later be joined column-wise into one int8 matrix and run as one kernel call.
/// A block whose row is smaller than another's gets a coarser step than it would alone.
///
/// blocks: float `[R, C_i]` each → (q int8 `[R, C_i]` per block, s float32 `[R]`)
pub fn quantize_rows_joint(blocks: &[&Tensor]) -> Result<(Vec<Tensor>, Tensor), QuantError> {
    let rows = blocks.first().map(|b| b.size().first().copied());
    if blocks
        .iter()
        .any(|b| b.dim() != 2 || Some(b.size().first().copied()) != rows)
    {
        return Err(QuantError::Shape(format!(
            "quantize blocks of one row count side by side, got {:?}",
            blocks.iter().map(|b| b.size()).collect::<Vec<_>>()
        )));
    }
    let widths: Vec<i64> = blocks.iter().map(|b| b.size()[1]).collect();
    let joint = Tensor::f_cat(blocks, 1)?;
    let (q, step) = quantize_rows(&joint)?;
    let codes = q.f_split_with_sizes(widths.as_slice(), 1)?;
    Ok((codes, step))
}

/// The float matrix an int8 one stands for: q int8 `[R, C]`, s `[R]` → float32 `[R, C]`.
pub fn dequantize_rows(q: &Tensor, step: &Tensor) -> Tensor {
    q.to_kind(Kind::Float) * step.to_kind(Kind::Float).unsqueeze(1)
}

/// A bound on `|y − x · Ŵᵀ|` elementwise for the kernel's `y`, `Ŵ` the dequantized weights:
/// the kernel rounds `x` to a grid of step `Δ = (max(x, 0) − min(x, 0)) / 255`, at most `Δ/2`
/// off per element, so each output is off by at most `Δ/2 · Σ_c |Ŵ_rc|` (plus float32
/// rounding of the sums). Tests hold the kernel to it.
///
/// x: `[.., C]`, dequantized: `[R, C]` → `[R]` (the same bound for every row of `x`)
pub fn error_bound(x: &Tensor, dequantized: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let hi = x.max().clamp_min(0.0);
    let lo = x.min().clamp_max(0.0);
    let step = (hi - lo) / 255.0;
    dequantized.abs().sum_dim_intlist(1, false, Kind::Float) * step / 2.0
}

/// fbgemm's packed copy of an int8 matrix (`fbgemm::PackBMatrix`, owned; freed on drop).
struct PackedB(*mut std::ffi::c_void);

// SAFETY: the packed matrix is written once, when made, and only read afterwards; fbgemm's
// own threads read one packed matrix at the same time, as PyTorch's inference threads do.
unsafe impl Send for PackedB {}
unsafe impl Sync for PackedB {}

impl Drop for PackedB {
    fn drop(&mut self) {
        // SAFETY: made by nmt_q8_pack, freed once, here.
        unsafe { ffi::nmt_q8_free_packed(self.0) }
    }
}

/// fbgemm's form of some columns of an int8 matrix.
struct Packed {
    /// Shared, so that a call can hold it without holding the weight's lock.
    packed: Arc<PackedB>,
    /// Each row's sum (zero point 0): int32 `[R]`.
    col_offsets: Tensor,
    /// int32 zeros `[R]`: the weights' zero points (symmetric), one per row as fbgemm's
    /// per-row output stage reads them.
    zero_points: Tensor,
}

impl Packed {
    fn new(q: &Tensor, columns: &Range<i64>) -> Result<Self, QuantError> {
        let q = q
            .f_narrow(1, columns.start, columns.end - columns.start)?
            .f_contiguous()?;
        let mut packed = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        // SAFETY: q is a live int8 tensor for the duration of the call; fbgemm copies it.
        if unsafe { ffi::nmt_q8_pack(q.as_ptr() as *const _, &mut packed, &mut err) } != 0
            || packed.is_null()
        {
            // SAFETY: err is null or the shim's message, not yet freed.
            return Err(QuantError::Kernel(unsafe { ffi::take_error(err) }));
        }
        let packed = Arc::new(PackedB(packed));
        let col_offsets = q.f_sum_dim_intlist(1, false, Kind::Int)?.f_contiguous()?;
        let zero_points = Tensor::f_zeros([q.size()[0]], (Kind::Int, Device::Cpu))?;
        Ok(Self {
            packed,
            col_offsets,
            zero_points,
        })
    }
}

/// An int8 matrix `q` (`[R, C]`) ready for the kernel: packed on first use, per column range
/// (a step executor runs a matrix's leading and trailing columns separately), and kept.
///
/// `q` is held by handle, not copied: a bundle loads its values into the same tensor after
/// the model is built, so nothing is packed before the first [`Self::linear`].
pub struct Int8Weight {
    // A Mutex, not a RefCell: models move between threads (tch tensors are Send, not Sync).
    inner: Mutex<Inner>,
}

struct Inner {
    q: Tensor,
    packs: HashMap<(i64, i64), Packed>,
}

impl std::fmt::Debug for Int8Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Int8Weight")
            .field("shape", &inner.q.size())
            .field(
                "packed_column_ranges",
                &inner.packs.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Int8Weight {
    /// q: int8 `[R, C]` on the CPU (checked at the first [`Self::linear`]).
    pub fn new(q: Tensor) -> Self {
        Self {
            inner: Mutex::new(Inner {
                q,
                packs: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while packing leaves at most a missing entry: the map is still sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on the int8 matrix, `[R, C]`.
    pub fn q(&self) -> Tensor {
        self.lock().q.shallow_clone()
    }

    /// Forgets the packed forms: call after writing new values into `q` in place.
    pub fn invalidate(&self) {
        self.lock().packs.clear();
    }

    /// `y = (x · q[:, columns]ᵀ) ⊙ row_scale (+ bias)`: with `row_scale` the per-row steps of
    /// [`quantize_rows`] (possibly times other per-row factors), the int8 approximation of
    /// `x · W[:, columns]ᵀ (+ bias)`. Computes in float32 (another float `x` is converted, and
    /// the result converted back).
    ///
    /// x: `[.., columns.len()]`, row_scale: `[R]`, bias: `[R]` → `[.., R]`
    pub fn linear(
        &self,
        x: &Tensor,
        columns: Range<i64>,
        row_scale: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor, QuantError> {
        for (what, t) in [
            ("the input", Some(x)),
            ("the row scale", Some(row_scale)),
            ("the bias", bias),
        ] {
            if let Some(t) = t {
                if t.device() != Device::Cpu {
                    return Err(QuantError::NotCpu {
                        what,
                        device: t.device(),
                    });
                }
            }
        }
        let pack = {
            let mut inner = self.lock();
            let (rows, cols) = match inner.q.size()[..] {
                [r, c] if inner.q.kind() == Kind::Int8 => (r, c),
                _ => {
                    return Err(QuantError::Shape(format!(
                        "weights {:?} of {:?}, expected int8 [R, C]",
                        inner.q.size(),
                        inner.q.kind()
                    )))
                }
            };
            if inner.q.device() != Device::Cpu {
                return Err(QuantError::NotCpu {
                    what: "the int8 matrix",
                    device: inner.q.device(),
                });
            }
            if !(0 <= columns.start && columns.start < columns.end && columns.end <= cols) {
                return Err(QuantError::Shape(format!(
                    "columns {columns:?} of a matrix with {cols} columns"
                )));
            }
            let width = columns.end - columns.start;
            if x.size().last() != Some(&width) || row_scale.size() != [rows] {
                return Err(QuantError::Shape(format!(
                    "input {:?} and row scale {:?} for {rows} rows × {width} columns",
                    x.size(),
                    row_scale.size()
                )));
            }
            let key = (columns.start, columns.end);
            if !inner.packs.contains_key(&key) {
                let pack = Packed::new(&inner.q, &columns)?;
                inner.packs.insert(key, pack);
            }
            let p = &inner.packs[&key];
            // Handles, so the lock is not held while the kernel runs.
            (
                Arc::clone(&p.packed),
                p.col_offsets.shallow_clone(),
                p.zero_points.shallow_clone(),
                rows,
                width,
            )
        };
        let (packed, col_offsets, zero_points, rows, width) = pack;
        let kind = x.kind();
        let mut out_shape = x.size();
        if let Some(last) = out_shape.last_mut() {
            *last = rows;
        }
        let x = x
            .f_to_kind(Kind::Float)?
            .f_reshape([-1, width])?
            .f_contiguous()?;
        // Inference only (fbgemm has no backward): no autograd history on what it reads.
        let row_scale = row_scale
            .f_to_kind(Kind::Float)?
            .f_detach()?
            .f_contiguous()?;
        // A bias per row goes into fbgemm's output stage; one that varies over the batch
        // too (`[.., R]`, e.g. a step's precomputed input projection) is added afterwards.
        let bias = match bias {
            Some(b) => Some(b.f_to_kind(Kind::Float)?.f_detach()?.f_contiguous()?),
            None => None,
        };
        let (fused_bias, later_bias) = match bias {
            Some(b) if b.dim() == 1 => (Some(b), None),
            other => (None, other),
        };
        // SAFETY: every pointer is a live tensor (or the live packed matrix) for the duration
        // of the call; a missing bias is null, which the shim accepts.
        let out = unsafe {
            ffi::returning_tensor(|out, err| {
                ffi::nmt_q8_linear(
                    x.as_ptr() as *const _,
                    packed.0,
                    col_offsets.as_ptr() as *const _,
                    row_scale.as_ptr() as *const _,
                    zero_points.as_ptr() as *const _,
                    fused_bias
                        .as_ref()
                        .map_or(std::ptr::null(), |b| b.as_ptr() as *const _),
                    out,
                    err,
                )
            })
        }
        .map_err(QuantError::Kernel)?;
        let mut out = out.f_reshape(out_shape.as_slice())?;
        if let Some(b) = later_bias {
            let _ = out.f_add_(&b)?;
        }
        Ok(out.f_to_kind(kind)?)
    }
}

/// Runs the kernel once on a 1×1 matrix: an error when this CPU or libtorch cannot (fbgemm
/// needs AVX2), before a model relies on it.
pub fn check_supported() -> Result<(), QuantError> {
    let w = Int8Weight::new(Tensor::from_slice(&[1i8]).view([1, 1]));
    let x = Tensor::from_slice(&[1.0f32]).view([1, 1]);
    w.linear(&x, 0..1, &Tensor::from_slice(&[1.0f32]), None)
        .map(|_| ())
}
