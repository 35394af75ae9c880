//! A tiny deterministic PRNG (SplitMix64) and the distributions the generator draws from.
//!
//! Not cryptographic and not meant to be: the data must be the same on every machine and every
//! run, so a reused data directory and a fresh one give the same figures.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, one multiply-xorshift finaliser.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

/// SplitMix64's finaliser. It is a bijection on `u64`, so distinct inputs give distinct
/// outputs: the generator uses it to turn row counters into unique, random-looking ids.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose stream depends only on `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(mix(seed ^ 0x5eed_ca11_7a11_0000))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` > 0). The modulo bias is below 2^-40 for the small `n` used here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal draw (Box-Muller; the second value is dropped for simplicity).
    pub(crate) fn normal(&mut self) -> f64 {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A log-normal draw with the given median and log-space standard deviation.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// An index in `0..n` skewed towards 0: `n * u^power`, so that a few principals and tools
    /// carry much of the traffic while the tail stays busy.
    pub(crate) fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((n as f64 * self.unit().powf(power)) as usize).min(n - 1)
    }
}
