//! The `lowp` command: parses the command line and hands each subcommand to its module.

mod bench;
mod bench_gemm;
mod convert;
mod demo;
mod describe;
mod model;
mod npy;
mod plot;
mod quantize;
mod report;
mod report_schemes;
mod table;
mod tensors;
mod timing;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lowp::quant::Scheme;
use lowp::{FlipScope, Format, Rounding, RoundingMode};

use convert::FloatType;

/// What FORMAT and MODE accept, shown under the help of the commands that take them.
const NAMES_HELP: &str = "FORMAT: a preset or alias from `lowp formats` (bf16, fp16, e4m3fn, fp4, ...), \
e<E>m<M>[b<BIAS>][fn|fnuz] (e.g. e5m10), binary<K>p<P><s|u><e|f> (IEEE P3109, e.g. binary8p4se), or chop(<t>,<emax>).
MODE: nearest_even (default), toward_positive, toward_negative, toward_zero, stochastic, stochastic_equal, \
nearest_zero, nearest_away, odd; aliases rne, up, down, rtz, sr; a chop code 1-9; or stochastic:N (N random bits).";

/// What SCHEME accepts (docs/quantization.md has the full table).
const SCHEMES_HELP: &str =
    "SCHEME: int<b>[:tensor|:channel|:g<G>][:sym|:asym][:full][:scale=<format>][:minmax|:pct<p>|:mse] \
(e.g. int4:g128:asym, int8:channel:sym), fixed:q<i>.<f>[:wrap], mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, \
mxint8 [:b<N>][:ceil], nvfp4[:b<N>][:notensor], bfp<m>[:b<N>], bitmod4|bitmod3[:g<G>], \
nf4[:g<G>][:scale=<format>], codebook(v1,v2,...)[:g<G>][:scale=<format>]. Groups and blocks run along --axis (default -1, the last); for :channel, --axis is the \
channel axis.";

