//! The ws-edge binary: configuration, logging, serve until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ws_edge::Config::parse();
    chat_core::telemetry::init(&config.log)?;
    let shutdown = chat_core::shutdown::on_signal();
    let running = ws_edge::start(config, shutdown).await?;
    running.wait().await;
    Ok(())
}
