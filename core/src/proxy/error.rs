//! Why a proxy could not be used: a bad URL or target, or the proxy's
//! refusal, each with whether trying again can help.

use std::fmt;

/// Why a proxy URL could not be parsed. No variant holds the URL's user
/// info, so printing one never shows a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// The URL is empty (or only white space).
    Empty,
    /// A scheme other than `http`, `socks5` and `socks5h`.
    UnsupportedScheme(String),
    /// `https://`: TLS to the proxy itself is not supported yet.
    HttpsProxy,
    /// The URL's syntax is broken in the part named.
    Malformed(&'static str),
    /// No host after the scheme (and user info).
    MissingHost,
    /// A host that is neither a name, an IPv4 address nor a bracketed
    /// IPv6 address.
    InvalidHost(String),
    /// A port that is not a number from 1 to 65535.
    InvalidPort(String),
    /// A path, query or fragment: a proxy URL names a host and port only.
    PathNotAllowed,
    /// A `%` in the user name or password not followed by two hex digits.
    InvalidPercentEncoding,
    /// The user name or password does not decode to UTF-8.
    CredentialsNotUtf8,
}

impl fmt::Display for ProxyUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty proxy URL"),
            Self::UnsupportedScheme(s) => write!(
                f,
                "proxy scheme {s:?} is not supported (use http, socks5 or socks5h)"
            ),
            Self::HttpsProxy => f.write_str(
                "https:// proxies (TLS to the proxy) are not supported yet; use http:// or socks5h://",
            ),
            Self::Malformed(part) => write!(f, "malformed proxy URL: bad {part}"),
            Self::MissingHost => f.write_str("proxy URL has no host"),
            Self::InvalidHost(h) => write!(f, "invalid proxy host {h:?}"),
            Self::InvalidPort(p) => write!(f, "invalid proxy port {p:?} (1 to 65535)"),
            Self::PathNotAllowed => {
                f.write_str("proxy URL has a path, query or fragment (only host and port)")
            }
            Self::InvalidPercentEncoding => {
                f.write_str("proxy credentials have a % not followed by two hex digits")
            }
            Self::CredentialsNotUtf8 => f.write_str("proxy credentials do not decode to UTF-8"),
        }
    }
}

impl std::error::Error for ProxyUrlError {}

/// A SOCKS5 proxy's refusal of the CONNECT request: the reply codes of
/// RFC 1928 section 6 (`REP`), with their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Socks5Failure {
    /// 1: general SOCKS server failure.
    GeneralFailure,
    /// 2: connection not allowed by ruleset.
    NotAllowed,
    /// 3: network unreachable.
    NetworkUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: connection refused (by the target).
    ConnectionRefused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: command not supported.
    CommandNotSupported,
    /// 8: address type not supported.
    AddressTypeNotSupported,
    /// 9 to 255: a code RFC 1928 does not assign.
    Unassigned(u8),
}

impl Socks5Failure {
    /// The failure a `REP` byte stands for; `None` for 0, success.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => Self::GeneralFailure,
            2 => Self::NotAllowed,
            3 => Self::NetworkUnreachable,
            4 => Self::HostUnreachable,
            5 => Self::ConnectionRefused,
            6 => Self::TtlExpired,
            7 => Self::CommandNotSupported,
            8 => Self::AddressTypeNotSupported,
            n => Self::Unassigned(n),
        })
    }

    /// The `REP` byte.
    pub fn code(self) -> u8 {
        match self {
            Self::GeneralFailure => 1,
            Self::NotAllowed => 2,
            Self::NetworkUnreachable => 3,
            Self::HostUnreachable => 4,
            Self::ConnectionRefused => 5,
            Self::TtlExpired => 6,
            Self::CommandNotSupported => 7,
            Self::AddressTypeNotSupported => 8,
            Self::Unassigned(n) => n,
        }
    }

    /// Whether another attempt may succeed: the target or the network was
    /// down (1, 3, 4, 5, 6), not a rule or a missing feature of the proxy
    /// (2, 7, 8) or a code nobody knows the meaning of.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::GeneralFailure
                | Self::NetworkUnreachable
                | Self::HostUnreachable
                | Self::ConnectionRefused
                | Self::TtlExpired
        )
    }
}

