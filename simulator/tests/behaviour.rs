//! Faults, hostile behaviours, the control API and the scenario file.

mod common;

use std::time::Duration;

use common::*;
use seattle_simulator::scenario::{Behaviour, Scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn adv_get(key: &str) -> Vec<u8> {
    let k = format!("S{key}");
    let payload = format!("T4:SGET{}:{k}4:I1000:", k.len());
    frame(payload.as_bytes())
}

#[test]
fn default_scenario_is_valid_and_builds() {
    let sc = Scenario::default_scenario();
    let w = seattle_simulator::world::World::build(&sc).unwrap();
    assert_eq!(w.nodes.len(), sc.nodes.count);
    let t = w.truth();
    assert!(t.nodes_down > 0 && t.nodes_up > 0);
    assert!(t.free_vessels > 0);
    assert_eq!(t.vessels_by_status.len(), 6, "every status present");
}

#[test]
fn unknown_scenario_keys_name_file_and_line() {
    let err = Scenario::from_yaml("seed: 1\nnodes:\n  count: 3\n  colour: red\n", "my.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my.yaml"), "{err}");
    assert!(err.contains("colour"), "{err}");
    assert!(err.contains('4'), "line 4 named: {err}");
    let err = Scenario::from_yaml("nodes: {count: 3, down: 1.5}\n", "x.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nodes.down"), "{err}");
    assert!(Scenario::from_yaml("states: {bogus: 1}\n", "s").is_err());
}

#[test]
fn same_seed_same_world() {
    let sc = Scenario::from_yaml(
        "seed: 5\nnodes: {count: 20}\nusers: [{name: a, vessels: 3}]\n",
        "t",
    )
    .unwrap();
    let (a, b) = (
        seattle_simulator::world::World::build(&sc).unwrap(),
        seattle_simulator::world::World::build(&sc).unwrap(),
    );
    for i in 0..20 {
        assert_eq!(
            a.getvessels_text(&a.nodes[i]),
            b.getvessels_text(&b.nodes[i])
        );
    }
    assert_eq!(a.users[0].key, b.users[0].key);
}

