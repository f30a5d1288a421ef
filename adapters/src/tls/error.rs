//! What failed in TLS, classified so an application (and the reconnect
//! policy) can tell a refused certificate from a lost connection without
//! reading rustls's error variants.

use std::{fmt, io};

/// Why TLS failed; see [`TlsError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate does not chain to a trusted root (a server
    /// with a private CA the client was not told to trust, or a client
    /// certificate from a CA the server does not trust).
    UnknownIssuer,
    /// The peer's certificate has expired.
    Expired,
    /// The peer's certificate is not valid yet (or a clock is wrong).
    NotYetValid,
    /// The server's certificate is not valid for the host name (or
    /// address) connected to.
    WrongName,
    /// The peer's certificate is invalid otherwise: a bad signature,
    /// revoked, issued for another purpose, malformed.
    InvalidCertificate,
    /// The peer sent no certificate: a client connecting to a server that
    /// requires one.
    NoCertificate,
    /// The peer refused our certificate, or its absence, with an alert
    /// (`certificate_required`, `unknown_ca`, `bad_certificate`,
    /// `certificate_expired`, ...): a server requiring a client
    /// certificate that was not sent or not trusted.
    CertificateRefused,
    /// The peer ended the handshake with another fatal alert (no protocol
    /// version or cipher suite in common, say).
    Alert,
    /// No trusted roots: feature `rustls` without `webpki-roots` or
    /// `rustls-native-certs`, or an OS store with no certificates, and no
    /// `ClientOptions::tls` configuration. tether never connects with an
    /// empty trust store.
    NoTrustRoots,
    /// The TLS settings cannot be used: PEM data with no certificate or
    /// key, a key that does not fit its certificate, a host that is not a
    /// valid server name.
    Config,
    /// Anything else TLS reported (a corrupt record, an unexpected message).
    Other,
}

/// A TLS failure: what kind, and rustls's own error when there is one.
#[derive(Debug, Clone)]
pub struct TlsError {
    kind: TlsErrorKind,
    detail: Option<String>,
    #[cfg(feature = "rustls")]
    source: Option<rustls::Error>,
}

impl TlsError {
    /// An error of `kind` described by `detail`.
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) fn new(kind: TlsErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: Some(detail.into()),
            #[cfg(feature = "rustls")]
            source: None,
        }
    }

    /// What failed.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// Whether a certificate was refused, on either side: the kinds from
    /// [`UnknownIssuer`](TlsErrorKind::UnknownIssuer) to
    /// [`CertificateRefused`](TlsErrorKind::CertificateRefused).
    pub fn is_certificate_error(&self) -> bool {
        use TlsErrorKind::*;
        matches!(
            self.kind,
            UnknownIssuer
                | Expired
                | NotYetValid
                | WrongName
                | InvalidCertificate
                | NoCertificate
                | CertificateRefused
        )
    }

    /// The rustls error this was classified from.
    #[cfg(feature = "rustls")]
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_ref()
    }

    /// The TLS error inside an I/O error from futures-rustls (or
    /// tokio-rustls), which wrap rustls's errors in `io::Error`; `None`
    /// when it holds none (a reset, a timeout: not TLS's failure).
    #[cfg(feature = "rustls")]
    pub fn from_io(e: &io::Error) -> Option<Self> {
        let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(Self::from(inner.clone()))
    }

    /// Without TLS in this build no I/O error carries one.
    #[cfg(not(feature = "rustls"))]
    pub(crate) fn from_io(_: &io::Error) -> Option<Self> {
        None
    }
}

#[cfg(feature = "rustls")]
impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let kind = match &e {
            E::InvalidCertificate(c) => match c {
                C::UnknownIssuer => TlsErrorKind::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => TlsErrorKind::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsErrorKind::NotYetValid,
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsErrorKind::WrongName,
                _ => TlsErrorKind::InvalidCertificate,
            },
            E::NoCertificatesPresented => TlsErrorKind::NoCertificate,
            E::AlertReceived(
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateRequired
                | A::AccessDenied,
            ) => TlsErrorKind::CertificateRefused,
            E::AlertReceived(_) => TlsErrorKind::Alert,
            E::InconsistentKeys(_) | E::NoApplicationProtocol => TlsErrorKind::Config,
            _ => TlsErrorKind::Other,
        };
        Self {
            kind,
            detail: None,
            source: Some(e),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TlsErrorKind::UnknownIssuer => "the peer's certificate is not issued by a trusted CA",
            TlsErrorKind::Expired => "the peer's certificate has expired",
            TlsErrorKind::NotYetValid => "the peer's certificate is not valid yet",
            TlsErrorKind::WrongName => {
                "the server's certificate is not valid for the name connected to"
            }
            TlsErrorKind::InvalidCertificate => "the peer's certificate is invalid",
            TlsErrorKind::NoCertificate => "the peer sent no certificate",
            TlsErrorKind::CertificateRefused => "the peer refused our certificate (or its absence)",
            TlsErrorKind::Alert => "the peer ended the TLS handshake",
            TlsErrorKind::NoTrustRoots => "no trusted root certificates",
            TlsErrorKind::Config => "unusable TLS settings",
            TlsErrorKind::Other => "TLS failed",
        };
        write!(f, "TLS: {what}")?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        #[cfg(feature = "rustls")]
        if let Some(e) = &self.source {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        #[cfg(feature = "rustls")]
        if let Some(e) = &self.source {
            return Some(e);
        }
        None
    }
}
