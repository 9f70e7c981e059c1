//! The web-config file of Prometheus' exporter-toolkit (`--web.config.file`): TLS, basic auth and
//! extra response headers.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: NoClientCert # or RequestClientCert, RequireAnyClientCert,
//!                                  # VerifyClientCertIfGiven, RequireAndVerifyClientCert
//!   client_ca_file: ca.crt         # needed by the two Verify… types
//!   min_version: TLS12             # TLS12 (default) or TLS13
//!   max_version: TLS13
//! http_server_config:
//!   headers:
//!     X-Frame-Options: deny
//! basic_auth_users:
//!   alice: $2y$10$…                # bcrypt hash
//! ```
//!
//! Unknown keys are errors (exporter-toolkit's `cipher_suites`, `curve_preferences` and
//! `prefer_server_cipher_suites` are not supported: rustls picks safe ones).
//! [`WebConfigWatcher`] re-reads the file (and the certificate files) when their modification
//! time or size changes, checking at most once a second; a broken new version is logged and the
//! previous one kept.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;

/// The parsed file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    /// User name → bcrypt hash.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
}

/// `client_auth_type`, as Go's crypto/tls names them.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    TLS12,
    TLS13,
}

/// `http_server_config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Headers added to every response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Accepted for compatibility; this server speaks HTTP/1.1 only.
    #[serde(default)]
    pub http2: Option<bool>,
}

/// A web-config file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("web config {}: {message}", path.display())]
pub struct WebConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl WebConfigError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A loaded and checked web config, ready to serve with.
pub struct ActiveWebConfig {
    pub config: WebConfig,
    /// Present when `tls_server_config` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Response headers, parsed.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    auth_cache: Mutex<HashMap<u64, bool>>,
    cache_key: std::collections::hash_map::RandomState,
    /// Hash of a random password with the users' cost: unknown users are checked against it so
    /// that they take as long as known ones. Made on first use (bcrypt is slow).
    dummy_hash: OnceLock<String>,
}

impl std::fmt::Debug for ActiveWebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveWebConfig")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// How many verified (user, password) pairs are remembered before the cache is emptied.
const AUTH_CACHE_CAP: usize = 1024;

impl ActiveWebConfig {
    /// No TLS, no authentication.
    pub fn open() -> Self {
        Self::build(WebConfig::default(), Vec::new(), None)
    }

    fn build(
        config: WebConfig,
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        Self {
            config,
            tls,
            headers,
            auth_cache: Mutex::new(HashMap::new()),
            cache_key: std::collections::hash_map::RandomState::new(),
            dummy_hash: OnceLock::new(),
        }
    }

    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            let cost = self
                .config
                .basic_auth_users
                .values()
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            let mut h = self.cache_key.build_hasher();
            h.write_u8(0);
            let password = format!("{:x}", h.finish());
            // hash() fails only for a cost out of range, which parsed hashes cannot have; the
            // fallback is exporter-toolkit's dummy hash (cost 10).
            bcrypt::hash(password, cost).unwrap_or_else(|_| {
                "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DSmrlqz.BHtozxBaUO8wG".to_string()
            })
        })
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn requires_auth(&self) -> bool {
        !self.config.basic_auth_users.is_empty()
    }

    /// Checks an `Authorization` header value. Slow (bcrypt) on a cache miss: call it from a
    /// blocking thread. Always true when no users are configured.
    pub fn authorize(&self, authorization: Option<&[u8]>) -> bool {
        if !self.requires_auth() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let known = self.config.basic_auth_users.get(&user);
        let hash = known
            .map(String::as_str)
            .unwrap_or_else(|| self.dummy_hash());
        // Keyed by a secret-keyed hash of user, stored hash and password, so the cache holds no
        // password and a changed hash misses.
        let key = {
            let mut h = self.cache_key.build_hasher();
            for part in [user.as_bytes(), hash.as_bytes(), password.as_bytes()] {
                h.write_usize(part.len());
                h.write(part);
            }
            h.finish()
        };
        if let Some(&ok) = self
            .auth_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
            .as_ref()
        {
            return ok && known.is_some();
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if let Ok(mut cache) = self.auth_cache.lock() {
            if cache.len() >= AUTH_CACHE_CAP {
                cache.clear();
            }
            cache.insert(key, ok);
        }
        ok && known.is_some()
    }
}

