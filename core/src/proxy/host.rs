//! Hosts as proxies and targets name them: a DNS name or an address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ProxyError;

/// A host: a DNS name or an IP address.
///
/// `Host::from("…")` sorts a string into one or the other (`"[::1]"`,
/// `"::1"` and `"192.0.2.1"` are addresses); names are checked where they
/// are used, before any byte is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name, resolved by whoever receives it.
    Domain(String),
    /// An address.
    Ip(IpAddr),
}

impl Host {
    /// A name or, if `s` is one (IPv6 with or without brackets), an
    /// address.
    pub fn new(s: &str) -> Self {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        match bare.parse::<IpAddr>() {
            Ok(ip) if bare.contains(':') || bare.len() == s.len() => Self::Ip(ip),
            _ => Self::Domain(s.to_owned()),
        }
    }
}

impl From<&str> for Host {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Host {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<Ipv4Addr> for Host {
    fn from(ip: Ipv4Addr) -> Self {
        Self::Ip(ip.into())
    }
}

impl From<Ipv6Addr> for Host {
    fn from(ip: Ipv6Addr) -> Self {
        Self::Ip(ip.into())
    }
}

impl fmt::Display for Host {
    /// The host as a URL's authority writes it: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The longest name SOCKS5 can carry (its length is one byte); DNS allows
/// 253, so every real name fits.
pub(crate) const MAX_NAME_LEN: usize = 255;

/// Whether `b` may appear in a host name: letters, digits, `-`, `.` and
/// `_` (found in real internal names). Everything that could end a request
/// line or a header (CR, LF, space, `/`, `@`, `:`, ...) is not; an
/// internationalized name must be given in its ASCII (punycode) form.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Checks a host name before it is written to a proxy.
pub(crate) fn check_name(name: &str) -> Result<(), ProxyError> {
    if name.is_empty() {
        return Err(ProxyError::InvalidTarget("empty host name".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ProxyError::InvalidTarget(format!(
            "host name of {} bytes (at most {MAX_NAME_LEN})",
            name.len()
        )));
    }
    if let Some(b) = name.bytes().find(|&b| !is_name_byte(b)) {
        return Err(ProxyError::InvalidTarget(format!(
            "host name {name:?} has byte {b:#04x} (only letters, digits, '-', '.', '_')"
        )));
    }
    Ok(())
}

/// Checks a target before it is written to a proxy.
pub(crate) fn check_target(host: &Host, port: u16) -> Result<(), ProxyError> {
    if port == 0 {
        return Err(ProxyError::InvalidTarget("port 0".into()));
    }
    match host {
        Host::Domain(name) => check_name(name),
        Host::Ip(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_sorted_into_names_and_addresses() {
        assert_eq!(Host::new("example.com"), Host::Domain("example.com".into()));
        assert_eq!(Host::new("192.0.2.1"), Host::Ip([192, 0, 2, 1].into()));
        assert_eq!(Host::new("::1"), Host::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(Host::new("[::1]"), Host::Ip(Ipv6Addr::LOCALHOST.into()));
        // Brackets hold IPv6 only.
        assert_eq!(Host::new("[192.0.2.1]"), Host::Domain("[192.0.2.1]".into()));
        assert_eq!(Host::new("[::1"), Host::Domain("[::1".into()));
        assert_eq!(Host::Ip(Ipv6Addr::LOCALHOST.into()).to_string(), "[::1]");
    }

    #[test]
    fn names_that_could_break_a_request_are_refused() {
        for bad in [
            "",
            "a b",
            "a\r\nX: y",
            "a\nb",
            "a/b",
            "a@b",
            "a:1",
            "é.com",
            "a\0b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(255)).is_ok());
        assert!(check_name(&"a".repeat(256)).is_err());
        assert!(check_name("my_host-1.example.com.").is_ok());
        assert!(check_target(&Host::new("example.com"), 0).is_err());
    }
}
