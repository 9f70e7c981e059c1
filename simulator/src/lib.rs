//! A whole Seattle deployment on loopback, speaking the real protocols byte for byte: advertise
//! servers (TCP and UDP), node managers, the update site, Zenodotus, the installer builder, the
//! clearinghouse web site and lockserver, plus a control API for tests.

pub mod advertise;
pub mod dns;
pub mod hostile;
pub mod keys;
pub mod nodemanager;
pub mod scenario;
pub mod tls;
pub mod updatesite;
pub mod web;
pub mod world;
pub mod xmlrpc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};

use crate::advertise::{Clock, Store, TcpServer, UdpServer};
use crate::keys::KeyPair;
use crate::nodemanager::NodeRuntime;
use crate::scenario::{Behaviour, MetainfoState, Scenario};
use crate::world::World;

/// Ports of the central services; 0 = any free port.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    pub advertise_tcp: u16,
    pub advertise_udp: u16,
    pub dns: u16,
    pub updatesite: u16,
    pub cib: u16,
    pub clearinghouse: u16,
    /// The clearinghouse's HTTPS listener.
    pub clearinghouse_https: u16,
    pub lockserver: u16,
    pub control: u16,
}

pub struct Options {
    pub scenario: Scenario,
    pub ports: Ports,
    /// The update-site signing key; generated (1024 bit, from the seed) when absent.
    pub update_key: Option<KeyPair>,
}

/// Every address the simulator serves, written to the endpoints file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    pub advertise_tcp: String,
    pub advertise_udp: String,
    pub zenodotus_dns: String,
    pub zenodotus_zone: String,
    pub updatesite_url: String,
    pub update_public_key: String,
    pub cib_url: String,
    pub cib_xmlrpc_url: String,
    pub clearinghouse_url: String,
    /// The same site over HTTPS, with a certificate signed by `tls_ca_cert`.
    pub clearinghouse_https_url: String,
    /// PEM of the CA that signed the HTTPS certificate (generated at start): a client's trust root.
    pub tls_ca_cert: String,
    /// The HTTPS certificate's notAfter, Unix seconds.
    pub tls_cert_not_after: i64,
    pub lockserver_url: String,
    pub control_url: String,
    /// The v2 key's advertise form (every node announces under it).
    pub v2_advertise_key: String,
    /// Advertise form of each clearinghouse state key.
    pub state_advertise_keys: std::collections::BTreeMap<String, String>,
    pub node_count: usize,
    /// `ip:port` of every node manager, by node index.
    pub nodes: Vec<String>,
}

/// An HTTP service that can be stopped (connections refused) and restarted on the same port.
pub struct HttpService {
    pub name: &'static str,
    router: Router,
    port: AtomicU16,
    /// An HTTPS listener serving the same pages, stopped and started with the plain one.
    https: Option<HttpsListener>,
    pub behaviour: Mutex<Behaviour>,
    /// The serving tasks, awaited when stopped so that the port is closed on return.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    slow: Duration,
}

