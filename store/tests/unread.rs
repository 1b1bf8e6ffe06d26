//! What push badges are made of, against the real MongoDB-compatible store: every
//! recipient's read positions in one read, and unread counts that take only messages
//! of others after the read mark, not deleted, up to a bound.

use chat_nats::model::Role;
use chat_store::docs::{MessageDoc, ParticipantDoc};
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

#[tokio::test]
async fn read_positions_and_bounded_unread_counts_give_each_members_badge() {
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

    let ids: Vec<String> = ["u1", "u2", "u3", "u4"].iter().map(|id| (*id).to_owned()).collect();
    let mut positions = store.read_positions(&ids).await.unwrap_or_else(|e| panic!("positions: {e}"));
    positions.sort_by(|x, y| (&x.user_id, &x.chat_id).cmp(&(&y.user_id, &y.chat_id)));
    let seen: Vec<(&str, &str, u64)> =
        positions.iter().map(|p| (p.user_id.as_str(), p.chat_id.as_str(), p.last_read_seq)).collect();
    assert_eq!(seen, [("u1", "a", 2), ("u1", "b", 1), ("u2", "a", 0), ("u3", "a", 6), ("u3", "b", 0)]);
    assert!(store.read_positions(&[]).await.unwrap_or_else(|e| panic!("{e}")).is_empty());

    // Each badge is the sum of its chats' counts: u1 has a 3 and 6 (4 is deleted, 5 is
    // their own) and b 2 and 3; u2 a 1, 2 and 5; u3 nothing (their own in b).
    let mut badges: std::collections::BTreeMap<&str, u64> = Default::default();
    for position in &positions {
        let count = |up_to| store.count_unread(&position.chat_id, &position.user_id, position.last_read_seq, up_to);
        let unread = count(u64::MAX).await.unwrap_or_else(|e| panic!("{e}"));
        *badges.entry(position.user_id.as_str()).or_default() += unread;
    }
    assert_eq!(badges.into_iter().collect::<Vec<_>>(), [("u1", 4), ("u2", 3), ("u3", 0)]);
    // Bounded above, a count stops at the seq it names.
    assert_eq!(store.count_unread("a", "u1", 2, 5).await.unwrap_or_else(|e| panic!("{e}")), 1);
    assert_eq!(store.count_unread("a", "u2", 0, 2).await.unwrap_or_else(|e| panic!("{e}")), 2);
}
