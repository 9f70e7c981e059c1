//! The host collectors of this exporter, registered in one place.

pub mod filesystem;
pub mod process;

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_exporter_toolkit::server::Exporter;

use crate::config::Config;

impl Collector for process::ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        process::ProcessCollector::collect(self, registry)
    }
}

impl Collector for filesystem::FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        filesystem::FilesystemCollector::collect(self, registry)
    }
}

/// Adds every collector of this exporter, for a configuration.
pub fn register(exporter: Exporter, config: &Config) -> anyhow::Result<Exporter> {
    let processes = process::ProcessCollector::new(config.process_groups.clone())?;
    let filesystems = filesystem::FilesystemCollector::new(config.filesystems.clone());
    Ok(exporter.collector(processes).collector(filesystems))
}