struct HttpsListener {
    port: AtomicU16,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl HttpService {
    fn new(name: &'static str, router: Router, port: u16, slow: Duration) -> Arc<HttpService> {
        Self::with_https(name, router, port, None, slow)
    }

    /// Also serves HTTPS on `https.0` with `https.1`'s certificate.
    fn with_https(
        name: &'static str,
        router: Router,
        port: u16,
        https: Option<(u16, tokio_rustls::TlsAcceptor)>,
        slow: Duration,
    ) -> Arc<HttpService> {
        Arc::new(HttpService {
            name,
            router,
            port: AtomicU16::new(port),
            https: https.map(|(port, acceptor)| HttpsListener {
                port: AtomicU16::new(port),
                acceptor,
            }),
            behaviour: Mutex::new(Behaviour::Normal),
            tasks: Mutex::new(Vec::new()),
            slow,
        })
    }

    pub fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port.load(Ordering::Relaxed))
    }

    /// The HTTPS listener's URL, if the service has one.
    pub fn https_url(&self) -> Option<String> {
        let https = self.https.as_ref()?;
        Some(format!(
            "https://127.0.0.1:{}/",
            https.port.load(Ordering::Relaxed)
        ))
    }

    /// Starts listening; only called while stopped (at start-up, or leaving `down`).
    async fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let listener = bind_keeping_port(&self.port).await?;
        let tls_listener = match &self.https {
            Some(https) => Some((
                bind_keeping_port(&https.port).await?,
                https.acceptor.clone(),
            )),
            None => None,
        };
        let app = self
            .router
            .clone()
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                http_behaviour,
            ));
        let mut tasks = vec![];
        if let Some((l, acceptor)) = tls_listener {
            tasks.push(tokio::spawn(tls::serve(l, acceptor, app.clone())));
        }
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        Ok(())
    }

    /// Stops listening. Waits for the serving tasks to end: an abort only takes effect at their
    /// next poll, and until then a client's connect would still land in the old backlog (and be
    /// reset rather than refused).
    async fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Switches behaviour; `down` stops listening, anything else (re)starts it.
    pub async fn set_behaviour(self: &Arc<Self>, b: Behaviour) -> std::io::Result<()> {
        let was = std::mem::replace(
            &mut *self.behaviour.lock().unwrap_or_else(|e| e.into_inner()),
            b,
        );
        if b == Behaviour::Down {
            self.stop().await;
        } else if was == Behaviour::Down {
            self.start().await?;
        }
        Ok(())
    }
}

/// Binds 127.0.0.1 on `port` (0 = any) and keeps the port bound, so that a restart reuses it.
async fn bind_keeping_port(port: &AtomicU16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.load(Ordering::Relaxed))).await?;
    port.store(listener.local_addr()?.port(), Ordering::Relaxed);
    Ok(listener)
}

async fn http_behaviour(State(svc): State<Arc<HttpService>>, req: Request, next: Next) -> Response {
    match svc.behaviour() {
        Behaviour::Slow | Behaviour::Drip => tokio::time::sleep(svc.slow).await,
        Behaviour::Hang => std::future::pending::<()>().await,
        Behaviour::Garbage | Behaviour::HugeHeader => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(
                    &b"\x00\xff\xfeGARBAGE not what you asked for"[..],
                ))
                .unwrap_or_default();
        }
        Behaviour::Reset => {
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from("simulated failure"))
                .unwrap_or_default();
        }
        _ => {}
    }
    next.run(req).await
}

pub struct Simulator {
    pub world: Arc<World>,
    pub rts: Arc<Vec<NodeRuntime>>,
    pub clock: Arc<Clock>,
    pub tcp_store: Arc<Store>,
    pub udp_store: Arc<Store>,
    pub advertise_tcp: Arc<TcpServer>,
    pub advertise_udp: Arc<UdpServer>,
    /// Zenodotus' UDP service and its fault behaviour.
    pub zenodotus_dns: Arc<dns::DnsService>,
    pub updatesite: Arc<updatesite::UpdateSite>,
    pub services: Vec<Arc<HttpService>>,
    pub advert_ttl: f64,
    pub endpoints: Mutex<Option<Endpoints>>,
    pub scenario: Scenario,
}

/// Raises the open-files limit to its hard maximum: 10,000 listeners need 10,000 descriptors.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

impl Simulator {
    fn announce(&self, i: usize) {
        let node = &self.world.nodes[i];
        for (k, v) in self.world.node_announcements(node) {
            self.tcp_store
                .put(k.as_bytes(), v.as_bytes(), self.advert_ttl);
            self.udp_store
                .put(k.as_bytes(), v.as_bytes(), self.advert_ttl);
        }
    }

    fn withdraw(&self, i: usize) {
        let node = &self.world.nodes[i];
        for (k, v) in self.world.node_announcements(node) {
            self.tcp_store.remove(k.as_bytes(), v.as_bytes());
            self.udp_store.remove(k.as_bytes(), v.as_bytes());
        }
    }

