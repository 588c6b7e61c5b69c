//! The packed representation and its safetensors files: packing loses nothing (unpack gives back the
//! scheme's own result, dequantization is identical), storage is counted exactly, files round-trip, other
//! safetensors readers see ordinary arrays, and malformed files are refused with an error, never a panic.

mod common;

use common::TestRng;
use lowp::quant::{load, save, to_bytes, Part, QuantizedTensor, SafetensorsFile, Scheme};
use lowp::{Error, Rounding, RoundingMode};

/// Every scheme family, with options that change what is stored.
const SCHEMES: [&str; 22] = [
    "int4:g128:asym",
    "int3:g32:sym",
    "int8:channel:sym",
    "int2:tensor:asym",
    "int16:g64:sym:full",
    "int4:g16:sym:scale=e8m0",
    "int4:g16:asym:scale=bf16",
    "int5:g8:asym:scale=e4m3fn:mse",
    "fixed:q4.4",
    "fixed:q1.15:wrap",
    "mxfp4",
    "mxfp6_e2m3:b8",
    "mxfp8_e5m2",
    "mxfp8_e4m3:ceil",
    "mxint8:b16",
    "nvfp4",
    "nvfp4:b8:notensor",
    "bfp8:b16",
    "bfp3:b4",
    "bitmod3:g32",
    "nf4:g64:scale=float16",
    "codebook(-1,-0.25,0,0.5,2):g16",
];

/// A tensor with the awkward cases: an all-zero block, an outlier, tiny values, and (when `specials`) an
/// infinity and a NaN.
fn tensor(n: usize, seed: u64, specials: bool) -> Vec<f32> {
    let mut r = TestRng::new(seed);
    let mut x: Vec<f32> = (0..n)
        .map(|_| {
            let u = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((u - 0.5) * 4.0) as f32
        })
        .collect();
    for v in x.iter_mut().take(40) {
        *v = 0.0;
    }
    x[n / 2] = 3.0e4;
    x[n / 3] = 1.0e-39;
    if specials {
        x[n - 5] = f32::INFINITY;
        x[n - 70] = f32::NAN;
    }
    x
}

/// Which schemes take NaN (integer and codebook codes have none).
fn takes_nan(s: &Scheme) -> bool {
    matches!(s, Scheme::Mx(_) | Scheme::Nvfp4(_) | Scheme::Bfp(_))
}

fn cases() -> Vec<(Scheme, Vec<usize>, usize, Vec<f32>)> {
    let mut out = Vec::new();
    for (k, name) in SCHEMES.iter().enumerate() {
        let s = Scheme::parse(name).unwrap();
        // Shapes whose blocked axis is not a multiple of the block; blocks along the first and last axis.
        for (shape, axis) in [(vec![3, 200], 1), (vec![77, 5], 0), (vec![2, 3, 45], 2)] {
            let n = shape.iter().product();
            out.push((s.clone(), shape, axis, tensor(n, k as u64, takes_nan(&s))));
        }
    }
    out
}

#[test]
fn packing_keeps_everything() {
    for mode in [RoundingMode::NearestEven, RoundingMode::Stochastic] {
        let cfg = Rounding::new(mode).with_seed(11);
        for (s, shape, axis, x) in cases() {
            let q = s.quantize(&cfg, &x, &shape, axis).unwrap();
            let t = QuantizedTensor::pack(&s, &q).unwrap();
            assert_eq!(t.unpack().unwrap(), q, "{s} {shape:?}");
            assert_eq!(t, QuantizedTensor::quantize(&s, &cfg, &x, &shape, axis).unwrap());
            // Storage counted part by part equals the scheme's own formula.
            let (ours, theirs) = (t.bits_per_element(), q.bits_per_element());
            assert!((ours - theirs).abs() <= 1e-12 * theirs, "{s}: {ours} vs {theirs}");
            let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
            q.dequantize(&mut a).unwrap();
            t.dequantize(&mut b).unwrap();
            assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()), "{s}");
            // Packed bytes are exactly the bits needed, no more.
            for p in t.parts() {
                assert_eq!(p.data.len(), (p.len() * p.bits as usize).div_ceil(8), "{s} {}", p.name);
            }
        }
    }
}

