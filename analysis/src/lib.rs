//! Seeing inside a trained lstm-nmt model (`nmt-analyze`, and the server's gate views):
//! every gate and state of a teacher-forced pass, seen through the model's step context
//! ([`model::gates::GateRecorder`]), turned into gate histograms ([`histogram`]), per-token
//! gate strips ([`tokens`]), neuron traces and the search for neurons that track simple token
//! properties ([`neurons`]), and the gradient flow through the encoder ([`gradients`]).
//!
//! Recording needs the step executors (the fused libtorch kernels show no gate), which
//! [`model::executor::pick`] chooses whenever a recorder is present; every bundle has them,
//! so every bundle can be analysed. Without a recorder nothing is recorded and nothing costs.

pub mod corpus;
pub mod error;
pub mod gradients;
pub mod histogram;
pub mod inspect;
pub mod neurons;
#[cfg(feature = "figures")]
pub mod plot;
pub mod record;
pub mod tokens;

pub use error::AnalysisError;
