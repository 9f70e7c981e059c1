//! `seattle_updatesite_exporter`: flags in, library out.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    seattle_updatesite_exporter::run(seattle_updatesite_exporter::Cli::parse()).await
}
