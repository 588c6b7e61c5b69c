//! Evaluation: perplexity of a causal language model on a token stream.

use crate::error::{Error, Result};
use crate::llama::{Llama, NoTaps};

/// How perplexity windows are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scoring {
    /// Every prediction in a window: tokens 1..ctx, each from the tokens before it in its window.
    All,
    /// The second half of each window only, so that every scored token sees at least ctx/2 tokens of
    /// context (llama.cpp's `perplexity` tool).
    SecondHalf,
}

/// The result of a perplexity run.
#[derive(Clone, Debug, PartialEq)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub perplexity: f64,
    /// Mean negative log-likelihood in nats.
    pub nll: f64,
    /// Tokens scored.
    pub scored: usize,
    /// Tokens run through the model.
    pub tokens: usize,
    /// Windows run.
    pub windows: usize,
}

/// Perplexity of `model` on `tokens`, cut into consecutive windows of `ctx` tokens (a shorter last window is
/// dropped, as llama.cpp does), scored by `scoring`. `progress` is called with the number of windows done.
pub fn perplexity(
    model: &Llama,
    tokens: &[u32],
    ctx: usize,
    scoring: Scoring,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    if ctx < 2 {
        return Err(Error::Invalid(format!("context of {ctx} tokens: perplexity needs at least 2")));
    }
    let windows = tokens.len() / ctx;
    if windows == 0 {
        return Err(Error::Invalid(format!(
            "{} tokens do not fill one window of {ctx}: give more text or a shorter context",
            tokens.len()
        )));
    }
    let vocab = model.config.vocab;
    let first = match scoring {
        Scoring::All => 0,
        Scoring::SecondHalf => ctx / 2 - 1,
    };
    let (mut nll, mut scored) = (0f64, 0usize);
    for w in 0..windows {
        let win = &tokens[w * ctx..(w + 1) * ctx];
        let logits = model.forward(win, &mut NoTaps)?;
        for t in first..ctx - 1 {
            nll += token_nll(&logits[t * vocab..(t + 1) * vocab], win[t + 1] as usize);
            scored += 1;
        }
        progress(w + 1, windows);
    }
    let mean = nll / scored as f64;
    Ok(Perplexity { perplexity: mean.exp(), nll: mean, scored, tokens: windows * ctx, windows })
}

/// −log softmax(logits)[target], in float64.
pub fn token_nll(logits: &[f32], target: usize) -> f64 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - m).exp()).sum();
    m + sum.ln() - logits[target] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_nll_is_the_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&v| (v as f64).exp()).sum();
        for t in 0..3 {
            assert!((token_nll(&l, t) - (z.ln() - l[t] as f64)).abs() < 1e-12);
        }
    }
}
