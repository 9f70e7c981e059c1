//! End to end against the simulated deployment (`seattle_simulator`, started in-process): every
//! module through the real `/probe` endpoint, every metainfo fault, and a simulated install.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_exporter_toolkit::server::Server;
use seattle_exporter_toolkit::testing::{http_get, url_encode};
use seattle_simulator::scenario::{Addressing, Lock, MetainfoState, Scenario};
use seattle_simulator::{Endpoints, Options, Ports, Simulator};
use seattle_updatesite_exporter::collector::InstallCollector;
use seattle_updatesite_exporter::config::Config;
use seattle_updatesite_exporter::http_client::HttpClient;
use seattle_updatesite_exporter::{Cli, router};

struct World {
    sim: Arc<Simulator>,
    ep: Endpoints,
    exporter: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_simulator() -> (Arc<Simulator>, Endpoints) {
    let mut scenario = Scenario::default();
    scenario.nodes.count = 0;
    scenario.nodes.addressing = Addressing::Ports;
    scenario.lockserver.locks = vec![
        Lock {
            kind: "node".into(),
            name: "node-a".into(),
            held_seconds: 120.0,
        },
        Lock {
            kind: "node".into(),
            name: "node-b".into(),
            held_seconds: 5.0,
        },
        Lock {
            kind: "user".into(),
            name: "alice".into(),
            held_seconds: 30.0,
        },
    ];
    let sim = seattle_simulator::start(Options {
        scenario,
        ports: Ports::default(),
        update_key: None,
    })
    .await
    .expect("simulator starts");
    let ep = sim.endpoints().expect("endpoints");
    (sim, ep)
}

/// The built-in modules, but trusting the simulator's update key; plus `http_sim_ca`, an http
/// module trusting the simulator's HTTPS certificate authority.
fn config_text(dir: &Path, ep: &Endpoints) -> String {
    std::fs::write(dir.join("sim.publickey"), &ep.update_public_key).unwrap();
    std::fs::write(dir.join("sim-ca.pem"), &ep.tls_ca_cert).unwrap();
    let mut text = seattle_updatesite_exporter::config::DEFAULT_CONFIG
        .replace(
            "    prober: updatesite\n",
            "    prober: updatesite\n    updatesite:\n      trusted_key_file: sim.publickey\n",
        )
        .replace(
            "    updatesite:\n      trusted_key_file: sim.publickey\n    updatesite:\n      full_check: true\n",
            "    updatesite:\n      trusted_key_file: sim.publickey\n      full_check: true\n",
        );
    text.push_str("  http_sim_ca:\n    prober: http\n    http:\n      ca_file: sim-ca.pem\n");
    text
}

async fn start() -> World {
    let (sim, ep) = start_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("updatesite.yml");
    std::fs::write(&cfg, config_text(dir.path(), &ep)).unwrap();
    let config = Config::load(&cfg).unwrap();
    assert!(config.modules["updatesite_full"].updatesite.full_check);
    let cli = Cli::parse_from(["x", "--config.file", cfg.to_str().unwrap()]);
    let server = Server::bind(&["127.0.0.1:0".to_string()], None)
        .await
        .unwrap();
    let exporter = server.local_addrs()[0].to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(router(&cli, config, None), async move {
        let _ = stopped.await;
    }));
    World {
        sim,
        ep,
        exporter,
        _dir: dir,
        _stop: stop,
    }
}

