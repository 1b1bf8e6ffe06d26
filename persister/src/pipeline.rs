//! Fetching, batching and acking one partition. The `msg.send` commands of a batch are
//! handled together (one MongoDB round trip per step for the whole run); any other
//! command is handled on its own and is a barrier for its own chat only, so per-chat
//! order is exactly the stream's order while read marks and the like of other chats
//! do not split runs of sends. A failed step is retried here, in order, until it succeeds or the partition
//! is lost: handing it back to JetStream for redelivery would let newer commands of
//! the same chats overtake it.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{
    self, AckKind,
    consumer::{PullConsumer, pull},
};
use chat_nats::{
    commands::{Command, CommandEnvelope},
    publish,
};
use chat_store::Store;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::{
    command::{HandleError, Issued},
    commands,
    effects::Effects,
    fence::Fence,
    group_commit::SendWrites,
    known_chats::KnownChats,
    metrics,
};

/// How often an idle pull hears from the server; two missed make the pipeline start
/// over.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The first pause before a failed step is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two tries of a failed step.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The consumer's message stream could not be opened.
    #[error("cannot consume CHAT_CMD: {0}")]
    Consume(String),
    /// The pipeline task panicked.
    #[error("persister task panicked: {0}")]
    Panicked(String),
}

/// The consuming side of the persister, shared by every partition it serves.
#[derive(Clone)]
pub struct Pipeline {
    /// MongoDB.
    pub store: Store,
    /// Core NATS, for answers.
    pub nats: async_nats::Client,
    /// JetStream, for events.
    pub js: jetstream::Context,
    /// Most commands per batch.
    pub batch_max: usize,
    /// The sends' lookups and inserts, merged across this replica's partitions.
    pub sends: SendWrites,
    /// Limits of a chat, for the commands that add members.
    pub chat_limits: chat_core::config::ChatLimitArgs,
    /// The messaging policy, for the commands that create chats.
    pub policy: std::sync::Arc<chat_core::policy::Policy>,
    /// Who resolves reports.
    pub moderation: chat_core::moderation::ModerationArgs,
}

/// A parsed command with the NATS message to ack once it is handled.
struct Incoming {
    issued: Issued,
    message: jetstream::Message,
}

/// How far a batch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Every command was handled and acked.
    All,
    /// The partition's lease stopped being trusted: the rest is left unacked.
    Abandoned,
}

/// What one pipeline serves, and how far a previous owner may have got.
pub struct Assignment {
    /// The partition's consumer.
    pub consumer: PullConsumer,
    /// Commands up to this stream sequence may have been delivered to a previous
    /// owner: the fresh consumer delivers them as new, so they are treated as
    /// redeliveries.
    pub replay_through: u64,
    /// Asks the pipeline to finish what it fetched and stop.
    pub stop: CancellationToken,
    /// Revoked when the partition is lost.
    pub fence: Fence,
}

