//! `--config.file`: the probe modules. Strict YAML (unknown keys are errors); errors name the
//! file, line and field. Without a file the built-in modules of docs/metrics.md apply; modules in
//! a file are added to them (a module of the same name replaces the built-in one).
//!
//! ```yaml
//! modules:
//!   zenodotus:
//!     kind: zenodotus                              # the only kind; may be left out
//!     server: 128.238.63.50:53                     # host:port, ip, host, or `system`
//!     advertise: advertiseserver_v2.poly.edu:10102 # the central_v2 service
//!     check_host: true                             # TCP host_port + ICMP on answered addresses
//!     host_port: 1224                              # the node manager's port
//!     compare_advertise: true                      # DNS answer vs the advertised values
//!     round_trip: false                            # announce a name, then resolve it (writes!)
//!     zone_check: false                            # target is a zone: apex A, NS, SOA
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use seattle_exporter_toolkit::config::{ConfigError, Spanned, load_yaml, parse_yaml};
use serde::Deserialize;

/// The production Zenodotus (SEATTLE.md F).
pub const DEFAULT_SERVER: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(128, 238, 63, 50), 53));
/// The `central_v2` advertise service Zenodotus reads (SEATTLE.md C.1).
pub const DEFAULT_ADVERTISE: &str = "advertiseserver_v2.poly.edu:10102";
/// The node manager's port.
pub const DEFAULT_HOST_PORT: u16 = 1224;

/// The built-in modules, parsed like a file so both share the validation.
const BUILTIN: &str = "\
modules:
  zenodotus:
    kind: zenodotus
  zenodotus_zone:
    kind: zenodotus
    check_host: false
    compare_advertise: false
    zone_check: true
    round_trip: true
";

/// Where DNS queries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// The first `nameserver` of /etc/resolv.conf (IPv4 first), read per probe.
    System,
    /// A literal address.
    Addr(SocketAddr),
    /// A host name, resolved per probe (IPv4 first).
    Host(String, u16),
}

/// One probe module (kind `zenodotus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub server: Server,
    /// `host:port` of the central_v2 advertise service.
    pub advertise: String,
    pub check_host: bool,
    pub host_port: u16,
    pub compare_advertise: bool,
    pub round_trip: bool,
    pub zone_check: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub modules: BTreeMap<String, Module>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Zenodotus,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    modules: BTreeMap<String, ModuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    #[serde(default)]
    #[allow(dead_code)] // one kind so far; the field is there so configs can say it
    kind: Option<Kind>,
    #[serde(default)]
    server: Option<Spanned<String>>,
    #[serde(default)]
    advertise: Option<Spanned<String>>,
    #[serde(default)]
    check_host: Option<bool>,
    #[serde(default)]
    host_port: Option<Spanned<u16>>,
    #[serde(default)]
    compare_advertise: Option<bool>,
    #[serde(default)]
    round_trip: Option<bool>,
    #[serde(default)]
    zone_check: Option<bool>,
}

/// Splits `host[:port]` / `[v6]:port` / `ip`; `None` when it is not an address.
fn host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip.to_string(), default_port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (s, default_port),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    (valid && port != 0).then(|| (host.to_string(), port))
}

/// Parses the `server` option.
pub fn parse_server(s: &str) -> Option<Server> {
    if s.trim() == "system" {
        return Some(Server::System);
    }
    let (host, port) = host_port(s, 53)?;
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => Server::Addr(SocketAddr::new(ip, port)),
        Err(_) => Server::Host(host, port),
    })
}

/// Parses the `advertise` option into `host:port` (port 10102 when left out).
pub fn parse_advertise(s: &str) -> Option<String> {
    let (host, port) = host_port(s, seattle_protocol::advertise::ADVERTISE_PORT)?;
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    })
}

