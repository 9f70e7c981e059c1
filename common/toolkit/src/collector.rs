//! Host collectors (node_exporter's model): each scrape of `/metrics` calls every collector on a
//! blocking thread with a fresh registry; the toolkit adds per-collector success and duration.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;

/// One source of host metrics, e.g. process groups or filesystems.
///
/// `collect` runs on a blocking thread (`spawn_blocking`) on every scrape, possibly at the same
/// time as other collectors and as another scrape's call, so keep shared state behind a lock.
/// A call still running at the scrape deadline (Prometheus' scrape timeout minus the offset set
/// by [`crate::server::Exporter::scrape_timeout_offset`]) is reported as failed; bound your own
/// waits (e.g. a stat on a dead NFS mount) so calls do not pile up.
/// Metrics registered in `registry` are exported only when `collect` returns `Ok`; on `Err` the
/// toolkit logs the error and exports `seattle_scrape_collector_success{collector} 0`.
/// Metric names must not repeat across collectors (the scrape would fail to parse).
pub trait Collector: Send + Sync + 'static {
    /// Bounded snake_case name, the `collector` label value.
    fn name(&self) -> &'static str;

    /// Registers this scrape's metrics in `registry` (which starts empty).
    fn collect(&self, registry: &mut Registry) -> anyhow::Result<()>;
}

/// Outcome of one collector on one scrape.
#[derive(Debug)]
pub(crate) struct Collected {
    pub name: &'static str,
    pub success: bool,
    pub duration_seconds: f64,
    /// OpenMetrics text of the collector's families, without `# EOF`; empty on failure.
    pub body: String,
}

/// Runs every collector concurrently on blocking threads; results keep the collectors' order.
/// A collector still running at `deadline` is reported as failed (its thread cannot be stopped
/// and finishes in the background), so a hung collector never hangs the scrape.
pub(crate) async fn collect_all(
    collectors: &[Arc<dyn Collector>],
    deadline: tokio::time::Instant,
) -> Vec<Collected> {
    let start = Instant::now();
    let tasks: Vec<_> = collectors
        .iter()
        .map(|c| {
            let c = Arc::clone(c);
            tokio::task::spawn_blocking(move || run_one(c.as_ref()))
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (task, c) in tasks.into_iter().zip(collectors) {
        let failed = |duration_seconds| Collected {
            name: c.name(),
            success: false,
            duration_seconds,
            body: String::new(),
        };
        out.push(match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(collected)) => collected,
            Ok(Err(e)) => {
                // A panicking collector must not take the scrape down with it.
                tracing::error!(collector = c.name(), error = %e, "collector panicked");
                failed(0.0)
            }
            Err(_) => {
                tracing::error!(
                    collector = c.name(),
                    "collector did not finish before the scrape deadline"
                );
                failed(start.elapsed().as_secs_f64())
            }
        });
    }
    out
}

fn run_one(c: &dyn Collector) -> Collected {
    let start = Instant::now();
    let mut registry = Registry::default();
    let result = c.collect(&mut registry);
    let duration_seconds = start.elapsed().as_secs_f64();
    let mut body = String::new();
    let success = match result {
        Ok(()) => match prometheus_client::encoding::text::encode_registry(&mut body, &registry) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(collector = c.name(), error = %e, "encoding collector metrics failed");
                body.clear();
                false
            }
        },
        Err(e) => {
            tracing::error!(
                collector = c.name(),
                error = format!("{e:#}"),
                "collector failed"
            );
            false
        }
    };
    Collected {
        name: c.name(),
        success,
        duration_seconds,
        body,
    }
}