/// Parses `Basic base64(user:password)`.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Reads and checks a web-config file: YAML, certificate and key, CA, headers, bcrypt hashes.
pub fn load(path: &Path) -> Result<ActiveWebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WebConfigError::new(path, format!("reading: {e}")))?;
    // An empty file means "no TLS, no auth", as in exporter-toolkit.
    let config: WebConfig = if text.trim().is_empty() {
        WebConfig::default()
    } else {
        crate::config::parse_yaml(path, &text)
            .map_err(|e| WebConfigError::new(path, e.to_string_without_file()))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for (user, hash) in &config.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(WebConfigError::new(
                path,
                format!("basic_auth_users.{user}: not a bcrypt hash"),
            ));
        }
    }
    let mut headers = Vec::new();
    if let Some(h) = &config.http_server_config {
        for (name, value) in &h.headers {
            let n = http::HeaderName::try_from(name.as_str()).map_err(|e| {
                WebConfigError::new(path, format!("http_server_config.headers.{name}: {e}"))
            })?;
            let v = http::HeaderValue::try_from(value.as_str()).map_err(|e| {
                WebConfigError::new(path, format!("http_server_config.headers.{name}: {e}"))
            })?;
            headers.push((n, v));
        }
    }
    let tls = match &config.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(build_tls(t, base).map_err(|m| {
            WebConfigError::new(path, format!("tls_server_config: {m}"))
        })?)),
    };
    Ok(ActiveWebConfig::build(config, headers, tls))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_tls(t: &TlsServerConfig, base: &Path) -> Result<rustls::ServerConfig, String> {
    let cert_path = resolve(base, &t.cert_file);
    let key_path = resolve(base, &t.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("cert_file {}: no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("key_file {}: {e}", key_path.display()))?;

    let min = t.min_version.unwrap_or(TlsVersion::TLS12);
    let max = t.max_version.unwrap_or(TlsVersion::TLS13);
    if min > max {
        return Err("min_version is above max_version".into());
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();

    let roots = match &t.client_ca_file {
        None => None,
        Some(ca) => {
            let ca = resolve(base, ca);
            let mut store = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "client_ca_file {}: no usable certificate",
                    ca.display()
                ));
            }
            Some(Arc::new(store))
        }
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match t.client_auth_type {
        ClientAuthType::NoClientCert => None,
        ClientAuthType::RequestClientCert => Some(Arc::new(AnyClientCert { mandatory: false })),
        ClientAuthType::RequireAnyClientCert => Some(Arc::new(AnyClientCert { mandatory: true })),
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            let roots = roots
                .ok_or_else(|| format!("client_ca_file is required by {:?}", t.client_auth_type))?;
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if t.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
                b = b.allow_unauthenticated();
            }
            Some(b.build().map_err(|e| e.to_string())?)
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert_file/key_file: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Go's RequestClientCert / RequireAnyClientCert: a client certificate is asked for (and with
/// `mandatory` required) but not checked against any CA; the handshake signature still proves the
/// client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Serves the current web config, re-reading the file when it changes.
pub struct WebConfigWatcher {
    path: Option<PathBuf>,
    state: Mutex<WatchState>,
}

struct WatchState {
    checked_at: Instant,
    stamps: Vec<Option<(SystemTime, u64)>>,
    active: Arc<ActiveWebConfig>,
}

/// How often the files' modification times are looked at.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

impl WebConfigWatcher {
    /// Loads `path` (no file: no TLS, no auth). A broken file is an error here, at start-up.
    pub fn new(path: Option<&Path>) -> Result<Self, WebConfigError> {
        let (active, stamps) = match path {
            None => (ActiveWebConfig::open(), Vec::new()),
            Some(p) => {
                let active = load(p)?;
                let stamps = stamps(p, &active.config);
                (active, stamps)
            }
        };
        Ok(Self {
            path: path.map(Path::to_path_buf),
            state: Mutex::new(WatchState {
                checked_at: Instant::now(),
                stamps,
                active: Arc::new(active),
            }),
        })
    }

    /// The config to use now. Re-reads the files if they changed (looked at once a second at
    /// most); when the new version is broken, logs why and keeps the previous one.
    pub fn current(&self) -> Arc<ActiveWebConfig> {
        let Some(path) = &self.path else {
            return self.lock().active.clone();
        };
        let mut st = self.lock();
        if st.checked_at.elapsed() < RECHECK_EVERY {
            return st.active.clone();
        }
        st.checked_at = Instant::now();
        let now = stamps(path, &st.active.config);
        if now == st.stamps {
            return st.active.clone();
        }
        match load(path) {
            Ok(active) => {
                st.stamps = stamps(path, &active.config);
                st.active = Arc::new(active);
                tracing::info!(file = %path.display(), "web config reloaded");
            }
            Err(e) => {
                // Remember the broken version's stamps so it is reported once, not every second.
                st.stamps = now;
                tracing::error!(error = %e, "web config reload failed; keeping the previous one");
            }
        }
        st.active.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        // A panic while holding the lock leaves valid state behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Modification time and size of the config file and the files it names.
fn stamps(path: &Path, config: &WebConfig) -> Vec<Option<(SystemTime, u64)>> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![path.to_path_buf()];
    if let Some(t) = &config.tls_server_config {
        files.push(resolve(base, &t.cert_file));
        files.push(resolve(base, &t.key_file));
        if let Some(ca) = &t.client_ca_file {
            files.push(resolve(base, ca));
        }
    }
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(
            parse_basic(b"Basic YWxpY2U6c2VjOnJldA=="),
            Some(("alice".into(), "sec:ret".into()))
        );
        assert_eq!(parse_basic(b"Bearer x"), None);
    }

    #[test]
    fn authorize_known_unknown_and_cached() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let mut cfg = WebConfig::default();
        cfg.basic_auth_users.insert("alice".into(), hash);
        let a = ActiveWebConfig::build(cfg, Vec::new(), None);
        let header = |s: &str| format!("Basic {}", b64(s));
        assert!(a.authorize(Some(header("alice:secret").as_bytes())));
        // Second time comes from the cache and must give the same answer.
        assert!(a.authorize(Some(header("alice:secret").as_bytes())));
        assert!(!a.authorize(Some(header("alice:wrong").as_bytes())));
        assert!(!a.authorize(Some(header("bob:secret").as_bytes())));
        assert!(!a.authorize(None));
        assert!(ActiveWebConfig::open().authorize(None));
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }
}
