//! A llama-architecture causal language model in float32 (SmolLM2): token embedding, blocks of RMSNorm →
//! grouped-query attention with rotary position embedding → residual, RMSNorm → SwiGLU feed-forward →
//! residual, a final RMSNorm and the output projection (tied to the embedding when the file has none).
//!
//! The forward pass returns the logits of every position, which perplexity needs. It runs block by block
//! ([`Llama::embed`], [`Llama::block`], [`Llama::head`]) so that post-training quantization can quantize one
//! block with the inputs that the blocks before it, already quantized, produce; [`Taps`] sees the input of
//! every linear layer on the way.
//!
//! Rotary embedding: GGUF stores the query and key weights of llama models permuted so that the rotated pairs
//! are adjacent elements (2i, 2i + 1) of each head, with angle p · base^(−2i / head_dim) at position p
//! (llama.cpp's "normal" rope).

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::linalg::{matmul_t, rms_norm, softmax};
use lowp::ptq::gemm;

/// The hyperparameters of a llama model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Number of blocks.
    pub layers: usize,
    /// Model width.
    pub dim: usize,
    /// Query heads.
    pub heads: usize,
    /// Key-value heads (grouped-query attention: `heads / kv_heads` query heads share one).
    pub kv_heads: usize,
    /// Feed-forward width.
    pub ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RoPE base.
    pub rope_base: f64,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Longest context the model was trained for.
    pub context: usize,
}

impl LlamaConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
}

/// A linear layer: `y = W x` with `W` of `[out, inp]`, row-major, float32.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// The tensor's name in the model file (`blk.3.attn_q.weight`).
    pub name: String,
    /// Output features (rows of `w`).
    pub out: usize,
    /// Input features (columns of `w`).
    pub inp: usize,
    /// The weight, row-major.
    pub w: Vec<f32>,
}

impl Linear {
    /// `y = x Wᵀ` for `rows` rows of `x`.
    pub fn apply(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        matmul_t(x, &self.w, rows, self.inp, self.out, y);
    }
}

/// Where a linear layer's input comes from inside a block. Layers that share an input share a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// The normalized block input, fed to the query, key and value projections.
    Attention,
    /// The attention output, fed to the output projection.
    AttentionOut,
    /// The normalized residual, fed to the gate and up projections.
    Ffn,
    /// The SwiGLU product, fed to the down projection.
    FfnDown,
}

/// Sees the input of every linear layer during a forward pass.
pub trait Taps {
    /// `x` is `[rows, width]`, the input that `site` of block `layer` feeds to its linear layers.
    fn input(&mut self, layer: usize, site: Site, x: &[f32], rows: usize);
}

/// Taps that do nothing.
pub struct NoTaps;

impl Taps for NoTaps {
    fn input(&mut self, _: usize, _: Site, _: &[f32], _: usize) {}
}

/// One block's weights.
#[derive(Clone, Debug)]
pub struct Block {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection `[dim, dim]`.
    pub q: Linear,
    /// Key projection `[kv_heads · head_dim, dim]`.
    pub k: Linear,
    /// Value projection `[kv_heads · head_dim, dim]`.
    pub v: Linear,
    /// Attention output projection `[dim, dim]`.
    pub o: Linear,
    /// RMSNorm weight before the feed-forward.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate `[ffn, dim]`.
    pub gate: Linear,
    /// SwiGLU up `[ffn, dim]`.
    pub up: Linear,
    /// Down projection `[dim, ffn]`.
    pub down: Linear,
}

impl Block {
    /// The linear layers with the site each reads.
    pub fn linears(&self) -> [(Site, &Linear); 7] {
        [
            (Site::Attention, &self.q),
            (Site::Attention, &self.k),
            (Site::Attention, &self.v),
            (Site::AttentionOut, &self.o),
            (Site::Ffn, &self.gate),
            (Site::Ffn, &self.up),
            (Site::FfnDown, &self.down),
        ]
    }

