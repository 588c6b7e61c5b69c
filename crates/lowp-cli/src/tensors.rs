//! Built-in test tensors for `lowp report` and `lowp bench`: the value distributions that matter when
//! choosing a format for a model, generated from a fixed seed so every run and machine sees the same data.

/// SplitMix64: tiny, fast, and good enough for test data; no dependency, no platform variation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1): never 0, so `ln` is safe.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9007199254740992.0)
    }

    /// Standard normal (Box-Muller; one of the pair is dropped to keep the state simple).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One built-in tensor.
pub struct Tensor {
    pub name: &'static str,
    pub description: String,
    pub data: Vec<f32>,
}

const SEED: u64 = 0x10_77_b0_0c;

/// Channels (columns) of the heavy-tailed weight matrix; a few of them carry outliers.
const CHANNELS: usize = 1024;
const OUTLIER_CHANNELS: [usize; 4] = [7, 300, 511, 1000];

/// The four built-in tensors, `n` elements each.
pub fn builtin(n: usize) -> Vec<Tensor> {
    vec![
        Tensor { name: "gaussian", description: "weights ~ N(0, 0.02^2)".into(), data: gaussian(n, 0.02, SEED) },
        Tensor {
            name: "heavy_tailed",
            description: format!(
                "weights ~ 0.02 * Student-t(3), {} of {CHANNELS} channels (columns) scaled x50",
                OUTLIER_CHANNELS.len()
            ),
            data: heavy_tailed(n, SEED + 1),
        },
        Tensor { name: "gelu", description: "activations GELU(x), x ~ N(0, 1)".into(), data: gelu(n, SEED + 2) },
        Tensor {
            name: "wide_range",
            description: "|x| log-uniform over [2^-40, 2^40], random signs".into(),
            data: wide_range(n, SEED + 3),
        },
    ]
}

pub fn gaussian(n: usize, sigma: f64, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (sigma * r.normal()) as f32).collect()
}

fn heavy_tailed(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            // Student-t with 3 degrees of freedom: Z / sqrt(chi^2_3 / 3).
            let z = r.normal();
            let chi2: f64 = (0..3).map(|_| r.normal().powi(2)).sum();
            let t = z / (chi2 / 3.0).sqrt();
            let scale = if OUTLIER_CHANNELS.contains(&(i % CHANNELS)) { 50.0 } else { 1.0 };
            (0.02 * scale * t) as f32
        })
        .collect()
}

fn gelu(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let x = r.normal();
            // The tanh form used by GPT-2 and BERT (std has no erf).
            let y = 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
            y as f32
        })
        .collect()
}

fn wide_range(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mag = (r.uniform() * 80.0 - 40.0).exp2();
            let sign = if r.next_u64() >> 63 == 0 { 1.0 } else { -1.0 };
            (sign * mag) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_plausible() {
        let a = builtin(4096);
        let b = builtin(4096);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.data, y.data, "{}", x.name);
            assert!(x.data.iter().all(|v| v.is_finite()), "{}", x.name);
        }
        let g = &a[0].data;
        let var = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / g.len() as f64;
        assert!((var.sqrt() - 0.02).abs() < 0.002, "sigma {}", var.sqrt());
        let w = &a[3].data;
        assert!(w.iter().any(|v| v.abs() > 1e9) && w.iter().any(|v| v.abs() < 1e-9));
        assert!(a[2].data.iter().all(|&v| v > -0.2));
    }
}
