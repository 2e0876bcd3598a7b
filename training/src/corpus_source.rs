//! [`BatchSource`] over an encoded corpus and its token-budget batcher (`crate::data`).

use crate::data::{Batch, BatchPlan, EncodedCorpus, TokenBatcher};
use crate::trainable::{BatchSource, DynError, HostBatch};

impl From<Batch> for HostBatch {
    fn from(b: Batch) -> Self {
        HostBatch {
            src: b.src,
            src_lengths: b.src_lengths,
            tgt_in: b.tgt_in,
            tgt_out: b.tgt_out,
            indices: b.indices,
            batch_size: b.batch_size,
            src_len: b.src_len,
            tgt_len: b.tgt_len,
        }
    }
}

/// Training batches: the batcher's per-epoch plan (a pure function of `(seed, epoch)`), with
/// the current epoch's plan cached.
pub struct CorpusBatches {
    corpus: EncodedCorpus,
    batcher: TokenBatcher,
    /// The plan of epoch `plan_epoch`.
    plan: BatchPlan,
    plan_epoch: u64,
}

impl CorpusBatches {
    /// Batches of `corpus` planned by `batcher` (built with the run's seed).
    pub fn new(corpus: EncodedCorpus, batcher: TokenBatcher) -> Self {
        let plan = batcher.epoch(0);
        Self {
            corpus,
            batcher,
            plan,
            plan_epoch: 0,
        }
    }

    /// The corpus.
    pub fn corpus(&self) -> &EncodedCorpus {
        &self.corpus
    }

    fn plan(&mut self, epoch: u64) -> &BatchPlan {
        if self.plan_epoch != epoch {
            self.plan = self.batcher.epoch(epoch);
            self.plan_epoch = epoch;
        }
        &self.plan
    }
}

impl BatchSource for CorpusBatches {
    fn epoch_len(&mut self, epoch: u64) -> Result<u64, DynError> {
        Ok(self.plan(epoch).len() as u64)
    }

    fn batch(&mut self, epoch: u64, index: u64) -> Result<HostBatch, DynError> {
        let plan = self.plan(epoch);
        if index as usize >= plan.len() {
            return Err(format!(
                "batch {index} of epoch {epoch} asked for, the epoch has {}",
                plan.len()
            )
            .into());
        }
        let ids = plan.batch(index as usize).to_vec();
        Ok(Batch::collate(&self.corpus, &ids).into())
    }
}

/// Validation batches in the batcher's fixed length order.
pub fn ordered_batches(corpus: &EncodedCorpus, batcher: &TokenBatcher) -> Vec<HostBatch> {
    batcher
        .ordered()
        .batches(corpus, 0)
        .map(HostBatch::from)
        .collect()
}
