//! Unread totals (the push badge) against the real MongoDB-compatible store: the totals
//! of several users read together are each user's own total, counting only messages
//! of others after the user's read mark that are not deleted.

use chat_nats::model::Role;
use chat_store::{
    Store,
    docs::{MessageDoc, ParticipantDoc},
};
use chat_testkit::Servers;
use chrono::Utc;
use common::{insert_chat, store};

mod common;

fn message(chat_id: &str, seq: i64, sender_id: &str, deleted: bool) -> MessageDoc {
    MessageDoc {
        id: format!("{chat_id}-m{seq}"),
        chat_id: chat_id.into(),
        seq,
        updated_seq: seq,
        sender_id: sender_id.into(),
        client_msg_id: format!("k{seq}"),
        text: format!("message {seq}"),
        reply_to: None,
        created_at: Utc::now(),
        edited_at: None,
        deleted_at: deleted.then(Utc::now),
        last_command: None,
    }
}

fn membership(chat_id: &str, user_id: &str, last_read_seq: i64) -> ParticipantDoc {
    ParticipantDoc {
        id: ParticipantDoc::key(chat_id, user_id),
        chat_id: chat_id.into(),
        user_id: user_id.into(),
        role: Role::Member,
        joined_at: Utc::now(),
        joined_seq: 1,
        role_seq: None,
        last_read_seq,
        muted: false,
        muted_until: None,
        added_by: None,
    }
}

async fn totals(store: &Store, user_ids: &[&str]) -> Vec<u64> {
    let ids: Vec<String> = user_ids.iter().map(|id| (*id).to_owned()).collect();
    let totals = store.count_unread_totals(&ids).await.unwrap_or_else(|e| panic!("totals: {e}"));
    user_ids.iter().map(|id| totals.get(*id).copied().unwrap_or_else(|| panic!("no total for {id}"))).collect()
}

#[tokio::test]
async fn several_users_totals_read_together_are_each_users_own() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    insert_chat(&store, "a", 6).await;
    insert_chat(&store, "b", 3).await;
    // Chat "a": seqs 1-6, u1 sent 1, 2 and 5, u2 sent 3, 4 (deleted) and 6.
    // Chat "b": seqs 1-3, all from u3.
    let messages = [
        message("a", 1, "u1", false),
        message("a", 2, "u1", false),
        message("a", 3, "u2", false),
        message("a", 4, "u2", true),
        message("a", 5, "u1", false),
        message("a", 6, "u2", false),
        message("b", 1, "u3", false),
        message("b", 2, "u3", false),
        message("b", 3, "u3", false),
    ];
    store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("insert: {e}"));
    let memberships = [
        membership("a", "u1", 2),
        membership("a", "u2", 0),
        membership("a", "u3", 6),
        membership("b", "u1", 1),
        membership("b", "u3", 0),
    ];
    store.insert_participants(&memberships).await.unwrap_or_else(|e| panic!("memberships: {e}"));

    // u1: a 3 and 6 (4 is deleted, 5 is their own), b 2 and 3. u2: a 1, 2 and 5.
    // u3: nothing left in a, and only their own messages in b. u4 is in no chat.
    assert_eq!(totals(&store, &["u1", "u2", "u3", "u4"]).await, [4, 3, 0, 0]);
    for (user_id, alone) in [("u1", 4), ("u2", 3), ("u3", 0), ("u4", 0)] {
        assert_eq!(store.count_unread_total(user_id).await.unwrap_or_else(|e| panic!("{e}")), alone);
    }
    assert!(store.count_unread_totals(&[]).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
}
