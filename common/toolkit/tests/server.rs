//! The demo exporter over HTTP and HTTPS: exposition formats, gzip, probes, web config.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use seattle_exporter_toolkit::exposition::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use seattle_exporter_toolkit::server::Exporter;
use seattle_exporter_toolkit::testing::wait_until;
use support::{TestServer, basic, https_get, self_signed, write_web_config};

const OM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn promtool_check(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed: run scripts/test-all");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn metrics_in_openmetrics_when_asked() {
    let s = TestServer::start(None).unwrap();
    let r = s.get("/metrics", &[("Accept", OM_ACCEPT)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let body = r.text();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE seattle_demo_events counter\n"),
        "{body}"
    );
    assert!(body.contains("seattle_demo_events_total 7\n"), "{body}");
    assert!(
        body.contains("seattle_scrape_collector_success{collector=\"demo\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("seattle_scrape_collector_success{collector=\"broken\"} 0\n"),
        "{body}"
    );
    assert!(
        body.contains("seattle_scrape_collector_duration_seconds{collector=\"demo\"} "),
        "{body}"
    );
    assert!(
        !body.contains("seattle_demo_partial"),
        "failed collector leaked: {body}"
    );
    assert!(
        body.contains("seattle_exporter_build_info{version=\""),
        "{body}"
    );
    assert!(
        body.contains("seattle_exporter_probes_in_flight 0\n"),
        "{body}"
    );
    assert!(
        body.contains("seattle_exporter_probes_rejected_total{reason=\"too_many_in_flight\"} 0\n"),
        "{body}"
    );
}

#[test]
fn metrics_in_text_format_pass_promtool() {
    let s = TestServer::start(None).unwrap();
    for accept in [None, Some("text/plain"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = s.get("/metrics", &headers);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(TEXT_CONTENT_TYPE));
        let body = r.text();
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE seattle_demo_events_total counter\n"),
            "{body}"
        );
        assert!(
            body.contains("# HELP seattle_demo_temperature A \"quoted\" help text.\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE seattle_demo_latency_seconds histogram\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE seattle_demo_version_info gauge\n"),
            "{body}"
        );
        assert!(body.contains("seattle_demo_traced_total 2\n"), "{body}");
        assert!(
            !body.contains("# UNIT") && !body.contains("trace_id"),
            "{body}"
        );
        let (code, out) = promtool_check(&body);
        assert_eq!(code, 0, "promtool check metrics: {out}\n{body}");
    }
}

#[test]
fn a_stuck_collector_fails_at_the_scrape_deadline() {
    let (release, stuck) = std::sync::mpsc::channel::<()>();
    let exporter = Exporter::new("stuck_exporter")
        .collector(support::DemoCollector)
        .collector(support::StuckCollector(std::sync::Mutex::new(stuck)));
    let s = TestServer::start_exporter(
        exporter,
        std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        None,
    )
    .unwrap();
    let r = s.get(
        "/metrics",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    );
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(
        body.contains("seattle_scrape_collector_success{collector=\"stuck\"} 0\n"),
        "{body}"
    );
    assert!(
        body.contains("seattle_scrape_collector_success{collector=\"demo\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("seattle_demo_events_total 7\n"), "{body}");
    drop(release);
}

#[test]
fn gzip_when_accepted() {
    let s = TestServer::start(None).unwrap();
    let r = s.get("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    let plain = s.get("/metrics", &[]);
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn landing_health_and_ready() {
    let s = TestServer::start(None).unwrap();
    let page = s.get("/", &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("demo_exporter"), "{html}");
    assert!(html.contains("href=\"metrics\""), "{html}");
    assert!(html.contains("<option value=\"hang\">"), "{html}");
    assert!(html.contains("name=\"target\""), "{html}");
    assert_eq!(s.get("/-/healthy", &[]).status, 200);
    assert_eq!(s.get("/-/ready", &[]).status, 200);
    assert_eq!(s.get("/nope", &[]).status, 404);
}

#[test]
fn probe_bad_requests_are_400_and_counted() {
    let s = TestServer::start(None).unwrap();
    assert_eq!(s.get("/probe?target=x&module=nope", &[]).status, 400);
    assert_eq!(s.get("/probe?target=x", &[]).status, 400);
    assert_eq!(s.get("/probe?module=ok", &[]).status, 400);
    assert_eq!(s.get("/probe?module=ok&target=", &[]).status, 400);
    let m = s.get("/metrics", &[]).text();
    assert!(
        m.contains("seattle_exporter_probes_rejected_total{reason=\"unknown_module\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("seattle_exporter_probes_rejected_total{reason=\"missing_target\"} 2\n"),
        "{m}"
    );
}

#[test]
fn probe_success_and_failure_reason() {
    let s = TestServer::start(None).unwrap();
    let ok = s.get("/probe?target=host:1&module=ok", &[("Accept", OM_ACCEPT)]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let body = ok.text();
    assert!(body.contains("probe_success 1\n"), "{body}");
    assert!(body.contains("probe_duration_seconds "), "{body}");
    assert!(body.contains("seattle_demo_probe_answer 5\n"), "{body}");
    assert!(!body.contains("seattle_probe_failure_info"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");

    let fail = s.get("/probe?target=host:1&module=fail", &[]);
    assert_eq!(fail.status, 200);
    let body = fail.text();
    assert!(body.contains("probe_success 0\n"), "{body}");
    assert!(
        body.contains("seattle_probe_failure_info{reason=\"bad_reply\"} 1\n"),
        "{body}"
    );
    assert!(
        !body.contains("target said no"),
        "detail must not be exported: {body}"
    );
    let (code, out) = promtool_check(&body);
    assert_eq!(code, 0, "{out}\n{body}");
}

fn sample_value(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[test]
fn probe_cancelled_at_the_scrape_deadline() {
    let s = TestServer::start(None).unwrap();
    let r = s.get(
        "/probe?target=host:1&module=hang",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    );
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("probe_success 0\n"), "{body}");
    assert!(
        body.contains("seattle_probe_failure_info{reason=\"timeout\"} 1\n"),
        "{body}"
    );
    // Metrics the probe registered before it was cancelled stay.
    assert!(body.contains("seattle_demo_probe_answer 5\n"), "{body}");
    // The budget is 1.5 s minus the 0.5 s offset; the answer is made before the scrape timeout.
    let took = sample_value(&body, "probe_duration_seconds");
    assert!((1.0..1.5).contains(&took), "probe_duration_seconds {took}");
    let m = s.get("/metrics", &[]).text();
    assert!(m.contains("seattle_exporter_probes_in_flight 0\n"), "{m}");
}

#[test]
fn probes_beyond_the_cap_are_refused() {
    let s = TestServer::start(None).unwrap();
    let addr = s.addr.to_string();
    let first = std::thread::spawn(move || {
        seattle_exporter_toolkit::testing::http_get(&addr, "/probe?target=a&module=gate", &[])
            .unwrap()
    });
    wait_until(Duration::from_secs(30), "the gated probe to start", || {
        s.get("/metrics", &[])
            .text()
            .contains("seattle_exporter_probes_in_flight 1\n")
            .then_some(())
    })
    .unwrap();
    let second = s.get("/probe?target=b&module=ok", &[]).text();
    assert!(second.contains("probe_success 0\n"), "{second}");
    assert!(
        second.contains("seattle_probe_failure_info{reason=\"too_many_in_flight\"} 1\n"),
        "{second}"
    );
    s.gate.add_permits(1);
    let first = first.join().unwrap().text();
    assert!(first.contains("probe_success 1\n"), "{first}");
    let m = s.get("/metrics", &[]).text();
    assert!(
        m.contains("seattle_exporter_probes_rejected_total{reason=\"too_many_in_flight\"} 1\n"),
        "{m}"
    );
    assert!(m.contains("seattle_exporter_probes_in_flight 0\n"), "{m}");
}

#[test]
fn probe_debug_shows_the_log() {
    let s = TestServer::start(None).unwrap();
    let r = s.get("/probe?target=host:9&module=fail&debug=true", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("connecting to host:9"), "{body}");
    assert!(body.contains("bad_reply: target said no"), "{body}");
    assert!(body.contains("probe_success 0"), "{body}");
}

#[test]
fn tls_and_basic_auth() {
    let cert = self_signed();
    let config = cert.dir.path().join("web.yml");
    write_web_config(&config, &cert, "alice", "secret");
    let s = TestServer::start(Some(&config)).unwrap();

    let none = https_get(s.addr, &cert.cert, "/metrics", &[]).unwrap();
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    let right = basic("alice", "secret");
    let ok = https_get(s.addr, &cert.cert, "/metrics", &[("Authorization", &right)]).unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("seattle_demo_events_total 7"));
    assert_eq!(ok.header("x-frame-options"), Some("deny"));
    // Again: the answer now comes from the verification cache and must not change.
    let ok = https_get(s.addr, &cert.cert, "/metrics", &[("Authorization", &right)]).unwrap();
    assert_eq!(ok.status, 200);
    for wrong in [
        basic("alice", "wrong"),
        basic("bob", "secret"),
        "Basic !!!".into(),
    ] {
        let r = https_get(s.addr, &cert.cert, "/metrics", &[("Authorization", &wrong)]).unwrap();
        assert_eq!(r.status, 401, "{wrong}");
    }
    // Plain HTTP on the TLS port gets no answer.
    let plain = seattle_exporter_toolkit::testing::http_get(&s.addr.to_string(), "/metrics", &[]);
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status != 200));
}

#[test]
fn web_config_is_reloaded_and_broken_versions_ignored() {
    let cert = self_signed();
    let config = cert.dir.path().join("web.yml");
    write_web_config(&config, &cert, "alice", "secret");
    let s = TestServer::start(Some(&config)).unwrap();
    let get = |user: &str, pw: &str| {
        https_get(
            s.addr,
            &cert.cert,
            "/metrics",
            &[("Authorization", &basic(user, pw))],
        )
        .unwrap()
        .status
    };
    assert_eq!(get("alice", "secret"), 200);

    write_web_config(&config, &cert, "carol", "hunter2");
    wait_until(
        Duration::from_secs(30),
        "the new password to be accepted",
        || (get("carol", "hunter2") == 200).then_some(()),
    )
    .unwrap();
    assert_eq!(get("alice", "secret"), 401);

    std::fs::write(&config, "basic_auth_users: [this is not a map\n").unwrap();
    // Give the watcher time to see the broken file (it looks at most once a second), then check
    // the previous config is still in force: TLS, and carol only.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get("carol", "hunter2"), 200);
    let anonymous = https_get(s.addr, &cert.cert, "/metrics", &[]).unwrap();
    assert_eq!(anonymous.status, 401);
}

#[test]
fn broken_web_config_fails_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web-broken.yml");
    std::fs::write(
        &config,
        "basic_auth_users:\n  alice: x\ntls_server_cfg: {}\n",
    )
    .unwrap();
    let e = TestServer::start(Some(&config))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("web-broken.yml"), "{e}");
    assert!(e.contains("tls_server_cfg"), "{e}");

    std::fs::write(&config, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    let e = TestServer::start(Some(&config))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("web-broken.yml") && e.contains("alice"), "{e}");

    std::fs::write(
        &config,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let e = TestServer::start(Some(&config))
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("web-broken.yml") && e.contains("missing.crt"),
        "{e}"
    );

    let e = TestServer::start(Some(&dir.path().join("absent.yml")))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("absent.yml"), "{e}");
}

#[test]
fn shutdown_lets_requests_in_progress_finish() {
    let s = TestServer::start(None).unwrap();
    let addr = s.addr.to_string();
    let gate = std::sync::Arc::clone(&s.gate);
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            seattle_exporter_toolkit::testing::http_get(&addr, "/probe?target=a&module=gate", &[])
        })
    };
    wait_until(Duration::from_secs(30), "the gated probe to start", || {
        s.get("/metrics", &[])
            .text()
            .contains("seattle_exporter_probes_in_flight 1\n")
            .then_some(())
    })
    .unwrap();
    let stopping = std::thread::spawn(move || s.shutdown());
    // Once new connections are refused, the server is draining; only then let the probe finish.
    wait_until(Duration::from_secs(30), "the listener to close", || {
        std::net::TcpStream::connect(&addr).is_err().then_some(())
    })
    .unwrap();
    gate.add_permits(1);
    let answer = in_flight.join().unwrap().unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        answer.text().contains("probe_success 1\n"),
        "{}",
        answer.text()
    );
    stopping.join().unwrap().unwrap();
}

