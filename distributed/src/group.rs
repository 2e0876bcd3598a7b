//! A c10d process group: the job's ranks joined through a TCPStore, with collectives that
//! fail with an error (never hang) when a rank dies or stalls.

use std::ffi::{c_char, c_void, CString};
use std::fmt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use tch::{Kind, Tensor};

use crate::ffi;
use crate::launch::LaunchEnv;

/// Bytes per all-reduce call when gradients are flattened into buckets (PyTorch DDP's
/// default, 25 MiB): big enough to amortise a call, small enough not to double the memory
/// of a large model.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// Keys in the rendezvous store start with this, so that a store shared with a launcher's
/// agent (torchrun) or another job step keeps ours apart.
const KEY_PREFIX: &str = "lstm-nmt";

/// How often each rank's heartbeat ticks; a rank whose heartbeat did not move over
/// [`HEARTBEAT_WINDOW`] has died or stalled.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
const HEARTBEAT_WINDOW: Duration = Duration::from_millis(1500);

/// Which c10d process group carries the collectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors (and CUDA tensors through host copies).
    Gloo,
    /// NCCL: CUDA tensors, GPU to GPU (host tensors and the barrier still go through a Gloo
    /// group beside it). A library of its own, loaded when a job asks for it, built only where
    /// CUDA's headers were at hand: [`Backend::nccl_available`].
    Nccl,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    /// Whether the NCCL backend's library is there to load (see [`NCCL_LIBRARY_FILE`]; when
    /// it is not, the build lacked CUDA's headers: distributed/build.rs).
    pub fn nccl_available() -> bool {
        nccl_library_candidates().iter().any(|p| p.is_file())
    }

    /// `auto`'s choice: NCCL for a job on CUDA devices when it is available, else Gloo.
    pub fn auto_for(device: tch::Device) -> Backend {
        if device.is_cuda() && Self::nccl_available() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }
}

/// The NCCL backend's library (csrc/c10d_nccl.cpp), looked for in this order: the file
/// `NMT_NCCL_LIBRARY` names, this file beside the running executable (where an install or a
/// container image puts it), and where the build wrote it.
pub const NCCL_LIBRARY_FILE: &str = "libnmt_c10d_nccl.so";

fn nccl_library_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("NMT_NCCL_LIBRARY") {
        candidates.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        candidates.push(dir.join(NCCL_LIBRARY_FILE));
    }
    if let Some(path) = option_env!("NMT_NCCL_LIBRARY_BUILT") {
        candidates.push(PathBuf::from(path));
    }
    candidates
}

/// Loads the NCCL backend's library once (later calls return the first call's result) and
/// finds its constructor; `Err` says where it looked or why loading failed.
fn load_nccl() -> Result<ffi::NcclNew, String> {
    static LOADED: OnceLock<Result<ffi::NcclNew, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
            let candidates = nccl_library_candidates();
            let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                let places: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                return Err(format!(
                    "the nccl backend is not built into this copy of lstm-nmt ({NCCL_LIBRARY_FILE} \
                     is not at {}; CUDA's headers were missing when it was built: see \
                     distributed/build.rs)",
                    places.join(", ")
                ));
            };
            // SAFETY: loading it loads libtorch_cuda, whose static initialisers only register
            // CUDA kernels with the libtorch already in the process.
            let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
                .map_err(|e| format!("loading the nccl backend {}: {e}", path.display()))?;
            // SAFETY: the symbol has NcclNew's signature (csrc/c10d_nccl.cpp).
            let new = unsafe { library.get::<ffi::NcclNew>(ffi::NCCL_NEW_SYMBOL) }
                .map(|symbol| *symbol)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // Kept for the life of the process: the process group's code lives in it.
            std::mem::forget(library);
            Ok(new)
        })
        .clone()
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = DistError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => Err(DistError::Backend(format!(
                "unknown backend {other:?} (expected gloo or nccl)"
            ))),
        }
    }
}

/// Errors of the distributed layer. Each names this process's rank.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("{0}")]
    Backend(String),
    #[error(
        "rank {rank}: could not join the job through the store at {addr}:{port} within {timeout:?}: {message}"
    )]
    Join {
        rank: usize,
        addr: String,
        port: u16,
        timeout: Duration,
        message: String,
    },
    #[error("rank {rank}: {op} failed: {message}")]
    Collective {
        rank: usize,
        op: &'static str,
        message: String,
    },
    #[error("rank {rank}: {0}", rank = .1)]
    Tensor(tch::TchError, usize),
}

/// This process's membership of a c10d process group.
pub struct ProcessGroup {
    handle: NonNull<c_void>,
    rank: usize,
    world_size: usize,
    backend: Backend,
    timeout: Duration,
}

