//! libtorch's intra-op threads shared among worker threads that run side by side (the
//! translation workers of `translate`, the training step's workers in nmt-train).

/// While alive, the creating thread runs with `threads / workers` of libtorch's intra-op
/// threads (at least one), and each worker thread that calls [`IntraOpShare::enter`] too;
/// dropping it gives the creating thread back the count it had.
///
/// Why per thread: libtorch's intra-op count lives in the calling thread's OpenMP state, so
/// a worker thread starts with the process default and must be told its share.
#[derive(Debug)]
pub struct IntraOpShare {
    before: i32,
    per_worker: i32,
}

impl IntraOpShare {
    /// Splits the calling thread's current count among `workers` (at least 1).
    pub fn new(workers: usize) -> Self {
        let before = tch::get_num_threads();
        let per_worker = (before / workers.max(1) as i32).max(1);
        tch::set_num_threads(per_worker);
        Self { before, per_worker }
    }

    /// Intra-op threads of each worker.
    pub fn per_worker(&self) -> i32 {
        self.per_worker
    }

    /// Gives the calling (worker) thread its share.
    pub fn enter(&self) {
        tch::set_num_threads(self.per_worker);
    }
}

impl Drop for IntraOpShare {
    fn drop(&mut self) {
        tch::set_num_threads(self.before);
    }
}
