//! `--config.file`: modules, users, advertise services, state keys, well-known lookups and
//! discovery. Strict YAML (unknown keys are errors); errors name file, line and field.
//!
//! Without a file the built-in defaults apply: the modules named in `docs/metrics.md`, the
//! production advertise services, the production clearinghouse state keys and v2 key (embedded
//! from `production_keys.jsonl`, a copy of the golden `clearinghouse_state_keys.jsonl` rows of
//! `seattleclearinghouse.poly.edu`) and the well-known lookups. Modules in a file are added to
//! the default ones (same name replaces).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use seattle_exporter_toolkit::config::{ConfigError, Location, Spanned, load_yaml, parse_yaml};
use seattle_protocol::advertise::Service;
use seattle_protocol::keys::PublicKey;
use serde::Deserialize;

use crate::prober::{
    AdvertiseModule, Module, NodemanagerModule, Protocol, UsersModule, advertise, users,
};

/// Production keys: the golden rows of `seattleclearinghouse.poly.edu` plus the v2 key.
const PRODUCTION_KEYS: &str = include_str!("../production_keys.jsonl");

/// State keys looked up and recognised by default (docs/metrics.md).
pub const DEFAULT_STATES: [&str; 7] = [
    "acceptdonation",
    "canonical",
    "movingto_canonical",
    "movingto_twopercent",
    "twopercent",
    "onepercentmanyevents",
    "movingto_onepercentmanyevents",
];

/// Literal well-known keys looked up by default besides v2 and the state keys.
pub const DEFAULT_LITERAL_LOOKUPS: [(&str, &str); 4] = [
    ("time_server", "time_server"),
    ("nat_affix_forwarder", "__NAT_AFFIX_FORWARDER__"),
    ("nat_forwarder", "__NAT__FORWARDER__"),
    ("canihear", "canihear"),
];

/// The default modules, parsed like a file so both paths share the validation.
const DEFAULT_MODULES: &str = "\
nodemanager:
  kind: nodemanager
nodemanager_resources:
  kind: nodemanager
  get_vessel_resources: true
advertise_tcp:
  kind: advertise
  protocol: tcp
advertise_udp:
  kind: advertise
  protocol: udp
users:
  kind: users
  protocol: tcp
";

/// Longest label value we accept from the config for names (module, user, lookup, state).
const MAX_NAME: usize = 64;

// ---------------------------------------------------------------------------------------------
// File shape

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    modules: BTreeMap<String, ModuleFile>,
    #[serde(default)]
    users: Vec<UserFile>,
    #[serde(default)]
    advertise_services: Option<Vec<ServiceFile>>,
    #[serde(default)]
    state_keys: Option<Vec<NamedKeyFile>>,
    #[serde(default)]
    v2_key: Option<Spanned<String>>,
    #[serde(default)]
    lookups: Option<Vec<LookupFile>>,
    #[serde(default)]
    discovery: DiscoveryFile,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Nodemanager,
    Advertise,
    Users,
}

/// One module; options that do not belong to its kind are errors (checked after parsing, so
/// the error points at the option).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    kind: Spanned<Kind>,
    #[serde(default)]
    get_vessel_resources: Option<Spanned<bool>>,
    #[serde(default)]
    resource_concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    max_reply_bytes: Option<Spanned<usize>>,
    #[serde(default)]
    protocol: Option<Spanned<Protocol>>,
    #[serde(default)]
    ttl_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    lookups: Option<Spanned<bool>>,
    #[serde(default)]
    max_nodes_per_user: Option<Spanned<usize>>,
    #[serde(default)]
    node_concurrency: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    name: Spanned<String>,
    #[serde(default)]
    public_key: Option<Spanned<String>>,
    #[serde(default)]
    public_key_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    name: Spanned<String>,
    address: Spanned<String>,
    protocol: Protocol,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedKeyFile {
    name: Spanned<String>,
    public_key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupFile {
    name: Spanned<String>,
    /// A literal advertise key (`time_server`, `canihear`, …).
    #[serde(default)]
    key: Option<Spanned<String>>,
    /// A key string `"e n"`, looked up in its Py2 `str(dict)` form.
    #[serde(default)]
    public_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DiscoveryFile {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    refresh_interval: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_targets: Option<Spanned<usize>>,
    #[serde(default)]
    affix_concurrency: Option<Spanned<usize>>,
}

// ---------------------------------------------------------------------------------------------
// Resolved config

/// A public key known by name (state keys, v2, users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub name: String,
    /// `"e n"`, as GetVessels shows it.
    pub key_string: String,
    /// Py2 `str()` of the key dict, as advertised.
    pub advertise_key: String,
}

impl NamedKey {
    fn new(name: &str, key: &PublicKey) -> Self {
        NamedKey {
            name: name.to_string(),
            key_string: key.to_key_string(),
            advertise_key: key.advertise_key(),
        }
    }
}

/// A well-known key an advertise probe looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellKnownKey {
    pub name: String,
    pub key: Vec<u8>,
}

