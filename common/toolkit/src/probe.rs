//! Multi-target probes (blackbox_exporter's model): `/probe?target=…&module=…`.
//!
//! The exporter implements [`Prober`] and hands the toolkit a table of modules (name → the
//! exporter's own module config). Per request the toolkit makes a fresh registry, computes the
//! time budget from `X-Prometheus-Scrape-Timeout-Seconds` (default [`ProbeOptions::default_timeout`])
//! minus [`ProbeOptions::timeout_offset`], cancels the probe at that deadline (reason `timeout`),
//! caps probes in flight (reason `too_many_in_flight`), and adds `probe_success`,
//! `probe_duration_seconds` and, on failure, `seattle_probe_failure_info{reason}`.
//! `?debug=true` answers a plain-text log of the probe ([`ProbeContext::log`]) followed by the
//! metrics, like blackbox.
//!
//! ```
//! use futures::future::BoxFuture;
//! use prometheus_client::registry::Registry;
//! use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, ProbeOptions, Prober};
//! use seattle_exporter_toolkit::server::Exporter;
//!
//! struct TcpModule { port: u16 }
//! struct TcpProber;
//!
//! impl Prober for TcpProber {
//!     type Module = TcpModule;
//!     fn probe<'a>(
//!         &'a self,
//!         target: &'a str,
//!         module: &'a TcpModule,
//!         ctx: &'a ProbeContext,
//!         _registry: &'a mut Registry,
//!     ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
//!         Box::pin(async move {
//!             ctx.log(format_args!("connecting to {target}:{}", module.port));
//!             // Cancelled by the toolkit at ctx.deadline(); no timeout needed here.
//!             tokio::net::TcpStream::connect((target, module.port))
//!                 .await
//!                 .map_err(|e| ProbeFailure::new("connection_refused", e.to_string()))?;
//!             Ok(())
//!         })
//!     }
//! }
//!
//! let modules = [("tcp_1224".to_string(), TcpModule { port: 1224 })];
//! let _router = Exporter::new("example_exporter")
//!     .prober(TcpProber, modules, ProbeOptions::default())
//!     .router();
//! ```

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::flags::ProbeFlags;

/// Why a probe failed. `reason` becomes a label value: a short snake_case word from the prober's
/// fixed list (`timeout`, `connection_refused`, `bad_reply`, …). `detail` is only logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub reason: &'static str,
    pub detail: String,
}

impl ProbeFailure {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for ProbeFailure {}

/// Per-probe facts and the debug log.
#[derive(Debug)]
pub struct ProbeContext {
    deadline: Instant,
    target: String,
    debug: Option<Mutex<String>>,
}

impl ProbeContext {
    /// A context for calling a prober directly (tests, benchmarks).
    pub fn new(target: impl Into<String>, deadline: Instant, debug: bool) -> Self {
        Self {
            deadline,
            target: target.into(),
            debug: debug.then(|| Mutex::new(String::new())),
        }
    }

    /// When the toolkit cancels the probe. Per-step timeouts should end before it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until the deadline (zero when past).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Notes a step of the probe: logged at debug level, and shown by `?debug=true`.
    pub fn log(&self, message: impl Display) {
        tracing::debug!(probe_target = %self.target, "{message}");
        if let Some(buf) = &self.debug
            && let Ok(mut buf) = buf.lock()
        {
            let _ = writeln!(buf, "{message}");
        }
    }

    fn take_log(&self) -> String {
        self.debug
            .as_ref()
            .and_then(|b| b.lock().ok().map(|mut b| std::mem::take(&mut *b)))
            .unwrap_or_default()
    }
}

/// A kind of probe (node manager, update site, DNS …).
///
/// The future may be dropped at any await point when the deadline passes; metrics it registered
/// before that stay in the answer.
pub trait Prober: Send + Sync + 'static {
    /// The exporter's per-module settings (from its config file).
    type Module: Send + Sync + 'static;

    /// Probes `target` with `module`, registering the probe's own metrics in `registry`.
    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Self::Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>>;
}

/// Knobs of the `/probe` endpoint.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Budget when Prometheus sends no `X-Prometheus-Scrape-Timeout-Seconds` header.
    pub default_timeout: Duration,
    /// Subtracted from the budget so the answer reaches Prometheus before its own timeout.
    pub timeout_offset: Duration,
    /// Probes allowed at once; further ones answer probe_success 0, `too_many_in_flight`.
    pub max_in_flight: usize,
    /// Module used when the request has no `module` parameter; `None` makes it a 400.
    pub default_module: Option<String>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(10),
            timeout_offset: Duration::from_millis(500),
            max_in_flight: 256,
            default_module: None,
        }
    }
}

