//! Module kind `nodemanager`: `GetVessels` and `GetOffcutResources` (and, when asked,
//! `GetVesselResources` per exported vessel) on one node manager (SEATTLE.md B, D.3, D.4).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use seattle_protocol::keys::sha1_hex;
use seattle_protocol::nodemanager::client::ClientError;
use seattle_protocol::nodemanager::{GetVessels, Resources, Vessel, VesselStatus};
use tokio::time::Instant;

use super::failure::nodemanager_failure;
use super::{
    Labels, Shared, float_family, float_gauge, gauge, gauge_family, resolve_target, step_deadline,
};

/// Vessels exported per node; the rest are counted as skipped.
pub const MAX_VESSELS: usize = 64;

/// Every `status` label value, always exported.
pub const STATUSES: [&str; 7] = [
    "fresh",
    "started",
    "stopped",
    "terminated",
    "thread_err",
    "stale",
    "other",
];

/// Every `assignment` label value, always exported.
pub const ASSIGNMENTS: [&str; 4] = ["free", "acquired", "state", "unmanaged"];

/// Settings of a `nodemanager` module.
#[derive(Debug, Clone)]
pub struct NodemanagerModule {
    pub get_vessel_resources: bool,
    /// `GetVesselResources` calls at once (1–3).
    pub resource_concurrency: usize,
}

pub struct NodemanagerProber {
    shared: Arc<Shared>,
}

impl NodemanagerProber {
    pub fn new(shared: Arc<Shared>) -> Self {
        NodemanagerProber { shared }
    }
}

impl Prober for NodemanagerProber {
    type Module = NodemanagerModule;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a NodemanagerModule,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(probe(&self.shared, target, module, ctx, registry))
    }
}

/// Lowercase, bounded status label.
pub fn status_label(s: &VesselStatus) -> &'static str {
    match s {
        VesselStatus::Fresh => "fresh",
        VesselStatus::Started => "started",
        VesselStatus::Stopped => "stopped",
        VesselStatus::Terminated => "terminated",
        VesselStatus::ThreadErr => "thread_err",
        VesselStatus::Stale => "stale",
        VesselStatus::Unknown(_) => "other",
    }
}

/// `v[0-9]{1,6}`, checked without a regex (this is the hot path).
pub fn exportable_vessel_name(name: &str) -> bool {
    let Some(digits) = name.strip_prefix('v') else {
        return false;
    };
    (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The `Version:` text as a label: printable ASCII, at most 64 characters, else `invalid`.
pub fn version_label(v: &str) -> &str {
    if !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        v
    } else {
        "invalid"
    }
}

/// The node's Affix id: SHA-1 of the key string with spaces removed (SEATTLE.md B.1).
pub fn node_key_fingerprint(nodekey: &str) -> String {
    let compact: String = nodekey.split_whitespace().collect();
    sha1_hex(compact.as_bytes())
}

/// How a node's vessels are assigned (SEATTLE.md D.3, D.4).
#[derive(Debug, PartialEq, Eq)]
pub struct Assignment<'a> {
    /// `node_state` label: a state name, `unknown` or `none`.
    pub state: &'a str,
    /// Index of the extra vessel, if one carries a known state key.
    pub extra: Option<usize>,
    /// One `assignment` label per vessel, in the node's order.
    pub per_vessel: Vec<&'static str>,
}

