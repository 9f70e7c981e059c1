//! The scenario file: a strict YAML description of the simulated world.
//!
//! Unknown keys are errors; errors name the file and the line (serde-saphyr's location).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The built-in scenario the demo runs.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.yaml");

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Seed of every generated key and choice: the same seed gives the same world.
    pub seed: u64,
    pub nodes: Nodes,
    /// Node count per clearinghouse state; nodes not counted here are `twopercent`.
    pub states: BTreeMap<String, usize>,
    pub users: Vec<User>,
    /// A user's key advertised by a node that does not hold it.
    pub inconsistent_advertise: Vec<InconsistentAdvert>,
    pub advertise: Advertise,
    pub metainfo: Metainfo,
    pub zenodotus: Zenodotus,
    pub lockserver: Lockserver,
    /// Nodes given literally (conformance fixtures), served after the generated ones.
    pub fixture_nodes: Vec<FixtureNode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nodes {
    pub count: usize,
    /// `loopback`: node i on its own 127.x.y.z:port; `ports`: all on 127.0.0.1, own port each.
    pub addressing: Addressing,
    /// Port of every node in `loopback` addressing (1224 like the real one); 0 = any free port.
    pub port: u16,
    /// Fraction of nodes that refuse connections.
    pub down: f64,
    /// Fraction answering after `slow_delay_seconds`.
    pub slow: f64,
    pub slow_delay_seconds: f64,
    /// Fraction that accept and never answer.
    pub hanging: f64,
    /// Fraction advertising an Affix id value (`<sha1>:port`), resolvable through advertise.
    pub affix: f64,
    /// Fraction behind NAT (Affix id whose stack names a TCP relay).
    pub nat: f64,
    /// User vessels per `twopercent` node (besides the extra vessel and the v2 vessel).
    pub vessels_per_node: usize,
    /// Weights of vessel statuses for generated vessels (Fresh, Started, Stopped, …).
    pub status_mix: BTreeMap<String, f64>,
    /// `diskused` resource of generated vessels, bytes.
    pub disk_used_bytes: u64,
    /// Seconds without a complete request before a node closes the connection.
    pub idle_timeout_seconds: f64,
    /// Per-node hostile behaviours.
    pub hostile: Vec<HostileNode>,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            count: 10,
            addressing: Addressing::Loopback,
            port: 1224,
            down: 0.0,
            slow: 0.0,
            slow_delay_seconds: 3.0,
            hanging: 0.0,
            affix: 0.0,
            nat: 0.0,
            vessels_per_node: 4,
            status_mix: BTreeMap::new(),
            disk_used_bytes: 20_000_000,
            idle_timeout_seconds: 10.0,
            hostile: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    #[default]
    Loopback,
    Ports,
}

/// What a service or node does with a connection instead of answering normally.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    #[default]
    Normal,
    /// Not listening: connections are refused.
    Down,
    /// Answers after the configured delay.
    Slow,
    /// Accepts and never answers.
    Hang,
    /// Answers one byte per second.
    Drip,
    /// Sends a 19-digit length header, then nothing more.
    HugeHeader,
    /// Sends garbage bytes and closes.
    Garbage,
    /// Sends half the answer, then resets the connection.
    Reset,
    /// Advertise only: GET answers a million values.
    MillionValues,
    /// Zenodotus only: header with the TC bit and the question, no records.
    Truncated,
    /// Zenodotus only: a well-formed reply over 4096 bytes.
    Oversized,
}

