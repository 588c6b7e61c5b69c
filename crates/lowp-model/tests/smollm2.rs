//! SmolLM2-135M-Instruct as `scripts/fetch-models.sh` prepares it (scripts/test.sh runs that first; without
//! the files these tests fail and say how to fetch them).

use std::sync::OnceLock;

use lowp::quant::Scheme;
use lowp::Rounding;
use lowp_model::eval::{perplexity, Scoring};
use lowp_model::ggml::GgmlType;
use lowp_model::gguf::Gguf;
use lowp_model::llama::{Llama, NoTaps};
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
