//! Corpus reading, batching and the trainer.
pub mod data;
