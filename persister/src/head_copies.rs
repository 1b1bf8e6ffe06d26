//! The chat document's copy of its head (`chat_store::heads`). The head moves with every
//! message; the copy in the chat document, which carries every participant and costs
//! the store about three times as much to update, follows at most once per interval
//! (`CHAT_PERSISTER_HEAD_COPY_MS`, 10 s by default: at one second, chats of five that
//! each got a message a second paid a copy for almost every message, 30 % more store
//! time per message): the handlers mark the chats whose head they moved, and one task
//! of the replica copies the marked chats' heads in one command per interval, and once
//! more when the last handle is dropped (a process that exits right after may not wait
//! for that copy). After a crash or a stop, a chat's copy trails until its next event;
//! no reader of the service depends on it.

use std::{collections::HashSet, time::Duration};

use chat_store::Store;
use tokio::sync::mpsc;

use crate::group_commit::MAX_ITEMS;

/// Marks chats whose head moved; cheap to clone.
#[derive(Clone)]
pub struct HeadCopies {
    moved: mpsc::UnboundedSender<String>,
}

impl HeadCopies {
    /// Starts the copying task, which copies every `every`; it makes a last copy and
    /// ends when every clone is dropped.
    pub fn spawn(store: Store, every: Duration) -> Self {
        let (moved, marks) = mpsc::unbounded_channel();
        tokio::spawn(copy_marked(store, marks, every));
        HeadCopies { moved }
    }

    /// Marks a chat whose head moved.
    pub fn moved(&self, chat_id: &str) {
        // The task ends only once every sender is gone, so this cannot fail.
        let _ = self.moved.send(chat_id.to_owned());
    }
}

async fn copy_marked(store: Store, mut marks: mpsc::UnboundedReceiver<String>, every: Duration) {
    let mut marked = HashSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            mark = marks.recv() => match mark {
                Some(chat_id) => { marked.insert(chat_id); }
                None => {
                    copy(&store, &mut marked).await;
                    return;
                }
            },
            _ = tick.tick() => copy(&store, &mut marked).await,
        }
    }
}

/// Copies the marked chats' heads; the chats of a failed copy stay marked.
async fn copy(store: &Store, marked: &mut HashSet<String>) {
    let chats: Vec<String> = marked.drain().collect();
    for chunk in chats.chunks(MAX_ITEMS) {
        if let Err(error) = store.copy_heads_to_chats(chunk).await {
            tracing::warn!(%error, chats = chunk.len(), "cannot copy heads into chat documents; retrying");
            marked.extend(chunk.iter().cloned());
        }
    }
}