/// Fleet discovery settings.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub enabled: bool,
    pub refresh_interval: Duration,
    /// Budget of one refresh (all lookups and Affix resolutions).
    pub timeout: Duration,
    /// Most targets served (bounds memory on a hostile advertise service).
    pub max_targets: usize,
    /// Affix ids resolved at once.
    pub affix_concurrency: usize,
}

/// The whole resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub modules: BTreeMap<String, Module>,
    pub users: Vec<NamedKey>,
    pub services: Vec<Service>,
    pub state_keys: Vec<NamedKey>,
    pub v2: NamedKey,
    pub lookups: Vec<WellKnownKey>,
    pub discovery: Discovery,
}

impl Config {
    /// The built-in configuration (no file).
    pub fn builtin() -> Result<Config, ConfigError> {
        resolve(Path::new("<built-in>"), FileConfig::default())
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = load_yaml(path)?;
        resolve(path, file)
    }

    /// Parses and validates YAML text; `path` names it in errors and anchors relative key files.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = parse_yaml(path, text)?;
        resolve(path, file)
    }

    /// Shared data the probers need.
    pub fn shared(&self) -> Arc<crate::prober::Shared> {
        Arc::new(crate::prober::Shared::new(self))
    }
}

#[derive(Deserialize)]
struct ProductionKeyRow {
    state: String,
    clearinghouse: String,
    key_string: String,
}

/// The embedded production keys: (state name, key). The v2 row is named `v2`.
pub fn production_keys() -> Vec<(String, PublicKey)> {
    PRODUCTION_KEYS
        .lines()
        .filter_map(|l| serde_json::from_str::<ProductionKeyRow>(l).ok())
        .filter_map(|r| {
            let name = if r.clearinghouse == "(all nodes)" {
                "v2".to_string()
            } else {
                r.state
            };
            Some((name, PublicKey::parse(&r.key_string).ok()?))
        })
        .collect()
}

fn err<T>(
    file: &Path,
    at: &Spanned<T>,
    field: impl Into<String>,
    msg: impl Into<String>,
) -> ConfigError {
    ConfigError::at(file, at, field, msg)
}

fn check_name(file: &Path, name: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
    let n = &name.value;
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok {
        return Err(err(
            file,
            name,
            field,
            format!("must be 1-{MAX_NAME} characters of [A-Za-z0-9_.-] (it becomes a label value)"),
        ));
    }
    Ok(n.clone())
}

fn parse_key(file: &Path, text: &Spanned<String>, field: &str) -> Result<PublicKey, ConfigError> {
    PublicKey::parse(text.value.trim())
        .map_err(|e| err(file, text, field, format!("not a public key \"e n\": {e}")))
}

/// Prometheus-style duration (`500ms`, `30s`, `1m30s`, `2h`) or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        total = total.checked_add(Duration::from_millis(n.checked_mul(ms)?))?;
    }
    Some(total)
}

fn duration_field(
    file: &Path,
    v: &Option<Spanned<String>>,
    field: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => match parse_duration(&s.value) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(err(
                file,
                s,
                field,
                "not a positive duration (e.g. 30s, 1m)",
            )),
        },
    }
}

/// Where an option was given, if it was.
fn given<T>(option: &Option<Spanned<T>>) -> Option<Location> {
    option.as_ref().map(|o| o.referenced)
}

/// The options only some kinds take: (name, the kinds taking it, where it was given). Checked
/// in this order, so the first one of another kind is the one reported.
fn kind_options(m: &ModuleFile) -> [(&'static str, &'static [Kind], Option<Location>); 8] {
    use Kind::{Advertise, Nodemanager, Users};
    [
        (
            "get_vessel_resources",
            &[Nodemanager],
            given(&m.get_vessel_resources),
        ),
        (
            "resource_concurrency",
            &[Nodemanager],
            given(&m.resource_concurrency),
        ),
        ("protocol", &[Advertise, Users], given(&m.protocol)),
        ("ttl_seconds", &[Advertise], given(&m.ttl_seconds)),
        ("lookups", &[Advertise], given(&m.lookups)),
        ("max_nodes_per_user", &[Users], given(&m.max_nodes_per_user)),
        ("node_concurrency", &[Users], given(&m.node_concurrency)),
        // Not nodemanager: the node-manager client's reply cap is shared by every module.
        (
            "max_reply_bytes",
            &[Advertise, Users],
            given(&m.max_reply_bytes),
        ),
    ]
}

