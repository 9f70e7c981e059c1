//! Module kind `zenodotus` (docs/metrics.md): resolve the target through the configured server
//! with one UDP socket, then, as the module enables them, check the answered hosts, compare the
//! answer with the advertise service, check the zone and do an announce-then-resolve round trip.
//!
//! Every option's metrics are registered at 0 before any network step, so a step cut short by
//! the deadline still leaves them in the answer.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use seattle_protocol::advertise::{self, AdvertiseError};
use seattle_protocol::nodemanager::client::Client as NodeManagerClient;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::{Module, Server};
use crate::dns::{self, Answer, DnsError, QuerySocket};
use crate::icmp;

/// Answered addresses checked at most (hosts, ICMP).
pub const MAX_HOSTS: usize = 16;
/// Values Zenodotus asks the advertise service for (SEATTLE.md F).
const ADVERTISE_MAXVALS: u64 = 10;
/// Cap on the advertise reply (a GET of ten addresses is a few hundred bytes).
const ADVERTISE_MAX_REPLY: usize = 64 * 1024;
/// TTL of the round trip's announcement (docs/metrics.md).
const ROUND_TRIP_TTL: u64 = 60;
/// Pause between resolutions while waiting for an announced name to appear.
const ROUND_TRIP_POLL: Duration = Duration::from_millis(250);
/// The probe ends its own steps this much before the toolkit's deadline (at most), so it can
/// still report why it failed.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

type Labels = Vec<(&'static str, &'static str)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The `zenodotus` prober. Holds the node-manager client so its per-node connection limit is
/// shared by concurrent probes.
#[derive(Debug, Default)]
pub struct ZenodotusProber {
    nodemanager: NodeManagerClient,
}

impl ZenodotusProber {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Prober for ZenodotusProber {
    type Module = Module;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(self.run(target, module, ctx, registry))
    }
}

