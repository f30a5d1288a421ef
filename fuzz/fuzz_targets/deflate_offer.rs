//! permessage-deflate negotiation (RFC 7692 section 7.1).
//!
//! Arbitrary header values: parsing and both sides' checks never panic; a
//! server's answer to any offer is one element with no parameter the
//! offer did not allow; and a client accepting any response gets windows
//! it can honour.
//!
//! Offers a tether client makes (from arbitrary settings): whenever a
//! server accepts one, the client accepts the server's response, and both
//! agree on the windows and context takeover each side uses. The one
//! exception is documented in `deflate.rs`: a server that wants the
//! client's window at 8 bits, which zlib cannot compress with, is refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::deflate::{
    client_accept, client_offer, parse_extensions, server_accept, ExtensionItem, EXTENSION_NAME,
};
use tether_core::DeflateConfig;

/// Settings of one side, from six bytes.
struct Settings([u8; 6]);

impl Settings {
    /// Window bits in and around the valid 8..=15, so clamping is tested.
    fn config(&self) -> DeflateConfig {
        let [level, mem_level, bits, peer_bits, flags, _] = self.0;
        DeflateConfig::default()
            .with_level(level % 10)
            .with_mem_level(1 + mem_level % 9)
            .with_max_window_bits(6 + bits % 12)
            .with_peer_max_window_bits((flags & 1 != 0).then_some(6 + peer_bits % 12))
            .with_no_context_takeover(flags & 2 != 0)
            .with_peer_no_context_takeover(flags & 4 != 0)
            .with_threshold(0)
    }
}

/// Bytes of settings before the header values: the server's, a count of
/// offers, four offers.
const HEAD: usize = 6 + 1 + 4 * 6;

/// A parameter's value as a window size, if it is one.
fn bits(item: &ExtensionItem, name: &str) -> Option<Option<u8>> {
    item.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_deref().and_then(|v| v.parse().ok()))
}

fn has(item: &ExtensionItem, name: &str) -> bool {
    item.params.iter().any(|(k, _)| k == name)
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; HEAD];
    let n = data.len().min(HEAD);
    head[..n].copy_from_slice(&data[..n]);
    let settings = |i: usize| Settings(head[i..i + 6].try_into().unwrap());
    let server = settings(0).config();
    let offers: Vec<DeflateConfig> = (0..head[6] as usize % 5)
        .map(|i| settings(7 + 6 * i).config())
        .collect();
    // The rest: header values, one per line.
    let text = String::from_utf8_lossy(&data[n..]);
    let values: Vec<&str> = text.split('\n').collect();

    // Arbitrary header values.
    let items = parse_extensions(values.iter().copied());
    for item in &items {
        assert!(!item.name.is_empty());
        assert_eq!(item.name, item.name.to_ascii_lowercase());
        let _ = client_accept(&offers, item);
    }
    if let Some((params, response)) = server_accept(&server, &items) {
        let answered = parse_extensions([response.as_str()]);
        assert_eq!(answered.len(), 1, "response {response:?}");
        let answer = &answered[0];
        assert_eq!(answer.name, EXTENSION_NAME);
        // The offer it answers is the first one it accepts on its own,
        // with the same answer.
        let offer = items
            .iter()
            .find(|i| server_accept(&server, std::slice::from_ref(*i)).is_some())
            .unwrap_or_else(|| panic!("response {response:?} fits none of {items:?}"));
        assert_eq!(
            server_accept(&server, std::slice::from_ref(offer)),
            Some((params.clone(), response.clone()))
        );
        assert_eq!(offer.name, EXTENSION_NAME);
        // The response respects the offer's limits.
        match bits(offer, "server_max_window_bits") {
            Some(Some(limit)) => assert!(
                matches!(bits(answer, "server_max_window_bits"), Some(Some(b)) if b <= limit),
                "server window above the offered {limit}: {response:?}"
            ),
            Some(None) => panic!("accepted a server_max_window_bits without a value"),
            None => {}
        }
        assert!(
            !has(answer, "client_max_window_bits") || has(offer, "client_max_window_bits"),
            "client_max_window_bits not offered: {response:?}"
        );
        if let Some(Some(limit)) = bits(offer, "client_max_window_bits") {
            if let Some(Some(b)) = bits(answer, "client_max_window_bits") {
                assert!(b <= limit, "client window {b} above the offered {limit}");
            }
        }
        assert!((9..=15).contains(&params.own_window_bits));
        assert!((8..=15).contains(&params.peer_window_bits));
        if has(offer, "server_no_context_takeover") {
            assert!(params.own_no_context_takeover);
        }
    }
    if let Some(item) = items.first() {
        if let Some(p) = client_accept(&offers, item) {
            assert!((9..=15).contains(&p.own_window_bits));
            assert!((8..=15).contains(&p.peer_window_bits));
        }
    }

    // Offers a tether client makes, answered by a tether server.
    if offers.is_empty() {
        return;
    }
    let offer = client_offer(&offers);
    let Some((sp, response)) = server_accept(&server, &parse_extensions([offer.as_str()])) else {
        // Declined only when every offer asks for a server window of 8.
        assert!(
            offers
                .iter()
                .all(|o| o.peer_max_window_bits.is_some_and(|b| b <= 8)),
            "{server:?} declined {offer:?}"
        );
        return;
    };
    let answered = parse_extensions([response.as_str()]);
    assert_eq!(answered.len(), 1);
    match client_accept(&offers, &answered[0]) {
        None => assert!(
            response.ends_with("client_max_window_bits=8"),
            "client refused {response:?} to its offer {offer:?}"
        ),
        Some(cp) => {
            // What one compresses with, the other inflates with.
            assert_eq!(
                cp.peer_window_bits, sp.own_window_bits,
                "{offer} / {response}"
            );
            assert!(
                cp.own_window_bits <= sp.peer_window_bits,
                "client compresses with {} bits, server inflates with {}",
                cp.own_window_bits,
                sp.peer_window_bits
            );
            if sp.own_no_context_takeover {
                assert!(cp.peer_no_context_takeover);
            }
            if sp.peer_no_context_takeover {
                assert!(cp.own_no_context_takeover);
            }
        }
    }
});
