//! `local_vessels`: each vessel's status, as the node manager's status monitor sees it: the
//! newest `<prefix>-<Status>-<unixtime>` file of the vessel (`statusstorage.py`), `Started`
//! older than [`STALE_AFTER_SECONDS`] being `Stale` (`nmstatusmonitor.py`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;

use super::install;

/// A `Started` status not refreshed for this long means the sandbox stopped reporting.
pub const STALE_AFTER_SECONDS: f64 = 15.0;

/// A status file name split into (prefix, status, unix time); None when it is not one.
pub fn parse_status_file_name(name: &str) -> Option<(&str, &str, f64)> {
    let (rest, time) = name.rsplit_once('-')?;
    let (prefix, status) = rest.rsplit_once('-')?;
    let time: f64 = time.parse().ok().filter(|t: &f64| t.is_finite())?;
    if prefix.is_empty() || status.is_empty() {
        return None;
    }
    Some((prefix, status, time))
}

/// The label for a status written at `written` (unix seconds), seen at `now`: one of the
/// `nodemanager` probe's [`STATUSES`](crate::prober::nodemanager::STATUSES).
pub fn status_label(status: &str, written: Option<f64>, now: f64) -> &'static str {
    match status {
        "Fresh" => "fresh",
        "Started" if written.is_some_and(|w| now - w > STALE_AFTER_SECONDS) => "stale",
        "Started" => "started",
        "Stopped" => "stopped",
        "Terminated" => "terminated",
        "ThreadErr" => "thread_err",
        "Stale" => "stale",
        _ => "other",
    }
}

pub struct VesselsCollector {
    dir: PathBuf,
    /// Held for a whole scrape: one stuck on a hung disk makes the next ones fail at once
    /// instead of piling up behind it.
    busy: Mutex<()>,
}

impl VesselsCollector {
    pub fn new(install_dir: &Path) -> Self {
        VesselsCollector {
            dir: install_dir.to_path_buf(),
            busy: Mutex::new(()),
        }
    }

    /// (vessel, status label) for every vessel of `vesseldict`, seen at `now` (unix seconds).
    pub fn scrape_at(&self, now: f64) -> anyhow::Result<Vec<(String, &'static str)>> {
        let Ok(_busy) = self.busy.try_lock() else {
            anyhow::bail!(
                "the previous scrape of {} is still running",
                self.dir.display()
            );
        };
        install::check_nodeman_cfg(&self.dir)?;
        let vessels = install::read_vesseldict(&self.dir)?;
        let wanted: HashMap<&str, usize> = vessels
            .iter()
            .enumerate()
            .map(|(i, v)| (v.status_prefix.as_str(), i))
            .collect();
        // Newest status file per vessel: (status, time).
        let mut newest: Vec<Option<(String, f64)>> = vec![None; vessels.len()];
        for name in install::list_dir(&self.dir)? {
            let Some((prefix, status, time)) = parse_status_file_name(&name) else {
                continue;
            };
            let Some(&i) = wanted.get(prefix) else {
                continue;
            };
            if newest[i].as_ref().is_none_or(|(_, t)| time > *t) {
                newest[i] = Some((status.to_string(), time));
            }
        }
        Ok(vessels
            .iter()
            .zip(newest)
            .map(|(v, file)| {
                let label = match (&file, &v.status) {
                    (Some((status, time)), _) => status_label(status, Some(*time), now),
                    // No status file yet: what the node manager persisted.
                    (None, Some(status)) => status_label(status, None, now),
                    (None, None) => "other",
                };
                (v.name.clone(), label)
            })
            .collect())
    }
}

/// Writes `seattle_local_vessel_status` (one series per vessel).
pub fn encode(vessels: &[(String, &'static str)], registry: &mut Registry) {
    let status = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (vessel, label) in vessels {
        status
            .get_or_create(&vec![
                ("vessel", vessel.clone()),
                ("status", (*label).to_string()),
            ])
            .set(1);
    }
    registry.register(
        "seattle_local_vessel_status",
        "Status of the vessel from its newest status file (Started older than 15 s is stale)",
        status,
    );
}

impl Collector for VesselsCollector {
    fn name(&self) -> &'static str {
        "local_vessels"
    }

    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        encode(&self.scrape_at(now)?, registry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_names() {
        assert_eq!(
            parse_status_file_name("v1.status-Started-1700000000.25"),
            Some(("v1.status", "Started", 1_700_000_000.25))
        );
        assert_eq!(
            parse_status_file_name("v12.status-ThreadErr-1700000000"),
            Some(("v12.status", "ThreadErr", 1_700_000_000.0))
        );
        for bad in [
            "v1.status",
            "v1.status-Started",
            "v1.status-Started-soon",
            "v1.status--1",
            "-Started-1",
            "v1.status-Started-inf",
        ] {
            assert_eq!(parse_status_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn started_goes_stale_after_fifteen_seconds() {
        assert_eq!(status_label("Started", Some(100.0), 110.0), "started");
        assert_eq!(status_label("Started", Some(100.0), 115.5), "stale");
        assert_eq!(status_label("Started", None, 1e9), "started");
        assert_eq!(status_label("Stopped", Some(0.0), 1e9), "stopped");
        assert_eq!(status_label("ThreadErr", Some(0.0), 0.0), "thread_err");
        assert_eq!(status_label("Exploded", Some(0.0), 0.0), "other");
        for s in [
            "Fresh",
            "Started",
            "Stopped",
            "Terminated",
            "ThreadErr",
            "Stale",
            "x",
        ] {
            assert!(crate::prober::nodemanager::STATUSES.contains(&status_label(
                s,
                Some(0.0),
                100.0
            )));
        }
    }
}
