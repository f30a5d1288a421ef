//! TLS on the mio loop, with real parts: certificates made here with
//! rcgen, rustls on both ends, loopback sockets. The loop's client and
//! server against each other (`echo.rs`), against smol's and tokio's TLS
//! (futures-rustls), so each side is checked against another
//! implementation; refused certificates and names, mutual TLS, a peer
//! that sends garbage, cuts a record or stops mid-handshake
//! (`failures.rs`, `deadline.rs`); `wss://` through a real proxy
//! (`proxy.rs`, opt-in: it needs tinyproxy and microsocks).

#![cfg(all(
    feature = "mio",
    feature = "rustls",
    feature = "smol",
    feature = "tokio"
))]

#[path = "../tls/certs.rs"]
mod certs;
mod deadline;
mod echo;
mod failures;
#[path = "../proxies/mod.rs"]
mod proxies;
mod proxy;
mod run;
