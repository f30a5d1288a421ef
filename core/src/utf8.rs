//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames and reads at any byte, so a
//! code point can straddle two pieces. The validator keeps the (at most
//! three) bytes of an unfinished code point and fails as soon as a byte
//! makes the text invalid, not at the end of the message (RFC 6455 section
//! 8.1 lets an endpoint fail fast, and Autobahn 6.4.* checks it does).

/// Validates a byte stream as UTF-8, piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The bytes seen so far are not UTF-8, whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece. Fails as soon as the text can no longer be
    /// valid; an unfinished code point at the end is kept for the next piece.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the pending code point one byte at a time; it needs at
            // most three more.
            while self.partial_len > 0 {
                let Some((&b, rest)) = input.split_first() else {
                    return Ok(());
                };
                input = rest;
                self.partial[self.partial_len as usize] = b;
                self.partial_len += 1;
                let pending = &self.partial[..self.partial_len as usize];
                match std::str::from_utf8(pending) {
                    Ok(_) => self.partial_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
        }
        match simdutf8::basic::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(_) => {
                // The fast path only says "invalid somewhere"; the precise
                // check tells a bad byte from a code point cut at the end.
                let err = simdutf8::compat::from_utf8(input).unwrap_err();
                if err.error_len().is_some() {
                    return Err(InvalidUtf8);
                }
                let tail = &input[err.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the text fed so far ends on a code point boundary, as a
    /// complete message must.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Forgets any unfinished code point, for the next message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn feed_in_pieces(data: &[u8], cuts: &[usize]) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            v.feed(&data[start..cut])?;
            start = cut;
        }
        v.feed(&data[start..])?;
        Ok(v.is_complete())
    }

    #[test]
    fn fails_fast_inside_a_piece() {
        let mut v = Utf8Validator::new();
        // 0xF4 0x90 starts a code point above U+10FFFF: invalid before it ends.
        assert_eq!(v.feed(b"ok\xf4\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn fails_fast_across_pieces() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xce"), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(b"\xba\xe1"), Ok(()));
        assert_eq!(v.feed(b"\xbd"), Ok(()));
        assert_eq!(v.feed(b"\xed\xa0"), Err(InvalidUtf8), "surrogate");
    }

    #[test]
    fn keeps_a_cut_code_point() {
        let text = "κόσμε".as_bytes();
        for cut in 0..text.len() {
            assert_eq!(feed_in_pieces(text, &[cut]), Ok(true));
        }
    }

    quickcheck! {
        fn agrees_with_std(data: Vec<u8>, cuts: Vec<usize>) -> bool {
            let expected = std::str::from_utf8(&data).is_ok();
            let got = matches!(feed_in_pieces(&data, &cuts), Ok(true));
            expected == got
        }

        fn agrees_with_std_on_text(s: String, junk: Vec<u8>, cuts: Vec<usize>) -> bool {
            // Mostly-valid input reaches the cut-code-point paths far more often.
            let mut data = s.into_bytes();
            data.extend_from_slice(&junk[..junk.len().min(2)]);
            let expected = std::str::from_utf8(&data).is_ok();
            let got = matches!(feed_in_pieces(&data, &cuts), Ok(true));
            expected == got
        }

        fn fails_no_later_than_std(data: Vec<u8>) -> bool {
            // Fed byte by byte, the error comes exactly where std says the
            // prefix stops being a valid prefix.
            let mut v = Utf8Validator::new();
            let failed_at = data.iter().position(|b| v.feed(std::slice::from_ref(b)).is_err());
            match std::str::from_utf8(&data) {
                Ok(_) => failed_at.is_none(),
                Err(e) => match e.error_len() {
                    None => failed_at.is_none(),
                    Some(_) => failed_at.is_some() && failed_at.unwrap() >= e.valid_up_to(),
                },
            }
        }
    }
}
