//! The random numbers of a training pass on the CPU: one generator per thread.
//!
//! Why not libtorch's generator: it is one global CPU generator, so two threads training on
//! the two halves of a batch (nmt-train's `training::split_step`) would take their draws in whatever
//! order the scheduler interleaves them, and a resumed run could not repeat the same loss
//! curve. Here each thread draws from its own ChaCha8 stream, seeded with [`seed`] (the
//! trainer does so before every batch, per worker), so dropout masks ([`crate::dropout`])
//! and gate noise ([`crate::gates::GateNoise`]) depend on the seed and the tensor shapes
//! only. ChaCha8's output is fixed by its specification, so they do not change with a
//! `rand` upgrade either.

use std::cell::RefCell;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

thread_local! {
    static GENERATOR: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Restarts the calling thread's draws (dropout masks, gate-noise seeds) from `seed`.
pub fn seed(seed: u64) {
    GENERATOR.with(|g| *g.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// A seed drawn from libtorch's generator, so that `tch::manual_seed` fixes it.
pub fn seed_from_libtorch() -> u64 {
    let drawn = Tensor::randint(i64::MAX, [1], (Kind::Int64, tch::Device::Cpu));
    drawn.int64_value(&[0]) as u64
}

/// Runs `f` on the calling thread's generator.
pub(crate) fn with_generator<T>(f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
    GENERATOR.with(|g| f(&mut g.borrow_mut()))
}

/// The next 64 bits of the calling thread's generator.
pub(crate) fn next_u64() -> u64 {
    with_generator(|g| g.next_u64())
}
