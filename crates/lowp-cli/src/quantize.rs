//! `lowp quantize` and `lowp dequantize`: quantization schemes applied to the float tensors of a .npy or
//! .safetensors file, stored as lowp's packed safetensors (docs/quantization.md), and back.
//!
//! safetensors inputs are read one tensor at a time (the header, then each tensor's bytes), so a model file
//! larger than memory can be quantized; only the packed results are kept until the output is written.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use lowp::quant::{Floats, PlainTensor, QuantizedTensor, SafetensorsFile, Scheme};
use lowp::{Element, Rounding};

use crate::convert::FloatType;
use crate::npy::{self, Data};
use crate::table::{Align, Table};
use crate::timing::Progress;

/// A file of float tensors: one .npy array, or the tensors of a .safetensors file.
pub enum Source {
    Npy { name: String, shape: Vec<usize>, data: Option<Floats> },
    Safetensors(SafetensorsFile),
}

/// One tensor read from a [`Source`].
pub struct Loaded {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Floats,
}

impl Source {
    /// Opens `path` by its extension. A .npy file is read now (float32 or float64); a .safetensors file only
    /// has its header read.
    pub fn open(path: &Path, command: &str) -> Result<Source> {
        match extension(path).as_str() {
            "npy" => {
                let a = npy::read(path, npy::FLOATS, command)?;
                let name = path.file_stem().map_or("tensor".into(), |s| s.to_string_lossy().into_owned());
                let shape = a.shape.iter().map(|&d| d as usize).collect();
                let data = match a.data {
                    Data::F32(x) => Floats::F32(x),
                    Data::F64(x) => Floats::F64(x),
                    _ => unreachable!("npy::read returns only the accepted kinds"),
                };
                Ok(Source::Npy { name, shape, data: Some(data) })
            }
            "safetensors" => Ok(Source::Safetensors(SafetensorsFile::open(path)?)),
            other => bail!("{}: unknown input type `.{other}`; accepted: .npy and .safetensors", path.display()),
        }
    }

