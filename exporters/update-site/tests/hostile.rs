//! The timed client against servers that misbehave: each failure has its own bounded reason and
//! ends by the probe deadline. Also: redirects are followed and counted.

use std::time::Duration;

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, Prober};
use seattle_updatesite_exporter::config::Config;
use seattle_updatesite_exporter::prober::UpdateSiteProber;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw TCP server: reads the request head, then `answer` decides what to write.
async fn raw_server(answer: &'static [u8], then_hang: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer).await;
                if then_hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    format!("http://{addr}/")
}

async fn probe(target: &str, deadline: Duration) -> (Result<(), &'static str>, String) {
    let config = Config::builtin().unwrap();
    let ctx = ProbeContext::new(target, tokio::time::Instant::now() + deadline, false);
    let mut registry = Registry::default();
    let r = UpdateSiteProber::default()
        .probe(target, &config.modules["http"], &ctx, &mut registry)
        .await
        .map_err(|f| f.reason);
    let mut t = String::new();
    prometheus_client::encoding::text::encode_registry(&mut t, &registry).unwrap();
    (r, t)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers() {
    let cases: [(&'static [u8], bool, &str); 5] = [
        (b"\x00\xff garbage\r\n\r\n", false, "bad_reply"),
        (b"", false, "connection_closed"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
            false,
            "connection_closed",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            true,
            "timeout",
        ),
        (b"", true, "timeout"),
    ];
    for (answer, hang, want) in cases {
        let url = raw_server(answer, hang).await;
        let (r, t) = probe(&url, Duration::from_secs(1)).await;
        assert_eq!(r, Err(want), "{answer:?}\n{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_cap() {
    // 2 MiB in chunks without Content-Length: reading stops at the 1 MiB cap.
    let chunk = format!("100000\r\n{}\r\n", "x".repeat(0x100000));
    let body =
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n");
    let url = raw_server(Box::leak(body.into_bytes().into_boxed_slice()), false).await;
    let (r, t) = probe(&url, Duration::from_secs(5)).await;
    assert_eq!(r, Err("too_large"), "{t}");
    assert!(value(&t, "seattle_http_response_body_bytes").unwrap() <= 1_048_576.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_and_counted() {
    let final_url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false).await;
    let redirect =
        format!("HTTP/1.1 302 Found\r\nLocation: {final_url}\r\nContent-Length: 0\r\n\r\n");
    let url = raw_server(Box::leak(redirect.into_bytes().into_boxed_slice()), false).await;
    let (r, t) = probe(&url, Duration::from_secs(5)).await;
    assert_eq!(r, Ok(()), "{t}");
    assert_eq!(value(&t, "seattle_http_redirects"), Some(1.0));
    assert_eq!(value(&t, "seattle_http_status_code"), Some(200.0));
    assert_eq!(value(&t, "seattle_http_response_body_bytes"), Some(2.0));
}
