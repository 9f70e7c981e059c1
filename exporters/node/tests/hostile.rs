//! Every hostile behaviour of the simulator gives probe_success 0 with the right reason, the
//! exporter survives, and its file descriptors and memory come back.

mod support;

use std::time::{Duration, Instant};

use seattle_exporter_toolkit::testing::wait_until;
use seattle_simulator::scenario::Behaviour;
use support::{Exporter, Sim, probe};

const SCENARIO: &str = "
seed: 7
nodes:
  count: 8
  addressing: loopback
  port: 0
  vessels_per_node: 3
  hostile:
    - {node: 0, behaviour: down}
    - {node: 1, behaviour: hang}
    - {node: 2, behaviour: drip}
    - {node: 3, behaviour: huge_header}
    - {node: 4, behaviour: garbage}
    - {node: 5, behaviour: reset}
users:
  - {name: alice, vessels: 2}
";

/// Scrape timeout sent with every probe.
const TIMEOUT_S: f64 = 2.0;

fn config(sim: &Sim, alice_key: &str) -> String {
    format!(
        "advertise_services:
  - {{name: central, address: '{tcp}', protocol: tcp}}
  - {{name: udp, address: '{udp}', protocol: udp}}
users:
  - {{name: alice, public_key: '{alice_key}'}}
discovery:
  enabled: false
",
        tcp = sim.endpoints.advertise_tcp,
        udp = sim.endpoints.advertise_udp,
    )
}

/// Probes and checks the outcome; the answer must come within the scrape timeout (with slack
/// for a loaded machine: this catches hangs, not slowness).
fn expect(exporter: &Exporter, module: &str, target: &str, reason: Option<&str>) {
    expect_within(exporter, module, target, reason, TIMEOUT_S);
}

fn expect_within(
    exporter: &Exporter,
    module: &str,
    target: &str,
    reason: Option<&str>,
    timeout_s: f64,
) {
    expect_one_of(exporter, module, target, reason.as_slice(), timeout_s);
}

/// Like [`expect_within`]; an empty `reasons` means success, else any of them.
fn expect_one_of(
    exporter: &Exporter,
    module: &str,
    target: &str,
    reasons: &[&str],
    timeout_s: f64,
) {
    let start = Instant::now();
    let r = probe(&exporter.addr, module, target, timeout_s);
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs_f64(timeout_s + 5.0),
        "{module} {target}: answered after {elapsed:?}"
    );
    if reasons.is_empty() {
        assert!(r.success(), "{module} {target} failed:\n{}", r.text);
    } else {
        assert!(!r.success(), "{module} {target} succeeded:\n{}", r.text);
        let got = r.reason();
        assert!(
            got.as_deref().is_some_and(|g| reasons.contains(&g)),
            "{module} {target}: reason {got:?}, want one of {reasons:?}:\n{}",
            r.text
        );
    }
}

