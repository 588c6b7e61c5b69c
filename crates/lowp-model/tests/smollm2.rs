//! SmolLM2-135M-Instruct as `scripts/fetch-models.sh` prepares it (scripts/test.sh runs that first; without
//! the files these tests fail and say how to fetch them).

use std::sync::OnceLock;

use lowp::ptq::{gptq, hessian_error, GptqOptions, Hessian};
use lowp::quant::{AffineInt, Scheme};
use lowp::Rounding;
use lowp_model::eval::{perplexity, Scoring};
use lowp_model::ggml::GgmlType;
use lowp_model::gguf::Gguf;
use lowp_model::llama::{Llama, NoTaps, Site, Taps};
use lowp_model::tokenizer::Tokenizer;
use lowp_model::{data, ptq};

struct Fixture {
    model: Llama,
    tokens: Vec<u32>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let g = Gguf::open(data::smollm2().unwrap()).unwrap();
        let model = Llama::from_gguf(&g).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        let text = std::fs::read_to_string(data::tutorial().unwrap()).unwrap();
        let tokens = tok.encode(&text, false).unwrap();
        Fixture { model, tokens }
    })
}

#[test]
fn the_gguf_file_is_read_whole() {
    let g = Gguf::open(data::smollm2().unwrap()).unwrap();
    assert_eq!(g.tensors.len(), 272);
    let count = |k: GgmlType| g.tensors.iter().filter(|t| t.kind == k).count();
    assert_eq!((count(GgmlType::Q4_1), count(GgmlType::F32), count(GgmlType::Q8_0)), (210, 61, 1));
    for t in &g.tensors {
        let (v, shape) = g.dequantize(&t.name).unwrap();
        assert_eq!(shape.iter().product::<usize>(), v.len());
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
    }
    let m = &fixture().model;
    let c = &m.config;
    assert_eq!((c.layers, c.dim, c.heads, c.kv_heads, c.ffn, c.vocab), (30, 576, 9, 3, 1536, 49152));
    assert_eq!((c.rope_base, m.output.is_none()), (100000.0, true)); // tied output
    assert_eq!(m.block_weights(), 30 * (2 * 576 * 576 + 2 * 192 * 576 + 3 * 576 * 1536));
}

