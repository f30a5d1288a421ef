//! The rustls configurations tether builds: the default client one from
//! the enabled roots, and client and server ones from PEM data. Every one
//! is built with an explicit crypto provider, so rustls's panic about a
//! missing process-level provider can never be reached through tether.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::{TlsError, TlsErrorKind};

/// The ALPN protocol a WebSocket opening handshake runs over (RFC 6455
/// is HTTP/1.1; RFC 8441 over HTTP/2 is another protocol).
const HTTP_1_1: &[u8] = b"http/1.1";

/// The crypto provider tether builds its configurations with: the
/// process default when the application installed one
/// (`CryptoProvider::install_default`), otherwise rustls's `ring`
/// provider.
///
/// ring offers no post-quantum key exchange (rustls 0.23.48 deprecates
/// its constructor for that reason); an application that wants
/// X25519MLKEM768 installs the aws-lc-rs provider as the process default,
/// which tether then uses, or passes its own configurations.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    static RING: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    // ring by choice: it builds with a C compiler alone (see above).
    #[allow(deprecated)]
    RING.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The client configuration `wss://` connections use when
/// `ClientOptions::tls` is `None`: the roots of the enabled features
/// (`webpki-roots`, `rustls-native-certs`, both if both), ALPN
/// `http/1.1`, no client certificate. Built once, at the first call (the
/// OS store is read then); the provider is the one in force then.
///
/// # Errors
///
/// [`TlsErrorKind::NoTrustRoots`] when no roots are enabled or found:
/// tether never connects with an empty trust store.
pub fn default_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    static DEFAULT: OnceLock<Result<Arc<ClientConfig>, TlsError>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| client_with_roots(enabled_roots()?, None))
        .clone()
}

/// A client configuration that trusts exactly the CA certificates in
/// `ca_pem` (a private CA), with ALPN `http/1.1`. Put it in
/// `ClientOptions::tls`.
///
/// ```no_run
/// # fn demo(ca_pem: &[u8]) -> Result<(), tether::Error> {
/// let tls = tether::tls::client_config(ca_pem)?;
/// let options = tether::ClientOptions::default().with_tls(tls);
/// # let _ = options; Ok(()) }
/// ```
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, TlsError> {
    client_with_roots(roots_from_pem(ca_pem)?, None)
}

/// Like [`client_config`], and presents the certificate chain in
/// `cert_chain_pem` (leaf first) with the private key in `key_pem` to a
/// server that asks for one (mutual TLS).
pub fn client_config_with_cert(
    ca_pem: &[u8],
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, TlsError> {
    let identity = (certs_from_pem(cert_chain_pem)?, key_from_pem(key_pem)?);
    client_with_roots(roots_from_pem(ca_pem)?, Some(identity))
}

/// A server configuration presenting the certificate chain in
/// `cert_chain_pem` (leaf first) with the private key in `key_pem`
/// (PKCS#8, PKCS#1 or SEC1), ALPN `http/1.1`, no client certificate
/// asked. For `accept_tls` on either runtime.
pub fn server_config(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    server(cert_chain_pem, key_pem, None)
}

/// Like [`server_config`], and requires every client to present a
/// certificate issued by a CA in `client_ca_pem` (mutual TLS): a client
/// with none, or with one from another CA, fails the TLS handshake.
pub fn server_config_with_client_auth(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    server(cert_chain_pem, key_pem, Some(client_ca_pem))
}

fn server(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs_from_pem(cert_chain_pem)?;
    let key = key_from_pem(key_pem)?;
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("crypto provider", e))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let roots = Arc::new(roots_from_pem(pem)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::new(TlsErrorKind::Config, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| config_error("certificate and key", e))?;
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

fn client_with_roots(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("crypto provider", e))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| config_error("client certificate and key", e))?,
    };
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// `config` with ALPN `http/1.1` when it offers no protocol, else itself.
/// The copy for the last configuration seen is kept, so connecting again
/// with the same `Arc` does not copy it again (nor lose the session
/// cache, which the copies share anyway).
#[cfg_attr(
    not(any(feature = "smol", feature = "tokio", feature = "mio")),
    allow(dead_code)
)]
pub(crate) fn with_http11(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    if !config.alpn_protocols.is_empty() {
        return config.clone();
    }
    // The `Weak` keeps the original's allocation, so a matching address is
    // the same configuration, never a new one at a reused address.
    static LAST: Mutex<Option<(Weak<ClientConfig>, Arc<ClientConfig>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, copy)) = &*last {
        if std::ptr::eq(seen.as_ptr(), Arc::as_ptr(config)) {
            return copy.clone();
        }
    }
    let mut copy = ClientConfig::clone(config);
    copy.alpn_protocols = vec![HTTP_1_1.to_vec()];
    let copy = Arc::new(copy);
    *last = Some((Arc::downgrade(config), copy.clone()));
    copy
}

/// The roots of the enabled root features.
fn enabled_roots() -> Result<RootCertStore, TlsError> {
    #[allow(unused_mut)]
    let mut roots = RootCertStore::empty();
    #[allow(unused_mut)]
    let mut problems: Vec<String> = Vec::new();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "rustls-native-certs")]
    {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            problems.push("the operating system's store has no usable certificate".into());
        }
        problems.extend(found.errors.iter().map(|e| e.to_string()));
    }
    if roots.is_empty() {
        let mut detail = String::from(
            "enable feature `webpki-roots` or `rustls-native-certs`, or set `ClientOptions::tls`",
        );
        for p in problems {
            detail.push_str("; ");
            detail.push_str(&p);
        }
        return Err(TlsError::new(TlsErrorKind::NoTrustRoots, detail));
    }
    Ok(roots)
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(TlsErrorKind::Config, format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            TlsErrorKind::Config,
            "no CERTIFICATE block in the PEM data",
        ));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError::new(TlsErrorKind::Config, format!("private key PEM: {e}")))
}

fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots
            .add(cert)
            .map_err(|e| config_error("CA certificate", e))?;
    }
    Ok(roots)
}

fn config_error(what: &str, e: rustls::Error) -> TlsError {
    TlsError::new(TlsErrorKind::Config, format!("{what}: {e}"))
}
