//! Exporter plumbing shared by the Seattle exporters.
//!
//! An exporter's `main` typically:
//!
//! 1. parses its flags with [`flags::WebFlags`] (and [`flags::ProbeFlags`] for `/probe`)
//!    flattened in, `--version` from [`build_info::VERSION_LINE`];
//! 2. calls [`logging::init`];
//! 3. loads its `--config.file` with [`config::load_yaml`] (errors name file, line, field) and
//!    exits after `--config.check` ([`server::start`] does steps 2 and 3);
//! 4. builds routes with [`server::Exporter`]: host collectors ([`collector::Collector`]) and/or
//!    one prober ([`probe::Prober`]) with its module table;
//! 5. runs [`server::serve`] (or [`server::serve_until_stopped`] for an exit code), which handles
//!    `--web.listen-address`, `--web.config.file` ([`webconfig`]: TLS, basic auth, reloaded on
//!    change) and SIGTERM.
//!
//! ```no_run
//! use clap::Parser;
//! use prometheus_client::registry::Registry;
//! use seattle_exporter_toolkit::{collector::Collector, flags::WebFlags, logging, server};
//!
//! struct Uptime;
//! impl Collector for Uptime {
//!     fn name(&self) -> &'static str { "uptime" }
//!     fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
//!         let g = prometheus_client::metrics::gauge::Gauge::<i64>::default();
//!         g.set(42);
//!         registry.register("seattle_uptime_seconds", "Uptime", g);
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Parser)]
//! #[command(version = seattle_exporter_toolkit::build_info::VERSION_LINE)]
//! struct Cli {
//!     #[command(flatten)]
//!     web: WebFlags,
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let cli = Cli::parse();
//!     logging::init(cli.web.log_level, cli.web.log_format)?;
//!     let router = server::Exporter::new("example_exporter")
//!         .telemetry_path(&cli.web.telemetry_path)
//!         .collector(Uptime)
//!         .router();
//!     server::serve(router, &cli.web, ":19110").await
//! }
//! ```
//!
//! With the `testing` feature, [`testing`] starts the real Prometheus for end-to-end tests.

pub mod build_info;
pub mod collector;
pub mod config;
pub mod exposition;
pub mod flags;
pub mod logging;
pub mod probe;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webconfig;
