//! The one error type of this crate.

use std::path::Path;

/// Errors from loading, training or using a vocabulary. Every variant that
/// comes from a file names it, so a caller can print the error as it is.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// A vocabulary file exists but is not one we can use (wrong format,
    /// truncated, corrupt, wrong special-token layout).
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A line of a text file is unusable (for instance not UTF-8).
    #[error("{path}:{line}: {message}")]
    Input {
        path: String,
        /// 1-based line number.
        line: usize,
        message: String,
    },
    /// Training options or data that cannot give a vocabulary.
    #[error("training: {0}")]
    Train(String),
    /// An id passed to [`crate::Vocab::decode`] that the vocabulary does not have.
    #[error("id {id} is out of range for a vocabulary of {len} ids")]
    IdOutOfRange { id: u32, len: usize },
    /// Anything else the underlying tokenizer library reports.
    #[error("{0}")]
    Other(String),
}

impl VocabError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        VocabError::Io {
            path: path.display().to_string(),
            error,
        }
    }

    pub(crate) fn load(path: &Path, message: impl Into<String>) -> Self {
        VocabError::Load {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}
