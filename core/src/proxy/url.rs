//! A proxy as a URL names it: `http://[user:pass@]host[:port]`,
//! `socks5://…`, `socks5h://…`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::host::{is_name_byte, Host};
use super::{Credentials, ProxyUrlError};

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked with `CONNECT` (`http://`, default port 80).
    Http,
    /// SOCKS5 with the target's name resolved by the caller, which sends
    /// the proxy an address (`socks5://`, default port 1080).
    Socks5,
    /// SOCKS5 with the target's name sent to the proxy, which resolves it
    /// (`socks5h://`, default port 1080): no DNS lookup leaves the client.
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
        }
    }

    /// The port when the URL names none: 80 for HTTP, 1080 for SOCKS5.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Socks5 | Self::Socks5h => 1080,
        }
    }

    /// Whether the caller must resolve the target's name and hand the
    /// proxy handshake an address (`socks5://`).
    pub fn resolves_locally(self) -> bool {
        self == Self::Socks5
    }
}

/// A proxy: its protocol, where it listens, and the credentials to give
/// it.
///
/// Parsed from a URL ([`Proxy::parse`] or `str::parse`):
/// `http://[user:pass@]host[:port]`, `socks5://…` or `socks5h://…`.
/// The scheme is case-insensitive, and a URL without one is `http://`
/// (as curl reads `http_proxy=proxy:3128`); the user name and password
/// are percent-decoded; an IPv6 host is written in brackets; a trailing
/// `/` is allowed, any other path is not. `https://` (TLS to the proxy)
/// is refused for now, and so are `socks4://` and `socks4a://`.
///
/// `Debug` and `Display` never show the password.
///
/// ```
/// use tether_core::proxy::{Host, Proxy, ProxyKind};
///
/// let p: Proxy = "socks5h://me:p%40ss@[2001:db8::1]".parse().unwrap();
/// assert_eq!(p.kind, ProxyKind::Socks5h);
/// assert_eq!(p.host, Host::Ip("2001:db8::1".parse().unwrap()));
/// assert_eq!(p.port, 1080);
/// assert_eq!(p.credentials.as_ref().unwrap().password(), "p@ss");
/// assert_eq!(p.to_string(), "socks5h://me:***@[2001:db8::1]:1080");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Proxy {
    /// The protocol.
    pub kind: ProxyKind,
    /// Where it listens: the caller connects there (resolving a name).
    pub host: Host,
    /// Its port.
    pub port: u16,
    /// The credentials to give it.
    pub credentials: Option<Credentials>,
}

impl Proxy {
    /// A proxy of `kind` at `host:port`, without credentials.
    pub fn new(kind: ProxyKind, host: impl Into<Host>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Sets the credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Parses a proxy URL (see the type's documentation).
    pub fn parse(url: &str) -> Result<Self, ProxyUrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ProxyUrlError::Empty);
        }
        let (kind, rest) = match url.find("://") {
            Some(i) => (parse_scheme(&url[..i])?, &url[i + 3..]),
            None => (ProxyKind::Http, url),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if !path.is_empty() && path != "/" {
            return Err(ProxyUrlError::PathNotAllowed);
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let (user, pass) = (percent_decode(user)?, percent_decode(pass)?);
                (!user.is_empty() || !pass.is_empty()).then(|| Credentials::new(user, pass))
            }
        };
        let (host, port) = parse_host_port(hostport)?;
        Ok(Self {
            kind,
            host,
            port: port.unwrap_or(kind.default_port()),
            credentials,
        })
    }
}

impl FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Proxy {
    /// The URL, with `***` for a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(c) = &self.credentials {
            f.write_str(&percent_encode(c.username()))?;
            if !c.password().is_empty() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn parse_scheme(scheme: &str) -> Result<ProxyKind, ProxyUrlError> {
    let valid = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        // Not echoed: text before "://" that is no scheme may be anything.
        return Err(ProxyUrlError::Malformed("scheme"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Ok(ProxyKind::Http),
        "socks5" => Ok(ProxyKind::Socks5),
        "socks5h" => Ok(ProxyKind::Socks5h),
        "https" => Err(ProxyUrlError::HttpsProxy),
        other => Err(ProxyUrlError::UnsupportedScheme(other.to_owned())),
    }
}

/// `host[:port]` or `[v6][:port]`; an empty port is no port (RFC 3986).
fn parse_host_port(s: &str) -> Result<(Host, Option<u16>), ProxyUrlError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| ProxyUrlError::InvalidHost(s.to_owned()))?;
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| ProxyUrlError::InvalidHost(s.to_owned()))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| ProxyUrlError::InvalidHost(s.to_owned()))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        if name.is_empty() {
            return Err(ProxyUrlError::MissingHost);
        }
        let host = match name.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Host::Ip(ip.into()),
            Err(_) if name.bytes().all(is_name_byte) => Host::Domain(name.to_owned()),
            Err(_) => return Err(ProxyUrlError::InvalidHost(name.to_owned())),
        };
        (host, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(ProxyUrlError::InvalidPort(p.to_owned())),
        },
    };
    Ok((host, port))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, ProxyUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).and_then(|&c| (c as char).to_digit(16));
            match (hex(i + 1), hex(i + 2)) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(ProxyUrlError::InvalidPercentEncoding),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyUrlError::CredentialsNotUtf8)
}

/// Escapes what may not stand as it is in a URL's user info.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        for s in ["", "a b", "p@ss:w/rd%", "ü"] {
            assert_eq!(percent_decode(&percent_encode(s)).unwrap(), s);
        }
    }
}
