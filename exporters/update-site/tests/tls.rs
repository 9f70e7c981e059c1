//! HTTPS: the handshake is timed, the leaf certificate's notAfter exported, and an untrusted
//! certificate is a `tls_error`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use seattle_exporter_toolkit::probe::{ProbeContext, Prober};
use seattle_updatesite_exporter::config::Config;
use seattle_updatesite_exporter::prober::UpdateSiteProber;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS server answering every request with `ok`; returns its port.
async fn tls_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

async fn probe(config: &Config, module: &str, target: &str) -> (Result<(), String>, String) {
    let prober = UpdateSiteProber::default();
    let ctx = ProbeContext::new(
        target,
        tokio::time::Instant::now() + Duration::from_secs(5),
        false,
    );
    let mut registry = Registry::default();
    let r = prober
        .probe(target, &config.modules[module], &ctx, &mut registry)
        .await
        .map_err(|f| f.reason.to_string());
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &registry).unwrap();
    (r, text)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_configured_ca() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let not_after = rcgen::date_time_ymd(2031, 5, 6);
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
    let port = tls_server(
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .await;
    let config = Config::parse(
        &dir.path().join("c.yml"),
        "modules:\n  trusting:\n    prober: http\n    http:\n      ca_file: ca.pem\n  default_roots:\n    prober: http\n",
    )
    .unwrap();
    let url = format!("https://localhost:{port}/");

    let (r, t) = probe(&config, "trusting", &url).await;
    assert_eq!(r, Ok(()), "{t}");
    assert_eq!(value(&t, "seattle_http_tls"), Some(1.0));
    assert_eq!(value(&t, "seattle_http_status_code"), Some(200.0));
    assert_eq!(value(&t, "seattle_http_response_body_bytes"), Some(2.0));
    assert_eq!(
        value(&t, "seattle_http_tls_cert_expiry_timestamp_seconds"),
        Some(not_after.unix_timestamp() as f64),
        "{t}"
    );
    assert!(value(&t, "seattle_http_duration_seconds{phase=\"tls\"}").unwrap() > 0.0);

    // The same server is not trusted by the built-in web roots.
    let (r, t) = probe(&config, "default_roots", &url).await;
    assert_eq!(r, Err("tls_error".to_string()), "{t}");
    assert!(value(&t, "seattle_http_tls_cert_expiry_timestamp_seconds").is_none());
}
