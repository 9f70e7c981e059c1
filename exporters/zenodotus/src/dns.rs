//! Plain RFC 1035 queries over one UDP socket, and the checks made on their answers.
//!
//! Zenodotus answers FORMERR to any query with EDNS or the AD, CD or Z bit (SEATTLE.md F), so
//! queries carry RD only. Each probe sends its own datagrams (no resolver, no cache): a random id
//! per attempt, one retry within the deadline, and an answer is only taken when its id, QR bit,
//! opcode and question match.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Largest reply read. Zenodotus never sends more than a few hundred bytes; anything longer is
/// reported, not parsed.
pub const MAX_REPLY: usize = 4096;

/// The first attempt waits at most this long before the one retry is sent.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a query got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no answer before the deadline")]
    Timeout,
    #[error("the server refused (ICMP port unreachable)")]
    Refused,
    #[error("network or host unreachable")]
    Unreachable,
    #[error("socket error: {0}")]
    Io(std::io::Error),
    #[error("malformed answer: {0}")]
    BadReply(String),
    #[error("answer has the TC bit set")]
    Truncated,
    #[error("answer larger than {MAX_REPLY} bytes")]
    TooLarge,
}

impl DnsError {
    /// Bounded reason word (docs/metrics.md).
    pub fn reason(&self) -> &'static str {
        match self {
            DnsError::Timeout => "timeout",
            DnsError::Refused => "connection_refused",
            DnsError::Unreachable => "unreachable",
            DnsError::Io(_) => "io_error",
            DnsError::BadReply(_) => "bad_reply",
            DnsError::Truncated => "truncated",
            DnsError::TooLarge => "too_large",
        }
    }

    pub(crate) fn from_io(e: std::io::Error) -> DnsError {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => DnsError::Refused,
            HostUnreachable | NetworkUnreachable => DnsError::Unreachable,
            TimedOut => DnsError::Timeout,
            _ => DnsError::Io(e),
        }
    }
}

/// The rcode stateset's values and the matching failure reasons.
pub const RCODES: [&str; 7] = [
    "NOERROR", "NXDOMAIN", "SERVFAIL", "FORMERR", "NOTIMP", "REFUSED", "other",
];

/// `rcode` label of a response code.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "other",
    }
}

/// Failure reason of a response code other than NOERROR.
pub fn rcode_reason(rcode: ResponseCode) -> Option<&'static str> {
    match rcode {
        ResponseCode::NoError => None,
        ResponseCode::NXDomain => Some("nxdomain"),
        ResponseCode::ServFail => Some("servfail"),
        ResponseCode::FormErr => Some("formerr"),
        ResponseCode::NotImp => Some("notimp"),
        ResponseCode::Refused => Some("refused"),
        _ => Some("rcode_other"),
    }
}

/// Parses a probe target as an absolute DNS name (a trailing dot is optional).
pub fn parse_name(target: &str) -> Option<Name> {
    let t = target.trim();
    // Host-name characters only: a URL, `host:port` or free text is a mistaken target, not a
    // name to ask Zenodotus about.
    let host_chars = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if t.is_empty() || t.len() > 254 || !host_chars {
        return None;
    }
    let mut name = Name::from_ascii(t).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Encodes a query: RD set, AD/CD/Z clear, no EDNS (what Zenodotus accepts).
pub fn encode_query(id: u16, name: &Name, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), rtype));
    msg.to_vec()
        .map_err(|e| DnsError::BadReply(format!("cannot encode the query: {e}")))
}

/// What an answer says, reduced to what the probe exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// Records of the asked type in the answer section.
    pub records: usize,
    /// Addresses of the A records in the answer section, in order, with repeats.
    pub addresses: Vec<Ipv4Addr>,
}

