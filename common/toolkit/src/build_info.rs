//! Version, git revision and compiler version of the running exporter.
//!
//! The whole workspace shares one version, so the toolkit's own package version is the exporter's.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Workspace version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git revision of the build, or `unknown` when built outside git.
pub const REVISION: &str = env!("SEATTLE_GIT_REVISION");
/// Version of rustc that built the exporter, e.g. `1.88.0`.
pub const RUST_VERSION: &str = env!("SEATTLE_RUST_VERSION");

/// What `--version` prints after the program name; use as
/// `#[command(version = seattle_exporter_toolkit::build_info::VERSION_LINE)]`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SEATTLE_GIT_REVISION"),
    ", rustc ",
    env!("SEATTLE_RUST_VERSION"),
    ")"
);

/// Registers `seattle_exporter_build_info{version,revision,rustversion} 1`.
pub fn register(registry: &mut Registry) {
    let family = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    family
        .get_or_create(&vec![
            ("version", VERSION),
            ("revision", REVISION),
            ("rustversion", RUST_VERSION),
        ])
        .set(1);
    registry.register(
        "seattle_exporter_build_info",
        "Build of the running exporter",
        family,
    );
}
