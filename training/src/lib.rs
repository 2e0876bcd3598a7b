//! Corpus reading, batching and the trainer.
pub mod autocast;
pub mod checkpoint;
pub mod config;
pub mod corpus_source;
pub mod data;
pub mod init_from;
pub mod log;
pub mod nmt_model;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod ranks;
pub mod run;
pub mod schedule;
pub mod split_step;
pub mod trainable;
pub mod trainer;
