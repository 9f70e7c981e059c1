//! The host collectors, as the toolkit's [`Collector`]s.

pub mod filesystem;
pub mod process;

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;

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
