//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929):
//! method negotiation, the optional sub-negotiation, then `CONNECT`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::host::check_target;
use super::{Credentials, Host, ProxyError, Socks5Failure, Step, Tunnel};
use crate::handshake::HandshakeLimits;

/// The longest reply SOCKS5 has: `CONNECT`'s, with a 255-byte name as the
/// bound address (4 + 1 + 255 + 2 bytes). [`Socks5::buffered`] never
/// exceeds it.
pub const MAX_SOCKS5_REPLY_LEN: usize = 262;

const VERSION: u8 = 5;
const AUTH_VERSION: u8 = 1;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xFF;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

/// The SOCKS5 exchange: up to three requests, each written after the
/// proxy answered the one before.
///
/// [`new`](Self::new) gives the greeting (the methods offered: no
/// authentication, and username/password when credentials are given).
/// Then feed what the proxy sends to [`handle_read`](Self::handle_read):
///
/// * `Ok(None)`: its reply is incomplete, read more;
/// * `Ok(Some(Step::Write(bytes)))`: write `bytes` (the username/password
///   request, or the `CONNECT` request), then read its answer;
/// * `Ok(Some(Step::Done(tunnel)))`: the tunnel is open; `tunnel.leftover`
///   holds bytes that followed the reply (the tunnel's), and
///   `tunnel.bound` the address the proxy connected from;
/// * `Err(e)`: close the connection.
///
/// Each reply is checked byte by byte as it arrives, so the outcome does
/// not depend on how reads cut it. A reply is only ever followed by bytes
/// of the tunnel: a proxy that sends more behind the method or
/// authentication reply in the same read answered a request it was never
/// sent, and fails with [`ProxyError::UnexpectedData`].
///
/// ```
/// use std::time::Instant;
/// use tether_core::handshake::HandshakeLimits;
/// use tether_core::proxy::{Socks5, Step};
///
/// let now = Instant::now();
/// let (mut socks, greeting) =
///     Socks5::new(&"example.com".into(), 443, None, HandshakeLimits::default(), now).unwrap();
/// assert_eq!(greeting, [5, 1, 0]); // version 5, one method: no authentication
/// let Some(Step::Write(request)) = socks.handle_read(&[5, 0]).unwrap() else { panic!() };
/// assert_eq!(request[..5], [5, 1, 0, 3, 11]); // CONNECT to an 11-byte name...
/// let reply = [5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];
/// let Some(Step::Done(tunnel)) = socks.handle_read(&reply).unwrap() else { panic!() };
/// assert!(tunnel.leftover.is_empty());
/// ```
#[derive(Debug)]
pub struct Socks5 {
    credentials: Option<Credentials>,
    request: Vec<u8>,
    deadline: Instant,
    phase: Phase,
    /// The reply being read (never more than it).
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the method the proxy chose.
    Method,
    /// Waiting for the username/password verdict.
    Auth,
    /// Waiting for the reply to `CONNECT`.
    Reply,
    Done,
    Failed(ProxyError),
}

/// How far a reply in the buffer goes.
enum Parsed<T> {
    /// At least this many bytes make the reply (more than buffered).
    Need(usize),
    /// The reply, complete.
    Complete(T),
}

impl Socks5 {
    /// Starts the exchange at `now`: the state and the greeting to write.
    ///
    /// `host` is sent as a name (ATYP 3: the proxy resolves it, which is
    /// `socks5h://`) or as an address (ATYP 1 or 4, resolved by the
    /// caller, which is `socks5://`). Fails before writing anything for a
    /// name that is empty, over 255 bytes or has bytes other than letters,
    /// digits, `-`, `.` and `_`, for port 0, or for a user name or
    /// password that is empty or over 255 bytes. Of `limits` only the
    /// timeout applies: replies are bounded by the protocol
    /// ([`MAX_SOCKS5_REPLY_LEN`]).
    pub fn new(
        host: &Host,
        port: u16,
        credentials: Option<&Credentials>,
        limits: HandshakeLimits,
        now: Instant,
    ) -> Result<(Self, Vec<u8>), ProxyError> {
        check_target(host, port)?;
        if let Some(c) = credentials {
            c.socks5_request()?;
        }
        let mut request = vec![VERSION, CONNECT, 0];
        match host {
            Host::Ip(IpAddr::V4(ip)) => {
                request.push(ATYP_V4);
                request.extend_from_slice(&ip.octets());
            }
            Host::Ip(IpAddr::V6(ip)) => {
                request.push(ATYP_V6);
                request.extend_from_slice(&ip.octets());
            }
            Host::Domain(name) => {
                request.push(ATYP_NAME);
                // check_target held it to 255 bytes.
                request.push(name.len() as u8);
                request.extend_from_slice(name.as_bytes());
            }
        }
        request.extend_from_slice(&port.to_be_bytes());
        let greeting = match credentials {
            Some(_) => vec![VERSION, 2, NO_AUTH, USER_PASS],
            None => vec![VERSION, 1, NO_AUTH],
        };
        let state = Self {
            credentials: credentials.cloned(),
            request,
            deadline: crate::time::deadline_after(now, limits.timeout),
            phase: Phase::Method,
            buf: Vec::new(),
        };
        Ok((state, greeting))
    }

