//! Client errors as probe failures: the protocol clients' reasons are the catalogue's words
//! (docs/metrics.md, "Probe failure reasons") already.

use seattle_exporter_toolkit::probe::ProbeFailure;
use seattle_protocol::advertise::AdvertiseError;
use seattle_protocol::nodemanager::client::ClientError;

pub fn nodemanager_failure(e: &ClientError) -> ProbeFailure {
    ProbeFailure::new(e.reason(), e.to_string())
}

pub fn advertise_failure(e: &AdvertiseError) -> ProbeFailure {
    ProbeFailure::new(e.reason(), e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io;

    use seattle_protocol::framing::FrameError;

    use super::*;

    #[test]
    fn reasons_are_catalogue_words() {
        let nm = |e: ClientError| nodemanager_failure(&e).reason;
        let adv = |e: AdvertiseError| advertise_failure(&e).reason;
        assert_eq!(nm(ClientError::ClosedWithoutReply), "connection_closed");
        assert_eq!(nm(ClientError::Framing(FrameError::BadHeader)), "framing");
        assert_eq!(nm(ClientError::Io(io::Error::other("x"))), "io_error");
        assert_eq!(
            adv(AdvertiseError::Frame(FrameError::Truncated { received: 3 })),
            "connection_closed"
        );
        assert_eq!(
            adv(AdvertiseError::Io(io::Error::from(
                io::ErrorKind::HostUnreachable
            ))),
            "unreachable"
        );
    }
}
