//! What the store's tests share: a store on the test servers, and a chat to write to.

use chat_nats::model::{ChatKind, Role};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc},
};
use chat_testkit::Servers;
use chrono::Utc;

/// A store on the test servers' MongoDB-compatible store, with every index.
pub async fn store(servers: &Servers) -> Store {
    let args = servers.mongo_args();
    let client = mongodb::Client::with_uri_str(&args.mongodb_uri).await.unwrap_or_else(|e| panic!("client: {e}"));
    let store = Store::new(client.database(&args.mongodb_db));
    store.ensure_indexes().await.unwrap_or_else(|e| panic!("indexes: {e}"));
    store
}

/// Inserts a group chat with one owner and the given `last_seq`.
pub async fn insert_chat(store: &Store, chat_id: &str, last_seq: i64) {
    let now = Utc::now();
    let chat = ChatDoc {
        id: chat_id.into(),
        kind: ChatKind::Group,
        title: Some("paging".into()),
        created_by: "u1".into(),
        created_at: now,
        updated_at: now,
        last_seq,
        last_message: None,
        participants: vec![MemberDoc { user_id: "u1".into(), role: Role::Owner, muted_until: None }],
        external_id: None,
        direct_key: None,
        last_update: None,
        last_removal: None,
        history_visibility: Default::default(),
        mode: Default::default(),
        last_moderation: None,
    };
    store.insert_chat(&chat).await.unwrap_or_else(|e| panic!("chat: {e}"));
}
