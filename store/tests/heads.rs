//! Many chats' heads moved in one command, against the real store: each move is
//! applied only while its chat still has the expected `last_seq`, and the answer says
//! which were.

use chat_store::{Store, docs::LastMessageDoc, heads::HeadMove};
use chat_testkit::Servers;
use chrono::Utc;
use common::{insert_chat, store};

mod common;

fn head(chat_id: &str, expected: u64, seq: i64) -> HeadMove {
    let last = LastMessageDoc {
        id: format!("{chat_id}-m{seq}"),
        seq,
        sender_id: "u1".into(),
        text: format!("message {seq}"),
        created_at: Utc::now(),
    };
    HeadMove { chat_id: chat_id.into(), expected, last }
}

async fn head_of(store: &Store, chat_id: &str) -> (i64, Option<String>) {
    let chat = store.chat(chat_id).await.unwrap_or_else(|e| panic!("chat: {e}"));
    let chat = chat.unwrap_or_else(|| panic!("no chat {chat_id}"));
    (chat.last_seq, chat.last_message.map(|last| last.id))
}

#[tokio::test]
async fn moves_apply_where_the_expected_seq_holds_and_say_which_did() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat(&store, "a", 4).await;
    insert_chat(&store, "b", 9).await;
    insert_chat(&store, "c", 0).await;

    let all = [head("a", 4, 6), head("b", 9, 10), head("c", 0, 3)];
    let applied = store.advance_heads(&all, Utc::now()).await.unwrap_or_else(|e| panic!("move: {e}"));
    assert_eq!(applied, [true, true, true]);
    assert_eq!(head_of(&store, "a").await, (6, Some("a-m6".into())));
    assert_eq!(head_of(&store, "b").await, (10, Some("b-m10".into())));

    // "a" is at 6 now, so a move from 4 is stale; "gone" does not exist; "b" moves on.
    let mixed = [head("a", 4, 5), head("gone", 0, 1), head("b", 10, 12)];
    let applied = store.advance_heads(&mixed, Utc::now()).await.unwrap_or_else(|e| panic!("move: {e}"));
    assert_eq!(applied, [false, false, true]);
    assert_eq!(head_of(&store, "a").await, (6, Some("a-m6".into())), "a stale move changed the chat");
    assert_eq!(head_of(&store, "b").await, (12, Some("b-m12".into())));
    assert_eq!(head_of(&store, "c").await, (3, Some("c-m3".into())), "a chat not named was changed");

    assert_eq!(store.advance_heads(&[], Utc::now()).await.unwrap_or_else(|e| panic!("move: {e}")), Vec::<bool>::new());
}
