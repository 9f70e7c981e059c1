//! `seattle_zenodotus_exporter`: flags, config, routes.

use std::process::ExitCode;

use clap::Parser;
use seattle_exporter_toolkit::flags::{ProbeFlags, WebFlags};
use seattle_exporter_toolkit::probe::ProbeOptions;
use seattle_exporter_toolkit::{build_info, logging, server};
use seattle_zenodotus_exporter::config::Config;
use seattle_zenodotus_exporter::prober::ZenodotusProber;

/// Prometheus exporter for Zenodotus, the Seattle testbed's DNS server.
#[derive(Parser)]
#[command(name = "seattle_zenodotus_exporter", version = build_info::VERSION_LINE)]
struct Cli {
    #[command(flatten)]
    web: WebFlags,
    #[command(flatten)]
    probe: ProbeFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.web.log_level, cli.web.log_format) {
        eprintln!("seattle_zenodotus_exporter: {e:#}");
        return ExitCode::FAILURE;
    }
    let config = match &cli.web.config_file {
        Some(path) => Config::load(path),
        None => Config::builtin(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("seattle_zenodotus_exporter: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.web.config_check {
        println!("config OK");
        return ExitCode::SUCCESS;
    }
    let router = server::Exporter::new("seattle_zenodotus_exporter")
        .telemetry_path(&cli.web.telemetry_path)
        // Targets are DNS names, not host:port.
        .probe_target_placeholder("name.zenodotus.poly.edu")
        .prober(
            ZenodotusProber::new(),
            config.modules,
            ProbeOptions::from(&cli.probe),
        )
        .router();
    match server::serve(router, &cli.web, ":19113").await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exporter stopped");
            ExitCode::FAILURE
        }
    }
}
