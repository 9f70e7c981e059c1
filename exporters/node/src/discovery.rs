//! Fleet discovery: `/sd` serves Prometheus HTTP SD JSON of the nodes the advertise services
//! list under the state keys and the v2 key (SEATTLE.md C.5, D.1–D.3), refreshed in the
//! background and never during a request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use futures::{StreamExt, stream};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_protocol::advertise::{
    AffixReachability, LookupOptions, NodeAddress, NodeHost, Service, lookup, resolve_affix,
};
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{Config, Discovery as Settings, NamedKey};
use crate::prober::advertise::{DEFAULT_LOOKUP_MAX_REPLY, LOOKUP_MAXVALS};

pub const REACHABILITIES: [&str; 2] = ["direct", "nat"];

/// One discovered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub target: String,
    pub state: String,
    /// `direct` or `nat`.
    pub reachability: &'static str,
}

/// What `/sd` serves, rebuilt by each refresh.
#[derive(Default)]
struct Snapshot {
    all: Arc<str>,
    by_state: HashMap<String, Arc<str>>,
}

type Labels = Vec<(&'static str, String)>;

/// The discovery state shared by the refresher, `/sd` and `/metrics`.
pub struct Discovery {
    settings: Settings,
    services: Vec<Service>,
    /// Lookup order: the state keys, then v2 (a node under a state key is named by its state).
    keys: Vec<NamedKey>,
    snapshot: RwLock<Snapshot>,
    targets: Family<Labels, Gauge>,
    refresh_success: Gauge,
    last_refresh: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Discovery {
    pub fn new(config: &Config) -> Arc<Self> {
        let mut keys = config.state_keys.clone();
        keys.push(config.v2.clone());
        let d = Discovery {
            settings: config.discovery.clone(),
            services: config.services.clone(),
            keys,
            snapshot: RwLock::new(Snapshot {
                all: Arc::from("[]"),
                by_state: HashMap::new(),
            }),
            targets: Family::default(),
            refresh_success: Gauge::default(),
            last_refresh: Gauge::default(),
        };
        // Every (state, reachability) pair is exported from the start, 0 until found.
        for k in &d.keys {
            for r in REACHABILITIES {
                let _ = d
                    .targets
                    .get_or_create(&vec![("state", k.name.clone()), ("reachability", r.into())]);
            }
        }
        Arc::new(d)
    }

    /// Registers the discovery metrics on the exporter's `/metrics`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "seattle_discovery_targets",
            "Targets currently served by /sd",
            self.targets.clone(),
        );
        registry.register(
            "seattle_discovery_refresh_success",
            "1 if the last refresh had at least one answering advertise service",
            self.refresh_success.clone(),
        );
        registry.register(
            "seattle_discovery_last_refresh_timestamp_seconds",
            "End of the last successful refresh",
            self.last_refresh.clone(),
        );
    }

    /// The handler of `/sd` (and `/sd?state=…`), for [`Exporter::route`] so it gets the
    /// exporter's gzip, auth and landing-page link.
    ///
    /// [`Exporter::route`]: seattle_exporter_toolkit::server::Exporter::route
    pub fn sd_route(self: &Arc<Self>) -> MethodRouter {
        get(sd_handler).with_state(Arc::clone(self))
    }

    /// Refreshes now, then every `refresh_interval`, forever.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh().await;
        }
    }

    /// One refresh: look up every key on every service, resolve Affix ids, swap the snapshot.
    /// A refresh where no service answered keeps the previous targets.
    pub async fn refresh(&self) {
        let deadline = Instant::now() + self.settings.timeout;
        let opts = LookupOptions {
            maxvals: LOOKUP_MAXVALS,
            grace: Duration::from_secs(5),
            deadline,
            max_reply: DEFAULT_LOOKUP_MAX_REPLY,
            udp_waits: seattle_protocol::advertise::udp::RETRY_WAITS.to_vec(),
        };
        let lookups: Vec<_> = futures::future::join_all(
            self.keys
                .iter()
                .map(|k| lookup(&self.services, k.advertise_key.as_bytes(), &opts)),
        )
        .await;
        let answered = lookups.iter().any(|l| l.succeeded());
        self.refresh_success.set(i64::from(answered));
        if !answered {
            tracing::warn!(
                "discovery: no advertise service answered; keeping the previous targets"
            );
            return;
        }
        // First state a value is found under wins (v2 is last).
        let mut state_of: Vec<(Vec<u8>, String)> = Vec::new();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for (k, l) in self.keys.iter().zip(&lookups) {
            for v in &l.values {
                if state_of.len() >= self.settings.max_targets {
                    break;
                }
                if !v.is_empty() && seen.insert(v.as_slice()) {
                    state_of.push((v.clone(), k.name.clone()));
                }
            }
        }
        let opts = &opts;
        // Futures built eagerly: a closure inside the stream trips the Send check (rust#64552).
        let classified: Vec<_> = state_of
            .into_iter()
            .map(|(value, state)| async move { self.classify(&value, state, opts).await })
            .collect();
        let found: Vec<Found> = stream::iter(classified)
            .buffered(self.settings.affix_concurrency)
            .filter_map(|f| async move { f })
            .collect()
            .await;
        let (snapshot, counts) = build_snapshot(&found);
        for k in &self.keys {
            for r in REACHABILITIES {
                let n = counts.get(&(k.name.as_str(), r)).copied().unwrap_or(0);
                self.targets
                    .get_or_create(&vec![("state", k.name.clone()), ("reachability", r.into())])
                    .set(n as i64);
            }
        }
        if let Ok(mut s) = self.snapshot.write() {
            *s = snapshot;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_refresh.set(now);
        tracing::debug!(targets = found.len(), "discovery refreshed");
    }

    /// Turns an advertised value into a target; `None` for values that are not node strings.
    async fn classify(&self, value: &[u8], state: String, opts: &LookupOptions) -> Option<Found> {
        let node = NodeAddress::parse(value).ok()?;
        let advertised = || String::from_utf8_lossy(value).into_owned();
        let (target, reachability) = match &node.host {
            NodeHost::Ip(ip) => (socket_string(*ip, node.port), "direct"),
            NodeHost::Other(host) => (format!("{host}:{}", node.port), "direct"),
            NodeHost::Nat(_) => (advertised(), "nat"),
            NodeHost::Affix(_) => match resolve_affix(&self.services, &node, opts).await {
                Some(Ok(r)) if r.reachability != Some(AffixReachability::Nat) => {
                    let ip = r
                        .ips
                        .iter()
                        .find_map(|ip| std::str::from_utf8(ip).ok()?.trim().parse::<IpAddr>().ok());
                    match ip {
                        Some(ip) => (socket_string(ip, node.port), "direct"),
                        // Unresolved: not probeable directly, listed like a NAT node.
                        None => (advertised(), "nat"),
                    }
                }
                _ => (advertised(), "nat"),
            },
        };
        Some(Found {
            target,
            state,
            reachability,
        })
    }
}

