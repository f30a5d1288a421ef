//! The server's opening handshake on arbitrary request bytes in arbitrary
//! pieces: the outcome (request, error, leftover bytes) does not depend on
//! how the bytes were cut (but for an error found later, see below), the head it buffers stays within
//! `HandshakeLimits`, every error has a well-formed HTTP error response,
//! and an accepted request gets a 101 that parses as HTTP with the right
//! Sec-WebSocket-Accept. The parsed-request entry (`ServerUpgrade`, for
//! hyper and axum) judges every request the byte-level one parsed the
//! same way, with the same response headers, and takes the request's
//! HTTP/2 form as an RFC 8441 extended CONNECT with the same negotiation.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tether_core::handshake::server::error_response;
use tether_core::handshake::{
    accept_key, Accept, HandshakeError, HandshakeLimits, Mode, ServerHandshake, ServerUpgrade,
};
use tether_core::DeflateConfig;

/// What a handshake made of its input, in a comparable form.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The head never completed.
    Incomplete,
    Failed(HandshakeError),
    Accepted {
        uri: String,
        headers: Vec<(String, Vec<u8>)>,
        offered: Vec<String>,
        deflate: Option<tether_core::DeflateParams>,
        leftover: Vec<u8>,
        response: Result<Vec<u8>, HandshakeError>,
    },
}

/// Feeds `pieces` in order, stopping at the first answer; what follows
/// the head, in the buffer or in pieces not fed, is the leftover.
fn run(
    limits: &HandshakeLimits,
    deflate: Option<DeflateConfig>,
    protocol: Option<&str>,
    pieces: &[&[u8]],
) -> Outcome {
    let mut hs = ServerHandshake::new(limits.clone(), Instant::now()).with_deflate(deflate.clone());
    let mut fed = 0;
    for (i, piece) in pieces.iter().enumerate() {
        fed += piece.len();
        match hs.handle_read(piece) {
            Ok(None) => {
                // Waiting for more: what it holds is bounded by the limit
                // (plus the last read, which it had to look at).
                assert!(fed <= limits.max_head_size + piece.len());
            }
            Err(e) => {
                check_error_response(&e);
                return Outcome::Failed(e);
            }
            Ok(Some(req)) => {
                let mut leftover = hs.take_leftover().to_vec();
                for p in &pieces[i + 1..] {
                    leftover.extend_from_slice(p);
                }
                let offered = hs.offered_protocols().to_vec();
                // A protocol the client offered is always acceptable;
                // any other is refused.
                let protocol = protocol.map(|p| match p.parse::<usize>() {
                    Ok(n) if !offered.is_empty() => offered[n % offered.len()].clone(),
                    _ => p.to_owned(),
                });
                let decision = Accept::default().with_protocol(protocol.clone());
                let response = hs.accept(&decision);
                check_parsed_entry(&req, deflate.clone(), &decision, &response, &hs);
                match &response {
                    Ok(bytes) => check_accept(&req, bytes, protocol.as_deref()),
                    Err(e) => {
                        assert!(matches!(e, HandshakeError::ProtocolNotOffered(_)));
                        assert!(!offered.contains(protocol.as_ref().unwrap()));
                    }
                }
                return Outcome::Accepted {
                    uri: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    offered,
                    deflate: hs.deflate_params(),
                    leftover,
                    response,
                };
            }
        }
    }
    Outcome::Incomplete
}

/// `ServerUpgrade` on the request the byte-level handshake accepted: the
/// same subprotocols, deflate parameters and response headers; and the
/// same request as an HTTP/2 extended CONNECT gets 200 with the same
/// negotiated headers and no key-related ones.
fn check_parsed_entry(
    req: &tether_core::http::Request<()>,
    deflate: Option<DeflateConfig>,
    decision: &Accept,
    bytes: &Result<Vec<u8>, HandshakeError>,
    hs: &ServerHandshake,
) {
    use tether_core::{http, Config, Xoshiro256};
    let upgrade = ServerUpgrade::new(req, None)
        .expect("a request the byte-level handshake took passes the same checks")
        .with_deflate(deflate.clone());
    assert_eq!(upgrade.mode(), Mode::Upgrade);
    assert_eq!(upgrade.offered_protocols(), hs.offered_protocols());
    assert_eq!(upgrade.deflate_params(), hs.deflate_params());
    let accepted = upgrade.accept(
        Ok(decision.clone()),
        Config::default(),
        Box::new(Xoshiro256::from_seed(1)),
        Instant::now(),
    );
    let h1_headers = match (&accepted, bytes) {
        (Ok(up), Ok(bytes)) => {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            resp.parse(bytes).unwrap();
            assert_eq!(Some(up.response.status().as_u16()), resp.code);
            let wire: Vec<_> = resp
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect();
            let parsed: Vec<_> = up
                .response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(wire, parsed);
            Some(up.response.headers().clone())
        }
        (Err(r), Err(e)) => {
            assert_eq!(&r.error, e);
            None
        }
        (a, b) => panic!("the entries disagree: {a:?} against {b:?}"),
    };

    let mut h2 = http::Request::builder()
        .method(http::Method::CONNECT)
        .version(http::Version::HTTP_2)
        .uri(req.uri().clone())
        .body(())
        .unwrap();
    *h2.headers_mut() = req.headers().clone();
    // Without an authority in its URI the request still has its Host.
    let connect = ServerUpgrade::new(&h2, Some("websocket"))
        .expect("the HTTP/2 form passes the RFC 8441 checks")
        .with_deflate(deflate);
    assert_eq!(connect.mode(), Mode::ExtendedConnect);
    let accepted = connect.accept(
        Ok(decision.clone()),
        Config::default(),
        Box::new(Xoshiro256::from_seed(1)),
        Instant::now(),
    );
    match (accepted, h1_headers) {
        (Ok(up), Some(mut h1)) => {
            assert_eq!(up.response.status(), 200);
            for name in ["upgrade", "connection", "sec-websocket-accept"] {
                h1.remove(name);
            }
            assert_eq!(up.response.headers(), &h1);
        }
        (Err(_), None) => {}
        (a, b) => panic!("the modes disagree: {a:?} against {b:?}"),
    }
}

