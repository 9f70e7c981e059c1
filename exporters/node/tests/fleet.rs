//! End to end: a simulated fleet of 1,000 nodes with a mix of faults, the exporter binary, and
//! the real Prometheus discovering the nodes through `/sd` and probing each through `/probe`.
//! What Prometheus stores must equal the scenario's truth (the simulator's control endpoint).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use seattle_exporter_toolkit::testing::{PrometheusServer, wait_until};
use seattle_simulator::scenario::Behaviour;
use serde_json::Value;
use support::{Exporter, Sim};

const SCENARIO: &str = "
seed: 11
nodes:
  count: 1000
  addressing: loopback
  port: 0
  slow: 0.02
  slow_delay_seconds: 0.2
  hanging: 0.02
  affix: 0.2
  nat: 0.05
  vessels_per_node: 4
  status_mix: {Fresh: 0.45, Started: 0.35, Stopped: 0.05, Terminated: 0.1, ThreadErr: 0.02, Stale: 0.03}
  hostile:
    - {node: 7, behaviour: drip}
    - {node: 8, behaviour: huge_header}
    - {node: 9, behaviour: garbage}
    - {node: 10, behaviour: reset}
states: {acceptdonation: 40, canonical: 60, movingto_twopercent: 10, movingto_canonical: 5, onepercentmanyevents: 5}
users:
  - {name: alice, vessels: 6}
  - {name: bob, vessels: 3}
  - {name: carol, vessels: 0}
  - {name: dave, vessels: 2}
inconsistent_advertise:
  - {user: bob, node: 42}
";

fn exporter_config(sim: &Sim, truth: &Value) -> String {
    let mut users = String::new();
    for u in truth["users"].as_array().expect("users") {
        users.push_str(&format!(
            "  - {{name: {}, public_key: '{}'}}\n",
            u["name"].as_str().unwrap_or_default(),
            u["key"].as_str().unwrap_or_default()
        ));
    }
    format!(
        "advertise_services:
  - {{name: central, address: '{tcp}', protocol: tcp}}
  - {{name: udp, address: '{udp}', protocol: udp}}
users:
{users}discovery:
  refresh_interval: 2s
  timeout: 20s
",
        tcp = sim.endpoints.advertise_tcp,
        udp = sim.endpoints.advertise_udp,
    )
}

fn scrape_configs(exporter: &str, advertise_tcp: &str) -> String {
    // The relabelling of prometheus/prometheus.yml's seattle_nodemanager job.
    format!(
        "- job_name: seattle_nodemanager
  scrape_interval: 10s
  scrape_timeout: 8s
  metrics_path: /probe
  params:
    module: [nodemanager]
  http_sd_configs:
    - url: http://{exporter}/sd
      refresh_interval: 2s
  relabel_configs:
    - source_labels: [__meta_seattle_reachability]
      regex: direct
      action: keep
    - source_labels: [__meta_seattle_state]
      target_label: state
    - source_labels: [__address__]
      target_label: __param_target
    - source_labels: [__param_target]
      target_label: instance
    - target_label: __address__
      replacement: {exporter}
- job_name: seattle_users
  scrape_interval: 10s
  scrape_timeout: 8s
  metrics_path: /probe
  params:
    module: [users]
  static_configs:
    - targets: ['{advertise_tcp}']
  relabel_configs:
    - source_labels: [__address__]
      target_label: __param_target
    - source_labels: [__param_target]
      target_label: instance
    - target_label: __address__
      replacement: {exporter}
- job_name: seattle_exporters
  static_configs:
    - targets: ['{exporter}']
"
    )
}

/// What Prometheus should end up storing, derived from the truth.
#[derive(Debug, PartialEq, Default)]
struct Counts {
    up: usize,
    down: usize,
    probed_by_state: BTreeMap<String, usize>,
    node_state: BTreeMap<String, usize>,
    vessels_by_status: BTreeMap<String, usize>,
    free_vessels: usize,
    user_vessels: BTreeMap<String, usize>,
    diagnosis: BTreeMap<String, String>,
    discovered: usize,
    discovered_nat: usize,
}