impl Behaviour {
    /// Faults only the DNS service can show.
    pub fn zenodotus_only(self) -> bool {
        matches!(self, Behaviour::Truncated | Behaviour::Oversized)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileNode {
    pub node: usize,
    pub behaviour: Behaviour,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Key string `"e n"`; generated from the seed when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Vessels this user holds (taken from free vessels of `twopercent` nodes).
    #[serde(default)]
    pub vessels: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InconsistentAdvert {
    pub user: String,
    pub node: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Advertise {
    /// TTL of the nodes' announcements (the node manager uses 750 s).
    pub ttl_seconds: u64,
    /// Nodes re-announce this often while up (the node manager: 300 s).
    pub refresh_seconds: u64,
    pub behaviour: Behaviour,
    pub udp_behaviour: Behaviour,
    /// Delay of the `slow` behaviour.
    pub slow_delay_seconds: f64,
}

impl Default for Advertise {
    fn default() -> Self {
        Advertise {
            ttl_seconds: 750,
            refresh_seconds: 300,
            behaviour: Behaviour::Normal,
            udp_behaviour: Behaviour::Normal,
            slow_delay_seconds: 3.0,
        }
    }
}

/// What the update site serves as `metainfo`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetainfoState {
    #[default]
    Valid,
    Expired,
    OtherKey,
    Missing,
    Truncated,
    Oversized,
    SlowDrip,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Metainfo {
    pub state: MetainfoState,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Zenodotus {
    /// The zone (`subdomain` constant of the real server).
    pub zone: String,
    pub names: Vec<ZenodotusName>,
}

impl Default for Zenodotus {
    fn default() -> Self {
        Zenodotus {
            zone: "zenodotus.poly.edu".to_string(),
            names: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenodotusName {
    /// Full name, or a single label that gets the zone appended.
    pub name: String,
    /// Literal advertised values (need not be valid IPv4: the server filters).
    #[serde(default)]
    pub values: Vec<String>,
    /// Register the address of this node (its host goes down with it).
    #[serde(default)]
    pub node: Option<usize>,
    /// Advertise key prefix for other record types (`MX`, `NS` …); A when absent.
    #[serde(default)]
    pub rtype: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Lockserver {
    pub locks: Vec<Lock>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// `node` or `user`.
    pub kind: String,
    pub name: String,
    /// How long ago the lock was taken.
    pub held_seconds: f64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FixtureNode {
    /// A GetVessels payload (text before `\nSuccess` may include it or not), inline …
    pub getvessels_text: Option<String>,
    /// … or from a file, relative to the scenario file.
    pub getvessels_file: Option<PathBuf>,
    /// Resource file of every vessel (`GetVesselResources`), relative to the scenario file; a
    /// golden payload file ending in `\nSuccess` is accepted as is.
    pub resources_file: Option<PathBuf>,
    pub offcut_file: Option<PathBuf>,
    /// Advertise this node's keys (default true).
    pub advertise: Option<bool>,
}

/// A scenario error, already naming the file (and line where known).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

impl Scenario {
    /// Parses scenario text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario =
            serde_saphyr::from_str(text).map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        s.validate()
            .map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        Ok(s)
    }

    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
        let mut s = Scenario::from_yaml(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        s.resolve_paths(base);
        Ok(s)
    }

    pub fn default_scenario() -> Scenario {
        Scenario::from_yaml(DEFAULT_SCENARIO, "scenarios/default.yaml (built in)")
            .expect("the built-in scenario is valid (checked by a test)")
    }

    /// Makes fixture paths relative to the scenario file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        for f in &mut self.fixture_nodes {
            for p in [
                &mut f.getvessels_file,
                &mut f.resources_file,
                &mut f.offcut_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        let n = &self.nodes;
        for (name, f) in [
            ("nodes.down", n.down),
            ("nodes.slow", n.slow),
            ("nodes.hanging", n.hanging),
            ("nodes.affix", n.affix),
            ("nodes.nat", n.nat),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!(
                    "{name}: must be a fraction between 0 and 1, got {f}"
                ));
            }
        }
        if n.down + n.slow + n.hanging > 1.0 {
            return Err("nodes.down + nodes.slow + nodes.hanging exceed 1".into());
        }
        if n.affix + n.nat > 1.0 {
            return Err("nodes.affix + nodes.nat exceed 1".into());
        }
        if n.vessels_per_node > 100 {
            return Err(format!(
                "nodes.vessels_per_node: at most 100, got {}",
                n.vessels_per_node
            ));
        }
        if n.count > 60_000 {
            return Err(format!("nodes.count: at most 60000, got {}", n.count));
        }
        for k in n.status_mix.keys() {
            if !crate::world::STATUSES.contains(&k.as_str()) {
                return Err(format!(
                    "nodes.status_mix: unknown status {k:?} (expected one of {:?})",
                    crate::world::STATUSES
                ));
            }
        }
        let mut total = 0;
        for (k, v) in &self.states {
            if !crate::world::STATES.contains(&k.as_str()) {
                return Err(format!(
                    "states: unknown clearinghouse state {k:?} (expected one of {:?})",
                    crate::world::STATES
                ));
            }
            total += v;
        }
        if total > n.count {
            return Err(format!(
                "states: counts total {total}, more than nodes.count {}",
                n.count
            ));
        }
        for h in &n.hostile {
            if h.node >= n.count {
                return Err(format!("nodes.hostile: node {} does not exist", h.node));
            }
            if h.behaviour.zenodotus_only() {
                return Err(format!(
                    "nodes.hostile: {:?} is a Zenodotus fault",
                    h.behaviour
                ));
            }
        }
        for b in [self.advertise.behaviour, self.advertise.udp_behaviour] {
            if b.zenodotus_only() {
                return Err(format!("advertise: {b:?} is a Zenodotus fault"));
            }
        }
        for u in &self.users {
            if let Some(k) = &u.key
                && seattle_protocol::keys::PublicKey::parse(k).is_err()
            {
                return Err(format!("users: {}: key is not \"e n\"", u.name));
            }
        }
        for ia in &self.inconsistent_advertise {
            if !self.users.iter().any(|u| u.name == ia.user) {
                return Err(format!(
                    "inconsistent_advertise: unknown user {:?}",
                    ia.user
                ));
            }
            if ia.node >= n.count {
                return Err(format!(
                    "inconsistent_advertise: node {} does not exist",
                    ia.node
                ));
            }
        }
        for z in &self.zenodotus.names {
            if let Some(i) = z.node
                && i >= n.count
            {
                return Err(format!(
                    "zenodotus.names: {}: node {i} does not exist",
                    z.name
                ));
            }
        }
        for f in &self.fixture_nodes {
            if f.getvessels_text.is_none() == f.getvessels_file.is_none() {
                return Err(
                    "fixture_nodes: give exactly one of getvessels_text, getvessels_file".into(),
                );
            }
        }
        Ok(())
    }
}
