//! Randomness, passed in rather than taken from a global source.
//!
//! The core needs random bytes for mask keys, ping payloads and the
//! handshake key. Tests seed a fixed source and get byte-for-byte
//! reproducible output; adapters seed from the operating system.

/// A source of random bytes the caller may replace.
///
/// Mask keys come from it, and RFC 6455 section 10.3 requires that an
/// intermediary cannot predict them: a source used on a real network must
/// be a cryptographically secure generator (tether's adapters use
/// `tether::os_rng()`, a thread-local ChaCha12 seeded by the operating
/// system). A fixed-seed source such as [`Xoshiro256`] is for tests.
pub trait RandomSource: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);

    /// A random 32-bit value.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill(&mut b);
        u32::from_ne_bytes(b)
    }
}

/// xoshiro256++ seeded through SplitMix64: fast, small, statistically
/// good, and reproducible from its seed, for tests and simulations.
///
/// Not for mask keys on a network: it is not a CSPRNG, and its state can
/// be recovered from outputs an intermediary sees on the wire (RFC 6455
/// section 10.3 asks for keys it cannot predict). Use a cryptographically
/// secure source there, such as `tether::os_rng()`.
#[derive(Debug, Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    /// A generator whose whole output is determined by `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

impl RandomSource for Xoshiro256 {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let (mut a, mut b) = (Xoshiro256::from_seed(7), Xoshiro256::from_seed(7));
        let (mut x, mut y) = ([0u8; 37], [0u8; 37]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        let mut c = Xoshiro256::from_seed(8);
        c.fill(&mut y);
        assert_ne!(x, y);
    }
}
