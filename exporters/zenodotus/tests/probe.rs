//! The `zenodotus` prober against the simulator's Zenodotus, against small hostile DNS and
//! advertise servers, and against the golden bytes of the real one.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use common::{golden_dir, module, probe, simulator};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use seattle_protocol::nodemanager::getvessels::GetVessels;
use seattle_simulator::scenario::Behaviour;
use seattle_zenodotus_exporter::dns;
use tokio::net::{TcpListener, UdpSocket};

const BUDGET: Duration = Duration::from_secs(5);

#[tokio::test]
async fn registered_name_resolves_to_its_addresses() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let mut m = module(&ep.zenodotus_dns);
    m.compare_advertise = true;
    m.advertise = ep.advertise_tcp.clone();
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(o.value("seattle_dns_rcode{rcode=\"NOERROR\"}"), Some(1.0));
    assert_eq!(o.value("seattle_dns_rcode{rcode=\"NXDOMAIN\"}"), Some(0.0));
    assert_eq!(o.value("seattle_dns_answers"), Some(2.0));
    assert_eq!(o.value("seattle_zenodotus_hosts_answered"), Some(2.0));
    assert_eq!(
        o.value("seattle_zenodotus_dns_matches_advertise"),
        Some(1.0)
    );
    assert!(o.has("seattle_dns_lookup_duration_seconds "), "{}", o.text);
    // Options that are off export nothing.
    assert!(!o.has("seattle_zenodotus_hosts_up"), "{}", o.text);
    assert!(!o.has("seattle_zenodotus_zone_"), "{}", o.text);
}

#[tokio::test]
async fn node_name_reaches_its_node_manager() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let node: SocketAddr = ep.nodes[1].parse().expect("node address");
    let mut m = module(&ep.zenodotus_dns);
    m.check_host = true;
    m.host_port = node.port();
    let o = probe("web.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(o.value("seattle_dns_answers"), Some(1.0));
    assert_eq!(
        o.value("seattle_zenodotus_hosts_up{method=\"tcp\"}"),
        Some(1.0)
    );
    // The simulator's own view of the node is the truth.
    let truth = GetVessels::parse(sim.world.getvessels_text(&sim.world.nodes[1]).as_bytes())
        .expect("simulator's GetVessels parses");
    assert_eq!(
        o.value(&format!(
            "seattle_zenodotus_nodemanager_info{{version=\"{}\"}}",
            truth.version
        )),
        Some(1.0),
        "{}",
        o.text
    );
    assert_eq!(
        o.value("seattle_zenodotus_nodemanager_vessels"),
        Some(truth.vessels.len() as f64)
    );
    let icmp = o
        .value("seattle_zenodotus_icmp_possible")
        .expect("icmp_possible exported");
    // Loopback answers echo whenever the exporter may send it.
    assert_eq!(
        o.value("seattle_zenodotus_hosts_up{method=\"icmp\"}"),
        Some(icmp)
    );
}

