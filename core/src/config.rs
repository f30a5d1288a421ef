//! Limits and timers of a connection.

use std::time::Duration;

/// Shortest keepalive interval: pings at most this often.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);

/// Settings of one WebSocket connection after the handshake.
///
/// Every buffer the connection keeps has a limit here, so a peer cannot
/// make it grow without bound. Durations too large for the clock (such as
/// `Duration::MAX`) saturate to a deadline a century away: "never".
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame payload accepted; larger closes with 1009.
    pub max_frame_size: usize,
    /// Largest message accepted (all fragments together); larger closes
    /// with 1009. Not applied to messages received as chunks, which are
    /// never held whole.
    pub max_message_size: usize,
    /// Outgoing messages larger than this are sent as several frames, so
    /// control frames (pings, pongs, close) go out between them rather than
    /// waiting behind a large message.
    pub fragment_size: usize,
    /// Size of the buffer [`Connection::read_buf`](crate::Connection::read_buf)
    /// offers between frames (inside a large frame it offers up to the rest
    /// of that frame's payload). [`Connection::read_with`](crate::Connection::read_with)
    /// reads into the caller's scratch buffer first and uses `read_buf`
    /// only while data streams.
    pub read_chunk_size: usize,
    /// Deliver data messages as [`Event::Chunk`](crate::Event::Chunk)s as
    /// their bytes arrive instead of whole, for messages larger than memory.
    pub deliver_chunks: bool,
    /// Stop asking for input while this many bytes of received messages
    /// wait for the application (`wants_read()` turns false); TCP then slows
    /// the peer down.
    pub max_inbound_bytes: usize,
    /// Likewise, a limit on the number of events waiting.
    pub max_inbound_events: usize,
    /// Writers should wait while more than this many bytes are queued for
    /// the socket ([`Connection::is_writable`](crate::Connection::is_writable)).
    pub write_high_water: usize,
    /// Once above the high mark, writers wait until the queue drains below
    /// this.
    pub write_low_water: usize,
    /// Send a ping after this long without one; `None` disables keepalive.
    pub ping_interval: Option<Duration>,
    /// Fail the connection with 1011 when a ping has had no matching pong
    /// for this long; `None` sends pings but never fails on them.
    pub ping_timeout: Option<Duration>,
    /// After sending a close frame, how long to wait for the peer's close
    /// (and, as a client, for the server to end TCP) before dropping TCP.
    pub close_timeout: Duration,
    /// Close with 1001 after this long without any byte from the peer
    /// (keepalive pongs count, so with keepalive on this only fires when
    /// the peer stops answering but keeps TCP up); `None` never does.
    pub idle_timeout: Option<Duration>,
}

crate::__with_setters!(Config {
    with_max_frame_size => max_frame_size: usize,
    with_max_message_size => max_message_size: usize,
    with_fragment_size => fragment_size: usize,
    with_read_chunk_size => read_chunk_size: usize,
    with_deliver_chunks => deliver_chunks: bool,
    with_max_inbound_bytes => max_inbound_bytes: usize,
    with_max_inbound_events => max_inbound_events: usize,
    with_write_high_water => write_high_water: usize,
    with_write_low_water => write_low_water: usize,
    with_ping_interval => ping_interval: Option<Duration>,
    with_ping_timeout => ping_timeout: Option<Duration>,
    with_close_timeout => close_timeout: Duration,
    with_idle_timeout => idle_timeout: Option<Duration>,
});

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            fragment_size: 1 << 20,
            read_chunk_size: 16 << 10,
            deliver_chunks: false,
            max_inbound_bytes: 1 << 20,
            max_inbound_events: 1024,
            write_high_water: 1 << 20,
            write_low_water: 256 << 10,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            close_timeout: Duration::from_secs(10),
            idle_timeout: None,
        }
    }
}

impl Config {
    /// No keepalive pings; otherwise the defaults.
    pub fn without_keepalive() -> Self {
        Self {
            ping_interval: None,
            ping_timeout: None,
            ..Self::default()
        }
    }

    /// Zero sizes would stall the connection (nothing framed, nothing
    /// read) and a zero ping interval would ping on every timer call; they
    /// are raised to the smallest working value, and the low water mark is
    /// kept at or below the high one.
    pub(crate) fn sanitized(mut self) -> Self {
        self.ping_interval = self.ping_interval.map(|i| i.max(MIN_PING_INTERVAL));
        self.fragment_size = self.fragment_size.max(1);
        self.read_chunk_size = self.read_chunk_size.max(1);
        self.max_inbound_bytes = self.max_inbound_bytes.max(1);
        self.max_inbound_events = self.max_inbound_events.max(1);
        self.write_low_water = self.write_low_water.min(self.write_high_water);
        self
    }
}
