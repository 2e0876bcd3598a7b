//! The lstm-nmt network on libtorch (through `tch`): embeddings, a
//! (bidirectional) LSTM/GRU encoder, a decoder with input feeding and
//! attention, model bundles on disk, and search.

pub mod atomic;
pub mod attention;
pub mod beam;
pub mod bundle;
pub mod cell;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compress;
pub mod config;
pub mod decoder;
pub mod device;
pub mod dropout;
pub mod encoder;
pub mod error;
pub mod executor;
pub mod gates;
pub mod linear;
pub mod logits_scan;
pub mod loss;
pub mod random;
pub mod rnn;
pub mod search;
pub mod sentences;
pub mod seq2seq;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod threads;
pub mod translate;

pub use bundle::Bundle;
pub use config::{AttentionKind, CellKind, Executor, ModelConfig};
pub use error::ModelError;
pub use gates::{GateConfig, GateKind, StepContext};
pub use seq2seq::Seq2Seq;
pub use threads::IntraOpShare;