    /// [`linears`](Self::linears), mutable.
    pub fn linears_mut(&mut self) -> [(Site, &mut Linear); 7] {
        [
            (Site::Attention, &mut self.q),
            (Site::Attention, &mut self.k),
            (Site::Attention, &mut self.v),
            (Site::AttentionOut, &mut self.o),
            (Site::Ffn, &mut self.gate),
            (Site::Ffn, &mut self.up),
            (Site::FfnDown, &mut self.down),
        ]
    }
}

/// A llama model with float32 weights.
#[derive(Clone, Debug)]
pub struct Llama {
    /// Hyperparameters.
    pub config: LlamaConfig,
    /// Token embedding `[vocab, dim]`.
    pub embedding: Vec<f32>,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Final RMSNorm weight.
    pub out_norm: Vec<f32>,
    /// Output projection `[vocab, dim]`; `None` when tied to the embedding.
    pub output: Option<Linear>,
}

impl Llama {
    /// Reads a llama-architecture GGUF file, dequantizing every tensor to float32.
    pub fn from_gguf(g: &Gguf) -> Result<Llama> {
        let arch = g.require("general.architecture")?.as_str().unwrap_or_default().to_string();
        if arch != "llama" {
            return Err(Error::Unsupported(format!("architecture `{arch}` (accepted: llama)")));
        }
        let key = |k: &str| format!("llama.{k}");
        let config = LlamaConfig {
            layers: g.require_usize(&key("block_count"))?,
            dim: g.require_usize(&key("embedding_length"))?,
            heads: g.require_usize(&key("attention.head_count"))?,
            kv_heads: g.require_usize(&key("attention.head_count_kv"))?,
            ffn: g.require_usize(&key("feed_forward_length"))?,
            vocab: 0,
            rope_base: g.get(&key("rope.freq_base")).and_then(|v| v.as_f64()).unwrap_or(10000.0),
            eps: g.require_f64(&key("attention.layer_norm_rms_epsilon"))? as f32,
            context: g.require_usize(&key("context_length"))?,
        };
        let c = &config;
        if c.heads == 0
            || c.kv_heads == 0
            || !c.dim.is_multiple_of(c.heads)
            || !c.heads.is_multiple_of(c.kv_heads)
            || !c.head_dim().is_multiple_of(2)
        {
            return Err(Error::Unsupported(format!(
                "{} heads, {} key-value heads and width {}: the width must split into heads of even width and the \
                 heads into key-value groups",
                c.heads, c.kv_heads, c.dim
            )));
        }
        if let Some(rd) = g.get(&key("rope.dimension_count")).and_then(|v| v.as_u64()) {
            if rd as usize != c.head_dim() {
                return Err(Error::Unsupported(format!("rotary embedding over {rd} of {} dimensions", c.head_dim())));
            }
        }
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (v, s) = g.dequantize(name)?;
            if s != shape {
                return Err(Error::Tensor { name: name.into(), why: format!("shape {s:?}, expected {shape:?}") });
            }
            Ok(v)
        };
        let linear = |name: String, out: usize, inp: usize| -> Result<Linear> {
            let w = tensor(&name, &[out, inp])?;
            Ok(Linear { name, out, inp, w })
        };
        let (embedding, eshape) = g.dequantize("token_embd.weight")?;
        if eshape.len() != 2 || eshape[1] != c.dim {
            return Err(Error::Tensor { name: "token_embd.weight".into(), why: format!("shape {eshape:?}") });
        }
        let vocab = eshape[0];
        let kv = c.kv_heads * c.head_dim();
        let blocks = (0..c.layers)
            .map(|l| -> Result<Block> {
                let n = |s: &str| format!("blk.{l}.{s}.weight");
                Ok(Block {
                    attn_norm: tensor(&n("attn_norm"), &[c.dim])?,
                    q: linear(n("attn_q"), c.dim, c.dim)?,
                    k: linear(n("attn_k"), kv, c.dim)?,
                    v: linear(n("attn_v"), kv, c.dim)?,
                    o: linear(n("attn_output"), c.dim, c.dim)?,
                    ffn_norm: tensor(&n("ffn_norm"), &[c.dim])?,
                    gate: linear(n("ffn_gate"), c.ffn, c.dim)?,
                    up: linear(n("ffn_up"), c.ffn, c.dim)?,
                    down: linear(n("ffn_down"), c.dim, c.ffn)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let out_norm = tensor("output_norm.weight", &[c.dim])?;
        let output = match g.tensor("output.weight") {
            Some(_) => Some(linear("output.weight".into(), vocab, c.dim)?),
            None => None,
        };
        let mut config = config;
        config.vocab = vocab;
        Ok(Llama { config, embedding, blocks, out_norm, output })
    }

    /// [`from_gguf`](Self::from_gguf) on a file.
    pub fn open(path: &Path) -> Result<Llama> {
        Llama::from_gguf(&Gguf::open(path)?)
    }

    /// The embedding rows of `tokens`: `[tokens.len(), dim]`. A window longer than the context the model was
    /// trained for is an error (attention memory grows with its square).
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.len() > self.config.context {
            return Err(Error::Invalid(format!(
                "a window of {} tokens is longer than the model's context of {}",
                tokens.len(),
                self.config.context
            )));
        }
        let d = self.config.dim;
        let mut x = vec![0f32; tokens.len() * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            let t = t as usize;
            if t >= self.config.vocab {
                return Err(Error::Invalid(format!("token id {t} is past the vocabulary of {}", self.config.vocab)));
            }
            row.copy_from_slice(&self.embedding[t * d..(t + 1) * d]);
        }
        Ok(x)
    }

    /// Runs block `layer` on the residual stream `x` (`[rows, dim]`, positions 0..rows) in place.
    pub fn block(&self, layer: usize, x: &mut [f32], rows: usize, taps: &mut dyn Taps) {
        let c = &self.config;
        let b = &self.blocks[layer];
        let (d, hd) = (c.dim, c.head_dim());
        let kvd = c.kv_heads * hd;
        let mut h = vec![0f32; rows * d];
        rms_norm(x, &b.attn_norm, c.eps, &mut h);
        taps.input(layer, Site::Attention, &h, rows);
        let (mut q, mut k, mut v) = (vec![0f32; rows * d], vec![0f32; rows * kvd], vec![0f32; rows * kvd]);
        b.q.apply(&h, rows, &mut q);
        b.k.apply(&h, rows, &mut k);
        b.v.apply(&h, rows, &mut v);
        let rope = Rope::new(hd, c.rope_base, rows);
        rope.apply(&mut q, d);
        rope.apply(&mut k, kvd);
        let att = attention(&q, &k, &v, rows, c.heads, c.kv_heads, hd);
        taps.input(layer, Site::AttentionOut, &att, rows);
        b.o.apply(&att, rows, &mut h);
        for (xv, hv) in x.iter_mut().zip(&h) {
            *xv += hv;
        }
        rms_norm(x, &b.ffn_norm, c.eps, &mut h);
        taps.input(layer, Site::Ffn, &h, rows);
        let (mut g, mut u) = (vec![0f32; rows * c.ffn], vec![0f32; rows * c.ffn]);
        b.gate.apply(&h, rows, &mut g);
        b.up.apply(&h, rows, &mut u);
        g.par_iter_mut().zip(&u).for_each(|(gv, &uv)| *gv = *gv / (1.0 + (-*gv).exp()) * uv);
        taps.input(layer, Site::FfnDown, &g, rows);
        b.down.apply(&g, rows, &mut h);
        for (xv, hv) in x.iter_mut().zip(&h) {
            *xv += hv;
        }
    }

    /// The final norm and output projection: logits `[rows, vocab]`.
    pub fn head(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let c = &self.config;
        let mut h = vec![0f32; rows * c.dim];
        rms_norm(x, &self.out_norm, c.eps, &mut h);
        let mut logits = vec![0f32; rows * c.vocab];
        match &self.output {
            Some(o) => o.apply(&h, rows, &mut logits),
            None => matmul_t(&h, &self.embedding, rows, c.dim, c.vocab, &mut logits),
        }
        logits
    }

    /// Logits of every position of `tokens` (positions 0..len): `[len, vocab]`.
    pub fn forward(&self, tokens: &[u32], taps: &mut dyn Taps) -> Result<Vec<f32>> {
        let mut x = self.embed(tokens)?;
        for l in 0..self.blocks.len() {
            self.block(l, &mut x, tokens.len(), taps);
        }
        Ok(self.head(&x, tokens.len()))
    }

    /// Every linear layer of every block, in order (the output projection, if untied, last).
    pub fn linears(&self) -> Vec<&Linear> {
        let mut v: Vec<&Linear> = self.blocks.iter().flat_map(|b| b.linears().map(|(_, l)| l)).collect();
        v.extend(self.output.iter());
        v
    }

    /// Number of weights in the linear layers of the blocks (what weight-only PTQ quantizes).
    pub fn block_weights(&self) -> usize {
        self.blocks.iter().flat_map(|b| b.linears().map(|(_, l)| l.w.len())).sum()
    }
}

/// Cosines and sines of the rotary embedding for positions 0..rows.
struct Rope {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    fn new(head_dim: usize, base: f64, rows: usize) -> Rope {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(rows * half), Vec::with_capacity(rows * half));
        for p in 0..rows {
            for i in 0..half {
                let theta = p as f64 * base.powf(-2.0 * i as f64 / head_dim as f64);
                cos.push(theta.cos() as f32);
                sin.push(theta.sin() as f32);
            }
        }
        Rope { half, cos, sin }
    }

    /// Rotates the pairs (2i, 2i + 1) of every head of every row of `x` (`[rows, width]`).
    fn apply(&self, x: &mut [f32], width: usize) {
        let half = self.half;
        x.par_chunks_mut(width).enumerate().for_each(|(p, row)| {
            let (cos, sin) = (&self.cos[p * half..(p + 1) * half], &self.sin[p * half..(p + 1) * half]);
            for head in row.chunks_exact_mut(2 * half) {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos[i] - b * sin[i];
                    pair[1] = a * sin[i] + b * cos[i];
                }
            }
        });
    }
}

