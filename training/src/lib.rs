//! Corpus reading, batching and the trainer.
