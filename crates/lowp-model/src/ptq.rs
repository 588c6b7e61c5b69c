//! Weight-only post-training quantization of a model's linear layers, and loading the results back.
//!
//! Every linear layer of every block is quantized along its input features: groups and blocks run along a
//! row of the `[out, in]` weight, and `:channel` schemes get one scale per output feature (a row). The token embedding,
//! the norms and a tied output projection stay in float32, as in GPTQ, AWQ and llama.cpp's own quantizations
//! of this model. The quantized tensors are lowp's packed safetensors (docs/quantization.md), one per layer,
//! under the layer's name in the model file; the model's float32 weights are replaced by their dequantized
//! values, so the same [`Llama`] evaluates the quantized model.

use std::collections::BTreeMap;
use std::path::Path;

use lowp::ptq::{GptqHessian, GptqOptions, Hessian};
use lowp::quant::{Granularity, Quantized, QuantizedTensor, Scheme};
use lowp::Rounding;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::llama::{Linear, Llama, NoTaps, Site, Taps};

/// Metadata keys of a saved quantized model.
pub const METHOD_KEY: &str = "lowp.ptq.method";
/// The scheme string.
pub const SCHEME_KEY: &str = "lowp.ptq.scheme";

/// A post-training quantization method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Round to nearest: each weight quantized on its own by the scheme.
    Rtn,
    /// GPTQ: column by column, each rounding error compensated on the columns not yet quantized through
    /// the layer's calibration Hessian (affine integer schemes).
    Gptq,
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 2] = [Method::Rtn, Method::Gptq];

    /// The method's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Rtn => "rtn",
            Method::Gptq => "gptq",
        }
    }

    /// The method by name.
    pub fn parse(name: &str) -> Result<Method> {
        Method::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown PTQ method `{name}`. Accepted: {}",
                Method::ALL.map(Method::name).join(", ")
            ))
        })
    }
}

/// The quantized layers of a model.
#[derive(Clone, Debug)]
pub struct QuantizedModel {
    /// The method that made them.
    pub method: Method,
    /// The scheme.
    pub scheme: Scheme,
    /// One quantized weight per linear layer, under its name in the model file, in model order.
    pub layers: Vec<(String, QuantizedTensor)>,
}

impl QuantizedModel {
    /// Weights quantized.
    pub fn weights(&self) -> usize {
        self.layers.iter().map(|(_, q)| q.len()).sum()
    }

    /// Storage of the quantized layers in bits per weight, scales and other metadata included.
    pub fn bits_per_weight(&self) -> f64 {
        let bits: u64 = self.layers.iter().map(|(_, q)| q.storage_bits()).sum();
        bits as f64 / self.weights().max(1) as f64
    }

    /// Saves the layers as lowp's packed safetensors, with the method and scheme in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let refs: Vec<(&str, &QuantizedTensor)> = self.layers.iter().map(|(n, q)| (n.as_str(), q)).collect();
        let meta = BTreeMap::from([
            (METHOD_KEY.to_string(), self.method.name().to_string()),
            (SCHEME_KEY.to_string(), self.scheme.to_string()),
        ]);
        let bytes = lowp::quant::to_bytes_with(&refs, &[], &meta)?;
        Ok(lowp::quant::write_atomically(path, &bytes)?)
    }
}

/// The axis of a `[out, inp]` weight that `scheme` runs along: 0 for per-channel schemes (one scale per output
/// feature, a row), 1 for everything else (groups and blocks along a row, the input features).
pub fn weight_axis(scheme: &Scheme) -> usize {
    match scheme {
        Scheme::Int(s) if s.granularity() == Granularity::Channel => 0,
        _ => 1,
    }
}

/// Quantizes `w` (`[out, inp]`) with `scheme` along its input features (per output feature for `:channel`).
pub fn quantize_weight(scheme: &Scheme, rounding: &Rounding, l: &Linear) -> Result<QuantizedTensor> {
    QuantizedTensor::quantize(scheme, rounding, &l.w, &[l.out, l.inp], weight_axis(scheme))
        .map_err(|e| Error::Tensor { name: l.name.clone(), why: format!("cannot quantize it with {scheme}: {e}") })
}

