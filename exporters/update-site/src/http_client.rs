//! A small HTTP/1.1 client that times each phase like blackbox's `probe_http_duration_seconds`
//! (resolve, connect, tls, processing = request sent to first response byte, transfer = body),
//! built from tokio's `TcpStream`, tokio-rustls and hyper's `client::conn::http1`.
//!
//! The rustls `ClientConfig` is built once per module ([`HttpClient::new`]) and shared by every
//! probe. Every step ends at the probe deadline; bodies are capped.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use seattle_exporter_toolkit::probe::ProbeFailure;
use seattle_protocol::transport::io_reason;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Addresses tried per host name at most.
const MAX_ADDRESSES: usize = 4;

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;
type PhaseLabels = [(&'static str, &'static str); 1];

pub const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// The HTTP metrics of a probe's main request (docs/metrics.md "HTTP metrics"), registered
/// before the request starts so that what was measured stays when the deadline cuts it short.
#[derive(Clone)]
pub struct HttpMetrics {
    status: Gauge,
    phases: Family<PhaseLabels, F64Gauge>,
    body_bytes: Gauge,
    redirects: Gauge,
    tls: Gauge,
    /// notAfter seen in the handshake; `i64::MIN` until then.
    cert_not_after: Arc<std::sync::atomic::AtomicI64>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            status: Gauge::default(),
            phases: Family::default(),
            body_bytes: Gauge::default(),
            redirects: Gauge::default(),
            tls: Gauge::default(),
            cert_not_after: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        }
    }
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpMetrics::default();
        for p in PHASES {
            let _ = m.phases.get_or_create(&[("phase", p)]);
        }
        registry.register(
            "seattle_http_status_code",
            "HTTP status of the final response (0 when none)",
            m.status.clone(),
        );
        registry.register(
            "seattle_http_duration_seconds",
            "Time per phase of the request",
            m.phases.clone(),
        );
        registry.register(
            "seattle_http_response_body_bytes",
            "Bytes of the response body read",
            m.body_bytes.clone(),
        );
        registry.register(
            "seattle_http_redirects",
            "Redirects followed",
            m.redirects.clone(),
        );
        registry.register(
            "seattle_http_tls",
            "1 if the final request used TLS",
            m.tls.clone(),
        );
        m
    }

    /// Registers the certificate expiry, which exists only when a TLS handshake completed.
    pub fn finish(&self, registry: &mut Registry) {
        let t = self
            .cert_not_after
            .load(std::sync::atomic::Ordering::Relaxed);
        if t != i64::MIN {
            let g = Gauge::<i64>::default();
            g.set(t);
            registry.register(
                "seattle_http_tls_cert_expiry_timestamp_seconds",
                "notAfter of the leaf certificate",
                g,
            );
        }
    }

    fn add_phase(&self, phase: &'static str, d: Duration) {
        self.phases
            .get_or_create(&[("phase", phase)])
            .inc_by(d.as_secs_f64());
    }
}

/// Timing and facts of one fetch (also for fetches that export no metrics).
#[derive(Debug, Clone, Default)]
pub struct Phases {
    pub resolve: Duration,
    pub connect: Duration,
    pub tls: Duration,
    pub processing: Duration,
    pub transfer: Duration,
}

/// A final response: status and the (capped) body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub tls_not_after: Option<i64>,
}

/// A request: GET, or POST with a body (XML-RPC).
#[derive(Debug, Clone)]
pub struct Fetch<'a> {
    pub url: &'a str,
    pub post: Option<(&'static str, Bytes)>,
    /// Body cap for this fetch; the client's when `None`.
    pub max_body: Option<u64>,
}

impl<'a> Fetch<'a> {
    pub fn get(url: &'a str) -> Self {
        Self {
            url,
            post: None,
            max_body: None,
        }
    }

    pub fn post(url: &'a str, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            url,
            post: Some((content_type, body.into())),
            max_body: None,
        }
    }
}

