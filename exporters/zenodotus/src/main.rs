//! `seattle_zenodotus_exporter`: flags, config, routes.

use std::ops::ControlFlow;
use std::process::ExitCode;

use clap::Parser;
use seattle_exporter_toolkit::flags::{ProbeFlags, WebFlags};
use seattle_exporter_toolkit::probe::ProbeOptions;
use seattle_exporter_toolkit::{build_info, server};
use seattle_zenodotus_exporter::config::Config;
use seattle_zenodotus_exporter::prober::ZenodotusProber;

const PROGRAM: &str = "seattle_zenodotus_exporter";

/// Prometheus exporter for Zenodotus, the Seattle testbed's DNS server.
#[derive(Parser)]
#[command(name = PROGRAM, version = build_info::VERSION_LINE)]
struct Cli {
    #[command(flatten)]
    web: WebFlags,
    #[command(flatten)]
    probe: ProbeFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match server::start(PROGRAM, &cli.web, Config::load, Config::builtin) {
        ControlFlow::Continue(config) => config,
        ControlFlow::Break(exit) => return exit,
    };
    let router = server::Exporter::new(PROGRAM)
        .telemetry_path(&cli.web.telemetry_path)
        // Targets are DNS names, not host:port.
        .probe_target_placeholder("name.zenodotus.poly.edu")
        .prober(
            ZenodotusProber::new(),
            config.modules,
            ProbeOptions::from(&cli.probe),
        )
        .router();
    server::serve_until_stopped(router, &cli.web, ":19113").await
}
