//! `seattle_node_exporter`: flags, config, routes.

use std::ops::ControlFlow;
use std::process::ExitCode;

use clap::Parser;
use seattle_exporter_toolkit::flags::{ProbeFlags, WebFlags};
use seattle_exporter_toolkit::probe::ProbeOptions;
use seattle_exporter_toolkit::{build_info, server};
use seattle_node_exporter::config::Config;
use seattle_node_exporter::discovery::Discovery;
use seattle_node_exporter::prober::NodeProber;

const PROGRAM: &str = "seattle_node_exporter";

/// Prometheus exporter for Seattle node managers, advertise services, users and fleet discovery.
#[derive(Parser)]
#[command(name = PROGRAM, version = build_info::VERSION_LINE)]
struct Cli {
    #[command(flatten)]
    web: WebFlags,
    #[command(flatten)]
    probe: ProbeFlags,
    /// Node-local mode: the node's `seattle_repy` directory; adds the local_vessels,
    /// local_disk and local_processes collectors to /metrics (and, without --config.file,
    /// turns fleet discovery off).
    #[arg(long = "install.dir", value_name = "DIR")]
    install_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match server::start(PROGRAM, &cli.web, Config::load, Config::builtin) {
        ControlFlow::Continue(config) => config,
        ControlFlow::Break(exit) => return exit,
    };
    let discovery = Discovery::new(&config);
    let mut exporter = server::Exporter::new(PROGRAM).telemetry_path(&cli.web.telemetry_path);
    discovery.register(exporter.registry_mut());
    if let Some(dir) = &cli.install_dir {
        exporter = match seattle_node_exporter::local::register(exporter, dir) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{PROGRAM}: {e:#}");
                return ExitCode::FAILURE;
            }
        };
    }
    let router = exporter
        .prober(
            NodeProber::new(config.shared()),
            config.modules.clone(),
            ProbeOptions::from(&cli.probe),
        )
        .route("/sd", "Service discovery", discovery.sd_route())
        .router();
    // A node-local exporter runs on every node: without its own config file it stays off the
    // network instead of running fleet discovery against the advertise services.
    let node_local_only = cli.install_dir.is_some() && cli.web.config_file.is_none();
    if config.discovery.enabled && !node_local_only {
        tokio::spawn(discovery.clone().run());
    }
    server::serve_until_stopped(router, &cli.web, ":19111").await
}
