//! Logs: JSON lines in the Elastic Common Schema in containers ([`ecs`]), pretty in a
//! terminal, filtered by `CHAT_LOG`; and the one place a binary's `main` turns a failure
//! into a last log line and an exit status.

pub mod ecs;

use std::{fmt::Display, future::Future, process::ExitCode};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogArgs, LogFormat};

/// Installs the global subscriber for the binary `service` (its name in the
/// `service.name` field). Called once, at the top of `main`.
pub fn init(args: &LogArgs, service: &'static str) -> Result<(), crate::StartupError> {
    let filter =
        EnvFilter::try_new(&args.log).map_err(|error| crate::StartupError::Config(format!("CHAT_LOG: {error}")))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .event_format(ecs::EcsFormat::new(service))
                    .fmt_fields(ecs::EcsFields)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
    };
    result.map_err(|error| crate::StartupError::Config(format!("logging: {error}")))?;
    log_panics();
    Ok(())
}

/// The text a panic was raised with (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A panic (ours, or in a library's background task, such as the MongoDB driver's
/// connection pool at shutdown) is logged as an `error` line with its location,
/// instead of the default hook's plain text, which a log shipper cannot parse.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message = panic_message(info.payload());
        let thread = std::thread::current();
        tracing::error!(panic = message, location, thread = thread.name().unwrap_or("unnamed"), "panicked");
    }));
}

/// Runs a binary's body with logging installed: a failure becomes one `error` log line
/// (so that in a container even the reason the process stopped is an ECS line the log
/// shipper can parse, not a bare `Error: ...`) and exit status 1.
pub async fn run<E: Display>(
    args: &LogArgs,
    service: &'static str,
    body: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    if let Err(error) = init(args, service) {
        // No logger yet: stderr is all there is.
        eprintln!("{service}: {error}");
        return ExitCode::FAILURE;
    }
    match body.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` shows an anyhow error's whole chain of causes.
            tracing::error!(error = format!("{error:#}"), "stopped");
            ExitCode::FAILURE
        }
    }
}