fn socket_string(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

#[derive(serde::Serialize)]
struct Group<'a> {
    targets: Vec<&'a str>,
    labels: BTreeMap<&'static str, &'a str>,
}

type Counts<'a> = HashMap<(&'a str, &'static str), usize>;

/// SD JSON for everything and per state, plus counts per (state, reachability). Targets that
/// appear twice (two values resolving to one address) are kept once.
fn build_snapshot(found: &[Found]) -> (Snapshot, Counts<'_>) {
    let mut groups: BTreeMap<(&str, &'static str), Vec<&str>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for f in found {
        if seen.insert(f.target.as_str()) {
            groups
                .entry((f.state.as_str(), f.reachability))
                .or_default()
                .push(f.target.as_str());
        }
    }
    let counts: Counts = groups.iter().map(|(k, v)| (*k, v.len())).collect();
    let to_json = |filter: Option<&str>| -> Arc<str> {
        let list: Vec<Group> = groups
            .iter()
            .filter(|((s, _), _)| filter.is_none_or(|f| f == *s))
            .map(|((state, reach), targets)| Group {
                targets: targets.clone(),
                labels: BTreeMap::from([
                    ("__meta_seattle_state", *state),
                    ("__meta_seattle_reachability", *reach),
                ]),
            })
            .collect();
        Arc::from(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
    };
    let states: HashSet<&str> = groups.keys().map(|(s, _)| *s).collect();
    let snapshot = Snapshot {
        all: to_json(None),
        by_state: states
            .into_iter()
            .map(|s| (s.to_string(), to_json(Some(s))))
            .collect(),
    };
    (snapshot, counts)
}

#[derive(Deserialize)]
struct SdParams {
    state: Option<String>,
}

async fn sd_handler(State(d): State<Arc<Discovery>>, Query(params): Query<SdParams>) -> Response {
    let body = match d.snapshot.read() {
        Ok(s) => match &params.state {
            None => s.all.clone(),
            Some(state) => s
                .by_state
                .get(state)
                .cloned()
                .unwrap_or_else(|| Arc::from("[]")),
        },
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_groups_and_dedupes() {
        let f = |t: &str, s: &str, r| Found {
            target: t.into(),
            state: s.into(),
            reachability: r,
        };
        let found = vec![
            f("10.0.0.1:1224", "twopercent", "direct"),
            f("10.0.0.2:1224", "twopercent", "direct"),
            f("10.0.0.1:1224", "v2", "direct"),
            f("NAT$abcv2:1224", "canonical", "nat"),
        ];
        let (snap, counts) = build_snapshot(&found);
        assert_eq!(counts[&("twopercent", "direct")], 2);
        assert_eq!(counts[&("canonical", "nat")], 1);
        assert!(!counts.contains_key(&("v2", "direct")));
        let v: serde_json::Value = serde_json::from_str(&snap.all).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        let tp: serde_json::Value = serde_json::from_str(&snap.by_state["twopercent"]).unwrap();
        assert_eq!(tp[0]["targets"][1], "10.0.0.2:1224");
        assert_eq!(tp[0]["labels"]["__meta_seattle_reachability"], "direct");
    }
}
