//! The proxy exchange before a client's WebSocket handshake: the core's
//! sans-IO [`ProxyHandshake`], driven on the non-blocking socket like the
//! handshake after it.

use tether_core::proxy::{ProxyError, ProxyHandshake, Step};

use super::*;

/// A client's tunnel being opened.
pub(super) struct Tunnel {
    pub(super) hs: ProxyHandshake,
    /// The WebSocket request, written once the tunnel is open.
    pub(super) request: Vec<u8>,
}

impl Tunnel {
    /// Writes what the exchange asks (queued in `io.head`) and reads the
    /// proxy's replies: `true` once the tunnel is open, with the request
    /// queued in its place.
    pub(super) fn step(&mut self, io: &mut Socket, scratch: &mut [u8]) -> Result<bool, Error> {
        loop {
            if !io.write_head()? {
                return Ok(false);
            }
            let Some(n) = io.read(scratch)? else {
                return Ok(false);
            };
            if n == 0 {
                return Err(ProxyError::Eof.into());
            }
            match self.hs.handle_read(&scratch[..n])? {
                None => {}
                Some(Step::Write(bytes)) => io.head = bytes,
                Some(Step::Done(tunnel)) if tunnel.leftover.is_empty() => {
                    io.head = std::mem::take(&mut self.request);
                    return Ok(true);
                }
                Some(Step::Done(_)) => return Err(crate::proxy::early_data().into()),
            }
        }
    }
}
