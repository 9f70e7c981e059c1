//! Test plumbing: the simulator in-process, the exporter binary as a child process.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use seattle_exporter_toolkit::testing::{free_port, http_get, wait_until};
use seattle_simulator::scenario::Scenario;
use seattle_simulator::{Options, Ports, Simulator};

/// A simulator on its own runtime (the test thread stays free for blocking HTTP).
pub struct Sim {
    pub rt: tokio::runtime::Runtime,
    pub sim: Arc<Simulator>,
    pub endpoints: seattle_simulator::Endpoints,
}

impl Sim {
    pub fn start(scenario_yaml: &str) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let scenario = Scenario::from_yaml(scenario_yaml, "test scenario").expect("scenario");
        let sim = rt
            .block_on(seattle_simulator::start(Options {
                scenario,
                ports: Ports::default(),
                update_key: None,
            }))
            .expect("simulator starts");
        let endpoints = sim.endpoints().expect("endpoints");
        Sim { rt, sim, endpoints }
    }

    /// The scenario's truth from the control endpoint.
    pub fn truth(&self) -> serde_json::Value {
        let url = &self.endpoints.control_url;
        let rest = url.strip_prefix("http://").expect("http control url");
        let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let r = http_get(addr, &format!("{path}truth"), &[]).expect("truth");
        assert_eq!(r.status, 200, "truth: {}", r.text());
        serde_json::from_slice(&r.body).expect("truth is JSON")
    }

    /// Switches nodes' behaviour (advertisements stay, like a node that just died).
    pub fn set_nodes(&self, nodes: &[usize], b: seattle_simulator::scenario::Behaviour) {
        for &i in nodes {
            self.rt
                .block_on(self.sim.set_node(i, b, false))
                .expect("set node");
        }
    }

    pub fn set_advertise(&self, tcp: seattle_simulator::scenario::Behaviour) {
        *self
            .sim
            .advertise_tcp
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = tcp;
    }

    pub fn set_advertise_udp(&self, udp: seattle_simulator::scenario::Behaviour) {
        *self
            .sim
            .advertise_udp
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = udp;
    }
}

/// The exporter binary, killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

impl Exporter {
    pub fn start(config_yaml: &str) -> Exporter {
        let dir = std::env::temp_dir().join(format!(
            "node-exporter-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("node.yml");
        std::fs::File::create(&config)
            .and_then(|mut f| f.write_all(config_yaml.as_bytes()))
            .expect("config written");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("exporter.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_seattle_node_exporter"))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--config.file={}", config.display()))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("exporter starts");
        let e = Exporter { child, addr, dir };
        wait_until(Duration::from_secs(20), "exporter ready", || {
            http_get(&e.addr, "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .unwrap_or_else(|err| panic!("{err}\n{}", e.log()));
        e
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("exporter.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A probe's metrics as (name{labels} → value) lines, parsed loosely (tests only).
pub fn probe(exporter: &str, module: &str, target: &str, timeout_s: f64) -> ProbeResult {
    let path = format!(
        "/probe?module={module}&target={}",
        seattle_exporter_toolkit::testing::url_encode(target)
    );
    let timeout = format!("{timeout_s}");
    let r = http_get(
        exporter,
        &path,
        &[("X-Prometheus-Scrape-Timeout-Seconds", timeout.as_str())],
    )
    .expect("probe answered");
    assert_eq!(r.status, 200, "{}", r.text());
    ProbeResult { text: r.text() }
}

pub struct ProbeResult {
    pub text: String,
}

impl ProbeResult {
    /// The value of the first sample whose line starts with `prefix` (name plus labels).
    pub fn value(&self, prefix: &str) -> Option<f64> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub fn success(&self) -> bool {
        self.value("probe_success") == Some(1.0)
    }

    pub fn reason(&self) -> Option<String> {
        let line = self
            .text
            .lines()
            .find(|l| l.starts_with("seattle_probe_failure_info{"))?;
        let start = line.find("reason=\"")? + 8;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    }
}

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
