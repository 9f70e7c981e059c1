//! Node-local mode (`--install.dir=…/seattle_repy`): host collectors that run on a Seattle node
//! and read its install directory (SEATTLE.md B.9) instead of asking the node manager over the
//! network. Metrics: the "Node-local mode" section of docs/metrics.md.
//!
//! * [`vessels`] (`local_vessels`): each vessel's status from `vesseldict` and its status files.
//! * [`disk`] (`local_disk`): disk used per vessel against its `diskused` quota, free disk.
//! * [`processes`] (`local_processes`): whether `nmmain.py` and `softwareupdater.py` run
//!   (seattle-host's process collector with the `node` profile).
//! * [`install`]: reading the directory (bounded listing, `vesseldict`, `nodeman.cfg`).
//! * [`pyliteral`]: the Python literal subset `persist.py` writes.

pub mod disk;
pub mod install;
pub mod processes;
pub mod pyliteral;
pub mod vessels;

use std::path::Path;

use seattle_exporter_toolkit::server::Exporter;

/// Adds the node-local collectors for an install directory.
pub fn register(exporter: Exporter, install_dir: &Path) -> anyhow::Result<Exporter> {
    if !install_dir.is_dir() {
        anyhow::bail!("--install.dir {} is not a directory", install_dir.display());
    }
    Ok(exporter
        .collector(vessels::VesselsCollector::new(install_dir))
        .collector(disk::DiskCollector::new(install_dir))
        .collector(processes::ProcessesCollector::new()?))
}
