//! Where random bytes come from.
//!
//! Every function that needs randomness (nonces, ephemeral keys, new secrets)
//! takes an [`Entropy`] source, so that production code uses the operating
//! system and the golden test vectors can be reproduced from a fixed seed.

/// A source of cryptographically secure random bytes.
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);

    /// Returns `N` random bytes.
    fn array<const N: usize>(&mut self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        // Without the OS generator no key or nonce can be made safely, and
        // there is nothing sensible to fall back to.
        #[allow(clippy::expect_used)]
        getrandom::fill(dest).expect("the operating system's random number generator failed");
    }
}

/// A deterministic stream for test vectors and reproducible tests only:
/// HKDF-SHA256-Expand of a fixed seed, block by block. Never use it for keys.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    prk: hkdf::Hkdf<sha2::Sha256>,
    block: u64,
}

#[cfg(any(test, feature = "test-support"))]
impl SeededEntropy {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: &[u8]) -> Self {
        Self { prk: hkdf::Hkdf::new(Some(b"cove/test/entropy"), seed), block: 0 }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Entropy for SeededEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32 * 255) {
            let info = self.block.to_be_bytes();
            self.block += 1;
            // A chunk is at most 255 hash lengths, HKDF's documented maximum.
            #[allow(clippy::expect_used)]
            self.prk.expand(&info, chunk).expect("chunk within the HKDF output limit");
        }
    }
}