#[test]
fn the_tokenizer_is_lossless_and_splits_digits() {
    let g = Gguf::open(data::smollm2().unwrap()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let text = std::fs::read_to_string(data::tutorial().unwrap()).unwrap();
    let ids = &fixture().tokens;
    assert_eq!(tok.decode(ids).unwrap(), text, "byte-level BPE gives the text back");
    // llama.cpp's `smollm` pre-tokenizer: every digit is a token of its own.
    let ids = tok.encode("in 2024, 3.14159 and x42", false).unwrap();
    for &id in &ids {
        let piece = tok.decode(&[id]).unwrap();
        assert!(!piece.chars().any(|c| c.is_ascii_digit()) || piece.len() == 1, "{piece:?} in {ids:?}");
    }
    assert_eq!(tok.vocab_size(), 49152);
}

#[test]
fn logits_do_not_see_the_future() {
    let f = fixture();
    let a = &f.tokens[..48];
    let mut b = a.to_vec();
    for t in &mut b[32..] {
        *t = (*t + 1000) % 49152;
    }
    let (la, lb) = (f.model.forward(a, &mut NoTaps).unwrap(), f.model.forward(&b, &mut NoTaps).unwrap());
    let v = f.model.config.vocab;
    assert_eq!(la[..32 * v], lb[..32 * v], "positions before the change");
    assert_ne!(la[32 * v..33 * v], lb[32 * v..33 * v]);
    let long = vec![1u32; f.model.config.context + 1];
    assert!(f.model.forward(&long, &mut NoTaps).unwrap_err().to_string().contains("longer than the model's context"));
    // A window's prefix gives the prefix's logits.
    let lp = f.model.forward(&a[..20], &mut NoTaps).unwrap();
    let worst = lp.iter().zip(&la[..20 * v]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "prefix logits differ by {worst}");
}

#[test]
fn perplexity_orders_the_schemes() {
    let f = fixture();
    let tokens = &f.tokens[..1024];
    let ppl = |m: &Llama| perplexity(m, tokens, 512, Scoring::All, &mut |_, _| {}).unwrap().perplexity;
    let reference = ppl(&f.model);
    // A 135M model predicting Python documentation: far better than chance (49152) or a unigram model.
    assert!(reference > 2.0 && reference < 30.0, "reference perplexity {reference}");
    let quantized = |s: &str| {
        let mut m = f.model.clone();
        let q = ptq::rtn(&mut m, &Scheme::parse(s).unwrap(), &Rounding::default(), &mut |_, _, _| {}).unwrap();
        (ppl(&m), q)
    };
    let (p8, q8) = quantized("int8:channel:sym");
    let (p4, _) = quantized("int4:g128:asym");
    let (p2, _) = quantized("int2:g64:asym");
    assert!((p8 / reference - 1.0).abs() < 0.01, "W8 per channel {p8} against {reference}");
    assert!(p4 > p8 && p2 > 2.0 * p4, "W4 {p4}, W2 {p2}: fewer bits, more loss");
    assert_eq!(q8.layers.len(), 210);
    // Per channel = one scale per output feature (a row of the [out, in] weight).
    let (name, k) = &q8.layers[1];
    assert_eq!((name.as_str(), k.shape(), k.scales().len()), ("blk.0.attn_k.weight", &[192, 576][..], 192));
    assert!((q8.bits_per_weight() - 8.05).abs() < 0.01, "{}", q8.bits_per_weight());

    // Saved and applied to a fresh model: the same weights.
    let path = std::env::temp_dir().join(format!("lowp-ptq-{}.safetensors", std::process::id()));
    q8.save(&path).unwrap();
    let mut fresh = f.model.clone();
    assert_eq!(ptq::apply_file(&mut fresh, &path).unwrap(), 210);
    std::fs::remove_file(&path).unwrap();
    let mut m8 = f.model.clone();
    ptq::rtn(&mut m8, &Scheme::parse("int8:channel:sym").unwrap(), &Rounding::default(), &mut |_, _, _| {}).unwrap();
    for (a, b) in fresh.linears().iter().zip(m8.linears()) {
        assert_eq!(a.w, b.w, "{}", a.name);
    }
}

/// Calibration windows from the library reference.
fn calibration(windows: usize) -> Vec<Vec<u32>> {
    let g = Gguf::open(data::smollm2().unwrap()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let text = std::fs::read_to_string(data::library().unwrap()).unwrap();
    let ids = tok.encode(&text[..200_000], false).unwrap();
    ptq::windows(&ids, 512, 512 * windows).unwrap()
}

struct Collect(Vec<(Site, Hessian)>, usize);

impl Taps for Collect {
    fn input(&mut self, layer: usize, site: Site, x: &[f32], rows: usize) {
        if layer == self.1 {
            self.0.iter_mut().find(|(s, _)| *s == site).unwrap().1.add(x, rows).unwrap();
        }
    }
}

#[test]
fn gptq_beats_rtn_on_every_real_layer() {
    let f = fixture();
    let d = f.model.config.dim;
    for layer in [0, 17, 29] {
        let mut taps = Collect(
            vec![
                (Site::Attention, Hessian::new(d)),
                (Site::AttentionOut, Hessian::new(d)),
                (Site::Ffn, Hessian::new(d)),
                (Site::FfnDown, Hessian::new(f.model.config.ffn)),
            ],
            layer,
        );
        for w in calibration(2) {
            let mut x = f.model.embed(&w).unwrap();
            for l in 0..=layer {
                f.model.block(l, &mut x, w.len(), &mut taps);
            }
        }
        for spec in ["int4:g128:asym", "int3:g128:asym", "int4:channel:sym", "int2:g64:asym"] {
            let s = AffineInt::parse(spec).unwrap();
            for (site, lin) in f.model.blocks[layer].linears() {
                let h = taps.0.iter().find(|(t, _)| *t == site).unwrap().1.matrix();
                let w: Vec<f64> = lin.w.iter().map(|&v| f64::from(v)).collect();
                let axis = ptq::weight_axis(&Scheme::Int(s.clone()));
                let rtn = s.quantize(&Rounding::default(), &w, &[lin.out, lin.inp], axis).unwrap();
                let mut rq = vec![0f64; w.len()];
                rtn.dequantize(&mut rq).unwrap();
                let g = gptq(&s, &w, lin.out, lin.inp, &h, &GptqOptions::default()).unwrap();
                let (er, eg) = (
                    hessian_error(&w, &rq, lin.out, lin.inp, &h).unwrap(),
                    hessian_error(&w, &g.values, lin.out, lin.inp, &h).unwrap(),
                );
                assert!(eg < er, "{spec} {}: GPTQ {eg} against RTN {er}", lin.name);
            }
        }
    }
}

#[test]
fn gptq_on_the_whole_model_beats_rtn_at_3_bits() {
    let f = fixture();
    let tokens = &f.tokens[..1024];
    let ppl = |m: &Llama| perplexity(m, tokens, 512, Scoring::All, &mut |_, _| {}).unwrap().perplexity;
    let s = Scheme::parse("int3:g128:asym").unwrap();
    let mut r = f.model.clone();
    ptq::rtn(&mut r, &s, &Rounding::default(), &mut |_, _, _| {}).unwrap();
    let mut g = f.model.clone();
    let mut blocks = 0;
    let q = ptq::gptq_model(&mut g, &s, &calibration(2), &GptqOptions::default(), &mut |_, _, _| blocks += 1).unwrap();
    assert_eq!((blocks, q.layers.len()), (30, 210));
    let (pr, pg) = (ppl(&r), ppl(&g));
    assert!(pg < 0.8 * pr, "GPTQ {pg} against RTN {pr}");
    // The saved layers are the model's new weights.
    let mut fresh = f.model.clone();
    let path = std::env::temp_dir().join(format!("lowp-gptq-{}.safetensors", std::process::id()));
    q.save(&path).unwrap();
    ptq::apply_file(&mut fresh, &path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for (a, b) in fresh.linears().iter().zip(g.linears()) {
        assert_eq!(a.w, b.w, "{}", a.name);
    }
    let mx = Scheme::parse("mxfp4").unwrap();
    let e = ptq::gptq_model(&mut f.model.clone(), &mx, &calibration(1), &GptqOptions::default(), &mut |_, _, _| {});
    assert!(e.unwrap_err().to_string().contains("affine integer"));
}

#[test]
fn exported_gguf_holds_lowps_weights() {
    let f = fixture();
    let g = Gguf::open(data::smollm2().unwrap()).unwrap();
    for (spec, kind) in [("int8:g32:sym:scale=fp16", GgmlType::Q8_0), ("mxfp4", GgmlType::Mxfp4)] {
        let mut m = f.model.clone();
        let q = ptq::rtn(&mut m, &Scheme::parse(spec).unwrap(), &Rounding::default(), &mut |_, _, _| {}).unwrap();
        let path = std::env::temp_dir().join(format!("lowp-export-{}.gguf", std::process::id()));
        let kinds = lowp_model::export::gguf(&g, &q.layers, spec, &path).unwrap();
        assert!(kinds.iter().all(|&k| k == kind));
        let back = Gguf::open(&path).unwrap();
        let exported = Llama::from_gguf(&back).unwrap();
        std::fs::remove_file(&path).unwrap();
        for (a, b) in exported.linears().iter().zip(m.linears()) {
            assert_eq!(a.w, b.w, "{spec} {}", a.name);
        }
        assert_eq!(exported.embedding, f.model.embedding);
        assert_eq!(back.tensors.len(), g.tensors.len());
        assert_eq!(back.get("lowp.scheme").and_then(|v| v.as_str()), Some(spec));
    }
    let mut m = f.model.clone();
    let q =
        ptq::rtn(&mut m, &Scheme::parse("int4:g128:asym").unwrap(), &Rounding::default(), &mut |_, _, _| {}).unwrap();
    let e = lowp_model::export::gguf(&g, &q.layers, "int4:g128:asym", std::path::Path::new("/nonexistent/x.gguf"));
    assert!(e.unwrap_err().to_string().contains("no ggml block type"));
}
