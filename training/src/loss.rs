//! The training loss lives with the model (`model::loss`), so that the model's benchmarks
//! measure exactly what `nmt-train` runs; re-exported here where the trainer's users expect it.

pub use model::loss::{label_smoothed_nll, projected_label_smoothed_nll, LossOutput};
