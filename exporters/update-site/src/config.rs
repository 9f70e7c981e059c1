//! The `--config.file` (strict YAML) and the built-in default config (`default_config.yml`).
//!
//! Everything a probe needs that costs work (the rustls `ClientConfig`, trust roots, the parsed
//! trusted key) is built here once, never per probe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use seattle_exporter_toolkit::config::{ConfigError, Spanned, load_yaml, parse_yaml};
use seattle_protocol::keys::PublicKey;
use serde::Deserialize;

use crate::http_client::HttpClient;

/// The key every Seattle install trusts (`softwareupdatepublickey` in `softwareupdater.py`).
pub const PRODUCTION_UPDATE_KEY: &str =
    include_str!("../keys/softwareupdater_production.publickey");
/// Key sent to the installer builder by the build round trip: a real 1024-bit key whose private
/// half was never kept, so the builds it creates cannot be used by anyone.
pub const CIB_PROBE_KEY: &str = include_str!("../keys/cib_probe.publickey");
/// The modules shipped with the exporter (names from docs/metrics.md).
pub const DEFAULT_CONFIG: &str = include_str!("default_config.yml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    modules: BTreeMap<String, ModuleFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Updatesite,
    Http,
    Cib,
    Lockserver,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    prober: Kind,
    #[serde(default)]
    http: HttpFile,
    #[serde(default)]
    updatesite: UpdatesiteFile,
    #[serde(default)]
    cib: CibFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    max_body_bytes: Option<Spanned<u64>>,
    max_redirects: Option<u32>,
    /// PEM file of CA certificates trusted instead of the built-in web roots.
    ca_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatesiteFile {
    /// `e n` key file; the production update key when absent.
    trusted_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    full_check: bool,
    full_check_concurrency: Option<Spanned<usize>>,
    /// Files fetched by the full check at most (the rest count as not checked).
    full_check_max_files: Option<Spanned<usize>>,
    /// Largest listed file fetched by the full check.
    full_check_max_file_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CibFile {
    #[serde(default)]
    build_round_trip: bool,
    /// `e n` key file put in the probe build; the built-in probe key when absent.
    public_key_file: Option<Spanned<PathBuf>>,
}

/// One module, ready to probe with.
#[derive(Debug, Clone)]
pub struct Module {
    pub kind: Kind,
    pub http: Arc<HttpClient>,
    pub updatesite: UpdatesiteOptions,
    pub cib: CibOptions,
}

#[derive(Debug, Clone)]
pub struct UpdatesiteOptions {
    pub trusted_key: Arc<PublicKey>,
    /// SHA-1 of the key string, part of the verdict cache key.
    pub trusted_key_digest: [u8; 20],
    pub full_check: bool,
    pub full_check_concurrency: usize,
    pub full_check_max_files: usize,
    pub full_check_max_file_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct CibOptions {
    pub build_round_trip: bool,
    /// Key string `e n`.
    pub public_key: String,
}

pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
const MAX_CONCURRENCY: usize = 64;

/// The parsed config: module name → module.
#[derive(Debug, Clone)]
pub struct Config {
    pub modules: BTreeMap<String, Module>,
}

impl Config {
    /// Loads `--config.file`; relative paths inside resolve against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file: ConfigFile = load_yaml(path)?;
        build(path, file)
    }

    /// The built-in modules.
    pub fn builtin() -> Result<Config, ConfigError> {
        let path = Path::new("<built-in config>");
        build(path, parse_yaml(path, DEFAULT_CONFIG)?)
    }

    /// Parses config text (tests, `--config.check` of inline text); `file` names it in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        build(file, parse_yaml(file, text)?)
    }
}

fn relative_to(file: &Path, p: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Reads an `e n` key file.
pub fn read_key_file(path: &Path) -> Result<PublicKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() > seattle_protocol::keys::MAX_KEY_TEXT {
        return Err(format!("{}: larger than a key", path.display()));
    }
    PublicKey::parse(text.trim()).map_err(|e| format!("{}: {e}", path.display()))
}

fn build(path: &Path, file: ConfigFile) -> Result<Config, ConfigError> {
    let production = Arc::new(
        PublicKey::parse(PRODUCTION_UPDATE_KEY.trim())
            .map_err(|e| ConfigError::new(path, format!("built-in update key: {e}")))?,
    );
    let mut modules = BTreeMap::new();
    for (name, m) in file.modules {
        let field = |f: &str| format!("modules.{name}.{f}");
        let max_body = match &m.http.max_body_bytes {
            Some(s) if s.value == 0 => {
                return Err(ConfigError::at(
                    path,
                    s,
                    field("http.max_body_bytes"),
                    "must be > 0",
                ));
            }
            Some(s) => s.value,
            None => DEFAULT_MAX_BODY_BYTES,
        };
        let ca = match &m.http.ca_file {
            Some(s) => Some(
                crate::http_client::read_ca_file(&relative_to(path, &s.value))
                    .map_err(|e| ConfigError::at(path, s, field("http.ca_file"), e))?,
            ),
            None => None,
        };
        let http = Arc::new(
            HttpClient::new(
                ca,
                max_body,
                m.http.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
            )
            .map_err(|e| ConfigError::new(path, format!("modules.{name}.http: {e}")))?,
        );
        let trusted_key =
            match &m.updatesite.trusted_key_file {
                Some(s) => Arc::new(read_key_file(&relative_to(path, &s.value)).map_err(|e| {
                    ConfigError::at(path, s, field("updatesite.trusted_key_file"), e)
                })?),
                None => production.clone(),
            };
        let bounded = |v: &Option<Spanned<usize>>, f: &str, default: usize, max: usize| match v {
            Some(s) if s.value == 0 || s.value > max => Err(ConfigError::at(
                path,
                s,
                field(f),
                format!("must be between 1 and {max}"),
            )),
            Some(s) => Ok(s.value),
            None => Ok(default),
        };
        let full_check_concurrency = bounded(
            &m.updatesite.full_check_concurrency,
            "updatesite.full_check_concurrency",
            4,
            MAX_CONCURRENCY,
        )?;
        let full_check_max_files = bounded(
            &m.updatesite.full_check_max_files,
            "updatesite.full_check_max_files",
            1000,
            100_000,
        )?;
        let public_key = match &m.cib.public_key_file {
            Some(s) => read_key_file(&relative_to(path, &s.value))
                .map_err(|e| ConfigError::at(path, s, field("cib.public_key_file"), e))?
                .to_key_string(),
            None => CIB_PROBE_KEY.trim().to_string(),
        };
        modules.insert(
            name,
            Module {
                kind: m.prober,
                http,
                updatesite: UpdatesiteOptions {
                    trusted_key_digest: crate::metainfo_check::key_digest(&trusted_key),
                    trusted_key,
                    full_check: m.updatesite.full_check,
                    full_check_concurrency,
                    full_check_max_files,
                    full_check_max_file_bytes: m
                        .updatesite
                        .full_check_max_file_bytes
                        .unwrap_or(16 << 20),
                },
                cib: CibOptions {
                    build_round_trip: m.cib.build_round_trip,
                    public_key,
                },
            },
        );
    }
    Ok(Config { modules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_catalogue_modules() {
        let c = Config::builtin().unwrap();
        let names: Vec<&str> = c.modules.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "cib",
                "cib_build",
                "http",
                "lockserver",
                "updatesite",
                "updatesite_full"
            ]
        );
        assert!(c.modules["updatesite_full"].updatesite.full_check);
        assert!(!c.modules["updatesite"].updatesite.full_check);
        assert!(c.modules["cib_build"].cib.build_round_trip);
        assert!(!c.modules["cib"].cib.build_round_trip);
        // The production key by default (its modulus happens to have 4095 significant bits).
        assert_eq!(
            c.modules["updatesite"]
                .updatesite
                .trusted_key
                .to_key_string(),
            PRODUCTION_UPDATE_KEY.trim()
        );
        assert_eq!(c.modules["updatesite"].updatesite.trusted_key.bits(), 4095);
        assert_eq!(c.modules["lockserver"].kind, Kind::Lockserver);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let f = Path::new("u.yml");
        let e = Config::parse(f, "modules:\n  a:\n    prober: updatesite\n    bogus: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("u.yml:4"), "{e}");
        assert!(e.contains("bogus"), "{e}");

        let e = Config::parse(
            f,
            "modules:\n  a:\n    prober: updatesite\n    updatesite:\n      full_check_concurrency: 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("u.yml:5:31: modules.a.updatesite.full_check_concurrency: must be"),
            "{e}"
        );

        let e = Config::parse(
            f,
            "modules:\n  a:\n    prober: http\n    http:\n      ca_file: /nonexistent/ca.pem\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("u.yml:5:16: modules.a.http.ca_file: "), "{e}");

        let e = Config::parse(f, "modules:\n  a:\n    prober: ftp\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("u.yml:3"), "{e}");
    }

    #[test]
    fn key_files_resolve_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.publickey"), "3 55\n").unwrap();
        let cfg = dir.path().join("c.yml");
        std::fs::write(
            &cfg,
            "modules:\n  s:\n    prober: updatesite\n    updatesite:\n      trusted_key_file: k.publickey\n",
        )
        .unwrap();
        let c = Config::load(&cfg).unwrap();
        assert_eq!(
            c.modules["s"].updatesite.trusted_key.to_key_string(),
            "3 55"
        );
    }
}
