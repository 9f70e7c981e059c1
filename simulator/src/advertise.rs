//! The advertise services: `advertiseserver_v2.r2py` semantics over TCP (session framing +
//! serialize, one request per connection) and `udpadvertiseserver.repy` over UDP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::scenario::Behaviour;

/// Cap on one request: real requests are keys and node strings, well under this.
const MAX_REQUEST: usize = 1 << 20;

/// Seconds on a clock the control API can move forward (to expire TTLs without waiting).
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    offset_ms: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            start: Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }
}

impl Clock {
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() + self.offset_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
    pub fn advance(&self, secs: f64) {
        self.offset_ms
            .fetch_add((secs.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
    }
}

struct Entry {
    value: Vec<u8>,
    expires: f64,
}

/// The values of one key in insertion order, indexed by value: a PUT of an existing value
/// must not scan the list (the v2 key and `%all` hold one value per node).
#[derive(Default)]
struct Values {
    list: Vec<Entry>,
    index: HashMap<Vec<u8>, usize>,
}

impl Values {
    fn put(&mut self, value: &[u8], expires: f64) {
        match self.index.get(value) {
            Some(&i) => self.list[i].expires = self.list[i].expires.max(expires),
            None => {
                self.index.insert(value.to_vec(), self.list.len());
                self.list.push(Entry {
                    value: value.to_vec(),
                    expires,
                });
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let before = self.list.len();
        self.list.retain(keep);
        if self.list.len() != before {
            self.index = self
                .list
                .iter()
                .enumerate()
                .map(|(i, e)| (e.value.clone(), i))
                .collect();
        }
    }
}

/// One server's table. `honour_maxvals`: the UDP server does, the v2 TCP server does not.
pub struct Store {
    map: Mutex<HashMap<Vec<u8>, Values>>,
    pub clock: Arc<Clock>,
    honour_maxvals: bool,
}

impl Store {
    pub fn new(clock: Arc<Clock>, honour_maxvals: bool) -> Store {
        Store {
            map: Mutex::new(HashMap::new()),
            clock,
            honour_maxvals,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Values>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// PUT: the value goes under `key` and under `%all`; an existing (key, value) stays in place
    /// and its TTL is only ever raised (advertiseserver_v2 semantics).
    pub fn put(&self, key: &[u8], value: &[u8], ttl: f64) {
        let expires = self.clock.now() + ttl;
        let mut map = self.lock();
        for k in [key, b"%all".as_slice()] {
            match map.get_mut(k) {
                Some(v) => v.put(value, expires),
                None => map.entry(k.to_vec()).or_default().put(value, expires),
            }
        }
    }

    /// Removes one (key, value) pair now (a node withdrawn by the control API).
    pub fn remove(&self, key: &[u8], value: &[u8]) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(key) {
            list.retain(|e| e.value != value);
        }
        // %all is deduplicated by value: drop it only when no other key still holds it.
        let still = map
            .iter()
            .any(|(k, l)| k.as_slice() != b"%all" && l.index.contains_key(value));
        if !still && let Some(list) = map.get_mut(b"%all".as_slice()) {
            list.retain(|e| e.value != value);
        }
    }

    pub fn get(&self, key: &[u8], maxvals: usize) -> Vec<Vec<u8>> {
        let now = self.clock.now();
        let map = self.lock();
        let live = map
            .get(key)
            .into_iter()
            .flat_map(|v| v.list.iter())
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone());
        if self.honour_maxvals {
            live.take(maxvals).collect()
        } else {
            live.collect()
        }
    }

    pub fn purge(&self) {
        let now = self.clock.now();
        let mut map = self.lock();
        map.retain(|_, l| {
            l.retain(|e| e.expires > now);
            !l.list.is_empty()
        });
    }

    pub fn key_count(&self) -> usize {
        self.lock().len()
    }
}

pub use seattle_protocol::advertise::codec::Request;
use seattle_protocol::advertise::codec::{
    decode_request, decode_udp_request, encode_get_reply, encode_put_reply, encode_udp_get_reply,
    encode_udp_put_reply,
};
use seattle_protocol::serialize::Value;

/// Decodes a TCP request as `advertiseserver_v2.r2py` accepts it; None = close with 0 bytes.
pub fn decode_tcp(payload: &[u8]) -> Option<Request> {
    decode_request(payload).ok()
}

/// Applies one request to `store` and encodes the answer (UDP form when `udp_id` is given).
pub fn handle(store: &Store, req: Request, udp_id: Option<&Value>) -> Vec<u8> {
    match req {
        Request::Put { key, value, ttl } => {
            store.put(&key, &value, ttl as f64);
            match udp_id {
                None => encode_put_reply(),
                Some(id) => encode_udp_put_reply(id),
            }
        }
        Request::Get { key, maxvals } => {
            let values = store.get(&key, usize::try_from(maxvals).unwrap_or(usize::MAX));
            match udp_id {
                None => encode_get_reply(&values),
                Some(id) => encode_udp_get_reply(&values, id),
            }
        }
    }
}

/// The "million values" hostile GET answer, built once per connection.
fn million_values() -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..1_000_000u32)
        .map(|i| format!("10.{}.{}.{}:1224", i >> 16, (i >> 8) & 255, i & 255).into_bytes())
        .collect();
    encode_get_reply(&values)
}

pub struct TcpServer {
    pub store: Arc<Store>,
    pub behaviour: Mutex<Behaviour>,
    pub slow_delay: Duration,
}

impl TcpServer {
    pub fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub async fn serve_tcp(listener: TcpListener, server: Arc<TcpServer>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move { tcp_conn(stream, server).await });
    }
}

async fn tcp_conn(mut stream: TcpStream, server: Arc<TcpServer>) {
    let behaviour = server.behaviour();
    if behaviour == Behaviour::Down {
        // A "down" advertise server the control API switched on: close at once.
        return;
    }
    if behaviour == Behaviour::Hang {
        crate::hostile::hold(&mut stream).await;
        return;
    }
    // The repy server's socket timeout: a client that never completes its request is dropped.
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        seattle_protocol::framing::read_frame(&mut stream, MAX_REQUEST),
    )
    .await;
    let Ok(Ok(payload)) = read else {
        return;
    };
    let Some(req) = decode_tcp(&payload) else {
        return; // Bad request: close with 0 bytes, like the real server.
    };
    let reply = if behaviour == Behaviour::MillionValues && matches!(req, Request::Get { .. }) {
        million_values()
    } else {
        handle(&server.store, req, None)
    };
    let framed = seattle_protocol::framing::encode_frame(&reply);
    crate::hostile::send(&mut stream, &framed, behaviour, server.slow_delay).await;
}