#[derive(Parser)]
#[command(
    name = "lowp",
    version,
    about = "Round, encode and decode arrays in low-precision number formats, and measure what it costs",
    after_help = NAMES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every preset format: widths, bias, range, precision, special values.
    Formats {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show everything about one format (a preset, alias or pattern such as e5m10 or chop(11,15)).
    #[command(after_help = NAMES_HELP)]
    Info {
        format: Format,
        #[command(flatten)]
        options: FormatOptions,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every code of a format of at most 16 bits with its value.
    #[command(after_help = NAMES_HELP)]
    Values {
        format: Format,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Round a float32 or float64 .npy array to a format; writes the same dtype and shape.
    #[command(after_help = NAMES_HELP)]
    Round(ConvertArgs),
    /// Round and write the format's codes (bit patterns) as a uint8/16/32/64 .npy array of the same shape.
    #[command(after_help = NAMES_HELP)]
    Encode(ConvertArgs),
    /// Turn a .npy array of codes (any unsigned integer type) back into values.
    #[command(after_help = NAMES_HELP)]
    Decode(DecodeArgs),
    /// Error of each format and rounding mode on realistic tensors (built in, or IN.npy), with throughput.
    #[command(after_help = NAMES_HELP)]
    Report(ReportArgs),
    /// Quantize the float tensors of a .npy or .safetensors file with a scheme; write lowp's packed safetensors.
    #[command(after_help = SCHEMES_HELP)]
    Quantize(QuantizeArgs),
    /// Dequantize a file written by `lowp quantize` into a .npy file (one tensor) or a .safetensors file.
    Dequantize(DequantizeArgs),
    /// Throughput of round, encode and decode per format, mode, data type and thread count, against memcpy
    /// (with --gemm: emulated matrix products against plain float32 GEMMs).
    #[command(after_help = NAMES_HELP)]
    Bench(BenchArgs),
    /// Classic experiments in emulated low-precision arithmetic: the harmonic series, iterative refinement.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// Perplexity of a language model (SmolLM2 by default), or of its layers quantized by `lowp ptq`, on a text.
    Eval(EvalArgs),
    /// Post-training quantization of every linear layer of a language model's blocks; writes lowp's packed
    /// safetensors (one quantized tensor per layer), which `lowp eval --quantized` reads.
    #[command(after_help = SCHEMES_HELP)]
    Ptq(PtqArgs),
    /// Token ids of a text (the tutorial by default) under a model's tokenizer, as a uint32 .npy array.
    Tokenize(TokenizeArgs),
    /// Logits of every position of a window of token ids (.npy of unsigned integers), as float32 [n, vocab].
    Logits(LogitsArgs),
    /// Write a model with the layers of `lowp ptq` as a GGUF file (q8_0, q4_0, q4_1 or mxfp4 blocks) that
    /// llama.cpp runs; the values are exactly lowp's.
    Export(ExportArgs),
}

#[derive(Args)]
#[command(after_help = MODEL_HELP)]
struct ExportArgs {
    /// The llama-architecture GGUF file the layers were quantized from.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Layers quantized by `lowp ptq` (int8:g32:sym:scale=fp16, int4:g32:sym:scale=fp16,
    /// int4:g32:asym:scale=fp16 or mxfp4).
    #[arg(long, value_name = "Q")]
    quantized: PathBuf,
    /// Output .gguf file (written only if everything succeeds).
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
}

/// What the model commands read when not told (scripts/fetch-models.sh prepares them).
const MODEL_HELP: &str =
    "Without --model, the model is SmolLM2-135M-Instruct and without --text the text is the Python \
tutorial, both in $LOWP_DATA (default ~/.cache/lowp) as `bash scripts/fetch-models.sh` prepares them.";

#[derive(Args)]
#[command(after_help = MODEL_HELP)]
struct EvalArgs {
    /// A llama-architecture GGUF file.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Layers quantized by `lowp ptq` (a .safetensors file), swapped into the model.
    #[arg(long, value_name = "OUT")]
    quantized: Option<PathBuf>,
    /// A UTF-8 text file.
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Tokens per window (windows do not overlap; a short last window is dropped).
    #[arg(long, value_name = "N", default_value_t = 512)]
    ctx: usize,
    /// Use only the first N tokens of the text [default: all].
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Which predictions of a window count: `all`, or `second-half` (each with at least ctx/2 tokens of
    /// context, as llama.cpp's perplexity tool).
    #[arg(long, value_enum, default_value = "all")]
    scoring: ScoringArg,
    /// Print one JSON record instead of a line of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScoringArg {
    All,
    SecondHalf,
}

#[derive(Args)]
#[command(after_help = MODEL_HELP)]
struct PtqArgs {
    /// A llama-architecture GGUF file.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// The method: rtn or gptq.
    #[arg(long, default_value = "rtn", value_parser = parse_method)]
    method: lowp_model::ptq::Method,
    /// The quantization scheme of the weights (groups run along each layer's input features).
    #[arg(short, long)]
    scheme: Scheme,
    /// Rounding mode of the weights (scales are always rounded to nearest even).
    #[arg(short, long, default_value = "nearest_even")]
    mode: RoundingMode,
    /// Seed of stochastic rounding (layer k uses seed + k).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Calibration text for the methods that use it [default: the Python library reference].
    #[arg(long, value_name = "FILE")]
    calib: Option<PathBuf>,
    /// Calibration tokens: the first N tokens of the calibration text, in windows of --ctx.
    #[arg(long, value_name = "N", default_value_t = 8192)]
    calib_tokens: usize,
    /// Tokens per calibration window.
    #[arg(long, value_name = "N", default_value_t = 512)]
    ctx: usize,
    /// GPTQ: damping relative to the mean of the Hessian's diagonal.
    #[arg(long, default_value_t = 0.01)]
    damp: f64,
    /// GPTQ: columns per lazy-batch block.
    #[arg(long, default_value_t = 128)]
    block: usize,
    /// GPTQ: quantize columns by decreasing Hessian diagonal (with groups, needs --static-groups).
    #[arg(long)]
    act_order: bool,
    /// GPTQ: fit group scales on the original weights, before any update.
    #[arg(long)]
    static_groups: bool,
    /// Output .safetensors file (written only if everything succeeds).
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
}

fn parse_method(s: &str) -> Result<lowp_model::ptq::Method, String> {
    lowp_model::ptq::Method::parse(s).map_err(|e| e.to_string())
}

#[derive(Args)]
#[command(after_help = MODEL_HELP)]
struct TokenizeArgs {
    /// A GGUF file whose tokenizer to use.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// A UTF-8 text file.
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Keep only the first N ids.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Output .npy file (uint32).
    output: PathBuf,
}

#[derive(Args)]
#[command(after_help = MODEL_HELP)]
struct LogitsArgs {
    /// A llama-architecture GGUF file.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Layers quantized by `lowp ptq`, swapped into the model.
    #[arg(long, value_name = "OUT")]
    quantized: Option<PathBuf>,
    /// Token ids (.npy, unsigned integers), one window.
    ids: PathBuf,
    /// Output .npy file (float32, [n, vocab]).
    output: PathBuf,
}

#[derive(Subcommand)]
enum DemoCommand {
    /// The harmonic series s = fl(s + fl(1/k)) in low precision: where round-to-nearest stagnates, and how
    /// stochastic rounding keeps the sum moving.
    #[command(after_help = NAMES_HELP)]
    Harmonic(HarmonicArgs),
    /// LU-based mixed-precision iterative refinement (e.g. a float16 LU, float64 residuals) on random
    /// matrices of prescribed condition number: converged or not, step by step.
    #[command(after_help = NAMES_HELP)]
    Refine(RefineArgs),
}

#[derive(Args)]
struct HarmonicArgs {
    /// Comma-separated formats, or `all` [default: float16, bfloat16, float32].
    #[arg(long, value_name = "LIST", value_parser = parse_formats)]
    formats: Option<FormatList>,
    /// Comma-separated rounding modes, `deterministic`, or `all` [default: nearest_even, toward_zero,
    /// stochastic].
    #[arg(long, value_name = "LIST", value_parser = parse_modes)]
    modes: Option<ModeList>,
    /// Number of terms N of sum_{k=1}^{N} 1/k.
    #[arg(long, value_name = "N", default_value_t = 1 << 17)]
    terms: usize,
    /// Seed of stochastic rounding (the results depend only on it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON array of records instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RefineArgs {
    /// Order of the matrices.
    #[arg(long, value_name = "N", default_value_t = 100)]
    n: usize,
    /// Comma-separated 2-norm condition numbers of the test matrices.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1e1,1e3,1e5,1e7")]
    kappa: Vec<f64>,
    /// Format of the LU factorization and of the correction solves.
    #[arg(long, default_value = "float16")]
    factor: Format,
    /// Format of the residuals b - A x.
    #[arg(long, default_value = "float64")]
    residual: Format,
    /// Format of the solution and its updates (A and b are stored in it).
    #[arg(long, default_value = "float64")]
    working: Format,
    /// Rounding mode of every operation.
    #[arg(short, long, default_value = "nearest_even")]
    mode: RoundingMode,
    /// Refinement steps at most.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_iter: usize,
    /// Seed of the test matrices, of x_true and of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON array of records (one per condition number, with its history) instead of tables.
    #[arg(long)]
    json: bool,
}

/// Options that change a format's rounding behaviour.
#[derive(Args)]
struct FormatOptions {
    /// Flush values below the smallest normal to {0, ±min normal} instead of using subnormals.
    #[arg(long)]
    no_subnormals: bool,
    /// Clamp overflow to ±max instead of giving inf or NaN (±inf inputs too, unless --keep-inf).
    #[arg(long)]
    saturate: bool,
    /// With saturation, keep ±inf inputs infinite (NaN in formats without inf).
    #[arg(long)]
    keep_inf: bool,
    /// Round only the significand (M+1 bits), with no exponent range: no overflow, underflow or subnormals.
    #[arg(long)]
    no_exponent_limit: bool,
}

impl FormatOptions {
    fn apply(&self, f: Format) -> Format {
        let mut f = f;
        if self.no_subnormals {
            f = f.with_subnormals(false);
        }
        if self.saturate {
            f = f.with_saturation(true);
        }
        if self.keep_inf {
            f = f.with_propagate_inf(true);
        }
        if self.no_exponent_limit {
            f = f.with_exponent_limit(false);
        }
        f
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Scope {
    /// One of the M stored significand bits.
    Significand,
    /// Any bit of the code, sign and exponent included (can give inf or NaN).
    Code,
}

/// How to round: mode, seed, soft errors.
#[derive(Args)]
struct RoundingOptions {
    /// Rounding mode: a name, alias, chop code 1-9, or stochastic:N.
    #[arg(short, long, default_value = "nearest_even")]
    mode: RoundingMode,
    /// Seed of the random numbers of stochastic modes and bit flips (results depend only on it and the
    /// element's index).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Soft errors: flip one bit of each rounded element with this probability.
    #[arg(long, value_name = "P")]
    flip_prob: Option<f64>,
    /// Which bits a soft error may flip.
    #[arg(long, value_enum, default_value = "significand", requires = "flip_prob")]
    flip_scope: Scope,
}

impl RoundingOptions {
    fn rounding(&self) -> Rounding {
        let r = Rounding::new(self.mode).with_seed(self.seed);
        match self.flip_prob {
            None => r,
            Some(p) => r.with_flip(
                p,
                match self.flip_scope {
                    Scope::Significand => FlipScope::Significand,
                    Scope::Code => FlipScope::Code,
                },
            ),
        }
    }
}

#[derive(Args)]
struct ConvertArgs {
    /// Target format.
    #[arg(short, long)]
    format: Format,
    #[command(flatten)]
    options: FormatOptions,
    #[command(flatten)]
    rounding: RoundingOptions,
    /// Input .npy file (float32 or float64, any shape, C or Fortran order).
    input: PathBuf,
    /// Output .npy file (written only if everything succeeds).
    output: PathBuf,
}

#[derive(Args)]
struct DecodeArgs {
    /// Format the codes are in.
    #[arg(short, long)]
    format: Format,
    /// Element type to write.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: FloatType,
    /// Input .npy file of codes (uint8, uint16, uint32 or uint64).
    input: PathBuf,
    /// Output .npy file.
    output: PathBuf,
}

#[derive(Args)]
struct ReportArgs {
    /// A float32 or float64 .npy file to report on instead of the built-in tensors (with --schemes, also a
    /// .safetensors file, read tensor by tensor).
    input: Option<PathBuf>,
    /// Comma-separated formats, or `all` for every preset [default: bfloat16, float16, tf32, float8_e5m2,
    /// float8_e4m3fn, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn].
    #[arg(long, value_name = "LIST", value_parser = parse_formats)]
    formats: Option<FormatList>,
    /// Comma-separated rounding modes, `deterministic`, or `all` [default: nearest_even, toward_zero, stochastic].
    #[arg(long, value_name = "LIST", value_parser = parse_modes)]
    modes: Option<ModeList>,
    #[command(flatten)]
    options: FormatOptions,
    /// Seed of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Elements of each built-in tensor.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    elements: usize,
    /// Print one JSON array of records instead of tables.
    #[arg(long)]
    json: bool,
    /// Compare quantization schemes instead of formats: a comma-separated list, or `default` for int8, int4 and
    /// int3 groups, MXFP8/6/4, NVFP4, BFP8, BitMoD and NF4.
    #[arg(long, value_name = "LIST", value_parser = parse_schemes)]
    schemes: Option<SchemeList>,
    /// With --schemes: the axis groups and blocks run along (negative counts from the end).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, requires = "schemes")]
    axis: isize,
    /// With --schemes: also draw SQNR against bits per element into FILE (.svg or .png).
    #[arg(long, value_name = "FILE", requires = "schemes")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct QuantizeArgs {
    /// The quantization scheme.
    #[arg(short, long)]
    scheme: Scheme,
    /// Axis groups and blocks run along (negative counts from the end).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    axis: isize,
    /// Rounding mode of the elements (scales are always rounded to nearest even).
    #[arg(short, long, default_value = "nearest_even")]
    mode: RoundingMode,
    /// Seed of stochastic rounding (tensor k, in name order, uses seed + k).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Quantize only tensors with at least this many dimensions (2: weight matrices, not norms and biases);
    /// the others are stored unchanged.
    #[arg(long, value_name = "N", default_value_t = 1)]
    min_dims: usize,
    /// Input: a float .npy file, or a .safetensors file (read tensor by tensor).
    input: PathBuf,
    /// Output .safetensors file (written only if everything succeeds).
    output: PathBuf,
}

#[derive(Args)]
struct DequantizeArgs {
    /// Element type to write.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: FloatType,
    /// The tensor to dequantize (a .npy output takes one).
    #[arg(long)]
    name: Option<String>,
    /// A .safetensors file written by `lowp quantize`.
    input: PathBuf,
    /// Output .npy or .safetensors file.
    output: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Elements per array [default: 10000000, or 1000000 with --quick].
    #[arg(long, value_name = "N")]
    size: Option<usize>,
    /// Comma-separated formats, or `all` [default: every preset of at most 8 bits, float16, bfloat16].
    #[arg(long, value_name = "LIST", value_parser = parse_formats)]
    formats: Option<FormatList>,
    /// Comma-separated rounding modes, `deterministic`, or `all` [default: the deterministic modes and
    /// stochastic].
    #[arg(long, value_name = "LIST", value_parser = parse_modes)]
    modes: Option<ModeList>,
    /// Comma-separated thread counts.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Timed repetitions (the best counts), after one warm-up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    reps: usize,
    /// Seed of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Comma-separated operations to time: round, encode, decode.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "round,encode,decode")]
    ops: Vec<bench::Op>,
    /// Comma-separated data types: f32, f64.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "f32,f64")]
    dtypes: Vec<bench::Dtype>,
    /// A small set for smoke tests: bfloat16, float8_e4m3fn, float4_e2m1fn; nearest_even and stochastic.
    #[arg(long)]
    quick: bool,
    /// Time quantization schemes instead of formats (quantize to the packed tensor, and dequantize, of a
    /// [N/1024, 1024] matrix with blocks along its rows): a comma-separated list, or `default` [modes default
    /// to nearest_even].
    #[arg(long, value_name = "LIST", value_parser = parse_schemes)]
    schemes: Option<SchemeList>,
    /// Time GEMM instead: lowp's emulated matmul under five arithmetic models (float16, bfloat16 with a float32
    /// accumulator, tensor-core-like blockfma:4, float16 stochastic, float32) against plain float32 GEMMs
    /// (matrixmultiply's sgemm and an i-k-j loop), for square matrices of these comma-separated sizes.
    #[arg(long, value_name = "SIZES", value_delimiter = ',', num_args = 1,
          conflicts_with_all = ["schemes", "formats", "modes", "ops", "dtypes", "quick", "size"])]
    gemm: Option<Vec<usize>>,
    /// Print one JSON array of records instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Debug)]
struct FormatList(Vec<Format>);
#[derive(Clone, Debug)]
struct ModeList(Vec<RoundingMode>);
#[derive(Clone, Debug)]
struct SchemeList(Vec<Scheme>);

fn parse_schemes(s: &str) -> Result<SchemeList, lowp::Error> {
    if s.trim().eq_ignore_ascii_case("default") {
        return Ok(SchemeList(
            report_schemes::DEFAULT_SCHEMES.iter().map(|n| Scheme::parse(n).expect("built-in schemes parse")).collect(),
        ));
    }
    split_list(s).into_iter().map(Scheme::parse).collect::<Result<_, _>>().map(SchemeList)
}

/// Splits on commas outside parentheses, so `chop(11,15)` stays one item.
fn split_list(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s[start..].trim());
    items.into_iter().filter(|x| !x.is_empty()).collect()
}

fn parse_formats(s: &str) -> Result<FormatList, lowp::Error> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(FormatList(Format::presets()));
    }
    split_list(s).into_iter().map(Format::parse).collect::<Result<_, _>>().map(FormatList)
}

fn parse_modes(s: &str) -> Result<ModeList, lowp::Error> {
    match s.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(ModeList(RoundingMode::ALL.to_vec())),
        "deterministic" => Ok(ModeList(RoundingMode::DETERMINISTIC.to_vec())),
        _ => split_list(s).into_iter().map(RoundingMode::parse).collect::<Result<_, _>>().map(ModeList),
    }
}

