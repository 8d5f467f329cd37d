//! Shared by the core's test binaries: `assert_close!` and a small deterministic generator
//! (xorshift64* with Box–Muller normals), so that simulations are reproducible without a
//! dependency.

#![allow(dead_code)]

macro_rules! assert_close {
    ($actual:expr, $expected:expr, $tol:expr) => {{
        let (a, e): (f64, f64) = ($actual, $expected);
        assert!(
            (a - e).abs() <= $tol,
            "{} = {a}, expected {e} (tol {})",
            stringify!($actual),
            $tol
        );
    }};
}

pub struct Rng(pub u64);

impl Rng {
    /// Uniform in (0, 1): 53 random bits, never 0, so a logarithm of it is finite.
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A normal draw with `mean` and `sd`.
    pub fn gaussian(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A standard normal draw.
    pub fn normal(&mut self) -> f64 {
        self.gaussian(0.0, 1.0)
    }

    /// `n` standard normal draws.
    pub fn normals(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }

    /// `n` normal draws with `mean` and `sd`.
    pub fn sample(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.gaussian(mean, sd)).collect()
    }
}