#[test]
fn hostile_peers_fail_with_the_right_reason_and_leak_nothing() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();
    let alice_key = truth["users"][0]["key"]
        .as_str()
        .expect("alice's key")
        .to_string();
    let mut exporter = Exporter::start(&config(&sim, &alice_key));
    let nodes = &sim.endpoints.nodes;
    let tcp = sim.endpoints.advertise_tcp.clone();
    let udp = sim.endpoints.advertise_udp.clone();

    // Warm up (lazily created runtime threads and buffers), then take the baseline.
    expect(&exporter, "nodemanager", &nodes[6], None);
    expect(&exporter, "advertise_tcp", &tcp, None);
    expect(&exporter, "advertise_udp", &udp, None);
    expect(&exporter, "users", &tcp, None);
    let fds_before = exporter.fd_count();
    let rss_before = exporter.rss_bytes();
    assert!(fds_before > 0 && rss_before > 0);

    for module in ["nodemanager", "nodemanager_resources"] {
        expect(&exporter, module, &nodes[0], Some("connection_refused"));
        expect(&exporter, module, &nodes[1], Some("timeout"));
        expect(&exporter, module, &nodes[2], Some("timeout"));
        expect(&exporter, module, &nodes[3], Some("too_large"));
        expect(&exporter, module, &nodes[4], Some("framing"));
        expect(&exporter, module, &nodes[5], Some("connection_reset"));
        expect(&exporter, module, &nodes[6], None);
    }
    expect(&exporter, "nodemanager", "127.0.0.1", Some("bad_target"));
    // Nothing listens there: TCP gets a RST, the connected UDP socket an ICMP port unreachable.
    let closed = format!(
        "127.0.0.1:{}",
        seattle_exporter_toolkit::testing::free_port()
    );
    expect(
        &exporter,
        "advertise_tcp",
        &closed,
        Some("connection_refused"),
    );
    expect(
        &exporter,
        "advertise_udp",
        &closed,
        Some("connection_refused"),
    );
    expect(&exporter, "users", &closed, Some("connection_refused"));

    // The simulator (a debug build in tests) needs a few seconds to build a million values:
    // those probes get a longer scrape timeout so the reply's header arrives in time.
    for (behaviour, reason, timeout_s) in [
        (Behaviour::Hang, "timeout", TIMEOUT_S),
        (Behaviour::Drip, "timeout", TIMEOUT_S),
        (Behaviour::HugeHeader, "too_large", TIMEOUT_S),
        (Behaviour::Garbage, "framing", TIMEOUT_S),
        (Behaviour::Reset, "connection_reset", TIMEOUT_S),
        (Behaviour::MillionValues, "too_large", 30.0),
    ] {
        sim.set_advertise(behaviour);
        expect_within(&exporter, "advertise_tcp", &tcp, Some(reason), timeout_s);
    }
    // The simulator's `down` closes at once without reading: a FIN when it wins the race with
    // our request, a RST when our request was already unread in its socket.
    sim.set_advertise(Behaviour::Down);
    expect_one_of(
        &exporter,
        "advertise_tcp",
        &tcp,
        &["connection_closed", "connection_reset"],
        TIMEOUT_S,
    );
    sim.set_advertise(Behaviour::MillionValues);
    expect_within(&exporter, "users", &tcp, Some("too_large"), 30.0);
    sim.set_advertise(Behaviour::Normal);
    expect(&exporter, "advertise_tcp", &tcp, None);

    for (behaviour, reason) in [
        (Behaviour::Hang, "timeout"),
        (Behaviour::Garbage, "bad_reply"),
        (Behaviour::Reset, "bad_reply"),
    ] {
        sim.set_advertise_udp(behaviour);
        expect(&exporter, "advertise_udp", &udp, Some(reason));
    }
    sim.set_advertise_udp(Behaviour::Normal);
    expect(&exporter, "advertise_udp", &udp, None);

    assert!(
        exporter.still_running(),
        "exporter died:\n{}",
        exporter.log()
    );
    assert!(
        !exporter.log().contains("panicked"),
        "exporter panicked:\n{}",
        exporter.log()
    );
    // Sockets of abandoned probes are closed when their futures are dropped.
    wait_until(Duration::from_secs(15), "fds back to baseline", || {
        (exporter.fd_count() <= fds_before).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {} > {fds_before}", exporter.fd_count()));
    // Replies are capped before allocation: a million values must not show up in RSS.
    let rss_after = exporter.rss_bytes();
    assert!(
        rss_after < rss_before + (64 << 20),
        "RSS grew from {rss_before} to {rss_after}"
    );
}

#[test]
fn nodemanager_metrics_describe_the_node() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();
    let alice_key = truth["users"][0]["key"]
        .as_str()
        .expect("alice's key")
        .to_string();
    let exporter = Exporter::start(&config(&sim, &alice_key));
    let node = &truth["nodes"][6];
    let r = probe(
        &exporter.addr,
        "nodemanager_resources",
        &sim.endpoints.nodes[6],
        10.0,
    );
    assert!(r.success(), "{}", r.text);
    let fingerprint = node["nodekey_sha1"].as_str().expect("fingerprint");
    assert_eq!(
        r.value(&format!(
            "seattle_nodemanager_node_key_info{{fingerprint=\"{fingerprint}\"}}"
        )),
        Some(1.0),
        "{}",
        r.text
    );
    let state = node["state"].as_str().expect("state");
    assert_eq!(
        r.value(&format!(
            "seattle_nodemanager_node_state{{state=\"{state}\"}}"
        )),
        Some(1.0),
        "{}",
        r.text
    );
    let vessels: f64 = r
        .text
        .lines()
        .filter(|l| l.starts_with("seattle_nodemanager_vessels{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(vessels, node["vessels"].as_f64().expect("vessels"));
    let free = r.value("seattle_nodemanager_vessels_by_assignment{assignment=\"free\"}");
    assert_eq!(free, node["free_vessels"].as_f64());
    // Generated vessels have 10 ports listed as both kinds and the scenario's disk limit.
    assert_eq!(
        r.value("seattle_nodemanager_vessel_ports{vessel=\"v1\",kind=\"usable\"}"),
        Some(10.0),
        "{}",
        r.text
    );
    assert_eq!(
        r.value("seattle_nodemanager_vessel_disk_limit_bytes{vessel=\"v1\"}"),
        Some(20_000_000.0),
        "{}",
        r.text
    );
    assert!(r.value("seattle_nodemanager_offcut_memory_bytes").is_some());
    assert_eq!(
        r.value("seattle_nodemanager_info{version=\"0.2-alpha-20140714-1434\"}"),
        Some(1.0)
    );
}

/// The node manager drops a source IP's 5th pending connection: concurrent probes of one node
/// (each with GetVessels, GetOffcutResources and GetVesselResources calls) must all succeed,
/// which they only do if the exporter keeps to 4 connections per node.
#[test]
fn concurrent_probes_of_one_node_keep_to_its_connection_limit() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();
    let alice_key = truth["users"][0]["key"]
        .as_str()
        .expect("alice's key")
        .to_string();
    let exporter = Exporter::start(&config(&sim, &alice_key));
    let target = sim.endpoints.nodes[6].clone();
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let module = if i % 2 == 0 {
                    "nodemanager_resources"
                } else {
                    "nodemanager"
                };
                let (addr, target) = (&exporter.addr, &target);
                s.spawn(move || {
                    let r = probe(addr, module, target, 20.0);
                    (r.success(), r.text)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    });
    for (ok, text) in results {
        assert!(ok, "{text}");
    }
}
