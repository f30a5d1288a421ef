//! The level-1 encoder against two decoders: zlib-rs raw inflate with
//! exactly the negotiated window, and the strict fixed-block decoder that
//! also rejects any distance beyond that window. Messages follow each
//! other with context takeover, cut into fragments (one `compress` call
//! each, each decodable on its own as it arrives).

use quickcheck::{Arbitrary, Gen, QuickCheck};
use zlib_rs::{InflateFlush, Status};

use super::bits::BitWriter;
use super::encoder::Encoder;
use super::fixed_decoder::decode;

/// A message shape that stresses one part of the encoder.
#[derive(Clone, Debug)]
enum Shape {
    Random(Vec<u8>),
    Json(usize),
    /// A byte repeated: distance-1 matches of 258.
    Run(u8, usize),
    /// A short pattern repeated: overlapping matches.
    Pattern(Vec<u8>, usize),
    Empty,
}

impl Arbitrary for Shape {
    fn arbitrary(g: &mut Gen) -> Self {
        let big = |g: &mut Gen| usize::arbitrary(g) % 70_000;
        match u8::arbitrary(g) % 6 {
            0 => Shape::Random(Vec::arbitrary(g)),
            1 | 2 => Shape::Json(usize::arbitrary(g) % 300),
            3 => Shape::Run(u8::arbitrary(g), big(g)),
            4 => {
                let mut p: Vec<u8> = Vec::arbitrary(g);
                p.truncate(9);
                Shape::Pattern(p, big(g))
            }
            _ => Shape::Empty,
        }
    }
}

/// Records like an API would send, some fields repeating across records.
fn json(seed: u64, records: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for _ in 0..records {
        let n = next();
        out.extend_from_slice(
            format!(
                "{{\"id\":{},\"user\":\"user{}\",\"status\":\"{}\",\"score\":{}.{},\"tags\":[\"t{}\"]}}\n",
                n % 100_000,
                n % 977,
                ["active", "idle", "gone"][(n % 3) as usize],
                n % 1000,
                n % 97,
                n % 13,
            )
            .as_bytes(),
        );
    }
    out
}

impl Shape {
    fn bytes(&self, seed: u64) -> Vec<u8> {
        match self {
            Shape::Random(v) => v.clone(),
            Shape::Json(n) => json(seed, *n),
            Shape::Run(b, n) => vec![*b; *n],
            Shape::Pattern(p, n) if !p.is_empty() => p.iter().copied().cycle().take(*n).collect(),
            Shape::Pattern(..) | Shape::Empty => Vec::new(),
        }
    }
}

/// Both decoders, fed every compressed piece as it comes.
struct Peer {
    window_bits: u8,
    zlib: zlib_rs::Inflate,
    zlib_out: Vec<u8>,
    strict_out: Vec<u8>,
}

impl Peer {
    fn new(window_bits: u8) -> Self {
        Self {
            window_bits,
            zlib: zlib_rs::Inflate::new(false, window_bits),
            zlib_out: Vec::new(),
            strict_out: Vec::new(),
        }
    }

    /// Decodes one piece; it must be complete up to its sync flush.
    fn feed(&mut self, piece: &[u8]) -> Result<(), String> {
        decode(piece, 1 << self.window_bits, &mut self.strict_out)?;
        self.inflate(piece)
    }

    /// zlib-rs alone.
    fn inflate(&mut self, piece: &[u8]) -> Result<(), String> {
        let mut input = piece;
        let mut buf = vec![0u8; 4096];
        loop {
            let (before_in, before_out) = (self.zlib.total_in(), self.zlib.total_out());
            let status = self
                .zlib
                .decompress(input, &mut buf, InflateFlush::SyncFlush);
            let used = (self.zlib.total_in() - before_in) as usize;
            let wrote = (self.zlib.total_out() - before_out) as usize;
            self.zlib_out.extend_from_slice(&buf[..wrote]);
            input = &input[used..];
            match status {
                Ok(Status::Ok | Status::BufError) if input.is_empty() && wrote < buf.len() => {
                    return Ok(())
                }
                Ok(Status::StreamEnd) => return Err("stream ended".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("zlib-rs: {e:?}")),
            }
        }
    }
}

