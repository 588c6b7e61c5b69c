//! The error type of lowp-model.

use std::path::PathBuf;

/// What can go wrong reading, running or evaluating a model. Messages name the file or tensor, what was wrong
/// and what is accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file whose contents do not follow its format (GGUF, safetensors, tokenizer.json, config.json).
    #[error("{path}: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong, and where.
        why: String,
    },
    /// A model whose architecture, tensors or settings lowp does not run.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A tensor that is missing or has an unexpected shape.
    #[error("tensor `{name}`: {why}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What was wrong.
        why: String,
    },
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An argument out of its range (context length, token count, text too short).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// An error of lowp's core (a scheme string, a quantization).
    #[error(transparent)]
    Lowp(#[from] lowp::Error),
}

/// The result type of lowp-model.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A malformed-file error.
    pub(crate) fn malformed(path: &std::path::Path, why: impl Into<String>) -> Error {
        Error::Malformed { path: path.to_path_buf(), why: why.into() }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), source }
    }
}
