//! tether's own deflate encoder for compression level 1: greedy LZ77 over
//! a sliding window with one hash candidate per position (and one step of
//! lazy matching for short matches), fixed Huffman blocks, and stored
//! blocks where those would be larger.
//!
//! It exists for memory: zlib-rs's compressor holds a fixed 128 KiB hash
//! table whatever the settings, while this one holds `2 * 2^window_bits`
//! bytes of history and a `2^window_bits`-entry `u16` hash table: 16 KiB
//! with a 4 KiB window.
//!
//! Every call ends like a zlib sync flush (the block closed, then an empty
//! stored block), so each fragment is decodable as it arrives, and no
//! distance ever exceeds the window: the peer's inflater keeps only that.

use super::bits::{self, BitWriter, LITERALS};

const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;
/// Bytes needed ahead of a position for a full-length match; while more
/// input follows, a pass stops this far before the end of the history.
const LOOKAHEAD: usize = MAX_MATCH + 1;
/// Matches shorter than this are checked against the next position's.
const LAZY: usize = 8;

pub(crate) struct Encoder {
    /// `2^window_bits`: the farthest a match may reach back.
    window: usize,
    /// The last bytes seen, up to two windows; the first window is only
    /// referenced, the second is being compressed.
    history: Vec<u8>,
    /// For each hash of four bytes, the last position in `history` that
    /// had it (positions shift down when the history slides).
    head: Vec<u16>,
    hash_shift: u32,
}

impl Encoder {
    /// `window_bits` is 9 to 15.
    pub(crate) fn new(window_bits: u8) -> Self {
        let window_bits = window_bits.clamp(9, 15);
        let window = 1usize << window_bits;
        Self {
            window,
            history: Vec::with_capacity(2 * window),
            head: vec![0; window],
            hash_shift: 32 - u32::from(window_bits),
        }
    }

