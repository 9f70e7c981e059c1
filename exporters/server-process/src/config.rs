//! Configuration: process groups and filesystem expectations, from a YAML file
//! and/or built-in profiles.
//!
//! ```yaml
//! process_groups:
//!   - name: backend
//!     match:
//!       cmdline: '(^|[\s/])backend_daemon\.py(\s|$)'   # regex over argv joined by spaces
//!       # comm: [apache2, nginx]                        # any of these command names
//!       # exe: [/usr/sbin/mysqld]                       # executable path or argv[0]
//!       # user: ch                                      # name or numeric uid
//!     min: 1
//!     max: 1
//!     listen: ["127.0.0.1:8020"]
//! filesystems:
//!   expected_mountpoints: [/, /var/lib/mysql]
//!   stat_timeout_seconds: 1
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use seattle_exporter_toolkit::config::Spanned;
use serde::Deserialize;

// The group types and profiles live in seattle-host, shared with the node exporter's
// node-local mode; this module only loads them from files and flags.
pub use seattle_host::groups::{FilesystemConfig, Matcher, PROFILES, ProcessGroup, profile};

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub process_groups: Vec<ProcessGroup>,
    pub filesystems: FilesystemConfig,
}

/// A configuration error that names where it is: file, line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: field `{}`: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    process_groups: Vec<RawGroup>,
    #[serde(default)]
    filesystems: Option<RawFilesystems>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Spanned<RawMatch>,
    #[serde(default)]
    min: Option<Spanned<u64>>,
    #[serde(default)]
    max: Option<Spanned<u64>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    comm: Vec<String>,
    #[serde(default)]
    exe: Vec<String>,
    #[serde(default)]
    cmdline: Option<Spanned<String>>,
    #[serde(default)]
    user: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystems {
    #[serde(default)]
    expected_mountpoints: Vec<String>,
    #[serde(default)]
    stat_timeout_seconds: Option<Spanned<f64>>,
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses and validates config text; `file` only labels errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let err = |line: u64, field: String, message: String| ConfigError {
        file: file.to_string(),
        line,
        field,
        message,
    };
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    // The toolkit's loader names the field path of type errors and unknown keys.
    let raw: RawConfig = seattle_exporter_toolkit::config::parse_yaml(Path::new(file), text)
        .map_err(|e| {
            let field = e
                .field
                .as_deref()
                .map(without_span_segments)
                .unwrap_or_else(|| field_of_serde_message(&e.message));
            err(e.line.unwrap_or(0), field, e.message)
        })?;

    let mut config = Config::default();
    for (i, g) in raw.process_groups.into_iter().enumerate() {
        let at = |f: &str| format!("process_groups[{i}].{f}");
        let name = g.name.value.trim().to_string();
        if name.is_empty() {
            return Err(err(g.name.referenced.line(), at("name"), "empty".into()));
        }
        if config.process_groups.iter().any(|p| p.name == name) {
            return Err(err(
                g.name.referenced.line(),
                at("name"),
                format!("duplicate group name {name:?}"),
            ));
        }
        let m = g.matcher.value;
        let cmdline = match m.cmdline {
            Some(c) => Some(Regex::new(&c.value).map_err(|e| {
                err(
                    c.referenced.line(),
                    at("match.cmdline"),
                    format!("invalid regex: {}", one_line(&e.to_string())),
                )
            })?),
            None => None,
        };
        if m.comm.is_empty() && m.exe.is_empty() && cmdline.is_none() {
            return Err(err(
                g.matcher.referenced.line(),
                at("match"),
                "needs at least one of comm, exe, cmdline".into(),
            ));
        }
        let uid = match m.user {
            Some(u) => Some(resolve_user(&u.value).ok_or_else(|| {
                err(
                    u.referenced.line(),
                    at("match.user"),
                    format!("unknown user {:?}", u.value),
                )
            })?),
            None => None,
        };
        let min = g.min.as_ref().map(|m| m.value).unwrap_or(1);
        if let Some(max) = &g.max
            && max.value < min
        {
            return Err(err(
                max.referenced.line(),
                at("max"),
                format!("max {} is below min {min}", max.value),
            ));
        }
        let mut listen = Vec::with_capacity(g.listen.len());
        for (j, a) in g.listen.iter().enumerate() {
            let addr = a.value.parse::<SocketAddr>().map_err(|_| {
                err(
                    a.referenced.line(),
                    at(&format!("listen[{j}]")),
                    format!("{:?} is not an IP:port address", a.value),
                )
            })?;
            listen.push(addr);
        }
        config.process_groups.push(ProcessGroup {
            name,
            matcher: Matcher {
                comm: m.comm,
                exe: m.exe,
                cmdline,
                uid,
            },
            min,
            max: g.max.map(|m| m.value),
            listen,
        });
    }
    if let Some(fs) = raw.filesystems {
        config.filesystems.expected_mountpoints = fs.expected_mountpoints;
        if let Some(t) = fs.stat_timeout_seconds {
            if !(t.value > 0.0 && t.value <= 60.0) {
                return Err(err(
                    t.referenced.line(),
                    "filesystems.stat_timeout_seconds".into(),
                    "must be > 0 and <= 60".into(),
                ));
            }
            config.filesystems.stat_timeout = Duration::from_secs_f64(t.value);
        }
    }
    Ok(config)
}