/// A node switched down refuses connections and shows in the truth; switched up it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_and_up_through_the_control_api() {
    let sim = start_yaml("nodes: {count: 5, port: 0}\n").await;
    let addr = seattle_simulator::node_addr(&sim, 2);
    let ep = sim.endpoints().unwrap();
    let http = HttpJson::new(&ep.control_url);
    let node_key = sim.world.nodes[2].key.advertise_key();
    let value = sim.world.nodes[2].advertised_value();
    assert!(
        exchange(&addr, b"10\nGetVessels")
            .await
            .ends_with(b"\nSuccess")
    );
    assert!(
        String::from_utf8_lossy(&exchange(&ep.advertise_tcp, &adv_get(&node_key)).await)
            .contains(&value)
    );

    let r = http
        .post(
            "node",
            r#"{"node": 2, "behaviour": "down", "withdraw": true}"#,
        )
        .await;
    assert!(r.contains("\"ok\""), "{r}");
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let truth: serde_json::Value = serde_json::from_str(&http.get("truth").await).unwrap();
    assert_eq!(truth["nodes_down"], 1);
    assert_eq!(truth["nodes"][2]["answering"], false);
    assert!(
        !String::from_utf8_lossy(&exchange(&ep.advertise_tcp, &adv_get(&node_key)).await)
            .contains(&value)
    );

    http.post("node", r#"{"node": 2, "behaviour": "normal"}"#)
        .await;
    assert!(
        exchange(&addr, b"10\nGetVessels")
            .await
            .ends_with(b"\nSuccess")
    );
    assert!(
        String::from_utf8_lossy(&exchange(&ep.advertise_tcp, &adv_get(&node_key)).await)
            .contains(&value)
    );
    let truth: serde_json::Value = serde_json::from_str(&http.get("truth").await).unwrap();
    assert_eq!(truth["nodes_down"], 0);

    // A vessel status change shows in GetVessels.
    http.post(
        "vessel",
        r#"{"node": 2, "vessel": "v1", "status": "Stale"}"#,
    )
    .await;
    let gv = String::from_utf8(exchange(&addr, b"10\nGetVessels").await).unwrap();
    assert!(gv.contains("Name: v1\nStatus: Stale\n"), "{gv}");
    // Bad control input is a 400 with a reason, not a crash.
    let r = http
        .post("node", r#"{"node": 99, "behaviour": "down"}"#)
        .await;
    assert!(r.contains("no node 99"), "{r}");
    let r = http.post("node", "not json").await;
    assert!(r.contains("error"), "{r}");
}

/// The fifth simultaneous connection from one IP is closed at once; the first four are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_pending_limit() {
    let sim = start_yaml("nodes: {count: 1, port: 0}\n").await;
    let addr = seattle_simulator::node_addr(&sim, 0);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // One accept loop takes connections in arrival order, so the fifth is counted after these.
    for s in &mut held {
        s.write_all(b"1").await.unwrap();
    }
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    assert!(
        read_all(&mut fifth).await.is_empty(),
        "fifth connection closed without data"
    );
    for mut s in held {
        s.write_all(b"0\nGetVessels").await.unwrap();
        assert!(read_all(&mut s).await.ends_with(b"\nSuccess"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_nodes() {
    let sim = start_yaml(
        "nodes:\n  count: 4\n  port: 0\n  hostile:\n    - {node: 1, behaviour: huge_header}\n    - {node: 2, behaviour: garbage}\n    - {node: 3, behaviour: reset}\n",
    )
    .await;
    let normal = exchange(seattle_simulator::node_addr(&sim, 0), b"10\nGetVessels").await;
    // huge_header keeps the connection open after the header: read just the header.
    let mut s = TcpStream::connect(seattle_simulator::node_addr(&sim, 1))
        .await
        .unwrap();
    s.write_all(b"10\nGetVessels").await.unwrap();
    let mut hdr = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut hdr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&hdr, b"9999999999999999999\n");
    let g = exchange(seattle_simulator::node_addr(&sim, 2), b"10\nGetVessels").await;
    assert!(!g.is_empty() && !g.ends_with(b"Success"));
    let mut s = TcpStream::connect(seattle_simulator::node_addr(&sim, 3))
        .await
        .unwrap();
    s.write_all(b"10\nGetVessels").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(
        buf.len() < normal.len(),
        "reset mid-reply: {} of {}",
        buf.len(),
        normal.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertise_million_values() {
    let sim = start_yaml("nodes: {count: 0}\nadvertise: {behaviour: million_values}\n").await;
    let got = exchange(
        &sim.endpoints().unwrap().advertise_tcp,
        &adv_get("anything"),
    )
    .await;
    let nl = got.iter().position(|&b| b == b'\n').unwrap();
    let len: usize = std::str::from_utf8(&got[..nl]).unwrap().parse().unwrap();
    assert_eq!(len, got.len() - nl - 1);
    assert!(len > 10_000_000);
    assert!(got.ends_with(b"0:0:"));
}

/// The update site's metainfo verifies with the published key; each fault state shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_site_states() {
    use seattle_protocol::{keys::PublicKey, signeddata};
    let sim = start_yaml("nodes: {count: 0}\n").await;
    let ep = sim.endpoints().unwrap();
    let site = HttpJson::new(&ep.updatesite_url);
    let control = HttpJson::new(&ep.control_url);
    let published = PublicKey::parse(&ep.update_public_key).unwrap();
    // Signed by the published key, whatever the expiry.
    let verify = |m: &str| {
        signeddata::parse(m.as_bytes())
            .unwrap()
            .verify_with(&published)
            .is_ok()
    };
    let m = site.get("metainfo").await;
    assert!(verify(&m), "{m}");
    // urllib asks for `updatesite//metainfo`.
    assert!(verify(&site.get("/metainfo").await));
    for line in m.lines().take_while(|l| !l.is_empty()) {
        let mut f = line.split(' ');
        let (path, _sha, size) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert_eq!(site.get(path).await.len(), size.parse::<usize>().unwrap());
    }
    control.post("metainfo", r#"{"state": "other_key"}"#).await;
    assert!(!verify(&site.get("metainfo").await));
    control.post("metainfo", r#"{"state": "expired"}"#).await;
    let m = site.get("metainfo").await;
    assert!(verify(&m));
    let fields: Vec<&str> = m.rsplit('!').collect();
    let expiration: f64 = fields[3].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiration < now);
    control.post("metainfo", r#"{"state": "missing"}"#).await;
    assert!(
        site.get_status("metainfo")
            .await
            .starts_with("HTTP/1.0 404")
            || site
                .get_status("metainfo")
                .await
                .starts_with("HTTP/1.1 404")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockserver_and_clearinghouse() {
    let sim = start_yaml(
        "nodes: {count: 0}\nlockserver: {locks: [{kind: node, name: 'n1', held_seconds: 30}]}\n",
    )
    .await;
    let ep = sim.endpoints().unwrap();
    let ls = HttpJson::new(&ep.lockserver_url);
    let r = ls
        .post_raw(&seattle_simulator::xmlrpc::call("GetStatus", &[]))
        .await;
    assert!(
        r.contains("<name>heldlockdict</name>") && r.contains("<name>n1</name>"),
        "{r}"
    );
    let ch = HttpJson::new(&ep.clearinghouse_url);
    assert!(ch.get_status("").await.contains(" 200 "));
    HttpJson::new(&ep.control_url)
        .post(
            "service",
            r#"{"service": "clearinghouse", "behaviour": "down"}"#,
        )
        .await;
    let host = ep
        .clearinghouse_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    assert!(TcpStream::connect(host).await.is_err());
    HttpJson::new(&ep.control_url)
        .post(
            "service",
            r#"{"service": "clearinghouse", "behaviour": "normal"}"#,
        )
        .await;
    assert!(ch.get_status("").await.contains(" 200 "));
}

/// A tiny HTTP/1.0 client.
struct HttpJson {
    host: String,
    base: String,
}

impl HttpJson {
    fn new(url: &str) -> HttpJson {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        HttpJson {
            host: host.to_string(),
            base: format!("/{path}"),
        }
    }
    async fn raw(&self, method: &str, path: &str, body: &str) -> String {
        let req = format!(
            "{method} {}{path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.base,
            self.host,
            body.len()
        );
        String::from_utf8_lossy(&exchange(&self.host, req.as_bytes()).await).into_owned()
    }
    async fn get_status(&self, path: &str) -> String {
        self.raw("GET", path, "").await
    }
    async fn get(&self, path: &str) -> String {
        let r = self.raw("GET", path, "").await;
        r.split_once("\r\n\r\n").unwrap().1.to_string()
    }
    async fn post(&self, path: &str, body: &str) -> String {
        let r = self.raw("POST", path, body).await;
        r.split_once("\r\n\r\n").unwrap().1.to_string()
    }
    async fn post_raw(&self, body: &str) -> String {
        self.post("", body).await
    }
}

#[test]
fn behaviours_parse_from_yaml() {
    let sc = Scenario::from_yaml(
        "nodes: {count: 2, hostile: [{node: 1, behaviour: drip}]}\n",
        "t",
    )
    .unwrap();
    assert_eq!(sc.nodes.hostile[0].behaviour, Behaviour::Drip);
}

/// A signed call made like `signeddata_signdata` is verified, executed, and its replay refused
/// with the real error text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_calls_are_verified() {
    let owner = seattle_simulator::keys::KeyPair::generate(512, 11);
    let other = seattle_simulator::keys::KeyPair::generate(512, 12);
    let nodekey = "65537 747340318809666290119336386599";
    let getvessels = format!(
        "Version: 0.2-alpha-20140714-1434\nNodename: 127.0.0.1\nNodekey: {nodekey}\nName: v1\nStatus: Fresh\nAdvertise: True\nOwnerKey: {}\nOwnerInfo: \n",
        owner.public.to_key_string()
    );
    let yaml = format!(
        "nodes: {{count: 0, addressing: ports}}\nfixture_nodes:\n  - getvessels_text: {}\n",
        serde_json::to_string(&getvessels).unwrap()
    );
    let sim = start_yaml(&yaml).await;
    let addr = seattle_simulator::node_addr(&sim, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let sign = |key: &seattle_simulator::keys::KeyPair, body: &str, ts: f64, dest: &str| {
        let signed = seattle_protocol::signeddata::sign(
            body.as_bytes(),
            &key.public,
            &key.private,
            Some(ts),
            Some(now + 3600.0),
            None,
            Some(dest),
        )
        .unwrap();
        String::from_utf8(signed).unwrap()
    };
    let req = sign(&owner, "ChangeOwnerInformation|v1|hello", now, nodekey);
    assert_eq!(
        exchange(addr, &frame(req.as_bytes())).await,
        frame(b"\nSuccess")
    );
    let gv = String::from_utf8(exchange(addr, b"10\nGetVessels").await).unwrap();
    assert!(gv.contains("OwnerInfo: hello\n"), "{gv}");
    // Replay.
    assert_eq!(
        exchange(addr, &frame(req.as_bytes())).await,
        frame(b"Signature problem: Timestamps match\nError")
    );
    // Not the owner.
    let req = sign(&other, "ChangeOwnerInformation|v1|x", now + 1.0, nodekey);
    assert_eq!(
        exchange(addr, &frame(req.as_bytes())).await,
        frame(b"Insufficient Permissions\nError")
    );
    // Altered after signing.
    let req =
        sign(&owner, "ChangeOwnerInformation|v1|x", now + 2.0, nodekey).replacen("|x", "|y", 1);
    let got = exchange(addr, &frame(req.as_bytes())).await;
    assert_eq!(
        got,
        frame(format!("Bad Signature on '{req}'\nError").as_bytes())
    );
    // Another node's destination.
    let req = sign(&owner, "ChangeOwnerInformation|v1|x", now + 3.0, "65537 5");
    assert_eq!(
        exchange(addr, &frame(req.as_bytes())).await,
        frame(b"Signature problem: Not destined for this node Not destined for this node\nError")
    );
}

/// Moving the clock past the TTL expires a down node's advertisements, not the live nodes'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_advance_expires_only_down_nodes() {
    let sim = start_yaml("nodes: {count: 3, port: 0}\n").await;
    let ep = sim.endpoints().unwrap();
    let http = HttpJson::new(&ep.control_url);
    http.post("node", r#"{"node": 1, "behaviour": "down"}"#)
        .await;
    let lookup = |i: usize| {
        let key = sim.world.nodes[i].key.advertise_key();
        let value = sim.world.nodes[i].advertised_value();
        let addr = ep.advertise_tcp.clone();
        async move { String::from_utf8_lossy(&exchange(&addr, &adv_get(&key)).await).contains(&value) }
    };
    assert!(lookup(1).await, "still advertised until the TTL runs out");
    http.post("clock", r#"{"advance_seconds": 800}"#).await;
    assert!(!lookup(1).await);
    assert!(lookup(0).await && lookup(2).await);
}

/// Zenodotus reads central_v2: while that advertise server hangs, name lookups SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zenodotus_servfail_while_advertise_is_down() {
    let sim = start_yaml(
        "nodes: {count: 0}\nzenodotus: {names: [{name: hello, values: [\"1.2.3.4\"]}]}\n",
    )
    .await;
    let ep = sim.endpoints().unwrap();
    let server: std::net::SocketAddr = ep.zenodotus_dns.parse().unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // id 0x1234, RD, one question: hello.zenodotus.poly.edu A IN
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["hello", "zenodotus", "poly", "edu"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let ask = || async {
        sock.send_to(&q, server).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]]), n)
    };
    assert_eq!(ask().await.0, 0);
    HttpJson::new(&ep.control_url)
        .post(
            "service",
            r#"{"service": "advertise_tcp", "behaviour": "hang"}"#,
        )
        .await;
    assert_eq!(ask().await.0, 2);
    HttpJson::new(&ep.control_url)
        .post(
            "service",
            r#"{"service": "advertise_tcp", "behaviour": "normal"}"#,
        )
        .await;
    let (rcode, answers, _) = ask().await;
    assert_eq!((rcode, answers), (0, 1));
}

/// `zenodotus_dns` faults through `/control/service`: each shows the way a client sees it, and
/// `normal` brings the service back on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zenodotus_dns_faults() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let sim = start_yaml(
        "nodes: {count: 0}\nadvertise: {slow_delay_seconds: 1}\nzenodotus: {names: [{name: hello, values: [\"1.2.3.4\"]}]}\n",
    )
    .await;
    let ep = sim.endpoints().unwrap();
    let control = HttpJson::new(&ep.control_url);
    let set = async |b: &str| {
        let body = format!(r#"{{"service": "zenodotus_dns", "behaviour": "{b}"}}"#);
        control.raw("POST", "service", &body).await
    };
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ep.zenodotus_dns.as_str()).await.unwrap();
    let mut id = 0u16;
    let mut ask = async || {
        id += 1;
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = true;
        m.queries.push(Query::query(
            Name::from_ascii("hello.zenodotus.poly.edu.").unwrap(),
            RecordType::A,
        ));
        sock.send(&m.to_vec().unwrap()).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let got = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await;
        (id, got.map(|r| r.map(|n| buf[..n].to_vec())))
    };
    let ok = |r: &str| {
        assert!(
            r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
            "{r}"
        )
    };

    let (_, r) = ask().await;
    let reply = Message::from_vec(&r.unwrap().unwrap()).unwrap();
    assert_eq!(reply.answers.len(), 1);

    ok(&set("garbage").await);
    let (id, r) = ask().await;
    let bytes = r.unwrap().unwrap();
    assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), id);
    assert!(Message::from_vec(&bytes).is_err());

    ok(&set("truncated").await);
    let reply = Message::from_vec(&ask().await.1.unwrap().unwrap()).unwrap();
    assert!(reply.metadata.truncation);
    assert_eq!((reply.queries.len(), reply.answers.len()), (1, 0));

    ok(&set("oversized").await);
    let bytes = ask().await.1.unwrap().unwrap();
    assert!(bytes.len() > 4096, "{}", bytes.len());
    let reply = Message::from_vec(&bytes).unwrap();
    assert!(reply.answers.len() > 300);
    assert!(
        reply
            .answers
            .iter()
            .all(|a| a.record_type() == RecordType::A)
    );

    ok(&set("slow").await);
    let (id, r) = ask().await;
    // Not asserting how late: only that the answer still comes, and to this query.
    let bytes = match r {
        Ok(got) => got.unwrap(),
        Err(_) => {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), sock.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            buf.truncate(n);
            buf
        }
    };
    assert_eq!(Message::from_vec(&bytes).unwrap().metadata.id, id);

    ok(&set("hang").await);
    assert!(ask().await.1.is_err(), "a hanging server answered");

    ok(&set("down").await);
    let (_, r) = ask().await;
    assert_eq!(
        r.unwrap().unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let truth: serde_json::Value = serde_json::from_str(&control.get("truth").await).unwrap();
    assert_eq!(truth["services"]["zenodotus_dns"], "down");

    ok(&set("normal").await);
    let reply = Message::from_vec(&ask().await.1.unwrap().unwrap()).unwrap();
    assert_eq!(reply.answers.len(), 1);

    // TCP-only faults are refused for DNS, DNS-only faults for the others.
    assert!(set("reset").await.contains(" 400 "));
    let r = control
        .raw(
            "POST",
            "service",
            r#"{"service": "updatesite", "behaviour": "truncated"}"#,
        )
        .await;
    assert!(r.contains(" 400 "), "{r}");
}

/// The protocol crate's parsers (what the exporters use) read every generated node, and the
/// free-vessel count they derive equals the truth.
#[test]
fn generated_world_reads_back_through_the_protocol_crate() {
    use seattle_protocol::nodemanager::getvessels::GetVessels;
    use seattle_protocol::nodemanager::resources::Resources;
    let sc = Scenario::default_scenario();
    let w = seattle_simulator::world::World::build(&sc).unwrap();
    let twopercent = seattle_simulator::world::state_key("twopercent").to_key_string();
    let mut free = 0;
    for node in &w.nodes {
        let text = w.getvessels_text(node);
        let gv = GetVessels::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("node {}: {e:?}", node.index));
        assert_eq!(gv.vessels.len(), node.lock().vessels.len());
        if let Some(a) = gv.allocation(&twopercent) {
            free += a.free.len();
        }
        let r = w.resources_text(node, "v2").unwrap();
        let res = Resources::parse(r.as_bytes()).unwrap();
        assert_eq!(res.usable_ports().count(), 10);
    }
    assert_eq!(free, w.truth().free_vessels);
}