    /// Appends `input` compressed to `out`, ending with a sync flush (the
    /// empty stored block, `00 00 FF FF` included).
    pub(crate) fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        // Fixed codes take at most 9 bits a byte; stored blocks cap that.
        out.reserve(input.len() + input.len() / 8 + 16);
        let mut w = BitWriter::new(out);
        let mut pos = self.history.len();
        while !input.is_empty() {
            if self.history.len() == 2 * self.window {
                self.slide();
                pos -= self.window;
            }
            let room = (2 * self.window - self.history.len()).min(self.window);
            let take = room.min(input.len());
            self.history.extend_from_slice(&input[..take]);
            input = &input[take..];
            let end = if input.is_empty() {
                self.history.len()
            } else {
                self.history.len() - LOOKAHEAD
            };
            if pos < end {
                pos = self.block(&mut w, pos, end);
            }
        }
        // Sync flush: an empty stored block, byte aligned.
        w.put(0, 3);
        w.align();
        w.bytes(&[0x00, 0x00, 0xFF, 0xFF]);
    }

    /// Drops the first window of history and moves hash entries with it;
    /// entries that pointed into the dropped part become 0, a position
    /// that is only ever used after its bytes are compared.
    fn slide(&mut self) {
        let w = self.window;
        self.history.copy_within(w.., 0);
        self.history.truncate(w);
        for h in &mut self.head {
            *h = h.saturating_sub(w as u16);
        }
    }

    /// Compresses `history[pos..end]` (matches may run past `end`, up to
    /// the end of the history) as one block; returns where it stopped.
    fn block(&mut self, w: &mut BitWriter, start: usize, end: usize) -> usize {
        let mark = w.mark();
        w.put(0b010, 3); // not final, fixed Huffman
        let data = &self.history[..];
        let limit = data.len();
        let head = &mut self.head[..];
        let mut pos = start;
        // Positions from which four bytes can be hashed.
        let hashable = limit.saturating_sub(MIN_MATCH - 1);
        while pos < end {
            if pos >= hashable {
                let (code, len) = LITERALS[usize::from(data[pos])];
                w.put(u32::from(code), u32::from(len));
                pos += 1;
                continue;
            }
            let found = find(data, head, pos, self.window, self.hash_shift);
            let Some((mut len, mut dist)) = found else {
                let (code, len) = LITERALS[usize::from(data[pos])];
                w.put(u32::from(code), u32::from(len));
                pos += 1;
                continue;
            };
            // One step of lazy matching for short matches: a longer one at
            // the next byte is worth a literal first.
            if len < LAZY && pos + 1 < hashable {
                if let Some((next_len, next_dist)) =
                    find(data, head, pos + 1, self.window, self.hash_shift)
                {
                    if next_len > len {
                        let (code, bits) = LITERALS[usize::from(data[pos])];
                        w.put(u32::from(code), u32::from(bits));
                        pos += 1;
                        (len, dist) = (next_len, next_dist);
                    }
                }
            }
            let (lcode, lbits) = bits::LENGTHS[len - 3];
            let (dcode, dbits) = bits::distance(dist as u32);
            w.put(lcode, u32::from(lbits));
            w.put(dcode, dbits);
            // Of the positions inside the match only the last is indexed:
            // a run then continues at distance 1 (matches of 13 bits, not
            // 20), and indexing them all measured slower and no better.
            let last = pos + len - 1;
            if last < hashable {
                head[hash(read4(data, last), self.hash_shift)] = last as u16;
            }
            pos += len;
        }
        let (code, len) = bits::END_OF_BLOCK;
        w.put(code, len);
        // A stored block costs its bytes, 3 header bits, padding and 4
        // bytes of length; use it when the fixed codes came out larger.
        let stored = (pos - start) * 8 + 3 + 7 + 32;
        if w.bits_since(mark) > stored {
            w.rewind(mark);
            w.put(0b000, 3);
            w.align();
            let n = (pos - start) as u16;
            w.bytes(&n.to_le_bytes());
            w.bytes(&(!n).to_le_bytes());
            w.bytes(&self.history[start..pos]);
        }
        pos
    }
}

/// The match for `pos` through its hash candidate, if one of at least
/// `MIN_MATCH` bytes lies within the window; records `pos` as the latest
/// position of its hash. `pos + MIN_MATCH` must not pass the data's end.
#[inline(always)]
fn find(
    data: &[u8],
    head: &mut [u16],
    pos: usize,
    window: usize,
    shift: u32,
) -> Option<(usize, usize)> {
    let now = read4(data, pos);
    let h = hash(now, shift);
    let candidate = usize::from(head[h]);
    head[h] = pos as u16;
    let dist = pos.wrapping_sub(candidate);
    if candidate < pos && dist <= window && read4(data, candidate) == now {
        let max = (data.len() - pos).min(MAX_MATCH);
        Some((
            MIN_MATCH + common(data, candidate + MIN_MATCH, pos + MIN_MATCH, max),
            dist,
        ))
    } else {
        None
    }
}

#[inline(always)]
fn read4(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[inline(always)]
fn hash(four: u32, shift: u32) -> usize {
    (four.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

/// How many bytes match at `a` and `b` (`a < b`), at most `max - MIN_MATCH`
/// and never past the end of `data`.
#[inline(always)]
fn common(data: &[u8], mut a: usize, mut b: usize, max: usize) -> usize {
    let start = b;
    let stop = b + (max - MIN_MATCH);
    while b + 8 <= stop {
        let x = u64::from_le_bytes(data[a..a + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(data[b..b + 8].try_into().unwrap_or([0; 8]));
        let diff = x ^ y;
        if diff != 0 {
            return b - start + (diff.trailing_zeros() / 8) as usize;
        }
        a += 8;
        b += 8;
    }
    while b < stop && data[a] == data[b] {
        a += 1;
        b += 1;
    }
    b - start
}