    /// The names of the float tensors (F64, F32, F16, BF16), in name order.
    pub fn float_names(&self) -> Vec<String> {
        match self {
            Source::Npy { name, .. } => vec![name.clone()],
            Source::Safetensors(f) => f
                .tensors()
                .iter()
                .filter(|(_, i)| matches!(i.dtype.as_str(), "F64" | "F32" | "F16" | "BF16"))
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// The shape of a tensor.
    pub fn shape(&self, name: &str) -> Vec<usize> {
        match self {
            Source::Npy { shape, .. } => shape.clone(),
            Source::Safetensors(f) => f.tensors().get(name).map(|i| i.shape.clone()).unwrap_or_default(),
        }
    }

    /// Reads float tensor `name` (a .npy source hands over its one array).
    pub fn load(&mut self, name: &str) -> Result<Loaded> {
        match self {
            Source::Npy { name: n, shape, data } => {
                let data = data.take().with_context(|| format!("tensor `{n}` was already read"))?;
                Ok(Loaded { name: n.clone(), shape: shape.clone(), data })
            }
            Source::Safetensors(f) => {
                let data = f.read_floats(name)?.with_context(|| format!("tensor `{name}` is not a float tensor"))?;
                let shape = f.tensors()[name].shape.clone();
                Ok(Loaded { name: name.to_string(), shape, data })
            }
        }
    }
}

fn extension(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// `axis` (negative counts from the end) as an index into `shape`; a 0-d tensor has the one axis 0.
pub fn resolve_axis(axis: isize, shape: &[usize]) -> Result<usize> {
    let nd = shape.len().max(1) as isize;
    let a = if axis < 0 { axis + nd } else { axis };
    if !(0..nd).contains(&a) {
        bail!("axis {axis} is out of range for a tensor of shape {shape:?} (accepted: -{nd}..{})", nd - 1);
    }
    Ok(a as usize)
}

/// The error of `y` against `x` over the elements whose input and output are both finite.
pub struct ErrorStats {
    pub measured: usize,
    sum_x2: f64,
    sum_e2: f64,
    pub max_abs: f64,
}

impl ErrorStats {
    pub fn of<T: Element>(x: &[T], y: &[T]) -> ErrorStats {
        let mut m = ErrorStats { measured: 0, sum_x2: 0.0, sum_e2: 0.0, max_abs: 0.0 };
        for (&a, &b) in x.iter().zip(y) {
            let (a, b) = (a.to_f64(), b.to_f64());
            if a.is_finite() && b.is_finite() {
                let e = (a - b).abs();
                m.measured += 1;
                m.sum_x2 += a * a;
                m.sum_e2 += e * e;
                m.max_abs = m.max_abs.max(e);
            }
        }
        m
    }

    /// NaN when nothing was measured.
    pub fn mse(&self) -> f64 {
        if self.measured == 0 {
            f64::NAN
        } else {
            self.sum_e2 / self.measured as f64
        }
    }

    /// SQNR in dB; inf when there is no error at all (an all-zero tensor included).
    pub fn sqnr_db(&self) -> f64 {
        if self.sum_e2 == 0.0 {
            return f64::INFINITY;
        }
        10.0 * (self.sum_x2 / self.sum_e2).log10()
    }
}

pub struct QuantizeOptions<'a> {
    pub scheme: &'a Scheme,
    pub rounding: Rounding,
    pub axis: isize,
    pub min_dims: usize,
}

/// `lowp quantize`: every float tensor of `input` with at least `min_dims` dimensions is quantized (tensor k
/// in name order with seed + k); the rest are stored unchanged.
pub fn quantize(opts: &QuantizeOptions, input: &Path, output: &Path, out: &mut dyn Write) -> Result<()> {
    if extension(output) != "safetensors" {
        bail!("{}: the output of quantize is a .safetensors file", output.display());
    }
    let mut src = Source::open(input, "quantize")?;
    if let Source::Safetensors(f) = &src {
        if f.metadata().contains_key(lowp::quant::METADATA_KEY) {
            bail!("{} holds tensors quantized by lowp; dequantize it first (lowp dequantize)", input.display());
        }
    }
    let names = src.float_names();
    let mut bar = Progress::new("quantize", names.len());
    let mut done: Vec<(String, QuantizedTensor)> = Vec::new();
    let mut plain = Vec::new();
    let mut table = Table::new(&[
        ("tensor", Align::Left),
        ("shape", Align::Left),
        ("scheme", Align::Left),
        ("bits/elem", Align::Right),
        ("SQNR dB", Align::Right),
    ]);
    let (mut elements, mut bits) = (0u64, 0u64);
    for (k, name) in names.iter().enumerate() {
        bar.step(name);
        let shape = src.shape(name);
        if shape.len() < opts.min_dims {
            if let Source::Safetensors(f) = &mut src {
                let dtype = f.tensors()[name].dtype.clone();
                plain.push(PlainTensor { name: name.clone(), dtype, shape, data: f.read(name)? });
            }
            continue;
        }
        let t = src.load(name)?;
        let axis = resolve_axis(opts.axis, &t.shape).with_context(|| format!("tensor `{name}`"))?;
        let cfg = opts.rounding.with_seed(opts.rounding.seed.wrapping_add(k as u64));
        let what = || format!("cannot quantize tensor `{name}` {:?} with {}", t.shape, opts.scheme);
        let (q, sqnr) = match &t.data {
            Floats::F32(x) => quantize_one(opts.scheme, &cfg, x, &t.shape, axis).with_context(what)?,
            Floats::F64(x) => quantize_one(opts.scheme, &cfg, x, &t.shape, axis).with_context(what)?,
        };
        elements += q.len() as u64;
        bits += q.storage_bits();
        table.row(vec![
            name.clone(),
            format!("{:?}", t.shape),
            opts.scheme.to_string(),
            format!("{:.3}", q.bits_per_element()),
            if sqnr.is_infinite() { "exact".into() } else { format!("{sqnr:.2}") },
        ]);
        done.push((name.clone(), q));
    }
    drop(bar);
    // Integer and boolean tensors of a safetensors input are kept as they are.
    if let Source::Safetensors(f) = &mut src {
        let others: Vec<String> = f.tensors().keys().filter(|n| !names.contains(n)).cloned().collect();
        for name in others {
            let info = f.tensors()[&name].clone();
            plain.push(PlainTensor { name: name.clone(), dtype: info.dtype, shape: info.shape, data: f.read(&name)? });
        }
    }
    if done.is_empty() {
        bail!("{}: no float tensor with at least {} dimensions to quantize", input.display(), opts.min_dims);
    }
    let refs: Vec<(&str, &QuantizedTensor)> = done.iter().map(|(n, q)| (n.as_str(), q)).collect();
    // The input's own metadata (e.g. `format: pt`) goes along.
    let metadata = match &src {
        Source::Safetensors(f) => f.metadata().clone(),
        Source::Npy { .. } => Default::default(),
    };
    let bytes = lowp::quant::to_bytes_with(&refs, &plain, &metadata)?;
    lowp::quant::write_atomically(output, &bytes)?;
    write!(out, "{}", table.render())?;
    writeln!(
        out,
        "{} tensors quantized ({elements} elements, {:.3} bits/element with scales), {} kept as they were; wrote {} \
         ({} bytes)",
        done.len(),
        bits as f64 / elements.max(1) as f64,
        plain.len(),
        output.display(),
        bytes.len()
    )?;
    Ok(())
}

fn quantize_one<T: Element>(
    scheme: &Scheme,
    cfg: &Rounding,
    x: &[T],
    shape: &[usize],
    axis: usize,
) -> Result<(QuantizedTensor, f64)> {
    let q = QuantizedTensor::quantize(scheme, cfg, x, shape, axis)?;
    let mut y = vec![T::from_f64(0.0); x.len()];
    q.dequantize(&mut y)?;
    Ok((q, ErrorStats::of(x, &y).sqnr_db()))
}

/// `lowp dequantize`: the quantized tensors of a file written by `quantize` as float values, into a .npy
/// file (one tensor: the only one, or `name`) or a .safetensors file (every tensor; plain tensors copied).
pub fn dequantize(
    input: &Path,
    output: &Path,
    dtype: FloatType,
    name: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut file = SafetensorsFile::open(input)?;
    let tensors = file.quantized()?;
    let all: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let chosen: Vec<&(String, QuantizedTensor)> = match name {
        Some(n) => vec![tensors
            .iter()
            .find(|(t, _)| t == n)
            .with_context(|| format!("{} has no quantized tensor `{n}`; it has {all:?}", input.display()))?],
        None => tensors.iter().collect(),
    };
    match extension(output).as_str() {
        "npy" => {
            let [(n, q)] = chosen[..] else {
                bail!(
                    "{} holds {} quantized tensors {all:?}; a .npy output takes one: pick it with --name",
                    input.display(),
                    chosen.len()
                );
            };
            let shape: Vec<u64> = q.shape().iter().map(|&d| d as u64).collect();
            match dtype {
                FloatType::F32 => npy::write(output, &shape, &values::<f32>(q)?)?,
                FloatType::F64 => npy::write(output, &shape, &values::<f64>(q)?)?,
            }
            writeln!(out, "{n}: {:?} {} -> {}", q.shape(), q.scheme(), output.display())?;
        }
        "safetensors" => {
            let mut plain = Vec::new();
            for (n, q) in &chosen {
                let (dt, data) = match dtype {
                    FloatType::F32 => ("F32", values::<f32>(q)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
                    FloatType::F64 => ("F64", values::<f64>(q)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
                };
                plain.push(PlainTensor { name: n.clone(), dtype: dt.into(), shape: q.shape().to_vec(), data });
            }
            if name.is_none() {
                let quantized_parts: Vec<String> = tensors
                    .iter()
                    .flat_map(|(n, q)| q.parts().iter().map(move |p| format!("{n}.{}", p.name)))
                    .collect();
                let others: Vec<String> =
                    file.tensors().keys().filter(|k| !quantized_parts.contains(k)).cloned().collect();
                for k in others {
                    let info = file.tensors()[&k].clone();
                    plain.push(PlainTensor {
                        name: k.clone(),
                        dtype: info.dtype,
                        shape: info.shape,
                        data: file.read(&k)?,
                    });
                }
            }
            let mut metadata = file.metadata().clone();
            metadata.remove(lowp::quant::METADATA_KEY);
            let bytes = lowp::quant::to_bytes_with(&[], &plain, &metadata)?;
            lowp::quant::write_atomically(output, &bytes)?;
            writeln!(out, "{} tensors dequantized -> {}", chosen.len(), output.display())?;
        }
        other => bail!("{}: unknown output type `.{other}`; accepted: .npy and .safetensors", output.display()),
    }
    Ok(())
}

fn values<T: Element>(q: &QuantizedTensor) -> Result<Vec<T>> {
    let mut y = vec![T::from_f64(0.0); q.len()];
    q.dequantize(&mut y)?;
    Ok(y)
}
