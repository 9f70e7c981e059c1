//! Advertise services (SEATTLE.md C, D): the request/reply codec for both sides, node strings,
//! and thin tokio clients (TCP, UDP, the `advertise_lookup` combiner, Affix resolution).
//!
//! Every client call takes a `tokio::time::Instant` deadline covering name resolution, connect,
//! send and receive; replies are size-capped before anything is allocated for them.

pub mod client;
pub mod codec;
pub mod lookup;
pub mod node_address;
pub mod udp;

use std::io;
use std::time::Duration;

use crate::framing::FrameError;
use crate::transport;

pub use client::{tcp_get, tcp_put};
pub use codec::{ReplyError, Request, RequestError};
pub use lookup::{AffixResolution, Lookup, LookupOptions, Service, lookup, resolve_affix};
pub use node_address::{AffixReachability, NodeAddress, NodeHost, affix_reachability};
pub use udp::{udp_get, udp_put};

/// TCP port of all advertise servers (and the UDP server's port).
pub const ADVERTISE_PORT: u16 = 10102;

/// Connect+receive timeout the stock TCP clients use.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdvertiseError {
    /// The deadline passed.
    #[error("deadline passed")]
    Timeout,
    /// The server name did not resolve to any address.
    #[error("could not resolve the server address: {0}")]
    Resolve(io::Error),
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// A socket error after connecting (UDP send/receive included).
    #[error("socket error: {0}")]
    Io(io::Error),
    /// The server closed the connection without sending anything (how repy servers reject).
    #[error("server closed the connection without a reply")]
    ClosedWithoutReply,
    /// The reply frame was malformed, too large or cut short.
    #[error("reply framing: {0}")]
    Frame(FrameError),
    /// The reply decoded to something the stock client rejects.
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyError),
    /// UDP: no matching reply after all retries.
    #[error("no reply from the UDP server")]
    NoReply,
    /// Lookup: the grace period after the first success ran out before this service answered.
    #[error("abandoned after the grace period")]
    Abandoned,
    /// Lookup: no service was given.
    #[error("no advertise service configured")]
    NoServices,
    /// Lookup: every service failed.
    #[error("no advertise service succeeded")]
    AllFailed,
}

impl AdvertiseError {
    /// A bounded snake_case word for metrics labels: the shared transport reasons of
    /// docs/metrics.md, so exporters can use it as it is.
    pub fn reason(&self) -> &'static str {
        match self {
            // A lookup abandoned after the grace period did not answer in time.
            AdvertiseError::Timeout | AdvertiseError::NoReply | AdvertiseError::Abandoned => {
                "timeout"
            }
            AdvertiseError::Resolve(_) => "resolve_failed",
            AdvertiseError::Connect(e) | AdvertiseError::Io(e) => transport::io_reason(e),
            AdvertiseError::ClosedWithoutReply => "connection_closed",
            AdvertiseError::Frame(e) => e.reason(),
            AdvertiseError::Reply(e) => e.reason(),
            AdvertiseError::NoServices | AdvertiseError::AllFailed => "lookup_failed",
        }
    }
}

impl From<FrameError> for AdvertiseError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::ClosedWithoutData => AdvertiseError::ClosedWithoutReply,
            FrameError::Timeout => AdvertiseError::Timeout,
            other => AdvertiseError::Frame(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_catalogue_words() {
        assert_eq!(
            AdvertiseError::Connect(io::Error::from(io::ErrorKind::HostUnreachable)).reason(),
            "unreachable"
        );
        assert_eq!(
            AdvertiseError::Resolve(io::Error::other("x")).reason(),
            "resolve_failed"
        );
        assert_eq!(
            AdvertiseError::Frame(FrameError::SessionClosed).reason(),
            "connection_closed"
        );
        assert_eq!(AdvertiseError::Abandoned.reason(), "timeout");
    }
}
