//! The randomness every connection the adapters open uses: mask keys,
//! ping payloads, the handshake key and backoff jitter.
//!
//! RFC 6455 section 10.3 requires mask keys that an intermediary cannot
//! predict from the keys it has seen, so they come from a cryptographically
//! secure generator: rand's thread-local ChaCha12, seeded from the
//! operating system and reseeded from it as it goes. A linear generator
//! such as xoshiro (what the core's tests use for reproducible bytes) gives
//! its state away after a few outputs.

use tether_core::RandomSource;

/// The current thread's CSPRNG, as a [`RandomSource`]. Zero-sized: a
/// connection holds no generator of its own (idle memory stays as it
/// was), and each call draws from the generator of the thread it runs on,
/// so a connection that moves between threads stays correct.
///
/// A process that `fork`s without `exec` should call
/// `rand::rngs::ThreadRng::reseed` in the child, as rand documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCsprng;

impl RandomSource for ThreadCsprng {
    fn fill(&mut self, buf: &mut [u8]) {
        rand::Rng::fill_bytes(&mut rand::rng(), buf);
    }

    fn next_u32(&mut self) -> u32 {
        rand::Rng::next_u32(&mut rand::rng())
    }
}

/// A cryptographically secure random source seeded by the operating
/// system (a [`ThreadCsprng`]; boxing it allocates nothing).
pub fn os_rng() -> Box<dyn RandomSource> {
    Box::new(ThreadCsprng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_cover_the_bytes() {
        let mut rng = os_rng();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_ne!(a, b);
        // 4,096 keys: every byte value appears in some position.
        let mut seen = [false; 256];
        for _ in 0..4096 {
            for byte in rng.next_u32().to_ne_bytes() {
                seen[byte as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    /// The source is the thread's CSPRNG and nothing else: no state of its
    /// own (a xoshiro seeded per connection, as before, held 32 bytes), and
    /// rand vouches for the generator behind it.
    #[test]
    fn the_source_is_the_thread_csprng() {
        fn crypto<R: rand::CryptoRng>(_: &R) {}
        crypto(&rand::rng());
        assert_eq!(std::mem::size_of_val(&*os_rng()), 0);
    }
}
