//! The persister binary: configuration, logging, run until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = persister::Config::parse();
    chat_core::telemetry::init(&config.log)?;
    let shutdown = chat_core::shutdown::on_signal();
    let running = persister::start(config, shutdown).await?;
    running.wait().await?;
    Ok(())
}