/// Gauges of the enabled options, registered up front at 0.
#[derive(Default)]
struct OptionMetrics {
    hosts_answered: Gauge,
    hosts_up: Family<Labels, Gauge>,
    icmp_possible: Gauge,
    nodemanager_info: Family<Vec<(&'static str, String)>, Gauge>,
    nodemanager_vessels: Gauge,
    matches_advertise: Gauge,
    round_trip_success: Gauge,
    round_trip_duration: FloatGauge,
    apex_ok: Gauge,
    ns_ok: Gauge,
    soa_ok: Gauge,
}

impl OptionMetrics {
    fn register(registry: &mut Registry, module: &Module) -> Self {
        let m = OptionMetrics::default();
        registry.register(
            "seattle_zenodotus_hosts_answered",
            "Distinct addresses answered",
            m.hosts_answered.clone(),
        );
        if module.check_host {
            for method in ["tcp", "icmp"] {
                let _ = m.hosts_up.get_or_create(&vec![("method", method)]);
            }
            registry.register(
                "seattle_zenodotus_hosts_up",
                "Answered addresses that accepted TCP on the host port / answered ICMP echo",
                m.hosts_up.clone(),
            );
            m.icmp_possible.set(i64::from(icmp::available().is_some()));
            registry.register(
                "seattle_zenodotus_icmp_possible",
                "1 if the exporter may send ICMP echo (raw or ping socket allowed)",
                m.icmp_possible.clone(),
            );
            registry.register(
                "seattle_zenodotus_nodemanager_info",
                "A node manager answered GetVessels on an answered address, by version",
                m.nodemanager_info.clone(),
            );
            registry.register(
                "seattle_zenodotus_nodemanager_vessels",
                "Vessels that node manager lists",
                m.nodemanager_vessels.clone(),
            );
        }
        if module.compare_advertise {
            registry.register(
                "seattle_zenodotus_dns_matches_advertise",
                "1 if the answered addresses equal the valid IPv4 values advertised for the name",
                m.matches_advertise.clone(),
            );
        }
        if module.round_trip {
            registry.register(
                "seattle_zenodotus_round_trip_success",
                "1 if a freshly announced name resolved to its address",
                m.round_trip_success.clone(),
            );
            registry.register(
                "seattle_zenodotus_round_trip_duration_seconds",
                "Announce to resolved",
                m.round_trip_duration.clone(),
            );
        }
        if module.zone_check {
            registry.register(
                "seattle_zenodotus_zone_apex_ok",
                "1 if A for the zone equals the server's own address",
                m.apex_ok.clone(),
            );
            registry.register(
                "seattle_zenodotus_zone_ns_ok",
                "1 if NS for the zone answers NOERROR with at least one record",
                m.ns_ok.clone(),
            );
            registry.register(
                "seattle_zenodotus_zone_soa_ok",
                "1 if SOA for the zone answers NOERROR with one record",
                m.soa_ok.clone(),
            );
        }
        m
    }
}

/// Registers what the main answer says: rcode stateset, A records, lookup time.
fn register_answer(registry: &mut Registry, answer: &Answer, took: Duration) {
    let rcodes = Family::<Labels, Gauge>::default();
    let got = dns::rcode_label(answer.rcode);
    for rcode in dns::RCODES {
        rcodes
            .get_or_create(&vec![("rcode", rcode)])
            .set(i64::from(rcode == got));
    }
    registry.register(
        "seattle_dns_rcode",
        "Response code of the answer (stateset)",
        rcodes,
    );
    let answers = Gauge::<i64>::default();
    answers.set(i64::try_from(answer.records).unwrap_or(i64::MAX));
    registry.register(
        "seattle_dns_answers",
        "A records in the answer section",
        answers,
    );
    let seconds = FloatGauge::default();
    seconds.set(took.as_secs_f64());
    registry.register(
        "seattle_dns_lookup_duration_seconds",
        "Query to answer",
        seconds,
    );
}

fn fail(reason: &'static str, detail: impl Into<String>) -> ProbeFailure {
    ProbeFailure::new(reason, detail)
}

fn dns_failure(e: DnsError) -> ProbeFailure {
    fail(e.reason(), e.to_string())
}

/// The advertise client's reasons are the catalogue's transport words already; this module's
/// list has no `framing`, so a malformed frame is a `bad_reply` here.
fn advertise_failure(e: &AdvertiseError) -> ProbeFailure {
    let reason = match e.reason() {
        "framing" => "bad_reply",
        r => r,
    };
    fail(reason, format!("advertise service: {e}"))
}

/// The first `nameserver` of resolv.conf, IPv4 first (scoped IPv6 addresses are skipped).
pub fn system_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    let mut v6 = None;
    for line in resolv_conf.lines().take(10_000) {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        match words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
            Some(ip @ IpAddr::V4(_)) => return Some(SocketAddr::new(ip, 53)),
            Some(ip @ IpAddr::V6(_)) if v6.is_none() => v6 = Some(SocketAddr::new(ip, 53)),
            _ => {}
        }
    }
    v6
}

async fn server_address(server: &Server, deadline: Instant) -> Result<SocketAddr, ProbeFailure> {
    match server {
        Server::Addr(a) => Ok(*a),
        Server::System => {
            let text = tokio::time::timeout_at(deadline, tokio::fs::read("/etc/resolv.conf"))
                .await
                .map_err(|_| fail("timeout", "reading /etc/resolv.conf"))?
                .map_err(|e| fail("resolve_failed", format!("/etc/resolv.conf: {e}")))?;
            let text = String::from_utf8_lossy(text.get(..64 * 1024).unwrap_or(&text));
            system_nameserver(&text)
                .ok_or_else(|| fail("resolve_failed", "no nameserver in /etc/resolv.conf"))
        }
        Server::Host(host, port) => {
            let addrs =
                tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), *port)))
                    .await
                    .map_err(|_| fail("timeout", format!("resolving the server {host}")))?
                    .map_err(|e| fail("resolve_failed", format!("server {host}: {e}")))?;
            let mut first = None;
            for a in addrs.take(64) {
                if a.is_ipv4() {
                    return Ok(a);
                }
                first.get_or_insert(a);
            }
            first.ok_or_else(|| fail("resolve_failed", format!("server {host}: no address")))
        }
    }
}

