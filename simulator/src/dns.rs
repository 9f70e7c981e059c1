//! Zenodotus: an authoritative DNS server (UDP) answering from the central_v2 advertise table,
//! byte for byte like `zenodotus.repy` (SEATTLE.md F; golden `zenodotus_dns_udp.jsonl`).
//!
//! Queries are parsed with hickory-proto. Answers are written by hand: the real server's
//! packets have quirks (uncompressed RDATA names, an NS record repeated as "additional", MX
//! without a preference) that a general encoder would not reproduce.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use crate::advertise::Store;
use crate::scenario::Behaviour;

const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

pub struct Zenodotus {
    pub zone: String,
    pub own_ip: Ipv4Addr,
    pub store: Arc<Store>,
    /// The central_v2 server Zenodotus reads; when it does not answer, lookups SERVFAIL.
    pub advertise: Option<Arc<crate::advertise::TcpServer>>,
}

/// Copies the request with the answer flags (QR, AA, RA) and `rcode` set: how the real server
/// answers errors and NXDOMAIN (counts and every section echoed).
fn echo(req: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = req.to_vec();
    out[2] |= 0x84;
    out[3] = (out[3] & 0x70) | 0x80 | rcode;
    out
}

/// End offset of the name starting at `at` (labels up to the root or a compression pointer).
fn name_end(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xC0 != 0 {
            return Some(at + 2);
        }
        at += 1 + len;
    }
}

/// End offset of the first question (name + type + class), None if malformed.
fn question_end(req: &[u8]) -> Option<usize> {
    let i = name_end(req, 12)?;
    (i + 4 <= req.len()).then_some(i + 4)
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

/// One resource record whose owner is the question name (pointer 0xC00C), TTL 0.
fn rr(owner_ptr: u16, rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + rdata.len());
    out.extend_from_slice(&owner_ptr.to_be_bytes());
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// A value Zenodotus accepts as an address: four dot-separated integers, each below 255.
fn valid_ipv4(v: &[u8]) -> Option<[u8; 4]> {
    let s = std::str::from_utf8(v).ok()?;
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = [0u8; 4];
    for (o, p) in out.iter_mut().zip(parts) {
        let n: i64 = p.trim().parse().ok()?;
        if !(0..255).contains(&n) {
            return None;
        }
        *o = n as u8;
    }
    Some(out)
}

impl Zenodotus {
    fn advertise_answers(&self) -> bool {
        self.advertise.as_ref().is_none_or(|a| {
            matches!(
                a.behaviour(),
                Behaviour::Normal | Behaviour::Slow | Behaviour::MillionValues
            )
        })
    }

    /// The reply to one datagram, or None to stay silent.
    pub fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        if req.len() < 12 || req[2] & 0x80 != 0 {
            return None; // not a query
        }
        let Ok(msg) = Message::from_vec(req) else {
            return Some(echo(req, FORMERR));
        };
        // The real server rejects any Z/AD/CD bit and any EDNS OPT record.
        if req[3] & 0x70 != 0 || msg.edns.is_some() {
            return Some(echo(req, FORMERR));
        }
        let Some(q) = msg.queries.first() else {
            return Some(echo(req, FORMERR));
        };
        let qend = question_end(req)?;
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let zone = self.zone.to_ascii_lowercase();
        let in_zone = name == zone || name.ends_with(&format!(".{zone}"));
        let mut answers: Vec<Vec<u8>> = Vec::new();
        let mut additionals: Vec<Vec<u8>> = Vec::new();
        match q.query_type() {
            RecordType::AAAA => return Some(echo(req, FORMERR)),
            RecordType::A => {
                if !in_zone {
                    return Some(echo(req, NXDOMAIN));
                }
                if name == zone {
                    answers.push(rr(0xC00C, 1, &self.own_ip.octets()));
                } else if name == format!("localhost.{zone}") {
                    answers.push(rr(0xC00C, 1, &[127, 0, 0, 1]));
                } else {
                    if !self.advertise_answers() {
                        return Some(echo(req, SERVFAIL));
                    }
                    for v in self.store.get(name.as_bytes(), 10) {
                        if let Some(ip) = valid_ipv4(&v) {
                            answers.push(rr(0xC00C, 1, &ip));
                        }
                    }
                }
            }
            RecordType::NS if name == zone => {
                let ns = rr(0xC00C, 2, &encode_name(&zone));
                answers.push(ns.clone());
                additionals.push(ns);
            }
            RecordType::SOA if name == zone => {
                let mut rdata = encode_name("testbed-ubuntu.poly.edu");
                rdata.extend_from_slice(&encode_name("sebass63.uw.edu"));
                for n in [6u32, 10800, 900, 3_600_000, 1] {
                    rdata.extend_from_slice(&n.to_be_bytes());
                }
                // The additional A record points at the SOA's mname inside the answer RDATA.
                let mname_at = (qend + 12) as u16;
                answers.push(rr(0xC00C, 6, &rdata));
                additionals.push(rr(0xC000 | mname_at, 1, &self.own_ip.octets()));
            }
            t @ (RecordType::MX | RecordType::NS | RecordType::CNAME) if in_zone => {
                let code = u16::from(t);
                let key = format!("{t} {name}");
                for v in self.store.get(key.as_bytes(), 10) {
                    // MX without its preference field, as the real server writes it.
                    let target = String::from_utf8_lossy(&v).into_owned();
                    answers.push(rr(0xC00C, code, &encode_name(&target)));
                }
            }
            RecordType::SOA | RecordType::NS | RecordType::MX | RecordType::CNAME => {
                return Some(echo(req, NXDOMAIN));
            }
            _ => return Some(echo(req, NOTIMP)),
        }
        if answers.is_empty() {
            return Some(echo(req, NXDOMAIN));
        }
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&req[..4]);
        out[2] |= 0x84;
        out[3] = 0x80 | NOERROR;
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(additionals.len() as u16).to_be_bytes());
        out.extend_from_slice(&req[12..qend]);
        for a in answers.iter().chain(&additionals) {
            out.extend_from_slice(a);
        }
        Some(out)
    }
}

