//! tether's mio event loop (`tether::mio`): one thread, no futures, every
//! connection in one `Driver`. The loop is the mio example's: each message
//! is queued with `send` as it is handed over, and everything queued in a
//! pass leaves in one vectored write per connection. `tether-mio-chunks`
//! sets `deliver_chunks` and echoes each chunk as it arrives with
//! `send_chunk`, the way to stream a message larger than memory (only the
//! 16 MiB scenario runs it).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tether::mio::{Driver, Event};
use tether::tls::rustls::ServerConfig;

/// What the loop does with each connection.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Whole messages, keepalive off.
    Echo,
    /// Chunks echoed as they arrive.
    Chunks,
    /// Whole messages, keepalive on (the idle scenario).
    Keepalive,
}

pub fn serve(addr: SocketAddr, mode: Mode, tls: Option<Arc<ServerConfig>>) -> io::Result<()> {
    let mut options = match mode {
        Mode::Keepalive => super::tether::keepalive_options(),
        Mode::Echo | Mode::Chunks => super::tether::options(),
    };
    if let Mode::Chunks = mode {
        options.config.deliver_chunks = true;
    }
    let mut driver = Driver::new()?;
    let accept = |_: &_| Ok(Default::default());
    match tls {
        None => driver.listen_with(addr, options, accept)?,
        Some(tls) => driver.listen_tls_with(addr, tls, options, accept)?,
    };
    super::announce(addr);
    loop {
        driver.poll_with(None, |conns, id, event| {
            // A send fails only once the connection is closing.
            let _ = match event {
                Event::Message(m) => conns.send(id, m),
                Event::Chunk { kind, data, fin } => conns.send_chunk(id, kind, data, fin),
                _ => Ok(()),
            };
        })?;
        // Accept errors (EMFILE, say) are retried by the driver itself.
        let _ = driver.take_accept_error();
    }
}
