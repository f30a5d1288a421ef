//! Bit output and the fixed Huffman code of deflate (RFC 1951 section
//! 3.2.6), precomputed as `(bits, length)` pairs ready to write: each
//! length or distance code already carries its extra bits.

/// Writes bits least significant first, as deflate packs them.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    count: u32,
}

/// Where a block started, to take it back and store it instead.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    len: usize,
    acc: u64,
    count: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            count: 0,
        }
    }

    /// `n` (at most 32) low bits of `bits`.
    #[inline(always)]
    pub(super) fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.count;
        self.count += n;
        if self.count >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Pads with zero bits to a byte boundary and writes what is held.
    pub(super) fn align(&mut self) {
        while self.count > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count = self.count.saturating_sub(8);
        }
        self.acc = 0;
    }

    /// Whole bytes after alignment (only valid when aligned).
    pub(super) fn bytes(&mut self, data: &[u8]) {
        debug_assert_eq!(self.count, 0);
        self.out.extend_from_slice(data);
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            acc: self.acc,
            count: self.count,
        }
    }

    /// Bits written since `mark`.
    pub(super) fn bits_since(&self, mark: Mark) -> usize {
        (self.out.len() - mark.len) * 8 + self.count as usize - mark.count as usize
    }

    pub(super) fn rewind(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.acc = mark.acc;
        self.count = mark.count;
    }
}

const fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

/// Fixed code of literal/length symbol `sym` (0..=287), bit-reversed.
const fn fixed_lit(sym: u32) -> (u32, u32) {
    let (code, len) = match sym {
        0..=143 => (0x30 + sym, 8),
        144..=255 => (0x190 + sym - 144, 9),
        256..=279 => (sym - 256, 7),
        _ => (0xC0 + sym - 280, 8),
    };
    (reverse(code, len), len)
}

/// Literal byte codes.
pub(super) const LITERALS: [(u16, u8); 256] = {
    let mut t = [(0u16, 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (c, l) = fixed_lit(i as u32);
        t[i] = (c as u16, l as u8);
        i += 1;
    }
    t
};

/// End of block: symbol 256, seven zero bits.
pub(super) const END_OF_BLOCK: (u32, u32) = fixed_lit(256);

/// Length 3..=258 (index `len - 3`): symbol code with its extra bits.
pub(super) const LENGTHS: [(u32, u8); 256] = {
    let mut t = [(0u32, 0u8); 256];
    let mut l = 0u32;
    while l < 256 {
        let (sym, extra_bits, extra) = if l == 255 {
            (285, 0, 0)
        } else if l < 8 {
            (257 + l, 0, 0)
        } else {
            let top = 31 - l.leading_zeros(); // 3..=7
            let e = top - 2;
            (257 + 4 * (top - 1) + ((l >> e) & 3), e, l & ((1 << e) - 1))
        };
        let (code, len) = fixed_lit(sym);
        t[l as usize] = (code | (extra << len), (len + extra_bits) as u8);
        l += 1;
    }
    t
};

/// Distance 1..=32768: the fixed 5-bit code with its extra bits.
#[inline(always)]
pub(super) fn distance(dist: u32) -> (u32, u32) {
    let d = dist - 1;
    if d < 4 {
        return (reverse(d, 5), 5);
    }
    let top = 31 - d.leading_zeros(); // 2..=14
    let e = top - 1;
    let code = 2 * top + ((d >> e) & 1);
    (reverse(code, 5) | ((d & ((1 << e) - 1)) << 5), 5 + e)
}
