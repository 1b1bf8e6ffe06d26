//! The `chat.rpc` NATS service (`nats micro` compatible), answered by every api replica
//! in one queue group: `memberships` lists a user's chats for the edges.

use chat_core::StartupError;
use chat_nats::rpc::{self, Membership, MembershipsReply, MembershipsRequest, RpcError};
use chat_store::Store;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts the service; it stops with `shutdown`.
pub async fn serve(
    nats: async_nats::Client,
    store: Store,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, StartupError> {
    use async_nats::service::ServiceExt;
    let service = nats
        .service_builder()
        .description("chat service request/reply endpoints")
        .start(rpc::SERVICE_NAME, "1.0.0")
        .await
        .map_err(|error| StartupError::dependency("starting the chat.rpc service", error))?;
    let mut memberships = service
        .group(chat_nats::subjects::RPC_PREFIX)
        .endpoint(rpc::MEMBERSHIPS)
        .await
        .map_err(|error| StartupError::dependency("adding the memberships endpoint", error))?;
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = memberships.next() => match next { Some(request) => request, None => break },
            };
            let store = store.clone();
            tokio::spawn(async move {
                let reply = answer_memberships(&store, &request.message.payload).await;
                let body = match &reply {
                    Ok(reply) => serde_json::to_vec(reply),
                    Err(error) => serde_json::to_vec(error),
                }
                .unwrap_or_default();
                if let Err(error) = request.respond(Ok(body.into())).await {
                    tracing::warn!(%error, "cannot answer a memberships request");
                }
            });
        }
        let _ = service.stop().await;
    }))
}

async fn answer_memberships(store: &Store, payload: &[u8]) -> Result<MembershipsReply, RpcError> {
    let request: MembershipsRequest =
        serde_json::from_slice(payload).map_err(|error| RpcError { error: format!("bad request: {error}") })?;
    if !chat_nats::subjects::is_valid_id(&request.user_id) {
        return Err(RpcError { error: "invalid user id".into() });
    }
    let docs =
        store.memberships(&request.user_id).await.map_err(|error| RpcError { error: format!("storage: {error}") })?;
    Ok(MembershipsReply { chats: docs.into_iter().map(|p| Membership { chat_id: p.chat_id, role: p.role }).collect() })
}
