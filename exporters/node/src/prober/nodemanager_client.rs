//! Public node-manager calls with at most 4 connections per node IP, like
//! `seattle_protocol::nodemanager::client::Client`, except that a connection keeps its slot
//! until the node has closed it: the node manager counts a connection as pending until its
//! handler closes it, so releasing the slot as soon as the reply is read lets a fifth connection
//! race in and be dropped (seen against the simulator with 8 concurrent probes of one node).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seattle_protocol::framing::{self, FrameError};
use seattle_protocol::nodemanager::client::{
    ClientError, DEFAULT_MAX_REPLY, MAX_CONNECTIONS_PER_NODE, into_success_text,
};
use seattle_protocol::nodemanager::{GetVessels, PublicCall, Resources};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How long to wait for the node's close after its reply before giving the slot back anyway.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// Shared per-IP limiter; one for the whole exporter.
#[derive(Debug)]
pub struct NodemanagerClient {
    limits: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    max_reply: usize,
}

impl Default for NodemanagerClient {
    fn default() -> Self {
        NodemanagerClient {
            limits: Mutex::default(),
            max_reply: DEFAULT_MAX_REPLY,
        }
    }
}

fn io_error(e: std::io::Error) -> ClientError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ClientError::ConnectionRefused,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => ClientError::ConnectionReset,
        std::io::ErrorKind::TimedOut => ClientError::Timeout,
        _ => ClientError::Io(e),
    }
}

fn frame_error(e: FrameError) -> ClientError {
    match e {
        FrameError::Timeout => ClientError::Timeout,
        FrameError::TooLarge { .. } => ClientError::TooLarge,
        FrameError::ClosedWithoutData | FrameError::SessionClosed => {
            ClientError::ClosedWithoutReply
        }
        FrameError::Io(io) => io_error(io),
        other => ClientError::Framing(other),
    }
}

impl NodemanagerClient {
    fn semaphore(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_NODE)))
            .clone()
    }

    /// Forget an IP nobody is using, so the map does not grow with every node ever probed.
    fn release(&self, ip: IpAddr) {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&ip)
            && Arc::strong_count(s) == 1
            && s.available_permits() == MAX_CONNECTIONS_PER_NODE
        {
            map.remove(&ip);
        }
    }

    /// One request, one reply payload (status word included), all before `timeout`.
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
            let _permit = tokio::time::timeout_at(deadline, semaphore.acquire())
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(|_| ClientError::Timeout)?;
            let mut stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(io_error)?;
            let _ = stream.set_nodelay(true);
            framing::write_frame_until(&mut stream, request, deadline)
                .await
                .map_err(frame_error)?;
            let reply = framing::read_frame_until(&mut stream, self.max_reply, deadline)
                .await
                .map_err(frame_error)?;
            // Keep the slot until the node closes (it counts the connection until then).
            let mut byte = [0u8; 1];
            let close_by = (Instant::now() + CLOSE_WAIT).min(deadline);
            let _ = tokio::time::timeout_at(close_by, stream.read(&mut byte)).await;
            Ok(reply)
        }
        .await;
        drop(semaphore);
        self.release(addr.ip());
        result
    }

    async fn call(
        &self,
        addr: SocketAddr,
        call: &PublicCall,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        into_success_text(self.raw_call(addr, &call.encode(), timeout).await?)
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
