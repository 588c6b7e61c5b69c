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

use lowp::quant::{Granularity, QuantizedTensor, Scheme};
use lowp::Rounding;

use crate::error::{Error, Result};
use crate::llama::{Linear, Llama};

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
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 1] = [Method::Rtn];

    /// The method's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Rtn => "rtn",
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
