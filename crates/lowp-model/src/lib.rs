//! Models for lowp's post-training quantization and quantized-model simulation: GGUF files ([`gguf`], with
//! ggml's block types in [`ggml`]), tokenizers ([`tokenizer`]), a llama-architecture language model
//! ([`llama`]) and its evaluation ([`eval`]), all in float32 on the CPU; post-training quantization ([`ptq`]) and
//! export of the result to GGUF ([`export`]). [`data`] finds the models and text
//! that `scripts/fetch-models.sh` prepares.

pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod ggml;
pub mod gguf;
pub mod linalg;
pub mod llama;
pub mod ptq;
pub mod tokenizer;

pub use error::{Error, Result};
