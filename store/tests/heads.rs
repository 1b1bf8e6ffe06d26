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

/// A chat document as an earlier version stored it: no head.
async fn insert_chat_without_head(store: &Store, chat_id: &str, last_seq: i64) {
    insert_chat(store, chat_id, last_seq).await;
    store.heads().delete_one(bson::doc! { "_id": chat_id }).await.unwrap_or_else(|e| panic!("delete head: {e}"));
}

async fn chat_document(store: &Store, chat_id: &str) -> chat_store::docs::ChatDoc {
    let chat = store.chats().find_one(bson::doc! { "_id": chat_id }).await.unwrap_or_else(|e| panic!("chat: {e}"));
    chat.unwrap_or_else(|| panic!("no chat document {chat_id}"))
}

#[tokio::test]
async fn readers_see_the_head_and_the_chat_document_gets_a_copy_that_never_goes_back() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat(&store, "a", 2).await;
    let applied = store.advance_heads(&[head("a", 2, 5)], Utc::now()).await.unwrap_or_else(|e| panic!("move: {e}"));
    assert_eq!(applied, [true]);

    // The chat document still says 2; every reader says 5.
    assert_eq!(chat_document(&store, "a").await.last_seq, 2);
    assert_eq!(head_of(&store, "a").await, (5, Some("a-m5".into())));
    let listed = store.chats_by_ids(&["a".into()]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.iter().map(|c| c.last_seq).collect::<Vec<_>>(), [5]);
    assert_eq!(store.last_seq("a").await.unwrap_or_else(|e| panic!("{e}")), Some(5));

    store.copy_heads_to_chats(&["a".into(), "gone".into()]).await.unwrap_or_else(|e| panic!("copy: {e}"));
    let copied = chat_document(&store, "a").await;
    assert_eq!((copied.last_seq, copied.last_message.map(|m| m.id)), (5, Some("a-m5".into())));

    // An edit of the newest message changes the preview's text at the same seq: copied too.
    store.refresh_last_message_text("a", "a-m5", "edited").await.unwrap_or_else(|e| panic!("{e}"));
    store.copy_heads_to_chats(&["a".into()]).await.unwrap_or_else(|e| panic!("copy: {e}"));
    assert_eq!(chat_document(&store, "a").await.last_message.map(|m| m.text), Some("edited".into()));

    // A copy made from an older head (another replica's, late) does not lower the chat's.
    store
        .chats()
        .update_one(bson::doc! { "_id": "a" }, bson::doc! { "$set": { "last_seq": 9_i64 } })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store.copy_heads_to_chats(&["a".into()]).await.unwrap_or_else(|e| panic!("copy: {e}"));
    assert_eq!(chat_document(&store, "a").await.last_seq, 9);
}

#[tokio::test]
async fn a_chat_stored_without_a_head_is_read_from_its_document_and_seeded_by_its_first_write() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat_without_head(&store, "old", 7).await;
    insert_chat_without_head(&store, "older", 3).await;

    // Readers fall back to the chat document; a compare-and-set finds no head.
    assert_eq!(head_of(&store, "old").await, (7, None));
    let applied = store.advance_heads(&[head("old", 7, 8)], Utc::now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied, [false], "no head, no move: the caller reads the chat again");

    // Reading `last_seq` as a writer seeds the head; an increment seeds it by itself.
    assert_eq!(store.last_seq("old").await.unwrap_or_else(|e| panic!("{e}")), Some(7));
    let applied = store.advance_heads(&[head("old", 7, 8)], Utc::now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied, [true]);
    assert_eq!(head_of(&store, "old").await, (8, Some("old-m8".into())));
    assert_eq!(store.reserve_seqs("older", 2).await.unwrap_or_else(|e| panic!("{e}")), Some(5));
    assert_eq!(head_of(&store, "older").await.0, 5);
    assert_eq!(store.reserve_seqs("gone", 1).await.unwrap_or_else(|e| panic!("{e}")), None);
}

#[tokio::test]
async fn a_users_chats_are_ranked_by_the_later_of_head_and_chat_activity() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    for chat_id in ["x", "y", "z"] {
        insert_chat(&store, chat_id, 1).await;
    }
    // "y" gets a message, then "x" one: x, y, z (z is the newest created but quiet).
    let later = |ms| Utc::now() + chrono::Duration::milliseconds(ms);
    store.advance_heads(&[head("y", 1, 2)], later(1_000)).await.unwrap_or_else(|e| panic!("{e}"));
    store.advance_heads(&[head("x", 1, 2)], later(2_000)).await.unwrap_or_else(|e| panic!("{e}"));
    let ids = |chats: Vec<chat_store::docs::ChatDoc>| chats.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let first = store.chats_of_user("u1", None, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.iter().map(|c| c.last_seq).collect::<Vec<_>>(), [2, 2]);
    let cursor = first.last().map(|c| (c.updated_at, c.id.clone()));
    assert_eq!(ids(first), ["x", "y"]);
    let rest = store.chats_of_user("u1", cursor, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(rest), ["z"]);

    // A rename dates the chat document: "z" comes first without a message.
    store
        .update_chat("z", bson::doc! { "$set": { "updated_at": bson::DateTime::from_chrono(later(3_000)) } })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let all = store.chats_of_user("u1", None, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(all), ["z", "x", "y"]);
}