/// Checks that `reply` answers the query (`ids`, `name`, `rtype`) and reduces it.
pub fn decode_answer(
    reply: &[u8],
    ids: &[u16],
    name: &Name,
    rtype: RecordType,
) -> Result<Answer, DnsError> {
    let msg = Message::from_vec(reply).map_err(|e| DnsError::BadReply(e.to_string()))?;
    let meta = &msg.metadata;
    if meta.message_type != MessageType::Response {
        return Err(DnsError::BadReply("QR bit clear".into()));
    }
    if !ids.contains(&meta.id) {
        return Err(DnsError::BadReply(format!("unexpected id {}", meta.id)));
    }
    if meta.op_code != OpCode::Query {
        return Err(DnsError::BadReply("opcode is not QUERY".into()));
    }
    match msg.queries.as_slice() {
        [q] if q.name() == name && q.query_type() == rtype && q.query_class() == DNSClass::IN => {}
        // Error answers may leave the question out (RFC 1035 allows it).
        [] if meta.response_code != ResponseCode::NoError => {}
        _ => return Err(DnsError::BadReply("question does not match".into())),
    }
    if meta.truncation {
        return Err(DnsError::Truncated);
    }
    let mut records = 0;
    let mut addresses = Vec::new();
    for r in &msg.answers {
        if r.record_type() != rtype {
            continue;
        }
        records += 1;
        if let RData::A(a) = &r.data {
            addresses.push(a.0);
        }
    }
    Ok(Answer {
        rcode: meta.response_code,
        records,
        addresses,
    })
}

/// Ids of earlier queries remembered per socket, to skip their late answers.
const EARLIER_IDS: usize = 64;

/// The probe's one UDP socket, connected to the server, with its receive buffer.
pub struct QuerySocket {
    socket: UdpSocket,
    /// `MAX_REPLY + 1` bytes: one more than accepted, to tell an oversized datagram.
    buf: Vec<u8>,
    /// Ids of queries already answered or given up: a late answer to one of them (e.g. both
    /// the first attempt and its retry answered) is dropped instead of failing the next query.
    earlier: Vec<u16>,
}

impl QuerySocket {
    /// Binds an ephemeral port of `server`'s family and connects it to `server`, so the kernel
    /// drops datagrams from anyone else and reports ICMP port unreachable as refused.
    pub async fn connect(server: SocketAddr) -> Result<QuerySocket, DnsError> {
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(DnsError::from_io)?;
        socket.connect(server).await.map_err(DnsError::from_io)?;
        Ok(QuerySocket {
            socket,
            buf: vec![0u8; MAX_REPLY + 1],
            earlier: Vec::new(),
        })
    }

    fn fresh_id(&self, also_not: Option<u16>) -> u16 {
        loop {
            let id: u16 = rand::random();
            if Some(id) != also_not && !self.earlier.contains(&id) {
                return id;
            }
        }
    }

    fn forget(&mut self, ids: &[u16]) {
        if self.earlier.len() + ids.len() > EARLIER_IDS {
            self.earlier.clear();
        }
        self.earlier.extend_from_slice(ids);
    }

    /// Asks for `rtype` records of `name` and waits for the answer until `deadline`, re-sending
    /// once (new id) when the first attempt stays unanswered. Returns the answer and the time
    /// from the first send to the answer.
    pub async fn query(
        &mut self,
        name: &Name,
        rtype: RecordType,
        deadline: Instant,
    ) -> Result<(Answer, Duration), DnsError> {
        let first = self.fresh_id(None);
        let mut ids = [first, first];
        let result = self.attempts(&mut ids, name, rtype, deadline).await;
        self.forget(if ids[0] == ids[1] { &ids[..1] } else { &ids });
        result
    }

    async fn attempts(
        &mut self,
        ids: &mut [u16; 2],
        name: &Name,
        rtype: RecordType,
        deadline: Instant,
    ) -> Result<(Answer, Duration), DnsError> {
        let start = Instant::now();
        self.socket
            .send(&encode_query(ids[0], name, rtype)?)
            .await
            .map_err(DnsError::from_io)?;
        let budget = deadline.saturating_duration_since(start);
        let retry_at = start + RETRY_AFTER.min(budget / 2);
        let mut retried = false;
        loop {
            let wait_until = if retried { deadline } else { retry_at };
            match tokio::time::timeout_at(wait_until, self.socket.recv(&mut self.buf)).await {
                Ok(Ok(n)) => {
                    if n > MAX_REPLY {
                        return Err(DnsError::TooLarge);
                    }
                    let reply = self.buf.get(..n).unwrap_or_default();
                    if let Some(&[hi, lo]) = reply.get(..2)
                        && let id = u16::from_be_bytes([hi, lo])
                        && !ids.contains(&id)
                        && self.earlier.contains(&id)
                    {
                        continue;
                    }
                    let answer = decode_answer(reply, &ids[..], name, rtype)?;
                    return Ok((answer, start.elapsed()));
                }
                Ok(Err(e)) => return Err(DnsError::from_io(e)),
                Err(_) if retried || Instant::now() >= deadline => return Err(DnsError::Timeout),
                Err(_) => {
                    // A lost datagram: ask once more, still accepting a late answer to the first.
                    retried = true;
                    ids[1] = self.fresh_id(Some(ids[0]));
                    self.socket
                        .send(&encode_query(ids[1], name, rtype)?)
                        .await
                        .map_err(DnsError::from_io)?;
                }
            }
        }
    }
}

