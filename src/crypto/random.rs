//! Randomness as an explicit input: sans-IO code never reads the OS RNG by itself, so tests and fuzzing
//! can replay a whole exchange from one seed.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// A source of cryptographically strong random octets (nonces, SPIs, DH private values, IVs).
pub trait Random: Send {
    fn fill(&mut self, out: &mut [u8]);

    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_be_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_be_bytes(b)
    }
}

impl<R: Random + ?Sized> Random for Box<R> {
    fn fill(&mut self, out: &mut [u8]) {
        (**self).fill(out)
    }
}

/// The operating system's RNG, through aws-lc-rs.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, out: &mut [u8]) {
        use aws_lc_rs::rand::SecureRandom;
        // An OS RNG that fails is unrecoverable: continuing would mean predictable keys.
        aws_lc_rs::rand::SystemRandom::new()
            .fill(out)
            .expect("the operating system's random number generator failed");
    }
}

/// Deterministic ChaCha20 stream from a 64-bit seed: for tests, simulations and fuzzing only.
pub struct SeededRandom(ChaCha20Rng);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(ChaCha20Rng::seed_from_u64(seed))
    }
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_seed_dependent() {
        let (mut a, mut b, mut c) = (SeededRandom::new(7), SeededRandom::new(7), SeededRandom::new(8));
        let (mut x, mut y, mut z) = ([0u8; 48], [0u8; 48], [0u8; 48]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn os_random_fills() {
        let mut r: Box<dyn Random> = Box::new(OsRandom);
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        r.fill(&mut x);
        r.fill(&mut y);
        assert_ne!(x, y);
    }
}
