//! Exit statuses: how a session ended, for scripts to branch on.

use tether::{CloseFrame, Error};

/// The server closed with 1000 (or no code), or the session ended as asked.
pub const OK: u8 = 0;
/// A local failure: a file that cannot be read, stdin or stdout failing.
pub const FAILURE: u8 = 1;
/// Bad arguments (clap's status).
pub const USAGE: u8 = 2;
/// No connection: TCP, DNS, proxy, TLS or the opening handshake failed.
pub const CONNECT: u8 = 3;
/// The server is going away or restarting: 1001, 1012, 1013.
pub const GOING_AWAY: u8 = 4;
/// The server closed for a policy violation: 1008.
pub const POLICY: u8 = 5;
/// A protocol error, either side's: 1002, 1003, 1007, 1009-1011, 1014 and
/// the other 1xxx codes.
pub const PROTOCOL: u8 = 6;
/// The connection ended without a close frame (1006), or no pong came.
pub const ABNORMAL: u8 = 7;
/// `--timeout` expired.
pub const TIMEOUT: u8 = 8;
/// The server closed with an application code (3000-4999).
pub const APPLICATION: u8 = 9;

/// The table `--help` and the README show.
pub const HELP: &str = "\
Exit status:
  0  the server closed normally (1000 or no code), or -n/--once/EOF finished
  1  local error (a file, stdin or stdout)
  2  usage error
  3  connection failed: TCP, DNS, proxy, TLS or handshake
  4  going away: 1001, 1012 (restart), 1013 (try again later)
  5  policy violation: 1008
  6  protocol error: 1002, 1003, 1007, 1009-1011, 1014, other 1xxx
  7  abnormal: no close frame (1006), connection lost, keepalive timeout
  8  --timeout expired
  9  application close code (3000-4999)";

/// The status for the server's close frame.
pub fn for_close(frame: Option<&CloseFrame>) -> u8 {
    match frame.map(|f| f.code.0) {
        None | Some(1000) => OK,
        Some(1001 | 1012 | 1013) => GOING_AWAY,
        Some(1008) => POLICY,
        Some(1006) => ABNORMAL,
        Some(3000..=4999) => APPLICATION,
        Some(_) => PROTOCOL,
    }
}

/// The status for an error that ended an open connection.
pub fn for_session_error(e: &Error) -> u8 {
    match e.close_code().map(|c| c.0) {
        Some(1006) | None => ABNORMAL,
        // The keepalive's 1011: the peer stopped answering.
        Some(1011) if matches!(e, Error::WebSocket(tether::core::Error::KeepaliveTimeout)) => {
            ABNORMAL
        }
        Some(code) => for_close(Some(&CloseFrame {
            code: code.into(),
            reason: String::new(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> u8 {
        for_close(Some(&CloseFrame {
            code: code.into(),
            reason: String::new(),
        }))
    }

    #[test]
    fn close_codes() {
        assert_eq!(for_close(None), OK);
        assert_eq!(close(1000), OK);
        assert_eq!(close(1001), GOING_AWAY);
        assert_eq!(close(1008), POLICY);
        for code in [1002, 1003, 1007, 1009, 1010, 1011, 1014] {
            assert_eq!(close(code), PROTOCOL, "{code}");
        }
        assert_eq!(close(4000), APPLICATION);
        let cut = Error::WebSocket(tether::core::Error::AbnormalClosure);
        assert_eq!(for_session_error(&cut), ABNORMAL);
        let ka = Error::WebSocket(tether::core::Error::KeepaliveTimeout);
        assert_eq!(for_session_error(&ka), ABNORMAL);
    }
}
