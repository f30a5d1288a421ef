//! Payload masking (RFC 6455 section 5.3).
//!
//! Masking runs over every byte a client sends and a server receives, so it
//! works a machine word at a time rather than byte by byte.

/// XORs `buf` with `key`, starting `offset` bytes into the key stream, and
/// returns the key offset for the byte after `buf` (so a payload can be
/// unmasked in pieces as it arrives).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let len = buf.len();
    // The key as the stream continues from `offset`, twice: one 8-byte
    // word covers two periods, so every word is XORed with the same value.
    let k = u32::from_le_bytes(key).rotate_right(8 * (offset & 3) as u32);
    let word = (u64::from(k) << 32 | u64::from(k)).to_le();
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        // Four independent words per step, which the compiler turns into
        // vector instructions.
        for w in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes(w.try_into().expect("8 bytes")) ^ word;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        let v = u64::from_ne_bytes(w.try_into().expect("8 bytes")) ^ word;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    let key = k.to_le_bytes();
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    offset.wrapping_add(len) & 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[offset.wrapping_add(i) & 3];
        }
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    quickcheck! {
        fn agrees_with_naive(data: Vec<u8>, key: (u8, u8, u8, u8), offset: usize, skip: u8) -> bool {
            let key = [key.0, key.1, key.2, key.3];
            // `skip` moves the slice start so every alignment is exercised.
            let skip = (skip as usize % 8).min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            let end = apply_mask(&mut fast[skip..], key, offset);
            naive(&mut slow[skip..], key, offset);
            fast == slow && end == offset.wrapping_add(data.len() - skip) & 3
        }

        fn split_anywhere(data: Vec<u8>, key: (u8, u8, u8, u8), cut: usize) -> bool {
            let key = [key.0, key.1, key.2, key.3];
            let cut = if data.is_empty() { 0 } else { cut % data.len() };
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            let off = apply_mask(a, key, 0);
            apply_mask(b, key, off);
            whole == pieces
        }
    }
}
