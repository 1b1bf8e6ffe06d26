//! The persister binary: configuration, logging, run until SIGTERM.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = persister::Config::parse();
    let log = config.log.clone();
    chat_core::telemetry::run(&log, env!("CARGO_BIN_NAME"), async move {
        let shutdown = chat_core::shutdown::on_signal();
        let running = persister::start(config, shutdown).await?;
        running.wait().await?;
        Ok::<(), anyhow::Error>(())
    })
    .await
}
