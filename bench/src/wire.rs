//! The load generator's hand-written WebSocket client side: the upgrade
//! request, pre-encoded masked frames and a parser that only counts the
//! echoed messages. Every server is driven by exactly this code, so the
//! client's cost is the same whichever server answers.

/// The RFC 6455 sample key; the servers' answers are not checked beyond
/// the status line, so one fixed key is enough.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The mask key of every frame sent (any key is valid; it must only be
/// present).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The HTTP/1.1 upgrade request for `host`, offering permessage-deflate
/// when `deflate` is set. The offer is the one browsers make: with
/// `client_max_window_bits` and no value, which lets the server limit the
/// client's window (and so its own inflater's memory) if it wants to. The
/// load generator's frames fit any limit ([`masked_deflate_text`]).
pub fn upgrade_request(host: &str, deflate: bool) -> Vec<u8> {
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
    .into_bytes()
}

/// Where the response head ends (just past `\r\n\r\n`), if it has.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether a response head accepts the upgrade.
pub fn is_switching_protocols(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 101")
}

/// Whether a response head accepts permessage-deflate.
pub fn accepts_deflate(head: &[u8]) -> bool {
    extensions(head).is_some_and(|e| e.to_ascii_lowercase().contains("permessage-deflate"))
}

/// Whether messages of up to `len` bytes, each compressed on its own, fit
/// the client window the server's extensions answer allows (a
/// `client_max_window_bits=N` limits back-references to 2^N bytes).
pub fn client_window_fits(extensions: &str, len: usize) -> bool {
    extensions
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("client_max_window_bits="))
        .filter_map(|n| n.trim().trim_matches('"').parse::<u32>().ok())
        .all(|bits| len <= 1usize << bits.min(15))
}

/// The value of the response's Sec-WebSocket-Extensions header, if any:
/// what the server agreed to, for the report.
pub fn extensions(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    })
}

/// `len` bytes of JSON-like ASCII text: what most text messages carry.
pub fn json_text(len: usize) -> Vec<u8> {
    br#"{"id":12345,"name":"tether","tags":["ws","rfc6455"],"ok":true},"#
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// One masked, final binary frame with a `len`-byte payload, ready to
/// write as is.
pub fn masked_binary_frame(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    masked_frame(0x82, &payload)
}

/// One masked, final text frame carrying `len` bytes of JSON-like text
/// compressed with permessage-deflate (RSV1 set). Each message is
/// compressed on its own, so the same bytes are valid for every send
/// whatever the server's context-takeover setting.
pub fn masked_deflate_text_frame(len: usize) -> Vec<u8> {
    masked_deflate_text(&json_text(len))
}

/// One masked, final text frame carrying `text` compressed on its own
/// with permessage-deflate (RSV1 set). Compressed on its own, its
/// back-references reach no further than its length: valid whatever the
/// server's context-takeover setting, and under any `client_max_window_bits`
/// whose window holds the message ([`client_window_fits`] checks).
pub fn masked_deflate_text(text: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(text.len() + 64);
    z.compress_vec(text, &mut out, FlushCompress::Sync)
        .expect("deflate into a large enough buffer");
    // RFC 7692 section 7.2.1: drop the sync flush's empty-block tail.
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]), "sync flush tail");
    out.truncate(out.len() - 4);
    masked_frame(0xC1, &out)
}

/// A masked close frame with code 1000 ("normal closure").
pub fn masked_close_frame() -> Vec<u8> {
    masked_frame(0x88, &1000u16.to_be_bytes())
}

/// A masked frame with first byte `b0` around `payload`.
fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut frame = Vec::with_capacity(len + 14);
    frame.push(b0);
    match len {
        0..=125 => frame.push(0x80 | len as u8),
        126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    // Masked byte by byte: this runs once per run.
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    frame
}

/// One complete data message read by [`MessageReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// RSV1 of its first frame: compressed with permessage-deflate.
    pub compressed: bool,
    /// Its payload as sent (still compressed if `compressed`), unmasked.
    pub payload: Vec<u8>,
    /// Bytes its frames took on the wire, headers included.
    pub wire_bytes: usize,
}

/// Collects whole data messages, payloads included, from a stream of
/// frames fed in arbitrary pieces: for the few messages of the
/// `deflate-idle` scenario, whose echoes are checked, not only counted.
/// Pings and pongs are skipped (and not counted); a close frame is an
/// error. Masked frames (the raw TCP echo) are unmasked.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: Vec<u8>,
    /// The message being assembled from its frames so far.
    partial: Option<Received>,
}