pub async fn serve(socket: UdpSocket, z: Arc<Zenodotus>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = z.answer(&buf[..n]) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// Answer records added by `oversized`: 320 × 16 bytes puts any reply over 4096 bytes.
const OVERSIZED_RECORDS: u16 = 320;

/// The Zenodotus UDP service with a fault behaviour (`/control/service` `zenodotus_dns`).
pub struct DnsService {
    pub zen: Arc<Zenodotus>,
    port: AtomicU16,
    behaviour: Mutex<Behaviour>,
    slow: Duration,
    task: Mutex<Option<AbortHandle>>,
}

impl DnsService {
    /// Binds `127.0.0.1:port` (0 = any free port) and answers normally.
    pub async fn start(zen: Arc<Zenodotus>, port: u16, slow: Duration) -> io::Result<Arc<Self>> {
        let svc = Arc::new(DnsService {
            zen,
            port: AtomicU16::new(port),
            behaviour: Mutex::new(Behaviour::Normal),
            slow,
            task: Mutex::new(None),
        });
        svc.listen().await?;
        Ok(svc)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port.load(Ordering::Relaxed)))
    }

    pub fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether Zenodotus can show `b`; TCP-only faults have no UDP meaning.
    pub fn supports(b: Behaviour) -> bool {
        matches!(
            b,
            Behaviour::Normal
                | Behaviour::Down
                | Behaviour::Slow
                | Behaviour::Hang
                | Behaviour::Garbage
                | Behaviour::Truncated
                | Behaviour::Oversized
        )
    }

    /// Switches behaviour; `down` closes the socket (clients get ICMP port unreachable),
    /// anything else reopens it on the same port.
    pub async fn set_behaviour(self: &Arc<Self>, b: Behaviour) -> io::Result<()> {
        if !Self::supports(b) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("zenodotus_dns does not do {b:?}"),
            ));
        }
        let was = std::mem::replace(
            &mut *self.behaviour.lock().unwrap_or_else(|e| e.into_inner()),
            b,
        );
        if b == Behaviour::Down {
            if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
                t.abort();
            }
        } else if was == Behaviour::Down {
            self.listen().await?;
        }
        Ok(())
    }

    async fn listen(self: &Arc<Self>) -> io::Result<()> {
        let socket = UdpSocket::bind(self.addr()).await?;
        self.port
            .store(socket.local_addr()?.port(), Ordering::Relaxed);
        let task = tokio::spawn(self.clone().serve(Arc::new(socket)));
        if let Some(old) = self
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle())
        {
            old.abort();
        }
        Ok(())
    }

    async fn serve(self: Arc<Self>, socket: Arc<UdpSocket>) {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let req = &buf[..n];
            let reply = match self.behaviour() {
                Behaviour::Normal => self.zen.answer(req),
                Behaviour::Slow => {
                    // Delayed on its own task so that one slow answer does not hold up others.
                    if let Some(reply) = self.zen.answer(req) {
                        let (socket, delay) = (socket.clone(), self.slow);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = socket.send_to(&reply, peer).await;
                        });
                    }
                    None
                }
                Behaviour::Garbage => Some(garbage(req)),
                Behaviour::Truncated => self.zen.answer(req).map(|r| truncated(&r)),
                Behaviour::Oversized => self.zen.answer(req).map(|r| oversized(&r)),
                // Hang, and anything set directly that UDP cannot show: drop the datagram.
                _ => None,
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    }
}

