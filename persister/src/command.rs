//! The contract between the pipeline and the command handlers: what a handler gets
//! besides its own command (who issued it, where to answer, whether it may be a
//! replay) and how it fails. It sits below both, so the handlers do not depend on the
//! pipeline that calls them; the NATS message to ack stays with the pipeline.

use chat_nats::{commands::CommandEnvelope, publish};
use chat_store::StoreError;

/// A failed step: the pipeline tries it again, in order, before anything after it.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// MongoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing events failed.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
}

/// A parsed command as its handler sees it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The command with its issuer, id and answer address.
    pub envelope: CommandEnvelope,
    /// Its trace context.
    pub traceparent: Option<String>,
    /// True when it may have reached a previous owner or an earlier try (a crash, a
    /// timeout, a takeover, a failed step): its writes may be partly done.
    pub redelivered: bool,
}
