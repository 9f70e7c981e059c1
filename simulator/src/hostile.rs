//! Ways a service answers instead of normally: the exporters' robustness tests drive these.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::Behaviour;

/// Longest we keep a connection we never intend to answer (bounds leaked tasks).
const HOLD_LIMIT: Duration = Duration::from_secs(600);

/// Keeps a connection open without answering until the peer closes it (or [`HOLD_LIMIT`]).
pub async fn hold(stream: &mut TcpStream) {
    let _ = tokio::time::timeout(HOLD_LIMIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Sends `reply` (already framed, if the protocol frames) the way `behaviour` says, then returns;
/// the caller closes the connection by dropping it.
pub async fn send(stream: &mut TcpStream, reply: &[u8], behaviour: Behaviour, slow: Duration) {
    match behaviour {
        // Truncated and Oversized are Zenodotus faults; control and scenario refuse them here.
        Behaviour::Normal
        | Behaviour::Down
        | Behaviour::MillionValues
        | Behaviour::Truncated
        | Behaviour::Oversized => {
            let _ = stream.write_all(reply).await;
        }
        Behaviour::Slow => {
            tokio::time::sleep(slow).await;
            let _ = stream.write_all(reply).await;
        }
        Behaviour::Hang => hold(stream).await,
        Behaviour::Drip => {
            for b in reply {
                if stream.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Behaviour::HugeHeader => {
            if stream.write_all(b"9999999999999999999\n").await.is_ok() {
                hold(stream).await;
            }
        }
        Behaviour::Garbage => {
            let _ = stream
                .write_all(b"\x00\xff\xfeGARBAGE\x01\x02 not a frame \xc3\x28\n\n\x7f")
                .await;
        }
        Behaviour::Reset => {
            let half = &reply[..reply.len() / 2];
            let _ = stream.write_all(half).await;
            let _ = stream.flush().await;
            // Zero linger turns the close into a RST.
            let _ = stream.set_zero_linger();
        }
    }
}
