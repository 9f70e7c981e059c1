//! Host collector `install`: how fresh a node's install is (SEATTLE.md E.3), read-only.
//!
//! Compares `<install.dir>/metainfo` and the files it lists with the site's metainfo, and looks
//! for a running `python softwareupdater.py`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_protocol::keys::PublicKey;
use seattle_protocol::metainfo::{FileEntry, MAX_METAINFO_LEN};
use sha1::{Digest, Sha1};

use crate::http_client::{Fetch, HttpClient, expect_2xx};
use crate::metainfo_check::{Analysis, VerdictCache, key_digest, parse_unverified};
use crate::prober::metainfo_url;

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Processes looked at in `/proc` at most, and bytes of a command line read.
const MAX_PROCESSES: usize = 100_000;
const MAX_CMDLINE: u64 = 4096;
/// Largest local file hashed (Seattle's files are a few hundred KB).
const MAX_LOCAL_FILE: u64 = 64 << 20;
/// Listed files compared at most.
const MAX_FILES: usize = 10_000;

pub struct InstallCollector {
    dir: PathBuf,
    site_url: String,
    http: Arc<HttpClient>,
    trusted: Arc<PublicKey>,
    trusted_digest: [u8; 20],
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    proc_root: PathBuf,
    verdicts: VerdictCache,
    /// path → (size, mtime, sha1): local files are rehashed only when they change.
    hashes: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
}

impl InstallCollector {
    /// Must be called inside the tokio runtime that will run the site fetch.
    pub fn new(
        dir: PathBuf,
        site_url: String,
        http: Arc<HttpClient>,
        trusted: Arc<PublicKey>,
        timeout: Duration,
    ) -> Self {
        Self {
            dir,
            site_url,
            http,
            trusted_digest: key_digest(&trusted),
            trusted,
            timeout,
            runtime: tokio::runtime::Handle::current(),
            proc_root: PathBuf::from("/proc"),
            verdicts: VerdictCache::default(),
            hashes: Mutex::new(HashMap::new()),
        }
    }

    /// Looks for processes under another `/proc` (tests).
    pub fn with_proc_root(mut self, root: PathBuf) -> Self {
        self.proc_root = root;
        self
    }

    /// The site's metainfo, verified; `None` (and why, logged) when it cannot be had.
    fn site_metainfo(&self) -> Option<Arc<Analysis>> {
        let url = metainfo_url(&self.site_url);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let http = self.http.clone();
        let fetched = self.runtime.block_on(async move {
            let resp = http.fetch(&Fetch::get(&url), deadline, None).await?;
            expect_2xx(&resp)?;
            Ok::<_, seattle_exporter_toolkit::probe::ProbeFailure>(resp.body)
        });
        let body = match fetched {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(site = %self.site_url, reason = e.reason, detail = %e.detail, "site metainfo not fetched");
                return None;
            }
        };
        match self
            .verdicts
            .analyze_blocking(&body, &self.trusted, self.trusted_digest)
        {
            Ok(a) if a.signature_valid && !a.expired(crate::prober::unix_now()) => Some(a),
            Ok(_) => {
                tracing::warn!(site = %self.site_url, "site metainfo not trusted or expired");
                None
            }
            Err(e) => {
                tracing::warn!(site = %self.site_url, error = %e, "site metainfo does not parse");
                None
            }
        }
    }

    fn local_metainfo(&self) -> Option<Analysis> {
        let path = self.dir.join("metainfo");
        let mut body = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_METAINFO_LEN as u64 + 1).read_to_end(&mut body));
        if let Err(e) = read {
            tracing::warn!(path = %path.display(), error = %e, "local metainfo not read");
            return None;
        }
        match parse_unverified(&body) {
            Ok((a, _)) => Some(a),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "local metainfo does not parse");
                None
            }
        }
    }

    /// Is the local copy of `f` missing or different?
    fn outdated(&self, f: &FileEntry) -> bool {
        // Paths come from the site: never leave the install directory.
        let rel = Path::new(&f.path);
        if f.path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return true;
        }
        let path = self.dir.join(rel);
        let Ok(meta) = std::fs::metadata(&path) else {
            return true;
        };
        if !meta.is_file() || meta.len() != f.size || meta.len() > MAX_LOCAL_FILE {
            return true;
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let mut hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((len, t, sha)) = hashes.get(&path)
            && *len == meta.len()
            && *t == mtime
        {
            return *sha != f.sha1;
        }
        let mut data = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_LOCAL_FILE).read_to_end(&mut data));
        if read.is_err() {
            return true;
        }
        let sha = hex::encode(Sha1::digest(&data));
        let differs = sha != f.sha1;
        if hashes.len() > MAX_FILES {
            hashes.clear();
        }
        hashes.insert(path, (meta.len(), mtime, sha));
        differs
    }
}