/// One module's HTTP client: TLS config, caps. Cheap to share.
pub struct HttpClient {
    tls: tokio_rustls::TlsConnector,
    max_body: u64,
    max_redirects: u32,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_body", &self.max_body)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM file of CA certificates.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

impl HttpClient {
    /// `ca`: trust these CAs instead of the built-in web roots (webpki-roots).
    pub fn new(
        ca: Option<Vec<CertificateDer<'static>>>,
        max_body: u64,
        max_redirects: u32,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(certs) => {
                for c in certs {
                    roots.add(c).map_err(|e| format!("CA certificate: {e}"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let user_agent = HeaderValue::from_str(&format!(
            "seattle_updatesite_exporter/{}",
            seattle_exporter_toolkit::build_info::VERSION
        ))
        .unwrap_or(HeaderValue::from_static("seattle_updatesite_exporter"));
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            max_body,
            max_redirects,
            user_agent,
        })
    }

    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Fetches `req.url`, following redirects, until `deadline`. The final response is returned
    /// whatever its status; `metrics` (the probe's main request) is updated as phases complete.
    pub async fn fetch(
        &self,
        req: &Fetch<'_>,
        deadline: Instant,
        metrics: Option<&HttpMetrics>,
    ) -> Result<Response, ProbeFailure> {
        let mut uri: Uri = req
            .url
            .parse()
            .map_err(|e| ProbeFailure::new("bad_target", format!("{}: {e}", req.url)))?;
        let mut redirects = 0u32;
        let mut post = req.post.clone();
        loop {
            let resp = self
                .fetch_one(&uri, post.as_ref(), req.max_body, deadline, metrics)
                .await?;
            let location = resp_location(&resp);
            match location {
                Some(loc) if redirects < self.max_redirects => {
                    redirects += 1;
                    if let Some(m) = metrics {
                        m.redirects.set(i64::from(redirects));
                    }
                    uri = resolve_location(&uri, &loc).ok_or_else(|| {
                        ProbeFailure::new("bad_reply", format!("bad redirect location {loc:?}"))
                    })?;
                    if resp.0.status == StatusCode::SEE_OTHER {
                        post = None;
                    }
                }
                _ => return Ok(resp.0),
            }
        }
    }

    async fn fetch_one(
        &self,
        uri: &Uri,
        post: Option<&(&'static str, Bytes)>,
        max_body: Option<u64>,
        deadline: Instant,
        metrics: Option<&HttpMetrics>,
    ) -> Result<(Response, Option<String>), ProbeFailure> {
        let bad = |what: &str| ProbeFailure::new("bad_target", format!("{uri}: {what}"));
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(m) = metrics {
            m.tls.set(i64::from(tls));
        }

        let start = Instant::now();
        let addrs = resolve(bare_host, port, deadline).await?;
        let resolved = Instant::now();
        if let Some(m) = metrics {
            m.add_phase("resolve", resolved - start);
        }

        let tcp = connect(&addrs, deadline).await;
        let connected = Instant::now();
        if let Some(m) = metrics {
            m.add_phase("connect", connected - resolved);
        }
        let tcp = tcp?;
        let _ = tcp.set_nodelay(true);

        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let mut builder = Request::builder()
            .uri(path)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(header::ACCEPT, "*/*");
        let body = match post {
            Some((content_type, body)) => {
                builder = builder
                    .method(Method::POST)
                    .header(header::CONTENT_TYPE, *content_type);
                body.clone()
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| bad(&e.to_string()))?;
        let cap = max_body.unwrap_or(self.max_body);

        if tls {
            let name = ServerName::try_from(bare_host.to_string())
                .map_err(|_| bad("not a valid TLS server name"))?;
            let stream = timeout_at(deadline, self.tls.connect(name, tcp))
                .await
                .map_err(|_| timeout("TLS handshake"))?
                .map_err(tls_failure)?;
            let handshaken = Instant::now();
            if let Some(m) = metrics {
                m.add_phase("tls", handshaken - connected);
            }
            let not_after = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
                .map(|(_, cert)| cert.validity().not_after.timestamp());
            if let (Some(m), Some(t)) = (metrics, not_after) {
                m.cert_not_after
                    .store(t, std::sync::atomic::Ordering::Relaxed);
            }
            let (mut resp, loc) = exchange(stream, request, cap, deadline, metrics).await?;
            resp.tls_not_after = not_after;
            Ok((resp, loc))
        } else {
            exchange(tcp, request, cap, deadline, metrics).await
        }
    }
}

fn timeout(what: &str) -> ProbeFailure {
    ProbeFailure::new("timeout", format!("{what}: no answer before the deadline"))
}

fn resp_location(resp: &(Response, Option<String>)) -> Option<String> {
    if resp.0.status.is_redirection() {
        resp.1.clone()
    } else {
        None
    }
}

/// Absolute URL of a `Location` header relative to `base`.
pub fn resolve_location(base: &Uri, loc: &str) -> Option<Uri> {
    if let Ok(u) = loc.parse::<Uri>()
        && u.scheme().is_some()
    {
        return Some(u);
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let abs = if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{scheme}://{authority}{dir}/{loc}")
    };
    abs.parse().ok()
}

async fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ProbeFailure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| timeout("resolving"))?
        .map_err(|e| ProbeFailure::new("resolve_failed", format!("{host}: {e}")))?;
    // IPv4 first, like the Seattle code (and blackbox's ip_protocol_fallback default).
    let mut addrs: Vec<SocketAddr> = found.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.truncate(MAX_ADDRESSES);
    if addrs.is_empty() {
        return Err(ProbeFailure::new(
            "resolve_failed",
            format!("{host}: no address"),
        ));
    }
    Ok(addrs)
}

async fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, ProbeFailure> {
    let mut last = ProbeFailure::new("io_error", "no address");
    for a in addrs {
        match timeout_at(deadline, TcpStream::connect(a)).await {
            Err(_) => return Err(timeout("connecting")),
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = io_failure(&e, &format!("connecting to {a}")),
        }
    }
    Err(last)
}

fn io_failure(e: &std::io::Error, what: &str) -> ProbeFailure {
    ProbeFailure::new(io_reason(e), format!("{what}: {e}"))
}

fn tls_failure(e: std::io::Error) -> ProbeFailure {
    if e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        || e.kind() == std::io::ErrorKind::InvalidData
    {
        ProbeFailure::new("tls_error", format!("TLS handshake: {e}"))
    } else {
        io_failure(&e, "TLS handshake")
    }
}

fn hyper_failure(e: &hyper::Error, what: &str) -> ProbeFailure {
    let reason = if e.is_incomplete_message() {
        "connection_closed"
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        "bad_reply"
    } else if e.is_timeout() {
        "timeout"
    } else {
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        let mut reason = "io_error";
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                reason = io_reason(io);
                break;
            }
            src = s.source();
        }
        reason
    };
    ProbeFailure::new(reason, format!("{what}: {e}"))
}

/// Aborts the connection task when the exchange ends or is dropped at the deadline.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    cap: u64,
    deadline: Instant,
    metrics: Option<&HttpMetrics>,
) -> Result<(Response, Option<String>), ProbeFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| timeout("HTTP handshake"))?
    .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
    let _conn = AbortOnDrop(tokio::spawn(conn).abort_handle());

    let sent = Instant::now();
    let resp = timeout_at(deadline, sender.send_request(request))
        .await
        .map_err(|_| timeout("waiting for the response"))?
        .map_err(|e| hyper_failure(&e, "reading the response head"))?;
    let first_byte = Instant::now();
    if let Some(m) = metrics {
        m.add_phase("processing", first_byte - sent);
        m.status.set(i64::from(resp.status().as_u16()));
    }
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(ProbeFailure::new(
            "too_large",
            format!(
                "Content-Length {} over the cap of {cap} bytes",
                declared.unwrap_or(0)
            ),
        ));
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let result = loop {
        match timeout_at(deadline, body.frame()).await {
            Err(_) => break Err(timeout("reading the body")),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(hyper_failure(&e, "reading the body")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > cap {
                        break Err(ProbeFailure::new(
                            "too_large",
                            format!("body over the cap of {cap} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&data);
                    if let Some(m) = metrics {
                        m.body_bytes.set(buf.len() as i64);
                    }
                }
            }
        }
    };
    if let Some(m) = metrics {
        m.add_phase("transfer", first_byte.elapsed());
    }
    result?;
    Ok((
        Response {
            status,
            content_type,
            body: buf.freeze(),
            tls_not_after: None,
        },
        location,
    ))
}

/// Fails with `http_status` unless the status is 2xx.
pub fn expect_2xx(resp: &Response) -> Result<(), ProbeFailure> {
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(ProbeFailure::new(
            "http_status",
            format!("HTTP status {}", resp.status),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_base() {
        let base: Uri = "http://a.example:8080/x/y/metainfo".parse().unwrap();
        let r = |l: &str| resolve_location(&base, l).unwrap().to_string();
        assert_eq!(r("https://b.example/z"), "https://b.example/z");
        assert_eq!(r("//c.example/q"), "http://c.example/q");
        assert_eq!(r("/root"), "http://a.example:8080/root");
        assert_eq!(r("other"), "http://a.example:8080/x/y/other");
    }

    #[test]
    fn io_errors_map_to_bounded_reasons() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            io_reason(&Error::from(ErrorKind::ConnectionRefused)),
            "connection_refused"
        );
        assert_eq!(
            io_reason(&Error::from(ErrorKind::ConnectionReset)),
            "connection_reset"
        );
        assert_eq!(io_reason(&Error::from(ErrorKind::Other)), "io_error");
    }
}