/// Compresses `messages` cut at `cuts` (one call per fragment), checks
/// each piece decodes on arrival and the whole comes back byte for byte.
fn round_trip(window_bits: u8, messages: &[Vec<u8>], cuts: &[usize]) -> Result<usize, String> {
    let mut encoder = Encoder::new(window_bits);
    let mut peer = Peer::new(window_bits);
    let mut expected = Vec::new();
    let mut wire = 0;
    for (i, m) in messages.iter().enumerate() {
        let cut = cuts.get(i).map_or(m.len(), |c| c % (m.len() + 1));
        for part in [&m[..cut], &m[cut..]] {
            let mut out = Vec::new();
            encoder.compress(part, &mut out);
            if !out.ends_with(&super::TAIL) {
                return Err("no sync flush tail".into());
            }
            wire += out.len();
            peer.feed(&out)?;
            expected.extend_from_slice(part);
            if peer.strict_out != expected {
                return Err("strict decoder output differs".into());
            }
            if peer.zlib_out != expected {
                return Err("zlib-rs output differs".into());
            }
        }
    }
    Ok(wire)
}

#[test]
fn round_trip_any_messages_windows_and_fragments() {
    fn prop(bits: u8, shapes: Vec<Shape>, cuts: Vec<usize>, seed: u64) -> Result<(), String> {
        let bits = 9 + bits % 7;
        let messages: Vec<Vec<u8>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| s.bytes(seed.wrapping_add(i as u64)))
            .collect();
        round_trip(bits, &messages, &cuts).map(|_| ())
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(u8, Vec<Shape>, Vec<usize>, u64) -> Result<(), String>);
}

#[test]
fn inputs_much_larger_than_the_window() {
    // The history slides many times within one call and across calls;
    // repeats farther back than the window must become literals.
    for bits in [9, 12, 15] {
        let record = json(7, 40);
        let mut far = json(1, 3000);
        far.extend_from_slice(&record);
        far.extend(json(2, 3000));
        far.extend_from_slice(&record);
        let wire = round_trip(bits, &[far.clone(), far.clone(), json(3, 5000)], &[]).unwrap();
        assert!(wire < (2 * far.len() + 400_000) / 2, "bits {bits}: {wire}");
    }
}

#[test]
fn long_runs_use_maximal_overlapping_matches() {
    let run = vec![b'a'; 100_000];
    let wire = round_trip(12, &[run], &[]).unwrap();
    // 100,000 / 258 matches of length 258 at distance 1: 13 bits each.
    assert!(wire < 700, "{wire}");
    let wire = round_trip(9, &[b"abc".repeat(40_000)], &[7]).unwrap();
    assert!(wire < 1_500, "{wire}");
}

#[test]
fn incompressible_data_is_stored_not_expanded() {
    let mut x = 0x1234_5678_9abc_def1u64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let wire = round_trip(12, std::slice::from_ref(&noise), &[]).unwrap();
    // Fixed codes would take 9 bits for half the bytes: 112,500 bytes.
    assert!(wire < noise.len() + noise.len() / 100, "{wire}");
}

#[test]
fn empty_input_is_the_empty_stored_block() {
    let mut e = Encoder::new(12);
    let mut out = Vec::new();
    e.compress(b"", &mut out);
    assert_eq!(out, [0x00, 0x00, 0x00, 0xFF, 0xFF]);
    round_trip(12, &[vec![], b"x".to_vec(), vec![]], &[0, 1, 0]).unwrap();
}

#[test]
fn context_takeover_reaches_into_earlier_messages() {
    let record = json(5, 1);
    let mut e = Encoder::new(12);
    let mut first = Vec::new();
    e.compress(&record, &mut first);
    let mut second = Vec::new();
    e.compress(&record, &mut second);
    assert!(second.len() < 12, "{} then {}", first.len(), second.len());
}

/// A hand-made stream: `len` literals, then a match `dist` back.
fn stream_with_distance(len: usize, dist: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = BitWriter::new(&mut out);
    w.put(0b010, 3);
    for i in 0..len {
        let (c, l) = super::bits::LITERALS[i % 7 + usize::from(b'a')];
        w.put(u32::from(c), u32::from(l));
    }
    let (c, l) = super::bits::LENGTHS[0];
    w.put(c, u32::from(l));
    let (c, l) = super::bits::distance(dist);
    w.put(c, l);
    let (c, l) = super::bits::END_OF_BLOCK;
    w.put(c, l);
    w.put(0, 3);
    w.align();
    w.bytes(&super::TAIL);
    out
}

#[test]
fn the_strict_decoder_rejects_a_distance_beyond_the_window() {
    // 513 back with a 512-byte window, 600 bytes of output available.
    let far = stream_with_distance(600, 513);
    let err = decode(&far, 512, &mut Vec::new()).unwrap_err();
    assert!(err.contains("beyond the window"), "{err}");
    decode(&stream_with_distance(600, 512), 512, &mut Vec::new()).unwrap();
    // Why it is needed: zlib-rs accepts it, the bytes being in its output.
    let mut peer = Peer::new(9);
    assert_eq!(peer.inflate(&far), Ok(()));
}
