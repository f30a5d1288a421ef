//! The incremental UTF-8 validator, fed the input in arbitrary pieces,
//! agrees with `std::str::from_utf8`: valid iff std says so, an unfinished
//! code point at the end is "incomplete" rather than an error, and an
//! error comes in the very piece whose bytes make the prefix invalid (the
//! validator fails fast), never earlier.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::utf8::Utf8Validator;

/// Whether `b` can still be the start of UTF-8 text.
fn valid_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

fuzz_target!(|input: &[u8]| {
    // First byte: how many cuts; then two bytes per cut; the rest is text.
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = (n % 8) as usize;
    if rest.len() < 2 * n {
        return;
    }
    let (cut_bytes, data) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (data.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.push(data.len());

    // The first prefix length at which the text can no longer be valid.
    let fails_at = match std::str::from_utf8(data) {
        Ok(_) => None,
        Err(e) if e.error_len().is_none() => None,
        Err(e) => Some(
            (e.valid_up_to() + 1..=data.len())
                .find(|&k| !valid_prefix(&data[..k]))
                .expect("std says invalid, so some prefix is"),
        ),
    };

    let mut v = Utf8Validator::new();
    let mut start = 0;
    for &end in &cuts {
        let r = v.feed(&data[start..end]);
        match fails_at {
            Some(k) if k <= end => {
                assert!(
                    r.is_err(),
                    "invalid at {k}, yet piece {start}..{end} passed"
                );
                // An error is final: the caller stops there.
                break;
            }
            _ => assert!(r.is_ok(), "piece {start}..{end} failed on a valid prefix"),
        }
        start = end;
    }
    if fails_at.is_none() {
        assert_eq!(
            v.is_complete(),
            std::str::from_utf8(data).is_ok(),
            "complete iff std accepts the whole text"
        );
    }

    // After reset the validator starts afresh, whatever it held.
    v.reset();
    assert!(v.is_complete());
    assert!(v.feed("κόσμε".as_bytes()).is_ok() && v.is_complete());
});
