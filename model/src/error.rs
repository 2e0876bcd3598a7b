//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The architecture description is inconsistent.
    #[error("invalid model config: {0}")]
    Config(String),
    /// What a caller hands to the model is unusable: a batch of the wrong shape, kind or
    /// ids, or compression and averaging settings or weights that do not fit.
    #[error("invalid input: {0}")]
    Input(String),
    /// A bundle file is missing, unreadable, truncated or does not match the config.
    #[error("{path}: {message}")]
    Bundle { path: PathBuf, message: String },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Vocab(#[from] vocab::VocabError),
}

impl ModelError {
    pub(crate) fn bundle(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Bundle {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