impl Pipeline {
    /// Consumes until `stop`; the batch in flight is finished (or left unacked for
    /// redelivery) within `grace`. Stops at once, acking nothing more, when `fence`
    /// is revoked.
    pub async fn run(&self, assignment: Assignment, grace: Duration) -> Result<(), PipelineError> {
        let Assignment { consumer, replay_through, stop, fence } = assignment;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.batch_max)
            .heartbeat(HEARTBEAT)
            .expires(HEARTBEAT * 5)
            .messages()
            .await
            .map_err(|error| PipelineError::Consume(error.to_string()))?;
        let mut known = KnownChats::default();
        loop {
            let first = tokio::select! {
                biased;
                () = fence.revoked() => return Ok(()),
                _ = stop.cancelled() => break,
                next = messages.next() => next,
            };
            let batch = match first {
                Some(Ok(message)) => self.fill_batch(message, &mut messages),
                // A missed heartbeat (a NATS node or the consumer's leader gone) leaves
                // the pull unanswered until it expires: start over with a fresh
                // consumer instead, which also replays what was in flight first.
                Some(Err(error)) => return Err(PipelineError::Consume(format!("consumer stream: {error}"))),
                None => return Err(PipelineError::Consume("consumer stream ended".into())),
            };
            // A batch runs to the end however long MongoDB makes it wait, except at
            // shutdown, where it gets the grace period and is otherwise left to be
            // replayed by the next owner, and when the partition is lost.
            let work = async {
                if self.handle_batch(batch, &fence, replay_through, &mut known).await == Handled::Abandoned {
                    // Commands left unacked must not be overtaken: the partition goes
                    // back and its next owner replays them first.
                    tracing::warn!("partition lease no longer trusted; stopping before the next batch");
                    return false;
                }
                true
            };
            tokio::pin!(work);
            let deadline = async {
                stop.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                go_on = &mut work => if !go_on { return Ok(()) },
                () = fence.revoked() => return Ok(()),
                () = deadline => {
                    tracing::error!("batch did not finish within the grace period; it will be replayed");
                    return Ok(());
                }
            }
        }
        // What was fetched but not started stays unacknowledged: the next owner's fresh
        // consumer delivers it first.
        tracing::info!("partition pipeline stopped");
        Ok(())
    }

    /// The batch that starts with `first`: whatever else is already fetched, up to the
    /// batch size.
    fn fill_batch(&self, first: jetstream::Message, messages: &mut pull::Stream) -> Vec<jetstream::Message> {
        let mut batch = vec![first];
        while batch.len() < self.batch_max {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        batch
    }

    /// Handles one batch in stream order and acks what was done. A failed segment is
    /// tried again after a pause, with the commands after it kept from redelivery,
    /// until it succeeds or `fence` no longer holds. Commands up to `replay_through`
    /// count as redelivered. `known` carries what the partition's chats hold from one
    /// batch to the next.
    pub async fn handle_batch(
        &self,
        batch: Vec<jetstream::Message>,
        fence: &Fence,
        replay_through: u64,
        known: &mut KnownChats,
    ) -> Handled {
        metrics::BATCH_SIZE.observe(batch.len() as f64);
        let mut incoming = Vec::with_capacity(batch.len());
        for message in batch {
            if let Some(parsed) = parse(message, replay_through).await {
                incoming.push(parsed);
            }
        }
        let mut segments = segments(incoming);
        for index in 0..segments.len() {
            let mut pause = RETRY_FIRST;
            loop {
                // An expired lease may come back (the bucket was electing a leader);
                // nothing is done meanwhile, and a lost one ends the batch.
                if !fence.holds() && !fence.regained().await {
                    return Handled::Abandoned;
                }
                let Err(error) = self.handle_segment(&segments[index], known).await else { break };
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "batch step failed; retrying in order");
                for command in segments[index..].iter_mut().flatten() {
                    metrics::COMMANDS.with_label_values(&[command.issued.envelope.command.name(), "retried"]).inc();
                    // The step may have written part of its work: the retry must look.
                    command.issued.redelivered = true;
                    let _ = command.message.ack_with(AckKind::Progress).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = fence.revoked() => return Handled::Abandoned,
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
        Handled::All
    }

    async fn handle_segment(&self, segment: &[Incoming], known: &mut KnownChats) -> Result<(), HandleError> {
        let mut effects = Effects::default();
        let step: Vec<&Issued> = segment.iter().map(|command| &command.issued).collect();
        commands::handle_step(
            &self.store,
            &self.sends,
            &self.chat_limits,
            &self.policy,
            &self.moderation,
            known,
            &step,
            &mut effects,
        )
        .await?;
        let now = chrono::Utc::now();
        for command in segment {
            let waited = (now - command.issued.envelope.issued_at).num_microseconds().unwrap_or(0).max(0);
            metrics::PERSIST_SECONDS.observe(waited as f64 / 1e6);
        }
        publish::publish_all(&self.js, effects.outgoing_events(now.timestamp_micros())).await?;
        for (subject, body) in effects.notices {
            if let Err(error) = self.nats.publish(subject, body).await {
                tracing::warn!(%error, "cannot publish a notice");
            }
        }
        for command in segment {
            tracing::debug!(
                trace_id = command.issued.traceparent.as_deref().and_then(chat_core::trace::trace_id),
                chat_id = command.issued.envelope.chat_id(),
                user_id = %command.issued.envelope.actor.user_id,
                command = command.issued.envelope.command.name(),
                "command handled"
            );
            if let Err(error) = command.message.ack().await {
                tracing::warn!(%error, "ack failed; the command will be redelivered and found done");
            }
        }
        Ok(())
    }
}

/// Splits a batch into steps (see [`plan_steps`]).
fn segments(incoming: Vec<Incoming>) -> Vec<Vec<Incoming>> {
    let commands: Vec<(&str, bool)> = incoming
        .iter()
        .map(|command| {
            (command.issued.envelope.chat_id(), matches!(command.issued.envelope.command, Command::MsgSend(_)))
        })
        .collect();
    let plan = plan_steps(&commands);
    let mut slots: Vec<Option<Incoming>> = incoming.into_iter().map(Some).collect();
    plan.into_iter().map(|step| step.into_iter().filter_map(|index| slots[index].take()).collect()).collect()
}

/// The steps of a batch of `(chat_id, is_send)` commands, as indices in stream order:
/// runs of sends, and single other commands. A send joins the first run after the last
/// other command of its chat (or starts one at the end), and any other command goes
/// last, so each chat's commands keep the stream's order while other chats' commands
/// do not split runs.
fn plan_steps(commands: &[(&str, bool)]) -> Vec<Vec<usize>> {
    let mut steps: Vec<(bool, Vec<usize>)> = Vec::new();
    let mut barrier_of_chat: HashMap<&str, usize> = HashMap::new();
    for (index, &(chat_id, is_send)) in commands.iter().enumerate() {
        if !is_send {
            barrier_of_chat.insert(chat_id, steps.len());
            steps.push((false, vec![index]));
            continue;
        }
        let after = barrier_of_chat.get(chat_id).map_or(0, |barrier| barrier + 1);
        match (after..steps.len()).find(|&step| steps[step].0) {
            Some(run) => steps[run].1.push(index),
            None => steps.push((true, vec![index])),
        }
    }
    steps.into_iter().map(|(_, indices)| indices).collect()
}

async fn parse(message: jetstream::Message, replay_through: u64) -> Option<Incoming> {
    match serde_json::from_slice::<CommandEnvelope>(&message.payload) {
        Ok(envelope) => {
            if !crate::plausibility::admit(&message, &envelope).await {
                return None;
            }
            let redelivered =
                message.info().map(|info| info.delivered > 1 || info.stream_sequence <= replay_through).unwrap_or(true);
            let traceparent = crate::effects::traceparent(message.headers.as_ref());
            Some(Incoming { issued: Issued { envelope, traceparent, redelivered }, message })
        }
        Err(error) => {
            tracing::error!(subject = %message.subject, %error, "malformed command dropped");
            metrics::COMMANDS.with_label_values(&["unknown", "malformed"]).inc();
            let _ = message.ack_with(AckKind::Term).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plan_steps;

    #[test]
    fn other_chats_commands_do_not_split_runs_of_sends() {
        let batch = [("a", true), ("b", false), ("a", true), ("c", true), ("b", true)];
        assert_eq!(plan_steps(&batch), vec![vec![0, 2, 3], vec![1], vec![4]]);
    }

    #[test]
    fn a_chats_own_command_orders_its_sends() {
        let batch = [("a", true), ("a", false), ("a", true), ("b", true), ("a", false), ("a", true)];
        assert_eq!(plan_steps(&batch), vec![vec![0, 3], vec![1], vec![2], vec![4], vec![5]]);
    }

    #[test]
    fn every_chat_keeps_stream_order() {
        // Every pattern of three chats and both kinds over six commands.
        let chats = ["a", "b", "c"];
        for pattern in 0..6usize.pow(6) {
            let batch: Vec<(&str, bool)> =
                (0..6).map(|i| pattern / 6usize.pow(i) % 6).map(|n| (chats[n % 3], n < 3)).collect();
            let order: Vec<usize> = plan_steps(&batch).into_iter().flatten().collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..6).collect::<Vec<_>>(), "every command once: {batch:?}");
            for chat in chats {
                let of_chat: Vec<usize> = order.iter().copied().filter(|&i| batch[i].0 == chat).collect();
                assert!(of_chat.windows(2).all(|w| w[0] < w[1]), "{chat} out of order in {batch:?}");
            }
        }
    }
}