/// `/probe` through the real endpoint, with Prometheus' scrape-timeout header.
async fn probe(w: &World, module: &str, target: &str, scrape_timeout: &str) -> String {
    let addr = w.exporter.clone();
    let path = format!("/probe?module={module}&target={}", url_encode(target));
    let timeout = scrape_timeout.to_string();
    let r = tokio::task::spawn_blocking(move || {
        http_get(
            &addr,
            &path,
            &[("X-Prometheus-Scrape-Timeout-Seconds", timeout.as_str())],
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of the series `series` (name plus labels exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn reason(text: &str) -> Option<String> {
    let l = text
        .lines()
        .find(|l| l.starts_with("seattle_probe_failure_info{"))?;
    Some(l.split('"').nth(1)?.to_string())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn set_metainfo(sim: &Simulator, s: MetainfoState) {
    *sim.updatesite.state.lock().unwrap() = s;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updatesite_valid_and_every_fault() {
    let w = start().await;
    let site = w.ep.updatesite_url.clone();

    let t = probe(&w, "updatesite", &site, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_http_status_code"), Some(200.0));
    assert_eq!(
        value(&t, "seattle_updatesite_metainfo_signature_valid"),
        Some(1.0)
    );
    assert_eq!(value(&t, "seattle_updatesite_metainfo_files"), Some(4.0));
    assert_eq!(value(&t, "seattle_http_tls"), Some(0.0));
    assert!(value(&t, "seattle_http_tls_cert_expiry_timestamp_seconds").is_none());
    let signed = value(&t, "seattle_updatesite_metainfo_signed_timestamp_seconds").unwrap();
    let expiry = value(&t, "seattle_updatesite_metainfo_expiry_timestamp_seconds").unwrap();
    // The simulator signs at request time; expiry is 30 days later (writemetainfo.py).
    assert!((signed - now()).abs() < 60.0, "{signed}");
    assert!(
        (expiry - signed - 2_592_000.0).abs() < 0.02,
        "{expiry} {signed}"
    );
    for phase in ["resolve", "connect", "tls", "processing", "transfer"] {
        let s = format!("seattle_http_duration_seconds{{phase=\"{phase}\"}}");
        assert!(value(&t, &s).is_some(), "{phase} missing:\n{t}");
    }
    assert!(value(&t, "seattle_http_response_body_bytes").unwrap() > 0.0);
    // The base without its trailing slash reaches the same metainfo.
    let t = probe(&w, "updatesite", site.trim_end_matches('/'), "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");

    let t = probe(&w, "updatesite_full", &site, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_updatesite_files_checked"), Some(4.0));
    for kind in ["sha1", "size", "missing"] {
        let s = format!("seattle_updatesite_files_mismatched{{kind=\"{kind}\"}}");
        assert_eq!(value(&t, &s), Some(0.0), "{kind}\n{t}");
    }

    // Each fault fails with its own reason, inside the 3 s scrape timeout.
    for (state, want) in [
        (MetainfoState::Expired, "metainfo_expired"),
        (MetainfoState::OtherKey, "signature_invalid"),
        (MetainfoState::Missing, "http_status"),
        (MetainfoState::Truncated, "bad_metainfo"),
        (MetainfoState::Oversized, "too_large"),
        (MetainfoState::SlowDrip, "timeout"),
    ] {
        set_metainfo(&w.sim, state);
        let t = probe(&w, "updatesite", &site, "3").await;
        assert_eq!(value(&t, "probe_success"), Some(0.0), "{state:?}\n{t}");
        assert_eq!(reason(&t).as_deref(), Some(want), "{state:?}\n{t}");
        match state {
            MetainfoState::Missing => {
                assert_eq!(value(&t, "seattle_http_status_code"), Some(404.0));
                assert!(value(&t, "seattle_updatesite_metainfo_signature_valid").is_none());
            }
            MetainfoState::OtherKey => assert_eq!(
                value(&t, "seattle_updatesite_metainfo_signature_valid"),
                Some(0.0)
            ),
            MetainfoState::Expired => {
                assert_eq!(
                    value(&t, "seattle_updatesite_metainfo_signature_valid"),
                    Some(1.0)
                );
                let exp =
                    value(&t, "seattle_updatesite_metainfo_expiry_timestamp_seconds").unwrap();
                assert!(exp < now(), "{exp}");
            }
            MetainfoState::Oversized => {
                // Reading stopped at the 1 MiB cap.
                let read = value(&t, "seattle_http_response_body_bytes").unwrap();
                assert!(read <= 1_048_576.0, "{read}");
            }
            _ => {}
        }
    }
    set_metainfo(&w.sim, MetainfoState::Valid);
    let t = probe(&w, "updatesite", &site, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_key_rejects_the_simulated_site() {
    let (_sim, ep) = start_simulator().await;
    let config = Config::builtin().unwrap();
    let cli = Cli::parse_from(["x"]);
    let server = Server::bind(&["127.0.0.1:0".to_string()], None)
        .await
        .unwrap();
    let addr = server.local_addrs()[0].to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(router(&cli, config, None), async move {
        let _ = stopped.await;
    }));
    let path = format!(
        "/probe?module=updatesite&target={}",
        url_encode(&ep.updatesite_url)
    );
    let r = tokio::task::spawn_blocking(move || http_get(&addr, &path, &[]))
        .await
        .unwrap()
        .unwrap();
    let t = r.text();
    assert_eq!(reason(&t).as_deref(), Some("signature_invalid"), "{t}");
}

/// The simulated clearinghouse over HTTPS: trusted through `ca_file`, its certificate's expiry
/// exported; untrusted by the built-in web roots; gone with the site when it is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_clearinghouse() {
    let w = start().await;
    let url = &w.ep.clearinghouse_https_url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let t = probe(&w, "http_sim_ca", url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_http_tls"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_http_status_code"), Some(200.0), "{t}");
    assert_eq!(
        value(&t, "seattle_http_tls_cert_expiry_timestamp_seconds"),
        Some(w.ep.tls_cert_not_after as f64),
        "{t}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let left = w.ep.tls_cert_not_after - now;
    assert!((89 * 86400..=90 * 86400).contains(&left), "{left}");

    let t = probe(&w, "http", url, "5").await;
    assert_eq!(reason(&t).as_deref(), Some("tls_error"), "{t}");

    let clearinghouse = w
        .sim
        .services
        .iter()
        .find(|s| s.name == "clearinghouse")
        .unwrap();
    clearinghouse
        .set_behaviour(seattle_simulator::scenario::Behaviour::Down)
        .await
        .unwrap();
    let t = probe(&w, "http_sim_ca", url, "5").await;
    assert_eq!(reason(&t).as_deref(), Some("connection_refused"), "{t}");
    clearinghouse
        .set_behaviour(seattle_simulator::scenario::Behaviour::Normal)
        .await
        .unwrap();
    let t = probe(&w, "http_sim_ca", url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cib_and_lockserver_modules() {
    let w = start().await;

    let t = probe(&w, "http", &w.ep.clearinghouse_url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_http_status_code"), Some(200.0));
    let missing = format!("{}updatesite/nothing-here", w.ep.updatesite_url);
    let t = probe(&w, "http", &missing, "5").await;
    assert_eq!(reason(&t).as_deref(), Some("http_status"), "{t}");
    let t = probe(&w, "http", "not a url", "5").await;
    assert_eq!(reason(&t).as_deref(), Some("bad_target"), "{t}");

    let t = probe(&w, "cib", &w.ep.cib_xmlrpc_url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(
        value(&t, "seattle_cib_api_version_info{version=\"2.0\"}"),
        Some(1.0)
    );
    assert_eq!(value(&t, "seattle_cib_api_version_ok"), Some(1.0));
    assert!(value(&t, "seattle_cib_build_success").is_none());
    let t = probe(&w, "cib_build", &w.ep.cib_xmlrpc_url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(value(&t, "seattle_cib_build_success"), Some(1.0), "{t}");
    for step in ["api_version", "build_installers", "get_urls"] {
        let s = format!("seattle_cib_step_duration_seconds{{step=\"{step}\"}}");
        assert!(value(&t, &s).is_some(), "{step}\n{t}");
    }
    // Something that answers 200 but is not XML-RPC.
    let not_xmlrpc = format!("{}metainfo", w.ep.updatesite_url);
    let t = probe(&w, "cib", &not_xmlrpc, "5").await;
    assert_eq!(reason(&t).as_deref(), Some("bad_reply"), "{t}");

    let t = probe(&w, "lockserver", &w.ep.lockserver_url, "5").await;
    assert_eq!(value(&t, "probe_success"), Some(1.0), "{t}");
    assert_eq!(
        value(&t, "seattle_lockserver_locks_held{kind=\"node\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(&t, "seattle_lockserver_locks_held{kind=\"user\"}"),
        Some(1.0)
    );
    assert_eq!(value(&t, "seattle_lockserver_sessions"), Some(1.0));
    let age = value(&t, "seattle_lockserver_oldest_lock_age_seconds").unwrap();
    // Taken 120 s before the simulator started; the newest lock is 5 s old.
    assert!((120.0..600.0).contains(&age), "{age}");

    // Nothing listening.
    let closed = format!(
        "http://127.0.0.1:{}/",
        seattle_exporter_toolkit::testing::free_port()
    );
    let t = probe(&w, "lockserver", &closed, "5").await;
    assert_eq!(reason(&t).as_deref(), Some("connection_refused"), "{t}");
    assert_eq!(value(&t, "seattle_http_status_code"), Some(0.0), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_one_changed_file() {
    let (sim, ep) = start_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let install = dir.path().join("seattle_repy");
    for (path, data) in seattle_simulator::updatesite::site_files() {
        let p = install.join(&path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::write(
        install.join("metainfo"),
        sim.updatesite.metainfo(MetainfoState::Valid),
    )
    .unwrap();
    let key = seattle_protocol::keys::PublicKey::parse(&ep.update_public_key).unwrap();
    let proc_root = tempfile::tempdir().unwrap();
    let collector = Arc::new(
        InstallCollector::new(
            install.clone(),
            ep.updatesite_url.clone(),
            Arc::new(HttpClient::new(None, 1 << 20, 10).unwrap()),
            Arc::new(key),
            Duration::from_secs(5),
        )
        .with_proc_root(proc_root.path().to_path_buf()),
    );
    let collect = |c: Arc<InstallCollector>| async move {
        tokio::task::spawn_blocking(move || {
            let mut r = Registry::default();
            c.collect(&mut r).unwrap();
            let mut out = String::new();
            prometheus_client::encoding::text::encode_registry(&mut out, &r).unwrap();
            out
        })
        .await
        .unwrap()
    };

    let t = collect(collector.clone()).await;
    assert_eq!(
        value(&t, "seattle_install_site_reachable"),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "seattle_install_outdated_files"),
        Some(0.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "seattle_install_softwareupdater_running"),
        Some(0.0)
    );
    assert!(
        value(
            &t,
            "seattle_install_local_metainfo_signed_timestamp_seconds"
        )
        .is_some()
    );

    std::fs::write(install.join("repy.py"), b"# locally modified\n").unwrap();
    std::fs::create_dir(proc_root.path().join("77")).unwrap();
    std::fs::write(
        proc_root.path().join("77/cmdline"),
        b"python\0softwareupdater.py\0",
    )
    .unwrap();
    let t = collect(collector.clone()).await;
    assert_eq!(value(&t, "seattle_install_up_to_date"), Some(0.0), "{t}");
    assert_eq!(
        value(&t, "seattle_install_outdated_files"),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "seattle_install_softwareupdater_running"),
        Some(1.0)
    );

    // The site down: nothing to compare with.
    set_metainfo(&sim, MetainfoState::Missing);
    let t = collect(collector.clone()).await;
    assert_eq!(
        value(&t, "seattle_install_site_reachable"),
        Some(0.0),
        "{t}"
    );
    assert!(value(&t, "seattle_install_up_to_date").is_none(), "{t}");
    assert!(value(&t, "seattle_install_site_metainfo_signed_timestamp_seconds").is_none());
}
