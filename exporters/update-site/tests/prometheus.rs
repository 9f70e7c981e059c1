//! The real Prometheus (Debian's `/usr/bin/prometheus`) scrapes `/probe` for every built-in module
//! against the simulator, and `/metrics` with the install collector; checked through its HTTP API.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use seattle_exporter_toolkit::server::Server;
use seattle_exporter_toolkit::testing::{PrometheusServer, wait_until};
use seattle_simulator::scenario::{Addressing, Scenario};
use seattle_simulator::{Options, Ports};
use seattle_updatesite_exporter::config::Config;
use seattle_updatesite_exporter::{Cli, install_collector, router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_module() {
    let mut scenario = Scenario::default();
    scenario.nodes.count = 0;
    scenario.nodes.addressing = Addressing::Ports;
    let sim = seattle_simulator::start(Options {
        scenario,
        ports: Ports::default(),
        update_key: None,
    })
    .await
    .unwrap();
    let ep = sim.endpoints().unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sim.publickey"), &ep.update_public_key).unwrap();
    let install = dir.path().join("seattle_repy");
    std::fs::create_dir(&install).unwrap();
    std::fs::write(
        install.join("metainfo"),
        sim.updatesite
            .metainfo(seattle_simulator::scenario::MetainfoState::Valid),
    )
    .unwrap();
    let cfg = dir.path().join("updatesite.yml");
    let text = seattle_updatesite_exporter::config::DEFAULT_CONFIG
        .replace(
            "    prober: updatesite\n",
            "    prober: updatesite\n    updatesite:\n      trusted_key_file: sim.publickey\n",
        )
        .replace(
            "      trusted_key_file: sim.publickey\n    updatesite:\n",
            "      trusted_key_file: sim.publickey\n",
        );
    std::fs::write(&cfg, text).unwrap();
    let config = Config::load(&cfg).unwrap();
    let key_file = dir.path().join("sim.publickey");
    let cli = Cli::parse_from([
        "x",
        "--config.file",
        cfg.to_str().unwrap(),
        "--install.dir",
        install.to_str().unwrap(),
        "--install.site-url",
        &ep.updatesite_url,
        "--install.trusted-key-file",
        key_file.to_str().unwrap(),
    ]);
    let collector = install_collector(&cli).unwrap();
    let server = Server::bind(&["127.0.0.1:0".to_string()], None)
        .await
        .unwrap();
    let exporter = server.local_addrs()[0].to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(router(&cli, config, collector), async move {
        let _ = stopped.await;
    }));

    let modules = [
        ("updatesite", ep.updatesite_url.clone()),
        ("updatesite_full", ep.updatesite_url.clone()),
        ("http", ep.clearinghouse_url.clone()),
        ("cib", ep.cib_xmlrpc_url.clone()),
        ("cib_build", ep.cib_xmlrpc_url.clone()),
        ("lockserver", ep.lockserver_url.clone()),
    ];
    let mut scrape =
        format!("- job_name: exporter\n  static_configs:\n    - targets: ['{exporter}']\n");
    for (module, target) in &modules {
        scrape.push_str(&format!(
            "- job_name: {module}\n  metrics_path: /probe\n  params:\n    module: [{module}]\n    target: ['{target}']\n  static_configs:\n    - targets: ['{exporter}']\n"
        ));
    }
    let jobs: Vec<String> = modules.iter().map(|(m, _)| m.to_string()).collect();
    let _sim = Arc::clone(&sim);
    tokio::task::spawn_blocking(move || {
        let mut prom = PrometheusServer::start(&scrape, &[]).unwrap();
        prom.wait_ready(Duration::from_secs(30)).unwrap();
        let all_up = wait_until(Duration::from_secs(40), "every module probed", || {
            let ok = jobs.iter().all(|job| {
                prom.query(&format!("probe_success{{job=\"{job}\"}}"))
                    .is_ok_and(|s| s.len() == 1 && s[0].1 == 1.0)
            });
            ok.then_some(())
        });
        if all_up.is_err() {
            let states: Vec<_> = jobs
                .iter()
                .map(|job| {
                    (
                        job.clone(),
                        prom.query(&format!("{{job=\"{job}\"}}")).map(|s| {
                            s.into_iter()
                                .filter(|(l, _)| {
                                    l.get("__name__").is_some_and(|n| {
                                        n == "probe_success" || n == "seattle_probe_failure_info"
                                    })
                                })
                                .collect::<Vec<_>>()
                        }),
                    )
                })
                .collect();
            panic!(
                "not every module succeeded: {states:?}\ntargets: {:?}\n{}",
                prom.targets(),
                prom.log()
            );
        }
        let one = |q: &str| -> f64 {
            let s = prom.query(q).unwrap();
            assert_eq!(s.len(), 1, "{q}: {s:?}");
            s[0].1
        };
        assert_eq!(
            one("seattle_updatesite_metainfo_signature_valid{job=\"updatesite\"}"),
            1.0
        );
        assert_eq!(
            one("seattle_updatesite_files_checked{job=\"updatesite_full\"}"),
            4.0
        );
        assert_eq!(one("seattle_cib_build_success{job=\"cib_build\"}"), 1.0);
        assert_eq!(
            one("seattle_lockserver_locks_held{job=\"lockserver\",kind=\"node\"}"),
            0.0
        );
        // /metrics: OpenMetrics accepted, the install collector ran.
        wait_until(Duration::from_secs(30), "install metrics", || {
            prom.query("seattle_install_site_reachable{job=\"exporter\"}")
                .ok()
                .filter(|s| s.len() == 1)
        })
        .unwrap();
        assert_eq!(
            one("seattle_scrape_collector_success{job=\"exporter\",collector=\"install\"}"),
            1.0
        );
        assert_eq!(one("seattle_install_site_reachable{job=\"exporter\"}"), 1.0);
        // The install directory holds no file: all four are outdated.
        assert_eq!(one("seattle_install_outdated_files{job=\"exporter\"}"), 4.0);
        assert_eq!(one("up{job=\"exporter\"}"), 1.0);
    })
    .await
    .unwrap();
}
