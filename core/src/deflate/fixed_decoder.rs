//! Test-only: a strict decoder for what the encoder emits (stored and
//! fixed-Huffman blocks), written from RFC 1951's tables independently of
//! the encoder's, that rejects any distance beyond the window. zlib's
//! inflater cannot check that: it accepts a distance as long as the bytes
//! exist in its window or in the output of the current call.

/// Decodes `stream` (whole blocks ending byte aligned) onto `history`,
/// which holds all earlier output of the same context.
pub(super) fn decode(stream: &[u8], window: usize, history: &mut Vec<u8>) -> Result<(), String> {
    const LEN_BASE: [usize; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEN_EXTRA: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DIST_BASE: [usize; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    let mut r = Reader {
        data: stream,
        bit: 0,
    };
    while r.bit < stream.len() * 8 {
        let last = r.bits(1)?;
        if last != 0 {
            return Err("final block".into());
        }
        match r.bits(2)? {
            0 => {
                r.bit = r.bit.div_ceil(8) * 8;
                let len = r.bits(16)? as usize;
                let nlen = r.bits(16)? as usize;
                if len != !nlen & 0xFFFF {
                    return Err("stored length check".into());
                }
                let at = r.bit / 8;
                let bytes = stream.get(at..at + len).ok_or("stored block cut")?;
                history.extend_from_slice(bytes);
                r.bit += len * 8;
            }
            1 => loop {
                let mut code = 0u32;
                for _ in 0..7 {
                    code = code << 1 | r.bits(1)?;
                }
                let sym = if code <= 0b001_0111 {
                    256 + code
                } else {
                    code = code << 1 | r.bits(1)?;
                    match code {
                        0x30..=0xBF => code - 0x30,
                        0xC0..=0xC7 => 280 + code - 0xC0,
                        _ => 144 + (code << 1 | r.bits(1)?) - 0x190,
                    }
                };
                match sym {
                    0..=255 => history.push(sym as u8),
                    256 => break,
                    257..=285 => {
                        let i = (sym - 257) as usize;
                        let len = LEN_BASE[i] + r.bits(LEN_EXTRA[i])? as usize;
                        let mut d = 0u32;
                        for _ in 0..5 {
                            d = d << 1 | r.bits(1)?;
                        }
                        let d = d as usize;
                        if d >= 30 {
                            return Err(format!("distance code {d}"));
                        }
                        let extra = if d < 4 { 0 } else { (d as u32 - 2) / 2 };
                        let dist = DIST_BASE[d] + r.bits(extra)? as usize;
                        if dist > window {
                            return Err(format!("distance {dist} beyond the window {window}"));
                        }
                        if dist > history.len() {
                            return Err(format!("distance {dist} before the start"));
                        }
                        for _ in 0..len {
                            history.push(history[history.len() - dist]);
                        }
                    }
                    _ => return Err(format!("symbol {sym}")),
                }
            },
            t => return Err(format!("block type {t}")),
        }
    }
    Ok(())
}

struct Reader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl Reader<'_> {
    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0;
        for i in 0..n {
            let byte = self.data.get(self.bit / 8).ok_or("stream cut")?;
            v |= u32::from(byte >> (self.bit % 8) & 1) << i;
            self.bit += 1;
        }
        Ok(v)
    }
}
