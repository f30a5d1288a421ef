//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! Level 1 (the default) compresses with tether's own encoder
//! (`deflate/encoder.rs`), which holds a quarter of zlib-rs's memory at the
//! default window; other levels, and all inflating, run on zlib-rs, the
//! pure-Rust zlib that `flate2` also wraps, used directly because it
//! exposes the memory level.
//! Raw deflate cannot use an 8-bit window, so a configured 8 is used as 9,
//! and an offer or response that demands 8 bits of our compressor is
//! declined (server) or refused (client).

use std::fmt::Write as _;

use zlib_rs::{DeflateFlush, InflateFlush, Status};

mod bits;
mod encoder;
#[cfg(test)]
mod encoder_tests;
#[cfg(test)]
mod fixed_decoder;

use encoder::Encoder;

/// The four bytes a sync flush ends with; stripped from each compressed
/// message and put back before inflating (RFC 7692 section 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Extension name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// This endpoint's wishes for permessage-deflate.
///
/// "Own" settings are about the messages this endpoint compresses, "peer"
/// settings are what it asks of the other side.
///
/// Memory per connection (measured by the `bench-deflate` benchmark): at
/// level 1 the compressor is tether's own and holds `4 * 2^window_bits`
/// bytes (two windows of history and a `u16` hash table of one entry per
/// window byte: 16 KiB with the default 12 bits, 128 KiB with 15; the
/// memory level is unused). At levels 2 to 9 it is zlib-rs 0.6's: a fixed
/// 128 KiB hash table plus `4 * 2^window_bits + 7 * 2^(mem_level + 6)`
/// bytes (about 175 KiB with 12 window bits and memory level 6; 370 KiB
/// with zlib's 15 and 8). The decompressor (zlib-rs) holds about 47 KiB
/// whatever the window (it always allocates a 32 KiB one). With the
/// defaults that is 63 KiB of heap (36 KiB resident) per connection that
/// has compressed and inflated a message. Both are allocated on the first
/// compressed message, not at connection time; each is dropped after a
/// message when its side does not keep context (our level-1 compressor
/// with `no_context_takeover`, the decompressor when the peer's
/// compressor does not keep it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Compression level, 0 (store) to 9 (smallest).
    pub level: u8,
    /// zlib memory level of our compressor at levels 2 to 9, 1 to 9: more
    /// memory, faster and slightly better compression. Level 1 does not
    /// use it (its memory follows the window alone).
    pub mem_level: u8,
    /// Largest window our compressor uses, 9 to 15 (8 is used as 9).
    pub max_window_bits: u8,
    /// Ask the peer to compress with at most this window (saves our
    /// decompressor memory); `None` leaves it to the peer.
    pub peer_max_window_bits: Option<u8>,
    /// Compress every message on its own (less memory across messages,
    /// worse ratio on streams of similar messages).
    pub no_context_takeover: bool,
    /// Ask the peer to compress every message on its own.
    pub peer_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed: deflate cannot
    /// shrink them enough to pay for the work.
    pub threshold: usize,
}

crate::__with_setters!(DeflateConfig {
    with_level => level: u8,
    with_mem_level => mem_level: u8,
    with_max_window_bits => max_window_bits: u8,
    with_peer_max_window_bits => peer_max_window_bits: Option<u8>,
    with_no_context_takeover => no_context_takeover: bool,
    with_peer_no_context_takeover => peer_no_context_takeover: bool,
    with_threshold => threshold: usize,
});

impl Default for DeflateConfig {
    /// Level 1 with a 4 KiB window: on JSON records, 3.0:1 one record per
    /// message (zlib's defaults: 4.0:1) at about six times the speed of
    /// level 6 and a seventh of the memory (63 KiB per connection against
    /// 419 KiB); see the compression benchmark.
    fn default() -> Self {
        Self {
            level: 1,
            mem_level: 6,
            max_window_bits: 12,
            peer_max_window_bits: None,
            no_context_takeover: false,
            peer_no_context_takeover: false,
            threshold: 64,
        }
    }
}

/// What the handshake agreed on, from this endpoint's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateParams {
    /// Our compression settings (level, memory level, threshold).
    pub config: DeflateConfig,
    /// Window of our compressor.
    pub own_window_bits: u8,
    /// Whether we reset our compressor after each message.
    pub own_no_context_takeover: bool,
    /// Largest window the peer may use.
    pub peer_window_bits: u8,
    /// Whether the peer resets its compressor after each message (we may
    /// then reset our decompressor too).
    pub peer_no_context_takeover: bool,
}

/// One extension offer or response element: a name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionItem {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters with their values, quotes removed.
    pub params: Vec<(String, Option<String>)>,
}

