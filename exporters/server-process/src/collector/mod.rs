//! The host collectors of this exporter, registered in one place.

pub mod filesystem;
pub mod process;

use prometheus_client::registry::Registry;

use crate::config::Config;

/// A host collector: called once per scrape with a fresh registry.
pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()>;
}

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

/// Every collector for a configuration.
pub fn build(config: &Config) -> anyhow::Result<Vec<Box<dyn Collector>>> {
    Ok(vec![
        Box::new(process::ProcessCollector::new(
            config.process_groups.clone(),
        )?),
        Box::new(filesystem::FilesystemCollector::new(
            config.filesystems.clone(),
        )),
    ])
}
