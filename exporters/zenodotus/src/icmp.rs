//! ICMP echo without a `ping` binary: a ping socket (`SOCK_DGRAM`/`IPPROTO_ICMP`, allowed when
//! the process' group is in `net.ipv4.ping_group_range`) or, failing that, a raw socket (root
//! or `CAP_NET_RAW`).

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Which kind of ICMP socket this process may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpSocket {
    /// Unprivileged ping socket: the kernel sets the identifier and strips the IP header.
    Ping,
    /// Raw socket: we see the IP header and every ICMP packet from the peer.
    Raw,
}

fn open(kind: IcmpSocket) -> std::io::Result<Socket> {
    let ty = match kind {
        IcmpSocket::Ping => Type::DGRAM,
        IcmpSocket::Raw => Type::RAW,
    };
    Socket::new(Domain::IPV4, ty, Some(Protocol::ICMPV4))
}

/// The socket kind usable here, decided once (the sysctl and capabilities do not change under a
/// running exporter often enough to pay a socket per probe for the check).
pub fn available() -> Option<IcmpSocket> {
    static KIND: OnceLock<Option<IcmpSocket>> = OnceLock::new();
    *KIND.get_or_init(|| {
        [IcmpSocket::Ping, IcmpSocket::Raw]
            .into_iter()
            .find(|k| open(*k).is_ok())
    })
}

/// RFC 1071 checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request (type 8) with `ident`, `seq` and a short payload.
pub fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(b"seattle!");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Whether `packet` (as the socket hands it over) is the echo reply to (`ident`, `seq`).
pub fn is_echo_reply(kind: IcmpSocket, packet: &[u8], ident: u16, seq: u16) -> bool {
    let icmp = match kind {
        IcmpSocket::Ping => packet,
        IcmpSocket::Raw => {
            let ihl = packet.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
            if ihl < 20 {
                return false;
            }
            packet.get(ihl..).unwrap_or_default()
        }
    };
    let (Some(&kind_byte), Some(id), Some(sq)) = (icmp.first(), icmp.get(4..6), icmp.get(6..8))
    else {
        return false;
    };
    // The kernel rewrites a ping socket's identifier to its own; only the sequence is ours.
    kind_byte == 0
        && sq == seq.to_be_bytes()
        && (kind == IcmpSocket::Ping || id == ident.to_be_bytes())
}

/// Sends one echo request to `addr` and waits for the reply until `deadline`.
pub async fn ping(kind: IcmpSocket, addr: Ipv4Addr, deadline: Instant) -> bool {
    let Ok(socket) = open(kind) else {
        return false;
    };
    if socket.set_nonblocking(true).is_err() {
        return false;
    }
    // A datagram socket in tokio's terms: connected, so only the peer's packets arrive.
    let Ok(socket) = UdpSocket::from_std(std::net::UdpSocket::from(socket)) else {
        return false;
    };
    if socket.connect((addr, 0)).await.is_err() {
        return false;
    }
    let ident: u16 = rand::random();
    let seq: u16 = rand::random();
    if socket.send(&echo_request(ident, seq)).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    // Other ICMP traffic from the peer may arrive first; the deadline bounds the loop.
    tokio::time::timeout_at(deadline, async {
        loop {
            match socket.recv(&mut buf).await {
                Ok(n) if is_echo_reply(kind, buf.get(..n).unwrap_or_default(), ident, seq) => {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(0xbeef, 3);
        assert_eq!(checksum(&p), 0);
        assert_eq!(p[0], 8);
    }

    #[test]
    fn reply_matching() {
        let mut reply = echo_request(5, 9);
        reply[0] = 0;
        assert!(is_echo_reply(IcmpSocket::Ping, &reply, 1, 9));
        assert!(!is_echo_reply(IcmpSocket::Ping, &reply, 1, 10));
        let mut raw = vec![0x45u8; 20];
        raw.extend_from_slice(&reply);
        assert!(is_echo_reply(IcmpSocket::Raw, &raw, 5, 9));
        assert!(!is_echo_reply(IcmpSocket::Raw, &raw, 6, 9));
        // A request seen on a raw socket is not a reply.
        raw[20] = 8;
        assert!(!is_echo_reply(IcmpSocket::Raw, &raw, 5, 9));
        for cut in 0..raw.len() {
            let _ = is_echo_reply(IcmpSocket::Raw, &raw[..cut], 5, 9);
            let _ = is_echo_reply(IcmpSocket::Ping, &raw[..cut.min(10)], 5, 9);
        }
        assert!(!is_echo_reply(IcmpSocket::Raw, &[0x41, 0, 0], 5, 9));
    }

    #[tokio::test]
    async fn loopback_answers_when_icmp_is_allowed() {
        // Loopback always answers echo; without any ICMP socket there is nothing to check.
        if let Some(kind) = available() {
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            assert!(ping(kind, Ipv4Addr::LOCALHOST, deadline).await);
        }
    }
}