/// Parses `Sec-WebSocket-Extensions` values into elements, in order.
pub fn parse_extensions<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<ExtensionItem> {
    let mut items = Vec::new();
    for value in values {
        for element in value.split(',') {
            let mut parts = element.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            if name.is_empty() {
                continue;
            }
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (
                        k.trim().to_ascii_lowercase(),
                        Some(v.trim().trim_matches('"').to_owned()),
                    ),
                    None => (p.to_ascii_lowercase(), None),
                })
                .collect();
            items.push(ExtensionItem {
                name: name.to_ascii_lowercase(),
                params,
            });
        }
    }
    items
}

/// The parameters of one permessage-deflate element, checked for
/// duplicates, unknown names and bad values.
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn window_bits(v: &str) -> Option<u8> {
    // RFC 7692: 1*DIGIT, 8 to 15, no leading zeros.
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

impl Params {
    fn parse(item: &ExtensionItem) -> Option<Self> {
        let mut p = Params::default();
        let mut seen = Vec::new();
        for (name, value) in &item.params {
            if seen.contains(&name.as_str()) {
                return None;
            }
            seen.push(name.as_str());
            match (name.as_str(), value) {
                ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
                ("server_max_window_bits", Some(v)) => {
                    p.server_max_window_bits = Some(window_bits(v)?)
                }
                ("client_max_window_bits", None) => p.client_max_window_bits = Some(None),
                ("client_max_window_bits", Some(v)) => {
                    p.client_max_window_bits = Some(Some(window_bits(v)?))
                }
                _ => return None,
            }
        }
        Some(p)
    }
}

fn own_bits(configured: u8) -> u8 {
    configured.clamp(9, 15)
}

/// The client's offers, most preferred first, as one header value.
pub fn client_offer(offers: &[DeflateConfig]) -> String {
    let mut out = String::new();
    for cfg in offers {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(EXTENSION_NAME);
        if cfg.no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        out.push_str("; client_max_window_bits");
        if own_bits(cfg.max_window_bits) < 15 {
            let _ = write!(out, "={}", own_bits(cfg.max_window_bits));
        }
        if cfg.peer_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if let Some(b) = cfg.peer_max_window_bits {
            let _ = write!(out, "; server_max_window_bits={}", b.clamp(8, 15));
        }
    }
    out
}

/// Server side: picks the first offer it can honour and returns the agreed
/// parameters and the response element. Offers with unknown or malformed
/// parameters, or that demand an 8-bit window of our compressor, are
/// declined; the response never carries a parameter the client did not
/// allow.
pub fn server_accept(
    cfg: &DeflateConfig,
    items: &[ExtensionItem],
) -> Option<(DeflateParams, String)> {
    for item in items.iter().filter(|i| i.name == EXTENSION_NAME) {
        let Some(offer) = Params::parse(item) else {
            continue;
        };
        let own_window_bits = match offer.server_max_window_bits {
            Some(limit) if limit < 9 => continue,
            Some(limit) => own_bits(cfg.max_window_bits).min(limit),
            None => own_bits(cfg.max_window_bits),
        };
        let own_no_context_takeover = cfg.no_context_takeover || offer.server_no_context_takeover;
        // The client's window: ours to limit only if it offered the parameter.
        let client_bits = match (offer.client_max_window_bits, cfg.peer_max_window_bits) {
            (Some(limit), Some(wanted)) => Some(wanted.clamp(8, 15).min(limit.unwrap_or(15))),
            (Some(Some(limit)), None) => Some(limit),
            _ => None,
        };
        let mut response = String::from(EXTENSION_NAME);
        if own_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if cfg.peer_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if own_window_bits < 15 || offer.server_max_window_bits.is_some() {
            let _ = write!(response, "; server_max_window_bits={own_window_bits}");
        }
        if let Some(b) = client_bits {
            let _ = write!(response, "; client_max_window_bits={b}");
        }
        let params = DeflateParams {
            config: cfg.clone(),
            own_window_bits,
            own_no_context_takeover,
            peer_window_bits: client_bits.unwrap_or(15),
            // Only what the response requires binds the client; the offer's
            // client_no_context_takeover is a hint some clients do not keep.
            peer_no_context_takeover: cfg.peer_no_context_takeover,
        };
        return Some((params, response));
    }
    None
}

/// Client side: matches the server's response against our offers (in
/// order) and returns the agreed parameters, or `None` if it fits none.
pub fn client_accept(offers: &[DeflateConfig], item: &ExtensionItem) -> Option<DeflateParams> {
    if item.name != EXTENSION_NAME {
        return None;
    }
    let response = Params::parse(item)?;
    for cfg in offers {
        // A server limit we asked for must be answered with one no larger.
        let peer_window_bits = match (cfg.peer_max_window_bits, response.server_max_window_bits) {
            (Some(asked), Some(got)) if got <= asked.clamp(8, 15) => got,
            (Some(_), _) => continue,
            (None, Some(got)) => got,
            (None, None) => 15,
        };
        if cfg.peer_no_context_takeover && !response.server_no_context_takeover {
            continue;
        }
        let offered = own_bits(cfg.max_window_bits);
        let own_window_bits = match response.client_max_window_bits {
            None => offered,
            Some(Some(b)) if b <= offered && b >= 9 => b,
            // Larger than offered, no value, or 8 bits we cannot honour.
            Some(_) => continue,
        };
        return Some(DeflateParams {
            config: cfg.clone(),
            own_window_bits,
            own_no_context_takeover: cfg.no_context_takeover || response.client_no_context_takeover,
            peer_window_bits,
            peer_no_context_takeover: response.server_no_context_takeover,
        });
    }
    None
}

/// Compresses outgoing messages.
pub(crate) struct Compressor {
    params: DeflateParams,
    engine: Option<Engine>,
}

/// Level 1 runs on tether's own encoder (a fraction of zlib-rs's memory,
/// see [`DeflateConfig`]); other levels on zlib-rs.
enum Engine {
    Own(Box<Encoder>),
    Zlib(Box<zlib_rs::Deflate>),
}

impl Compressor {
    pub(crate) fn new(params: DeflateParams) -> Self {
        Self {
            params,
            engine: None,
        }
    }

    pub(crate) fn threshold(&self) -> usize {
        self.params.config.threshold
    }

    /// Appends the compressed form of `input` to `out`, ending with a sync
    /// flush. With `end_of_message` the flush tail is stripped and, without
    /// context takeover, the window is forgotten.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, end_of_message: bool) {
        let p = &self.params;
        let engine = self.engine.get_or_insert_with(|| {
            if p.config.level == 1 {
                Engine::Own(Box::new(Encoder::new(p.own_window_bits)))
            } else {
                Engine::Zlib(Box::new(zlib_rs::Deflate::new_with_config(
                    zlib_rs::DeflateConfig {
                        level: i32::from(p.config.level.min(9)),
                        window_bits: -i32::from(p.own_window_bits.clamp(9, 15)),
                        mem_level: i32::from(p.config.mem_level.clamp(1, 9)),
                        ..zlib_rs::DeflateConfig::default()
                    },
                )))
            }
        });
        let start = out.len();
        match engine {
            Engine::Own(encoder) => encoder.compress(input, out),
            Engine::Zlib(deflate) => zlib_compress(deflate, input, out),
        }
        if end_of_message {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // Nothing was pending (an empty message, or an empty last
                // fragment after a flushed one), so zlib wrote nothing. The
                // receiver appends the tail to whatever comes, and the tail
                // alone is not a block: send the empty stored block's
                // header byte before it (RFC 7692 section 7.2.3.6).
                out.push(0x00);
            }
            if self.params.own_no_context_takeover {
                match engine {
                    // Dropped, not reset: an idle connection then holds no
                    // compression state at all.
                    Engine::Own(_) => self.engine = None,
                    Engine::Zlib(deflate) => {
                        deflate.reset();
                    }
                }
            }
        }
    }
}