fn message(chat_id: &str, seq: i64) -> chat_store::docs::MessageDoc {
    chat_store::docs::MessageDoc {
        id: format!("{chat_id}-m{seq}"),
        chat_id: chat_id.into(),
        seq,
        updated_seq: seq,
        sender_id: "u1".into(),
        client_msg_id: format!("k{seq}"),
        text: format!("message {seq}"),
        reply_to: None,
        created_at: Utc::now(),
        edited_at: None,
        deleted_at: None,
        last_command: None,
    }
}

/// The seqs of the newest page a member who joined at `joined_seq` reads (a membership
/// of its own per `joined_seq`).
async fn page_seqs(store: &Store, chat_id: &str, joined_seq: u64) -> Vec<i64> {
    let user_id = format!("joined-at-{joined_seq}");
    let member = chat_store::docs::ParticipantDoc {
        id: chat_store::docs::ParticipantDoc::key(chat_id, &user_id),
        chat_id: chat_id.into(),
        user_id: user_id.clone(),
        role: chat_nats::model::Role::Member,
        joined_at: Utc::now(),
        joined_seq: i64::try_from(joined_seq).unwrap_or(i64::MAX),
        role_seq: None,
        last_read_seq: 0,
        muted: false,
        muted_until: None,
        added_by: None,
    };
    store.insert_participants(&[member]).await.unwrap_or_else(|e| panic!("membership: {e}"));
    let page = store
        .member_history(chat_id, &user_id, chat_store::messages::HistoryPage::Before(None), 50)
        .await
        .unwrap_or_else(|e| panic!("history: {e}"))
        .unwrap_or_else(|| panic!("{user_id} is a member"));
    page.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn a_members_history_is_bounded_by_the_visibility_the_head_records() {
    use chat_nats::model::HistoryVisibility;
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat(&store, "c", 0).await;
    let messages: Vec<_> = (1..=8).map(|seq| message("c", seq)).collect();
    store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("insert: {e}"));
    store.reserve_seqs("c", 8).await.unwrap_or_else(|e| panic!("reserve: {e}"));
    let mark = chat_store::docs::ChangeMark { command_id: "cmd-1".into(), seq: 9 };
    store
        .rename_chat("c", None, Some(HistoryVisibility::SinceJoin), &mark, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("rename: {e}"));
    let head = store.heads().find_one(bson::doc! { "_id": "c" }).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.and_then(|h| h.history_visibility), Some(HistoryVisibility::SinceJoin));
    assert_eq!(page_seqs(&store, "c", 6).await, [8, 7, 6]);
    assert_eq!(page_seqs(&store, "c", 0).await.len(), 8, "a member from the start reads everything");
    let stranger = store
        .member_history("c", "stranger", chat_store::messages::HistoryPage::Before(None), 50)
        .await
        .unwrap_or_else(|e| panic!("history: {e}"));
    assert!(stranger.is_none(), "no membership, no page");

    // The head is what readers trust: a chat document saying otherwise changes nothing.
    let all = bson::doc! { "$set": { "history_visibility": "all" } };
    store.update_chat("c", all).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page_seqs(&store, "c", 6).await, [8, 7, 6]);

    // A head written before it kept the visibility: the chat document decides.
    let unset = bson::doc! { "$unset": { "history_visibility": "" } };
    store.heads().update_one(bson::doc! { "_id": "c" }, unset).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page_seqs(&store, "c", 6).await.len(), 8);
    let since_join = bson::doc! { "$set": { "history_visibility": "since_join" } };
    store.update_chat("c", since_join).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page_seqs(&store, "c", 6).await, [8, 7, 6]);
}

#[tokio::test]
async fn a_head_seeded_from_an_old_chat_document_records_its_visibility() {
    use chat_nats::model::HistoryVisibility;
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat_without_head(&store, "legacy", 3).await;
    insert_chat_without_head(&store, "private", 3).await;
    // The oldest chat documents have no `history_visibility` at all: the default.
    let unset = bson::doc! { "$unset": { "history_visibility": "" } };
    store.update_chat("legacy", unset).await.unwrap_or_else(|e| panic!("{e}"));
    let since_join = bson::doc! { "$set": { "history_visibility": "since_join" } };
    store.update_chat("private", since_join).await.unwrap_or_else(|e| panic!("{e}"));

    let seeded = |chat_id| {
        let store = store.clone();
        async move { store.head(chat_id).await.unwrap_or_else(|e| panic!("{e}")).and_then(|h| h.history_visibility) }
    };
    assert_eq!(seeded("legacy").await, Some(HistoryVisibility::All));
    assert_eq!(seeded("private").await, Some(HistoryVisibility::SinceJoin));
}
