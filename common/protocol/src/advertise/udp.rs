//! UDP advertise client (SEATTLE.md C.4): bare `serialize` datagrams with a request id.
//!
//! Like `udpcentralizedadvertise.r2py`: waits 1, 2, 4, 8 s (cut at the caller's deadline),
//! re-using the id across retries for PUT and drawing a new one per attempt for GET. Unlike
//! it, a datagram from another address or for another id is skipped rather than fatal.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::time::Instant;

use super::AdvertiseError;
use super::codec::{self, ReplyError, Request};

/// Per-attempt waits of the stock client.
pub const RETRY_WAITS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// One datagram is all a reply may be.
pub const MAX_DATAGRAM: usize = 64 * 1024;

async fn resolve<A: ToSocketAddrs>(
    server: A,
    deadline: Instant,
) -> Result<SocketAddr, AdvertiseError> {
    let mut addrs = tokio::time::timeout_at(deadline, tokio::net::lookup_host(server))
        .await
        .map_err(|_| AdvertiseError::Timeout)?
        .map_err(AdvertiseError::Resolve)?;
    addrs.next().ok_or_else(|| {
        AdvertiseError::Resolve(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })
}

/// Sends requests until a matching reply arrives. `make_request(attempt)` returns the id and
/// datagram for that attempt; `decode(reply, id)` checks a reply.
async fn exchange<T>(
    server: SocketAddr,
    deadline: Instant,
    waits: &[Duration],
    mut make_request: impl FnMut(usize) -> (u64, Vec<u8>),
    decode: impl Fn(&[u8], u64) -> Result<T, ReplyError>,
) -> Result<T, AdvertiseError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(AdvertiseError::Io)?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    for (attempt, wait) in waits.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let attempt_deadline = (now + *wait).min(deadline);
        let (id, datagram) = make_request(attempt);
        tokio::time::timeout_at(attempt_deadline, socket.send_to(&datagram, server))
            .await
            .map_err(|_| AdvertiseError::Timeout)?
            .map_err(AdvertiseError::Io)?;
        // Bounded by the attempt deadline, however many stray datagrams arrive.
        while let Ok(received) =
            tokio::time::timeout_at(attempt_deadline, socket.recv_from(&mut buf)).await
        {
            let (n, from) = received.map_err(AdvertiseError::Io)?;
            if from != server {
                continue;
            }
            match decode(&buf[..n], id) {
                Err(ReplyError::WrongId) => continue,
                other => return other.map_err(AdvertiseError::Reply),
            }
        }
    }
    Err(AdvertiseError::NoReply)
}

/// `udpcentralizedadvertise_announce`.
pub async fn udp_put<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    value: &[u8],
    ttl: u64,
    deadline: Instant,
) -> Result<(), AdvertiseError> {
    udp_put_with_waits(server, key, value, ttl, deadline, &RETRY_WAITS).await
}

/// [`udp_put`] with other retry waits (tests use short ones).
pub async fn udp_put_with_waits<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    value: &[u8],
    ttl: u64,
    deadline: Instant,
    waits: &[Duration],
) -> Result<(), AdvertiseError> {
    let server = resolve(server, deadline).await?;
    let id = u64::from(rand::random::<u32>());
    let datagram = codec::encode_udp_request(
        &Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            ttl,
        },
        id,
    );
    exchange(
        server,
        deadline,
        waits,
        |_| (id, datagram.clone()),
        codec::decode_udp_put_reply,
    )
    .await
}

/// `udpcentralizedadvertise_lookup`.
pub async fn udp_get<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    maxvals: u64,
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, AdvertiseError> {
    udp_get_with_waits(server, key, maxvals, deadline, &RETRY_WAITS).await
}

/// [`udp_get`] with other retry waits (tests use short ones).
pub async fn udp_get_with_waits<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    maxvals: u64,
    deadline: Instant,
    waits: &[Duration],
) -> Result<Vec<Vec<u8>>, AdvertiseError> {
    let server = resolve(server, deadline).await?;
    let request = Request::Get {
        key: key.to_vec(),
        maxvals,
    };
    exchange(
        server,
        deadline,
        waits,
        |_| {
            let id = u64::from(rand::random::<u32>());
            (id, codec::encode_udp_request(&request, id))
        },
        codec::decode_udp_get_reply,
    )
    .await
}
