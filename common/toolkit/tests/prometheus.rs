//! The real Prometheus scrapes the demo exporter over TLS with basic auth: /metrics (OpenMetrics)
//! and /probe through the usual multi-target relabelling.

mod support;

use std::time::Duration;

use seattle_exporter_toolkit::testing::{PrometheusServer, wait_until};
use support::{TestServer, self_signed, write_web_config};

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let cert = self_signed();
    let web = cert.dir.path().join("web.yml");
    write_web_config(&web, &cert, "prom", "s3cret");
    let exporter = TestServer::start(Some(&web)).unwrap();
    let ca = std::fs::read_to_string(&cert.cert).unwrap();
    let target = exporter.addr.to_string();

    let common = "  scheme: https\n  tls_config:\n    ca_file: ca.crt\n    server_name: localhost\n  basic_auth:\n    username: prom\n    password: s3cret\n";
    let scrape_configs = format!(
        "- job_name: demo\n{common}  static_configs:\n    - targets: ['{target}']\n\
         - job_name: demo_probe\n{common}  metrics_path: /probe\n  params:\n    module: [fail]\n  \
         static_configs:\n    - targets: ['host:1']\n  relabel_configs:\n    \
         - source_labels: [__address__]\n      target_label: __param_target\n    \
         - source_labels: [__param_target]\n      target_label: instance\n    \
         - target_label: __address__\n      replacement: '{target}'\n"
    );
    let mut prom = PrometheusServer::start(&scrape_configs, &[("ca.crt", &ca)]).unwrap();
    prom.wait_ready(Duration::from_secs(30)).unwrap();

    // Prometheus 2.42 first scrapes a new target 5–6 s after start.
    let targets = wait_until(Duration::from_secs(60), "both targets scraped", || {
        let t = prom.targets().ok()?;
        (t.len() == 2 && t.iter().all(|t| t.health != "unknown")).then_some(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
    for t in &targets {
        assert_eq!(t.health, "up", "{t:?}");
        assert_eq!(t.last_error, "", "{t:?}");
    }

    let events = prom
        .query("seattle_demo_events_total{job=\"demo\"}")
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, 7.0);
    let ok = prom
        .query("seattle_scrape_collector_success{job=\"demo\",collector=\"demo\"}")
        .unwrap();
    assert_eq!(ok[0].1, 1.0, "{ok:?}");
    let info = prom.query("seattle_exporter_build_info").unwrap();
    assert!(info[0].0.contains_key("revision"), "{info:?}");

    let success = prom.query("probe_success{job=\"demo_probe\"}").unwrap();
    assert_eq!(success.len(), 1, "{success:?}");
    assert_eq!(success[0].1, 0.0);
    assert_eq!(
        success[0].0.get("instance").map(String::as_str),
        Some("host:1")
    );
    let reason = prom
        .query("seattle_probe_failure_info{job=\"demo_probe\"}")
        .unwrap();
    assert_eq!(
        reason[0].0.get("reason").map(String::as_str),
        Some("bad_reply"),
        "{reason:?}"
    );
}

#[test]
fn prometheus_reports_wrong_credentials() {
    let cert = self_signed();
    let web = cert.dir.path().join("web.yml");
    write_web_config(&web, &cert, "prom", "s3cret");
    let exporter = TestServer::start(Some(&web)).unwrap();
    let scrape_configs = format!(
        "- job_name: demo\n  scheme: https\n  tls_config:\n    insecure_skip_verify: true\n  \
         basic_auth:\n    username: prom\n    password: wrong\n  static_configs:\n    - targets: ['{}']\n",
        exporter.addr
    );
    let mut prom = PrometheusServer::start(&scrape_configs, &[]).unwrap();
    prom.wait_ready(Duration::from_secs(30)).unwrap();
    let t = wait_until(Duration::from_secs(60), "the target scraped", || {
        let t = prom.targets().ok()?;
        t.into_iter().find(|t| t.health != "unknown")
    })
    .unwrap();
    assert_eq!(t.health, "down");
    assert!(t.last_error.contains("401"), "{t:?}");
}
