//! A user name and password for a proxy, never printed.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::ProxyError;

/// A user name and password for a proxy. `Debug` shows the user name
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Credentials from a user name and password (already decoded: no
    /// percent-encoding here).
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `Proxy-Authorization` value (RFC 7617): `Basic` and base64 of
    /// `user:password`, as UTF-8. A user name with `:` cannot be sent:
    /// the proxy would split it there.
    pub(crate) fn basic(&self) -> Result<String, ProxyError> {
        if self.username.contains(':') {
            return Err(ProxyError::InvalidCredentials(
                "an HTTP Basic user name cannot contain ':'",
            ));
        }
        let pair = format!("{}:{}", self.username, self.password);
        Ok(format!("Basic {}", BASE64.encode(pair)))
    }

    /// The username/password sub-negotiation request of RFC 1929: version
    /// 1, then each field behind its length byte (1 to 255 bytes each).
    pub(crate) fn socks5_request(&self) -> Result<Vec<u8>, ProxyError> {
        let (user, pass) = (self.username.as_bytes(), self.password.as_bytes());
        if !(1..=255).contains(&user.len()) {
            return Err(ProxyError::InvalidCredentials(
                "a SOCKS5 user name must be 1 to 255 bytes",
            ));
        }
        if !(1..=255).contains(&pass.len()) {
            return Err(ProxyError::InvalidCredentials(
                "a SOCKS5 password must be 1 to 255 bytes",
            ));
        }
        let mut out = Vec::with_capacity(3 + user.len() + pass.len());
        out.push(1);
        out.push(user.len() as u8);
        out.extend_from_slice(user);
        out.push(pass.len() as u8);
        out.extend_from_slice(pass);
        Ok(out)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}
