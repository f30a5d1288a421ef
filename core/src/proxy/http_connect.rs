//! HTTP `CONNECT` (RFC 9110 section 9.3.6): ask an HTTP proxy for a
//! tunnel to `host:port`, read its response head.

use std::time::Instant;

use super::host::check_target;
use super::{Credentials, Host, ProxyError, Step, Tunnel, MAX_CHALLENGE_LEN};
use crate::handshake::{head_window, HandshakeLimits, HeadBuffer};

/// Longest reason phrase kept in [`ProxyError::Refused`].
const MAX_REASON_LEN: usize = 128;

/// The `CONNECT` exchange with an HTTP proxy.
///
/// [`new`](Self::new) gives the request to write; [`handle_read`](Self::handle_read)
/// takes the proxy's response and returns [`Step::Done`] once a 2xx head
/// arrived (never [`Step::Write`]: there is nothing more to send), with
/// the bytes after the head, which belong to the tunnel. Interim 1xx
/// responses are skipped, each within the head limits.
/// Any `Content-Length` or `Transfer-Encoding` of a 2xx is ignored, as
/// RFC 9110 asks: the tunnel starts right after the head.
///
/// ```
/// use std::time::Instant;
/// use tether_core::handshake::HandshakeLimits;
/// use tether_core::proxy::{HttpConnect, Step};
///
/// let now = Instant::now();
/// let (mut connect, request) =
///     HttpConnect::new(&"example.com".into(), 443, None, HandshakeLimits::default(), now)
///         .unwrap();
/// assert_eq!(request, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
/// // ... write `request`, then feed what the proxy sends:
/// let step = connect
///     .handle_read(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03")
///     .unwrap();
/// let Some(Step::Done(tunnel)) = step else { panic!() };
/// assert_eq!(tunnel.leftover, b"\x16\x03");
/// ```
#[derive(Debug)]
pub struct HttpConnect {
    limits: HandshakeLimits,
    deadline: Instant,
    head: HeadBuffer,
    credentials_sent: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    Reading,
    Done,
    Failed(ProxyError),
}

impl HttpConnect {
    /// Starts the exchange at `now`: the state and the request to write,
    /// `CONNECT host:port HTTP/1.1` with `Host` and, given credentials,
    /// `Proxy-Authorization: Basic`. Fails before writing anything for a
    /// host name that could break the request (see
    /// [`ProxyError::InvalidTarget`]), port 0, or a user name with `:`.
    /// `limits` bound the response head and the time to its end.
    pub fn new(
        host: &Host,
        port: u16,
        credentials: Option<&Credentials>,
        limits: HandshakeLimits,
        now: Instant,
    ) -> Result<(Self, Vec<u8>), ProxyError> {
        check_target(host, port)?;
        let authority = format!("{host}:{port}");
        let mut out = Vec::with_capacity(64 + 2 * authority.len());
        out.extend_from_slice(b"CONNECT ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(c) = credentials {
            out.extend_from_slice(b"Proxy-Authorization: ");
            out.extend_from_slice(c.basic()?.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let state = Self {
            deadline: crate::time::deadline_after(now, limits.timeout),
            limits,
            head: HeadBuffer::default(),
            credentials_sent: credentials.is_some(),
            state: State::Reading,
        };
        Ok((state, out))
    }

    /// When the exchange times out.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Fails with [`ProxyError::TimedOut`] once the deadline has passed
    /// and the tunnel is not open.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), ProxyError> {
        match self.state {
            State::Reading if now >= self.deadline => Err(ProxyError::TimedOut),
            _ => Ok(()),
        }
    }

    /// Bytes held while the head is incomplete: at most
    /// `max_head_size + 1`.
    pub fn buffered(&self) -> usize {
        self.head.buf.len()
    }

    /// Takes response bytes: `Ok(None)` until the head is complete, then
    /// [`Step::Done`] for a 2xx or the error for any other status. After
    /// either, every call fails (the error again, or
    /// [`ProxyError::Finished`]).
    pub fn handle_read(&mut self, data: &[u8]) -> Result<Option<Step>, ProxyError> {
        match &self.state {
            State::Reading => {}
            State::Done => return Err(ProxyError::Finished),
            State::Failed(e) => return Err(e.clone()),
        }
        let result = self.read(data);
        match &result {
            Ok(Some(_)) => self.state = State::Done,
            Err(e) => {
                trace!(info, error = %e, "HTTP proxy refused the tunnel");
                self.state = State::Failed(e.clone());
                self.head = HeadBuffer::default();
            }
            Ok(None) => {}
        }
        result
    }

    fn read(&mut self, mut data: &[u8]) -> Result<Option<Step>, ProxyError> {
        let max = self.limits.max_head_size;
        let mut parse = false;
        loop {
            // Keep no more than one byte past the limit (enough to know it
            // was passed); the rest stays in `data`, for the tunnel.
            let room = max.saturating_add(1).saturating_sub(self.head.buf.len());
            let take = room.min(data.len());
            parse |= self.head.push(&data[..take]);
            data = &data[take..];
            // Past the limit the head is parsed (up to the limit) even
            // without its blank line, as with the WebSocket handshake.
            if !parse && self.head.buf.len() <= max {
                return Ok(None);
            }
            let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
            let mut resp = httparse::Response::new(&mut headers);
            let head_len = match resp.parse(head_window(&self.head.buf, &self.limits)) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.head.buf.len() > max => {
                    return Err(ProxyError::HeadTooLarge)
                }
                // `data` is empty here: all of it fit under the limit.
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(ProxyError::TooManyHeaders),
                Err(e) => return Err(ProxyError::Malformed(e.to_string())),
            };
            if head_len > max {
                return Err(ProxyError::HeadTooLarge);
            }
            let status = resp.code.unwrap_or(0);
            match status {
                200..=299 => {
                    let mut leftover = self.head.buf.split_off(head_len);
                    leftover.extend_from_slice(data);
                    self.head = HeadBuffer::default();
                    trace!(debug, status, "HTTP proxy opened the tunnel");
                    return Ok(Some(Step::Done(Tunnel {
                        leftover,
                        bound: None,
                    })));
                }
                // Interim: the final response follows (101 means nothing
                // for CONNECT and is a refusal like any other).
                100..=199 if status != 101 => {
                    let rest = self.head.buf.split_off(head_len);
                    self.head = HeadBuffer::default();
                    parse = self.head.push(&rest);
                }
                407 => {
                    let challenges: Vec<String> = resp
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect();
                    let challenge = (!challenges.is_empty())
                        .then(|| truncate(&challenges.join(", "), MAX_CHALLENGE_LEN));
                    return Err(ProxyError::AuthenticationRequired {
                        challenge,
                        credentials_sent: self.credentials_sent,
                    });
                }
                403 => return Err(ProxyError::Forbidden),
                _ => {
                    return Err(ProxyError::Refused {
                        status,
                        reason: truncate(resp.reason.unwrap_or(""), MAX_REASON_LEN),
                    })
                }
            }
        }
    }
}

/// The first `max` bytes of `s` or fewer, cut at a character boundary,
/// with `…` when something was cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("aéb", 2), "a…");
    }
}
