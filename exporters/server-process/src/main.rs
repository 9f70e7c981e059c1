//! `seattle_process_exporter`: process groups and filesystems of Seattle's servers.

use std::process::ExitCode;

use clap::Parser;
use seattle_exporter_toolkit::{build_info, flags::WebFlags, logging, server};
use seattle_process_exporter::{collector, config};

/// Exports process groups (expected counts, CPU, memory, fds, restarts, listening
/// ports) and filesystem usage of a Seattle infrastructure server.
#[derive(Parser)]
#[command(name = "seattle_process_exporter", version = build_info::VERSION_LINE)]
struct Cli {
    #[command(flatten)]
    web: WebFlags,

    /// Built-in process groups to watch; repeatable, combines with --config.file
    /// (a file group with a profile group's name replaces it).
    #[arg(
        long = "profile",
        value_name = "NAME",
        value_parser = clap::builder::PossibleValuesParser::new(config::PROFILES)
    )]
    profiles: Vec<String>,
}

const DEFAULT_LISTEN: &str = ":19110";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.web.log_level, cli.web.log_format) {
        eprintln!("seattle_process_exporter: {e:#}");
        return ExitCode::FAILURE;
    }
    let config = match config::assemble(&cli.profiles, cli.web.config_file.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("seattle_process_exporter: invalid configuration: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if cli.web.config_check {
        println!(
            "configuration OK: {} process groups, {} expected mount points",
            config.process_groups.len(),
            config.filesystems.expected_mountpoints.len()
        );
        return ExitCode::SUCCESS;
    }
    if config.process_groups.is_empty() {
        tracing::warn!("no process groups: give --profile or process_groups in --config.file");
    }
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, config: config::Config) -> anyhow::Result<()> {
    let exporter =
        server::Exporter::new("seattle_process_exporter").telemetry_path(&cli.web.telemetry_path);
    let router = collector::register(exporter, &config)?.router();
    tokio::runtime::Builder::new_multi_thread()
        // Scrapes are small; two workers are plenty and keep memory down.
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(server::serve(router, &cli.web, DEFAULT_LISTEN))
}
