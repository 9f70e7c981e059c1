//! End-to-end test helpers around the real Prometheus (`/usr/bin/prometheus`, Debian's package).
//! Enabled by the `testing` feature:
//!
//! ```toml
//! [dev-dependencies]
//! seattle-exporter-toolkit = { workspace = true, features = ["testing"] }
//! ```
//!
//! Prometheus 2.42 scrapes a new target 5–6 s after it starts, so wait with [`wait_until`] and a
//! generous timeout (30 s) rather than sleeping.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where Debian installs Prometheus.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Polls `condition` every 100 ms until it returns `Some`, or fails after `timeout` with
/// `what` in the message.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = condition() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.0 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` over plain HTTP/1.0 with extra request headers; blocking, 30 s timeouts.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
    http_request(addr, "GET", path, headers, None)
}

/// `POST path` with `body` over plain HTTP/1.0 (`Content-Length` set; give `Content-Type` in
/// `headers`); blocking, 30 s timeouts.
pub fn post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    http_request(addr, "POST", path, headers, Some(body))
}

fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> anyhow::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body.unwrap_or_default());
    s.write_all(&raw)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a whole HTTP/1.x response (no chunked encoding: HTTP/1.0 answers are not chunked).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..split]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One sample of a query result: labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// A target as `/api/v1/targets` reports it.
#[derive(Debug, Clone)]
pub struct Target {
    pub scrape_pool: String,
    pub scrape_url: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
    pub last_error: String,
}

/// A running Prometheus on 127.0.0.1, killed on drop.
pub struct PrometheusServer {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl PrometheusServer {
    /// Starts Prometheus with a 1 s scrape and evaluation interval. `scrape_configs` is the YAML
    /// list that goes under `scrape_configs:` (entries start at column 0, e.g.
    /// `- job_name: x\n  static_configs: …`). `files` are written into the config directory
    /// first (relative paths in the config resolve there: CA files, password files, rules).
    pub fn start(scrape_configs: &str, files: &[(&str, &str)]) -> anyhow::Result<Self> {
        if !Path::new(PROMETHEUS_BIN).exists() {
            bail!("{PROMETHEUS_BIN} is missing: run scripts/test-all, which installs it");
        }
        let dir = tempfile::tempdir()?;
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content)?;
        }
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {PROMETHEUS_BIN}"))?;
        Ok(Self { child, dir, addr })
    }

    /// `127.0.0.1:PORT` of its web API.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The directory holding its config, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until `/-/ready` answers 200; fails early if Prometheus exited.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("prometheus exited with {status}:\n{}", self.log());
            }
            if http_get(&self.addr, "/-/ready", &[]).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("prometheus not ready after {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn api(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = http_get(&self.addr, path, &[])?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .with_context(|| format!("{path}: not JSON: {}", r.text()))?;
        if v["status"] != "success" {
            bail!("{path}: {}", r.text());
        }
        Ok(v["data"].clone())
    }

    /// Runs an instant query; vector and scalar results become samples.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        let value_of = |v: &serde_json::Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    let labels = s["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    (labels, value_of(&s["value"]))
                })
                .collect()),
            Some("scalar") => Ok(vec![(BTreeMap::new(), value_of(&data["result"]))]),
            other => bail!("unsupported result type {other:?}"),
        }
    }

    /// Active targets with their health and last scrape error.
    pub fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let data = self.api("/api/v1/targets?state=active")?;
        Ok(data["activeTargets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|t| Target {
                scrape_pool: t["scrapePool"].as_str().unwrap_or("").into(),
                scrape_url: t["scrapeUrl"].as_str().unwrap_or("").into(),
                health: t["health"].as_str().unwrap_or("").into(),
                last_error: t["lastError"].as_str().unwrap_or("").into(),
            })
            .collect())
    }

    /// Path of a file in its config directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