/// zlib-rs with a sync flush, growing `out` until the flush is complete.
fn zlib_compress(deflate: &mut zlib_rs::Deflate, mut input: &[u8], out: &mut Vec<u8>) {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(input.len() / 2 + 64);
        }
        let len = out.len();
        out.resize(out.capacity(), 0);
        let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(input, &mut out[len..], DeflateFlush::SyncFlush);
        let used = (deflate.total_in() - before_in) as usize;
        let wrote = (deflate.total_out() - before_out) as usize;
        out.truncate(len + wrote);
        input = &input[used..];
        match status {
            // The flush is complete once input is used up and zlib left
            // spare room in the output.
            Ok(Status::Ok | Status::BufError) if input.is_empty() && out.len() < out.capacity() => {
                break
            }
            Ok(_) => {}
            Err(e) => unreachable!("deflate with valid parameters failed: {e:?}"),
        }
    }
}

/// Why inflating failed: the data went bad after `wrote` good bytes of
/// output, which the caller still checks (UTF-8, size) so that the first
/// fault in the message is the one reported, however the input was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InflateFailed {
    pub(crate) wrote: usize,
}

/// Decompresses incoming messages, in bounded steps.
pub(crate) struct Decompressor {
    params: DeflateParams,
    inflate: Option<zlib_rs::Inflate>,
    /// The peer ended this message with a final block (allowed: RFC 7692
    /// section 7.2.3.3); the rest of the message is ignored and the
    /// window starts afresh with the next one.
    stream_ended: bool,
}

