//! The api binary: configuration, logging, serve until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = api::Config::parse();
    chat_core::telemetry::init(&config.log)?;
    let shutdown = chat_core::shutdown::on_signal();
    let running = api::start(config, shutdown).await?;
    running.wait().await;
    Ok(())
}
