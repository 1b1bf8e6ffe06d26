//! The `chat.rpc` NATS service (`nats micro` compatible), answered by every api replica
//! in one queue group, for the edges: `memberships` (a user's chats), `sync` (what a
//! reconnecting client missed) and `presence` (a snapshot for `presence.watch`).

use std::collections::{BTreeMap, HashMap, HashSet};

use async_nats::service::{ServiceExt, endpoint::Endpoint};
use chat_core::StartupError;
use chat_nats::rpc::{
    self, ChatChanges, Membership, MembershipsReply, MembershipsRequest, PresenceReply, PresenceRequest, RpcError,
    SyncRequest, SyncResult,
};
use futures::{StreamExt, future::BoxFuture};
use serde::{Serialize, de::DeserializeOwned};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{privacy, state::AppState};

/// Starts the service; it stops with `shutdown`.
pub async fn serve(
    nats: async_nats::Client,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, StartupError> {
    let service = nats
        .service_builder()
        .description("chat service request/reply endpoints")
        .start(rpc::SERVICE_NAME, "1.0.0")
        .await
        .map_err(|error| StartupError::dependency("starting the chat.rpc service", error))?;
    let group = service.group(chat_nats::subjects::RPC_PREFIX);
    let mut tasks = Vec::new();
    for name in [rpc::MEMBERSHIPS, rpc::SYNC, rpc::PRESENCE] {
        let endpoint = group
            .endpoint(name)
            .await
            .map_err(|error| StartupError::dependency("adding a chat.rpc endpoint", error))?;
        let handler: Handler = match name {
            rpc::MEMBERSHIPS => |state, payload| Box::pin(answer(state, payload, memberships)),
            rpc::SYNC => |state, payload| Box::pin(answer(state, payload, sync)),
            _ => |state, payload| Box::pin(answer(state, payload, presence)),
        };
        tasks.push(tokio::spawn(run_endpoint(endpoint, state.clone(), handler, shutdown.clone())));
    }
    Ok(tokio::spawn(async move {
        for task in tasks {
            let _ = task.await;
        }
        let _ = service.stop().await;
    }))
}

type Handler = fn(AppState, bytes::Bytes) -> BoxFuture<'static, Vec<u8>>;

async fn run_endpoint(mut endpoint: Endpoint, state: AppState, handler: Handler, shutdown: CancellationToken) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = endpoint.next() => match next { Some(request) => request, None => break },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let body = handler(state, request.message.payload.clone()).await;
            if let Err(error) = request.respond(Ok(body.into())).await {
                tracing::warn!(%error, "cannot answer a chat.rpc request");
            }
        });
    }
}

/// Parses the request, runs `work`, and encodes its answer or error.
async fn answer<Req, Rep, F, Fut>(state: AppState, payload: bytes::Bytes, work: F) -> Vec<u8>
where
    Req: DeserializeOwned,
    Rep: Serialize,
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Rep, RpcError>>,
{
    let result = match serde_json::from_slice::<Req>(&payload) {
        Ok(request) => work(state, request).await,
        Err(error) => Err(RpcError { error: format!("bad request: {error}") }),
    };
    match result {
        Ok(reply) => serde_json::to_vec(&reply),
        Err(error) => serde_json::to_vec(&error),
    }
    .unwrap_or_default()
}

fn storage(error: impl std::fmt::Display) -> RpcError {
    RpcError { error: format!("storage: {error}") }
}

fn check_user(user_id: &str) -> Result<(), RpcError> {
    if chat_nats::subjects::is_valid_id(user_id) { Ok(()) } else { Err(RpcError { error: "invalid user id".into() }) }
}

/// One page of the user's chats, in chat id order. The store reads the whole list (a
/// user's memberships are one indexed range); only the answer is paged, because it
/// is the answer that must fit a NATS payload.
async fn memberships(state: AppState, request: MembershipsRequest) -> Result<MembershipsReply, RpcError> {
    check_user(&request.user_id)?;
    let docs = state.inner.store.memberships(&request.user_id).await.map_err(storage)?;
    Ok(memberships_page(
        docs.into_iter().map(|p| Membership {
            chat_id: p.chat_id,
            role: p.role,
            joined_seq: u64::try_from(p.joined_seq).unwrap_or(0),
        }),
        request.after,
    ))
}

fn memberships_page(all: impl Iterator<Item = Membership>, after: Option<String>) -> MembershipsReply {
    let mut chats: Vec<Membership> = all.filter(|m| after.as_ref().is_none_or(|after| m.chat_id > *after)).collect();
    chats.sort_unstable_by(|a, b| a.chat_id.cmp(&b.chat_id));
    let next = (chats.len() > rpc::MEMBERSHIPS_PAGE).then(|| chats[rpc::MEMBERSHIPS_PAGE - 1].chat_id.clone());
    chats.truncate(rpc::MEMBERSHIPS_PAGE);
    MembershipsReply { chats, next }
}

/// What is left of a sync answer's [`rpc::SYNC_MAX_BYTES`].
struct ByteBudget {
    left: usize,
    untouched: bool,
}

impl ByteBudget {
    /// Takes room for `item` when it fits, and always for the answer's first item, so
    /// that every sync makes progress however large one message or chat is.
    fn take(&mut self, item: &impl Serialize) -> bool {
        let size = serde_json::to_vec(item).map(|bytes| bytes.len() + 1).unwrap_or(usize::MAX);
        if size > self.left && !self.untouched {
            return false;
        }
        self.left = self.left.saturating_sub(size);
        self.untouched = false;
        true
    }
}

