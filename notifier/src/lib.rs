//! The notifier: reacts to persisted events on `CHAT_EVT` (durable consumer
//! `notifier`). Today it turns `chat.created` and `member.added` into
//! `user.<id>.chat.joined`, which makes every edge start delivering the chat to that
//! user's sockets at once. Push requests for offline users come with presence.

use std::{net::SocketAddr, time::Duration};

use async_nats::jetstream::{self, AckKind};
use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, NatsArgs, ShutdownArgs},
    probes::Probe,
};
use chat_nats::{
    events::{ChatEvent, EventBody, UserEvent},
    streams::{self, StreamSettings},
    subjects,
};
use clap::Parser;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The notifier's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "notifier", about = "User-scoped deliveries for persisted chat events")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

/// A started notifier.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until it has stopped.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects and consumes until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    let nats = chat_core::connect::nats(&config.nats, "notifier").await?;
    let js = jetstream::new(nats.clone());
    let settings = StreamSettings { replicas: config.nats.stream_replicas, ..Default::default() };
    streams::ensure_all_streams(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    let stream = streams::ensure_stream(&js, streams::event_stream(settings))
        .await
        .map_err(|error| StartupError::dependency("opening CHAT_EVT", error))?;
    let consumer = streams::ensure_consumer(&stream, streams::notifier_consumer_config())
        .await
        .map_err(|error| StartupError::dependency("creating the notifier consumer", error))?;
    let mut messages =
        consumer.messages().await.map_err(|error| StartupError::dependency("consuming CHAT_EVT", error))?;

    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9102)));
    let admin_shutdown = CancellationToken::new();
    let (admin_addr, admin) =
        chat_core::admin::serve(admin_addr, vec![Probe::nats(nats.clone())], admin_shutdown.clone()).await?;
    let consume = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(%error, "CHAT_EVT consumer error");
                    continue;
                }
                None => break,
            };
            match deliver(&nats, &message.payload).await {
                Ok(()) => {
                    let _ = message.ack().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "delivery failed; retrying");
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_millis(500)))).await;
                }
            }
        }
        let _ = nats.flush().await;
        admin_shutdown.cancel();
    });
    tracing::info!(%admin_addr, "notifier started");
    Ok(Running { admin_addr, tasks: vec![consume, admin] })
}

/// The user deliveries an event causes.
pub fn user_deliveries(event: &ChatEvent) -> Vec<(String, UserEvent)> {
    let at = chrono::Utc::now();
    let joined = |user_id: &str, role| {
        let event = UserEvent::ChatJoined { v: chat_nats::PAYLOAD_VERSION, chat_id: event.chat_id.clone(), role, at };
        (subjects::user(user_id, event.name()), event)
    };
    match &event.body {
        EventBody::ChatCreated { chat } => chat.participants.iter().map(|m| joined(&m.user_id, m.role)).collect(),
        EventBody::MemberAdded { user_id, role } => vec![joined(user_id, *role)],
        EventBody::MsgCreated { .. } => Vec::new(),
    }
}

async fn deliver(nats: &async_nats::Client, payload: &[u8]) -> Result<(), async_nats::PublishError> {
    let Ok(event) = serde_json::from_slice::<ChatEvent>(payload) else {
        tracing::warn!("unreadable event skipped");
        return Ok(());
    };
    for (subject, delivery) in user_deliveries(&event) {
        if let Ok(body) = serde_json::to_vec(&delivery) {
            nats.publish(subject, body.into()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_nats::model::Role;

    #[test]
    fn a_new_member_is_told_it_joined() {
        let event = ChatEvent::new("c1", 3, EventBody::MemberAdded { user_id: "u9".into(), role: Role::Member });
        let deliveries = user_deliveries(&event);
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].0, "user.u9.chat.joined");
        assert!(matches!(&deliveries[0].1, UserEvent::ChatJoined { chat_id, .. } if chat_id == "c1"));
    }
}
