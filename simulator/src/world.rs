//! The simulated world: nodes, vessels, keys, users, and what each node advertises.
//!
//! Built deterministically from the scenario seed. Per-node data is small (indices into shared
//! key tables); GetVessels text is rendered on demand, so 10,000 nodes stay cheap.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

use seattle_protocol::keys::PublicKey;
use seattle_protocol::nodemanager::getvessels::{self, GetVessels, VesselStatus};

use crate::keys::{fake_key, sub_seed};
use crate::scenario::{Addressing, Behaviour, Scenario};

pub const STATUSES: [&str; 6] = [
    "Fresh",
    "Started",
    "Stopped",
    "Terminated",
    "ThreadErr",
    "Stale",
];
/// Clearinghouse states the simulator can put a node in (production state keys).
pub const STATES: [&str; 6] = [
    "acceptdonation",
    "canonical",
    "movingto_canonical",
    "movingto_twopercent",
    "twopercent",
    "onepercentmanyevents",
];
pub const NM_VERSION: &str = "0.2-alpha-20140714-1434";

/// Production state keys and the v2 key (copied from the golden `clearinghouse_state_keys.jsonl`;
/// a test checks they still match).
const STATE_KEYS: &str = include_str!("state_keys.txt");
const OFFCUT: &str = include_str!("offcut.txt");
const RESOURCE_CALLS: &str = include_str!("resource_calls.txt");

pub fn state_key(state: &str) -> PublicKey {
    let line = STATE_KEYS
        .lines()
        .find(|l| l.split(' ').next() == Some(state))
        .expect("every state in STATES has a key in state_keys.txt");
    let rest = line.split_once(' ').map(|x| x.1).unwrap_or_default();
    PublicKey::parse(rest).expect("state_keys.txt holds valid key strings")
}

pub fn v2_key() -> PublicKey {
    state_key("v2")
}

/// Who a vessel's owner or user key is.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRef {
    /// The node's clearinghouse owner key (the donor key before `canonical`).
    NodeOwner,
    V2,
    State(u8),
    User(u32),
    Literal(Arc<PublicKey>),
}

#[derive(Debug, Clone)]
pub struct Vessel {
    pub name: String,
    pub status: &'static str,
    pub advertise: bool,
    pub owner: KeyRef,
    pub owner_info: String,
    pub users: Vec<KeyRef>,
    pub disk_used: u64,
    /// First of the vessel's 10 ports.
    pub port_base: u16,
    /// Node manager state for signed calls.
    pub last_timestamp: Option<f64>,
    pub files: Vec<String>,
}

/// How a node's advertised value looks (SEATTLE.md D.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueForm {
    Direct,
    Affix,
    Nat,
}

pub struct NodeData {
    pub state: Option<u8>,
    pub vessels: Vec<Vessel>,
    pub behaviour: Behaviour,
    /// Literal node fixtures carry their own header values and resource files.
    pub fixture: Option<Arc<Fixture>>,
}

pub struct Fixture {
    pub version: String,
    pub nodekey: PublicKey,
    pub resources: Option<String>,
    pub offcut: Option<String>,
    pub advertise: bool,
}

pub struct Node {
    pub index: usize,
    pub ip: Ipv4Addr,
    /// Bound port (filled once the listener is up; kept across down/up).
    pub port: AtomicU16,
    pub key: PublicKey,
    pub owner_key: PublicKey,
    pub form: ValueForm,
    pub data: Mutex<NodeData>,
}

impl Node {
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    pub fn addr_string(&self) -> String {
        format!("{}:{}", self.ip, self.port())
    }