impl Decompressor {
    pub(crate) fn new(params: DeflateParams) -> Self {
        Self {
            params,
            inflate: None,
            stream_ended: false,
        }
    }

    /// Inflates from `input` into `out`; returns (bytes consumed, bytes
    /// written). Stops when either runs out, so the caller bounds memory
    /// by the size of `out`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), InflateFailed> {
        if self.stream_ended {
            return Ok((input.len(), 0));
        }
        let bits = self.params.peer_window_bits.clamp(9, 15);
        let inflate = self
            .inflate
            .get_or_insert_with(|| zlib_rs::Inflate::new(false, bits));
        let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
        let status = inflate.decompress(input, out, InflateFlush::SyncFlush);
        let used = (inflate.total_in() - before_in) as usize;
        let wrote = (inflate.total_out() - before_out) as usize;
        match status {
            Ok(Status::Ok) | Ok(Status::BufError) => Ok((used, wrote)),
            Ok(Status::StreamEnd) => {
                self.stream_ended = true;
                Ok((input.len(), wrote))
            }
            Err(_) => Err(InflateFailed { wrote }),
        }
    }

    /// The tail to inflate after a message's last frame.
    pub(crate) fn tail() -> &'static [u8] {
        &TAIL
    }

    /// After a message: forget the window if the peer does not keep it.
    pub(crate) fn end_message(&mut self) {
        if self.params.peer_no_context_takeover || self.stream_ended {
            self.stream_ended = false;
            // Dropping, not resetting: an idle connection then holds no
            // decompression window at all.
            self.inflate = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cfg: DeflateConfig) -> DeflateParams {
        DeflateParams {
            own_window_bits: own_bits(cfg.max_window_bits),
            own_no_context_takeover: cfg.no_context_takeover,
            peer_window_bits: 15,
            peer_no_context_takeover: false,
            config: cfg,
        }
    }

    #[test]
    fn rfc_hello_example() {
        // RFC 7692 section 7.2.3.1: "Hello" is f2 48 cd c9 c9 07 00.
        let mut c = Compressor::new(params(DeflateConfig {
            level: 6,
            max_window_bits: 15,
            mem_level: 8,
            ..DeflateConfig::default()
        }));
        let mut out = Vec::new();
        c.compress(b"Hello", &mut out, true);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut d = Decompressor::new(params(DeflateConfig::default()));
        let mut buf = [0u8; 64];
        let (used, wrote) = d.inflate(&out, &mut buf).unwrap();
        let (_, tail) = d.inflate(Decompressor::tail(), &mut buf[wrote..]).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(&buf[..wrote + tail], b"Hello");
    }

    #[test]
    fn negotiation_round_trip() {
        let client = DeflateConfig {
            peer_max_window_bits: Some(10),
            no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let offer = client_offer(std::slice::from_ref(&client));
        assert_eq!(
            offer,
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=12; server_max_window_bits=10"
        );
        let server = DeflateConfig {
            max_window_bits: 15,
            ..DeflateConfig::default()
        };
        let (sp, response) = server_accept(&server, &parse_extensions([offer.as_str()])).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
        );
        assert_eq!(
            (
                sp.own_window_bits,
                sp.peer_window_bits,
                sp.peer_no_context_takeover
            ),
            (10, 12, false)
        );
        let item = &parse_extensions([response.as_str()])[0];
        let cp = client_accept(&[client], item).unwrap();
        assert_eq!(
            (
                cp.own_window_bits,
                cp.peer_window_bits,
                cp.own_no_context_takeover
            ),
            (12, 10, true)
        );
    }

    #[test]
    fn server_declines_what_it_cannot_honour() {
        let cfg = DeflateConfig::default();
        for offer in [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=07",
            "permessage-deflate; unknown_param",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(
                server_accept(&cfg, &parse_extensions([offer])),
                None,
                "{offer}"
            );
        }
        // The first acceptable offer wins.
        let (p, _) = server_accept(
            &cfg,
            &parse_extensions(["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"]),
        )
        .unwrap();
        assert_eq!(p.own_window_bits, 9);
    }

    #[test]
    fn client_refuses_responses_outside_its_offers() {
        let offers = [DeflateConfig {
            peer_max_window_bits: Some(10),
            ..DeflateConfig::default()
        }];
        for response in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=11",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=13",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; bogus",
        ] {
            let item = &parse_extensions([response])[0];
            assert_eq!(client_accept(&offers, item), None, "{response}");
        }
        let item = &parse_extensions(["permessage-deflate; server_max_window_bits=\"9\""])[0];
        assert_eq!(client_accept(&offers, item).unwrap().peer_window_bits, 9);
    }
}