impl MessageReader {
    /// Takes `data` and returns the next complete message, if there is one
    /// (call again with `&[]` for any further one).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Received>, Unexpected> {
        self.buf.extend_from_slice(data);
        loop {
            let want = header_len(&self.buf[..self.buf.len().min(2)]);
            if self.buf.len() < want.max(2) {
                return Ok(None);
            }
            let mut head = [0u8; 14];
            head[..want].copy_from_slice(&self.buf[..want]);
            let (fin, opcode, len) = decode(&head);
            let total = want as u64 + len;
            if (self.buf.len() as u64) < total {
                return Ok(None);
            }
            let mut payload: Vec<u8> = self.buf.drain(..total as usize).skip(want).collect();
            if head[1] & 0x80 != 0 {
                let key = &head[want - 4..want];
                payload
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b ^= key[i & 3]);
            }
            match opcode {
                0x9 | 0xA => continue,
                1 | 2 if self.partial.is_none() => {
                    self.partial = Some(Received {
                        compressed: head[0] & 0x40 != 0,
                        payload,
                        wire_bytes: total as usize,
                    })
                }
                0 if self.partial.is_some() => {
                    let m = self.partial.as_mut().expect("checked");
                    m.payload.extend_from_slice(&payload);
                    m.wire_bytes += total as usize;
                }
                other => return Err(Unexpected(other)),
            }
            if fin {
                return Ok(self.partial.take());
            }
        }
    }
}

/// Counts the complete data messages in a stream of server frames, fed in
/// arbitrary pieces. Payloads are skipped, not read: the client must cost
/// the same for every server. Masked frames are accepted too, because the
/// raw TCP server echoes the client's own frames.
#[derive(Debug, Default)]
pub struct FrameCounter {
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes still to skip in the current frame.
    remaining: u64,
}

/// The server sent something no echo server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unexpected(pub u8);

impl FrameCounter {
    /// Consumes `buf` and returns how many messages it completed.
    pub fn feed(&mut self, mut buf: &[u8]) -> Result<u64, Unexpected> {
        let mut done = 0;
        while !buf.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(buf.len() as u64);
                self.remaining -= n;
                buf = &buf[n as usize..];
                continue;
            }
            // Take header bytes until the header is complete.
            let want = header_len(&self.head[..self.head_len]);
            if self.head_len < want {
                let n = (want - self.head_len).min(buf.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&buf[..n]);
                self.head_len += n;
                buf = &buf[n..];
                if self.head_len < header_len(&self.head[..self.head_len]) {
                    continue;
                }
            }
            let (fin, opcode, len) = decode(&self.head);
            self.head_len = 0;
            self.remaining = len;
            match opcode {
                // Data and continuation frames: a message ends with `fin`.
                0..=2 => done += u64::from(fin),
                // Pings and pongs carry nothing the count needs.
                0x9 | 0xA => {}
                other => return Err(Unexpected(other)),
            }
        }
        Ok(done)
    }
}

/// Answers a server's pings: fed the server's frames in arbitrary pieces,
/// it appends a masked pong with the same payload for every complete ping.
/// Other frames are skipped.
#[derive(Debug, Default)]
pub struct PingAnswerer {
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes still to come in the current frame.
    remaining: u64,
    /// The payload of the ping being read; `None` while skipping another
    /// frame's payload.
    ping: Option<Vec<u8>>,
}

impl PingAnswerer {
    /// Consumes `buf`, appends pongs to `out`, returns how many pings it
    /// answered.
    pub fn feed(&mut self, mut buf: &[u8], out: &mut Vec<u8>) -> u64 {
        let mut answered = 0;
        while !buf.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(buf.len() as u64) as usize;
                if let Some(p) = &mut self.ping {
                    p.extend_from_slice(&buf[..n]);
                }
                self.remaining -= n as u64;
                buf = &buf[n..];
            } else {
                let want = header_len(&self.head[..self.head_len]);
                let n = (want - self.head_len).min(buf.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&buf[..n]);
                self.head_len += n;
                buf = &buf[n..];
                if self.head_len < header_len(&self.head[..self.head_len]) {
                    continue;
                }
                let (_, opcode, len) = decode(&self.head);
                self.head_len = 0;
                self.remaining = len;
                self.ping = (opcode == 0x9).then(Vec::new);
            }
            if self.remaining == 0 {
                if let Some(payload) = self.ping.take() {
                    out.extend_from_slice(&masked_frame(0x8A, &payload));
                    answered += 1;
                }
            }
        }
        answered
    }
}