    /// When the exchange times out.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Fails with [`ProxyError::TimedOut`] once the deadline has passed
    /// and the tunnel is not open.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), ProxyError> {
        match self.phase {
            Phase::Method | Phase::Auth | Phase::Reply if now >= self.deadline => {
                Err(ProxyError::TimedOut)
            }
            _ => Ok(()),
        }
    }

    /// Bytes of an incomplete reply held: at most
    /// [`MAX_SOCKS5_REPLY_LEN`].
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes from the proxy and says what to do next (see the
    /// type's documentation). After `Done` or an error every call fails
    /// (with [`ProxyError::Finished`], or the error again).
    pub fn handle_read(&mut self, data: &[u8]) -> Result<Option<Step>, ProxyError> {
        match &self.phase {
            Phase::Done => return Err(ProxyError::Finished),
            Phase::Failed(e) => return Err(e.clone()),
            _ => {}
        }
        let result = self.read(data);
        match &result {
            Ok(Some(Step::Done(_))) => self.phase = Phase::Done,
            Err(e) => {
                trace!(info, error = %e, "SOCKS5 proxy refused the tunnel");
                self.phase = Phase::Failed(e.clone());
                self.buf = Vec::new();
            }
            _ => {}
        }
        result
    }

    fn read(&mut self, mut data: &[u8]) -> Result<Option<Step>, ProxyError> {
        loop {
            let parsed = match self.phase {
                Phase::Method => parse_pair(&self.buf, VERSION)?,
                Phase::Auth => parse_pair(&self.buf, AUTH_VERSION)?,
                Phase::Reply => match parse_reply(&self.buf)? {
                    Parsed::Need(n) => Parsed::Need(n),
                    Parsed::Complete(bound) => {
                        self.buf.clear();
                        trace!(debug, "SOCKS5 proxy opened the tunnel");
                        return Ok(Some(Step::Done(Tunnel {
                            leftover: data.to_vec(),
                            bound: Some(bound),
                        })));
                    }
                },
                Phase::Done | Phase::Failed(_) => unreachable!("checked by handle_read"),
            };
            let second = match parsed {
                Parsed::Need(n) => {
                    debug_assert!(n > self.buf.len());
                    // Take only this reply's bytes: what follows it is
                    // not the proxy's to buffer.
                    let take = (n - self.buf.len()).min(data.len());
                    if take == 0 {
                        return Ok(None);
                    }
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    continue;
                }
                Parsed::Complete(second) => second,
            };
            self.buf.clear();
            let (next, phase, what) = match self.phase {
                Phase::Method => match (second, &self.credentials) {
                    (NO_AUTH, _) => (self.request.clone(), Phase::Reply, "method reply"),
                    (USER_PASS, Some(c)) => (c.socks5_request()?, Phase::Auth, "method reply"),
                    (NO_ACCEPTABLE, _) => return Err(ProxyError::NoAcceptableMethods),
                    (m, _) => return Err(ProxyError::UnexpectedMethod(m)),
                },
                _ => match second {
                    0 => (self.request.clone(), Phase::Reply, "authentication reply"),
                    s => return Err(ProxyError::AuthFailed(s)),
                },
            };
            if !data.is_empty() {
                return Err(ProxyError::UnexpectedData(what));
            }
            self.phase = phase;
            return Ok(Some(Step::Write(next)));
        }
    }
}

/// A two-byte reply: version, then the method or status.
fn parse_pair(b: &[u8], version: u8) -> Result<Parsed<u8>, ProxyError> {
    if let Some(&got) = b.first() {
        if got != version {
            return Err(ProxyError::BadVersion {
                expected: version,
                got,
            });
        }
    }
    Ok(match b.get(1) {
        Some(&second) => Parsed::Complete(second),
        None => Parsed::Need(2),
    })
}

/// The reply to `CONNECT`: `VER REP RSV ATYP BND.ADDR BND.PORT`. Each
/// byte is checked once it is there, in order, so an error is the same
/// however the reply was cut.
fn parse_reply(b: &[u8]) -> Result<Parsed<(Host, u16)>, ProxyError> {
    if let Some(&got) = b.first() {
        if got != VERSION {
            return Err(ProxyError::BadVersion {
                expected: VERSION,
                got,
            });
        }
    }
    if let Some(&rep) = b.get(1) {
        if let Some(failure) = Socks5Failure::from_code(rep) {
            return Err(ProxyError::Socks5(failure));
        }
    }
    if let Some(&rsv) = b.get(2) {
        if rsv != 0 {
            return Err(ProxyError::BadReply("reserved byte"));
        }
    }
    let Some(&atyp) = b.get(3) else {
        return Ok(Parsed::Need(4));
    };
    let addr_len = match atyp {
        ATYP_V4 => 4,
        ATYP_V6 => 16,
        ATYP_NAME => match b.get(4) {
            None => return Ok(Parsed::Need(5)),
            Some(0) => return Err(ProxyError::BadReply("name length (0)")),
            Some(&n) => 1 + usize::from(n),
        },
        t => return Err(ProxyError::BadAddressType(t)),
    };
    let total = 4 + addr_len + 2;
    if b.len() < total {
        return Ok(Parsed::Need(total));
    }
    let addr = &b[4..4 + addr_len];
    let host = match atyp {
        ATYP_V4 => {
            let octets: [u8; 4] = addr.try_into().expect("4 bytes");
            Host::Ip(Ipv4Addr::from(octets).into())
        }
        ATYP_V6 => {
            let octets: [u8; 16] = addr.try_into().expect("16 bytes");
            Host::Ip(Ipv6Addr::from(octets).into())
        }
        _ => Host::Domain(String::from_utf8_lossy(&addr[1..]).into_owned()),
    };
    let port = u16::from_be_bytes([b[total - 2], b[total - 1]]);
    Ok(Parsed::Complete((host, port)))
}