/// Zenodotus' filter on advertised values: four dot-separated integers, each below 255
/// (so `x.x.x.255` is dropped). Python's `int()` accepts surrounding blanks and a sign.
pub fn zenodotus_ipv4(value: &[u8]) -> Option<Ipv4Addr> {
    let s = std::str::from_utf8(value).ok()?;
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let n: i64 = parts.next()?.trim().parse().ok()?;
        *o = u8::try_from(n).ok().filter(|v| *v < 255)?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        parse_name(s).unwrap_or_else(|| panic!("{s} parses"))
    }

    #[test]
    fn query_is_plain_rfc1035() {
        let q = encode_query(0x1234, &name("hello.zenodotus.poly.edu"), RecordType::A).unwrap();
        // Header: id, flags RD only (0x0100), one question, nothing else; no OPT record.
        assert_eq!(&q[..12], &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q.len(), 12 + 26 + 4);
    }

    #[test]
    fn ipv4_filter_matches_zenodotus() {
        assert_eq!(zenodotus_ipv4(b"1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(
            zenodotus_ipv4(b"1.2.3.254"),
            Some(Ipv4Addr::new(1, 2, 3, 254))
        );
        for bad in [
            &b"1.2.3.255"[..],
            b"not-an-ip",
            b"1.2.3",
            b"1.2.3.4.5",
            b"-1.2.3.4",
            b"",
            b"\xff.1.1.1",
            b"1.2.3.4:1224",
        ] {
            assert_eq!(zenodotus_ipv4(bad), None, "{bad:?}");
        }
        assert_eq!(
            zenodotus_ipv4(b" 10. 0.0.1"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    #[test]
    fn names_parse_or_not() {
        assert!(parse_name("hello.zenodotus.poly.edu.").is_some());
        assert!(parse_name("").is_none());
        assert!(parse_name("héllo.example").is_none());
        assert!(parse_name("hello.zenodotus.poly.edu:53").is_none());
        assert!(parse_name("http://hello.example/").is_none());
        assert!(parse_name("a..b").is_none());
        assert!(parse_name(&"a.".repeat(200)).is_none());
    }

    #[test]
    fn rejects_wrong_id_question_and_query_bit() {
        let n = name("hello.zenodotus.poly.edu");
        let mut reply = encode_query(7, &n, RecordType::A).unwrap();
        // Still a query (QR clear).
        assert!(matches!(
            decode_answer(&reply, &[7], &n, RecordType::A),
            Err(DnsError::BadReply(_))
        ));
        reply[2] |= 0x80;
        assert!(decode_answer(&reply, &[7], &n, RecordType::A).is_ok());
        assert!(matches!(
            decode_answer(&reply, &[8], &n, RecordType::A),
            Err(DnsError::BadReply(_))
        ));
        assert!(matches!(
            decode_answer(
                &reply,
                &[7],
                &name("other.zenodotus.poly.edu"),
                RecordType::A
            ),
            Err(DnsError::BadReply(_))
        ));
        assert!(matches!(
            decode_answer(&reply, &[7], &n, RecordType::NS),
            Err(DnsError::BadReply(_))
        ));
        reply[2] |= 0x02;
        assert!(matches!(
            decode_answer(&reply, &[7], &n, RecordType::A),
            Err(DnsError::Truncated)
        ));
        for cut in 0..reply.len() {
            assert!(decode_answer(&reply[..cut], &[7], &n, RecordType::A).is_err());
        }
    }
}
