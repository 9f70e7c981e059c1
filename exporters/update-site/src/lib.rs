//! `seattle_updatesite_exporter`: probes the Seattle software update site (signed `metainfo`),
//! any HTTP URL, the Custom Installer Builder's XML-RPC API and the clearinghouse lockserver
//! (`/probe`), and on a node the freshness of the local install (`/metrics`, `--install.dir`).
//!
//! `main.rs` only parses [`Cli`] and calls [`run`].

pub mod collector;
pub mod config;
pub mod http_client;
pub mod metainfo_check;
pub mod prober;
pub mod xmlrpc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use seattle_exporter_toolkit::flags::{ProbeFlags, WebFlags};
use seattle_exporter_toolkit::probe::ProbeOptions;
use seattle_exporter_toolkit::server::Exporter;

use crate::collector::InstallCollector;
use crate::config::{Config, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS};
use crate::http_client::HttpClient;
use crate::prober::UpdateSiteProber;

pub const PROGRAM: &str = "seattle_updatesite_exporter";
pub const DEFAULT_LISTEN: &str = ":19112";

#[derive(Parser, Debug, Clone)]
#[command(
    name = PROGRAM,
    version = seattle_exporter_toolkit::build_info::VERSION_LINE,
    about = "Prometheus exporter for the Seattle update site, installer builder and lockserver"
)]
pub struct Cli {
    #[command(flatten)]
    pub web: WebFlags,
    #[command(flatten)]
    pub probe: ProbeFlags,
    /// A node's `seattle_repy` directory: enables the `install` collector on /metrics.
    #[arg(long = "install.dir", value_name = "DIR")]
    pub install_dir: Option<PathBuf>,
    /// The update site the install is compared with: the node's `softwareurl` (default: the one
    /// production installers are built with, SEATTLE.md E.1).
    #[arg(
        long = "install.site-url",
        value_name = "URL",
        default_value = "http://seattlesoftwareupdater.poly.edu/updatesite/"
    )]
    pub install_site_url: String,
    /// `e n` key file the site's metainfo must be signed with; the production update key when absent.
    #[arg(long = "install.trusted-key-file", value_name = "FILE")]
    pub install_trusted_key_file: Option<PathBuf>,
    /// Time allowed for fetching the site's metainfo on a scrape of /metrics.
    #[arg(
        long = "install.timeout",
        value_name = "SECONDS",
        default_value_t = 5.0
    )]
    pub install_timeout_seconds: f64,
}

/// The config from `--config.file`, or the built-in one.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(match &cli.web.config_file {
        Some(p) => Config::load(p)?,
        None => Config::builtin()?,
    })
}

/// The install collector from the `--install.*` flags (inside the tokio runtime).
pub fn install_collector(cli: &Cli) -> anyhow::Result<Option<InstallCollector>> {
    let Some(dir) = &cli.install_dir else {
        return Ok(None);
    };
    let trusted = match &cli.install_trusted_key_file {
        Some(p) => config::read_key_file(p).map_err(anyhow::Error::msg)?,
        None => seattle_protocol::keys::PublicKey::parse(config::PRODUCTION_UPDATE_KEY.trim())
            .context("built-in update key")?,
    };
    let timeout = Duration::try_from_secs_f64(cli.install_timeout_seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--install.timeout must be a positive number of seconds")?;
    let http = HttpClient::new(None, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS)
        .map_err(anyhow::Error::msg)?;
    Ok(Some(InstallCollector::new(
        dir.clone(),
        cli.install_site_url.clone(),
        Arc::new(http),
        Arc::new(trusted),
        timeout,
    )))
}

/// The routes: /probe with the config's modules, /metrics with the install collector if any.
pub fn router(cli: &Cli, config: Config, install: Option<InstallCollector>) -> axum::Router {
    let mut exporter = Exporter::new(PROGRAM)
        .telemetry_path(&cli.web.telemetry_path)
        .prober(
            UpdateSiteProber::default(),
            config.modules,
            ProbeOptions::from(&cli.probe),
        );
    if let Some(c) = install {
        exporter = exporter.collector(c);
    }
    exporter.router()
}

/// Everything `main` does after parsing flags.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    seattle_exporter_toolkit::logging::init(cli.web.log_level, cli.web.log_format)?;
    let config = load_config(&cli)?;
    let install = install_collector(&cli)?;
    if cli.web.config_check {
        println!(
            "config OK: {} modules ({})",
            config.modules.len(),
            config
                .modules
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    let router = router(&cli, config, install);
    seattle_exporter_toolkit::server::serve(router, &cli.web, DEFAULT_LISTEN).await
}
