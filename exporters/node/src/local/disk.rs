//! `local_disk`: bytes used by each vessel's directory against its `diskused` quota
//! (`resource.vN`), and the free space of the install directory's filesystem.
//!
//! Vessels are found by their resource files rather than `vesseldict`, so a damaged
//! `vesseldict` does not hide a full disk. Each vessel directory is walked without following
//! links and stops after a number of entries ([`DEFAULT_ENTRY_CAP`]); the used bytes are then
//! a lower bound and `seattle_local_vessel_disk_walk_capped` says so.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_host::collector::filesystem::statvfs;
use seattle_protocol::nodemanager::Resources;

use super::install;

/// Entries visited per vessel directory. Repy gives vessels a flat directory; thousands of
/// files already mean something is wrong, and the walk must stay well within a scrape.
pub const DEFAULT_ENTRY_CAP: usize = 10_000;

/// Result of walking one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Walk {
    /// Summed lengths of the regular files found (what repy charges against `diskused`).
    pub bytes: u64,
    /// Entries looked at.
    pub entries: usize,
    /// The walk stopped at the cap: `bytes` is a lower bound.
    pub capped: bool,
}

/// Sums the regular files under `dir`, visiting at most `cap` entries, following no links.
/// A missing directory is empty; unreadable subdirectories (removed meanwhile) are skipped.
pub fn walk(dir: &Path, cap: usize) -> std::io::Result<Walk> {
    let mut out = Walk::default();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    let mut top = true;
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if top && e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) if top => return Err(e),
            Err(_) => continue,
        };
        top = false;
        for entry in entries {
            if out.entries >= cap {
                out.capped = true;
                return Ok(out);
            }
            out.entries += 1;
            let Ok(entry) = entry else { continue };
            // DirEntry::metadata does not follow symlinks.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                out.bytes = out.bytes.saturating_add(meta.len());
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct VesselDisk {
    pub vessel: String,
    pub used: Walk,
    /// `resource diskused`; None when the file has no such line.
    pub limit_bytes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskSnapshot {
    pub vessels: Vec<VesselDisk>,
    pub filesystem_size_bytes: u64,
    pub filesystem_avail_bytes: u64,
}

pub struct DiskCollector {
    dir: PathBuf,
    entry_cap: usize,
    /// Held for a whole scrape: a scrape that outlives its deadline (a hung disk) makes the
    /// next ones fail at once instead of piling walks up behind it.
    busy: Mutex<()>,
}

impl DiskCollector {
    pub fn new(install_dir: &Path) -> Self {
        Self::with_entry_cap(install_dir, DEFAULT_ENTRY_CAP)
    }

    pub fn with_entry_cap(install_dir: &Path, entry_cap: usize) -> Self {
        DiskCollector {
            dir: install_dir.to_path_buf(),
            entry_cap,
            busy: Mutex::new(()),
        }
    }

    pub fn scrape(&self) -> anyhow::Result<DiskSnapshot> {
        let Ok(_busy) = self.busy.try_lock() else {
            anyhow::bail!(
                "the previous scrape of {} is still running",
                self.dir.display()
            );
        };
        let fs = statvfs(&self.dir).with_context(|| format!("statvfs {}", self.dir.display()))?;
        let mut numbered: Vec<(u32, String)> = install::list_dir(&self.dir)?
            .into_iter()
            .filter_map(|name| {
                let vessel = name.strip_prefix("resource.")?;
                Some((install::vessel_number(vessel)?, vessel.to_string()))
            })
            .collect();
        numbered.sort();
        numbered.truncate(install::MAX_VESSELS);
        let mut vessels = Vec::with_capacity(numbered.len());
        for (_, vessel) in numbered {
            let path = self.dir.join(format!("resource.{vessel}"));
            let text = install::read_capped(&path, install::RESOURCE_FILE_CAP)?;
            let resources = Resources::parse(&text)
                .with_context(|| format!("{} does not parse", path.display()))?;
            let dir = self.dir.join(&vessel);
            let used = walk(&dir, self.entry_cap)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            vessels.push(VesselDisk {
                vessel,
                used,
                limit_bytes: resources.get("diskused"),
            });
        }
        Ok(DiskSnapshot {
            vessels,
            filesystem_size_bytes: fs.size_bytes,
            filesystem_avail_bytes: fs.avail_bytes,
        })
    }
}

type Labels = Vec<(&'static str, String)>;

pub fn encode(s: &DiskSnapshot, registry: &mut Registry) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let used = Family::<Labels, Gauge>::default();
    let capped = Family::<Labels, Gauge>::default();
    let limit = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for v in &s.vessels {
        let l = vec![("vessel", v.vessel.clone())];
        used.get_or_create(&l).set(clamp(v.used.bytes));
        capped.get_or_create(&l).set(i64::from(v.used.capped));
        if let Some(b) = v.limit_bytes {
            limit.get_or_create(&l).set(b);
        }
    }
    registry.register(
        "seattle_local_vessel_disk_used_bytes",
        "Bytes of the files in the vessel's directory (a lower bound when the walk was capped)",
        used,
    );
    registry.register(
        "seattle_local_vessel_disk_limit_bytes",
        "The vessel's resource diskused",
        limit,
    );
    registry.register(
        "seattle_local_vessel_disk_walk_capped",
        "1 if the walk of the vessel's directory stopped at its entry cap",
        capped,
    );
    let avail = Gauge::<i64>::default();
    avail.set(clamp(s.filesystem_avail_bytes));
    registry.register(
        "seattle_local_filesystem_avail_bytes",
        "Bytes available to non-root users on the install directory's filesystem",
        avail,
    );
    let size = Gauge::<i64>::default();
    size.set(clamp(s.filesystem_size_bytes));
    registry.register(
        "seattle_local_filesystem_size_bytes",
        "Size of the install directory's filesystem",
        size,
    );
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "local_disk"
    }

    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        encode(&self.scrape()?, registry);
        Ok(())
    }
}