/// The extra vessel is the one whose single user key is a known state key; vessels owned by
/// its owner (the node's clearinghouse owner key) are free without user keys and acquired with
/// some; vessels of other owners are unmanaged.
pub fn assign<'a>(shared: &'a Shared, gv: &GetVessels) -> Assignment<'a> {
    let extra = gv
        .vessels
        .iter()
        .enumerate()
        .find_map(|(i, v)| match v.user_keys.as_slice() {
            [only] => shared.state_of(only).map(|s| (i, s)),
            _ => None,
        });
    let Some((extra_index, state)) = extra else {
        // An extra-vessel-shaped vessel (one user key, not the v2 vessel) whose key we don't
        // know: managed by a clearinghouse state we were not told about.
        let shaped = gv
            .vessels
            .iter()
            .any(|v| v.user_keys.len() == 1 && v.owner_key != shared.v2_key_string);
        return Assignment {
            state: if shaped { "unknown" } else { "none" },
            extra: None,
            per_vessel: vec!["unmanaged"; gv.vessels.len()],
        };
    };
    let owner = gv.vessels[extra_index].owner_key.as_str();
    let per_vessel = gv
        .vessels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i == extra_index {
                "state"
            } else if v.owner_key != owner {
                "unmanaged"
            } else if v.user_keys.is_empty() {
                "free"
            } else {
                "acquired"
            }
        })
        .collect();
    Assignment {
        state,
        extra: Some(extra_index),
        per_vessel,
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> (Result<T, ClientError>, f64) {
    let start = Instant::now();
    let r = f.await;
    (r, start.elapsed().as_secs_f64())
}

fn budget(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

async fn probe(
    shared: &Shared,
    target: &str,
    module: &NodemanagerModule,
    ctx: &ProbeContext,
    registry: &mut Registry,
) -> Result<(), ProbeFailure> {
    let deadline = step_deadline(ctx);
    let addr = resolve_target(target, deadline).await?;
    let nm = &shared.nm;
    // Both calls at once: 2 of the node's 4 connections per source IP.
    let ((vessels, vessels_secs), (offcut, offcut_secs)) = tokio::join!(
        timed(nm.get_vessels(addr, budget(deadline))),
        timed(nm.get_offcut_resources(addr, budget(deadline))),
    );
    // Both calls were made, so both durations are reported, answered or not.
    let mut durations: Vec<(Labels, f64)> = vec![
        (vec![("call", "GetVessels".into())], vessels_secs),
        (vec![("call", "GetOffcutResources".into())], offcut_secs),
    ];
    let gv = match vessels {
        Ok(gv) => gv,
        Err(e) => {
            register_durations(registry, durations);
            return Err(nodemanager_failure(&e));
        }
    };
    ctx.log(format_args!(
        "GetVessels: {} vessels in {vessels_secs:.3}s",
        gv.vessels.len()
    ));
    register_vessels(shared, &gv, registry);
    let mut first_failure = None;
    match &offcut {
        Ok(r) => register_offcut(r, registry),
        Err(e) => first_failure = Some(nodemanager_failure(e)),
    }
    if module.get_vessel_resources {
        let (secs, result) = vessel_resources(addr, &gv, module, shared, deadline).await;
        durations.push((vec![("call", "GetVesselResources".into())], secs));
        match result {
            Ok(per_vessel) => register_resources(&per_vessel, registry),
            Err(e) => {
                first_failure.get_or_insert(nodemanager_failure(&e));
            }
        }
    }
    register_durations(registry, durations);
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn register_durations(registry: &mut Registry, durations: Vec<(Labels, f64)>) {
    float_family(
        registry,
        "seattle_nodemanager_call_duration_seconds",
        "Connect-to-reply time of the node-manager call (summed over vessels for GetVesselResources)",
        durations,
    );
}

fn exported(gv: &GetVessels) -> impl Iterator<Item = (usize, &Vessel)> {
    gv.vessels
        .iter()
        .enumerate()
        .filter(|(_, v)| exportable_vessel_name(&v.name))
        .take(MAX_VESSELS)
}

fn register_vessels(shared: &Shared, gv: &GetVessels, registry: &mut Registry) {
    gauge_family(
        registry,
        "seattle_nodemanager_info",
        "The node manager's version",
        [(vec![("version", version_label(&gv.version).to_string())], 1)],
    );
    gauge_family(
        registry,
        "seattle_nodemanager_node_key_info",
        "SHA-1 of the node key string without spaces (the node's Affix id)",
        [(vec![("fingerprint", node_key_fingerprint(&gv.nodekey))], 1)],
    );
    let assignment = assign(shared, gv);
    gauge_family(
        registry,
        "seattle_nodemanager_node_state",
        "Clearinghouse state of the node (from the extra vessel's user key)",
        [(vec![("state", assignment.state.to_string())], 1)],
    );

    let mut by_status = [0i64; STATUSES.len()];
    let mut by_assignment = [0i64; ASSIGNMENTS.len()];
    for (v, a) in gv.vessels.iter().zip(&assignment.per_vessel) {
        let s = status_label(&v.status);
        if let Some(i) = STATUSES.iter().position(|x| *x == s) {
            by_status[i] += 1;
        }
        if let Some(i) = ASSIGNMENTS.iter().position(|x| x == a) {
            by_assignment[i] += 1;
        }
    }
    gauge_family(
        registry,
        "seattle_nodemanager_vessels",
        "Vessels by status",
        STATUSES
            .iter()
            .zip(by_status)
            .map(|(s, n)| (vec![("status", s.to_string())], n)),
    );
    gauge_family(
        registry,
        "seattle_nodemanager_vessels_by_assignment",
        "Vessels by assignment (free, acquired, state, unmanaged)",
        ASSIGNMENTS
            .iter()
            .zip(by_assignment)
            .map(|(a, n)| (vec![("assignment", a.to_string())], n)),
    );

    let mut status = Vec::new();
    let mut assigned = Vec::new();
    let mut user_keys = Vec::new();
    let mut advertise = Vec::new();
    let mut count = 0usize;
    for (i, v) in exported(gv) {
        count += 1;
        let vessel = || vec![("vessel", v.name.clone())];
        status.push((
            vec![
                ("vessel", v.name.clone()),
                ("status", status_label(&v.status).to_string()),
            ],
            1,
        ));
        assigned.push((
            vec![
                ("vessel", v.name.clone()),
                ("assignment", assignment.per_vessel[i].to_string()),
            ],
            1,
        ));
        user_keys.push((vessel(), v.user_keys.len() as i64));
        advertise.push((vessel(), i64::from(v.advertise)));
    }
    gauge(
        registry,
        "seattle_nodemanager_vessels_skipped",
        "Vessels not exported (name not v[0-9]{1,6}, or beyond the first 64)",
        (gv.vessels.len() - count) as i64,
    );
    gauge_family(
        registry,
        "seattle_nodemanager_vessel_status",
        "Current status of the vessel",
        status,
    );
    gauge_family(
        registry,
        "seattle_nodemanager_vessel_assignment",
        "Assignment of the vessel: free, acquired, state (the extra vessel) or unmanaged",
        assigned,
    );
    gauge_family(
        registry,
        "seattle_nodemanager_vessel_user_keys",
        "Number of UserKey lines of the vessel",
        user_keys,
    );
    gauge_family(
        registry,
        "seattle_nodemanager_vessel_advertise",
        "1 if the vessel advertises its keys",
        advertise,
    );
}

fn register_offcut(r: &Resources, registry: &mut Registry) {
    for (name, help, resource) in [
        (
            "seattle_nodemanager_offcut_cpu_ratio",
            "GetOffcutResources cpu",
            "cpu",
        ),
        (
            "seattle_nodemanager_offcut_memory_bytes",
            "GetOffcutResources memory",
            "memory",
        ),
        (
            "seattle_nodemanager_offcut_disk_bytes",
            "GetOffcutResources diskused",
            "diskused",
        ),
    ] {
        if let Some(v) = r.get(resource) {
            float_gauge(registry, name, help, v);
        }
    }
}

/// One vessel's `GetVesselResources` answer, by name.
type VesselResources = Result<(String, Resources), ClientError>;

/// `GetVesselResources` for every exported vessel, at most `resource_concurrency` at once.
/// Returns the summed call time and the per-vessel resources, or the first error.
async fn vessel_resources(
    addr: SocketAddr,
    gv: &GetVessels,
    module: &NodemanagerModule,
    shared: &Shared,
    deadline: Instant,
) -> (f64, Result<Vec<(String, Resources)>, ClientError>) {
    let names: Vec<&str> = exported(gv).map(|(_, v)| v.name.as_str()).collect();
    // Futures built eagerly: a closure inside the stream trips the Send check (rust#64552).
    let calls: Vec<_> = names
        .into_iter()
        .map(|name| async move {
            let (r, secs) =
                timed(shared.nm.get_vessel_resources(addr, name, budget(deadline))).await;
            (secs, r.map(|r| (name.to_string(), r)))
        })
        .collect();
    let results: Vec<(f64, VesselResources)> = stream::iter(calls)
        .buffered(module.resource_concurrency.clamp(1, 3))
        .collect()
        .await;
    let total: f64 = results.iter().map(|(s, _)| s).sum();
    let mut out = Vec::with_capacity(results.len());
    for (_, r) in results {
        match r {
            Ok(x) => out.push(x),
            Err(e) => return (total, Err(e)),
        }
    }
    (total, Ok(out))
}

fn register_resources(per_vessel: &[(String, Resources)], registry: &mut Registry) {
    let series = |resource: &str| -> Vec<(Labels, f64)> {
        per_vessel
            .iter()
            .filter_map(|(name, r)| Some((vec![("vessel", name.clone())], r.get(resource)?)))
            .collect()
    };
    float_family(
        registry,
        "seattle_nodemanager_vessel_cpu_limit_ratio",
        "resource cpu of the vessel (share of one CPU)",
        series("cpu"),
    );
    float_family(
        registry,
        "seattle_nodemanager_vessel_memory_limit_bytes",
        "resource memory of the vessel",
        series("memory"),
    );
    float_family(
        registry,
        "seattle_nodemanager_vessel_disk_limit_bytes",
        "resource diskused of the vessel",
        series("diskused"),
    );
    let mut ports = Vec::new();
    for (name, r) in per_vessel {
        for (kind, n) in [
            ("connport", r.connports.len()),
            ("messport", r.messports.len()),
            ("usable", r.usable_ports().count()),
        ] {
            ports.push((
                vec![("vessel", name.clone()), ("kind", kind.to_string())],
                n as i64,
            ));
        }
    }
    gauge_family(
        registry,
        "seattle_nodemanager_vessel_ports",
        "Port items of the vessel (usable = listed as both connport and messport)",
        ports,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            nm: Default::default(),
            states: [("7 77".to_string(), "twopercent".to_string())].into(),
            v2_key_string: "2 22".into(),
            lookups: vec![],
            users: vec![],
        }
    }

    fn gv(vessels: &[(&str, &str, &[&str])]) -> GetVessels {
        GetVessels {
            version: "0.2".into(),
            nodename: "1.2.3.4".into(),
            nodekey: "65537 747340318809666290119336386599".into(),
            vessels: vessels
                .iter()
                .map(|(name, owner, users)| Vessel {
                    name: name.to_string(),
                    status: VesselStatus::Fresh,
                    advertise: true,
                    owner_key: owner.to_string(),
                    owner_info: String::new(),
                    user_keys: users.iter().map(|u| u.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn assignment_follows_the_extra_vessel() {
        let s = shared();
        let g = gv(&[
            ("v1", "1 11", &["7 77"]),
            ("v2", "2 22", &[]),
            ("v3", "1 11", &[]),
            ("v4", "1 11", &["9 99"]),
        ]);
        let a = assign(&s, &g);
        assert_eq!(a.state, "twopercent");
        assert_eq!(a.per_vessel, ["state", "unmanaged", "free", "acquired"]);

        let g = gv(&[("v1", "1 11", &["8 88"]), ("v2", "2 22", &[])]);
        assert_eq!(assign(&s, &g).state, "unknown");
        let g = gv(&[("v2", "2 22", &["5 55"]), ("v3", "3 33", &[])]);
        let a = assign(&s, &g);
        assert_eq!(a.state, "none");
        assert_eq!(a.per_vessel, ["unmanaged", "unmanaged"]);
    }

    #[test]
    fn labels_are_bounded() {
        assert!(exportable_vessel_name("v1"));
        assert!(exportable_vessel_name("v123456"));
        assert!(!exportable_vessel_name("v1234567"));
        assert!(!exportable_vessel_name("v"));
        assert!(!exportable_vessel_name("x1"));
        assert!(!exportable_vessel_name("v1 "));
        assert_eq!(
            version_label("0.2-alpha-20140714-1434"),
            "0.2-alpha-20140714-1434"
        );
        assert_eq!(version_label("bad\nversion"), "invalid");
        assert_eq!(version_label(&"x".repeat(65)), "invalid");
        assert_eq!(
            status_label(&VesselStatus::Unknown("Weird".into())),
            "other"
        );
        // SEATTLE.md B.1: the verified Affix id of this key.
        assert!(
            node_key_fingerprint("65537 747340318809666290119336386599").starts_with("592341b6")
        );
    }
}
