//! The crate's random numbers: synthetic histories and test data.

/// SplitMix64: tiny, fast, and fixed forever, so a seed names the same file in every version of
/// the crate (an RNG crate may change its streams between versions).
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ z >> 30).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ z >> 27).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ z >> 31
}

impl Rng {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// The generator of stream `stream`, item `index`, for a user's `seed`.
    pub fn new(seed: u64, stream: u64, index: u64) -> Rng {
        Rng(mix(seed ^ mix(stream.wrapping_mul(Self::GAMMA) ^ mix(index.wrapping_add(Self::GAMMA)))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `0..n`, as an index (test data).
    #[cfg(test)]
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}
