//! Tokenizers: the byte-level BPE stored in a GGUF file's metadata (SmolLM2), and a `tokenizer.json` (MiniLM's
//! WordPiece), both run by the `tokenizers` crate.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// Text to token ids and back.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

/// GGUF token types (`tokenizer.ggml.token_type`) that are matched whole in text rather than merged:
/// control (3) and user-defined (4).
const SPECIAL_TYPES: [i64; 2] = [3, 4];

impl Tokenizer {
    /// The tokenizer in a GGUF file's metadata. Only byte-level BPE (`tokenizer.ggml.model` = `gpt2`) is
    /// built. Pre-tokenization follows llama.cpp: for `tokenizer.ggml.pre` = `smollm`, every digit is a piece
    /// of its own, then the GPT-2 split; other `gpt2` pre-tokenizers get the GPT-2 split alone. No prefix
    /// space is added (`tokenizer.ggml.add_space_prefix` false is the only setting accepted), and no BOS.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let bad = |why: String| Error::malformed(g.path(), why);
        let model = g.require("tokenizer.ggml.model")?.as_str().unwrap_or_default();
        if model != "gpt2" {
            return Err(Error::Unsupported(format!(
                "tokenizer.ggml.model `{model}`: lowp builds byte-level BPE tokenizers (`gpt2`) from GGUF metadata"
            )));
        }
        if g.get("tokenizer.ggml.add_space_prefix") == Some(&crate::gguf::Value::Bool(true)) {
            return Err(Error::Unsupported("tokenizer.ggml.add_space_prefix true (accepted: false)".into()));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let items = g.require(key)?.as_array().ok_or_else(|| bad(format!("metadata `{key}` is not an array")))?;
            items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| bad(format!("metadata `{key}` holds a non-string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
                None => Err(bad(format!("merge `{m}` is not two tokens separated by a space"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| bad(format!("the BPE vocabulary and merges do not build a tokenizer: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre: PreTokenizerWrapper = match g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()) {
            Some("smollm") => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
            _ => byte_level.into(),
        };
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if let Some(types) = g.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) {
            let special: Vec<AddedToken> = types
                .iter()
                .zip(&tokens)
                .filter(|(t, _)| t.as_u64().is_some_and(|t| SPECIAL_TYPES.contains(&(t as i64))))
                .map(|(_, s)| AddedToken::from(s.clone(), true))
                .collect();
            inner.add_special_tokens(&special);
        }
        Ok(Tokenizer { inner })
    }

    /// A `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::malformed(path, format!("not a tokenizer.json lowp can read: {e}")))?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text` (with the tokenizer's own special tokens, such as BERT's [CLS] and [SEP], when
    /// `specials` is true).
    pub fn encode(&self, text: &str, specials: bool) -> Result<Vec<u32>> {
        let e = self.inner.encode_fast(text, specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(e.get_ids().to_vec())
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Number of tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