#[test]
fn custom_telemetry_path() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    for path in ["/x/{y}", "/"] {
        let exporter = Exporter::new("path_exporter")
            .telemetry_path(path)
            .collector(support::DemoCollector);
        let s = TestServer::start_exporter(exporter, std::sync::Arc::clone(&gate), None).unwrap();
        let r = s.get(path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains("seattle_demo_events_total 7"), "{path}");
        if path != "/metrics" {
            assert_eq!(s.get("/metrics", &[]).status, 404);
        }
    }
}

#[test]
fn client_certificate_policies() {
    let server = self_signed();
    let clients = support::client_certs();
    let config = server.dir.path().join("web.yml");
    let good = Some((clients.good.0.as_path(), clients.good.1.as_path()));
    let rogue = Some((clients.rogue.0.as_path(), clients.rogue.1.as_path()));
    // (client_auth_type, [no certificate, CA-signed, self-signed]) → served?
    let cases = [
        ("NoClientCert", [true, true, true]),
        ("RequestClientCert", [true, true, true]),
        ("RequireAnyClientCert", [false, true, true]),
        ("VerifyClientCertIfGiven", [true, true, false]),
        ("RequireAndVerifyClientCert", [false, true, false]),
    ];
    for (auth_type, expected) in cases {
        std::fs::write(
            &config,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: {auth_type}\n",
                server.cert.display(),
                server.key.display(),
                clients.ca.display()
            ),
        )
        .unwrap();
        let s = TestServer::start(Some(&config)).unwrap();
        for (client, want) in [None, good, rogue].into_iter().zip(expected) {
            let served = support::https_get_as(s.addr, &server.cert, client, "/-/healthy", &[])
                .is_ok_and(|r| r.status == 200);
            assert_eq!(
                served, want,
                "{auth_type} with client certificate {client:?}"
            );
        }
    }
}

