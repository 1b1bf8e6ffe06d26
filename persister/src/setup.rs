//! The streams this binary owns: the persister creates `CHAT_CMD` and `CHAT_EVT` or
//! brings them to its settings; other binaries only create them when missing.

use async_nats::jetstream::{self, stream::Stream};
use chat_core::StartupError;
use chat_nats::streams::{self, StreamSettings};

/// Brings `CHAT_CMD` and `CHAT_EVT` to `settings` and returns `CHAT_CMD`. A change of
/// the partition count is refused while `CHAT_CMD` holds commands: they would move to
/// partitions whose consumers have already passed them.
pub async fn command_stream(js: &jetstream::Context, settings: StreamSettings) -> Result<Stream, StartupError> {
    streams::ensure_streams_exist(js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    let mut existing = js
        .get_stream(streams::CMD_STREAM)
        .await
        .map_err(|error| StartupError::dependency("opening CHAT_CMD", error))?;
    let info = existing.info().await.map_err(|error| StartupError::dependency("reading CHAT_CMD", error))?;
    let current = streams::command_partitions_of(&info.config);
    if let Some(current) = current
        && current != settings.command_partitions
        && info.state.messages > 0
    {
        return Err(StartupError::Config(format!(
            "CHAT_CMD has {current} partitions and {} commands waiting, CHAT_CMD_PARTITIONS is {}: \
             change the partition count only while CHAT_CMD is empty (docs/operations.md)",
            info.state.messages, settings.command_partitions
        )));
    }
    streams::ensure_stream(js, streams::event_stream(settings))
        .await
        .map_err(|error| StartupError::dependency("updating CHAT_EVT", error))?;
    streams::ensure_stream(js, streams::command_stream(settings))
        .await
        .map_err(|error| StartupError::dependency("updating CHAT_CMD", error))
}
