//! `/sd` lists every advertised node under its state, Affix ids resolved to their address, NAT
//! nodes under their advertised string and marked `nat`; `?state=` filters.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use seattle_exporter_toolkit::testing::{http_get, wait_until};
use serde_json::Value;
use support::{Exporter, Sim};

const SCENARIO: &str = "
seed: 5
nodes:
  count: 40
  addressing: loopback
  port: 0
  affix: 0.3
  nat: 0.2
states: {acceptdonation: 5, canonical: 5}
";

/// target → (state, reachability)
type Listing = BTreeMap<String, (String, String)>;

fn listing(body: &[u8]) -> Listing {
    let groups: Value = serde_json::from_slice(body).expect("SD JSON");
    let mut out = Listing::new();
    for g in groups.as_array().expect("a list of target groups") {
        let state = g["labels"]["__meta_seattle_state"].as_str().unwrap_or("?");
        let reach = g["labels"]["__meta_seattle_reachability"]
            .as_str()
            .unwrap_or("?");
        for t in g["targets"].as_array().into_iter().flatten() {
            out.insert(
                t.as_str().unwrap_or_default().to_string(),
                (state.to_string(), reach.to_string()),
            );
        }
    }
    out
}

#[test]
fn sd_lists_the_fleet_like_the_truth() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();
    let mut want = Listing::new();
    for n in truth["nodes"].as_array().expect("nodes") {
        let state = n["state"].as_str().unwrap_or("v2").to_string();
        let (target, reach) = match n["value_form"].as_str() {
            Some("nat") => (n["advertised_value"].as_str(), "nat"),
            _ => (n["address"].as_str(), "direct"),
        };
        want.insert(
            target.unwrap_or_default().to_string(),
            (state, reach.to_string()),
        );
    }
    assert!(want.values().any(|(_, r)| r == "nat"));

    let exporter = Exporter::start(&format!(
        "advertise_services:
  - {{name: central, address: '{}', protocol: tcp}}
  - {{name: udp, address: '{}', protocol: udp}}
discovery:
  refresh_interval: 1s
",
        sim.endpoints.advertise_tcp, sim.endpoints.advertise_udp
    ));
    let mut got = Listing::new();
    let agreed = wait_until(Duration::from_secs(30), "/sd to list the fleet", || {
        let r = http_get(&exporter.addr, "/sd", &[]).ok()?;
        assert_eq!(r.header("content-type"), Some("application/json"));
        got = listing(&r.body);
        (got == want).then_some(())
    });
    assert!(agreed.is_ok(), "want {want:#?}\ngot {got:#?}");

    let r = http_get(&exporter.addr, "/sd?state=canonical", &[]).expect("/sd?state");
    let canonical = listing(&r.body);
    assert_eq!(canonical.len(), 5, "{canonical:?}");
    assert!(canonical.values().all(|(s, _)| s == "canonical"));
    let r = http_get(&exporter.addr, "/sd?state=nosuchstate", &[]).expect("/sd?state");
    assert_eq!(r.text(), "[]");
}

#[test]
fn advertise_probes_count_the_well_known_keys() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();
    let exporter = Exporter::start("discovery:\n  enabled: false\n");
    let by_state = truth["nodes_by_state"].as_object().expect("nodes_by_state");
    let node_count = truth["nodes"].as_array().map_or(0, Vec::len) as f64;
    for (module, target) in [
        ("advertise_tcp", &sim.endpoints.advertise_tcp),
        ("advertise_udp", &sim.endpoints.advertise_udp),
    ] {
        let r = support::probe(&exporter.addr, module, target, 5.0);
        assert!(r.success(), "{module}: {}", r.text);
        assert_eq!(r.value("seattle_advertise_put_get_match"), Some(1.0));
        assert_eq!(
            r.value("seattle_advertise_lookup_values{lookup=\"v2\"}"),
            Some(node_count),
            "{module}: {}",
            r.text
        );
        for (state, n) in by_state {
            assert_eq!(
                r.value(&format!(
                    "seattle_advertise_lookup_values{{lookup=\"{state}\"}}"
                )),
                n.as_f64(),
                "{module} {state}: {}",
                r.text
            );
        }
        assert_eq!(
            r.value("seattle_advertise_lookup_values{lookup=\"canihear\"}"),
            Some(0.0)
        );
    }
}