fn status_label(s: &str) -> String {
    match s {
        "ThreadErr" => "thread_err".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn expected(sim: &Sim, truth: &Value) -> Counts {
    let mut c = Counts::default();
    let nodes = truth["nodes"].as_array().expect("nodes");
    let direct = |n: &Value| n["value_form"] != "nat";
    let answering = |i: usize| nodes[i]["answering"] == true;
    for n in nodes {
        let i = n["index"].as_u64().unwrap_or(0) as usize;
        c.discovered += 1;
        if !direct(n) {
            c.discovered_nat += 1;
            continue;
        }
        let state = n["state"].as_str().unwrap_or("none").to_string();
        *c.probed_by_state.entry(state.clone()).or_default() += 1;
        if !answering(i) {
            c.down += 1;
            continue;
        }
        c.up += 1;
        *c.node_state.entry(state).or_default() += 1;
        c.free_vessels += n["free_vessels"].as_u64().unwrap_or(0) as usize;
        // The truth has no per-node status breakdown: read the simulated node itself.
        let node = &sim.sim.world.nodes[i];
        for v in &node.lock().vessels {
            *c.vessels_by_status
                .entry(status_label(v.status))
                .or_default() += 1;
        }
    }
    let reachable = |i: usize| direct(&nodes[i]) && answering(i);
    for u in truth["users"].as_array().expect("users") {
        let name = u["name"].as_str().unwrap_or_default().to_string();
        let vessels: Vec<usize> = u["vessels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["node"].as_u64().unwrap_or(0) as usize)
            .collect();
        let confirmed = vessels.iter().filter(|&&i| reachable(i)).count();
        let inconsistent = u["inconsistent_nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| reachable(i.as_u64().unwrap_or(0) as usize));
        let diagnosis = if inconsistent {
            "advertise_inconsistent"
        } else if confirmed > 0 {
            "ok"
        } else if !vessels.is_empty() {
            "nodes_unreachable"
        } else {
            "no_vessels_acquired"
        };
        c.user_vessels.insert(name.clone(), confirmed);
        c.diagnosis.insert(name, diagnosis.into());
    }
    c
}

fn by_label(prom: &PrometheusServer, query: &str, label: &str) -> BTreeMap<String, usize> {
    prom.query(query)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v as usize))
        .collect()
}

fn scalar(prom: &PrometheusServer, query: &str) -> usize {
    prom.query(query)
        .ok()
        .and_then(|s| s.first().map(|(_, v)| *v as usize))
        .unwrap_or(0)
}

fn observed(prom: &PrometheusServer) -> Counts {
    let nm = "job=\"seattle_nodemanager\"";
    let users = "job=\"seattle_users\"";
    Counts {
        up: scalar(prom, &format!("count(probe_success{{{nm}}} == 1)")),
        down: scalar(prom, &format!("count(probe_success{{{nm}}} == 0)")),
        probed_by_state: by_label(
            prom,
            &format!("count by (state) (probe_success{{{nm}}})"),
            "state",
        ),
        // The target label `state` wins; the metric's own becomes `exported_state`.
        node_state: by_label(
            prom,
            &format!("count by (exported_state) (seattle_nodemanager_node_state{{{nm}}})"),
            "exported_state",
        ),
        vessels_by_status: by_label(
            prom,
            &format!("sum by (status) (seattle_nodemanager_vessels{{{nm}}})"),
            "status",
        ),
        free_vessels: scalar(
            prom,
            &format!("sum(seattle_nodemanager_vessels_by_assignment{{{nm},assignment=\"free\"}})"),
        ),
        user_vessels: prom
            .query(&format!("seattle_user_vessels{{{users},role=\"user\"}}"))
            .unwrap_or_default()
            .into_iter()
            .map(|(l, v)| (l.get("user").cloned().unwrap_or_default(), v as usize))
            .collect(),
        diagnosis: prom
            .query(&format!("seattle_user_diagnosis{{{users}}} == 1"))
            .unwrap_or_default()
            .into_iter()
            .map(|(l, _)| {
                (
                    l.get("user").cloned().unwrap_or_default(),
                    l.get("reason").cloned().unwrap_or_default(),
                )
            })
            .collect(),
        discovered: scalar(prom, "sum(seattle_discovery_targets)"),
        discovered_nat: scalar(prom, "sum(seattle_discovery_targets{reachability=\"nat\"})"),
    }
}

#[test]
fn prometheus_sees_the_fleet_as_the_simulator_built_it() {
    let sim = Sim::start(SCENARIO);
    let truth = sim.truth();

    // Faults at run time: nodes that die with their advertisements still live, including
    // every node holding dave's vessels (so dave's nodes are unreachable).
    let mut down: Vec<usize> = (20..30).collect();
    let dave = truth["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "dave"))
        .expect("dave");
    down.extend(
        dave["vessels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["node"].as_u64().map(|n| n as usize)),
    );
    sim.set_nodes(&down, Behaviour::Down);
    let truth = sim.truth();
    let want = expected(&sim, &truth);
    assert!(
        want.up > 800 && want.down >= 20,
        "scenario as intended: {want:?}"
    );
    assert_eq!(want.diagnosis["dave"], "nodes_unreachable");
    assert_eq!(want.diagnosis["carol"], "no_vessels_acquired");

    let exporter = Exporter::start(&exporter_config(&sim, &truth));
    let mut prom = PrometheusServer::start(
        &scrape_configs(&exporter.addr, &sim.endpoints.advertise_tcp),
        &[],
    )
    .expect("prometheus starts");
    prom.wait_ready(Duration::from_secs(30)).expect("ready");

    let mut last = Counts::default();
    let result = wait_until(
        Duration::from_secs(110),
        "Prometheus to agree with the truth",
        || {
            last = observed(&prom);
            (last == want).then_some(())
        },
    );
    if let Err(e) = result {
        let bad: Vec<String> = prom
            .targets()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.health != "up")
            .take(5)
            .map(|t| format!("{} {}: {}", t.scrape_pool, t.health, t.last_error))
            .collect();
        panic!(
            "{e}\nwant {want:#?}\ngot  {last:#?}\nunhealthy targets: {bad:#?}\nexporter log:\n{}",
            exporter.log()
        );
    }
    eprintln!("Prometheus agrees with the truth: {last:#?}");
}