#[tokio::test]
async fn unregistered_and_invalid_names_are_nxdomain() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let mut m = module(&ep.zenodotus_dns);
    m.compare_advertise = true;
    m.advertise = ep.advertise_tcp.clone();
    for name in ["nosuchname.zenodotus.poly.edu", "bad.zenodotus.poly.edu"] {
        let o = probe(name, &m, BUDGET).await;
        assert_eq!(o.reason(), Some("nxdomain"), "{name}: {}", o.text);
        assert_eq!(o.value("seattle_dns_rcode{rcode=\"NXDOMAIN\"}"), Some(1.0));
        assert_eq!(o.value("seattle_dns_rcode{rcode=\"NOERROR\"}"), Some(0.0));
        assert_eq!(o.value("seattle_dns_answers"), Some(0.0));
        // Nothing valid advertised, nothing answered: DNS and advertise agree.
        assert_eq!(
            o.value("seattle_zenodotus_dns_matches_advertise"),
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn down_host_resolves_but_is_not_up() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let node: SocketAddr = ep.nodes[0].parse().expect("node address");
    let mut m = module(&ep.zenodotus_dns);
    m.check_host = true;
    m.host_port = node.port();
    let o = probe("gone.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.reason(), Some("host_down"), "{}", o.text);
    assert_eq!(o.value("seattle_dns_rcode{rcode=\"NOERROR\"}"), Some(1.0));
    assert_eq!(o.value("seattle_dns_answers"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_hosts_answered"), Some(1.0));
    assert_eq!(
        o.value("seattle_zenodotus_hosts_up{method=\"tcp\"}"),
        Some(0.0)
    );
    assert_eq!(o.value("seattle_zenodotus_nodemanager_vessels"), Some(0.0));
    assert!(!o.has("seattle_zenodotus_nodemanager_info{"), "{}", o.text);
}

#[tokio::test]
async fn zone_self_check_and_round_trip() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let mut m = module(&ep.zenodotus_dns);
    m.zone_check = true;
    m.round_trip = true;
    m.advertise = ep.advertise_tcp.clone();
    let o = probe(&ep.zenodotus_zone, &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(o.value("seattle_zenodotus_zone_apex_ok"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_zone_ns_ok"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_zone_soa_ok"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_round_trip_success"), Some(1.0));
    assert!(
        o.value("seattle_zenodotus_round_trip_duration_seconds")
            .is_some_and(|s| s > 0.0),
        "{}",
        o.text
    );

    // Not the zone: the apex answer is not the server's, NS and SOA are NXDOMAIN.
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.reason(), Some("zone_apex_mismatch"), "{}", o.text);
    assert_eq!(o.value("seattle_zenodotus_zone_apex_ok"), Some(0.0));
    assert_eq!(o.value("seattle_zenodotus_zone_ns_ok"), Some(0.0));
    assert_eq!(o.value("seattle_zenodotus_zone_soa_ok"), Some(0.0));
}

#[tokio::test]
async fn round_trip_reports_a_failed_announce() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    *sim.advertise_tcp
        .behaviour
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Behaviour::Down;
    let mut m = module(&ep.zenodotus_dns);
    m.round_trip = true;
    m.advertise = ep.advertise_tcp.clone();
    let o = probe(&ep.zenodotus_zone, &m, BUDGET).await;
    assert_eq!(o.reason(), Some("announce_failed"), "{}", o.text);
    assert_eq!(o.value("seattle_zenodotus_round_trip_success"), Some(0.0));

    // Zenodotus itself cannot look names up now: SERVFAIL (SEATTLE.md F).
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.reason(), Some("servfail"), "{}", o.text);
    assert_eq!(o.value("seattle_dns_rcode{rcode=\"SERVFAIL\"}"), Some(1.0));
}

/// An advertise server answering every GET with `values` (one framed reply per connection).
async fn advertise_answering(values: &'static [&'static str]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = seattle_protocol::framing::read_frame(&mut s, 4096).await;
                let reply = seattle_protocol::advertise::codec::encode_get_reply(values);
                let _ = seattle_protocol::framing::write_frame(&mut s, &reply).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn answer_differing_from_advertise_is_a_mismatch() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let mut m = module(&ep.zenodotus_dns);
    m.compare_advertise = true;
    m.advertise = advertise_answering(&["1.2.3.4", "9.9.9.9"])
        .await
        .to_string();
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.reason(), Some("advertise_mismatch"), "{}", o.text);
    assert_eq!(
        o.value("seattle_zenodotus_dns_matches_advertise"),
        Some(0.0)
    );

    // Invalid values are filtered as Zenodotus filters them, and order does not matter.
    m.advertise = advertise_answering(&["1.2.3.5", "1.2.3.255", "junk", "1.2.3.4"])
        .await
        .to_string();
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(
        o.value("seattle_zenodotus_dns_matches_advertise"),
        Some(1.0)
    );
}

#[tokio::test]
async fn dns_server_not_listening_is_refused() {
    // Bind then drop: the port is (almost certainly) free, so loopback answers port unreachable.
    let addr = UdpSocket::bind("127.0.0.1:0")
        .await
        .and_then(|s| s.local_addr())
        .expect("free port");
    let mut m = module(&addr.to_string());
    m.zone_check = true;
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.reason(), Some("connection_refused"), "{}", o.text);
    assert!(!o.has("seattle_dns_rcode"), "{}", o.text);
    assert_eq!(o.value("seattle_zenodotus_zone_apex_ok"), Some(0.0));
}