/// The full header length implied by the bytes seen so far (2 until the
/// second byte is known).
fn header_len(head: &[u8]) -> usize {
    let Some(&b1) = head.get(1) else {
        return 2;
    };
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

fn decode(head: &[u8; 14]) -> (bool, u8, u64) {
    let len = match head[1] & 0x7F {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes(head[2..10].try_into().expect("8 bytes")),
        n => u64::from(n),
    };
    (head[0] & 0x80 != 0, head[0] & 0x0F, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmasked(len: usize, fin: bool, opcode: u8) -> Vec<u8> {
        let mut f = masked_binary_frame(len);
        f[0] = u8::from(fin) << 7 | opcode;
        f[1] &= 0x7F;
        let key_at = f.len() - len - 4;
        f.drain(key_at..key_at + 4);
        f
    }

    #[test]
    fn counts_messages_split_anywhere() {
        let mut stream = Vec::new();
        for len in [0, 5, 125, 126, 65535, 65536, 70_000] {
            stream.extend(unmasked(len, true, 2));
        }
        stream.extend(masked_binary_frame(300)); // the raw TCP echo
        stream.extend(unmasked(10, false, 2)); // fragmented: counts once
        stream.extend(unmasked(3, true, 9)); // a ping between fragments
        stream.extend(unmasked(10, true, 0));
        for piece in [1, 2, 3, 7, 13, 4096, stream.len()] {
            let mut c = FrameCounter::default();
            let total: u64 = stream.chunks(piece).map(|p| c.feed(p).unwrap()).sum();
            assert_eq!(total, 9, "pieces of {piece}");
        }
    }

    #[test]
    fn deflate_frame_inflates_to_the_text() {
        let f = masked_deflate_text_frame(1024);
        assert_eq!(f[0], 0xC1);
        let len = usize::from(f[1] & 0x7F);
        assert!(len < 126, "1 KiB of JSON compresses well: {len}");
        let mut data: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i & 3])
            .collect();
        data.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
        let mut text = Vec::with_capacity(2048);
        flate2::Decompress::new(false)
            .decompress_vec(&data, &mut text, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(text, json_text(1024));
    }

    #[test]
    fn answers_pings_split_anywhere() {
        let mut stream = unmasked(3, true, 0x2);
        stream.extend_from_slice(&[0x89, 2, b'h', b'i']);
        stream.extend_from_slice(&unmasked(200, true, 0x2));
        stream.extend_from_slice(&[0x89, 0]);
        for split in 0..stream.len() {
            let mut a = PingAnswerer::default();
            let mut out = Vec::new();
            let answered = a.feed(&stream[..split], &mut out) + a.feed(&stream[split..], &mut out);
            assert_eq!(answered, 2, "split at {split}");
            let mut want = masked_frame(0x8A, b"hi");
            want.extend_from_slice(&masked_frame(0x8A, b""));
            assert_eq!(out, want, "split at {split}");
        }
    }

    #[test]
    fn reads_whole_messages_split_anywhere() {
        let mut stream = unmasked(3, false, 0x1);
        stream[0] |= 0x40; // compressed, first of two frames
        stream.extend_from_slice(&[0x89, 1, b'p']); // a ping in between
        stream.extend(unmasked(300, true, 0x0));
        stream.extend(masked_binary_frame(5)); // the raw TCP echo, masked
        for split in 0..stream.len() {
            let mut r = MessageReader::default();
            let mut got = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                let mut next = r.feed(piece).unwrap();
                while let Some(m) = next {
                    got.push(m);
                    next = r.feed(&[]).unwrap();
                }
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert!(got[0].compressed && !got[1].compressed);
            assert_eq!(got[0].payload.len(), 303);
            assert_eq!(got[0].wire_bytes, 5 + 304);
            assert_eq!(got[1].payload, b"abcde");
            assert_eq!(got[1].wire_bytes, 11);
        }
        let mut r = MessageReader::default();
        assert_eq!(r.feed(&unmasked(2, true, 8)), Err(Unexpected(8)));
    }

    #[test]
    fn extensions_header_is_read() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            sec-websocket-extensions: permessage-deflate; client_max_window_bits=12\r\n\r\n";
        assert_eq!(
            extensions(head).as_deref(),
            Some("permessage-deflate; client_max_window_bits=12")
        );
        assert!(accepts_deflate(head));
        let ext = extensions(head).unwrap();
        assert!(client_window_fits(&ext, 4096) && !client_window_fits(&ext, 4097));
        assert!(client_window_fits("permessage-deflate", 1 << 20));
        assert!(!accepts_deflate(
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
        ));
    }

    #[test]
    fn rejects_close() {
        let mut c = FrameCounter::default();
        assert_eq!(c.feed(&unmasked(2, true, 8)), Err(Unexpected(8)));
    }

    #[test]
    fn masked_frame_unmasks_to_the_payload() {
        let f = masked_binary_frame(200);
        assert_eq!(&f[..4], &[0x82, 0xFE, 0, 200]);
        let payload: Vec<u8> = f[8..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i & 3])
            .collect();
        assert!(payload.starts_with(b"abcdefghijklmnopqrstuvwxyzab"));
    }
}