impl From<&ProbeFlags> for ProbeOptions {
    fn from(flags: &ProbeFlags) -> Self {
        Self {
            timeout_offset: flags.timeout_offset(),
            max_in_flight: flags.max_in_flight,
            ..Self::default()
        }
    }
}

/// The time budget of a scrape: Prometheus' `X-Prometheus-Scrape-Timeout-Seconds` header value
/// (or `default` when absent or unparsable) minus `offset`. When the offset would eat the whole
/// budget it is ignored rather than answering at once.
pub fn scrape_budget(header: Option<&str>, default: Duration, offset: Duration) -> Duration {
    let scrape_timeout = header
        .and_then(|h| h.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(default);
    match scrape_timeout.checked_sub(offset) {
        Some(d) if !d.is_zero() => d,
        _ => scrape_timeout,
    }
}

/// Reasons counted in `seattle_exporter_probes_rejected_total`.
pub const REJECT_TOO_MANY_IN_FLIGHT: &str = "too_many_in_flight";
pub const REJECT_UNKNOWN_MODULE: &str = "unknown_module";
pub const REJECT_MISSING_TARGET: &str = "missing_target";

type Labels = Vec<(&'static str, &'static str)>;

/// Type-erased prober plus its modules, limits and the exporter-level probe metrics.
pub(crate) struct ProbeEndpoint {
    runner: Box<dyn ErasedProber>,
    pub(crate) options: ProbeOptions,
    semaphore: Arc<Semaphore>,
    in_flight: Gauge,
    rejected: Family<Labels, Counter>,
}

trait ErasedProber: Send + Sync {
    fn module_names(&self) -> Vec<String>;
    fn start<'a>(
        &'a self,
        target: &'a str,
        module: &'a str,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> Option<BoxFuture<'a, Result<(), ProbeFailure>>>;
}

struct Table<P: Prober> {
    prober: P,
    modules: BTreeMap<String, P::Module>,
}

impl<P: Prober> ErasedProber for Table<P> {
    fn module_names(&self) -> Vec<String> {
        self.modules.keys().cloned().collect()
    }
    fn start<'a>(
        &'a self,
        target: &'a str,
        module: &'a str,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> Option<BoxFuture<'a, Result<(), ProbeFailure>>> {
        let module = self.modules.get(module)?;
        Some(self.prober.probe(target, module, ctx, registry))
    }
}

/// What `/probe` answers.
pub(crate) enum ProbeAnswer {
    /// 400 with this message.
    BadRequest(String),
    /// 200: the registry's metrics; with `?debug=true` the log too.
    Done {
        registry: Registry,
        log: Option<String>,
    },
}

/// Parameters of one `/probe` request.
pub(crate) struct ProbeRequest<'a> {
    pub target: Option<&'a str>,
    pub module: Option<&'a str>,
    pub debug: bool,
    pub scrape_timeout_header: Option<&'a str>,
}

impl ProbeEndpoint {
    pub(crate) fn new<P: Prober>(
        prober: P,
        modules: BTreeMap<String, P::Module>,
        options: ProbeOptions,
    ) -> Self {
        let rejected = Family::<Labels, Counter>::default();
        for reason in [
            REJECT_TOO_MANY_IN_FLIGHT,
            REJECT_UNKNOWN_MODULE,
            REJECT_MISSING_TARGET,
        ] {
            // Exported as 0 from the start so rate() and alerts see the series.
            let _ = rejected.get_or_create(&vec![("reason", reason)]);
        }
        Self {
            runner: Box::new(Table { prober, modules }),
            semaphore: Arc::new(Semaphore::new(options.max_in_flight)),
            options,
            in_flight: Gauge::default(),
            rejected,
        }
    }

    pub(crate) fn module_names(&self) -> Vec<String> {
        self.runner.module_names()
    }

