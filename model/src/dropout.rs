//! Dropout whose masks come from a generator owned by the calling thread.
//!
//! Why not libtorch's `dropout`: it draws from libtorch's one global CPU generator, so two
//! threads training on the two halves of a batch ([`crate::data_parallel`]) would take
//! their masks in whatever order the scheduler interleaves them, and a resumed run could not
//! repeat the same loss curve. Here each thread draws from its own ChaCha8 stream, seeded
//! with [`seed`] (the trainer does so before every batch, per worker), so the masks depend
//! on the seed and the tensor shapes only. ChaCha8's output is fixed by its specification, so
//! they do not change with a `rand` upgrade either. (libtorch's `bernoulli_` is also a serial
//! loop; filling the mask here is no slower.)
//!
//! On CUDA tensors libtorch's kernel is used (seeded with `tch::manual_seed`): copying a
//! host-made mask to the device at every call would cost more than the dropout itself, and a
//! GPU trains with one worker.

use std::cell::RefCell;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

thread_local! {
    static GENERATOR: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Restarts the calling thread's dropout masks from `seed`.
pub fn seed(seed: u64) {
    GENERATOR.with(|g| *g.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// A seed drawn from libtorch's generator, so that `tch::manual_seed` fixes it.
pub fn seed_from_libtorch() -> u64 {
    let drawn = Tensor::randint(i64::MAX, [1], (Kind::Int64, tch::Device::Cpu));
    drawn.int64_value(&[0]) as u64
}

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
    GENERATOR.with(|g| {
        let mut g = g.borrow_mut();
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
