//! The `chat.rpc` NATS service (`nats micro` compatible), answered by every api replica
//! in one queue group, for the edges: `memberships` (a user's chats), `sync` (what a
//! reconnecting client missed) and `presence` (a snapshot for `presence.watch`).

use std::collections::{BTreeMap, HashSet};

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

use crate::state::AppState;

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

async fn memberships(state: AppState, request: MembershipsRequest) -> Result<MembershipsReply, RpcError> {
    check_user(&request.user_id)?;
    let docs = state.inner.store.memberships(&request.user_id).await.map_err(storage)?;
    Ok(MembershipsReply { chats: docs.into_iter().map(|p| Membership { chat_id: p.chat_id, role: p.role }).collect() })
}

/// Per requested chat, the messages whose latest change is newer than the client's
/// seq; chats the client did not know; chats it no longer belongs to.
pub async fn sync(state: AppState, request: SyncRequest) -> Result<SyncResult, RpcError> {
    check_user(&request.user_id)?;
    if request.chats.len() > rpc::SYNC_MAX_CHATS {
        return Err(RpcError { error: format!("at most {} chats per sync", rpc::SYNC_MAX_CHATS) });
    }
    let store = &state.inner.store;
    let member_of: Vec<String> =
        store.memberships(&request.user_id).await.map_err(storage)?.into_iter().map(|p| p.chat_id).collect();
    let chats = store.chats_by_ids(&member_of).await.map_err(storage)?;
    let mut result = SyncResult { chats: BTreeMap::new(), new_chats: Vec::new(), removed_chats: Vec::new() };
    let known: HashSet<&String> = member_of.iter().collect();
    result.removed_chats = request.chats.keys().filter(|id| !known.contains(id)).cloned().collect();
    for chat in chats {
        let Some(&since) = request.chats.get(&chat.id) else {
            result.new_chats.push(chat.into());
            continue;
        };
        let last_seq = u64::try_from(chat.last_seq).unwrap_or(0);
        let mut docs =
            store.changes_since(&chat.id, since, last_seq, rpc::SYNC_MAX_MESSAGES + 1).await.map_err(storage)?;
        let has_more = docs.len() > rpc::SYNC_MAX_MESSAGES as usize;
        docs.truncate(rpc::SYNC_MAX_MESSAGES as usize);
        let chat: chat_nats::model::Chat = chat.into();
        let changes = ChatChanges {
            messages: docs.into_iter().map(Into::into).collect(),
            has_more,
            last_seq: chat.last_seq,
            chat: chat.clone(),
        };
        result.chats.insert(chat.id.clone(), changes);
    }
    Ok(result)
}

async fn presence(state: AppState, request: PresenceRequest) -> Result<PresenceReply, RpcError> {
    if request.user_ids.len() > crate::routes::users::MAX_PRESENCE_IDS {
        return Err(RpcError { error: "at most 200 users".into() });
    }
    for id in &request.user_ids {
        check_user(id)?;
    }
    let users =
        crate::presence::lookup(&state, &request.user_ids).await.map_err(|error| RpcError { error: error.message })?;
    Ok(PresenceReply { users })
}