/// Distinct addresses in answer order.
fn distinct(addresses: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::with_capacity(addresses.len().min(MAX_HOSTS));
    for a in addresses {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// What `check_host` found.
struct Hosts {
    tcp_up: usize,
    icmp_up: usize,
}

async fn tcp_accepts(addr: SocketAddr, deadline: Instant) -> bool {
    matches!(
        tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

impl ZenodotusProber {
    async fn run(
        &self,
        target: &str,
        module: &Module,
        ctx: &ProbeContext,
        registry: &mut Registry,
    ) -> Result<(), ProbeFailure> {
        let deadline = ctx.deadline() - DEADLINE_MARGIN.min(ctx.remaining() / 20);
        let name = dns::parse_name(target)
            .ok_or_else(|| fail("bad_target", "the target is not a DNS name"))?;
        let metrics = OptionMetrics::register(registry, module);

        let server = server_address(&module.server, deadline).await?;
        let mut socket = QuerySocket::connect(server).await.map_err(dns_failure)?;
        ctx.log(format_args!("asking {server} for A {name}"));
        let (answer, took) = socket
            .query(&name, RecordType::A, deadline)
            .await
            .map_err(dns_failure)?;
        ctx.log(format_args!(
            "answer in {:.3}s: {} with {} A record(s)",
            took.as_secs_f64(),
            dns::rcode_label(answer.rcode),
            answer.records
        ));
        register_answer(registry, &answer, took);
        let addresses = distinct(&answer.addresses);
        metrics
            .hosts_answered
            .set(i64::try_from(addresses.len()).unwrap_or(i64::MAX));

        let mut failure = match dns::rcode_reason(answer.rcode) {
            Some(reason) => Some(fail(reason, "the server answered an error")),
            None if answer.records == 0 => Some(fail("no_answer", "NOERROR without A records")),
            None => None,
        };

        let checked = addresses.get(..MAX_HOSTS).unwrap_or(&addresses);
        let (hosts, advertised, zone) = tokio::join!(
            async {
                if !module.check_host {
                    return None;
                }
                Some(
                    self.check_hosts(checked, module, &metrics, ctx, deadline)
                        .await,
                )
            },
            async {
                if !module.compare_advertise {
                    return None;
                }
                Some(compare_advertise(target, &addresses, module, &metrics, ctx, deadline).await)
            },
            zone_and_round_trip(
                &mut socket,
                &name,
                target,
                server,
                &answer,
                module,
                &metrics,
                ctx,
                deadline
            ),
        );
        if let Some(h) = hosts
            && h.tcp_up == 0
        {
            failure.get_or_insert_with(|| {
                fail(
                    "host_down",
                    format!(
                        "none of {} address(es) accepted TCP on port {} ({} answered ICMP)",
                        checked.len(),
                        module.host_port,
                        h.icmp_up
                    ),
                )
            });
        }
        if let Some(Err(f)) = advertised {
            failure.get_or_insert(f);
        }
        if let Err(f) = zone {
            failure.get_or_insert(f);
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    async fn check_hosts(
        &self,
        addresses: &[Ipv4Addr],
        module: &Module,
        metrics: &OptionMetrics,
        ctx: &ProbeContext,
        deadline: Instant,
    ) -> Hosts {
        let port = module.host_port;
        let tcp = join_all(
            addresses
                .iter()
                .map(|a| tcp_accepts(SocketAddr::new(IpAddr::V4(*a), port), deadline)),
        );
        let icmp = async {
            match icmp::available() {
                Some(kind) => join_all(addresses.iter().map(|a| icmp::ping(kind, *a, deadline)))
                    .await
                    .into_iter()
                    .filter(|up| *up)
                    .count(),
                None => 0,
            }
        };
        let (tcp, icmp_up) = tokio::join!(tcp, icmp);
        let tcp_up = tcp.iter().filter(|up| **up).count();
        let set = |method, n: usize| {
            metrics
                .hosts_up
                .get_or_create(&vec![("method", method)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("tcp", tcp_up);
        set("icmp", icmp_up);
        ctx.log(format_args!(
            "{tcp_up} of {} address(es) accept TCP on port {port}, {icmp_up} answer ICMP",
            addresses.len()
        ));
        // Node info from the first address that accepted TCP: that is where a node manager
        // would answer.
        if let Some(addr) = addresses
            .iter()
            .zip(&tcp)
            .find(|(_, up)| **up)
            .map(|(a, _)| *a)
        {
            let at = SocketAddr::new(IpAddr::V4(addr), port);
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.nodemanager.get_vessels(at, remaining).await {
                Ok(gv) => {
                    metrics
                        .nodemanager_info
                        .get_or_create(&vec![("version", version_label(&gv.version).to_string())])
                        .set(1);
                    metrics
                        .nodemanager_vessels
                        .set(i64::try_from(gv.vessels.len()).unwrap_or(i64::MAX));
                    ctx.log(format_args!(
                        "node manager at {at}: version {:?}, {} vessel(s)",
                        gv.version,
                        gv.vessels.len()
                    ));
                }
                Err(e) => ctx.log(format_args!("no node manager at {at}: {e}")),
            }
        }
        Hosts { tcp_up, icmp_up }
    }
}

/// `version` label as `seattle_nodemanager_info` spells it: printable ASCII, at most 64
/// characters, else `invalid`.
pub fn version_label(v: &str) -> &str {
    if !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        v
    } else {
        "invalid"
    }
}

/// The advertise key Zenodotus looks up for an A query: the name without the trailing dot.
fn advertise_key(target: &str) -> String {
    target.trim().trim_end_matches('.').to_ascii_lowercase()
}

async fn compare_advertise(
    target: &str,
    answered: &[Ipv4Addr],
    module: &Module,
    metrics: &OptionMetrics,
    ctx: &ProbeContext,
    deadline: Instant,
) -> Result<(), ProbeFailure> {
    let key = advertise_key(target);
    let values = advertise::tcp_get(
        module.advertise.as_str(),
        key.as_bytes(),
        ADVERTISE_MAXVALS,
        ADVERTISE_MAX_REPLY,
        deadline,
    )
    .await
    .map_err(|e| advertise_failure(&e))?;
    let advertised: BTreeSet<Ipv4Addr> = values
        .iter()
        .filter_map(|v| dns::zenodotus_ipv4(v))
        .collect();
    let answered: BTreeSet<Ipv4Addr> = answered.iter().copied().collect();
    ctx.log(format_args!(
        "advertise lists {} value(s) for {key}, {} valid",
        values.len(),
        advertised.len()
    ));
    if advertised == answered {
        metrics.matches_advertise.set(1);
        Ok(())
    } else {
        Err(fail(
            "advertise_mismatch",
            format!(
                "DNS answered {} address(es), advertise lists {} valid one(s)",
                answered.len(),
                advertised.len()
            ),
        ))
    }
}

/// Zone check, then round trip (both use the probe's DNS socket, one query at a time).
#[allow(clippy::too_many_arguments)]
async fn zone_and_round_trip(
    socket: &mut QuerySocket,
    zone: &Name,
    target: &str,
    server: SocketAddr,
    apex: &Answer,
    module: &Module,
    metrics: &OptionMetrics,
    ctx: &ProbeContext,
    deadline: Instant,
) -> Result<(), ProbeFailure> {
    let mut failure = None;
    if module.zone_check
        && let Err(f) = zone_check(socket, zone, server, apex, module, metrics, deadline).await
    {
        ctx.log(format_args!("zone check: {f}"));
        failure = Some(f);
    }
    if module.round_trip
        && let Err(f) = round_trip(socket, target, module, metrics, ctx, deadline).await
    {
        ctx.log(format_args!("round trip: {f}"));
        failure.get_or_insert(f);
    }
    failure.map_or(Ok(()), Err)
}

#[allow(clippy::too_many_arguments)]
async fn zone_check(
    socket: &mut QuerySocket,
    zone: &Name,
    server: SocketAddr,
    apex: &Answer,
    module: &Module,
    metrics: &OptionMetrics,
    deadline: Instant,
) -> Result<(), ProbeFailure> {
    // The server's own address is only known when it was configured; through the system
    // resolver any address for the apex counts.
    let own = match (&module.server, server.ip()) {
        (Server::System, _) | (_, IpAddr::V6(_)) => None,
        (_, IpAddr::V4(ip)) => Some(ip),
    };
    let apex_ok = apex.rcode == ResponseCode::NoError
        && !apex.addresses.is_empty()
        && own.is_none_or(|own| apex.addresses.iter().all(|a| *a == own));
    metrics.apex_ok.set(i64::from(apex_ok));
    let mut failure = (!apex_ok).then(|| {
        fail(
            "zone_apex_mismatch",
            "A for the zone is not the server's own address",
        )
    });
    let ns = socket.query(zone, RecordType::NS, deadline).await;
    let ns_ok = matches!(&ns, Ok((a, _)) if a.rcode == ResponseCode::NoError && a.records >= 1);
    metrics.ns_ok.set(i64::from(ns_ok));
    if !ns_ok {
        failure.get_or_insert_with(|| fail("zone_ns_failed", format!("NS: {:?}", ns.map(|a| a.0))));
    }
    let soa = socket.query(zone, RecordType::SOA, deadline).await;
    let soa_ok = matches!(&soa, Ok((a, _)) if a.rcode == ResponseCode::NoError && a.records == 1);
    metrics.soa_ok.set(i64::from(soa_ok));
    if !soa_ok {
        failure
            .get_or_insert_with(|| fail("zone_soa_failed", format!("SOA: {:?}", soa.map(|a| a.0))));
    }
    failure.map_or(Ok(()), Err)
}

/// A valid address as Zenodotus filters them (every octet below 255), never 0.x.x.x.
fn random_address() -> Ipv4Addr {
    let r: [u8; 4] = rand::random();
    Ipv4Addr::new(1 + r[0] % 254, r[1] % 255, r[2] % 255, 1 + r[3] % 254)
}

async fn round_trip(
    socket: &mut QuerySocket,
    zone: &str,
    module: &Module,
    metrics: &OptionMetrics,
    ctx: &ProbeContext,
    deadline: Instant,
) -> Result<(), ProbeFailure> {
    let label: u64 = rand::random();
    let key = format!("seattle-exporter-{label:016x}.{}", advertise_key(zone));
    let name = dns::parse_name(&key)
        .ok_or_else(|| fail("bad_target", "the zone is too long for a round-trip name"))?;
    let address = random_address();
    let value = address.to_string();
    let start = Instant::now();
    advertise::tcp_put(
        module.advertise.as_str(),
        key.as_bytes(),
        value.as_bytes(),
        ROUND_TRIP_TTL,
        deadline,
    )
    .await
    .map_err(|e| fail("announce_failed", format!("advertise service: {e}")))?;
    ctx.log(format_args!("announced {key} -> {value}"));
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match socket.query(&name, RecordType::A, deadline).await {
            Ok((a, _)) if a.addresses.contains(&address) => {
                let took = start.elapsed();
                metrics.round_trip_success.set(1);
                metrics.round_trip_duration.set(took.as_secs_f64());
                ctx.log(format_args!(
                    "{key} resolved after {:.3}s",
                    took.as_secs_f64()
                ));
                return Ok(());
            }
            Ok((a, _)) => {
                last = format!(
                    "{} with {} A record(s)",
                    dns::rcode_label(a.rcode),
                    a.records
                )
            }
            Err(e) => last = e.to_string(),
        }
        let next = (Instant::now() + ROUND_TRIP_POLL).min(deadline);
        tokio::time::sleep_until(next).await;
    }
    Err(fail(
        "round_trip_failed",
        format!("{key} did not resolve to {value}: {last}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_from_resolv_conf() {
        let conf =
            "# c\nsearch x\nnameserver fe80::1%eth0\nnameserver 2001:db8::1\nnameserver 10.0.0.2\n";
        assert_eq!(
            system_nameserver(conf),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            system_nameserver("nameserver 2001:db8::1\n"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(system_nameserver("nameserver junk\n"), None);
    }

    #[test]
    fn round_trip_addresses_pass_the_filter() {
        for _ in 0..1000 {
            let a = random_address();
            assert_eq!(dns::zenodotus_ipv4(a.to_string().as_bytes()), Some(a));
        }
    }

    #[test]
    fn distinct_keeps_order() {
        let a = Ipv4Addr::new(1, 2, 3, 4);
        let b = Ipv4Addr::new(1, 2, 3, 5);
        assert_eq!(distinct(&[a, b, a, b]), vec![a, b]);
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(version_label("0.1t"), "0.1t");
        assert_eq!(version_label(&"x".repeat(65)), "invalid");
        assert_eq!(version_label("a\nb"), "invalid");
        assert_eq!(
            advertise_key("Hello.Zenodotus.poly.edu."),
            "hello.zenodotus.poly.edu"
        );
    }
}
