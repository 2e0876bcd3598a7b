//! Data-parallel training's collectives over PyTorch's own distributed engine, c10d: a
//! `TCPStore` rendezvous and a Gloo process group (from the libtorch tch links), reached
//! through a small C++ shim (csrc/c10d_shim.cpp), and an NCCL process group for CUDA tensors
//! in a library of its own (csrc/c10d_nccl.cpp), loaded only by jobs that use it. No collective is written here: every sum
//! and broadcast is c10d's.
//!
//! - [`LaunchEnv`] reads how the job was started: torchrun, Slurm's `srun`, or plain
//!   `RANK` / `WORLD_SIZE` / `MASTER_ADDR` / `MASTER_PORT` variables.
//! - [`ProcessGroup`] joins the job and runs all-reduce (bucketed), broadcast and barrier,
//!   each bounded by a timeout, so that a rank that dies or stalls makes the others fail
//!   with an error instead of hanging; [`ProcessGroup::lagging_ranks`] says which rank it was.

mod ffi;
mod group;
mod launch;

pub use group::{Backend, DistError, ProcessGroup, DEFAULT_BUCKET_BYTES, NCCL_LIBRARY_FILE};
pub use launch::{LaunchEnv, LaunchError, Launcher};