/// `Spanned` wrappers show up as `.value` in field paths; users never wrote those.
fn without_span_segments(path: &str) -> String {
    path.replace(".value.", ".")
        .trim_end_matches(".value")
        .to_string()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// serde names the offending field in backquotes ("unknown field `foo`", "missing field `name`").
fn field_of_serde_message(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "?".to_string())
}

fn resolve_user(user: &str) -> Option<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Some(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? == user {
            f.nth(1)?.parse().ok()
        } else {
            None
        }
    })
}

/// Profiles first, then the file; a file group with a profile group's name replaces it
/// (so an operator can change a profile's minimum or addresses).
pub fn assemble(profiles: &[String], file: Option<&PathBuf>) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(path) => load_file(path)?,
        None => Config::default(),
    };
    let mut groups = Vec::new();
    for p in profiles {
        let Some(pg) = profile(p) else {
            anyhow::bail!("unknown profile {p:?} (known: {})", PROFILES.join(", "));
        };
        for g in pg {
            let overridden = config.process_groups.iter().any(|c| c.name == g.name)
                || groups.iter().any(|x: &ProcessGroup| x.name == g.name);
            if !overridden {
                groups.push(g);
            }
        }
    }
    groups.append(&mut config.process_groups);
    config.process_groups = groups;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let c = parse(
            "t.yml",
            "process_groups:\n  - name: b\n    match:\n      cmdline: 'backend_daemon\\.py'\n      user: '0'\n    min: 1\n    max: 2\n    listen: ['127.0.0.1:8020']\nfilesystems:\n  expected_mountpoints: [/]\n  stat_timeout_seconds: 0.5\n",
        )
        .unwrap();
        let g = &c.process_groups[0];
        assert_eq!(g.name, "b");
        assert_eq!(g.max, Some(2));
        assert_eq!(g.matcher.uid, Some(0));
        assert_eq!(g.listen[0].port(), 8020);
        assert_eq!(c.filesystems.stat_timeout, Duration::from_millis(500));
    }

    fn error(text: &str) -> ConfigError {
        parse("bad.yml", text).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = error("process_groups:\n  - name: b\n    match: {comm: [x]}\n    bogus: 1\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "process_groups[0].bogus"),
            "{e}"
        );
        let e = error("process_groups:\n  - name: b\n    match: {comm: [x]}\n    min: many\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "process_groups[0].min"),
            "{e}"
        );
        let e = error("process_groups:\n  - name: b\n    match: {comm: x}\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (3, "process_groups[0].match.comm"),
            "{e}"
        );
        let e = error("process_groups:\n  - name: b\n    match:\n      cmdline: '(unclosed'\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "process_groups[0].match.cmdline")
        );
        let e =
            error("process_groups:\n  - name: b\n    match: {comm: [x]}\n    min: 3\n    max: 2\n");
        assert_eq!((e.line, e.field.as_str()), (5, "process_groups[0].max"));
        let e = error("process_groups:\n  - name: b\n    match: {}\n");
        assert_eq!(e.field, "process_groups[0].match");
        let e =
            error("process_groups:\n  - name: b\n    match: {comm: [x]}\n    listen: [nohost]\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "process_groups[0].listen[0]")
        );
        assert!(e.to_string().starts_with("bad.yml:4: field"));
    }

    #[test]
    fn file_groups_replace_profile_groups_of_the_same_name() {
        let dir = std::env::temp_dir().join(format!("spe-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yml");
        std::fs::write(
            &f,
            "process_groups:\n  - name: mysqld\n    match: {comm: [mariadbd]}\n    min: 2\n",
        )
        .unwrap();
        let c = assemble(&["clearinghouse".into()], Some(&f)).unwrap();
        assert_eq!(c.process_groups.len(), 9);
        let m = c
            .process_groups
            .iter()
            .find(|g| g.name == "mysqld")
            .unwrap();
        assert_eq!(m.min, 2);
        assert!(assemble(&["nope".into()], None).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