/// Round-to-nearest: every linear layer of every block quantized by `scheme` (layer k with seed + k, for
/// stochastic modes), its weights replaced by the dequantized values. `progress(done, total, name)`.
pub fn rtn(
    model: &mut Llama,
    scheme: &Scheme,
    rounding: &Rounding,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<QuantizedModel> {
    let total = model.blocks.len() * 7;
    let mut layers = Vec::with_capacity(total);
    for block in &mut model.blocks {
        for (_, l) in block.linears_mut() {
            let k = layers.len();
            let q = quantize_weight(scheme, &rounding.with_seed(rounding.seed.wrapping_add(k as u64)), l)?;
            q.dequantize(&mut l.w)?;
            layers.push((l.name.clone(), q));
            progress(k + 1, total, &l.name);
        }
    }
    Ok(QuantizedModel { method: Method::Rtn, scheme: scheme.clone(), layers })
}

/// Replaces the weights of `model`'s linear layers by the dequantized tensors of a file written by
/// [`QuantizedModel::save`] (or `lowp quantize` on a model's weights): every tensor must name a linear layer
/// of the model and have its shape. Returns the number of layers replaced.
pub fn apply_file(model: &mut Llama, path: &Path) -> Result<usize> {
    let tensors = lowp::quant::load(path)?;
    if tensors.is_empty() {
        return Err(Error::malformed(path, "it holds no tensors quantized by lowp"));
    }
    let mut by_name: BTreeMap<String, &mut Linear> = BTreeMap::new();
    for block in &mut model.blocks {
        for (_, l) in block.linears_mut() {
            by_name.insert(l.name.clone(), l);
        }
    }
    for (name, q) in &tensors {
        let Some(l) = by_name.get_mut(name) else {
            return Err(Error::Tensor {
                name: name.clone(),
                why: format!("{} quantizes it, but the model has no linear layer of that name", path.display()),
            });
        };
        if q.shape() != [l.out, l.inp] {
            return Err(Error::Tensor {
                name: name.clone(),
                why: format!("quantized with shape {:?}, the model's layer is [{}, {}]", q.shape(), l.out, l.inp),
            });
        }
        q.dequantize(&mut l.w)?;
    }
    Ok(tensors.len())
}

/// The calibration Hessian of each input site of one block, and the first input that could not be added
/// (non-finite activations).
struct SiteHessians {
    sites: Vec<(Site, Hessian)>,
    failed: Option<(Site, lowp::Error)>,
}

impl Taps for SiteHessians {
    fn input(&mut self, _: usize, site: Site, x: &[f32], rows: usize) {
        if let Some((_, h)) = self.sites.iter_mut().find(|(s, _)| *s == site) {
            if let (Err(e), None) = (h.add(x, rows), &self.failed) {
                self.failed = Some((site, e));
            }
        }
    }
}

/// GPTQ of every linear layer, block by block: the calibration windows run through the blocks already
/// quantized, the four input sites of the next block collect their Hessians (q, k and v share one, as do
/// gate and up), its seven layers are quantized (in parallel), and the windows go on through the quantized
/// block. `calibration` holds windows of token ids. `progress(done, total, name)` once per block.
pub fn gptq_model(
    model: &mut Llama,
    scheme: &Scheme,
    calibration: &[Vec<u32>],
    options: &GptqOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<QuantizedModel> {
    let int = lowp::ptq::gptq_scheme(scheme)?;
    options.check(int)?;
    if calibration.is_empty() || calibration.iter().any(|w| w.is_empty()) {
        return Err(Error::Invalid("GPTQ needs calibration text: at least one non-empty window of tokens".into()));
    }
    let mut xs: Vec<Vec<f32>> = calibration.iter().map(|w| model.embed(w)).collect::<Result<_>>()?;
    let (dim, ffn) = (model.config.dim, model.config.ffn);
    let total = model.blocks.len();
    let mut layers = Vec::with_capacity(total * 7);
    for l in 0..total {
        let mut taps = SiteHessians {
            sites: vec![
                (Site::Attention, Hessian::new(dim)),
                (Site::AttentionOut, Hessian::new(dim)),
                (Site::Ffn, Hessian::new(dim)),
                (Site::FfnDown, Hessian::new(ffn)),
            ],
            failed: None,
        };
        for (x, w) in xs.iter().zip(calibration) {
            model.block(l, &mut x.clone(), w.len(), &mut taps);
        }
        if let Some((site, e)) = taps.failed {
            return Err(Error::Tensor {
                name: format!("blk.{l} {site:?} inputs"),
                why: format!("the calibration activations cannot make a Hessian: {e}"),
            });
        }
        // One factorization per site, shared by the layers that read it.
        let prepared: Vec<(Site, GptqHessian)> = taps
            .sites
            .par_iter()
            .map(|(site, h)| {
                let n = h.dim();
                GptqHessian::new(&h.matrix(), n, options)
                    .map(|g| (*site, g))
                    .map_err(|e| Error::Tensor { name: format!("blk.{l} {site:?} inputs"), why: format!("GPTQ: {e}") })
            })
            .collect::<Result<_>>()?;
        let block = &mut model.blocks[l];
        let done: Vec<Result<(String, QuantizedTensor)>> = block
            .linears_mut()
            .into_par_iter()
            .map(|(site, lin)| {
                let h = &prepared.iter().find(|(s, _)| *s == site).expect("every site has a Hessian").1;
                let w: Vec<f64> = lin.w.iter().map(|&v| f64::from(v)).collect();
                let g = h
                    .quantize(int, &w, lin.out)
                    .map_err(|e| Error::Tensor { name: lin.name.clone(), why: format!("GPTQ with {scheme}: {e}") })?;
                for (o, &v) in lin.w.iter_mut().zip(&g.values) {
                    *o = v as f32;
                }
                Ok((lin.name.clone(), QuantizedTensor::pack(scheme, &Quantized::Int(g.quantized))?))
            })
            .collect();
        for d in done {
            layers.push(d?);
        }
        for (x, w) in xs.iter_mut().zip(calibration) {
            model.block(l, x, w.len(), &mut NoTaps);
        }
        progress(l + 1, total, &format!("block {l}"));
    }
    Ok(QuantizedModel { method: Method::Gptq, scheme: scheme.clone(), layers })
}

/// Consecutive windows of `ctx` tokens from the start of `tokens`, at most `max_tokens` tokens in all (the
/// calibration set).
pub fn windows(tokens: &[u32], ctx: usize, max_tokens: usize) -> Result<Vec<Vec<u32>>> {
    if ctx == 0 {
        return Err(Error::Invalid("calibration windows of 0 tokens".into()));
    }
    let n = tokens.len().min(max_tokens) / ctx;
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{} calibration tokens (of {} asked for) do not fill one window of {ctx}",
            tokens.len().min(max_tokens),
            max_tokens
        )));
    }
    Ok(tokens.chunks_exact(ctx).take(n).map(<[u32]>::to_vec).collect())
}