    /// Re-announces every node that is not down, like each node's advertise thread.
    pub fn announce_all(&self) {
        for node in &self.world.nodes {
            if node.behaviour() != Behaviour::Down {
                self.announce(node.index);
            }
        }
    }

    /// Sets a node's behaviour; `down` stops its listener (and with `withdraw` removes its
    /// advertisements at once instead of letting them expire).
    pub async fn set_node(&self, i: usize, b: Behaviour, withdraw: bool) -> anyhow::Result<()> {
        let node = self
            .world
            .nodes
            .get(i)
            .with_context(|| format!("no node {i}"))?;
        let was = std::mem::replace(&mut node.lock().behaviour, b);
        if b == Behaviour::Down {
            nodemanager::stop_node(&self.rts, i);
            if withdraw {
                self.withdraw(i);
            }
        } else if was == Behaviour::Down {
            nodemanager::start_node(self.world.clone(), self.rts.clone(), i).await?;
            self.announce(i);
        }
        Ok(())
    }

    pub fn service(&self, name: &str) -> Option<&Arc<HttpService>> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn endpoints(&self) -> Option<Endpoints> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Starts every service of the scenario and returns once all listen.
pub async fn start(opts: Options) -> anyhow::Result<Arc<Simulator>> {
    let fd_limit = raise_fd_limit();
    let t0 = std::time::Instant::now();
    let sc = opts.scenario;
    let world = Arc::new(World::build(&sc).map_err(|e| anyhow::anyhow!(e))?);
    tracing::info!(nodes = world.nodes.len(), fd_limit, elapsed = ?t0.elapsed(), "world built");
    let clock = Arc::new(Clock::default());
    let tcp_store = Arc::new(Store::new(clock.clone(), false));
    let udp_store = Arc::new(Store::new(clock.clone(), true));
    let slow_adv = Duration::from_secs_f64(sc.advertise.slow_delay_seconds.max(0.0));

    let key = match opts.update_key {
        Some(k) => k,
        None => KeyPair::generate(1024, keys::sub_seed(sc.seed, 7, 0)),
    };
    let other_key = KeyPair::generate(1024, keys::sub_seed(sc.seed, 8, 0));
    tracing::info!(elapsed = ?t0.elapsed(), "update-site keys ready");
    let site = Arc::new(updatesite::UpdateSite::new(
        key,
        other_key,
        updatesite::site_files(),
        sc.metainfo.state,
    ));

    let rts: Arc<Vec<NodeRuntime>> = Arc::new(
        (0..world.nodes.len())
            .map(|_| NodeRuntime::default())
            .collect(),
    );

    let advertise_tcp = Arc::new(TcpServer {
        store: tcp_store.clone(),
        behaviour: Mutex::new(sc.advertise.behaviour),
        slow_delay: slow_adv,
    });
    let advertise_udp = Arc::new(UdpServer {
        store: udp_store.clone(),
        behaviour: Mutex::new(sc.advertise.udp_behaviour),
    });

    // Central services.
    let adv_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.ports.advertise_tcp))
        .await
        .context("advertise TCP port")?;
    let adv_addr = adv_listener.local_addr()?;
    tokio::spawn(advertise::serve_tcp(adv_listener, advertise_tcp.clone()));
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, opts.ports.advertise_udp))
        .await
        .context("advertise UDP port")?;
    let udp_addr = udp.local_addr()?;
    tokio::spawn(advertise::serve_udp(udp, advertise_udp.clone()));
    let zen = Arc::new(dns::Zenodotus {
        zone: sc.zenodotus.zone.clone(),
        own_ip: Ipv4Addr::LOCALHOST,
        store: tcp_store.clone(),
        advertise: Some(advertise_tcp.clone()),
    });
    let zenodotus_dns = dns::DnsService::start(zen, opts.ports.dns, slow_adv)
        .await
        .context("Zenodotus DNS port")?;
    let dns_addr = zenodotus_dns.addr();

    let cib = Arc::new(web::Cib::new(sc.seed));
    let lockserver = Arc::new(web::Lockserver::new(&sc.lockserver.locks));
    let slow_http = Duration::from_secs(3);
    let site2 = site.clone();
    let updatesite_svc = HttpService::new(
        "updatesite",
        Router::new().fallback(any(move |uri: Uri| {
            let site = site2.clone();
            async move {
                match uri.path().strip_prefix("/updatesite/") {
                    Some(rest) => site.serve(rest),
                    None => Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Body::from("not found"))
                        .unwrap_or_default(),
                }
            }
        })),
        opts.ports.updatesite,
        slow_http,
    );
    let (c1, c2) = (cib.clone(), cib.clone());
    let cib_svc = HttpService::new(
        "cib",
        Router::new()
            .route(
                "/xmlrpc/",
                post(move |body: Bytes| {
                    let cib = c1.clone();
                    async move { cib.xmlrpc(&body) }
                }),
            )
            .fallback(get(move || {
                let cib = c2.clone();
                async move { cib.page() }
            })),
        opts.ports.cib,
        slow_http,
    );
    let identity = tls::Identity::generate().context("HTTPS certificate")?;
    let clearinghouse_svc = HttpService::with_https(
        "clearinghouse",
        Router::new()
            .route(
                "/reports/lan_sizes_by_port",
                get(|| async { web::lan_sizes_page() }),
            )
            .fallback(get(|| async { web::clearinghouse_page() })),
        opts.ports.clearinghouse,
        Some((opts.ports.clearinghouse_https, identity.acceptor.clone())),
        slow_http,
    );
    let ls = lockserver.clone();
    let lockserver_svc = HttpService::new(
        "lockserver",
        Router::new().fallback(post(move |body: Bytes| {
            let ls = ls.clone();
            async move { ls.xmlrpc(&body) }
        })),
        opts.ports.lockserver,
        slow_http,
    );
    let services = vec![updatesite_svc, cib_svc, clearinghouse_svc, lockserver_svc];
    for s in &services {
        s.start()
            .await
            .with_context(|| format!("{} port", s.name))?;
    }
    *cib.base_url.lock().unwrap_or_else(|e| e.into_inner()) = services[1].url();

    // Node managers: bind every listener (down nodes too, to fix their port), then stop the
    // down ones.
    for i in 0..world.nodes.len() {
        nodemanager::start_node(world.clone(), rts.clone(), i)
            .await
            .with_context(|| format!("node {i} at {}", world.nodes[i].addr_string()))?;
        if world.nodes[i].behaviour() == Behaviour::Down {
            nodemanager::stop_node(&rts, i);
        }
    }

    tracing::info!(elapsed = ?t0.elapsed(), "node managers listening");
    let sim = Arc::new(Simulator {
        world: world.clone(),
        rts,
        clock,
        tcp_store: tcp_store.clone(),
        udp_store: udp_store.clone(),
        advertise_tcp,
        advertise_udp,
        zenodotus_dns,
        updatesite: site.clone(),
        services,
        advert_ttl: sc.advertise.ttl_seconds.max(1) as f64,
        endpoints: Mutex::new(None),
        scenario: sc.clone(),
    });
    sim.announce_all();
    tracing::info!(elapsed = ?t0.elapsed(), "nodes announced");
    for z in &sc.zenodotus.names {
        let name = if z.name.contains('.') {
            z.name.clone()
        } else {
            format!("{}.{}", z.name, sc.zenodotus.zone)
        };
        let key = match &z.rtype {
            Some(t) => format!("{t} {name}"),
            None => name,
        };
        let mut values = z.values.clone();
        if let Some(i) = z.node {
            values.push(world.nodes[i].ip.to_string());
        }
        for v in values {
            for s in [&tcp_store, &udp_store] {
                s.put(key.as_bytes(), v.as_bytes(), 86400.0 * 365.0);
            }
        }
    }

    // Re-announce like the node managers' advertise threads; purge like the servers.
    let refresh = Duration::from_secs(sc.advertise.refresh_seconds.max(1));
    let weak = Arc::downgrade(&sim);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        let mut last = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let Some(sim) = weak.upgrade() else { break };
            sim.tcp_store.purge();
            sim.udp_store.purge();
            if last.elapsed() >= refresh {
                last = tokio::time::Instant::now();
                sim.announce_all();
            }
        }
    });

    // Control API.
    let control = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.ports.control))
        .await
        .context("control port")?;
    let control_addr = control.local_addr()?;
    let app = control_router(sim.clone());
    tokio::spawn(async move {
        let _ = axum::serve(control, app).await;
    });

    let ep = Endpoints {
        advertise_tcp: adv_addr.to_string(),
        advertise_udp: udp_addr.to_string(),
        zenodotus_dns: dns_addr.to_string(),
        zenodotus_zone: sc.zenodotus.zone.clone(),
        updatesite_url: format!("{}updatesite/", sim.services[0].url()),
        update_public_key: site.key.public.to_key_string(),
        cib_url: sim.services[1].url(),
        cib_xmlrpc_url: format!("{}xmlrpc/", sim.services[1].url()),
        clearinghouse_url: sim.services[2].url(),
        clearinghouse_https_url: sim.services[2].https_url().unwrap_or_default(),
        tls_ca_cert: identity.ca_pem.clone(),
        tls_cert_not_after: identity.not_after,
        lockserver_url: sim.services[3].url(),
        control_url: format!("http://{control_addr}/control/"),
        v2_advertise_key: world.v2.advertise_key(),
        state_advertise_keys: world::STATES
            .iter()
            .zip(&world.state_keys)
            .map(|(s, k)| (s.to_string(), k.advertise_key()))
            .collect(),
        node_count: world.nodes.len(),
        nodes: world.nodes.iter().map(|n| n.addr_string()).collect(),
    };
    *sim.endpoints.lock().unwrap_or_else(|e| e.into_inner()) = Some(ep);
    Ok(sim)
}

