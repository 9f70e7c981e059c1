//! The catalogue's shared transport reasons (docs/metrics.md, "Probe failure reasons"):
//! `resolve_failed unreachable connection_refused timeout connection_reset connection_closed
//! io_error`. Every client in this crate, and every exporter that opens its own sockets, maps
//! socket errors through [`io_reason`] so one error always gets one word.

use std::io;

/// The catalogue's transport reason for a socket error.
pub fn io_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "connection_reset",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::AddrNotAvailable => "unreachable",
        io::ErrorKind::UnexpectedEof => "connection_closed",
        _ => match e.raw_os_error() {
            // EHOSTUNREACH / ENETUNREACH where the kind is not mapped.
            Some(113) | Some(101) => "unreachable",
            _ => "io_error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_map_to_the_catalogue_words() {
        let kind = |k: io::ErrorKind| io_reason(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), "connection_refused");
        assert_eq!(kind(io::ErrorKind::ConnectionReset), "connection_reset");
        assert_eq!(kind(io::ErrorKind::BrokenPipe), "connection_reset");
        assert_eq!(kind(io::ErrorKind::TimedOut), "timeout");
        assert_eq!(kind(io::ErrorKind::HostUnreachable), "unreachable");
        assert_eq!(kind(io::ErrorKind::AddrNotAvailable), "unreachable");
        assert_eq!(kind(io::ErrorKind::UnexpectedEof), "connection_closed");
        assert_eq!(kind(io::ErrorKind::Other), "io_error");
        assert_eq!(io_reason(&io::Error::from_raw_os_error(113)), "unreachable");
    }
}
