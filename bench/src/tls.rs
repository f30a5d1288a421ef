//! The TLS side of the benchmark: one self-signed certificate for
//! 127.0.0.1 made at start-up, the servers' and the load generator's
//! rustls configurations, and a description of what a connection
//! negotiated.
//!
//! Every TLS server and the load generator use rustls 0.23 with its `ring`
//! provider and its default protocol versions, cipher suites and key
//! exchange groups, so every server negotiates the same parameters (the
//! load generator records them and the report prints them).

use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, CommonState, RootCertStore, ServerConfig};

/// The certificate's file in a TLS directory (PEM).
pub const CERT_FILE: &str = "cert.pem";
/// The private key's file in a TLS directory (PEM, PKCS#8).
pub const KEY_FILE: &str = "key.pem";

/// Makes a self-signed certificate for 127.0.0.1 and its key in `dir`,
/// unless both are there already (so that a server started by hand and
/// its load generator can be given the same directory). The files are
/// written under temporary names and renamed, so a reader never sees half.
pub fn ensure_identity(dir: &Path) -> io::Result<()> {
    if dir.join(CERT_FILE).is_file() && dir.join(KEY_FILE).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    // ECDSA P-256 (rcgen's default): the key type most servers present.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .map_err(io::Error::other)?;
    let tmp = format!(".tmp-{}", std::process::id());
    for (name, pem) in [
        (KEY_FILE, made.signing_key.serialize_pem()),
        (CERT_FILE, made.cert.pem()),
    ] {
        let path = dir.join(format!("{name}{tmp}"));
        std::fs::write(&path, pem)?;
        std::fs::rename(&path, dir.join(name))?;
    }
    Ok(())
}

/// The certificate and key PEM in `dir`.
pub fn read_identity(dir: &Path) -> io::Result<(Vec<u8>, Vec<u8>)> {
    Ok((
        std::fs::read(dir.join(CERT_FILE))?,
        std::fs::read(dir.join(KEY_FILE))?,
    ))
}

/// rustls's `ring` provider with its defaults, as tether builds its own
/// configurations with (`tether::tls::crypto_provider`, no process default
/// installed here).
fn provider() -> Arc<CryptoProvider> {
    // Deprecated only for lacking post-quantum key exchange; tether uses it.
    #[allow(deprecated)]
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// The server configuration of the servers that are not tether's, as
/// tokio-rustls's example server builds it: default versions, no client
/// certificate, the one certificate. (tether's servers use
/// `tether::tls::server_config`, the same but for ALPN `http/1.1`, which
/// the load generator does not offer.)
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(io::Error::other)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(config))
}

/// The load generator's configuration: it trusts exactly the certificate
/// in `cert_pem`, offers no ALPN and presents no certificate.
pub fn client_config(cert_pem: &[u8]) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots
            .add(cert.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a connection negotiated: `TLSv1_3 TLS13_AES_256_GCM_SHA384
/// secp384r1`.
pub fn negotiated(conn: &CommonState) -> String {
    let version = conn
        .protocol_version()
        .map_or_else(|| "?".into(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "?".into(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or_else(|| "?".into(), |g| format!("{:?}", g.name()));
    format!("{version} {suite} {group}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_builds_both_configurations() {
        let dir =
            std::env::temp_dir().join(format!("tether-bench-tls-test-{}", std::process::id()));
        ensure_identity(&dir).unwrap();
        let (cert, key) = read_identity(&dir).unwrap();
        // A second call keeps the files.
        ensure_identity(&dir).unwrap();
        assert_eq!(read_identity(&dir).unwrap().0, cert);
        server_config(&cert, &key).unwrap();
        tether::tls::server_config(&cert, &key).unwrap();
        client_config(&cert).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