#[tokio::test]
async fn dns_server_dropping_queries_times_out_within_the_budget() {
    // Bound but never read: every query is silently dropped.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut m = module(&silent.local_addr().expect("addr").to_string());
    m.zone_check = true;
    m.round_trip = true;
    m.check_host = true;
    m.compare_advertise = true;
    let o = probe("hello.zenodotus.poly.edu", &m, Duration::from_millis(1500)).await;
    assert_eq!(o.reason(), Some("timeout"), "{}", o.text);
    // Enabled options are exported at 0 even though they could not run.
    for series in [
        "seattle_zenodotus_zone_apex_ok",
        "seattle_zenodotus_zone_ns_ok",
        "seattle_zenodotus_zone_soa_ok",
        "seattle_zenodotus_round_trip_success",
        "seattle_zenodotus_dns_matches_advertise",
        "seattle_zenodotus_hosts_up{method=\"tcp\"}",
        "seattle_zenodotus_hosts_answered",
    ] {
        assert_eq!(o.value(series), Some(0.0), "{series}: {}", o.text);
    }
    assert!(!o.has("seattle_dns_answers"), "{}", o.text);
    drop(silent);
}

/// How a test DNS server answers a request.
type Reply = fn(&[u8]) -> Vec<u8>;

/// A DNS server answering every query with `reply(request)`.
async fn dns_answering(reply: Reply) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let out = reply(&buf[..n]);
            let _ = socket.send_to(&out, peer).await;
        }
    });
    addr.to_string()
}

/// A well-formed answer to `req` with two A records (like the golden `hello`).
fn good_answer(req: &[u8]) -> Vec<u8> {
    let mut out = req.to_vec();
    out[2] = 0x85;
    out[3] = 0x80;
    out[7] = 2;
    for last in [4u8, 5] {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, last]);
    }
    out
}

#[tokio::test]
async fn hostile_replies_fail_with_a_reason() {
    let cases: [(&str, Reply, &str); 10] = [
        ("good", good_answer, ""),
        ("garbage", |_| b"\x00\xffGARBAGE".to_vec(), "bad_reply"),
        ("empty", |_| Vec::new(), "bad_reply"),
        (
            "cut in the middle of an answer",
            |r| {
                let a = good_answer(r);
                a[..a.len() - 7].to_vec()
            },
            "bad_reply",
        ),
        (
            "TC bit",
            |r| {
                let mut a = good_answer(r);
                a[2] |= 0x02;
                a
            },
            "truncated",
        ),
        (
            "oversized",
            |r| {
                let mut a = good_answer(r);
                a.resize(9000, 0);
                a
            },
            "too_large",
        ),
        (
            "wrong id",
            |r| {
                let mut a = good_answer(r);
                a[1] = a[1].wrapping_add(1);
                a
            },
            "bad_reply",
        ),
        (
            "wrong question",
            |r| {
                let mut a = good_answer(r);
                a[13] = b'j'; // hello -> jello
                a
            },
            "bad_reply",
        ),
        (
            "compression loop",
            |r| {
                let mut a = r[..12].to_vec();
                a[2] = 0x85;
                a[3] = 0x80;
                a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
                a
            },
            "bad_reply",
        ),
        (
            "65535 answers announced, none sent",
            |r| {
                let mut a = r.to_vec();
                a[2] = 0x85;
                a[3] = 0x80;
                a[6] = 0xff;
                a[7] = 0xff;
                a
            },
            "bad_reply",
        ),
    ];
    for (what, reply, reason) in cases {
        let server = dns_answering(reply).await;
        let o = probe("hello.zenodotus.poly.edu", &module(&server), BUDGET).await;
        if reason.is_empty() {
            assert_eq!(o.result, Ok(()), "{what}: {}", o.text);
            assert_eq!(o.value("seattle_dns_answers"), Some(2.0), "{what}");
        } else {
            assert_eq!(o.reason(), Some(reason), "{what}: {}", o.text);
        }
    }
}