    /// The value this node advertises under its keys.
    pub fn advertised_value(&self) -> String {
        match self.form {
            ValueForm::Direct => self.addr_string(),
            ValueForm::Affix | ValueForm::Nat => format!("{}:{}", self.key.affix_id(), self.port()),
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        self.lock().behaviour
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, NodeData> {
        // A panic while holding the lock cannot leave the data half-written in a way that
        // matters here; keep serving.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct UserRec {
    pub name: String,
    pub key: PublicKey,
}

pub struct World {
    pub seed: u64,
    pub addressing: Addressing,
    pub nodes: Vec<Node>,
    pub users: Vec<UserRec>,
    pub state_keys: Vec<PublicKey>,
    pub v2: PublicKey,
    /// (user index, node index): a user key advertised by a node that does not hold it.
    pub inconsistent: Vec<(usize, usize)>,
    pub slow_delay: f64,
    pub idle_timeout: f64,
}

fn pick_weighted(rng: &mut StdRng, weights: &[(&'static str, f64)]) -> &'static str {
    let total: f64 = weights.iter().map(|w| w.1).sum();
    if total <= 0.0 {
        return "Fresh";
    }
    let mut x = rng.random::<f64>() * total;
    for (name, w) in weights {
        if x < *w {
            return name;
        }
        x -= w;
    }
    weights.last().map(|w| w.0).unwrap_or("Fresh")
}

/// Loopback address of node i: 127.1.0.1 upward, skipping .0 and .255 last octets (Zenodotus
/// drops values with an octet of 255).
pub fn node_ip(i: usize) -> Ipv4Addr {
    let n = i as u32;
    let host = n / 254;
    let last = (n % 254) + 1;
    Ipv4Addr::new(127, 1 + (host / 256) as u8, (host % 256) as u8, last as u8)
}

fn status_static(s: &str) -> &'static str {
    STATUSES
        .iter()
        .find(|x| **x == s)
        .copied()
        .unwrap_or("Fresh")
}

/// Parses a GetVessels payload into header values and vessels (for literal fixtures).
pub fn parse_getvessels(text: &str) -> Result<(String, PublicKey, Vec<Vessel>), String> {
    let text = text.strip_suffix("\nSuccess").unwrap_or(text);
    let gv = GetVessels::parse(text.as_bytes()).map_err(|e| format!("GetVessels: {e}"))?;
    let key = |what: &str, k: &str| {
        PublicKey::parse(k)
            .map(Arc::new)
            .map_err(|_| format!("bad key string in {what}"))
    };
    let mut vessels = Vec::with_capacity(gv.vessels.len());
    for v in gv.vessels {
        vessels.push(Vessel {
            owner: KeyRef::Literal(key("OwnerKey", &v.owner_key)?),
            users: v
                .user_keys
                .iter()
                .map(|k| key("UserKey", k).map(KeyRef::Literal))
                .collect::<Result<_, _>>()?,
            status: status_static(v.status.as_str()),
            advertise: v.advertise,
            owner_info: v.owner_info,
            name: v.name,
            disk_used: 0,
            port_base: 0,
            last_timestamp: None,
            files: Vec::new(),
        });
    }
    let nodekey = PublicKey::parse(&gv.nodekey).map_err(|_| "bad Nodekey")?;
    Ok((gv.version, nodekey, vessels))
}

fn read_payload_file(p: &std::path::Path) -> Result<String, String> {
    let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(t.strip_suffix("\nSuccess").map(str::to_string).unwrap_or(t))
}

impl World {
    pub fn build(sc: &Scenario) -> Result<World, String> {
        let seed = sc.seed;
        let n = sc.nodes.count;
        let state_keys: Vec<PublicKey> = STATES.iter().map(|s| state_key(s)).collect();
        let mut rng = StdRng::seed_from_u64(sub_seed(seed, 1, 0));

        // States: the counted ones first, in a seeded shuffle; the rest twopercent.
        let mut states: Vec<u8> = Vec::with_capacity(n);
        for (name, count) in &sc.states {
            let idx = STATES.iter().position(|s| s == name).unwrap_or(4) as u8;
            states.extend(std::iter::repeat_n(idx, *count));
        }
        states.resize(n, 4);
        for i in (1..states.len()).rev() {
            let j = rng.random_range(0..=i);
            states.swap(i, j);
        }

        let mix: Vec<(&'static str, f64)> = if sc.nodes.status_mix.is_empty() {
            vec![("Fresh", 0.5), ("Started", 0.4), ("Terminated", 0.1)]
        } else {
            sc.nodes
                .status_mix
                .iter()
                .map(|(k, v)| (status_static(k), *v))
                .collect()
        };

        let mut nodes = Vec::with_capacity(n + sc.fixture_nodes.len());
        for (i, &state) in states.iter().enumerate() {
            let mut r = StdRng::seed_from_u64(sub_seed(seed, 2, i as u64));
            let x: f64 = r.random();
            let behaviour = if x < sc.nodes.down {
                Behaviour::Down
            } else if x < sc.nodes.down + sc.nodes.slow {
                Behaviour::Slow
            } else if x < sc.nodes.down + sc.nodes.slow + sc.nodes.hanging {
                Behaviour::Hang
            } else {
                Behaviour::Normal
            };
            let y: f64 = r.random();
            let form = if y < sc.nodes.affix {
                ValueForm::Affix
            } else if y < sc.nodes.affix + sc.nodes.nat {
                ValueForm::Nat
            } else {
                ValueForm::Direct
            };
            let mut vessels = vec![
                Vessel {
                    name: "v1".into(),
                    status: "Fresh",
                    advertise: true,
                    owner: KeyRef::NodeOwner,
                    owner_info: String::new(),
                    users: vec![KeyRef::State(state)],
                    disk_used: sc.nodes.disk_used_bytes,
                    port_base: 63100,
                    last_timestamp: None,
                    files: Vec::new(),
                },
                Vessel {
                    name: "v2".into(),
                    status: "Fresh",
                    advertise: true,
                    owner: KeyRef::V2,
                    owner_info: String::new(),
                    users: Vec::new(),
                    disk_used: sc.nodes.disk_used_bytes,
                    port_base: 63180,
                    last_timestamp: None,
                    files: Vec::new(),
                },
            ];
            if STATES[state as usize] == "twopercent" {
                for k in 0..sc.nodes.vessels_per_node {
                    vessels.push(Vessel {
                        name: format!("v{}", k + 3),
                        status: pick_weighted(&mut r, &mix),
                        advertise: true,
                        owner: KeyRef::NodeOwner,
                        owner_info: String::new(),
                        users: Vec::new(),
                        disk_used: sc.nodes.disk_used_bytes,
                        port_base: 1100 + 10 * k as u16,
                        last_timestamp: None,
                        files: Vec::new(),
                    });
                }
            }
            let (ip, port) = match sc.nodes.addressing {
                Addressing::Loopback => (node_ip(i), sc.nodes.port),
                Addressing::Ports => (Ipv4Addr::LOCALHOST, 0),
            };
            nodes.push(Node {
                index: i,
                ip,
                port: AtomicU16::new(port),
                key: fake_key(sub_seed(seed, 3, i as u64)),
                owner_key: fake_key(sub_seed(seed, 4, i as u64)),
                form,
                data: Mutex::new(NodeData {
                    state: Some(state),
                    vessels,
                    behaviour,
                    fixture: None,
                }),
            });
        }
        for h in &sc.nodes.hostile {
            if let Some(node) = nodes.get(h.node) {
                node.lock().behaviour = h.behaviour;
            }
        }

        // Fixture nodes, literal.
        for f in &sc.fixture_nodes {
            let text = match (&f.getvessels_text, &f.getvessels_file) {
                (Some(t), _) => t.clone(),
                (None, Some(p)) => read_payload_file(p)?,
                (None, None) => return Err("fixture node without GetVessels".into()),
            };
            let (version, nodekey, vessels) = parse_getvessels(&text)?;
            let i = nodes.len();
            let (ip, port) = match sc.nodes.addressing {
                Addressing::Loopback => (node_ip(i), sc.nodes.port),
                Addressing::Ports => (Ipv4Addr::LOCALHOST, 0),
            };
            let fixture = Fixture {
                version,
                nodekey: nodekey.clone(),
                resources: f
                    .resources_file
                    .as_deref()
                    .map(read_payload_file)
                    .transpose()?,
                offcut: f
                    .offcut_file
                    .as_deref()
                    .map(read_payload_file)
                    .transpose()?,
                advertise: f.advertise.unwrap_or(true),
            };
            nodes.push(Node {
                index: i,
                ip,
                port: AtomicU16::new(port),
                key: nodekey,
                owner_key: fake_key(sub_seed(seed, 4, i as u64)),
                form: ValueForm::Direct,
                data: Mutex::new(NodeData {
                    state: None,
                    vessels,
                    behaviour: Behaviour::Normal,
                    fixture: Some(Arc::new(fixture)),
                }),
            });
        }

        // Users take free vessels of twopercent nodes, round robin from a seeded start.
        let mut users = Vec::new();
        let free: Vec<(usize, usize)> = nodes
            .iter()
            .filter(|nd| nd.lock().fixture.is_none())
            .flat_map(|nd| {
                let d = nd.lock();
                d.vessels
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.owner == KeyRef::NodeOwner && v.users.is_empty())
                    .map(|(vi, _)| (nd.index, vi))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Spread one user's vessels over different nodes: stride through the node order.
        let mut order: Vec<(usize, usize)> = free;
        order.sort_by_key(|(ni, vi)| (*vi, *ni));
        let mut next = if order.is_empty() {
            0
        } else {
            rng.random_range(0..order.len())
        };
        let mut taken = 0usize;
        for (ui, u) in sc.users.iter().enumerate() {
            let key = match &u.key {
                Some(k) => {
                    PublicKey::parse(k).map_err(|_| format!("users: {}: bad key", u.name))?
                }
                None => fake_key(sub_seed(seed, 5, ui as u64)),
            };
            for _ in 0..u.vessels {
                if taken >= order.len() {
                    return Err(format!(
                        "users: not enough free vessels for {} ({} free in total)",
                        u.name,
                        order.len()
                    ));
                }
                let (ni, vi) = order[next % order.len()];
                next += 1;
                taken += 1;
                nodes[ni].lock().vessels[vi]
                    .users
                    .push(KeyRef::User(ui as u32));
            }
            users.push(UserRec {
                name: u.name.clone(),
                key,
            });
        }
        let mut inconsistent = Vec::new();
        for ia in &sc.inconsistent_advertise {
            let Some(ui) = users.iter().position(|u| u.name == ia.user) else {
                continue;
            };
            let holds = nodes[ia.node]
                .lock()
                .vessels
                .iter()
                .any(|v| v.users.contains(&KeyRef::User(ui as u32)));
            if holds {
                return Err(format!(
                    "inconsistent_advertise: node {} does hold a vessel of {}; pick another node",
                    ia.node, ia.user
                ));
            }
            inconsistent.push((ui, ia.node));
        }
        Ok(World {
            seed,
            addressing: sc.nodes.addressing,
            nodes,
            users,
            state_keys,
            v2: v2_key(),
            inconsistent,
            slow_delay: sc.nodes.slow_delay_seconds,
            idle_timeout: sc.nodes.idle_timeout_seconds,
        })
    }

    pub fn resolve(&self, node: &Node, k: &KeyRef) -> PublicKey {
        match k {
            KeyRef::NodeOwner => node.owner_key.clone(),
            KeyRef::V2 => self.v2.clone(),
            KeyRef::State(s) => self.state_keys[*s as usize].clone(),
            KeyRef::User(u) => self.users[*u as usize].key.clone(),
            KeyRef::Literal(k) => (**k).clone(),
        }
    }

    /// The GetVessels text (without the status word), exactly as the node manager writes it.
    pub fn getvessels_text(&self, node: &Node) -> String {
        let d = node.lock();
        let (version, nodekey) = match &d.fixture {
            Some(f) => (f.version.clone(), f.nodekey.to_key_string()),
            None => (NM_VERSION.to_string(), node.key.to_key_string()),
        };
        GetVessels {
            version,
            nodename: node.ip.to_string(),
            nodekey,
            vessels: d
                .vessels
                .iter()
                .map(|v| getvessels::Vessel {
                    name: v.name.clone(),
                    status: VesselStatus::parse(v.status),
                    advertise: v.advertise,
                    owner_key: self.resolve(node, &v.owner).to_key_string(),
                    owner_info: v.owner_info.clone(),
                    user_keys: v
                        .users
                        .iter()
                        .map(|u| self.resolve(node, u).to_key_string())
                        .collect(),
                })
                .collect(),
        }
        .encode_text()
    }

    /// A vessel's resource file (GetVesselResources), None for an unknown vessel.
    pub fn resources_text(&self, node: &Node, vessel: &str) -> Option<String> {
        let d = node.lock();
        let v = d.vessels.iter().find(|v| v.name == vessel)?;
        if let Some(f) = &d.fixture
            && let Some(r) = &f.resources
        {
            return Some(r.clone());
        }
        let mut out = format!(
            "resource cpu 0.02\nresource memory 30000000   # 30 MiB\nresource diskused {} # {} MiB\n\
             resource events 15\nresource filewrite 100000.0\nresource fileread 100000.0\n\
             resource filesopened 5\nresource insockets 5\nresource outsockets 5\n\
             resource netsend 10000.0\nresource netrecv 10000.0\nresource loopsend 1000000.0\n\
             resource looprecv 1000000.0\nresource lograte 30000.0\nresource random 100.0\n",
            v.disk_used,
            v.disk_used / 1_000_000
        );
        for kind in ["messport", "connport"] {
            for p in v.port_base..v.port_base.saturating_add(10) {
                out.push_str(&format!("resource {kind} {p}\n"));
            }
        }
        out.push_str(RESOURCE_CALLS);
        Some(out)
    }

    pub fn offcut_text(&self, node: &Node) -> String {
        let d = node.lock();
        d.fixture
            .as_ref()
            .and_then(|f| f.offcut.clone())
            .unwrap_or_else(|| OFFCUT.to_string())
    }

    /// (advertise key, value) pairs node `node` announces (SEATTLE.md B.7, D.2).
    pub fn node_announcements(&self, node: &Node) -> Vec<(String, String)> {
        let d = node.lock();
        if d.fixture.as_ref().is_some_and(|f| !f.advertise) {
            return Vec::new();
        }
        let value = node.advertised_value();
        let mut keys: Vec<String> = vec![node.key.advertise_key()];
        for v in d.vessels.iter().filter(|v| v.advertise) {
            keys.push(self.resolve(node, &v.owner).advertise_key());
            for u in &v.users {
                keys.push(self.resolve(node, u).advertise_key());
            }
        }
        drop(d);
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(String, String)> = keys
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .map(|k| (k, value.clone()))
            .collect();
        let id = node.key.affix_id();
        match node.form {
            ValueForm::Direct => {}
            ValueForm::Affix => {
                out.push((id.clone(), node.ip.to_string()));
                out.push((
                    format!("{id},{},TCP", node.port()),
                    "(NamingAndResolverAffix)".into(),
                ));
            }
            ValueForm::Nat => {
                out.push((id.clone(), node.ip.to_string()));
                // Relay form per SEATTLE.md D.2 (not captured in the golden files).
                out.push((
                    format!("{id},{},TCP", node.port()),
                    "(CoordinationAffix)(TCPRelayAffix,127.0.0.1:63120)".into(),
                ));
            }
        }
        for (ui, ni) in &self.inconsistent {
            if *ni == node.index {
                out.push((self.users[*ui].key.advertise_key(), value.clone()));
            }
        }
        out
    }

    /// The scenario's truth, what the exporters' tests compare against.
    pub fn truth(&self) -> Truth {
        let mut t = Truth::default();
        let mut user_vessels: Vec<Vec<TruthVessel>> = vec![Vec::new(); self.users.len()];
        for node in &self.nodes {
            let d = node.lock();
            let answering = matches!(d.behaviour, Behaviour::Normal | Behaviour::Slow);
            let state = d.state.map(|s| STATES[s as usize].to_string());
            if answering {
                t.nodes_up += 1;
            } else {
                t.nodes_down += 1;
            }
            if let Some(s) = &state {
                *t.nodes_by_state.entry(s.clone()).or_default() += 1;
            }
            let mut free = 0;
            for v in &d.vessels {
                *t.vessels_by_status.entry(v.status.to_string()).or_default() += 1;
                let is_free = state.as_deref() == Some("twopercent")
                    && v.name != "v1"
                    && v.owner == KeyRef::NodeOwner
                    && v.users.is_empty();
                if is_free {
                    free += 1;
                }
                for u in &v.users {
                    if let KeyRef::User(ui) = u {
                        user_vessels[*ui as usize].push(TruthVessel {
                            node: node.index,
                            address: node.addr_string(),
                            vessel: v.name.clone(),
                            status: v.status.to_string(),
                            node_answering: answering,
                        });
                    }
                }
            }
            t.free_vessels += free;
            t.nodes.push(TruthNode {
                index: node.index,
                address: node.addr_string(),
                advertised_value: node.advertised_value(),
                value_form: node.form,
                behaviour: d.behaviour,
                answering,
                state,
                vessels: d.vessels.len(),
                free_vessels: free,
                nodekey_sha1: node.key.affix_id(),
            });
        }
        for (ui, u) in self.users.iter().enumerate() {
            let vessels = std::mem::take(&mut user_vessels[ui]);
            let inconsistent_nodes: Vec<usize> = self
                .inconsistent
                .iter()
                .filter(|(x, _)| *x == ui)
                .map(|(_, n)| *n)
                .collect();
            let diagnosis = if !inconsistent_nodes.is_empty() {
                "inconsistent_advertise"
            } else if vessels.is_empty() {
                "no_vessels"
            } else if vessels.iter().any(|v| !v.node_answering) {
                "node_unreachable"
            } else {
                "ok"
            };
            t.users.push(TruthUser {
                name: u.name.clone(),
                key: u.key.to_key_string(),
                vessels,
                inconsistent_nodes,
                diagnosis: diagnosis.into(),
            });
        }
        t
    }

    pub fn node_by_index(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    /// Map from bound address to node (for the ports addressing mode lookups).
    pub fn index_by_addr(&self) -> HashMap<String, usize> {
        self.nodes
            .iter()
            .map(|n| (n.addr_string(), n.index))
            .collect()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Truth {
    pub nodes_up: usize,
    pub nodes_down: usize,
    pub nodes_by_state: BTreeMap<String, usize>,
    pub vessels_by_status: BTreeMap<String, usize>,
    pub free_vessels: usize,
    pub nodes: Vec<TruthNode>,
    pub users: Vec<TruthUser>,
}

#[derive(Debug, Serialize)]
pub struct TruthNode {
    pub index: usize,
    pub address: String,
    pub advertised_value: String,
    pub value_form: ValueForm,
    pub behaviour: Behaviour,
    pub answering: bool,
    pub state: Option<String>,
    pub vessels: usize,
    pub free_vessels: usize,
    pub nodekey_sha1: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TruthVessel {
    pub node: usize,
    pub address: String,
    pub vessel: String,
    pub status: String,
    pub node_answering: bool,
}

#[derive(Debug, Serialize)]
pub struct TruthUser {
    pub name: String,
    pub key: String,
    pub vessels: Vec<TruthVessel>,
    pub inconsistent_nodes: Vec<usize>,
    /// `ok`, `no_vessels`, `node_unreachable` (a vessel on a node that does not answer), or
    /// `inconsistent_advertise` (a node advertises the key without holding a vessel for it).
    pub diagnosis: String,
}