/// Causal grouped-query attention: `q` is `[rows, heads · hd]`, `k` and `v` are `[rows, kv_heads · hd]`;
/// returns `[rows, heads · hd]`.
fn attention(q: &[f32], k: &[f32], v: &[f32], rows: usize, heads: usize, kv_heads: usize, hd: usize) -> Vec<f32> {
    let (qd, kvd) = (heads * hd, kv_heads * hd);
    let group = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let per_head: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let kh = h / group;
            let mut s = vec![0f32; rows * rows];
            // scores = q_h · k_hᵀ
            let (queries, keys) = (&q[h * hd..], &k[kh * hd..]);
            gemm(rows, hd, rows, 1.0, queries, (qd as isize, 1), keys, (1, kvd as isize), 0.0, &mut s, rows as isize);
            for (t, row) in s.chunks_exact_mut(rows).enumerate() {
                let live = &mut row[..=t];
                for x in live.iter_mut() {
                    *x *= scale;
                }
                softmax(live);
                row[t + 1..].fill(0.0);
            }
            let mut o = vec![0f32; rows * hd];
            gemm(
                rows,
                rows,
                hd,
                1.0,
                &s,
                (rows as isize, 1),
                &v[kh * hd..],
                (kvd as isize, 1),
                0.0,
                &mut o,
                hd as isize,
            );
            o
        })
        .collect();
    let mut out = vec![0f32; rows * qd];
    for (h, o) in per_head.iter().enumerate() {
        for (t, r) in o.chunks_exact(hd).enumerate() {
            out[t * qd + h * hd..t * qd + (h + 1) * hd].copy_from_slice(r);
        }
    }
    out
}