fn json_response<T: Serialize>(status: StatusCode, v: &T) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec_pretty(v).unwrap_or_default()))
        .unwrap_or_default()
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": msg.to_string() }),
    )
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeControl {
    #[serde(default)]
    node: Option<usize>,
    #[serde(default)]
    nodes: Vec<usize>,
    behaviour: Behaviour,
    #[serde(default)]
    withdraw: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VesselControl {
    node: usize,
    vessel: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    disk_used_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceControl {
    service: String,
    behaviour: Behaviour,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetainfoControl {
    state: MetainfoState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvertiseControl {
    op: String,
    key: String,
    value: String,
    #[serde(default = "default_ttl")]
    ttl: f64,
}

fn default_ttl() -> f64 {
    600.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockControl {
    advance_seconds: f64,
}

fn control_router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route(
            "/control/truth",
            get(|State(sim): State<Arc<Simulator>>| async move {
                let mut truth = serde_json::to_value(sim.world.truth()).unwrap_or_default();
                let services: serde_json::Map<String, serde_json::Value> = sim
                    .services
                    .iter()
                    .map(|s| (s.name.to_string(), serde_json::to_value(s.behaviour()).unwrap_or_default()))
                    .chain([
                        (
                            "advertise_tcp".to_string(),
                            serde_json::to_value(sim.advertise_tcp.behaviour()).unwrap_or_default(),
                        ),
                        (
                            "zenodotus_dns".to_string(),
                            serde_json::to_value(sim.zenodotus_dns.behaviour()).unwrap_or_default(),
                        ),
                        (
                            "metainfo".to_string(),
                            serde_json::to_value(sim.updatesite.state()).unwrap_or_default(),
                        ),
                    ])
                    .collect();
                truth["services"] = serde_json::Value::Object(services);
                json_response(StatusCode::OK, &truth)
            }),
        )
        .route(
            "/control/endpoints",
            get(|State(sim): State<Arc<Simulator>>| async move {
                json_response(StatusCode::OK, &sim.endpoints())
            }),
        )
        .route(
            "/control/node",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: NodeControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                let mut nodes = c.nodes.clone();
                nodes.extend(c.node);
                if nodes.is_empty() {
                    return bad_request("give node or nodes");
                }
                for i in nodes {
                    if let Err(e) = sim.set_node(i, c.behaviour, c.withdraw).await {
                        return bad_request(e);
                    }
                }
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/control/vessel",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: VesselControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                let Some(node) = sim.world.nodes.get(c.node) else {
                    return bad_request(format!("no node {}", c.node));
                };
                let mut d = node.lock();
                let Some(v) = d.vessels.iter_mut().find(|v| v.name == c.vessel) else {
                    return bad_request(format!("no vessel {} on node {}", c.vessel, c.node));
                };
                if let Some(s) = &c.status {
                    match world::STATUSES.iter().find(|x| *x == s) {
                        Some(st) => v.status = st,
                        None => return bad_request(format!("unknown status {s}")),
                    }
                }
                if let Some(b) = c.disk_used_bytes {
                    v.disk_used = b;
                }
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/control/service",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: ServiceControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                if c.behaviour.zenodotus_only() && c.service != "zenodotus_dns" {
                    return bad_request(format!("{:?} is a zenodotus_dns fault", c.behaviour));
                }
                match c.service.as_str() {
                    "zenodotus_dns" => {
                        if let Err(e) = sim.zenodotus_dns.set_behaviour(c.behaviour).await {
                            return bad_request(e);
                        }
                    }
                    "advertise_tcp" => {
                        *sim.advertise_tcp.behaviour.lock().unwrap_or_else(|e| e.into_inner()) =
                            c.behaviour;
                    }
                    "advertise_udp" => {
                        *sim.advertise_udp.behaviour.lock().unwrap_or_else(|e| e.into_inner()) =
                            c.behaviour;
                    }
                    name => match sim.service(name) {
                        Some(s) => {
                            if let Err(e) = s.set_behaviour(c.behaviour).await {
                                return bad_request(e);
                            }
                        }
                        None => {
                            return bad_request(format!(
                                "unknown service {name} (advertise_tcp, advertise_udp, zenodotus_dns, updatesite, cib, clearinghouse, lockserver)"
                            ));
                        }
                    },
                }
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/control/metainfo",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: MetainfoControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                *sim.updatesite.state.lock().unwrap_or_else(|e| e.into_inner()) = c.state;
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/control/advertise",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: AdvertiseControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                for s in [&sim.tcp_store, &sim.udp_store] {
                    match c.op.as_str() {
                        "put" => s.put(c.key.as_bytes(), c.value.as_bytes(), c.ttl.max(1.0)),
                        "remove" => s.remove(c.key.as_bytes(), c.value.as_bytes()),
                        other => return bad_request(format!("unknown op {other} (put, remove)")),
                    }
                }
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .route(
            "/control/clock",
            post(|State(sim): State<Arc<Simulator>>, body: Bytes| async move {
                let c: ClockControl = match parse(&body) {
                    Ok(c) => c,
                    Err(e) => return bad_request(e),
                };
                sim.clock.advance(c.advance_seconds);
                // Nodes that are up kept re-announcing during the skipped time; down ones did not.
                sim.announce_all();
                json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            }),
        )
        .with_state(sim)
}

/// Address helper for tests: the node's socket address.
pub fn node_addr(sim: &Simulator, i: usize) -> SocketAddr {
    let n = &sim.world.nodes[i];
    SocketAddr::new(IpAddr::V4(n.ip), n.port())
}
