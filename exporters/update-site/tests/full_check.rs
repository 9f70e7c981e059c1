//! `full_check`: a site whose files differ from its metainfo (hash, size, missing) fails with
//! `files_mismatched` and counts each kind. The site is a small in-test server; the metainfo is
//! written and signed by the simulator's own writer.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, Prober};
use seattle_simulator::keys::KeyPair;
use seattle_simulator::updatesite::write_metainfo;
use seattle_updatesite_exporter::config::Config;
use seattle_updatesite_exporter::prober::UpdateSiteProber;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_are_counted_by_kind() {
    let key = KeyPair::generate(512, 11);
    let listed: Vec<(String, Vec<u8>)> = vec![
        ("good.py".into(), b"good\n".to_vec()),
        ("hash.py".into(), b"AAAA\n".to_vec()),
        ("size.py".into(), b"short\n".to_vec()),
        ("gone.py".into(), b"gone\n".to_vec()),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let metainfo = write_metainfo(&listed, &key, now);
    // What the site really serves: same size other bytes, longer, and nothing.
    let app = Router::new()
        .route(
            "/site/metainfo",
            axum::routing::get(move || async move { metainfo.clone() }),
        )
        .route("/site/good.py", axum::routing::get(|| async { "good\n" }))
        .route("/site/hash.py", axum::routing::get(|| async { "BBBB\n" }))
        .route(
            "/site/size.py",
            axum::routing::get(|| async { "much longer than listed\n" }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found").into_response() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.publickey"), key.public().key_string()).unwrap();
    let config = Config::parse(
        &dir.path().join("c.yml"),
        "modules:\n  full:\n    prober: updatesite\n    updatesite:\n      trusted_key_file: k.publickey\n      full_check: true\n      full_check_concurrency: 2\n",
    )
    .unwrap();
    let target = format!("http://127.0.0.1:{port}/site");
    let ctx = ProbeContext::new(
        target.as_str(),
        tokio::time::Instant::now() + Duration::from_secs(5),
        false,
    );
    let mut registry = Registry::default();
    let r = UpdateSiteProber::default()
        .probe(&target, &config.modules["full"], &ctx, &mut registry)
        .await;
    let mut t = String::new();
    prometheus_client::encoding::text::encode_registry(&mut t, &registry).unwrap();
    assert_eq!(r.map_err(|f| f.reason), Err("files_mismatched"), "{t}");
    assert_eq!(
        value(&t, "seattle_updatesite_files_checked"),
        Some(4.0),
        "{t}"
    );
    for (kind, n) in [("sha1", 1.0), ("size", 1.0), ("missing", 1.0)] {
        let s = format!("seattle_updatesite_files_mismatched{{kind=\"{kind}\"}}");
        assert_eq!(value(&t, &s), Some(n), "{kind}\n{t}");
    }
    assert_eq!(
        value(&t, "seattle_updatesite_metainfo_signature_valid"),
        Some(1.0)
    );
}