fn golden_rows() -> Vec<serde_json::Value> {
    let path = golden_dir().join("zenodotus_dns_udp.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("valid base64")
}

#[test]
fn golden_queries_and_answers() {
    let rows = golden_rows();
    assert!(rows.len() >= 10);
    for row in rows {
        let query = row["query"].as_str().expect("query");
        let (name, rtype) = query.rsplit_once(':').expect("name:TYPE");
        let rtype: RecordType = rtype.parse().expect("record type");
        let name = dns::parse_name(name).expect("golden name parses");
        let request = b64(&row["request_b64"]);
        let id = u16::from_be_bytes([request[0], request[1]]);
        // Our query is byte for byte the one the real server answered.
        assert_eq!(
            dns::encode_query(id, &name, rtype).expect("encodes"),
            request,
            "{query}"
        );
        let response = b64(&row["response_b64"]);
        let decoded = dns::decode_answer(&response, &[id], &name, rtype);
        if rtype == RecordType::MX {
            // The real server's MX answers lack the preference field.
            assert!(decoded.is_err(), "{query}");
            continue;
        }
        let answer = decoded.unwrap_or_else(|e| panic!("{query}: {e}"));
        let rcode = row["rcode"].as_u64().expect("rcode") as u16;
        assert_eq!(answer.rcode, ResponseCode::from_low(rcode as u8), "{query}");
        let an = row["counts_qd_an_ns_ar"][1].as_u64().expect("count") as usize;
        assert_eq!(answer.records, an, "{query}");
        match query {
            "hello.zenodotus.poly.edu:A" => assert_eq!(
                answer.addresses,
                [Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(1, 2, 3, 5)]
            ),
            "zenodotus.poly.edu:A" => assert_eq!(answer.addresses, [Ipv4Addr::LOCALHOST]),
            _ => {}
        }
    }
}

#[tokio::test]
async fn duplicated_answers_do_not_fail_the_next_query() {
    // The simulator's Zenodotus behind a socket that sends every answer twice: the second copy
    // of one answer arrives while the probe waits for the next one.
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let zen = seattle_simulator::dns::Zenodotus {
        zone: ep.zenodotus_zone.clone(),
        own_ip: Ipv4Addr::LOCALHOST,
        store: sim.tcp_store.clone(),
        advertise: None,
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let server = socket.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = zen.answer(&buf[..n]) {
                for _ in 0..2 {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        }
    });
    let mut m = module(&server);
    m.zone_check = true;
    m.round_trip = true;
    m.advertise = ep.advertise_tcp.clone();
    let o = probe(&ep.zenodotus_zone, &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(o.value("seattle_zenodotus_zone_ns_ok"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_zone_soa_ok"), Some(1.0));
    assert_eq!(o.value("seattle_zenodotus_round_trip_success"), Some(1.0));
}

#[tokio::test]
async fn a_target_that_is_no_name_is_a_bad_target() {
    for target in [
        "hello.zenodotus.poly.edu:53",
        "http://hello/",
        "a b",
        "x..y",
    ] {
        let o = probe(target, &module("127.0.0.1:9"), BUDGET).await;
        assert_eq!(o.reason(), Some("bad_target"), "{target}");
    }
}

#[tokio::test]
async fn server_given_by_name_is_resolved_ipv4_first() {
    let sim = simulator().await;
    let ep = sim.endpoints().expect("endpoints");
    let port: u16 = ep
        .zenodotus_dns
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("dns port");
    let mut m = module(&ep.zenodotus_dns);
    // Resolved per probe through the system (IPv4 taken first: the simulator is on 127.0.0.1).
    m.server = seattle_zenodotus_exporter::config::Server::Host("localhost".into(), port);
    let o = probe("hello.zenodotus.poly.edu", &m, BUDGET).await;
    assert_eq!(o.result, Ok(()), "{}", o.text);
    assert_eq!(o.value("seattle_dns_answers"), Some(2.0));
}
