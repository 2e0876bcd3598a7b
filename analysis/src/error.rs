//! Errors of the analysis library; each names the file, line or option at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// An input or output file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of an input file is unusable (not UTF-8, ...).
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The inputs do not fit the bundle or each other (line counts, languages, sizes).
    #[error("{0}")]
    Input(String),
    /// A neuron, layer or side that the bundle does not have.
    #[error("{0}")]
    NoSuchUnit(String),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Vocab(#[from] vocab::VocabError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A figure could not be drawn or written.
    #[error("{path}: cannot draw the figure: {message}")]
    Plot { path: PathBuf, message: String },
}

impl AnalysisError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