impl ModuleFile {
    fn resolve(self, file: &Path, name: &str) -> Result<Module, ConfigError> {
        let field = |f: &str| format!("modules.{name}.{f}");
        let server = match &self.server {
            None => Server::Addr(DEFAULT_SERVER),
            Some(s) => parse_server(&s.value).ok_or_else(|| {
                ConfigError::at(
                    file,
                    s,
                    field("server"),
                    format!("{:?} is not host:port, an IP address or `system`", s.value),
                )
            })?,
        };
        let advertise = match &self.advertise {
            None => DEFAULT_ADVERTISE.to_string(),
            Some(s) => parse_advertise(&s.value).ok_or_else(|| {
                ConfigError::at(
                    file,
                    s,
                    field("advertise"),
                    format!("{:?} is not host:port", s.value),
                )
            })?,
        };
        let host_port = match &self.host_port {
            None => DEFAULT_HOST_PORT,
            Some(p) if p.value == 0 => {
                return Err(ConfigError::at(
                    file,
                    p,
                    field("host_port"),
                    "must be a port between 1 and 65535",
                ));
            }
            Some(p) => p.value,
        };
        Ok(Module {
            server,
            advertise,
            check_host: self.check_host.unwrap_or(true),
            host_port,
            compare_advertise: self.compare_advertise.unwrap_or(true),
            round_trip: self.round_trip.unwrap_or(false),
            zone_check: self.zone_check.unwrap_or(false),
        })
    }
}

fn resolve(file: &Path, parsed: FileConfig) -> Result<BTreeMap<String, Module>, ConfigError> {
    parsed
        .modules
        .into_iter()
        .map(|(name, m)| {
            let module = m.resolve(file, &name)?;
            Ok((name, module))
        })
        .collect()
}

impl Config {
    /// The built-in modules.
    pub fn builtin() -> Result<Config, ConfigError> {
        let file = Path::new("(built-in config)");
        let modules = resolve(file, parse_yaml(file, BUILTIN)?)?;
        Ok(Config { modules })
    }

    /// The built-in modules plus those of `text` (same name replaces); `file` names errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::builtin()?;
        config
            .modules
            .extend(resolve(file, parse_yaml(file, text)?)?);
        Ok(config)
    }

    /// [`Config::parse`] of a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::builtin()?;
        config.modules.extend(resolve(path, load_yaml(path)?)?);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_modules_match_the_catalogue() {
        let c = Config::builtin().unwrap();
        let z = &c.modules["zenodotus"];
        assert_eq!(z.server, Server::Addr("128.238.63.50:53".parse().unwrap()));
        assert_eq!(z.advertise, "advertiseserver_v2.poly.edu:10102");
        assert!(z.check_host && z.compare_advertise && !z.round_trip && !z.zone_check);
        assert_eq!(z.host_port, 1224);
        let zone = &c.modules["zenodotus_zone"];
        assert!(zone.zone_check && zone.round_trip && !zone.check_host && !zone.compare_advertise);
    }

    #[test]
    fn file_modules_add_and_replace() {
        let text = "modules:\n  demo:\n    server: 127.0.0.1:5353\n    advertise: 127.0.0.1\n  zenodotus:\n    server: system\n    host_port: 63100\n";
        let c = Config::parse(Path::new("z.yml"), text).unwrap();
        assert_eq!(c.modules.len(), 3);
        assert_eq!(
            c.modules["demo"].server,
            Server::Addr("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(c.modules["demo"].advertise, "127.0.0.1:10102");
        assert_eq!(c.modules["zenodotus"].server, Server::System);
        assert_eq!(c.modules["zenodotus"].host_port, 63100);
    }

    #[test]
    fn servers_parse() {
        assert_eq!(
            parse_server("ns.example.org"),
            Some(Server::Host("ns.example.org".into(), 53))
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some(Server::Addr("[::1]:5353".parse().unwrap()))
        );
        assert_eq!(
            parse_server("10.0.0.1"),
            Some(Server::Addr("10.0.0.1:53".parse().unwrap()))
        );
        for bad in ["", "a b:53", "host:0", "host:99999", "host:", "ftp://x"] {
            assert_eq!(parse_server(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = Config::parse(
            Path::new("z.yml"),
            "modules:\n  m:\n    server: 'not an address'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("z.yml:3:"), "{e}");
        assert!(e.contains("modules.m.server"), "{e}");

        let e = Config::parse(Path::new("z.yml"), "modules:\n  m:\n    host_port: 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("z.yml:3:"), "{e}");
        assert!(e.contains("modules.m.host_port"), "{e}");

        let e = Config::parse(Path::new("z.yml"), "modules:\n  m:\n    sever: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("z.yml:3:"), "{e}");
        assert!(e.contains("sever"), "{e}");

        let e = Config::parse(Path::new("z.yml"), "modules:\n  m:\n    kind: http\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("z.yml:3:"), "{e}");
    }
}