/// Is some `python … softwareupdater.py` running? Reads at most [`MAX_PROCESSES`] command lines.
pub fn softwareupdater_running(proc_root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return false;
    };
    entries
        .take(MAX_PROCESSES)
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .any(|e| {
            let mut cmd = Vec::new();
            std::fs::File::open(e.path().join("cmdline"))
                .and_then(|f| f.take(MAX_CMDLINE).read_to_end(&mut cmd))
                .is_ok()
                && is_softwareupdater(&cmd)
        })
}

fn is_softwareupdater(cmdline: &[u8]) -> bool {
    let base =
        |a: &[u8]| -> Vec<u8> { a.rsplit(|&b| b == b'/').next().unwrap_or_default().to_vec() };
    let mut args = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty());
    let Some(argv0) = args.next() else {
        return false;
    };
    base(argv0).starts_with(b"python") && args.any(|a| base(a) == b"softwareupdater.py")
}

impl Collector for InstallCollector {
    fn name(&self) -> &'static str {
        "install"
    }

    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let gauge = |registry: &mut Registry, name: &str, help: &str, v: i64| {
            let g = Gauge::<i64>::default();
            g.set(v);
            registry.register(name, help, g);
        };
        let seconds = |registry: &mut Registry, name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                let g = F64Gauge::default();
                g.set(v);
                registry.register(name, help, g);
            }
        };
        let local = self.local_metainfo();
        let site = self.site_metainfo();
        gauge(
            registry,
            "seattle_install_site_reachable",
            "1 if the site's metainfo was fetched and verified on this scrape",
            i64::from(site.is_some()),
        );
        seconds(
            registry,
            "seattle_install_local_metainfo_signed_timestamp_seconds",
            "Signing time of the local metainfo",
            local.as_ref().and_then(|l| l.timestamp),
        );
        seconds(
            registry,
            "seattle_install_site_metainfo_signed_timestamp_seconds",
            "Signing time of the site's metainfo",
            site.as_ref().and_then(|s| s.timestamp),
        );
        // Without the site's metainfo there is nothing to compare with: both stay absent.
        if let Some(site) = &site {
            let outdated = site
                .files
                .iter()
                .take(MAX_FILES)
                .filter(|f| self.outdated(f))
                .count();
            // The updater's own test: same signing time means "no update is needed".
            let same_metainfo = local
                .as_ref()
                .is_some_and(|l| l.timestamp.is_some() && l.timestamp == site.timestamp);
            gauge(
                registry,
                "seattle_install_outdated_files",
                "Listed files missing locally or with another SHA-1",
                outdated as i64,
            );
            gauge(
                registry,
                "seattle_install_up_to_date",
                "1 if every listed file matches the site's metainfo and the local metainfo is the site's",
                i64::from(outdated == 0 && same_metainfo),
            );
        }
        gauge(
            registry,
            "seattle_install_softwareupdater_running",
            "1 if python softwareupdater.py runs",
            i64::from(softwareupdater_running(&self.proc_root)),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_updater_command_line() {
        assert!(is_softwareupdater(b"python\0softwareupdater.py\0"));
        assert!(is_softwareupdater(
            b"/usr/bin/python2.7\0/home/s/seattle_repy/softwareupdater.py\0"
        ));
        assert!(!is_softwareupdater(b"python\0nmmain.py\0"));
        assert!(!is_softwareupdater(b"vim\0softwareupdater.py\0"));
        assert!(!is_softwareupdater(b""));
    }

    #[test]
    fn proc_scan_finds_it() {
        let root = tempfile::tempdir().unwrap();
        for (pid, cmd) in [
            ("1", &b"init\0"[..]),
            ("42", b"python\0softwareupdater.py\0"),
        ] {
            std::fs::create_dir(root.path().join(pid)).unwrap();
            std::fs::write(root.path().join(pid).join("cmdline"), cmd).unwrap();
        }
        assert!(softwareupdater_running(root.path()));
        std::fs::remove_dir_all(root.path().join("42")).unwrap();
        assert!(!softwareupdater_running(root.path()));
    }
}