/// The error response is one whole HTTP response with a 4xx/5xx status.
fn check_error_response(e: &HandshakeError) {
    let bytes = error_response(e);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(&bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("error response for {e:?} does not parse: {other:?}"),
    };
    let code = resp.code.unwrap();
    assert!((400..600).contains(&code), "{e:?} answered with {code}");
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .expect("content-length");
    assert_eq!(bytes.len() - n, len, "body length of the error response");
}

/// The 101 parses as HTTP and accepts the request's key.
fn check_accept(req: &tether_core::http::Request<()>, bytes: &[u8], protocol: Option<&str>) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, bytes.len(), "bytes after the head"),
        other => panic!("accept response does not parse: {other:?}"),
    }
    assert_eq!(resp.code, Some(101));
    let get = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let key = req.headers()["sec-websocket-key"].to_str().unwrap().trim();
    assert_eq!(
        get("sec-websocket-accept"),
        Some(accept_key(key.as_bytes()).as_bytes())
    );
    assert_eq!(get("sec-websocket-protocol"), protocol.map(str::as_bytes));
}

fuzz_target!(|input: &[u8]| {
    // Header: flags, head size limit (2 bytes), header count limit, cut
    // count, then two bytes per cut; the rest is the request.
    let [flags, h0, h1, max_headers, ncuts, rest @ ..] = input else {
        return;
    };
    let ncuts = (*ncuts % 8) as usize;
    if rest.len() < 2 * ncuts {
        return;
    }
    let (cut_bytes, data) = rest.split_at(2 * ncuts);
    let max_head_size = match u16::from_le_bytes([*h0, *h1]) {
        0 => 16 << 10,
        n => n as usize,
    };
    let limits = HandshakeLimits::default()
        .with_max_head_size(max_head_size)
        .with_max_headers(match max_headers {
            0 => 64,
            n => (*n % 32) as usize,
        })
        .with_timeout(Duration::from_secs(10));
    let deflate = (flags & 1 != 0).then(|| {
        DeflateConfig::default()
            .with_max_window_bits(8 + (flags >> 4) % 8)
            .with_peer_max_window_bits((flags & 2 != 0).then_some(8 + (flags >> 5) % 8))
            .with_no_context_takeover(flags & 4 != 0)
            .with_peer_no_context_takeover(flags & 8 != 0)
    });
    // The application picks a protocol the client offered ("0".."2") or
    // one it did not ("x").
    let protocol = match flags >> 6 {
        0 => None,
        1 => Some("0"),
        2 => Some("1"),
        _ => Some("x"),
    };

    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (data.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        pieces.push(&data[start..c]);
        start = c;
    }
    pieces.push(&data[start..]);

    let whole = run(&limits, deflate.clone(), protocol, &[data]);
    let split = run(&limits, deflate, protocol, &pieces);
    // The head is parsed on the first read and then only once its blank
    // line arrived (or it passed the size limit), so bytes that break it
    // after the first read are found later: such a split may still be
    // waiting where the one read already failed. Any verdict both reach
    // is the same.
    let waiting_for_more = matches!(
        (&whole, &split),
        (
            Outcome::Failed(HandshakeError::Malformed(_) | HandshakeError::TooManyHeaders),
            Outcome::Incomplete
        )
    );
    if !waiting_for_more {
        assert_eq!(whole, split, "outcome depends on the cuts {pieces:?}");
    }
});
