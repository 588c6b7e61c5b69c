//! `lowp eval`, `lowp ptq`, `lowp tokenize` and `lowp logits`: the language model of lowp-model (SmolLM2 by
//! default, as `scripts/fetch-models.sh` prepares it) evaluated, quantized after training, and opened up for
//! differential tests (token ids and logits as .npy files).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lowp::ptq::GptqOptions;
use lowp::quant::Scheme;
use lowp::Rounding;
use lowp_model::data;
use lowp_model::eval::{perplexity, Scoring};
use lowp_model::gguf::Gguf;
use lowp_model::llama::{Llama, NoTaps};
use lowp_model::ptq::{self, Method};
use lowp_model::tokenizer::Tokenizer;

use crate::npy::{self, Data};
use crate::timing::Progress;

/// The model file: the one given, or SmolLM2 in the data folder.
fn model_path(model: Option<&Path>) -> Result<PathBuf> {
    Ok(match model {
        Some(p) => p.to_path_buf(),
        None => data::smollm2()?,
    })
}

/// The model and its tokenizer, with the layers of `quantized` (a file of `lowp ptq`) swapped in.
fn open(model: Option<&Path>, quantized: Option<&Path>) -> Result<(Llama, Tokenizer)> {
    let path = model_path(model)?;
    let g = Gguf::open(&path)?;
    let mut m = Llama::from_gguf(&g).with_context(|| format!("cannot build a model from {}", path.display()))?;
    let tok = Tokenizer::from_gguf(&g)?;
    if let Some(q) = quantized {
        ptq::apply_file(&mut m, q)?;
    }
    Ok((m, tok))
}

/// The token ids of a text file (the tutorial by default), at most `max` of them.
fn tokens(tok: &Tokenizer, text: Option<&Path>, max: Option<usize>) -> Result<(PathBuf, Vec<u32>)> {
    let path = match text {
        Some(p) => p.to_path_buf(),
        None => data::tutorial()?,
    };
    let s = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    let mut ids = tok.encode(&s, false)?;
    if let Some(m) = max {
        ids.truncate(m);
    }
    Ok((path, ids))
}

pub struct EvalOptions {
    pub model: Option<PathBuf>,
    pub quantized: Option<PathBuf>,
    pub text: Option<PathBuf>,
    pub ctx: usize,
    pub max_tokens: Option<usize>,
    pub scoring: Scoring,
    pub json: bool,
}

/// `lowp eval`: perplexity of the model (or its quantized layers) on a text.
pub fn eval(o: &EvalOptions, out: &mut dyn Write) -> Result<()> {
    let (m, tok) = open(o.model.as_deref(), o.quantized.as_deref())?;
    let (text, ids) = tokens(&tok, o.text.as_deref(), o.max_tokens)?;
    let t0 = Instant::now();
    let windows = ids.len() / o.ctx.max(1);
    let mut bar = Progress::new("eval", windows);
    let p = perplexity(&m, &ids, o.ctx, o.scoring, &mut |done, total| bar.step(&format!("window {done}/{total}")))?;
    drop(bar);
    let secs = t0.elapsed().as_secs_f64();
    let rate = p.tokens as f64 / secs;
    if o.json {
        let rec = serde_json::json!({
            "model": model_path(o.model.as_deref())?.display().to_string(),
            "quantized": o.quantized.as_ref().map(|q| q.display().to_string()),
            "text": text.display().to_string(),
            "ctx": o.ctx,
            "scoring": scoring_name(o.scoring),
            "perplexity": p.perplexity,
            "nll": p.nll,
            "scored": p.scored,
            "tokens": p.tokens,
            "windows": p.windows,
            "seconds": secs,
            "tokens_per_second": rate,
        });
        writeln!(out, "{rec}")?;
    } else {
        writeln!(
            out,
            "perplexity {:.4} (mean NLL {:.5} nats) on {} scored tokens of {} ({} windows of {}, {} scored) in \
             {:.1} s, {:.0} tokens/s",
            p.perplexity,
            p.nll,
            p.scored,
            text.display(),
            p.windows,
            o.ctx,
            scoring_name(o.scoring),
            secs,
            rate
        )?;
    }
    Ok(())
}

pub fn scoring_name(s: Scoring) -> &'static str {
    match s {
        Scoring::All => "all",
        Scoring::SecondHalf => "second-half",
    }
}

pub struct PtqOptions {
    pub model: Option<PathBuf>,
    pub method: Method,
    pub scheme: Scheme,
    pub rounding: Rounding,
    pub calib: Option<PathBuf>,
    pub calib_tokens: usize,
    pub ctx: usize,
    pub gptq: GptqOptions,
    pub out: PathBuf,
}

