//! The HTTP server: routes, content negotiation, gzip, TLS, basic auth, graceful shutdown.
//!
//! ```no_run
//! # async fn run(flags: seattle_exporter_toolkit::flags::WebFlags) -> anyhow::Result<()> {
//! use seattle_exporter_toolkit::server::{serve, Exporter};
//! let router = Exporter::new("seattle_process_exporter")
//!     .telemetry_path(&flags.telemetry_path)
//!     // .collector(MyCollector::new(config))
//!     // .route("/sd", "Service discovery", axum::routing::get(sd_handler))
//!     .router();
//! serve(router, &flags, ":19110").await
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{MethodRouter, get};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;
use tower_http::compression::CompressionLayer;

use crate::build_info;
use crate::collector::{Collector, collect_all};
use crate::config::ConfigError;
use crate::exposition::{Format, openmetrics_to_text};
use crate::flags::WebFlags;
use crate::logging;
use crate::probe::{ProbeAnswer, ProbeEndpoint, ProbeOptions, ProbeRequest, Prober, scrape_budget};
use crate::webconfig::WebConfigWatcher;

/// Prometheus' header carrying the scrape timeout in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// Builder for an exporter's routes.
pub struct Exporter {
    name: &'static str,
    telemetry_path: String,
    registry: Registry,
    collectors: Vec<Arc<dyn Collector>>,
    probe: Option<ProbeEndpoint>,
    scrape_timeout_offset: Duration,
    probe_target_placeholder: String,
    extra_routes: Vec<ExtraRoute>,
}

/// An exporter's own route, added by [`Exporter::route`].
struct ExtraRoute {
    path: String,
    title: String,
    handler: MethodRouter,
}

struct AppState {
    name: &'static str,
    telemetry_path: String,
    registry: Registry,
    collectors: Vec<Arc<dyn Collector>>,
    probe: Option<ProbeEndpoint>,
    scrape_timeout_offset: Duration,
    probe_target_placeholder: String,
    /// (path, title) of the extra routes, linked from the landing page.
    links: Vec<(String, String)>,
}

/// Scrape timeout assumed for collectors when Prometheus sends no timeout header.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