// SAFETY: the c10d objects behind the handle are thread-safe (c10d serves collectives from
// its own threads); the handle is only freed in Drop, which takes `&mut self`.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the job `launch` describes: every rank must call this within `timeout`, which
    /// also bounds every later collective.
    pub fn join(
        launch: &LaunchEnv,
        backend: Backend,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let nccl_new = match backend {
            Backend::Gloo => None,
            Backend::Nccl => Some(load_nccl().map_err(|message| {
                DistError::Backend(format!(
                    "{message}: run the job with --set training.dist_backend=gloo (Gloo also \
                     all-reduces CUDA tensors, through host memory)"
                ))
            })?),
        };
        let c = |s: &str| {
            CString::new(s).map_err(|_| DistError::Backend(format!("{s:?} holds a NUL byte")))
        };
        let backend_name = c(backend.as_str())?;
        let host = c(&launch.master_addr)?;
        let prefix = c(&format!("{KEY_PREFIX}/attempt-{}/", launch.attempt))?;
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer is a valid NUL-terminated string for the call's duration.
        let handle = unsafe {
            ffi::nmt_c10d_new(
                backend_name.as_ptr(),
                host.as_ptr(),
                launch.master_port,
                launch.rank as i32,
                launch.world_size as i32,
                launch.hosts_store() as i32,
                timeout_ms,
                prefix.as_ptr(),
                nccl_new,
                &mut err,
            )
        };
        match NonNull::new(handle) {
            Some(handle) => {
                let group = Self {
                    handle,
                    rank: launch.rank,
                    world_size: launch.world_size,
                    backend,
                    timeout,
                };
                let mut err = std::ptr::null_mut();
                // SAFETY: the handle is live.
                let status = unsafe {
                    ffi::nmt_c10d_heartbeat(
                        handle.as_ptr(),
                        launch.rank as i32,
                        HEARTBEAT_INTERVAL.as_millis() as i64,
                        &mut err,
                    )
                };
                group.check("starting the heartbeat", status, err)?;
                Ok(group)
            }
            None => Err(DistError::Join {
                rank: launch.rank,
                addr: launch.master_addr.clone(),
                port: launch.master_port,
                timeout,
                // SAFETY: `err` was set by the failed call.
                message: unsafe { ffi::take_error(err) },
            }),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn check(&self, op: &'static str, status: i32, err: *mut c_char) -> Result<(), DistError> {
        if status == 0 {
            return Ok(());
        }
        Err(DistError::Collective {
            rank: self.rank,
            op,
            // SAFETY: a non-zero status comes with the shim's message.
            message: unsafe { ffi::take_error(err) },
        })
    }

    /// Sums each tensor over all ranks, in place. The tensors must be contiguous and of the
    /// same shapes and kinds on every rank.
    pub fn all_reduce_sum(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        let mut pointers = ffi::tensor_pointers(tensors);
        let mut err = std::ptr::null_mut();
        // SAFETY: the pointers are live tensors for the duration of the call.
        let status = unsafe {
            ffi::nmt_c10d_allreduce_sum(
                self.handle.as_ptr(),
                pointers.as_mut_ptr(),
                pointers.len(),
                &mut err,
            )
        };
        self.check("all-reduce", status, err)
    }

    /// Overwrites each tensor with rank `root`'s, in place.
    pub fn broadcast(&self, tensors: &mut [Tensor], root: usize) -> Result<(), DistError> {
        let mut pointers = ffi::tensor_pointers(tensors);
        let mut err = std::ptr::null_mut();
        // SAFETY: as in all_reduce_sum.
        let status = unsafe {
            ffi::nmt_c10d_broadcast(
                self.handle.as_ptr(),
                pointers.as_mut_ptr(),
                pointers.len(),
                root as i32,
                &mut err,
            )
        };
        self.check("broadcast", status, err)
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<(), DistError> {
        let mut err = std::ptr::null_mut();
        // SAFETY: the handle is live.
        let status = unsafe { ffi::nmt_c10d_barrier(self.handle.as_ptr(), &mut err) };
        self.check("barrier", status, err)
    }

    /// Sums `tensors` over all ranks, in place, in few calls: the tensors are flattened into
    /// buckets of at most `bucket_bytes` (one tensor larger than that is its own bucket), each
    /// reduced as one float32 (or the tensors' common kind) buffer and copied back.
    pub fn all_reduce_sum_bucketed(
        &self,
        tensors: &[Tensor],
        bucket_bytes: usize,
    ) -> Result<(), DistError> {
        let tensor_err = |e| DistError::Tensor(e, self.rank);
        let mut start = 0;
        while start < tensors.len() {
            let kind = tensors[start].kind();
            let device = tensors[start].device();
            let mut end = start;
            let mut bytes = 0usize;
            while end < tensors.len()
                && tensors[end].kind() == kind
                && tensors[end].device() == device
                && (end == start || bytes + tensor_bytes(&tensors[end]) <= bucket_bytes.max(1))
            {
                bytes += tensor_bytes(&tensors[end]);
                end += 1;
            }
            let bucket = &tensors[start..end];
            let flat: Vec<Tensor> = bucket
                .iter()
                .map(|t| t.f_reshape([-1]))
                .collect::<Result<_, _>>()
                .map_err(tensor_err)?;
            let mut buffer = [Tensor::f_cat(&flat, 0).map_err(tensor_err)?];
            self.all_reduce_sum(&mut buffer)?;
            let sizes: Vec<i64> = bucket.iter().map(|t| t.numel() as i64).collect();
            let parts = buffer[0]
                .f_split_with_sizes(&sizes, 0)
                .map_err(tensor_err)?;
            for (target, part) in bucket.iter().zip(parts) {
                let mut target = target.shallow_clone();
                tch::no_grad(|| target.f_copy_(&part.f_view_as(&target)?)).map_err(tensor_err)?;
            }
            start = end;
        }
        Ok(())
    }

    /// Rank `root`'s bytes on every rank (`bytes` is ignored elsewhere).
    pub fn broadcast_bytes(&self, bytes: &[u8], root: usize) -> Result<Vec<u8>, DistError> {
        let tensor_err = |e| DistError::Tensor(e, self.rank);
        let mut len = [Tensor::from_slice(&[bytes.len() as i64])];
        self.broadcast(&mut len, root)?;
        let n = len[0].f_int64_value(&[0]).map_err(tensor_err)?;
        let mut data = [if self.rank == root {
            Tensor::from_slice(bytes)
        } else {
            Tensor::f_zeros([n], (Kind::Uint8, tch::Device::Cpu)).map_err(tensor_err)?
        }];
        self.broadcast(&mut data, root)?;
        Vec::<u8>::try_from(&data[0]).map_err(tensor_err)
    }

    /// Records that this rank reached `step` (a counter in the store; one round trip).
    pub fn mark_progress(&self, step: u64) -> Result<(), DistError> {
        let current = self.store_add(&progress_key(self.rank), 0)?;
        let delta = step as i64 - current;
        if delta != 0 {
            self.store_add(&progress_key(self.rank), delta)?;
        }
        Ok(())
    }

    /// After a failed collective: which ranks died or stalled (their heartbeat stopped over
    /// a short window) and the step each last reached, or an explanation when the store
    /// itself is gone (its host, rank 0 or torchrun's agent, stopped). Takes about 1.5 s.
    pub fn lagging_ranks(&self) -> String {
        let gone = "the rendezvous store does not answer: its host (rank 0, or torchrun's agent) \
                    has stopped";
        let others: Vec<usize> = (0..self.world_size).filter(|&r| r != self.rank).collect();
        let beats = |ranks: &[usize]| -> Option<Vec<i64>> {
            ranks
                .iter()
                .map(|r| self.store_add(&format!("beat/{r}"), 0).ok())
                .collect()
        };
        let Some(first) = beats(&others) else {
            return gone.into();
        };
        std::thread::sleep(HEARTBEAT_WINDOW);
        let Some(second) = beats(&others) else {
            return gone.into();
        };
        let mut silent = Vec::new();
        for (i, &rank) in others.iter().enumerate() {
            if second[i] == first[i] {
                let step = self
                    .store_add(&progress_key(rank), 0)
                    .map(|s| format!(" (at step {s})"))
                    .unwrap_or_default();
                silent.push(format!("rank {rank}{step}"));
            }
        }
        if silent.is_empty() {
            "every rank is alive; the failure came from the network or a collective timed out"
                .into()
        } else {
            format!(
                "{} stopped or stalled: no heartbeat for {:.1} s",
                silent.join(", "),
                HEARTBEAT_WINDOW.as_secs_f64()
            )
        }
    }

    fn store_add(&self, key: &str, delta: i64) -> Result<i64, DistError> {
        let key = CString::new(key).map_err(|_| DistError::Backend("NUL in a key".into()))?;
        let mut value = 0i64;
        let mut err = std::ptr::null_mut();
        // SAFETY: the key lives through the call; `value` is written on success only.
        let status = unsafe {
            ffi::nmt_c10d_store_add(
                self.handle.as_ptr(),
                key.as_ptr(),
                delta,
                &mut value,
                &mut err,
            )
        };
        self.check("store", status, err)?;
        Ok(value)
    }
}

fn progress_key(rank: usize) -> String {
    format!("progress/{rank}")
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: the handle came from nmt_c10d_new and is freed once.
        unsafe { ffi::nmt_c10d_free(self.handle.as_ptr()) }
    }
}

impl fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("backend", &self.backend)
            .finish()
    }
}