    /// Registers `seattle_exporter_probes_in_flight` and `…_probes_rejected_total` on /metrics.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "seattle_exporter_probes_in_flight",
            "Probes running now",
            self.in_flight.clone(),
        );
        registry.register(
            "seattle_exporter_probes_rejected",
            "Probes refused, by reason",
            self.rejected.clone(),
        );
    }

    pub(crate) fn budget(&self, header: Option<&str>) -> Duration {
        scrape_budget(
            header,
            self.options.default_timeout,
            self.options.timeout_offset,
        )
    }

    fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
    }

    pub(crate) async fn handle(&self, req: ProbeRequest<'_>) -> ProbeAnswer {
        let start = Instant::now();
        let Some(module) = req.module.or(self.options.default_module.as_deref()) else {
            self.reject(REJECT_UNKNOWN_MODULE);
            return ProbeAnswer::BadRequest("missing module parameter".into());
        };
        if !self.runner.module_names().iter().any(|m| m == module) {
            self.reject(REJECT_UNKNOWN_MODULE);
            return ProbeAnswer::BadRequest(format!("unknown module {module:?}"));
        }
        let Some(target) = req.target.filter(|t| !t.is_empty()) else {
            self.reject(REJECT_MISSING_TARGET);
            return ProbeAnswer::BadRequest("missing target parameter".into());
        };
        let deadline = start + self.budget(req.scrape_timeout_header);
        let ctx = ProbeContext::new(target, deadline, req.debug);
        let mut registry = Registry::default();

        let outcome = match Arc::clone(&self.semaphore).try_acquire_owned() {
            Err(_) => {
                self.reject(REJECT_TOO_MANY_IN_FLIGHT);
                Err(ProbeFailure::new(
                    REJECT_TOO_MANY_IN_FLIGHT,
                    format!("{} probes already running", self.options.max_in_flight),
                ))
            }
            Ok(_permit) => {
                let _in_flight = InFlight::enter(&self.in_flight);
                ctx.log(format_args!(
                    "probing {target} with module {module}, budget {:.3}s",
                    (deadline - start).as_secs_f64()
                ));
                match self.runner.start(target, module, &ctx, &mut registry) {
                    None => Err(ProbeFailure::new("unknown_module", module.to_string())),
                    Some(fut) => match tokio::time::timeout_at(deadline, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(ProbeFailure::new(
                            "timeout",
                            format!("no answer within {:.3}s", (deadline - start).as_secs_f64()),
                        )),
                    },
                }
            }
        };
        let duration = start.elapsed().as_secs_f64();
        match &outcome {
            Ok(()) => ctx.log(format_args!("probe succeeded in {duration:.3}s")),
            Err(f) => {
                ctx.log(format_args!("probe failed in {duration:.3}s: {f}"));
                tracing::debug!(
                    probe_target = target,
                    module,
                    reason = f.reason,
                    detail = %f.detail,
                    "probe failed"
                );
            }
        }
        add_outcome(&mut registry, &outcome, duration);
        ProbeAnswer::Done {
            registry,
            log: req.debug.then(|| ctx.take_log()),
        }
    }
}

/// Counts a running probe in the gauge for as long as it lives (also when the future is dropped).
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(g: &'a Gauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn add_outcome(registry: &mut Registry, outcome: &Result<(), ProbeFailure>, duration: f64) {
    let success = Gauge::<i64>::default();
    success.set(i64::from(outcome.is_ok()));
    registry.register("probe_success", "Whether the probe succeeded", success);
    let seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    seconds.set(duration);
    registry.register(
        "probe_duration_seconds",
        "How long the probe took in seconds",
        seconds,
    );
    if let Err(f) = outcome {
        let info = Family::<Labels, Gauge>::default();
        info.get_or_create(&vec![("reason", f.reason)]).set(1);
        registry.register("seattle_probe_failure_info", "Why the probe failed", info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_from_header_default_and_offset() {
        let ten = Duration::from_secs(10);
        let half = Duration::from_millis(500);
        assert_eq!(
            scrape_budget(Some("1.5"), ten, half),
            Duration::from_secs(1)
        );
        assert_eq!(scrape_budget(None, ten, half), Duration::from_millis(9500));
        assert_eq!(
            scrape_budget(Some("junk"), ten, half),
            Duration::from_millis(9500)
        );
        assert_eq!(
            scrape_budget(Some("-3"), ten, half),
            Duration::from_millis(9500)
        );
        assert_eq!(
            scrape_budget(Some("0.4"), ten, half),
            Duration::from_millis(400)
        );
        assert_eq!(
            scrape_budget(Some("1e400"), ten, half),
            Duration::from_millis(9500)
        );
    }
}