impl fmt::Display for Socks5Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::GeneralFailure => "general SOCKS server failure",
            Self::NotAllowed => "connection not allowed by ruleset",
            Self::NetworkUnreachable => "network unreachable",
            Self::HostUnreachable => "host unreachable",
            Self::ConnectionRefused => "connection refused",
            Self::TtlExpired => "TTL expired",
            Self::CommandNotSupported => "command not supported",
            Self::AddressTypeNotSupported => "address type not supported",
            Self::Unassigned(n) => return write!(f, "unassigned reply code {n}"),
        };
        write!(f, "{what} (reply code {})", self.code())
    }
}

/// Why a proxy could not be used. [`is_retryable`](Self::is_retryable)
/// says whether connecting again can help.
///
/// No variant holds a password: printing one is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL could not be parsed.
    InvalidUrl(ProxyUrlError),
    /// The proxy URL in an environment variable could not be parsed.
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with its value.
        error: ProxyUrlError,
    },
    /// The target's host or port cannot be sent to a proxy: a host name
    /// with a character that could end the request line or header
    /// (CR, LF, space, ...), a name over 255 bytes, port 0.
    InvalidTarget(String),
    /// The credentials cannot be sent: a user name with `:` (HTTP Basic),
    /// or a user name or password of 0 or more than 255 bytes (SOCKS5).
    InvalidCredentials(&'static str),
    /// A `socks5://` proxy was given a host name: that scheme means the
    /// caller resolves the name and passes an address (`socks5h://` sends
    /// the name to the proxy).
    UnresolvedTarget(String),

    /// The proxy's HTTP response head could not be parsed.
    Malformed(String),
    /// The proxy's response head grew past `max_head_size`.
    HeadTooLarge,
    /// The proxy's response head had more fields than `max_headers`.
    TooManyHeaders,
    /// 407: the proxy wants (other) credentials.
    AuthenticationRequired {
        /// Its `Proxy-Authenticate` challenges, joined by `, ` and cut at
        /// [`MAX_CHALLENGE_LEN`](super::MAX_CHALLENGE_LEN) bytes.
        challenge: Option<String>,
        /// Whether the request carried credentials (they were refused).
        credentials_sent: bool,
    },
    /// 403: the proxy does not allow this target.
    Forbidden,
    /// Any other status than 2xx, 403 and 407.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase, truncated.
        reason: String,
    },

    /// A version byte other than SOCKS5's (or 1 in the user/password
    /// sub-negotiation): not a SOCKS5 proxy, or a broken one.
    BadVersion {
        /// The version the step expects.
        expected: u8,
        /// The byte the proxy sent.
        got: u8,
    },
    /// The SOCKS5 proxy accepts none of the methods offered (0xFF): it
    /// wants credentials that were not given, or a method tether lacks.
    NoAcceptableMethods,
    /// The SOCKS5 proxy chose a method that was not offered.
    UnexpectedMethod(u8),
    /// The SOCKS5 proxy refused the user name and password (the status
    /// byte it sent, not 0).
    AuthFailed(u8),
    /// The SOCKS5 proxy refused the CONNECT request.
    Socks5(Socks5Failure),
    /// A SOCKS5 reply with an address type other than 1, 3 and 4.
    BadAddressType(u8),
    /// A SOCKS5 reply with a field out of its range (named).
    BadReply(&'static str),
    /// The proxy sent bytes after a reply before it was sent the next
    /// request: it cannot have read what it answers.
    UnexpectedData(&'static str),

    /// The proxy did not answer in time.
    TimedOut,
    /// The proxy closed the connection before the tunnel was open.
    Eof,
    /// `handle_read` after the tunnel opened: the bytes belong to the
    /// tunnel, not the proxy (a bug in the caller).
    Finished,
}

impl ProxyError {
    /// Whether connecting again may succeed: yes for timeouts, a proxy
    /// that closed the connection, a target or network that was down
    /// (SOCKS5 codes 1, 3, 4, 5, 6) and HTTP 408, 429 and 5xx (502 is
    /// how HTTP proxies say the target did not answer); no for a bad URL,
    /// target or credentials, a refusal of authentication (407, SOCKS5
    /// auth failure, no acceptable method), a refusal by rule (403, SOCKS5
    /// code 2), a missing feature (SOCKS5 codes 7 and 8), other statuses,
    /// and a proxy that breaks its protocol: the same request would meet
    /// the same answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::TimedOut | Self::Eof => true,
            Self::Socks5(f) => f.is_retryable(),
            Self::Refused { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }

    /// The HTTP status the proxy answered with, if it did.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::AuthenticationRequired { .. } => Some(407),
            Self::Forbidden => Some(403),
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(e) => e.fmt(f),
            Self::InvalidEnv { var, error } => write!(f, "environment variable {var}: {error}"),
            Self::InvalidTarget(why) => write!(f, "cannot ask a proxy for this target: {why}"),
            Self::InvalidCredentials(why) => write!(f, "invalid proxy credentials: {why}"),
            Self::UnresolvedTarget(host) => write!(
                f,
                "socks5:// needs the address of {host:?}, resolved by the caller \
                 (socks5h:// sends the name to the proxy)"
            ),
            Self::Malformed(e) => write!(f, "malformed proxy response: {e}"),
            Self::HeadTooLarge => f.write_str("proxy response head too large"),
            Self::TooManyHeaders => f.write_str("too many header fields in the proxy response"),
            Self::AuthenticationRequired {
                challenge,
                credentials_sent,
            } => {
                f.write_str(if *credentials_sent {
                    "proxy refused the credentials (407)"
                } else {
                    "proxy requires authentication (407)"
                })?;
                match challenge {
                    Some(c) => write!(f, "; it asks for: {c}"),
                    None => Ok(()),
                }
            }
            Self::Forbidden => f.write_str("proxy forbids the connection (403)"),
            Self::Refused { status, reason } if reason.is_empty() => {
                write!(f, "proxy refused the connection with {status}")
            }
            Self::Refused { status, reason } => {
                write!(f, "proxy refused the connection with {status} {reason}")
            }
            Self::BadVersion { expected, got } => {
                write!(f, "proxy answered version {got}, expected {expected}")?;
                if *got == b'H' {
                    f.write_str(" (an HTTP response: is it an HTTP proxy?)")?;
                }
                Ok(())
            }
            Self::NoAcceptableMethods => {
                f.write_str("SOCKS5 proxy accepts none of the authentication methods offered")
            }
            Self::UnexpectedMethod(m) => {
                write!(
                    f,
                    "SOCKS5 proxy chose method {m:#04x}, which was not offered"
                )
            }
            Self::AuthFailed(s) => write!(
                f,
                "SOCKS5 proxy refused the user name and password (status {s})"
            ),
            Self::Socks5(e) => write!(f, "SOCKS5 proxy refused the connection: {e}"),
            Self::BadAddressType(t) => write!(f, "SOCKS5 reply with address type {t}"),
            Self::BadReply(what) => write!(f, "SOCKS5 reply with a bad {what}"),
            Self::UnexpectedData(after) => {
                write!(f, "proxy sent data after its {after} before it was asked")
            }
            Self::TimedOut => f.write_str("proxy handshake timed out"),
            Self::Eof => f.write_str("proxy closed the connection during its handshake"),
            Self::Finished => f.write_str("proxy handshake already finished"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidUrl(e) | Self::InvalidEnv { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<ProxyUrlError> for ProxyError {
    fn from(e: ProxyUrlError) -> Self {
        Self::InvalidUrl(e)
    }
}