#[test]
fn tls_version_bounds() {
    let cert = self_signed();
    let config = cert.dir.path().join("web.yml");
    let tls = |min: &str, max: &str| {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: {min}\n  max_version: {max}\n",
            cert.cert.display(),
            cert.key.display()
        )
    };
    std::fs::write(&config, tls("TLS13", "TLS13")).unwrap();
    let s = TestServer::start(Some(&config)).unwrap();
    assert_eq!(
        https_get(s.addr, &cert.cert, "/-/ready", &[])
            .unwrap()
            .status,
        200
    );
    drop(s);
    std::fs::write(&config, tls("TLS13", "TLS12")).unwrap();
    let e = TestServer::start(Some(&config))
        .err()
        .expect("min above max")
        .to_string();
    assert!(e.contains("web.yml") && e.contains("min_version"), "{e}");
    std::fs::write(&config, tls("TLS11", "TLS12")).unwrap();
    let e = TestServer::start(Some(&config))
        .err()
        .expect("TLS11")
        .to_string();
    assert!(e.contains("TLS11"), "{e}");
}

#[test]
fn extra_routes_get_auth_gzip_and_a_landing_link() {
    let body = "[{\"targets\": [\"127.0.0.1:1224\"], \"labels\": {}}]\n".repeat(4);
    let sd_body = body.clone();
    let exporter = Exporter::new("routes_exporter")
        .prober(
            support::DemoProber,
            vec![("ok".to_string(), support::DemoModule::Succeed)],
            seattle_exporter_toolkit::probe::ProbeOptions::default(),
        )
        .probe_target_placeholder("name.example.org")
        .route(
            "/sd",
            "Service <discovery>",
            axum::routing::get(move || async move { sd_body }),
        )
        // Taken by a built-in route: left out instead of panicking.
        .route("/-/healthy", "Shadow", axum::routing::get(|| async { "x" }));
    let cert = self_signed();
    let config = cert.dir.path().join("web.yml");
    write_web_config(&config, &cert, "alice", "secret");
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let s = TestServer::start_exporter(exporter, gate, Some(&config)).unwrap();

    let none = https_get(s.addr, &cert.cert, "/sd", &[]).unwrap();
    assert_eq!(none.status, 401);
    let auth = basic("alice", "secret");
    let plain = https_get(s.addr, &cert.cert, "/sd", &[("Authorization", &auth)]).unwrap();
    assert_eq!(plain.status, 200);
    assert_eq!(plain.text(), body);
    let gzipped = https_get(
        s.addr,
        &cert.cert,
        "/sd",
        &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
    )
    .unwrap();
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(&gzipped.body[..2], &[0x1f, 0x8b], "gzip magic");

    let healthy = https_get(
        s.addr,
        &cert.cert,
        "/-/healthy",
        &[("Authorization", &auth)],
    )
    .unwrap();
    assert_eq!(healthy.text(), "Healthy\n");
    let landing = https_get(s.addr, &cert.cert, "/", &[("Authorization", &auth)])
        .unwrap()
        .text();
    assert!(
        landing.contains("<a href=\"sd\">Service &lt;discovery&gt;</a>"),
        "{landing}"
    );
    assert!(!landing.contains("Shadow"), "{landing}");
    assert!(
        landing.contains("placeholder=\"name.example.org\""),
        "{landing}"
    );
}

#[test]
fn post_helper_sends_the_body() {
    let exporter = Exporter::new("post_exporter").route(
        "/echo",
        "Echo",
        axum::routing::post(|body: String| async move { format!("got {body}") }),
    );
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let s = TestServer::start_exporter(exporter, gate, None).unwrap();
    let r = seattle_exporter_toolkit::testing::post(
        &s.addr.to_string(),
        "/echo",
        &[("Content-Type", "text/plain")],
        b"hello",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "got hello");
}
