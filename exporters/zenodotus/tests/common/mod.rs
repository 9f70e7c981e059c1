//! Shared helpers: a small simulated world, running one probe, reading its metrics.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use seattle_simulator::scenario::Scenario;
use seattle_simulator::{Options, Ports, Simulator};
use seattle_zenodotus_exporter::config::{Module, Server};
use seattle_zenodotus_exporter::prober::ZenodotusProber;
use tokio::time::Instant;

/// Node 0 is down, node 1 up; names as in the demo scenario. `ports` addressing keeps every
/// node on 127.0.0.1 with its own port, so parallel tests never fight over 127.x.y.z:1224.
pub const SCENARIO: &str = "\
seed: 11
nodes:
  count: 3
  addressing: ports
  port: 0
  vessels_per_node: 3
  hostile:
    - node: 0
      behaviour: down
zenodotus:
  zone: zenodotus.poly.edu
  names:
    - name: hello
      values: [\"1.2.3.4\", \"1.2.3.5\"]
    - name: bad
      values: [\"1.2.3.255\", \"not-an-ip\"]
    - name: web
      node: 1
    - name: gone
      node: 0
";

pub async fn simulator() -> Arc<Simulator> {
    let sc = Scenario::from_yaml(SCENARIO, "test scenario").expect("test scenario parses");
    seattle_simulator::start(Options {
        scenario: sc,
        ports: Ports::default(),
        update_key: None,
    })
    .await
    .expect("simulator starts")
}

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seattle-golden")
}

/// A module with every option off, asking `server`.
pub fn module(server: &str) -> Module {
    Module {
        server: Server::Addr(server.parse().expect("server address")),
        advertise: "127.0.0.1:9".into(),
        check_host: false,
        host_port: 1224,
        compare_advertise: false,
        round_trip: false,
        zone_check: false,
    }
}

/// What one probe gave: its outcome and its metrics in the text format.
pub struct Outcome {
    pub result: Result<(), ProbeFailure>,
    pub text: String,
}

impl Outcome {
    pub fn reason(&self) -> Option<&'static str> {
        self.result.as_ref().err().map(|f| f.reason)
    }

    /// The value of a sample, `name` or `name{labels}` exactly as exposed.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.text.lines().find_map(|l| {
            let rest = l.strip_prefix(series)?;
            let rest = rest.strip_prefix(' ')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }

    pub fn has(&self, prefix: &str) -> bool {
        self.text.lines().any(|l| l.starts_with(prefix))
    }
}

/// Runs one probe with the toolkit's cancellation at `budget`, like `/probe` does.
pub async fn probe(target: &str, module: &Module, budget: Duration) -> Outcome {
    let prober = ZenodotusProber::new();
    let deadline = Instant::now() + budget;
    let ctx = ProbeContext::new(target, deadline, false);
    let mut registry = Registry::default();
    let result =
        tokio::time::timeout_at(deadline, prober.probe(target, module, &ctx, &mut registry))
            .await
            .unwrap_or_else(|_| Err(ProbeFailure::new("timeout", "cancelled at the deadline")));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("metrics encode");
    Outcome { result, text }
}
