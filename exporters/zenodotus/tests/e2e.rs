//! The exporter binary: `--config.check`, `/probe` over HTTP, and the real Prometheus scraping
//! it while it probes the simulator.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seattle_exporter_toolkit::testing::{PrometheusServer, free_port, http_get, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_seattle_zenodotus_exporter");

/// The exporter process, killed on drop.
struct Exporter {
    child: Child,
    addr: String,
}

impl Exporter {
    fn start(config: &Path) -> Exporter {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("exporter starts");
        let e = Exporter { child, addr };
        wait_until(Duration::from_secs(30), "the exporter to listen", || {
            http_get(&e.addr, "/-/healthy", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .expect("exporter healthy");
        e
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("zenodotus.yml");
    std::fs::write(&path, text).expect("config written");
    path
}

#[test]
fn config_check_accepts_the_demo_and_names_the_bad_line() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo.yml");
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", demo.display()))
        .arg("--config.check")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write_config(
        dir.path(),
        "modules:\n  zenodotus:\n    server: 127.0.0.1:5353\n    round_trip: maybe\n",
    );
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", bad.display()))
        .arg("--config.check")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:", bad.display())) && err.contains("round_trip"),
        "{err}"
    );
}

#[test]
fn prometheus_scrapes_probes_of_the_simulator() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt.block_on(common::simulator());
    let ep = sim.endpoints().expect("endpoints");
    let node: SocketAddr = ep.nodes[1].parse().expect("node address");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "modules:\n  zenodotus:\n    server: {dns}\n    advertise: {adv}\n    host_port: {port}\n  \
             zenodotus_zone:\n    server: {dns}\n    advertise: {adv}\n    check_host: false\n    \
             compare_advertise: false\n    zone_check: true\n    round_trip: true\n",
            dns = ep.zenodotus_dns,
            adv = ep.advertise_tcp,
            port = node.port(),
        ),
    );
    let exporter = Exporter::start(&config);

    // The HTTP contract first: 200 with the probe's metrics, 400 for an unknown module.
    let r = http_get(
        &exporter.addr,
        "/probe?target=web.zenodotus.poly.edu&module=zenodotus",
        &[],
    )
    .expect("probe answers");
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("probe_success 1"), "{body}");
    assert!(
        body.contains("seattle_zenodotus_dns_matches_advertise 1"),
        "{body}"
    );
    let r = http_get(&exporter.addr, "/probe?target=x&module=nope", &[]).expect("answers");
    assert_eq!(r.status, 400);

    let relabel = format!(
        "  relabel_configs:\n  - source_labels: [__address__]\n    target_label: __param_target\n  \
         - source_labels: [__param_target]\n    target_label: instance\n  - target_label: __address__\n    \
         replacement: {}\n",
        exporter.addr
    );
    let scrape = format!(
        "- job_name: seattle_zenodotus\n  metrics_path: /probe\n  params:\n    module: [zenodotus]\n  \
         static_configs:\n  - targets: [web.zenodotus.poly.edu, nosuchname.zenodotus.poly.edu]\n{relabel}\
         - job_name: seattle_zenodotus_zone\n  metrics_path: /probe\n  params:\n    module: [zenodotus_zone]\n  \
         static_configs:\n  - targets: [{zone}]\n{relabel}\
         - job_name: seattle_exporters\n  static_configs:\n  - targets: ['{addr}']\n",
        zone = ep.zenodotus_zone,
        addr = exporter.addr,
    );
    let mut prom = PrometheusServer::start(&scrape, &[]).expect("prometheus starts");
    prom.wait_ready(Duration::from_secs(30))
        .expect("prometheus ready");

    let value =
        |q: &str| -> Option<f64> { prom.query(q).ok().and_then(|s| s.first().map(|(_, v)| *v)) };
    let expect = [
        (
            "probe_success{job=\"seattle_zenodotus\",instance=\"web.zenodotus.poly.edu\"}",
            1.0,
        ),
        (
            "seattle_zenodotus_hosts_up{instance=\"web.zenodotus.poly.edu\",method=\"tcp\"}",
            1.0,
        ),
        (
            "seattle_probe_failure_info{instance=\"nosuchname.zenodotus.poly.edu\",reason=\"nxdomain\"}",
            1.0,
        ),
        ("probe_success{job=\"seattle_zenodotus_zone\"}", 1.0),
        ("seattle_zenodotus_round_trip_success", 1.0),
        ("seattle_zenodotus_zone_soa_ok", 1.0),
        ("seattle_exporter_build_info", 1.0),
    ];
    for (q, want) in expect {
        wait_until(Duration::from_secs(30), q, || {
            value(q).filter(|v| *v == want)
        })
        .unwrap_or_else(|e| panic!("{e}; last value {:?}\n{}", value(q), prom.log()));
    }
    let targets = prom.targets().expect("targets");
    assert_eq!(targets.len(), 4);
    for t in targets {
        assert_eq!(
            t.health, "up",
            "{} {}: {}",
            t.scrape_pool, t.scrape_url, t.last_error
        );
    }
    drop(rt);
}
