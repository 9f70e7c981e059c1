//! The host collectors of this exporter (from seattle-host), registered in one place.

use seattle_exporter_toolkit::server::Exporter;
use seattle_host::collector::{filesystem, process};

use crate::config::Config;

/// Adds every collector of this exporter, for a configuration.
pub fn register(exporter: Exporter, config: &Config) -> anyhow::Result<Exporter> {
    let processes = process::ProcessCollector::new(config.process_groups.clone())?;
    let filesystems = filesystem::FilesystemCollector::new(config.filesystems.clone());
    Ok(exporter.collector(processes).collector(filesystems))
}
