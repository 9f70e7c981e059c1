//! Thin async node-manager client for the public calls (SEATTLE.md B.2–B.6, L.7).
//!
//! One request per connection; connect, write and read all run under one deadline; the reply
//! frame is capped; and at most 4 connections per node IP are open at once, because the node
//! manager closes a source IP's 5th pending connection without answering. The node counts a
//! connection until its handler closes it, after the reply, so a connection keeps its slot until
//! the node's close (or a short grace) even though the caller has its result already.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::codec::{PublicCall, Status, split_reply};
use super::getvessels::GetVessels;
use super::resources::Resources;
use crate::framing::{self, FrameError};
use crate::transport;

/// The node manager's own per-source-IP limit of pending connections.
pub const MAX_CONNECTIONS_PER_NODE: usize = 4;

/// Default reply cap: ten vessels with 4096-bit keys are ~30 KB; 4 MiB leaves room for
/// hundreds of vessels while bounding what a hostile peer can make us hold.
pub const DEFAULT_MAX_REPLY: usize = 4 * 1024 * 1024;

/// How long a connection keeps its slot after the reply, waiting for the node's close.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Longest error text kept from an error reply (for logs only).
const MAX_ERROR_TEXT: usize = 256;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("deadline passed")]
    Timeout,
    #[error("connection refused")]
    ConnectionRefused,
    #[error("connection reset")]
    ConnectionReset,
    #[error("node manager closed the connection without replying")]
    ClosedWithoutReply,
    #[error("framing error: {0}")]
    Framing(FrameError),
    #[error("reply larger than the cap")]
    TooLarge,
    #[error("reply is not what the call returns: {0}")]
    BadReply(String),
    #[error("node manager answered {status}: {text}")]
    ErrorReply { status: Status, text: String },
    #[error("i/o error: {0}")]
    Io(std::io::Error),
}

impl ClientError {
    /// Bounded snake_case word for `seattle_probe_failure_info{reason}`, in the catalogue's
    /// words (docs/metrics.md), so exporters can use it as it is.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::Timeout => "timeout",
            ClientError::ConnectionRefused => "connection_refused",
            ClientError::ConnectionReset => "connection_reset",
            ClientError::ClosedWithoutReply => "connection_closed",
            // A frame cut short is a close before the complete reply.
            ClientError::Framing(e) => e.reason(),
            ClientError::TooLarge => "too_large",
            ClientError::BadReply(_) => "bad_reply",
            ClientError::ErrorReply { .. } => "error_reply",
            ClientError::Io(e) => transport::io_reason(e),
        }
    }

    fn from_io(e: std::io::Error) -> ClientError {
        match transport::io_reason(&e) {
            "connection_refused" => ClientError::ConnectionRefused,
            "connection_reset" => ClientError::ConnectionReset,
            "timeout" => ClientError::Timeout,
            _ => ClientError::Io(e),
        }
    }

    fn from_frame(e: FrameError) -> ClientError {
        match e {
            FrameError::Timeout => ClientError::Timeout,
            FrameError::TooLarge { .. } => ClientError::TooLarge,
            FrameError::ClosedWithoutData | FrameError::SessionClosed => {
                ClientError::ClosedWithoutReply
            }
            FrameError::Io(io) => ClientError::from_io(io),
            other => ClientError::Framing(other),
        }
    }
}

/// Shared per-IP connection limiter plus settings; clone freely (clones share the limiter).
#[derive(Debug, Clone)]
pub struct Client {
    limits: Arc<Mutex<HashMap<IpAddr, Arc<Semaphore>>>>,
    per_node: usize,
    max_reply: usize,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(MAX_CONNECTIONS_PER_NODE, DEFAULT_MAX_REPLY)
    }
}

impl Client {
    /// `per_node` connections per node IP at most (clamped to 1..=4), replies up to
    /// `max_reply` bytes.
    pub fn new(per_node: usize, max_reply: usize) -> Self {
        Client {
            limits: Arc::default(),
            per_node: per_node.clamp(1, MAX_CONNECTIONS_PER_NODE),
            max_reply,
        }
    }

    fn semaphore(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_node)))
            .clone()
    }

    /// Drop the IP's entry once nobody uses it, so the map does not grow with every node ever
    /// probed.
    fn release(&self, ip: IpAddr) {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&ip)
            && Arc::strong_count(s) == 1
            && s.available_permits() == self.per_node
        {
            map.remove(&ip);
        }
    }

    /// Send one request payload and return the reply payload (status word included).
    pub async fn raw_call(
        &self,
        addr: SocketAddr,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let deadline = Instant::now() + timeout;
        let semaphore = self.semaphore(addr.ip());
        let result = async {
            // Waiting for a slot counts against the same deadline.
            let permit = tokio::time::timeout_at(deadline, semaphore.clone().acquire_owned())
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(|_| ClientError::Timeout)?;
            let mut stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(ClientError::from_io)?;
            let _ = stream.set_nodelay(true);
            framing::write_frame_until(&mut stream, request, deadline)
                .await
                .map_err(ClientError::from_frame)?;
            let reply = framing::read_frame_until(&mut stream, self.max_reply, deadline)
                .await
                .map_err(ClientError::from_frame)?;
            Ok((reply, permit, stream))
        }
        .await;
        drop(semaphore);
        match result {
            Ok((reply, permit, stream)) => {
                self.hold_until_closed(addr.ip(), permit, stream);
                Ok(reply)
            }
            Err(e) => {
                self.release(addr.ip());
                Err(e)
            }
        }
    }

    /// Keep the slot, in the background, until the node closes the connection (it counts the
    /// connection as pending until then) or the grace runs out.
    fn hold_until_closed(&self, ip: IpAddr, permit: OwnedSemaphorePermit, mut stream: TcpStream) {
        let client = self.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                // Anything the node sends after its reply is ignored; EOF or an error ends it.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            drop(stream);
            // The permit holds the semaphore: drop it before `release` counts references.
            drop(permit);
            client.release(ip);
        });
    }

    /// Make a public call; returns the reply text when the status is `Success`.
    pub async fn call(
        &self,
        addr: SocketAddr,
        call: &PublicCall,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let payload = self.raw_call(addr, &call.encode(), timeout).await?;
        into_success_text(payload)
    }

    pub async fn get_vessels(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<GetVessels, ClientError> {
        let text = self.call(addr, &PublicCall::GetVessels, timeout).await?;
        GetVessels::parse(&text).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    pub async fn get_vessel_resources(
        &self,
        addr: SocketAddr,
        vessel: &str,
        timeout: Duration,
    ) -> Result<Resources, ClientError> {
        let call = PublicCall::GetVesselResources(vessel.to_string());
        let text = self.call(addr, &call, timeout).await?;
        Resources::parse(&text).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    pub async fn get_offcut_resources(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Resources, ClientError> {
        let text = self
            .call(addr, &PublicCall::GetOffcutResources, timeout)
            .await?;
        Resources::parse(&text).map_err(|e| ClientError::BadReply(e.to_string()))
    }
}

/// Split a reply payload; `Success` gives its text, anything else an error.
pub fn into_success_text(mut payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    let reply = split_reply(&payload).map_err(|e| ClientError::BadReply(e.to_string()))?;
    match reply.status {
        Status::Success => {
            let len = reply.text.len();
            payload.truncate(len);
            Ok(payload)
        }
        status => {
            let end = reply.text.len().min(MAX_ERROR_TEXT);
            let text = String::from_utf8_lossy(reply.text.get(..end).unwrap_or_default());
            Err(ClientError::ErrorReply {
                status,
                text: text.into_owned(),
            })
        }
    }
}
