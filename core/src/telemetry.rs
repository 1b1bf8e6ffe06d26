//! Logs: JSON lines in containers, pretty in a terminal, filtered by `CHAT_LOG`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogArgs, LogFormat};

/// Installs the global subscriber. Called once, at the top of `main`.
pub fn init(args: &LogArgs) -> Result<(), crate::StartupError> {
    let filter =
        EnvFilter::try_new(&args.log).map_err(|error| crate::StartupError::Config(format!("CHAT_LOG: {error}")))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.log_format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
    };
    result.map_err(|error| crate::StartupError::Config(format!("logging: {error}")))
}
