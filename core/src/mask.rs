//! Payload masking (RFC 6455 section 5.3).
//!
//! Masking runs over every byte a client sends and a server receives, so it
//! works a machine word at a time rather than byte by byte.

/// XORs `buf` with `key`, starting `offset` bytes into the key stream, and
/// returns the key offset for the byte after `buf` (so a payload can be
/// unmasked in pieces as it arrives).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let len = buf.len();
    let mut key = key;
    key.rotate_left(offset & 3);
    let (head, words, tail) = split_words(buf);
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    let shift = head.len() & 3;
    let mut rotated = key;
    rotated.rotate_left(shift);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    for chunk in words.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= rotated[i & 3];
    }
    offset.wrapping_add(len) & 3
}

/// Splits `buf` into a short head (up to 7 bytes), a run of whole 8-byte
/// words and a short tail. Alignment of the words is not required for
/// correctness; the split only keeps the word loop free of bounds checks.
fn split_words(buf: &mut [u8]) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let head_len = buf.as_ptr().align_offset(8).min(buf.len());
    let (head, rest) = buf.split_at_mut(head_len);
    let words_len = rest.len() & !7;
    let (words, tail) = rest.split_at_mut(words_len);
    (head, words, tail)
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
