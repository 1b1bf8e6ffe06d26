//! The presence binary: configuration, logging, run until SIGTERM.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = presence::Config::parse();
    let log = config.log.clone();
    chat_core::telemetry::run(&log, env!("CARGO_BIN_NAME"), async move {
        let shutdown = chat_core::shutdown::on_signal();
        let running = presence::start(config, shutdown).await?;
        running.wait().await;
        Ok::<(), anyhow::Error>(())
    })
    .await
}
