//! Module kind `users`: for each configured user, look the key up on the target advertise
//! service, run `GetVessels` on every advertised node and count the vessels the key owns or
//! uses (SEATTLE.md D.5), then diagnose.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use seattle_protocol::advertise::{AffixReachability, NodeAddress, NodeHost, affix_reachability};
use seattle_protocol::nodemanager::getvessels::same_key;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::advertise::{LOOKUP_MAXVALS, get};
use super::{Protocol, Shared, gauge_family, resolve_target, step_deadline};
use crate::config::NamedKey;

pub const DEFAULT_MAX_NODES_PER_USER: usize = 50;
pub const DEFAULT_NODE_CONCURRENCY: usize = 32;
/// Users looked up at once.
const USER_CONCURRENCY: usize = 4;

/// Every diagnosis, in the order they are tried (docs/metrics.md).
pub const DIAGNOSES: [&str; 5] = [
    "lookup_failed",
    "advertise_inconsistent",
    "ok",
    "nodes_unreachable",
    "no_vessels_acquired",
];

/// Settings of a `users` module.
#[derive(Debug, Clone)]
pub struct UsersModule {
    pub protocol: Protocol,
    pub max_nodes_per_user: usize,
    /// `GetVessels` calls at once over the whole probe.
    pub node_concurrency: usize,
    pub max_reply_bytes: usize,
}

pub struct UsersProber {
    shared: Arc<Shared>,
}

impl UsersProber {
    pub fn new(shared: Arc<Shared>) -> Self {
        UsersProber { shared }
    }
}

impl Prober for UsersProber {
    type Module = UsersModule;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a UsersModule,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(probe(&self.shared, target, module, ctx, registry))
    }
}

/// What one user's check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub advertised_nodes: usize,
    pub unreachable: usize,
    pub without_key: usize,
    pub owner_vessels: usize,
    pub user_vessels: usize,
    /// `Some(failure)` when the lookup did not answer.
    pub lookup_failure: Option<ProbeFailure>,
}

impl UserReport {
    /// The first diagnosis that applies.
    pub fn diagnosis(&self) -> &'static str {
        if self.lookup_failure.is_some() {
            "lookup_failed"
        } else if self.without_key > 0 {
            "advertise_inconsistent"
        } else if self.owner_vessels + self.user_vessels > 0 {
            "ok"
        } else if self.unreachable > 0 {
            "nodes_unreachable"
        } else {
            "no_vessels_acquired"
        }
    }
}

/// Where an advertised node can be asked, or `None` if it cannot be reached directly.
async fn node_addr(
    protocol: Protocol,
    server: SocketAddr,
    node: &NodeAddress,
    max_reply: usize,
    deadline: Instant,
) -> Option<SocketAddr> {
    match &node.host {
        NodeHost::Ip(ip) => Some(SocketAddr::new(*ip, node.port)),
        NodeHost::Nat(_) => None,
        NodeHost::Other(host) => resolve_target(&format!("{host}:{}", node.port), deadline)
            .await
            .ok(),
        NodeHost::Affix(_) => {
            let ip_key = node.affix_ip_key()?;
            let stack_key = node.affix_stack_key()?;
            let (ips, stacks) = tokio::join!(
                get(protocol, server, ip_key.as_bytes(), 10, max_reply, deadline),
                get(
                    protocol,
                    server,
                    stack_key.as_bytes(),
                    10,
                    max_reply,
                    deadline
                ),
            );
            let (ips, stacks) = (ips.ok()?, stacks.ok()?);
            if stacks
                .iter()
                .any(|s| affix_reachability(s) == AffixReachability::Nat)
            {
                return None;
            }
            ips.iter()
                .find_map(|ip| std::str::from_utf8(ip).ok()?.trim().parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, node.port))
        }
    }
}

