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
/// when `deflate` is set.
pub fn upgrade_request(host: &str, deflate: bool) -> Vec<u8> {
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
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
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("sec-websocket-extensions:") && l.contains("permessage-deflate"))
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
    use flate2::{Compress, Compression, FlushCompress};
    let text = json_text(len);
    let mut z = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(len + 64);
    z.compress_vec(&text, &mut out, FlushCompress::Sync)
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