fn in_range(
    file: &Path,
    v: &Option<Spanned<usize>>,
    field: String,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) if range.contains(&s.value) => Ok(s.value),
        Some(s) => Err(err(
            file,
            s,
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        )),
    }
}

fn resolve_module(file: &Path, name: &str, m: &ModuleFile) -> Result<Module, ConfigError> {
    let kind = m.kind.value;
    let field = |o: &str| format!("modules.{name}.{o}");
    let max_reply = || {
        in_range(
            file,
            &m.max_reply_bytes,
            field("max_reply_bytes"),
            64..=(64 << 20),
            advertise::DEFAULT_LOOKUP_MAX_REPLY,
        )
    };
    for (option, kinds, at) in kind_options(m) {
        if let Some(at) = at
            && !kinds.contains(&kind)
        {
            return Err(ConfigError::at_location(
                file,
                at,
                Some(field(option)),
                format!("not an option of kind {kind:?}").to_lowercase(),
            ));
        }
    }
    Ok(match kind {
        Kind::Nodemanager => {
            Module::Nodemanager(NodemanagerModule {
                get_vessel_resources: m.get_vessel_resources.as_ref().is_some_and(|b| b.value),
                // The node manager serves one request at a time; more than 3 in parallel only
                // queues (and the 5th connection per IP is dropped).
                resource_concurrency: in_range(
                    file,
                    &m.resource_concurrency,
                    field("resource_concurrency"),
                    1..=3,
                    1,
                )?,
            })
        }
        Kind::Advertise => {
            let ttl = match &m.ttl_seconds {
                None => advertise::DEFAULT_TTL_SECONDS,
                Some(t) if (1..=86_400).contains(&t.value) => t.value,
                Some(t) => {
                    return Err(err(file, t, field("ttl_seconds"), "must be 1..=86400"));
                }
            };
            Module::Advertise(AdvertiseModule {
                protocol: m.protocol.as_ref().map_or(Protocol::Tcp, |p| p.value),
                ttl_seconds: ttl,
                lookups: m.lookups.as_ref().is_none_or(|b| b.value),
                max_reply_bytes: max_reply()?,
            })
        }
        Kind::Users => Module::Users(UsersModule {
            protocol: m.protocol.as_ref().map_or(Protocol::Tcp, |p| p.value),
            max_nodes_per_user: in_range(
                file,
                &m.max_nodes_per_user,
                field("max_nodes_per_user"),
                1..=10_000,
                users::DEFAULT_MAX_NODES_PER_USER,
            )?,
            node_concurrency: in_range(
                file,
                &m.node_concurrency,
                field("node_concurrency"),
                1..=1024,
                users::DEFAULT_NODE_CONCURRENCY,
            )?,
            max_reply_bytes: max_reply()?,
        }),
    })
}