async fn check_user(
    shared: &Shared,
    user: &NamedKey,
    server: SocketAddr,
    module: &UsersModule,
    nodes_at_once: &Semaphore,
    deadline: Instant,
) -> UserReport {
    let mut report = UserReport::default();
    let values = match get(
        module.protocol,
        server,
        user.advertise_key.as_bytes(),
        LOOKUP_MAXVALS,
        module.max_reply_bytes,
        deadline,
    )
    .await
    {
        Ok(v) => v,
        Err(f) => {
            report.lookup_failure = Some(f);
            return report;
        }
    };
    let mut seen = HashSet::new();
    let nodes: Vec<NodeAddress> = values
        .iter()
        .filter(|v| !v.is_empty())
        .filter_map(|v| NodeAddress::parse(v).ok())
        .filter(|n| seen.insert(n.clone()))
        .take(module.max_nodes_per_user)
        .collect();
    report.advertised_nodes = nodes.len();

    // Per node: None = unreachable, Some((owner, user)) = vessels with the key.
    // Futures built eagerly: a closure inside the stream trips the Send check (rust#64552).
    let checks: Vec<_> = nodes
        .iter()
        .map(|node| async move {
            let _slot = nodes_at_once.acquire().await.ok()?;
            let addr = node_addr(
                module.protocol,
                server,
                node,
                module.max_reply_bytes,
                deadline,
            )
            .await?;
            let budget = deadline.saturating_duration_since(Instant::now());
            let gv = shared.nm.get_vessels(addr, budget).await.ok()?;
            let owner = gv
                .vessels
                .iter()
                .filter(|v| same_key(&v.owner_key, &user.key_string))
                .count();
            let users = gv
                .vessels
                .iter()
                .filter(|v| v.user_keys.iter().any(|k| same_key(k, &user.key_string)))
                .count();
            Some((owner, users))
        })
        .collect();
    let results: Vec<Option<(usize, usize)>> = stream::iter(checks)
        .buffer_unordered(module.node_concurrency.max(1))
        .collect()
        .await;
    for r in results {
        match r {
            None => report.unreachable += 1,
            Some((0, 0)) => report.without_key += 1,
            Some((o, u)) => {
                report.owner_vessels += o;
                report.user_vessels += u;
            }
        }
    }
    report
}

async fn probe(
    shared: &Shared,
    target: &str,
    module: &UsersModule,
    ctx: &ProbeContext,
    registry: &mut Registry,
) -> Result<(), ProbeFailure> {
    let deadline = step_deadline(ctx);
    let server = resolve_target(target, deadline).await?;
    let nodes_at_once = Semaphore::new(module.node_concurrency.max(1));
    let nodes_at_once = &nodes_at_once;
    let checks: Vec<_> = shared
        .users
        .iter()
        .map(|u| async move {
            (
                u,
                check_user(shared, u, server, module, nodes_at_once, deadline).await,
            )
        })
        .collect();
    let reports: Vec<(&NamedKey, UserReport)> = stream::iter(checks)
        .buffered(USER_CONCURRENCY)
        .collect()
        .await;

    let per_user = |f: &dyn Fn(&UserReport) -> usize| {
        reports
            .iter()
            .map(|(u, r)| (vec![("user", u.name.clone())], f(r) as i64))
            .collect::<Vec<_>>()
    };
    gauge_family(
        registry,
        "seattle_user_advertised_nodes",
        "Distinct nodes advertising the user's key",
        per_user(&|r| r.advertised_nodes),
    );
    gauge_family(
        registry,
        "seattle_user_nodes_unreachable",
        "Advertised nodes whose GetVessels failed (or NAT nodes not probed)",
        per_user(&|r| r.unreachable),
    );
    gauge_family(
        registry,
        "seattle_user_nodes_without_key",
        "Advertised nodes that answered but hold no vessel with the key",
        per_user(&|r| r.without_key),
    );
    let mut vessels = Vec::new();
    for (u, r) in &reports {
        vessels.push((
            vec![("user", u.name.clone()), ("role", "owner".into())],
            r.owner_vessels as i64,
        ));
        vessels.push((
            vec![("user", u.name.clone()), ("role", "user".into())],
            r.user_vessels as i64,
        ));
    }
    gauge_family(
        registry,
        "seattle_user_vessels",
        "Vessels of the user confirmed by GetVessels",
        vessels,
    );
    gauge_family(
        registry,
        "seattle_user_diagnosis",
        "Diagnosis of the user's vessels (one series per user)",
        reports.iter().map(|(u, r)| {
            (
                vec![
                    ("user", u.name.clone()),
                    ("reason", r.diagnosis().to_string()),
                ],
                1,
            )
        }),
    );
    for (u, r) in &reports {
        ctx.log(format_args!(
            "user {}: {:?} -> {}",
            u.name,
            r,
            r.diagnosis()
        ));
    }
    match reports.into_iter().find_map(|(_, r)| r.lookup_failure) {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnosis_order() {
        let r = |unreachable, without_key, vessels, failed: bool| UserReport {
            unreachable,
            without_key,
            user_vessels: vessels,
            lookup_failure: failed.then(|| ProbeFailure::new("timeout", "")),
            ..UserReport::default()
        };
        assert_eq!(r(0, 0, 0, true).diagnosis(), "lookup_failed");
        assert_eq!(r(1, 1, 3, false).diagnosis(), "advertise_inconsistent");
        assert_eq!(r(1, 0, 3, false).diagnosis(), "ok");
        assert_eq!(r(1, 0, 0, false).diagnosis(), "nodes_unreachable");
        assert_eq!(r(0, 0, 0, false).diagnosis(), "no_vessels_acquired");
        for d in [
            r(0, 0, 0, true),
            r(1, 1, 3, false),
            r(1, 0, 3, false),
            r(1, 0, 0, false),
            r(0, 0, 0, false),
        ] {
            assert!(DIAGNOSES.contains(&d.diagnosis()));
        }
    }
}