/// Per requested chat, the messages whose latest change is newer than the client's
/// seq; chats the client did not know; chats it no longer belongs to. Cut to
/// [`rpc::SYNC_MAX_BYTES`] of messages and chats, in request order and then the new
/// chats: what does not fit is marked `has_more` and comes with the next sync.
pub async fn sync(state: AppState, request: SyncRequest) -> Result<SyncResult, RpcError> {
    check_user(&request.user_id)?;
    if request.chats.len() > rpc::SYNC_MAX_CHATS {
        return Err(RpcError { error: format!("at most {} chats per sync", rpc::SYNC_MAX_CHATS) });
    }
    let store = &state.inner.store;
    let joined: HashMap<String, i64> = store
        .memberships(&request.user_id)
        .await
        .map_err(storage)?
        .into_iter()
        .map(|p| (p.chat_id, p.joined_seq))
        .collect();
    let member_of: Vec<String> = joined.keys().cloned().collect();
    // Each chat with the first seq this user reads in it (their joining, in a
    // `since_join` chat), its preview hidden when older.
    let mut chats: BTreeMap<String, (chat_nats::model::Chat, u64)> = store
        .chats_by_ids(&member_of)
        .await
        .map_err(storage)?
        .into_iter()
        .map(|chat| {
            let first_seq =
                privacy::first_readable_seq(chat.history_visibility, joined.get(&chat.id).copied().unwrap_or(i64::MAX));
            (chat.id.clone(), (privacy::chat_as_seen(chat.into(), first_seq), first_seq))
        })
        .collect();
    let mut result =
        SyncResult { chats: BTreeMap::new(), new_chats: Vec::new(), removed_chats: Vec::new(), has_more: false };
    let known: HashSet<&String> = member_of.iter().collect();
    result.removed_chats = request.chats.keys().filter(|id| !known.contains(id)).cloned().collect();
    let mut budget = ByteBudget { left: rpc::SYNC_MAX_BYTES, untouched: true };
    for (chat_id, &since) in &request.chats {
        let Some((chat, first_seq)) = chats.remove(chat_id) else { continue };
        let changes = chat_changes(store, chat, since, first_seq, &mut budget).await?;
        result.has_more |= changes.has_more;
        result.chats.insert(chat_id.clone(), changes);
    }
    for (chat, _) in chats.into_values() {
        if !budget.take(&chat) {
            result.has_more = true;
            break;
        }
        result.new_chats.push(chat);
    }
    Ok(result)
}

/// One chat's changes after `since` to messages from `first_seq` on, as many as the
/// budget holds.
async fn chat_changes(
    store: &chat_store::Store,
    chat: chat_nats::model::Chat,
    since: u64,
    first_seq: u64,
    budget: &mut ByteBudget,
) -> Result<ChatChanges, RpcError> {
    let mut changes = ChatChanges { messages: Vec::new(), has_more: true, last_seq: chat.last_seq, chat: None };
    if !budget.take(&chat) {
        return Ok(changes);
    }
    let limit = rpc::SYNC_MAX_MESSAGES + 1;
    let docs = store.changes_since_from(&chat.id, since, changes.last_seq, limit, first_seq).await.map_err(storage)?;
    changes.chat = Some(chat);
    let more_than_a_page = docs.len() > rpc::SYNC_MAX_MESSAGES as usize;
    for doc in docs.into_iter().take(rpc::SYNC_MAX_MESSAGES as usize) {
        let message: chat_nats::model::Message = doc.into();
        if !budget.take(&message) {
            return Ok(changes);
        }
        changes.messages.push(message);
    }
    changes.has_more = more_than_a_page;
    Ok(changes)
}

async fn presence(state: AppState, request: PresenceRequest) -> Result<PresenceReply, RpcError> {
    if request.user_ids.len() > crate::routes::users::MAX_PRESENCE_IDS {
        return Err(RpcError { error: "at most 200 users".into() });
    }
    for id in &request.user_ids {
        check_user(id)?;
    }
    let (users, hidden) = crate::presence::lookup(&state, request.viewer.as_ref(), &request.user_ids)
        .await
        .map_err(|error| RpcError { error: error.message })?;
    Ok(PresenceReply { users, hidden })
}

#[cfg(test)]
mod tests {
    use chat_nats::model::Role;

    use super::*;

    fn member_of(count: usize) -> impl Iterator<Item = Membership> {
        (0..count).rev().map(|i| Membership { chat_id: format!("c{i:05}"), role: Role::Member, joined_seq: 1 })
    }

    #[test]
    fn memberships_come_in_pages_in_chat_id_order_until_no_cursor() {
        let total = rpc::MEMBERSHIPS_PAGE * 2 + 3;
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = memberships_page(member_of(total), after);
            assert!(page.chats.len() <= rpc::MEMBERSHIPS_PAGE);
            seen.extend(page.chats.into_iter().map(|m| m.chat_id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..total).map(|i| format!("c{i:05}")).collect();
        assert_eq!(seen, expected);
        assert_eq!(memberships_page(member_of(rpc::MEMBERSHIPS_PAGE), None).next, None, "a full last page");
    }

    #[test]
    fn a_budget_refuses_what_does_not_fit_but_never_the_first_item() {
        let mut budget = ByteBudget { left: 10, untouched: true };
        assert!(budget.take(&"x".repeat(100)), "the first item always fits");
        assert!(!budget.take(&"y"), "nothing is left");
        let mut budget = ByteBudget { left: 12, untouched: true };
        assert!(budget.take(&"abc"));
        assert!(budget.take(&"abc"));
        assert!(!budget.take(&"abc"), "three items of 6 bytes are more than 12");
    }
}
