//! End-to-end tests of the `lowp` binary on temporary files. Expected values come from the core library,
//! and files are written and read with npyz, independently of the binary's own .npy code.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lowp::{Format, Rounding, RoundingMode};
use npyz::{AutoSerialize, Deserialize, Order, WriterBuilder};
use serde_json::Value;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("lowp-cli-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
    /// Every file in the directory (to check that nothing partial was left behind).
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn lowp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lowp")).args(args).output().expect("run lowp")
}

fn ok(args: &[&str]) -> String {
    let out = lowp(args);
    assert!(out.status.success(), "lowp {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = lowp(args);
    assert!(!out.status.success(), "lowp {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn save<T: AutoSerialize + Copy>(path: &Path, shape: &[u64], order: Order, data: &[T]) {
    let f = BufWriter::new(File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).order(order).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// (dtype descr, shape, C-order data).
fn load_npy<T: Deserialize>(path: &Path) -> (String, Vec<u64>, Vec<T>) {
    let f = npyz::NpyFile::new(File::open(path).unwrap()).unwrap();
    assert_eq!(f.order(), Order::C);
    let npyz::DType::Plain(dtype) = f.dtype() else { panic!("structured dtype in {}", path.display()) };
    (dtype.to_string(), f.shape().to_vec(), f.into_vec().unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Values that exercise rounding, overflow (NaN in e4m3fn, inf in float16), underflow and -0.
const VALUES: [f64; 12] = [0.1, 1.0, 300.0, 1000.0, -2.5, 65520.0, 1e-8, -1e-30, 3.3, -0.0, 7.0, 460.0];

fn same_bits_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan())
}

fn same_bits_f64(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan())
}

#[test]
fn round_encode_decode_float32() {
    let dir = TempDir::new("f32");
    let x: Vec<f32> = VALUES.iter().map(|&v| v as f32).collect();
    let (input, rounded, codes, decoded) = (dir.path("x.npy"), dir.path("r.npy"), dir.path("c.npy"), dir.path("d.npy"));
    save(&input, &[3, 4], Order::C, &x);

    let fmt = Format::parse("float8_e4m3fn").unwrap();
    let cfg = Rounding::new(RoundingMode::NearestEven);
    let mut want = vec![0f32; 12];
    lowp::round(&fmt, &cfg, &x, &mut want).unwrap();
    let mut want_codes = vec![0u8; 12];
    lowp::encode(&fmt, &cfg, &x, &mut want_codes).unwrap();

    ok(&["round", "-f", "e4m3fn", s(&input), s(&rounded)]);
    let (dtype, shape, got) = load_npy::<f32>(&rounded);
    assert_eq!((dtype.as_str(), shape.as_slice()), ("<f4", &[3u64, 4][..]));
    assert!(same_bits_f32(&got, &want), "{got:?} vs {want:?}");
    assert!(got[3].is_nan() && got[11] == 448.0); // overflow to NaN; 460 rounds to max

    ok(&["encode", "-f", "float8_e4m3fn", s(&input), s(&codes)]);
    let (dtype, shape, got_codes) = load_npy::<u8>(&codes);
    assert_eq!((dtype.as_str(), shape.as_slice()), ("|u1", &[3u64, 4][..]));
    assert_eq!(got_codes, want_codes);

    ok(&["decode", "-f", "e4m3fn", s(&codes), s(&decoded)]);
    let (dtype, shape, got) = load_npy::<f32>(&decoded);
    assert_eq!((dtype.as_str(), shape.as_slice()), ("<f4", &[3u64, 4][..]));
    assert!(same_bits_f32(&got, &want), "decode(encode(x)) must equal round(x)");
}

#[test]
fn round_encode_decode_float64_stochastic() {
    let dir = TempDir::new("f64");
    let (input, rounded, codes, decoded) = (dir.path("x.npy"), dir.path("r.npy"), dir.path("c.npy"), dir.path("d.npy"));
    save(&input, &[3, 4], Order::C, &VALUES);

    let fmt = Format::parse("float16").unwrap().with_saturation(true);
    let cfg = Rounding::new(RoundingMode::Stochastic).with_seed(7);
    let mut want = vec![0f64; 12];
    lowp::round(&fmt, &cfg, &VALUES, &mut want).unwrap();
    let mut want_codes = vec![0u16; 12];
    lowp::encode(&fmt, &cfg, &VALUES, &mut want_codes).unwrap();

    let opts = ["-f", "fp16", "--saturate", "-m", "stochastic", "--seed", "7"];
    ok(&[&["round"][..], &opts, &[s(&input), s(&rounded)]].concat());
    let (dtype, shape, got) = load_npy::<f64>(&rounded);
    assert_eq!((dtype.as_str(), shape.as_slice()), ("<f8", &[3u64, 4][..]));
    assert!(same_bits_f64(&got, &want), "{got:?} vs {want:?}");
    assert_eq!(got[5], 65504.0); // saturated

    ok(&[&["encode"][..], &opts, &[s(&input), s(&codes)]].concat());
    let (dtype, _, got_codes) = load_npy::<u16>(&codes);
    assert_eq!(dtype, "<u2");
    assert_eq!(got_codes, want_codes);

    ok(&["decode", "-f", "float16", "--dtype", "f64", s(&codes), s(&decoded)]);
    let (dtype, shape, got) = load_npy::<f64>(&decoded);
    assert_eq!((dtype.as_str(), shape.as_slice()), ("<f8", &[3u64, 4][..]));
    assert!(same_bits_f64(&got, &want));
}

#[test]
fn fortran_order_input_gives_the_same_logical_array() {
    let dir = TempDir::new("fortran");
    let (input, out) = (dir.path("x.npy"), dir.path("y.npy"));
    // Logical a[i][j] = VALUES[4i + j], stored column-major.
    let col_major: Vec<f64> = (0..12).map(|p| VALUES[(p % 3) * 4 + p / 3]).collect();
    save(&input, &[3, 4], Order::Fortran, &col_major);
    ok(&["round", "-f", "bf16", s(&input), s(&out)]);
    let mut want = vec![0f64; 12];
    lowp::round(&Format::parse("bfloat16").unwrap(), &Rounding::default(), &VALUES, &mut want).unwrap();
    let (_, shape, got) = load_npy::<f64>(&out);
    assert_eq!(shape, [3, 4]);
    assert!(same_bits_f64(&got, &want));
}

#[test]
fn unknown_names_suggest_the_nearest() {
    let err = fails(&["info", "float61"]);
    assert!(err.contains("did you mean `float64`"), "{err}");
    let err = fails(&["round", "-f", "bfloat61", "a.npy", "b.npy"]);
    assert!(err.contains("did you mean"), "{err}");
    let err = fails(&["round", "-f", "fp16", "-m", "nearest_evn", "a.npy", "b.npy"]);
    assert!(err.contains("did you mean `nearest_even`"), "{err}");
    let err = fails(&["report", "--formats", "bf16,e4m3fm"]);
    assert!(err.contains("did you mean `e4m3fn`"), "{err}");
}

#[test]
fn bad_input_files_are_named_and_leave_no_output() {
    let dir = TempDir::new("bad");
    let out = dir.path("out.npy");

    fs::write(dir.path("text.npy"), "not numpy").unwrap();
    let err = fails(&["round", "-f", "fp16", s(&dir.path("text.npy")), s(&out)]);
    assert!(err.contains("text.npy") && err.contains("not a .npy file"), "{err}");

    let err = fails(&["round", "-f", "fp16", s(&dir.path("missing.npy")), s(&out)]);
    assert!(err.contains("missing.npy"), "{err}");

    save(&dir.path("ints.npy"), &[3], Order::C, &[1i32, 2, 3]);
    let err = fails(&["encode", "-f", "fp16", s(&dir.path("ints.npy")), s(&out)]);
    assert!(err.contains("ints.npy") && err.contains("<i4") && err.contains("float32 or float64"), "{err}");

    save(&dir.path("full.npy"), &[3, 4], Order::C, &[1.5f32; 12]);
    let bytes = fs::read(dir.path("full.npy")).unwrap();
    fs::write(dir.path("short.npy"), &bytes[..bytes.len() - 6]).unwrap();
    let err = fails(&["round", "-f", "fp16", s(&dir.path("short.npy")), s(&out)]);
    assert!(err.contains("short.npy") && err.contains("truncated"), "{err}");

    // A failure after reading (NaN has no code in fp4) must not leave a partial or temporary file either.
    save(&dir.path("nan.npy"), &[2], Order::C, &[1.0f32, f32::NAN]);
    let err = fails(&["encode", "-f", "fp4", s(&dir.path("nan.npy")), s(&out)]);
    assert!(err.contains("nan.npy") && err.contains("index 1"), "{err}");

    assert_eq!(dir.files(), ["full.npy", "ints.npy", "nan.npy", "short.npy", "text.npy"]);
}

#[test]
fn decode_rejects_codes_wider_than_the_format() {
    let dir = TempDir::new("wide");
    let (input, out) = (dir.path("codes.npy"), dir.path("out.npy"));
    save(&input, &[2, 2], Order::C, &[0x38u16, 0x01, 0x1ff, 0x7e]);
    let err = fails(&["decode", "-f", "e4m3fn", s(&input), s(&out)]);
    assert!(err.contains("codes.npy") && err.contains("0x1ff") && err.contains("8 bits"), "{err}");
    assert!(!out.exists());
    // Codes that fit are accepted from any unsigned type.
    save(&input, &[2, 2], Order::C, &[0x38u64, 0x01, 0xff, 0x7e]);
    ok(&["decode", "-f", "e4m3fn", s(&input), s(&out)]);
    let (_, _, v) = load_npy::<f32>(&out);
    assert_eq!(v[0], 1.0);
    assert!(v[2].is_nan());
}

#[test]
fn report_json_has_one_record_per_format_and_mode() {
    let dir = TempDir::new("report");
    let input = dir.path("w.npy");
    let x: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
    save(&input, &[10, 100], Order::C, &x);
    let out = ok(&["report", s(&input), "--json", "--formats", "fp16,e4m3fn,chop(11,15)", "--modes", "rne,sr"]);
    let recs: Vec<Value> = serde_json::from_str(&out).expect("report --json prints JSON");
    assert_eq!(recs.len(), 6);
    for key in [
        "tensor",
        "format",
        "mode",
        "dtype",
        "elements",
        "bits_per_element",
        "mse",
        "sqnr_db",
        "max_abs_error",
        "max_rel_error",
        "overflow_fraction",
        "nonfinite_fraction",
        "flushed_to_zero_fraction",
        "elements_per_s",
    ] {
        assert!(recs.iter().all(|r| r.get(key).is_some()), "missing {key}");
    }
    let r = &recs[2];
    assert_eq!((r["format"].as_str(), r["mode"].as_str()), (Some("float8_e4m3fn"), Some("nearest_even")));
    assert_eq!(r["bits_per_element"], 8);
    assert_eq!(r["elements"], 1000);
    assert!(r["sqnr_db"].as_f64().unwrap() > 20.0);
    // float16 and chop(11,15) are the same format.
    assert_eq!(recs[0]["mse"], recs[4]["mse"]);
}

#[test]
fn bench_json_quick() {
    let out = ok(&["bench", "--json", "--size", "100000", "--quick"]);
    let recs: Vec<Value> = serde_json::from_str(&out).expect("bench --json prints JSON");
    assert!(!recs.is_empty());
    for r in &recs {
        for key in [
            "op",
            "format",
            "mode",
            "dtype",
            "threads",
            "elements_per_s",
            "memcpy_fraction",
            "gbytes_per_s",
            "memcpy_elements_per_s",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert!(r["memcpy_fraction"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["elements_per_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    for op in ["round", "encode", "decode"] {
        assert!(recs.iter().any(|r| r["op"] == op), "no {op} records");
    }
    for (dtype, threads) in [("float32", 1), ("float64", 1), ("float32", 2), ("float64", 2)] {
        assert!(recs.iter().any(|r| r["dtype"] == dtype && r["threads"] == threads), "no {dtype} x {threads}");
    }
}

#[test]
fn describing_formats() {
    let table = ok(&["formats"]);
    assert!(table.contains("float8_e4m3fn") && table.contains("448"));
    let recs: Vec<Value> = serde_json::from_str(&ok(&["formats", "--json"])).unwrap();
    assert_eq!(recs.len(), Format::presets().len());
    let info = ok(&["info", "chop(11,15)"]);
    assert!(info.contains("65504"), "{info}");
    let values = ok(&["values", "fp4"]);
    assert!(values.contains("0xf") && values.contains("-6"), "{values}");
    let err = fails(&["values", "float32"]);
    assert!(err.contains("at most 16 bits"), "{err}");
}

/// A model-like safetensors file: two weight matrices (float32 and bfloat16), a 1-D norm, integer ids.
fn model_file(path: &Path) -> (Vec<f32>, Vec<f32>) {
    use safetensors::{tensor::TensorView, Dtype};
    let w: Vec<f32> = (0..48 * 40).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 0.1).collect();
    // bfloat16 values are float32 with the low 16 bits zero: exact in both.
    let e: Vec<f32> =
        (0..16 * 64).map(|i| f32::from_bits((((i * 31 % 97) as f32 - 48.0) / 64.0).to_bits() & 0xffff_0000)).collect();
    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let eb: Vec<u8> = e.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
    let nb: Vec<u8> = [1.0f32; 40].iter().flat_map(|v| v.to_le_bytes()).collect();
    let ids: Vec<u8> = [3i64, 1, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        ("layer.weight", TensorView::new(Dtype::F32, vec![48, 40], &wb).unwrap()),
        ("embed", TensorView::new(Dtype::BF16, vec![16, 64], &eb).unwrap()),
        ("norm", TensorView::new(Dtype::F32, vec![40], &nb).unwrap()),
        ("ids", TensorView::new(Dtype::I64, vec![3], &ids).unwrap()),
    ];
    let info = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    fs::write(path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
    (w, e)
}

#[test]
fn quantize_and_dequantize_npy() {
    use lowp::quant::{load, QuantizedTensor, Scheme};
    let dir = TempDir::new("quant-npy");
    let x: Vec<f32> = (0..6 * 100).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
    let (input, q, back) = (dir.path("w.npy"), dir.path("w.safetensors"), dir.path("back.npy"));
    save(&input, &[6, 100], Order::C, &x);
    let scheme = Scheme::parse("int4:g32:asym").unwrap();
    let cfg = Rounding::new(RoundingMode::Stochastic).with_seed(5);
    let want = QuantizedTensor::quantize(&scheme, &cfg, &x, &[6, 100], 1).unwrap();
    let out = ok(&["quantize", "-s", "int4:g32:asym", "-m", "stochastic", "--seed", "5", s(&input), s(&q)]);
    assert!(out.contains("int4:g32:asym") && out.contains("1 tensors quantized"), "{out}");
    assert_eq!(load(&q).unwrap(), vec![("w".to_string(), want.clone())]);
    ok(&["dequantize", s(&q), s(&back)]);
    let (dtype, shape, got) = load_npy::<f32>(&back);
    let mut y = vec![0f32; x.len()];
    want.dequantize(&mut y).unwrap();
    assert_eq!((dtype.as_str(), shape.as_slice()), ("<f4", &[6u64, 100][..]));
    assert!(same_bits_f32(&got, &y));
    // Blocks along the first axis.
    ok(&["quantize", "-s", "mxfp4:b4", "--axis", "0", s(&input), s(&q)]);
    let want = QuantizedTensor::quantize(&Scheme::parse("mxfp4:b4").unwrap(), &Rounding::default(), &x, &[6, 100], 0);
    assert_eq!(load(&q).unwrap()[0].1, want.unwrap());
}

#[test]
fn quantize_a_model_file_tensor_by_tensor() {
    use lowp::quant::{load, Floats, QuantizedTensor, SafetensorsFile, Scheme};
    let dir = TempDir::new("quant-model");
    let (model, q, back) = (dir.path("model.safetensors"), dir.path("q.safetensors"), dir.path("d.safetensors"));
    let (w, e) = model_file(&model);
    let out = ok(&["quantize", "-s", "nvfp4", "--min-dims", "2", s(&model), s(&q)]);
    assert!(out.contains("2 tensors quantized") && out.contains("2 kept"), "{out}");
    let scheme = Scheme::parse("nvfp4").unwrap();
    let got = load(&q).unwrap();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["embed", "layer.weight"]);
    let cfg = Rounding::default();
    assert_eq!(got[0].1, QuantizedTensor::quantize(&scheme, &cfg, &e, &[16, 64], 1).unwrap());
    assert_eq!(got[1].1, QuantizedTensor::quantize(&scheme, &cfg, &w, &[48, 40], 1).unwrap());
    // The norm and the ids are kept as they were.
    let mut f = SafetensorsFile::open(&q).unwrap();
    assert_eq!(f.read_floats("norm").unwrap(), Some(Floats::F32(vec![1.0; 40])));
    assert_eq!(f.tensors()["ids"].dtype, "I64");
    assert_eq!(f.metadata()["format"], "pt"); // the model file's own metadata goes along
                                              // Dequantized into a safetensors file: floats for the quantized tensors, the rest copied.
    ok(&["dequantize", "--dtype", "f64", s(&q), s(&back)]);
    let mut d = SafetensorsFile::open(&back).unwrap();
    let mut y = vec![0f64; w.len()];
    got[1].1.dequantize(&mut y).unwrap();
    assert_eq!(d.read_floats("layer.weight").unwrap(), Some(Floats::F64(y)));
    assert_eq!(d.read("ids").unwrap(), f.read("ids").unwrap());
    assert_eq!(d.tensors().len(), 4);
    assert_eq!(d.metadata().get("format").map(String::as_str), Some("pt"));
    assert!(!d.metadata().contains_key("lowp"));
    // A .npy output takes one tensor.
    let err = fails(&["dequantize", s(&q), s(&dir.path("x.npy"))]);
    assert!(err.contains("--name") && err.contains("layer.weight"), "{err}");
    ok(&["dequantize", "--name", "embed", s(&q), s(&dir.path("x.npy"))]);
}

#[test]
fn report_compares_schemes_and_plots() {
    let dir = TempDir::new("report-schemes");
    let model = dir.path("model.safetensors");
    model_file(&model);
    let (svg, png) = (dir.path("r.svg"), dir.path("r.png"));
    let out = ok(&["report", "--schemes", "int4:g128:asym,mxfp4,bitmod4", "--json", "--plot", s(&svg), s(&model)]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let recs = v.as_array().unwrap();
    assert_eq!(recs.len(), 3 * 3); // three float tensors (the norm too), three schemes
    let mx = recs.iter().find(|r| r["tensor"] == "layer.weight" && r["scheme"] == "mxfp4:b32").unwrap();
    assert_eq!(mx["bits_per_element"], 4.4); // rows of 40: blocks of 32 and 8, two 8-bit scales per 40 codes
    assert!(mx["sqnr_db"].as_f64().unwrap() > 10.0 && mx["quantize_elements_per_s"].as_f64().unwrap() > 0.0);
    let svg_text = fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") || svg_text.starts_with("<?xml"));
    assert!(svg_text.contains("layer.weight") && svg_text.contains("mxfp4:b32"));
    let table = ok(&["report", "--schemes", "default", "--elements", "4096", "--plot", s(&png)]);
    assert!(table.contains("nvfp4:b16") && table.contains("== heavy_tailed"), "{table}");
    assert_eq!(&fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let err = fails(&["report", "--schemes", "mxfp4", "--elements", "64", "--plot", s(&dir.path("r.jpg"))]);
    assert!(err.contains("svg") && err.contains("png"), "{err}");
    assert!(!dir.files().contains(&"r.jpg".to_string()));
}

#[test]
fn quantize_errors_name_the_problem() {
    let dir = TempDir::new("quant-errors");
    let input = dir.path("w.npy");
    save(&input, &[4], Order::C, &[1.0f32, f32::NAN, 2.0, 3.0]);
    let err = fails(&["quantize", "-s", "int4:g128:asym", s(&input), s(&dir.path("o.safetensors"))]);
    assert!(err.contains("NaN") && err.contains("`w`"), "{err}");
    let err = fails(&["quantize", "-s", "mxfp5", s(&input), s(&dir.path("o.safetensors"))]);
    assert!(err.contains("Accepted"), "{err}");
    let err = fails(&["quantize", "-s", "mxfp4", s(&input), s(&dir.path("o.npy"))]);
    assert!(err.contains(".safetensors"), "{err}");
    let err = fails(&["quantize", "-s", "mxfp4", "--axis", "3", s(&input), s(&dir.path("o.safetensors"))]);
    assert!(err.contains("axis 3"), "{err}");
    // An all-zero tensor quantizes exactly; a file lowp wrote is not quantized again.
    save(&dir.path("z.npy"), &[2, 8], Order::C, &[0.0f32; 16]);
    let out = ok(&["quantize", "-s", "int4:g4:asym", s(&dir.path("z.npy")), s(&dir.path("z.safetensors"))]);
    assert!(out.contains("exact") && !out.contains("NaN"), "{out}");
    let err = fails(&["quantize", "-s", "mxfp4", s(&dir.path("z.safetensors")), s(&dir.path("zz.safetensors"))]);
    assert!(err.contains("dequantize it first"), "{err}");
    fs::remove_file(dir.path("z.npy")).unwrap();
    fs::remove_file(dir.path("z.safetensors")).unwrap();
    fs::write(dir.path("junk.safetensors"), b"not a safetensors file at all").unwrap();
    let err = fails(&["dequantize", s(&dir.path("junk.safetensors")), s(&dir.path("o.npy"))]);
    assert!(err.contains("junk.safetensors"), "{err}");
    assert_eq!(dir.files(), ["junk.safetensors", "w.npy"]);
}

#[test]
fn demo_harmonic_stagnates_where_the_literature_says() {
    // Higham and Pranesh (2019): float16 under round-to-nearest stagnates at 7.0859 after 513 terms,
    // bfloat16 at 5.0625 after 65.
    let out = ok(&["demo", "harmonic", "--json", "--formats", "fp16,bf16", "--modes", "rne,sr", "--seed", "1"]);
    let recs: Vec<Value> = serde_json::from_str(&out).expect("demo harmonic --json prints JSON");
    assert_eq!(recs.len(), 4);
    let find = |f: &str, m: &str| recs.iter().find(|r| r["format"] == f && r["mode"] == m).expect("a record");
    for (fmt, value, term) in [("float16", 7.0859375, 513), ("bfloat16", 5.0625, 65)] {
        let r = find(fmt, "nearest_even");
        assert_eq!(r["sum"].as_f64(), Some(value), "{r}");
        assert_eq!(r["stagnation_term"], term, "{r}");
        assert_eq!(r["last_change_term"], term - 1, "{r}");
    }
    // Stochastic rounding is unbiased; over 40 seeds the spread of the sum was 1.5% (float16) and 4.5%
    // (bfloat16) of the true sum, so these bounds are about 3.3 standard deviations.
    for (fmt, tolerance) in [("float16", 0.05), ("bfloat16", 0.15)] {
        let r = find(fmt, "stochastic");
        assert!(r["stagnation_term"].is_null(), "{r}");
        let (sum, truth) = (r["sum"].as_f64().unwrap(), r["true_sum"].as_f64().unwrap());
        assert!((truth - 12.3607).abs() < 1e-4, "{r}");
        assert!((sum - truth).abs() < tolerance * truth, "{r}");
        assert!((r["relative_error"].as_f64().unwrap() - (sum - truth).abs() / truth).abs() < 1e-12, "{r}");
    }
    // Reproducible from the seed.
    assert_eq!(out, ok(&["demo", "harmonic", "--json", "--formats", "fp16,bf16", "--modes", "rne,sr", "--seed", "1"]));
    let table = ok(&["demo", "harmonic", "--formats", "fp16", "--modes", "rne", "--terms", "1000"]);
    assert!(table.contains("7.0859375") && table.contains("513"), "{table}");
    // Rounding up pushes float8_e4m3fn (no inf) past 448: NaN, reported as an overflow, not a stagnation.
    let out = ok(&["demo", "harmonic", "--json", "--formats", "e4m3fn", "--modes", "up", "--terms", "3000"]);
    let recs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(recs[0]["sum"].is_null() && recs[0]["stagnation_term"].is_null(), "{out}");
    let k = recs[0]["overflow_term"].as_u64().expect("an overflow term");
    assert_eq!(recs[0]["last_change_term"].as_u64(), Some(k - 1), "{out}");
}

#[test]
fn demo_refine_converges_only_when_well_conditioned() {
    let out = ok(&["demo", "refine", "--json", "--n", "20", "--kappa", "10,1e8"]);
    let recs: Vec<Value> = serde_json::from_str(&out).expect("demo refine --json prints JSON");
    assert_eq!(recs.len(), 2);
    let good = &recs[0];
    assert_eq!(good["converged"], true, "{good}");
    let history = good["history"].as_array().unwrap();
    assert!(history.last().unwrap()["forward_error"].as_f64().unwrap() < 1e-12, "{good}");
    assert!(history.len() >= 2 && history.len() <= 11, "{good}");
    let bad = &recs[1];
    assert_eq!(bad["converged"], false, "{bad}");
    assert!(bad["kappa_inf_u_factor"].as_f64().unwrap() > 1.0, "{bad}");
    let table = ok(&["demo", "refine", "--n", "20", "--kappa", "10"]);
    assert!(table.contains("converged in") && table.contains("forward error"), "{table}");
}

#[test]
fn demo_and_gemm_arguments_are_checked() {
    let err = fails(&["demo", "harmonic", "--formats", "float17"]);
    assert!(err.contains("float17"), "{err}");
    let err = fails(&["demo", "harmonic", "--modes", "nearest_evn"]);
    assert!(err.contains("did you mean"), "{err}");
    let err = fails(&["demo", "harmonic", "--terms", "0"]);
    assert!(err.contains("--terms"), "{err}");
    let err = fails(&["demo", "refine", "--kappa", "0.5"]);
    assert!(err.contains("--kappa") && err.contains("at least 1"), "{err}");
    let err = fails(&["demo", "refine", "--kappa", "ten"]);
    assert!(err.contains("ten"), "{err}");
    let err = fails(&["demo", "refine", "--n", "0"]);
    assert!(err.contains("--n"), "{err}");
    let err = fails(&["demo", "refine", "--factor", "e9m9x"]);
    assert!(err.contains("e9m9x"), "{err}");
    let err = fails(&["bench", "--gemm", "0"]);
    assert!(err.contains("--gemm"), "{err}");
    let err = fails(&["bench", "--gemm", "64", "--formats", "fp16"]);
    assert!(err.contains("--formats"), "{err}");
}

#[test]
fn bench_gemm_json() {
    let out = ok(&["bench", "--gemm", "24", "--threads", "1,2", "--reps", "1", "--json"]);
    let recs: Vec<Value> = serde_json::from_str(&out).expect("bench --gemm --json prints JSON");
    assert_eq!(recs.len(), 2 * 7);
    for r in &recs {
        for key in ["kernel", "threads", "m", "seconds", "gflops", "slowdown_vs_sgemm", "slowdown_vs_loop", "max_error"]
        {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert!(r["gflops"].as_f64().unwrap() > 0.0, "{r}");
    }
    let error = |k: &str| recs.iter().find(|r| r["kernel"] == k).unwrap()["max_error"].as_f64().unwrap();
    // The i-k-j loop is the recursive float32 model; float16 arithmetic is far less accurate.
    assert_eq!(error("loop_f32"), error("fp32_recursive"));
    assert!(error("fp16_recursive") > 100.0 * error("fp32_recursive"));
    assert!(error("blockfma4_fp32_accum") < 1e-6);
}
