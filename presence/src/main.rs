//! The presence binary: configuration, logging, run until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = presence::Config::parse();
    chat_core::telemetry::init(&config.log)?;
    let shutdown = chat_core::shutdown::on_signal();
    let running = presence::start(config, shutdown).await?;
    running.wait().await;
    Ok(())
}