fn resolve(file: &Path, f: FileConfig) -> Result<Config, ConfigError> {
    let builtin = Path::new("<built-in default modules>");
    let defaults: BTreeMap<String, ModuleFile> = parse_yaml(builtin, DEFAULT_MODULES)?;
    let mut modules = BTreeMap::new();
    for (name, m) in &defaults {
        modules.insert(name.clone(), resolve_module(builtin, name, m)?);
    }
    for (name, m) in &f.modules {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(err(
                file,
                &m.kind,
                format!("modules.{name}"),
                "module names are 1-64 characters of [A-Za-z0-9_-]",
            ));
        }
        modules.insert(name.clone(), resolve_module(file, name, m)?);
    }

    let production = production_keys();
    let v2 = match &f.v2_key {
        Some(k) => NamedKey::new("v2", &parse_key(file, k, "v2_key")?),
        None => {
            let (_, k) = production
                .iter()
                .find(|(n, _)| n == "v2")
                .ok_or_else(|| ConfigError::new(file, "embedded production keys lack v2"))?;
            NamedKey::new("v2", k)
        }
    };
    let state_keys = match &f.state_keys {
        None => DEFAULT_STATES
            .iter()
            .filter_map(|s| production.iter().find(|(n, _)| n == s))
            .map(|(n, k)| NamedKey::new(n, k))
            .collect(),
        Some(list) => {
            let mut out: Vec<NamedKey> = Vec::new();
            for (i, k) in list.iter().enumerate() {
                let name = check_name(file, &k.name, &format!("state_keys[{i}].name"))?;
                if name == "v2" || out.iter().any(|o| o.name == name) {
                    return Err(err(
                        file,
                        &k.name,
                        format!("state_keys[{i}].name"),
                        "duplicate or reserved name",
                    ));
                }
                let key = parse_key(file, &k.public_key, &format!("state_keys[{i}].public_key"))?;
                out.push(NamedKey::new(&name, &key));
            }
            out
        }
    };

    let base = file.parent().unwrap_or(Path::new("."));
    let mut users: Vec<NamedKey> = Vec::new();
    for (i, u) in f.users.iter().enumerate() {
        let name = check_name(file, &u.name, &format!("users[{i}].name"))?;
        if users.iter().any(|o| o.name == name) {
            return Err(err(
                file,
                &u.name,
                format!("users[{i}].name"),
                "duplicate user name",
            ));
        }
        let key = match (&u.public_key, &u.public_key_file) {
            (Some(k), None) => parse_key(file, k, &format!("users[{i}].public_key"))?,
            (None, Some(p)) => {
                let path = base.join(&p.value);
                let text = std::fs::read_to_string(&path)
                    .ok()
                    .filter(|t| t.len() <= seattle_protocol::keys::MAX_KEY_TEXT)
                    .ok_or_else(|| {
                        err(
                            file,
                            p,
                            format!("users[{i}].public_key_file"),
                            format!("cannot read {} (or larger than a key)", path.display()),
                        )
                    })?;
                PublicKey::parse(text.trim()).map_err(|e| {
                    err(
                        file,
                        p,
                        format!("users[{i}].public_key_file"),
                        format!("{}: not a public key: {e}", path.display()),
                    )
                })?
            }
            _ => {
                return Err(err(
                    file,
                    &u.name,
                    format!("users[{i}]"),
                    "give exactly one of public_key, public_key_file",
                ));
            }
        };
        users.push(NamedKey::new(&name, &key));
    }

    let services = match &f.advertise_services {
        None => vec![
            Service::Tcp {
                name: "central".into(),
                addr: "advertiseserver.poly.edu:10102".into(),
            },
            Service::Tcp {
                name: "central_v2".into(),
                addr: "advertiseserver_v2.poly.edu:10102".into(),
            },
            Service::Udp {
                name: "udp".into(),
                addr: "udpadvertiseserver.poly.edu:10102".into(),
            },
        ],
        Some(list) => {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                let name = check_name(file, &s.name, &format!("advertise_services[{i}].name"))?;
                let addr = s.address.value.clone();
                if crate::prober::split_host_port(&addr).is_none() {
                    return Err(err(
                        file,
                        &s.address,
                        format!("advertise_services[{i}].address"),
                        "expected host:port",
                    ));
                }
                out.push(match s.protocol {
                    Protocol::Tcp => Service::Tcp { name, addr },
                    Protocol::Udp => Service::Udp { name, addr },
                });
            }
            out
        }
    };

    let lookups = match &f.lookups {
        None => {
            let mut out = vec![WellKnownKey {
                name: "v2".into(),
                key: v2.advertise_key.clone().into_bytes(),
            }];
            out.extend(state_keys.iter().map(|k| WellKnownKey {
                name: k.name.clone(),
                key: k.advertise_key.clone().into_bytes(),
            }));
            out.extend(DEFAULT_LITERAL_LOOKUPS.iter().map(|(n, k)| WellKnownKey {
                name: n.to_string(),
                key: k.as_bytes().to_vec(),
            }));
            out
        }
        Some(list) => {
            let mut out: Vec<WellKnownKey> = Vec::new();
            for (i, l) in list.iter().enumerate() {
                let name = check_name(file, &l.name, &format!("lookups[{i}].name"))?;
                if out.iter().any(|o| o.name == name) {
                    return Err(err(
                        file,
                        &l.name,
                        format!("lookups[{i}].name"),
                        "duplicate lookup name",
                    ));
                }
                let key = match (&l.key, &l.public_key) {
                    (Some(k), None) => k.value.clone().into_bytes(),
                    (None, Some(k)) => parse_key(file, k, &format!("lookups[{i}].public_key"))?
                        .advertise_key()
                        .into_bytes(),
                    _ => {
                        return Err(err(
                            file,
                            &l.name,
                            format!("lookups[{i}]"),
                            "give exactly one of key, public_key",
                        ));
                    }
                };
                out.push(WellKnownKey { name, key });
            }
            out
        }
    };

    let d = &f.discovery;
    let discovery = Discovery {
        enabled: d.enabled.unwrap_or(true),
        refresh_interval: duration_field(
            file,
            &d.refresh_interval,
            "discovery.refresh_interval",
            Duration::from_secs(60),
        )?,
        timeout: duration_field(
            file,
            &d.timeout,
            "discovery.timeout",
            Duration::from_secs(30),
        )?,
        max_targets: in_range(
            file,
            &d.max_targets,
            "discovery.max_targets".into(),
            1..=1_000_000,
            100_000,
        )?,
        affix_concurrency: in_range(
            file,
            &d.affix_concurrency,
            "discovery.affix_concurrency".into(),
            1..=256,
            16,
        )?,
    };

    Ok(Config {
        modules,
        users,
        services,
        state_keys,
        v2,
        lookups,
        discovery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_documented_modules_and_keys() {
        let c = Config::builtin().unwrap();
        let names: Vec<&str> = c.modules.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "advertise_tcp",
                "advertise_udp",
                "nodemanager",
                "nodemanager_resources",
                "users"
            ]
        );
        let states: Vec<&str> = c.state_keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(states, DEFAULT_STATES);
        assert!(c.v2.advertise_key.starts_with("{'e': 2259931171"));
        let lookups: Vec<&str> = c.lookups.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(lookups.len(), 1 + 7 + 4);
        assert!(lookups.contains(&"nat_forwarder"));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let p = Path::new("node.yml");
        let e = Config::parse(
            p,
            "modules:\n  x:\n    kind: nodemanager\n    ttl_seconds: 5\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.field.as_deref(), Some("modules.x.ttl_seconds"));
        let e = Config::parse(p, "users:\n  - name: alice\n    public_key: '1 x'\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("users[0].public_key"));
        let e = Config::parse(p, "discovery:\n  refresh_interval: soon\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = Config::parse(p, "bogus: 1\n").unwrap_err();
        assert!(e.to_string().starts_with("node.yml:1"), "{e}");
        let e = Config::parse(
            p,
            "modules:\n  m:\n    kind: advertise\n    protocol: sctp\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn options_of_another_kind_are_errors_in_a_fixed_order() {
        let p = Path::new("node.yml");
        let all = [
            "get_vessel_resources: true",
            "resource_concurrency: 1",
            "max_reply_bytes: 1024",
            "protocol: tcp",
            "ttl_seconds: 5",
            "lookups: true",
            "max_nodes_per_user: 1",
            "node_concurrency: 1",
        ];
        let rejected = |kind: &str| {
            let mut options = all.to_vec();
            let mut fields = Vec::new();
            loop {
                let mut text = format!("modules:\n  m:\n    kind: {kind}\n");
                for o in &options {
                    text.push_str(&format!("    {o}\n"));
                }
                let Err(e) = Config::parse(p, &text) else {
                    return fields;
                };
                assert_eq!(e.message, format!("not an option of kind {kind}"), "{e}");
                let field = e.field.clone().unwrap();
                let option = field.strip_prefix("modules.m.").unwrap().to_string();
                let i = options
                    .iter()
                    .position(|o| o.starts_with(&format!("{option}:")));
                assert_eq!(e.line, Some(4 + i.unwrap() as u64), "{e}");
                options.remove(i.unwrap());
                fields.push(option);
            }
        };
        assert_eq!(
            rejected("nodemanager"),
            [
                "protocol",
                "ttl_seconds",
                "lookups",
                "max_nodes_per_user",
                "node_concurrency",
                "max_reply_bytes"
            ]
        );
        assert_eq!(
            rejected("advertise"),
            [
                "get_vessel_resources",
                "resource_concurrency",
                "max_nodes_per_user",
                "node_concurrency"
            ]
        );
        assert_eq!(
            rejected("users"),
            [
                "get_vessel_resources",
                "resource_concurrency",
                "ttl_seconds",
                "lookups"
            ]
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("node.example.yml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.modules.contains_key("advertise_tcp_quick"));
        assert!(c.modules.contains_key("nodemanager"));
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.discovery.refresh_interval, Duration::from_secs(60));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn production_copy_matches_the_golden_file() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/seattle-golden/clearinghouse_state_keys.jsonl");
        let Ok(text) = std::fs::read_to_string(&golden) else {
            panic!("golden file missing: {}", golden.display());
        };
        for line in PRODUCTION_KEYS.lines() {
            assert!(text.lines().any(|l| l == line), "not in golden: {line:.80}");
        }
        assert_eq!(production_keys().len(), 13);
    }
}