impl Exporter {
    /// `name` is the program name shown on the landing page, e.g. `seattle_process_exporter`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            telemetry_path: "/metrics".into(),
            registry: Registry::default(),
            collectors: Vec::new(),
            probe: None,
            scrape_timeout_offset: Duration::from_millis(500),
            probe_target_placeholder: "host:port".into(),
            extra_routes: Vec::new(),
        }
    }

    /// Placeholder of the landing page's probe form target field (default `host:port`), e.g. a
    /// DNS name or a URL for exporters whose targets are not `host:port`.
    pub fn probe_target_placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.probe_target_placeholder = placeholder.into();
        self
    }

    /// Adds an exporter's own route (e.g. `/sd`) behind the same gzip and web-config auth as the
    /// built-in routes, linked from the landing page as `title`. A path the telemetry path, a
    /// built-in route or an earlier extra route already takes is left out with a warning, as
    /// axum would panic on it.
    pub fn route(
        mut self,
        path: impl Into<String>,
        title: impl Into<String>,
        handler: MethodRouter,
    ) -> Self {
        let path = path.into();
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self.extra_routes.push(ExtraRoute {
            path,
            title: title.into(),
            handler,
        });
        self
    }

    /// Collectors must finish by the scrape timeout minus this (default 0.5 s).
    pub fn scrape_timeout_offset(mut self, offset: Duration) -> Self {
        self.scrape_timeout_offset = offset;
        self
    }

    /// Where the exporter's metrics are served (`--web.telemetry-path`).
    pub fn telemetry_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.telemetry_path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// The exporter's own long-lived metrics (served on the telemetry path on every scrape).
    /// Register before [`Exporter::router`]; metric handles are clones sharing their value.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds a host collector, called on every scrape of the telemetry path.
    pub fn collector(mut self, collector: impl Collector) -> Self {
        self.collectors.push(Arc::new(collector));
        self
    }

    /// Adds `/probe` with these modules (name → the exporter's module config). One prober per
    /// exporter; a second call replaces the first.
    pub fn prober<P: Prober>(
        mut self,
        prober: P,
        modules: impl IntoIterator<Item = (String, P::Module)>,
        options: ProbeOptions,
    ) -> Self {
        let modules: BTreeMap<String, P::Module> = modules.into_iter().collect();
        self.probe = Some(ProbeEndpoint::new(prober, modules, options));
        self
    }

    /// The routes: telemetry path, `/probe` (when a prober is set), `/`, `/-/healthy`,
    /// `/-/ready`, the extra routes; gzip when asked for. TLS and auth are added by [`Server`].
    pub fn router(mut self) -> Router {
        build_info::register(&mut self.registry);
        if let Some(p) = &self.probe {
            p.register_metrics(&mut self.registry);
        }
        let mut taken: Vec<String> = ["/", "/-/healthy", "/-/ready"]
            .into_iter()
            .map(String::from)
            .collect();
        taken.push(self.telemetry_path.clone());
        if self.probe.is_some() {
            taken.push("/probe".into());
        }
        let mut extra_routes = Vec::new();
        for r in std::mem::take(&mut self.extra_routes) {
            if taken.contains(&r.path) {
                tracing::warn!(path = r.path, "an extra route's path is taken; left out");
            } else {
                taken.push(r.path.clone());
                extra_routes.push(r);
            }
        }
        let state = Arc::new(AppState {
            name: self.name,
            telemetry_path: self.telemetry_path.clone(),
            registry: self.registry,
            collectors: self.collectors,
            probe: self.probe,
            scrape_timeout_offset: self.scrape_timeout_offset,
            probe_target_placeholder: self.probe_target_placeholder,
            links: extra_routes
                .iter()
                .map(|r| (r.path.clone(), r.title.clone()))
                .collect(),
        });
        // The telemetry path comes from a flag: braces are escaped so axum takes it literally, and
        // a fixed route it collides with is left out (the telemetry path wins) instead of panicking.
        let telemetry = self.telemetry_path.replace('{', "{{").replace('}', "}}");
        let mut router = Router::new().route(&telemetry, get(metrics_handler));
        let mut fixed: Vec<(&str, axum::routing::MethodRouter<Arc<AppState>>)> = vec![
            ("/", get(landing_page)),
            ("/-/healthy", get(|| async { "Healthy\n" })),
            ("/-/ready", get(|| async { "Ready\n" })),
        ];
        if state.probe.is_some() {
            fixed.push(("/probe", get(probe_handler)));
        }
        for (path, handler) in fixed {
            if path == self.telemetry_path {
                tracing::warn!(path, "the telemetry path hides this route");
            } else {
                router = router.route(path, handler);
            }
        }
        let mut router = router.with_state(state);
        for r in extra_routes {
            router = router.route(&r.path, r.handler);
        }
        router.layer(CompressionLayer::new().gzip(true))
    }
}

