//! `local_processes`: whether the node manager (`nmmain.py`) and the software updater
//! (`softwareupdater.py`) run, from seattle-host's process collector with the `node` profile.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_host::collector::process::ProcessCollector;
use seattle_host::groups::profile;

/// The `node` profile's groups and the `process` label each is exported under.
const PROCESSES: &[(&str, &str)] = &[
    ("nmmain", "nmmain.py"),
    ("softwareupdater", "softwareupdater.py"),
];

pub struct ProcessesCollector {
    inner: ProcessCollector,
}

impl ProcessesCollector {
    pub fn new() -> anyhow::Result<Self> {
        let groups = profile("node").ok_or_else(|| anyhow::anyhow!("no built-in node profile"))?;
        Ok(ProcessesCollector {
            inner: ProcessCollector::new(groups)?,
        })
    }

    /// (`process` label, running) for both scripts, in a fixed order.
    pub fn scrape(&self) -> anyhow::Result<Vec<(&'static str, bool)>> {
        let groups = self.inner.scrape()?;
        Ok(PROCESSES
            .iter()
            .map(|(group, label)| {
                let running = groups.iter().any(|g| g.name == *group && g.processes > 0);
                (*label, running)
            })
            .collect())
    }
}

pub fn encode(processes: &[(&'static str, bool)], registry: &mut Registry) {
    let running = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (label, up) in processes {
        running
            .get_or_create(&vec![("process", (*label).to_string())])
            .set(i64::from(*up));
    }
    registry.register(
        "seattle_local_process_running",
        "1 if a process runs the script",
        running,
    );
}

impl Collector for ProcessesCollector {
    fn name(&self) -> &'static str {
        "local_processes"
    }

    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        encode(&self.scrape()?, registry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_names_a_group_of_the_node_profile() {
        let groups = profile("node").unwrap();
        assert_eq!(groups.len(), PROCESSES.len());
        for (group, _) in PROCESSES {
            assert!(groups.iter().any(|g| g.name == *group), "{group}");
        }
    }
}
