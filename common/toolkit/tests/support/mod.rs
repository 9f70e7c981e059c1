//! A tiny exporter built on the toolkit, served on a free port, plus HTTP(S) clients.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;
use seattle_exporter_toolkit::collector::Collector;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, ProbeOptions, Prober};
use seattle_exporter_toolkit::server::{Exporter, Server};
use seattle_exporter_toolkit::testing::{HttpResponse, parse_response};

/// Collects two metrics.
pub struct DemoCollector;

impl Collector for DemoCollector {
    fn name(&self) -> &'static str {
        "demo"
    }
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let events = Counter::<u64>::default();
        events.inc_by(7);
        registry.register("seattle_demo_events", "Events seen", events);
        let temp = Gauge::<i64>::default();
        temp.set(21);
        registry.register("seattle_demo_temperature", "A \"quoted\" help text", temp);
        // Types whose OpenMetrics form differs most from text 0.0.4.
        let latency = Histogram::new([0.1, 1.0]);
        latency.observe(0.5);
        registry.register_with_unit("seattle_demo_latency", "Latency", Unit::Seconds, latency);
        registry.register(
            "seattle_demo_version",
            "Version",
            Info::new(vec![("v", "1")]),
        );
        let traced = CounterWithExemplar::<Vec<(String, String)>>::default();
        let _ = traced.inc_by(2, Some(vec![("trace_id".into(), "abc".into())]), None);
        registry.register("seattle_demo_traced", "Traced", traced);
        Ok(())
    }
}

/// Always fails after registering something, which must not be exported.
pub struct BrokenCollector;

impl Collector for BrokenCollector {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        registry.register("seattle_demo_partial", "Half done", Gauge::<i64>::default());
        anyhow::bail!("cannot read /proc/demo")
    }
}

/// Blocks until the test drops the sender (a hung NFS stat, say).
pub struct StuckCollector(pub std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl Collector for StuckCollector {
    fn name(&self) -> &'static str {
        "stuck"
    }
    fn collect(&self, _registry: &mut Registry) -> anyhow::Result<()> {
        let rx = self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let _ = rx.recv();
        Ok(())
    }
}

/// What a module of the demo prober does.
pub enum DemoModule {
    Succeed,
    Fail,
    /// Never answers: only the deadline ends it.
    Hang,
    /// Waits until the test releases it.
    Gate(Arc<tokio::sync::Semaphore>),
}

pub struct DemoProber;

impl Prober for DemoProber {
    type Module = DemoModule;
    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a DemoModule,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(async move {
            ctx.log(format_args!("connecting to {target}"));
            let g = Gauge::<i64>::default();
            g.set(5);
            registry.register("seattle_demo_probe_answer", "Answer of the demo target", g);
            match module {
                DemoModule::Succeed => Ok(()),
                DemoModule::Fail => Err(ProbeFailure::new("bad_reply", "target said no")),
                DemoModule::Hang => {
                    std::future::pending::<()>().await;
                    Ok(())
                }
                DemoModule::Gate(s) => {
                    let _permit = s.acquire().await;
                    Ok(())
                }
            }
        })
    }
}

/// A running demo exporter on 127.0.0.1; shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub gate: Arc<tokio::sync::Semaphore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts the demo exporter; `Err` when the web config is unusable.
    pub fn start(web_config: Option<&Path>) -> anyhow::Result<TestServer> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let modules = vec![
            ("ok".to_string(), DemoModule::Succeed),
            ("fail".to_string(), DemoModule::Fail),
            ("hang".to_string(), DemoModule::Hang),
            ("gate".to_string(), DemoModule::Gate(Arc::clone(&gate))),
        ];
        let exporter = Exporter::new("demo_exporter")
            .collector(DemoCollector)
            .collector(BrokenCollector)
            .prober(
                DemoProber,
                modules,
                ProbeOptions {
                    max_in_flight: 1,
                    ..ProbeOptions::default()
                },
            );
        Self::start_exporter(exporter, gate, web_config)
    }

    /// Serves `exporter` on a free port; `gate` is released on drop.
    pub fn start_exporter(
        exporter: Exporter,
        gate: Arc<tokio::sync::Semaphore>,
        web_config: Option<&Path>,
    ) -> anyhow::Result<TestServer> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let server = rt.block_on(Server::bind(&["127.0.0.1:0".to_string()], web_config))?;
        let addr = server.local_addrs()[0];
        let router = exporter.router();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(server.run(router, async {
                let _ = stopped.await;
            }))
        });
        Ok(TestServer {
            addr,
            gate,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Asks the server to stop and waits until `Server::run` returns.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("server thread panicked"))?,
            None => Ok(()),
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        seattle_exporter_toolkit::testing::http_get(&self.addr.to_string(), path, headers)
            .expect("HTTP request")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Let a gated probe finish so shutdown does not wait for it.
        self.gate.add_permits(100);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI.
pub struct Certificate {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl CLI (Debian package openssl) is needed to make test certificates");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, a client certificate it signed, and a self-signed client certificate it did not.
pub struct ClientCerts {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub good: (PathBuf, PathBuf),
    pub rogue: (PathBuf, PathBuf),
}

pub fn client_certs() -> ClientCerts {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
    ]);
    openssl(&ca);
    let (csr, key, crt) = (p("client.csr"), p("client.key"), p("client.crt"));
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-subj", "/CN=client", "-keyout", &key, "-out", &csr]);
    openssl(&req);
    let ext = p("client.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &crt,
        "-extfile",
        &ext,
    ]);
    let (rkey, rcrt) = (p("rogue.key"), p("rogue.crt"));
    let mut rogue = vec!["req", "-x509"];
    rogue.extend(ec);
    rogue.extend([
        "-days",
        "2",
        "-subj",
        "/CN=rogue",
        "-keyout",
        &rkey,
        "-out",
        &rcrt,
    ]);
    rogue.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
    rogue.extend(["-addext", "extendedKeyUsage=clientAuth"]);
    openssl(&rogue);
    ClientCerts {
        ca: ca_crt.into(),
        good: (crt.into(), key.into()),
        rogue: (rcrt.into(), rkey.into()),
        dir,
    }
}

pub fn self_signed() -> Certificate {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl CLI (Debian package openssl) is needed to make a test certificate");
    assert!(status.success(), "openssl failed");
    Certificate { dir, cert, key }
}

/// `GET path` over HTTPS (HTTP/1.0), trusting only `ca`.
pub fn https_get(
    addr: SocketAddr,
    ca: &Path,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<HttpResponse> {
    https_get_as(addr, ca, None, path, headers)
}

/// Like [`https_get`], presenting a client certificate `(cert, key)` when given.
pub fn https_get_as(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<HttpResponse> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert, key)) => config.with_client_auth_cert(
            rustls_pki_types::CertificateDer::pem_file_iter(cert)?
                .collect::<Result<Vec<_>, _>>()?,
            rustls_pki_types::PrivateKeyDer::from_pem_file(key)?,
        )?,
    };
    let name = rustls_pki_types::ServerName::try_from("localhost")?.to_owned();
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server may close without close_notify after HTTP/1.0; the body is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    parse_response(&raw)
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Writes a web config with TLS from `cert` and one bcrypt user.
pub fn write_web_config(path: &Path, cert: &Certificate, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        path,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  {user}: {hash}\n",
            cert.cert.display(),
            cert.key.display()
        ),
    )
    .unwrap();
}
