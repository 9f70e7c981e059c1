//! Maps client errors to the catalogue's bounded failure reasons (docs/metrics.md), which are
//! not always the protocol crate's own words (`closed_without_reply` → `connection_closed`,
//! `io` → `io_error`, …).

use std::io;

use seattle_exporter_toolkit::probe::ProbeFailure;
use seattle_protocol::advertise::AdvertiseError;
use seattle_protocol::framing::FrameError;
use seattle_protocol::nodemanager::client::ClientError;

/// Reason for a socket error.
pub fn io_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "connection_reset",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
        io::ErrorKind::UnexpectedEof => "connection_closed",
        _ => match e.raw_os_error() {
            // EHOSTUNREACH / ENETUNREACH on platforms where the kind is not mapped.
            Some(113) | Some(101) => "unreachable",
            _ => "io_error",
        },
    }
}

/// Reason for a framing error.
pub fn frame_reason(e: &FrameError) -> &'static str {
    match e {
        FrameError::HeaderTooLong | FrameError::BadHeader | FrameError::NegativeLength => "framing",
        FrameError::TooLarge { .. } => "too_large",
        FrameError::SessionClosed
        | FrameError::ClosedWithoutData
        | FrameError::Truncated { .. } => "connection_closed",
        FrameError::Timeout => "timeout",
        FrameError::Io(e) => io_reason(e),
    }
}

/// Reason for a node-manager call error.
pub fn nodemanager_reason(e: &ClientError) -> &'static str {
    match e {
        ClientError::Timeout => "timeout",
        ClientError::ConnectionRefused => "connection_refused",
        ClientError::ConnectionReset => "connection_reset",
        ClientError::ClosedWithoutReply => "connection_closed",
        ClientError::Framing(f) => frame_reason(f),
        ClientError::TooLarge => "too_large",
        ClientError::BadReply(_) => "bad_reply",
        ClientError::ErrorReply { .. } => "error_reply",
        ClientError::Io(e) => io_reason(e),
    }
}

/// Reason for an advertise call error.
pub fn advertise_reason(e: &AdvertiseError) -> &'static str {
    match e {
        AdvertiseError::Timeout | AdvertiseError::NoReply | AdvertiseError::Abandoned => "timeout",
        AdvertiseError::Resolve(_) => "resolve_failed",
        AdvertiseError::Connect(e) | AdvertiseError::Io(e) => io_reason(e),
        AdvertiseError::ClosedWithoutReply => "connection_closed",
        AdvertiseError::Frame(f) => frame_reason(f),
        AdvertiseError::Reply(r) => match r.reason() {
            "too_large" => "too_large",
            _ => "bad_reply",
        },
        AdvertiseError::NoServices | AdvertiseError::AllFailed => "lookup_failed",
    }
}

pub fn nodemanager_failure(e: &ClientError) -> ProbeFailure {
    ProbeFailure::new(nodemanager_reason(e), e.to_string())
}

pub fn advertise_failure(e: &AdvertiseError) -> ProbeFailure {
    ProbeFailure::new(advertise_reason(e), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_catalogue_words() {
        assert_eq!(
            nodemanager_reason(&ClientError::ClosedWithoutReply),
            "connection_closed"
        );
        assert_eq!(
            nodemanager_reason(&ClientError::Framing(FrameError::BadHeader)),
            "framing"
        );
        assert_eq!(
            nodemanager_reason(&ClientError::Io(io::Error::other("x"))),
            "io_error"
        );
        assert_eq!(
            advertise_reason(&AdvertiseError::Frame(FrameError::Truncated {
                received: 3
            })),
            "connection_closed"
        );
        assert_eq!(
            io_reason(&io::Error::from(io::ErrorKind::HostUnreachable)),
            "unreachable"
        );
    }
}