fn accept_format(headers: &HeaderMap) -> Format {
    Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

/// Renders OpenMetrics `body` (without `# EOF`) in the negotiated format.
fn exposition_response(format: Format, mut body: String) -> Response<Body> {
    body.push_str("# EOF\n");
    let body = match format {
        Format::OpenMetrics => body,
        Format::Text => openmetrics_to_text(&body),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

fn encode_or_log(out: &mut String, registry: &Registry) {
    if let Err(e) = prometheus_client::encoding::text::encode_registry(out, registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response<Body> {
    let mut body = String::new();
    encode_or_log(&mut body, &state.registry);
    if !state.collectors.is_empty() {
        let header = headers
            .get(SCRAPE_TIMEOUT_HEADER)
            .and_then(|v| v.to_str().ok());
        let budget = scrape_budget(header, DEFAULT_SCRAPE_TIMEOUT, state.scrape_timeout_offset);
        let results = collect_all(&state.collectors, tokio::time::Instant::now() + budget).await;
        let success = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        let duration = Family::<
            Vec<(&'static str, &'static str)>,
            Gauge<f64, std::sync::atomic::AtomicU64>,
        >::default();
        for r in &results {
            body.push_str(&r.body);
            let labels = vec![("collector", r.name)];
            success.get_or_create(&labels).set(i64::from(r.success));
            duration.get_or_create(&labels).set(r.duration_seconds);
        }
        let mut meta = Registry::default();
        meta.register(
            "seattle_scrape_collector_success",
            "1 if the host collector succeeded on this scrape",
            success,
        );
        meta.register(
            "seattle_scrape_collector_duration_seconds",
            "Time the host collector took on this scrape",
            duration,
        );
        encode_or_log(&mut body, &meta);
    }
    exposition_response(accept_format(&headers), body)
}

#[derive(serde::Deserialize)]
struct ProbeParams {
    target: Option<String>,
    module: Option<String>,
    debug: Option<String>,
}

async fn probe_handler(
    State(state): State<Arc<AppState>>,
    Query(params): Query<ProbeParams>,
    headers: HeaderMap,
) -> Response<Body> {
    let Some(endpoint) = &state.probe else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let debug = matches!(params.debug.as_deref(), Some("true" | "1"));
    let answer = endpoint
        .handle(ProbeRequest {
            target: params.target.as_deref(),
            module: params.module.as_deref(),
            debug,
            scrape_timeout_header: headers
                .get(SCRAPE_TIMEOUT_HEADER)
                .and_then(|v| v.to_str().ok()),
        })
        .await;
    match answer {
        ProbeAnswer::BadRequest(msg) => {
            (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
        }
        ProbeAnswer::Done { registry, log } => {
            let mut body = String::new();
            encode_or_log(&mut body, &registry);
            match log {
                Some(log) => {
                    body.push_str("# EOF\n");
                    let text = format!(
                        "Logs for the probe:\n{log}\nMetrics that would have been returned:\n{}",
                        openmetrics_to_text(&body)
                    );
                    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
                }
                None => exposition_response(accept_format(&headers), body),
            }
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn landing_page(State(state): State<Arc<AppState>>) -> Html<String> {
    let name = html_escape(state.name);
    let path = html_escape(&state.telemetry_path);
    let mut probe_form = String::new();
    let placeholder = html_escape(&state.probe_target_placeholder);
    if let Some(p) = &state.probe {
        let options: String = p
            .module_names()
            .iter()
            .map(|m| {
                let m = html_escape(m);
                format!("<option value=\"{m}\">{m}</option>")
            })
            .collect();
        probe_form = format!(
            "<h2>Probe</h2>\n<form action=\"probe\" method=\"get\">\n\
             <label>Target <input type=\"text\" name=\"target\" placeholder=\"{placeholder}\" required></label>\n\
             <label>Module <select name=\"module\">{options}</select></label>\n\
             <label><input type=\"checkbox\" name=\"debug\" value=\"true\"> debug</label>\n\
             <input type=\"submit\" value=\"Probe\">\n</form>\n"
        );
    }
    let links: String = state
        .links
        .iter()
        .map(|(path, title)| {
            format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                html_escape(path.trim_start_matches('/')),
                html_escape(title)
            )
        })
        .collect();
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{name}</title></head><body>\n\
         <h1>{name}</h1>\n<p>Version {version}, revision {revision}</p>\n\
         <ul>\n<li><a href=\"{rel}\">Metrics</a></li>\n<li><a href=\"-/healthy\">Health</a></li>\n\
         <li><a href=\"-/ready\">Readiness</a></li>\n{links}</ul>\n{probe_form}</body></html>\n",
        version = html_escape(build_info::VERSION),
        revision = html_escape(build_info::REVISION),
        rel = path.trim_start_matches('/'),
    ))
}

/// Listening sockets plus the web config; [`Server::run`] serves a router on them.
pub struct Server {
    listeners: Vec<TcpListener>,
    web_config: Arc<WebConfigWatcher>,
}

/// How long a client may take to send request headers (and a TLS handshake to finish).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

impl Server {
    /// Binds every address (`:PORT` means all interfaces) and loads the web config; a broken
    /// config or a busy port is an error here, naming the file or the address.
    pub async fn bind(
        addresses: &[String],
        web_config_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let web_config = Arc::new(WebConfigWatcher::new(web_config_file)?);
        let mut listeners = Vec::new();
        for addr in addresses {
            listeners.push(bind_one(addr).await?);
        }
        if listeners.is_empty() {
            anyhow::bail!("no listen address given");
        }
        Ok(Self {
            listeners,
            web_config,
        })
    }

    /// The bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in progress finish
    /// (up to 30 s) and returns.
    pub async fn run(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every connection holds a sender; when all are dropped, the drain is complete.
        let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
        for listener in self.listeners {
            let local = listener.local_addr().ok();
            let tls = self.web_config.current().tls.is_some();
            tracing::info!(address = ?local, tls, "listening");
            tokio::spawn(accept_loop(
                listener,
                router.clone(),
                Arc::clone(&self.web_config),
                stop_rx.clone(),
                drain_tx.clone(),
            ));
        }
        drop(drain_tx);
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, drain_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("requests still running at the end of the shutdown grace period");
        }
        Ok(())
    }
}

async fn bind_one(addr: &str) -> anyhow::Result<TcpListener> {
    if let Some(port) = addr.strip_prefix(':') {
        // Go's ":PORT": every interface, IPv6 and IPv4 when the host has IPv6.
        if let Ok(l) = TcpListener::bind(format!("[::]:{port}")).await {
            return Ok(l);
        }
        return TcpListener::bind(format!("0.0.0.0:{port}"))
            .await
            .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    web_config: Arc<WebConfigWatcher>,
    mut stop: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            Arc::clone(&web_config),
            stop.clone(),
            drain.clone(),
        ));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    web_config: Arc<WebConfigWatcher>,
    stop: watch::Receiver<bool>,
    _drain: mpsc::Sender<()>,
) {
    let active = web_config.current();
    match &active.tls {
        None => serve_http(TokioIo::new(stream), router, web_config, stop).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
            match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => serve_http(TokioIo::new(s), router, web_config, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    router: Router,
    web_config: Arc<WebConfigWatcher>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let router = router.clone();
        let web_config = Arc::clone(&web_config);
        async move { Ok::<_, Infallible>(handle(req.map(Body::new), router, web_config).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Basic auth and configured headers around the router.
async fn handle(
    req: Request<Body>,
    router: Router,
    web_config: Arc<WebConfigWatcher>,
) -> Response<Body> {
    let active = web_config.current();
    if active.requires_auth() {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let checker = Arc::clone(&active);
        // bcrypt is slow by design: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || checker.authorize(authorization.as_deref()))
            .await
            .unwrap_or(false);
        if !ok {
            let mut resp = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"seattle-exporter\""),
            );
            add_headers(&mut resp, &active.headers);
            return resp;
        }
    }
    let mut resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    add_headers(&mut resp, &active.headers);
    resp
}

fn add_headers(resp: &mut Response<Body>, headers: &[(http::HeaderName, HeaderValue)]) {
    for (n, v) in headers {
        resp.headers_mut().insert(n.clone(), v.clone());
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Binds `--web.listen-address` (or `default_listen`), loads `--web.config.file`, serves `router`
/// until SIGTERM or Ctrl-C, and returns after a graceful shutdown.
pub async fn serve(router: Router, flags: &WebFlags, default_listen: &str) -> anyhow::Result<()> {
    let server = Server::bind(
        &flags.listen_addresses_or(default_listen),
        flags.web_config_file.as_deref(),
    )
    .await?;
    server.run(router, shutdown_signal()).await
}

/// The start of a probing exporter's `main`: logging, then its config from `--config.file` (or
/// `builtin` without one). Breaks with the exit code when `main` should stop: after an error,
/// printed as `program: error`, or after a passed `--config.check`.
pub fn start<C>(
    program: &str,
    flags: &WebFlags,
    load: impl FnOnce(&Path) -> Result<C, ConfigError>,
    builtin: impl FnOnce() -> Result<C, ConfigError>,
) -> ControlFlow<ExitCode, C> {
    if let Err(e) = logging::init(flags.log_level, flags.log_format) {
        eprintln!("{program}: {e:#}");
        return ControlFlow::Break(ExitCode::FAILURE);
    }
    let loaded = match &flags.config_file {
        Some(path) => load(path),
        None => builtin(),
    };
    match loaded {
        Err(e) => {
            eprintln!("{program}: {e}");
            ControlFlow::Break(ExitCode::FAILURE)
        }
        Ok(_) if flags.config_check => {
            println!("config OK");
            ControlFlow::Break(ExitCode::SUCCESS)
        }
        Ok(config) => ControlFlow::Continue(config),
    }
}

/// [`serve`], giving `main`'s exit code; a failure is logged.
pub async fn serve_until_stopped(
    router: Router,
    flags: &WebFlags,
    default_listen: &str,
) -> ExitCode {
    match serve(router, flags, default_listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exporter stopped");
            ExitCode::FAILURE
        }
    }
}
