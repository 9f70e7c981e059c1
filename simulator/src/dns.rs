//! Zenodotus: an authoritative DNS server (UDP) answering from the central_v2 advertise table,
//! byte for byte like `zenodotus.repy` (SEATTLE.md F; golden `zenodotus_dns_udp.jsonl`).
//!
//! Queries are parsed with hickory-proto. Answers are written by hand: the real server's
//! packets have quirks (uncompressed RDATA names, an NS record repeated as "additional", MX
//! without a preference) that a general encoder would not reproduce.

use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::advertise::Store;

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

/// End offset of the first question (name + type + class), None if malformed.
fn question_end(req: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = *req.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xC0 != 0 {
            i += 2;
            break;
        }
        i += 1 + len;
    }
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
        use crate::scenario::Behaviour;
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
