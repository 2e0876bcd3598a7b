//! Dropout whose masks come from the calling thread's generator ([`crate::random`]), so a
//! multi-worker step is reproducible and resumes exactly. (libtorch's `bernoulli_` is also
//! a serial loop; filling the mask here is no slower.)
//!
//! On CUDA tensors libtorch's kernel is used (seeded with `tch::manual_seed`): copying a
//! host-made mask to the device at every call would cost more than the dropout itself, and a
//! GPU trains with one worker.

use rand::RngCore;
use tch::Tensor;

use crate::random::with_generator;

/// Zeroes each entry with probability `p` and scales the others by `1 / (1 - p)` when
/// `train`; returns `x` itself otherwise (and for `p = 0`). `p` in `[0, 1]`.
///
/// x: any shape → same shape and kind.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if x.device() != tch::Device::Cpu {
        return x.dropout(p, true);
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let keep_scale = (1.0 / (1.0 - p)) as f32;
    // Keep an entry when a uniform 32-bit draw falls below (1 - p)·2³².
    let threshold = ((1.0 - p) * 4_294_967_296.0) as u64;
    let n = x.numel();
    let mut mask = vec![0f32; n];
    with_generator(|g| {
        for m in mask.iter_mut() {
            if u64::from(g.next_u32()) < threshold {
                *m = keep_scale;
            }
        }
    });
    let mask = Tensor::from_slice(&mask)
        .view(x.size().as_slice())
        .to_kind(x.kind());
    x * mask
}
