//! TCP advertise client (SEATTLE.md C.2): one framed request, one framed reply per connection.

use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::Instant;

use super::AdvertiseError;
use super::codec::{self, Request};
use crate::framing::{read_frame, write_frame};

/// Sends one request and returns the reply payload. Everything (resolve, connect, send,
/// receive) happens before `deadline`; the reply may not exceed `max_reply` bytes.
pub async fn tcp_request<A: ToSocketAddrs>(
    server: A,
    request: &[u8],
    max_reply: usize,
    deadline: Instant,
) -> Result<Vec<u8>, AdvertiseError> {
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(AdvertiseError::Connect)?;
        // One small request: don't let Nagle hold it back.
        let _ = stream.set_nodelay(true);
        write_frame(&mut stream, request).await?;
        Ok(read_frame(&mut stream, max_reply).await?)
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or(Err(AdvertiseError::Timeout))
}

/// `centralizedadvertise_announce`: PUT `value` under `key` for `ttl` seconds.
pub async fn tcp_put<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    value: &[u8],
    ttl: u64,
    deadline: Instant,
) -> Result<(), AdvertiseError> {
    let request = codec::encode_request(&Request::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        ttl,
    });
    // A PUT reply is `SOK`; anything much longer is not a reply we accept anyway.
    let reply = tcp_request(server, &request, 4096, deadline).await?;
    Ok(codec::decode_put_reply(&reply)?)
}

/// `centralizedadvertise_lookup`: GET up to `maxvals` values under `key` (servers may ignore
/// `maxvals`; `max_reply` caps the reply size).
pub async fn tcp_get<A: ToSocketAddrs>(
    server: A,
    key: &[u8],
    maxvals: u64,
    max_reply: usize,
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, AdvertiseError> {
    let request = codec::encode_request(&Request::Get {
        key: key.to_vec(),
        maxvals,
    });
    let reply = tcp_request(server, &request, max_reply, deadline).await?;
    Ok(codec::decode_get_reply(&reply)?)
}