/// The query's id, then random bytes that claim 65535 questions: no parser can accept it, and
/// the matching id keeps a client from discarding it as a stray datagram.
fn garbage(req: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 48];
    rand::rng().fill(&mut out[..]);
    out[..2].copy_from_slice(req.get(..2).unwrap_or(&[0, 0]));
    out[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
    out
}

/// What a server sends when the answer does not fit: the header with TC set and the question,
/// every record section dropped.
fn truncated(reply: &[u8]) -> Vec<u8> {
    let mut out = reply
        .get(..question_end(reply).unwrap_or(12))
        .unwrap_or(reply)
        .to_vec();
    if out.len() >= 12 {
        out[2] |= 0x02;
        out[6..12].fill(0);
    }
    out
}

/// The reply with [`OVERSIZED_RECORDS`] more A records for the question name, so that it is
/// well-formed but larger than the 4096 bytes a client reads.
fn oversized(reply: &[u8]) -> Vec<u8> {
    let mut out = reply.to_vec();
    if out.len() < 12 || question_end(reply).is_none() {
        return out;
    }
    let ancount = u16::from_be_bytes([out[6], out[7]]).saturating_add(OVERSIZED_RECORDS);
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    // Records go after the answers already there, so before any authority or additional ones.
    let mut at = question_end(reply).unwrap_or(12);
    for _ in 0..u16::from_be_bytes([reply[6], reply[7]]) {
        at = skip_record(reply, at).unwrap_or(reply.len());
    }
    let extra: Vec<u8> = (0..OVERSIZED_RECORDS)
        .flat_map(|i| rr(0xC00C, 1, &[127, 0, (i >> 8) as u8, i as u8]))
        .collect();
    out.splice(at..at, extra);
    out
}

/// End of the resource record starting at `at` (owner name compressed or not).
fn skip_record(msg: &[u8], at: usize) -> Option<usize> {
    let at = name_end(msg, at)?;
    let rdlen = u16::from_be_bytes([*msg.get(at + 8)?, *msg.get(at + 9)?]) as usize;
    let end = at + 10 + rdlen;
    (end <= msg.len()).then_some(end)
}