#[test]
fn accessors_read_the_parts_as_the_schemes_define_them() {
    let x = tensor(256, 3, false);
    let cfg = Rounding::default();
    for name in ["int4:g64:asym", "mxfp4", "nvfp4", "bfp8:b16", "bitmod4:g64", "nf4:g64"] {
        let s = Scheme::parse(name).unwrap();
        let t = QuantizedTensor::quantize(&s, &cfg, &x, &[4, 64], 1).unwrap();
        match t.unpack().unwrap() {
            lowp::quant::Quantized::Int(q) => {
                assert_eq!(t.codes(), q.codes.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
                assert_eq!(t.scales(), q.scales);
                assert_eq!(t.zeros().unwrap(), q.zeros.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
                // 4-bit codes are packed as lowp::pack packs them.
                let codes: Vec<u8> = q.codes.iter().map(|&c| c as u8).collect();
                assert_eq!(t.part("codes").unwrap().data, lowp::pack(&codes, 4).unwrap());
            }
            lowp::quant::Quantized::Mx(q) => {
                let want: Vec<f64> = q.scales.iter().map(|&c| (f64::from(c) - 127.0).exp2()).collect();
                assert_eq!(t.scales(), want);
            }
            lowp::quant::Quantized::Nvfp4(q) => {
                assert_eq!(t.tensor_scale(), Some(q.tensor_scale));
                assert_eq!(t.part("scales").unwrap().data, q.scales);
            }
            lowp::quant::Quantized::Bfp(q) => {
                assert_eq!(t.codes(), q.mantissas.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
            }
            lowp::quant::Quantized::Codebook(q) => {
                assert_eq!(t.scales(), q.scales);
                let types = t.types().unwrap_or_else(|| vec![0; q.types.len()]);
                assert_eq!(types, q.types.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
            }
            lowp::quant::Quantized::Fixed(..) => unreachable!(),
        }
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lowp-test-{}-{name}", std::process::id()))
}

#[test]
fn files_round_trip() {
    let cfg = Rounding::default();
    let tensors: Vec<(String, QuantizedTensor)> = cases()
        .into_iter()
        .enumerate()
        .map(|(k, (s, shape, axis, x))| {
            (format!("t{k}"), QuantizedTensor::quantize(&s, &cfg, &x, &shape, axis).unwrap())
        })
        .collect();
    let refs: Vec<(&str, &QuantizedTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let path = temp("round-trip.safetensors");
    save(&path, &refs).unwrap();
    let mut back = load(&path).unwrap();
    let mut want = tensors.clone();
    back.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, want);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn other_readers_see_ordinary_arrays() {
    let x = tensor(512, 5, false);
    let cfg = Rounding::default();
    let int8 = QuantizedTensor::quantize(&Scheme::parse("int8:channel:sym").unwrap(), &cfg, &x, &[4, 128], 0).unwrap();
    let bm = QuantizedTensor::quantize(&Scheme::parse("bitmod4:g64").unwrap(), &cfg, &x, &[4, 128], 1).unwrap();
    let bytes = to_bytes(&[("a", &int8), ("b", &bm)]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = |n: &str| st.tensor(n).unwrap();
    use safetensors::Dtype;
    assert_eq!((view("a.codes").dtype(), view("a.codes").shape()), (Dtype::I8, &[4usize, 128][..]));
    assert_eq!((view("a.scales").dtype(), view("a.scales").shape()), (Dtype::F32, &[4usize][..]));
    let scales: Vec<f64> =
        view("a.scales").data().chunks(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect();
    assert_eq!(scales, int8.scales());
    assert_eq!((view("b.scales").dtype(), view("b.scales").shape()), (Dtype::F16, &[4usize, 2][..]));
    assert_eq!((view("b.codes").dtype(), view("b.codes").shape()), (Dtype::U8, &[256usize][..])); // packed
    assert_eq!((view("b.types").dtype(), view("b.types").shape()), (Dtype::U8, &[2usize][..])); // 8 x 2 bits
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let lowp_meta: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["lowp"]).unwrap();
    assert_eq!(lowp_meta["tensors"]["b"]["scheme"], "bitmod4:g64");
    assert_eq!(lowp_meta["tensors"]["b"]["parts"]["types"]["bits"], 2);
}

/// A file with one part of one tensor changed by `edit` on the JSON metadata.
fn tampered(edit: impl Fn(&mut serde_json::Value)) -> Result<Vec<(String, QuantizedTensor)>, Error> {
    let x = tensor(256, 9, false);
    let t = QuantizedTensor::quantize(&Scheme::parse("bitmod4:g64").unwrap(), &Rounding::default(), &x, &[2, 128], 1)
        .unwrap();
    let bytes = to_bytes(&[("w", &t)]).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(header["__metadata__"]["lowp"].as_str().unwrap()).unwrap();
    edit(&mut meta);
    header["__metadata__"]["lowp"] = serde_json::Value::String(meta.to_string());
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(&h);
    out.extend(&bytes[8 + n..]);
    let path = temp(&format!("tampered-{}.safetensors", out.len() ^ (h.len() * 7919)));
    std::fs::write(&path, &out).unwrap();
    let r = load(&path);
    std::fs::remove_file(&path).unwrap();
    r
}

/// An edit of a file's metadata.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn tampered_metadata_is_refused() {
    assert!(tampered(|_| {}).is_ok());
    let cases: Vec<(&str, Edit)> = vec![
        (
            "part `types` is missing",
            Box::new(|m| {
                m["tensors"]["w"]["parts"].as_object_mut().unwrap().remove("types");
            }),
        ),
        ("needs", Box::new(|m| m["tensors"]["w"]["parts"]["codes"]["bits"] = 3.into())),
        ("needs", Box::new(|m| m["tensors"]["w"]["shape"] = serde_json::json!([4, 64]))),
        ("`int9000x`", Box::new(|m| m["tensors"]["w"]["scheme"] = "int9000x".into())),
        ("version", Box::new(|m| m["version"] = 99.into())),
        ("malformed", Box::new(|m| m["tensors"]["w"]["parts"]["codes"]["bits"] = 0.into())),
        ("unknown part", Box::new(|m| m["tensors"]["w"]["parts"]["extra"] = serde_json::json!({}))),
        ("out of range", Box::new(|m| m["tensors"]["w"]["axis"] = 5.into())),
    ];
    for (want, edit) in cases {
        let e = tampered(edit).unwrap_err().to_string();
        assert!(e.contains(want), "wanted `{want}` in: {e}");
    }
}

#[test]
fn out_of_range_codes_are_refused() {
    // A codebook file whose codes run past the end of the codebook. (BitMoD's four variants fill its 2-bit
    // type ids, so no stored type id can be out of range.)
    let x = tensor(128, 2, false);
    let cfg = Rounding::default();
    let cb = Scheme::parse("codebook(-1,0,1):g64").unwrap(); // 3 values in 2-bit codes: code 3 is unused
    let t = QuantizedTensor::quantize(&cb, &cfg, &x, &[128], 0).unwrap();
    let mut parts: Vec<Part> = t.parts().to_vec();
    parts[0].data[5] = 0xff;
    let e = QuantizedTensor::from_parts(cb, vec![128], 0, parts).unwrap_err();
    assert!(e.to_string().contains("past the codebook's end"), "{e}");
}

#[test]
fn broken_files_are_errors_not_panics() {
    let x = tensor(256, 4, true);
    let t = QuantizedTensor::quantize(&Scheme::parse("mxfp4").unwrap(), &Rounding::default(), &x, &[256], 0).unwrap();
    let good = to_bytes(&[("w", &t)]).unwrap();
    let path = temp("broken.safetensors");
    let mut r = TestRng::new(1);
    let mut tries: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], good[..good.len() - 1].to_vec(), good[..20].to_vec()];
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    tries.push(huge);
    for _ in 0..300 {
        let mut b = good.clone();
        let i = (r.next_u64() % b.len() as u64) as usize;
        b[i] ^= 1 << (r.next_u64() % 8);
        tries.push(b);
    }
    for b in tries {
        std::fs::write(&path, &b).unwrap();
        // Either a clean error or (a flipped bit in the data section) a valid tensor: never a panic.
        if let Ok(v) = load(&path) {
            let mut y = vec![0f32; 256];
            v[0].1.dequantize(&mut y).unwrap();
        }
    }
    std::fs::remove_file(&path).unwrap();
    let e = load(std::path::Path::new("/nonexistent/x.safetensors")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn failed_saves_leave_nothing_behind() {
    let x = tensor(64, 4, false);
    let t = QuantizedTensor::quantize(&Scheme::parse("mxfp4").unwrap(), &Rounding::default(), &x, &[64], 0).unwrap();
    let dir = temp("readonly-dir");
    std::fs::create_dir_all(&dir).unwrap();
    // The target is a directory: the rename fails after the temporary file was written.
    let target = dir.join("sub");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("f"), b"x").unwrap();
    assert!(save(&target, &[("w", &t)]).is_err());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("sub")]);
    assert!(save(&dir.join("a.safetensors"), &[("w", &t), ("w", &t)]).unwrap_err().to_string().contains("distinct"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn any_safetensors_file_is_read_tensor_by_tensor() {
    // A plain float file (as a model checkpoint would be) written by the safetensors crate itself.
    let f32s: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let halfs: Vec<u16> = [1.0f32, -2.0].iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let bf16s: Vec<u16> = [3.0f32, 0.15625].iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
    let le = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (a, b, c) = (f32s.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), le(&halfs), le(&bf16s));
    let ids = [1u8, 2, 3];
    use safetensors::{tensor::TensorView, Dtype};
    let views = vec![
        ("w", TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap()),
        ("h", TensorView::new(Dtype::F16, vec![2], &b).unwrap()),
        ("g", TensorView::new(Dtype::BF16, vec![2], &c).unwrap()),
        ("ids", TensorView::new(Dtype::U8, vec![3], &ids).unwrap()),
    ];
    let path = temp("plain.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let mut f = SafetensorsFile::open(&path).unwrap();
    assert_eq!(f.tensors().keys().collect::<Vec<_>>(), ["g", "h", "ids", "w"]);
    use lowp::quant::Floats;
    assert_eq!(f.read_floats("w").unwrap(), Some(Floats::F32(f32s)));
    assert_eq!(f.read_floats("h").unwrap(), Some(Floats::F32(vec![1.0, -2.0])));
    assert_eq!(f.read_floats("g").unwrap(), Some(Floats::F32(vec![3.0, 0.15625])));
    assert_eq!(f.read_floats("ids").unwrap(), None);
    assert!(f.read("nope").unwrap_err().to_string().contains("no tensor `nope`"));
    assert!(f.quantized().unwrap_err().to_string().contains("not a file of quantized tensors"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn empty_and_degenerate_shapes() {
    let cfg = Rounding::default();
    for name in SCHEMES {
        let s = Scheme::parse(name).unwrap();
        for (shape, axis) in [(vec![5, 0], 1), (vec![0, 5], 1), (vec![5, 0], 0), (vec![], 0), (vec![1, 1], 1)] {
            let n: usize = shape.iter().product();
            let x = vec![0.5f32; n];
            let t = QuantizedTensor::quantize(&s, &cfg, &x, &shape, axis).unwrap();
            let mut y = vec![0f32; n];
            t.dequantize(&mut y).unwrap();
            let back = lowp::quant::from_bytes(&to_bytes(&[("t", &t)]).unwrap()).unwrap();
            assert_eq!(back[0].1, t, "{name} {shape:?}");
        }
    }
}

#[test]
fn bit_flips_are_refused_by_schemes() {
    let cfg = Rounding::default().with_flip(0.5, lowp::FlipScope::Significand);
    for name in ["int4:g32:asym", "mxfp4", "nvfp4", "bfp8", "bitmod4", "nf4"] {
        let e = Scheme::parse(name).unwrap().quantize(&cfg, &[1.0f32; 64], &[64], 0).unwrap_err();
        assert!(e.to_string().contains("bit flips"), "{name}: {e}");
    }
}

#[test]
fn impossible_metadata_is_refused() {
    // Shapes whose element count overflows, or that claim far more data than the file holds.
    let huge = tampered(|m| {
        m["tensors"]["w"]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40]);
    });
    let e = huge.unwrap_err().to_string();
    assert!(e.contains("impossible shape"), "{e}");
    let e = tampered(|m| m["tensors"]["w"]["parts"]["codes"]["shape"] = serde_json::json!([1u64 << 50])).unwrap_err();
    assert!(e.to_string().contains("needs"), "{e}");
    let e = tampered(|m| m["tensors"]["w"]["parts"]["codes"]["shape"] = serde_json::json!([1u64 << 32, 1u64 << 32]))
        .unwrap_err();
    assert!(e.to_string().contains("impossible shape"), "{e}");
    let e = tampered(|m| m["tensors"]["w"]["scheme"] = 5.into()).unwrap_err();
    assert!(e.to_string().contains("not a string"), "{e}");
    // A duplicated part, a fixed-point axis out of range, an integer code outside the scheme's range.
    let x = tensor(64, 1, false);
    let cfg = Rounding::default();
    let t = QuantizedTensor::quantize(&Scheme::parse("int4:g32:sym").unwrap(), &cfg, &x, &[64], 0).unwrap();
    let mut parts = t.parts().to_vec();
    parts.push(parts[0].clone());
    let e = QuantizedTensor::from_parts(t.scheme().clone(), vec![64], 0, parts).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let mut parts = t.parts().to_vec();
    parts[0].data[0] = 0x88; // two codes of -8: int4:sym stops at -7
    let e = QuantizedTensor::from_parts(t.scheme().clone(), vec![64], 0, parts).unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    let f = QuantizedTensor::quantize(&Scheme::parse("fixed:q4.4").unwrap(), &cfg, &x, &[64], 0).unwrap();
    let e = QuantizedTensor::from_parts(f.scheme().clone(), vec![64], 7, f.parts().to_vec()).unwrap_err();
    assert!(e.to_string().contains("axis 7"), "{e}");
}

#[test]
fn saves_from_many_threads_at_once() {
    let x = tensor(256, 8, false);
    let t = QuantizedTensor::quantize(&Scheme::parse("mxfp4").unwrap(), &Rounding::default(), &x, &[256], 0).unwrap();
    let dir = temp("threads");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("same.safetensors");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| save(&path, &[("w", &t)]).unwrap());
        }
    });
    assert_eq!(load(&path).unwrap()[0].1, t);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1); // no temporary file left
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn packing_with_another_scheme_is_refused() {
    let x = tensor(128, 6, false);
    let cfg = Rounding::default();
    for (made, claimed) in [
        ("mxfp4", "mxfp6_e2m3"),
        ("int4:g32:asym", "int4:g32:sym"),
        ("nf4:g64", "bitmod4:g64"),
        ("bitmod4:g64", "bitmod3:g64"),
    ] {
        let q = Scheme::parse(made).unwrap().quantize(&cfg, &x, &[128], 0).unwrap();
        let e = QuantizedTensor::pack(&Scheme::parse(claimed).unwrap(), &q).unwrap_err();
        assert!(e.to_string().contains("cannot pack"), "{made} as {claimed}: {e}");
    }
}

#[test]
fn nvfp4_tensor_scale_stays_finite_for_huge_float64_data() {
    // amax / (448 * 6) beyond float32's range: the tensor scale saturates at float32's max, not inf.
    let mut x = vec![1.0f64; 32];
    x[0] = 1e42;
    let t = QuantizedTensor::quantize(&Scheme::parse("nvfp4").unwrap(), &Rounding::default(), &x, &[32], 0).unwrap();
    assert_eq!(t.tensor_scale(), Some(f32::MAX));
    let mut y = vec![0f64; 32];
    t.dequantize(&mut y).unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
}