/// `lowp ptq`: quantizes every linear layer of the model's blocks and saves them.
pub fn ptq(o: &PtqOptions, out: &mut dyn Write) -> Result<()> {
    if !o.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
        bail!("{}: the output of ptq is a .safetensors file", o.out.display());
    }
    let (mut m, tok) = open(o.model.as_deref(), None)?;
    let t0 = Instant::now();
    let q = match o.method {
        Method::Rtn => {
            let mut bar = Progress::new("rtn", m.blocks.len() * 7);
            ptq::rtn(&mut m, &o.scheme, &o.rounding, &mut |_, _, name| bar.step(name))?
        }
        Method::Gptq => {
            if o.rounding.mode != lowp::RoundingMode::NearestEven {
                bail!("GPTQ rounds to nearest (ties to even); --mode {} is for rtn", o.rounding.mode);
            }
            let text = match &o.calib {
                Some(p) => p.clone(),
                None => data::library()?,
            };
            let (_, ids) = tokens(&tok, Some(&text), Some(o.calib_tokens))?;
            let windows = ptq::windows(&ids, o.ctx, o.calib_tokens)?;
            let mut bar = Progress::new("gptq", m.blocks.len());
            ptq::gptq_model(&mut m, &o.scheme, &windows, &o.gptq, &mut |_, _, name| bar.step(name))?
        }
        other => bail!("method {} is not built yet", other.name()),
    };
    let secs = t0.elapsed().as_secs_f64();
    q.save(&o.out)?;
    writeln!(
        out,
        "{} {}: {} layers, {} weights at {:.3} bits/weight (scales included) in {:.1} s; wrote {}",
        o.method.name(),
        o.scheme,
        q.layers.len(),
        q.weights(),
        q.bits_per_weight(),
        secs,
        o.out.display()
    )?;
    Ok(())
}

/// `lowp tokenize`: token ids of a text as a uint32 .npy array.
pub fn tokenize(model: Option<&Path>, text: Option<&Path>, max: Option<usize>, output: &Path) -> Result<()> {
    let g = Gguf::open(model_path(model)?)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let (_, ids) = tokens(&tok, text, max)?;
    npy::write(output, &[ids.len() as u64], &ids)
}

/// `lowp logits`: the logits of every position of a window of token ids (a .npy array of unsigned integers) as
/// a float32 .npy array `[n, vocab]`.
pub fn logits(model: Option<&Path>, quantized: Option<&Path>, ids_path: &Path, output: &Path) -> Result<()> {
    let a = npy::read(ids_path, npy::CODES, "logits")?;
    let ids: Vec<u32> = match a.data {
        Data::U8(v) => v.into_iter().map(u32::from).collect(),
        Data::U16(v) => v.into_iter().map(u32::from).collect(),
        Data::U32(v) => v,
        Data::U64(v) => v.into_iter().map(|t| u32::try_from(t).unwrap_or(u32::MAX)).collect(),
        _ => unreachable!("npy::read returns only the accepted kinds"),
    };
    if ids.is_empty() {
        bail!("{}: no token ids (accepted: a 1-D array of unsigned integers, one window)", ids_path.display());
    }
    let (m, _) = open(model, quantized)?;
    let l = m.forward(&ids, &mut NoTaps)?;
    npy::write(output, &[ids.len() as u64, m.config.vocab as u64], &l)
}

/// `lowp export`: the model with the layers of `quantized` as ggml blocks, to a GGUF file.
pub fn export(model: Option<&Path>, quantized: &Path, output: &Path, out: &mut dyn Write) -> Result<()> {
    if !output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        bail!("{}: the output of export is a .gguf file", output.display());
    }
    let g = Gguf::open(model_path(model)?)?;
    let mut file = lowp::quant::SafetensorsFile::open(quantized)?;
    let layers = file.quantized()?;
    if layers.is_empty() {
        bail!("{}: no tensors quantized by lowp in it", quantized.display());
    }
    let scheme = match file.metadata().get(ptq::SCHEME_KEY) {
        Some(s) => s.clone(),
        None => layers[0].1.scheme().to_string(),
    };
    let kinds = lowp_model::export::gguf(&g, &layers, &scheme, output)?;
    let mut names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    names.dedup();
    writeln!(out, "{} layers as {} ({scheme}); wrote {}", layers.len(), names.join(", "), output.display())?;
    Ok(())
}
