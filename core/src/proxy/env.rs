//! Which proxy, if any, the environment chooses for a target, as a pure
//! function of the variables (the caller reads them).

use std::net::IpAddr;

use super::{Host, Proxy, ProxyError};

/// The proxy the environment chooses for `ws://host:port` (`secure`
/// false) or `wss://host:port` (`secure` true), or `None` for a direct
/// connection. `lookup` returns a variable's value; pass
/// `|name| std::env::var(name).ok()` for the process's environment.
///
/// The order, curl's extended to WebSocket schemes:
///
/// 1. `no_proxy`, else `NO_PROXY`: if it matches the target (see
///    [`NoProxy`]), no proxy;
/// 2. for `wss://`: `wss_proxy`, `WSS_PROXY`; for `ws://`: `ws_proxy`,
///    `WS_PROXY`;
/// 3. for `wss://`: `https_proxy`, `HTTPS_PROXY`; for `ws://`:
///    `http_proxy` only. Uppercase `HTTP_PROXY` is ignored as curl
///    ignores it: a CGI program gets a request's `Proxy:` header as
///    `HTTP_PROXY`, so a client could pick its proxy ("httpoxy");
/// 4. `all_proxy`, `ALL_PROXY`.
///
/// The first variable set wins, lowercase before uppercase; an empty
/// value (or only white space) counts as unset. Its value is parsed by
/// [`Proxy::parse`]; a bad one is an error ([`ProxyError::InvalidEnv`]),
/// not a silent direct connection.
///
/// ```
/// use tether_core::proxy::{proxy_from_env, ProxyKind};
///
/// let env = |name: &str| match name {
///     "https_proxy" => Some("http://proxy.corp:3128".to_owned()),
///     "no_proxy" => Some("localhost,.internal,10.0.0.0/8".to_owned()),
///     _ => None,
/// };
/// let proxy = proxy_from_env(true, &"example.com".into(), 443, env).unwrap().unwrap();
/// assert_eq!((proxy.kind, proxy.port), (ProxyKind::Http, 3128));
/// assert_eq!(proxy_from_env(true, &"db.internal".into(), 443, env).unwrap(), None);
/// assert_eq!(proxy_from_env(true, &"10.1.2.3".into(), 443, env).unwrap(), None);
/// assert_eq!(proxy_from_env(false, &"example.com".into(), 80, env).unwrap(), None);
/// ```
pub fn proxy_from_env<F>(
    secure: bool,
    host: &Host,
    port: u16,
    mut lookup: F,
) -> Result<Option<Proxy>, ProxyError>
where
    F: FnMut(&str) -> Option<String>,
{
    let mut get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let no_proxy = get("no_proxy").or_else(|| get("NO_PROXY"));
    if let Some(list) = no_proxy {
        if NoProxy::parse(&list).matches(host, port) {
            trace!(debug, %host, port, "no_proxy: connecting directly");
            return Ok(None);
        }
    }
    let names: &[&'static str] = if secure {
        &[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    } else {
        &[
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "all_proxy",
            "ALL_PROXY",
        ]
    };
    for &var in names {
        if let Some(value) = get(var) {
            let proxy =
                Proxy::parse(&value).map_err(|error| ProxyError::InvalidEnv { var, error })?;
            trace!(debug, var, proxy = %proxy, "proxy chosen from the environment");
            return Ok(Some(proxy));
        }
    }
    Ok(None)
}

/// A `no_proxy` list: the targets to reach without a proxy.
///
/// Entries are separated by commas or white space, and compared without
/// regard to case:
///
/// * `*` matches every target;
/// * a name matches itself and every name under it: `example.com` and
///   `.example.com` (and `*.example.com`) each match `example.com` and
///   `a.b.example.com`, not `notexample.com` (curl's reading of the
///   leading dot); a trailing dot is ignored on both sides;
/// * an IP address matches that address (`::1`, `[::1]`; an IPv4-mapped
///   IPv6 address is its IPv4 address);
/// * `addr/bits` (CIDR) matches the addresses in that range;
/// * `name:port`, `addr:port` and `[v6]:port` match only that port.
///
/// Names are not resolved: a name entry never matches a target given as an
/// address, nor an address or range entry a target given as a name.
/// Entries that parse as none of these are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Lowercase, without leading or trailing dots.
    Name(String, Option<u16>),
    Ip(IpAddr, Option<u16>),
    Cidr(IpAddr, u8),
}

impl NoProxy {
    /// Parses a `no_proxy` value.
    pub fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            if item.is_empty() {
                continue;
            }
            if item == "*" {
                out.all = true;
            } else if let Some(e) = parse_entry(item) {
                out.entries.push(e);
            }
        }
        out
    }

    /// Whether the list has no entry that can match.
    pub fn is_empty(&self) -> bool {
        !self.all && self.entries.is_empty()
    }

    /// Whether `host:port` is to be reached directly.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if self.all {
            return true;
        }
        let port_ok = |p: &Option<u16>| p.map_or(true, |p| p == port);
        match host {
            Host::Ip(ip) => {
                let ip = ip.to_canonical();
                self.entries.iter().any(|e| match e {
                    Entry::Ip(a, p) => *a == ip && port_ok(p),
                    Entry::Cidr(net, bits) => in_range(ip, *net, *bits),
                    Entry::Name(..) => false,
                })
            }
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.entries.iter().any(|e| match e {
                    Entry::Name(n, p) => {
                        port_ok(p)
                            && (name == *n
                                || name
                                    .strip_suffix(n.as_str())
                                    .is_some_and(|rest| rest.ends_with('.')))
                    }
                    Entry::Ip(..) | Entry::Cidr(..) => false,
                })
            }
        }
    }
}

fn parse_entry(item: &str) -> Option<Entry> {
    if let Some((addr, bits)) = item.split_once('/') {
        let ip = parse_ip(addr)?.to_canonical();
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        // A mapped IPv4 range written as IPv6 counts its bits from 96.
        let bits = match (addr_is_v6(addr), ip) {
            (true, IpAddr::V4(_)) => bits.checked_sub(96)?,
            _ => bits,
        };
        return (bits <= max).then_some(Entry::Cidr(ip, bits));
    }
    if let Some(ip) = parse_ip(item) {
        return Some(Entry::Ip(ip.to_canonical(), None));
    }
    let (host, port) = match item.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, Some(p.parse::<u16>().ok()?)),
        _ => (item, None),
    };
    if let Some(ip) = parse_ip(host) {
        return Some(Entry::Ip(ip.to_canonical(), port));
    }
    let name = host.strip_prefix('*').unwrap_or(host);
    let name = name.trim_matches('.').to_ascii_lowercase();
    (!name.is_empty() && !name.contains(['*', ':', '[', ']', '/']))
        .then_some(Entry::Name(name, port))
}

/// An address, IPv6 with or without brackets.
fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => s.parse().ok(),
    }
}

fn addr_is_v6(s: &str) -> bool {
    s.contains(':')
}

/// Whether `ip` lies in `net/bits` (same family only).
fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}
