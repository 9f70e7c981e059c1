//! Shared helpers: golden files, starting a simulator, raw socket exchanges.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use seattle_simulator::scenario::Scenario;
use seattle_simulator::{Options, Ports, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/seattle-golden")
}

pub fn golden_lines(name: &str) -> Vec<serde_json::Value> {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

pub fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 field is a string"))
        .expect("valid base64")
}

pub async fn start_yaml(yaml: &str) -> Arc<Simulator> {
    let mut sc = Scenario::from_yaml(yaml, "test scenario").expect("test scenario parses");
    sc.resolve_paths(&PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    seattle_simulator::start(Options {
        scenario: sc,
        ports: Ports::default(),
        update_key: None,
    })
    .await
    .expect("simulator starts")
}

/// Sends `bytes`, half-closes nothing, reads until the server closes (30 s guard).
pub async fn exchange(addr: impl tokio::net::ToSocketAddrs, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_all(&mut s).await
}

pub async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("server closed the connection within 30 s");
    buf
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = format!("{}\n", payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}