pub struct UdpServer {
    pub store: Arc<Store>,
    pub behaviour: Mutex<Behaviour>,
}

pub async fn serve_udp(socket: UdpSocket, server: Arc<UdpServer>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let behaviour = *server.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        // Bad requests are dropped silently, like udpadvertiseserver.
        let Ok((req, id)) = decode_udp_request(&buf[..n]) else {
            continue;
        };
        let reply = handle(&server.store, req, Some(&id));
        udp_reply(&socket, reply, peer, behaviour).await;
    }
}

async fn udp_reply(socket: &Arc<UdpSocket>, reply: Vec<u8>, peer: SocketAddr, b: Behaviour) {
    match b {
        Behaviour::Down | Behaviour::Hang => {}
        Behaviour::Slow | Behaviour::Drip => {
            let s = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = s.send_to(&reply, peer).await;
            });
        }
        Behaviour::Garbage | Behaviour::HugeHeader => {
            let _ = socket.send_to(b"\x00\xffGARBAGE", peer).await;
        }
        Behaviour::Reset => {
            let _ = socket.send_to(&reply[..reply.len() / 2], peer).await;
        }
        Behaviour::Normal
        | Behaviour::MillionValues
        | Behaviour::Truncated
        | Behaviour::Oversized => {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_the_real_server_rejects() {
        for bad in [
            b"T4:SDEL11:Sgolden-key0:".as_slice(),
            b"SGET",
            b"T4:SPUT2:Sk2:Sv2:I00:",
            b"T4:SPUT2:Sk2:Sv3:I-50:",
            b"T4:SPUT2:Sk2:Sv5:F60.00:",
            b"T4:SPUT2:I72:Sv3:I600:",
            b"T4:SPUT2:Sk2:Sv0:",
            b"T4:SGET2:Sk4:S1000:",
            b"T4:SGET2:Sk2:I00:",
            b"Zjunk",
            b"L4:SGET11:Sgolden-key4:I1000:",
            b"T4:SPUT2:Sk2:Sv3:I603:Sid0:",
            b"",
        ] {
            assert_eq!(decode_tcp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(decode_tcp(b"T4:SGET11:Sgolden-key22:I1000000000000000000000:").is_some());
    }

    #[test]
    fn put_get_ttl_and_all() {
        let clock = Arc::new(Clock::default());
        let s = Store::new(clock.clone(), false);
        s.put(b"k", b"a", 60.0);
        s.put(b"k", b"b", 2.0);
        s.put(b"k", b"a", 90.0);
        s.put(b"j", b"a", 60.0);
        assert_eq!(s.get(b"k", 1), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(s.get(b"%all", 100), vec![b"a".to_vec(), b"b".to_vec()]);
        clock.advance(3.0);
        assert_eq!(s.get(b"k", 100), vec![b"a".to_vec()]);
    }
}
