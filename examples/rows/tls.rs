//! `million-rows --tls`: a certificate made at start-up, and the two sides'
//! configurations, the client trusting that certificate alone.

use std::path::Path;
use std::sync::Arc;

use tether::tls::rustls;

use super::db::BoxError;

/// A self-signed certificate for `localhost` and `127.0.0.1`, written to
/// `dir` as `tls-cert.pem` and `tls-key.pem` (the server child reads them).
pub fn make_cert(dir: &Path) -> Result<(), BoxError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(dir.join("tls-cert.pem"), cert.cert.pem())?;
    std::fs::write(dir.join("tls-key.pem"), cert.signing_key.serialize_pem())?;
    Ok(())
}

/// The server's configuration from the files [`make_cert`] wrote.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let cert = std::fs::read(dir.join("tls-cert.pem"))?;
    let key = std::fs::read(dir.join("tls-key.pem"))?;
    Ok(tether::tls::server_config(&cert, &key)?)
}

/// A client configuration that trusts the certificate in `dir` and no
/// other: no system or compiled-in roots.
pub fn client_config(dir: &Path) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let cert = std::fs::read(dir.join("tls-cert.pem"))?;
    Ok(tether::tls::client_config(&cert)?)
}
