//! `/probe` modules. Each kind is one file implementing the toolkit's [`Prober`] for its own
//! module type; [`NodeProber`] is the single prober the exporter registers and dispatches on
//! the module's kind here, in one place.

pub mod advertise;
pub mod failure;
pub mod nodemanager;
pub mod users;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use serde::Deserialize;
use tokio::time::Instant;

use seattle_protocol::nodemanager::client::Client as NodemanagerClient;

use crate::config::{Config, NamedKey, WellKnownKey};

pub use advertise::{AdvertiseModule, AdvertiseProber};
pub use nodemanager::{NodemanagerModule, NodemanagerProber};
pub use users::{UsersModule, UsersProber};

/// Transport of an advertise module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A module as configured: one of the three kinds.
#[derive(Debug, Clone)]
pub enum Module {
    Nodemanager(NodemanagerModule),
    Advertise(AdvertiseModule),
    Users(UsersModule),
}

/// What every prober shares: the node-manager client (its per-IP connection cap must span all
/// probes), the state keys, the well-known lookups and the users.
pub struct Shared {
    pub nm: NodemanagerClient,
    /// Key string (`"e n"`) → state name.
    pub states: HashMap<String, String>,
    /// Key string of the v2 key (its vessel is never the "extra vessel").
    pub v2_key_string: String,
    pub lookups: Vec<WellKnownKey>,
    pub users: Vec<NamedKey>,
}

impl Shared {
    pub fn new(config: &Config) -> Self {
        Shared {
            nm: NodemanagerClient::default(),
            states: config
                .state_keys
                .iter()
                .map(|k| (k.key_string.clone(), k.name.clone()))
                .collect(),
            v2_key_string: config.v2.key_string.clone(),
            lookups: config.lookups.clone(),
            users: config.users.clone(),
        }
    }

    /// The state whose key this key string is, if any.
    pub fn state_of(&self, key_string: &str) -> Option<&str> {
        if let Some(s) = self.states.get(key_string) {
            return Some(s);
        }
        // Node managers print canonical key strings; tolerate odd spacing anyway.
        if key_string.contains("  ") || key_string.starts_with(' ') || key_string.ends_with(' ') {
            let canonical = key_string.split_whitespace().collect::<Vec<_>>().join(" ");
            return self.states.get(&canonical).map(String::as_str);
        }
        None
    }
}

/// The exporter's one prober: dispatches on the module kind.
pub struct NodeProber {
    nodemanager: NodemanagerProber,
    advertise: AdvertiseProber,
    users: UsersProber,
}

impl NodeProber {
    pub fn new(shared: Arc<Shared>) -> Self {
        NodeProber {
            nodemanager: NodemanagerProber::new(shared.clone()),
            advertise: AdvertiseProber::new(shared.clone()),
            users: UsersProber::new(shared),
        }
    }
}

impl Prober for NodeProber {
    type Module = Module;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        match module {
            Module::Nodemanager(m) => self.nodemanager.probe(target, m, ctx, registry),
            Module::Advertise(m) => self.advertise.probe(target, m, ctx, registry),
            Module::Users(m) => self.users.probe(target, m, ctx, registry),
        }
    }
}

/// `host:port` (IPv6 as `[addr]:port`) → (host, port).
pub fn split_host_port(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    Some((host, port))
}

/// Resolves a `host:port` target before `deadline`; IP literals skip the resolver.
pub async fn resolve_target(target: &str, deadline: Instant) -> Result<SocketAddr, ProbeFailure> {
    let (host, port) = split_host_port(target)
        .ok_or_else(|| ProbeFailure::new("bad_target", "expected host:port"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| ProbeFailure::new("timeout", "resolving the target"))?
        .map_err(|e| ProbeFailure::new("resolve_failed", e.to_string()))?;
    let addrs: Vec<SocketAddr> = lookup.collect();
    // IPv4 first, like blackbox's default preference.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| ProbeFailure::new("resolve_failed", "no address"))
}

/// Deadline for the probe's own steps: a little before the toolkit cancels the probe, so a step
/// that runs out of time still reports its metrics and its own reason.
pub fn step_deadline(ctx: &ProbeContext) -> Instant {
    let margin = (ctx.remaining() / 20).min(Duration::from_millis(100));
    ctx.deadline() - margin
}

pub(crate) type Labels = Vec<(&'static str, String)>;
pub(crate) type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Registers a plain integer gauge.
pub(crate) fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Registers a plain float gauge.
pub(crate) fn float_gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Registers a family of integer gauges from (labels, value) pairs.
pub(crate) fn gauge_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, i64)>,
) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, v) in series {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

/// Registers a family of float gauges from (labels, value) pairs.
pub(crate) fn float_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, f64)>,
) {
    let family = Family::<Labels, FloatGauge>::default();
    for (labels, v) in series {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(split_host_port("1.2.3.4:1224"), Some(("1.2.3.4", 1224)));
        assert_eq!(split_host_port("[::1]:1224"), Some(("::1", 1224)));
        assert_eq!(
            split_host_port("host.example:10102"),
            Some(("host.example", 10102))
        );
        assert_eq!(split_host_port("1.2.3.4"), None);
        assert_eq!(split_host_port(":1224"), None);
        assert_eq!(split_host_port("1.2.3.4:99999"), None);
        assert_eq!(split_host_port("http://x:1"), None);
    }
}