fn named(names: &[&str]) -> Vec<Format> {
    names.iter().map(|n| Format::parse(n).expect("built-in format names parse")).collect()
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Formats { json } => describe::formats(json, out),
        Command::Info { format, options, json } => describe::info(&options.apply(format), json, out),
        Command::Values { format, json } => describe::values(&format, json, out),
        Command::Round(a) => convert::round(&a.options.apply(a.format), &a.rounding.rounding(), &a.input, &a.output),
        Command::Encode(a) => convert::encode(&a.options.apply(a.format), &a.rounding.rounding(), &a.input, &a.output),
        Command::Decode(a) => convert::decode(&a.format, a.dtype, &a.input, &a.output),
        Command::Report(a) if a.schemes.is_some() => {
            let modes = a.modes.map_or_else(|| vec![RoundingMode::NearestEven], |l| l.0);
            let [mode] = modes[..] else {
                anyhow::bail!("--schemes reports one rounding mode at a time; --modes gave {}", modes.len());
            };
            let opts = report_schemes::Options {
                input: a.input,
                schemes: a.schemes.map(|l| l.0).unwrap_or_default(),
                rounding: Rounding::new(mode).with_seed(a.seed),
                axis: a.axis,
                elements: a.elements,
                json: a.json,
                plot: a.plot,
            };
            report_schemes::run(&opts, out)
        }
        Command::Quantize(a) => {
            let opts = quantize::QuantizeOptions {
                scheme: &a.scheme,
                rounding: Rounding::new(a.mode).with_seed(a.seed),
                axis: a.axis,
                min_dims: a.min_dims,
            };
            quantize::quantize(&opts, &a.input, &a.output, out)
        }
        Command::Dequantize(a) => quantize::dequantize(&a.input, &a.output, a.dtype, a.name.as_deref(), out),
        Command::Report(a) => {
            let formats = a.formats.map_or_else(|| named(report::DEFAULT_FORMATS), |l| l.0);
            let opts = report::Options {
                input: a.input,
                formats: formats.into_iter().map(|f| a.options.apply(f)).collect(),
                modes: a.modes.map_or_else(|| report::DEFAULT_MODES.to_vec(), |l| l.0),
                seed: a.seed,
                elements: a.elements,
                json: a.json,
            };
            report::run(&opts, out)
        }
        Command::Bench(BenchArgs { gemm: Some(sizes), threads, reps, seed, json, .. }) => {
            bench_gemm::run(&bench_gemm::Options { sizes, threads, reps, seed, json }, out)
        }
        Command::Bench(a) => {
            let (formats, modes) = if a.quick {
                (named(bench::QUICK_FORMATS), bench::QUICK_MODES.to_vec())
            } else {
                (bench::default_formats(), bench::default_modes())
            };
            let scheme_modes = a.schemes.is_some().then(|| vec![RoundingMode::NearestEven]);
            let opts = bench::Options {
                schemes: a.schemes.map(|l| l.0).unwrap_or_default(),
                formats: a.formats.map_or(formats, |l| l.0),
                modes: a.modes.map(|l| l.0).or(scheme_modes).unwrap_or(modes),
                threads: a.threads,
                size: a.size.unwrap_or(if a.quick { 1_000_000 } else { 10_000_000 }),
                reps: a.reps,
                seed: a.seed,
                ops: a.ops,
                dtypes: a.dtypes,
                json: a.json,
            };
            bench::run(&opts, out)
        }
        Command::Eval(a) => {
            let opts = model::EvalOptions {
                model: a.model,
                quantized: a.quantized,
                text: a.text,
                ctx: a.ctx,
                max_tokens: a.max_tokens,
                scoring: match a.scoring {
                    ScoringArg::All => lowp_model::eval::Scoring::All,
                    ScoringArg::SecondHalf => lowp_model::eval::Scoring::SecondHalf,
                },
                json: a.json,
            };
            model::eval(&opts, out)
        }
        Command::Ptq(a) => {
            let opts = model::PtqOptions {
                model: a.model,
                method: a.method,
                scheme: a.scheme,
                rounding: Rounding::new(a.mode).with_seed(a.seed),
                calib: a.calib,
                calib_tokens: a.calib_tokens,
                ctx: a.ctx,
                gptq: lowp::ptq::GptqOptions {
                    damp: a.damp,
                    block: a.block,
                    act_order: a.act_order,
                    static_groups: a.static_groups,
                },
                out: a.out,
            };
            model::ptq(&opts, out)
        }
        Command::Tokenize(a) => model::tokenize(a.model.as_deref(), a.text.as_deref(), a.max_tokens, &a.output),
        Command::Logits(a) => model::logits(a.model.as_deref(), a.quantized.as_deref(), &a.ids, &a.output),
        Command::Export(a) => model::export(a.model.as_deref(), &a.quantized, &a.out, out),
        Command::Demo(DemoCommand::Harmonic(a)) => {
            let opts = demo::HarmonicOptions {
                formats: a.formats.map_or_else(|| named(demo::HARMONIC_FORMATS), |l| l.0),
                modes: a.modes.map_or_else(|| demo::HARMONIC_MODES.to_vec(), |l| l.0),
                terms: a.terms,
                seed: a.seed,
                json: a.json,
            };
            demo::harmonic(&opts, out)
        }
        Command::Demo(DemoCommand::Refine(a)) => {
            let opts = demo::RefineOptions {
                n: a.n,
                kappas: a.kappa,
                factor: a.factor,
                residual: a.residual,
                working: a.working,
                mode: a.mode,
                max_iter: a.max_iter,
                seed: a.seed,
                json: a.json,
            };
            demo::refine_demo(&opts, out)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = run(cli, &mut out).and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `lowp values float16 | head` closes the pipe early; that is not an error.
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_parenthesised_commas() {
        assert_eq!(split_list("chop(11,15), e5m10,,bf16"), ["chop(11,15)", "e5m10", "bf16"]);
        assert_eq!(parse_formats("chop(11,15),fp4").unwrap().0.len(), 2);
        assert_eq!(parse_modes("all").unwrap().0.len(), 9);
        assert!(parse_modes("nearest_evn").unwrap_err().to_string().contains("did you mean"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
