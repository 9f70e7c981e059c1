//! Command-line flags spelled as Prometheus' exporter-toolkit spells them.
//!
//! Flatten [`WebFlags`] into the exporter's parser:
//!
//! ```
//! use clap::Parser;
//! use seattle_exporter_toolkit::flags::WebFlags;
//!
//! #[derive(Parser)]
//! #[command(version = seattle_exporter_toolkit::build_info::VERSION_LINE)]
//! struct Cli {
//!     #[command(flatten)]
//!     web: WebFlags,
//! }
//!
//! let cli = Cli::parse_from(["x", "--web.listen-address=:19110", "--log.level=debug"]);
//! assert_eq!(cli.web.listen_addresses_or(":1"), vec![":19110".to_string()]);
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Flags every exporter shares.
#[derive(Args, Debug, Clone)]
pub struct WebFlags {
    /// Address to listen on, e.g. `:19110` (all interfaces) or `127.0.0.1:19110`. Repeatable.
    /// When absent the exporter's default is used (see [`WebFlags::listen_addresses_or`]).
    #[arg(long = "web.listen-address", value_name = "ADDRESS")]
    pub listen_addresses: Vec<String>,

    /// Path to a web-config YAML file enabling TLS and/or basic authentication.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose the exporter's metrics.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    /// The exporter's own configuration file (YAML).
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Validate the configuration file and exit (status 0 when valid).
    #[arg(long = "config.check")]
    pub config_check: bool,
}

impl WebFlags {
    /// The `--web.listen-address` values, or `default` when none was given.
    pub fn listen_addresses_or(&self, default: &str) -> Vec<String> {
        if self.listen_addresses.is_empty() {
            vec![default.to_string()]
        } else {
            self.listen_addresses.clone()
        }
    }
}

/// Flags of multi-target exporters (`/probe`). Flatten next to [`WebFlags`].
#[derive(Args, Debug, Clone)]
pub struct ProbeFlags {
    /// Seconds subtracted from Prometheus' scrape timeout to get the probe's time budget.
    #[arg(
        long = "probe.timeout-offset",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub timeout_offset_seconds: f64,

    /// Probes allowed to run at once; more are answered with probe_success 0.
    #[arg(long = "probe.max-in-flight", default_value_t = 256, value_name = "N")]
    pub max_in_flight: usize,
}

impl ProbeFlags {
    /// The offset as a `Duration` (negative or non-finite values count as 0).
    pub fn timeout_offset(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_offset_seconds).unwrap_or(Duration::ZERO)
    }
}

/// `--log.level`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// `--log.format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `ts=… level=info msg="…" key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}
