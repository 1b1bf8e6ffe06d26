//! Paged reads (history both ways, sync's changes) against the real MongoDB-compatible
//! store the test support starts: the pages are the ones a plain sorted query with a
//! limit would give, across seq gaps of every size (edits, deletes and membership events
//! consume seqs; a crash can leave more) and at both ends of a chat.

use chat_nats::model::{ChatKind, Role};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc, MessageDoc},
    messages::HistoryPage,
};
use chat_testkit::Servers;
use chrono::{DateTime, Duration, Utc};

/// Page sizes tried: one, odd, the api's default plus one, its maximum plus one.
const LIMITS: [u32; 4] = [1, 7, 51, 201];

async fn store(servers: &Servers) -> Store {
    let args = servers.mongo_args();
    let client = mongodb::Client::with_uri_str(&args.mongodb_uri).await.unwrap_or_else(|e| panic!("client: {e}"));
    let store = Store::new(client.database(&args.mongodb_db));
    store.ensure_indexes().await.unwrap_or_else(|e| panic!("indexes: {e}"));
    store
}

async fn insert_chat(store: &Store, chat_id: &str, last_seq: i64) {
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
        participants: vec![MemberDoc { user_id: "u1".into(), role: Role::Owner }],
        external_id: None,
        direct_key: None,
        last_update: None,
        last_removal: None,
        history_visibility: Default::default(),
    };
    store.insert_chat(&chat).await.unwrap_or_else(|e| panic!("chat: {e}"));
}

/// Now, to the millisecond BSON keeps, so documents read back compare equal.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

fn message(chat_id: &str, seq: i64) -> MessageDoc {
    MessageDoc {
        id: format!("{chat_id}-m{seq}"),
        chat_id: chat_id.into(),
        seq,
        updated_seq: seq,
        sender_id: if seq % 3 == 0 { "u2".into() } else { "u1".into() },
        client_msg_id: format!("k{seq}"),
        text: format!("message {seq}"),
        reply_to: None,
        created_at: now_ms() - Duration::seconds(1_000_000 - seq),
        edited_at: None,
        deleted_at: None,
        last_command: None,
    }
}

/// A chat's events as the persister would leave them, seq by seq: mostly sends, some
/// edits and deletes of earlier messages and membership events (which take a seq and
/// leave no message at it), a gap of `big_gap` seqs in the middle (wider than any first
/// window), and membership events at both ends. Returns the messages and `last_seq`.
fn gapped_chat(chat_id: &str, big_gap: i64) -> (Vec<MessageDoc>, i64) {
    let mut messages: Vec<MessageDoc> = Vec::new();
    // A small linear congruential generator: the same chat on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut draw = move |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    // Seqs 1..=40 are the chat's creation and members joining.
    let mut seq = 40;
    for step in 0..900 {
        seq += 1;
        if step == 450 {
            seq += big_gap;
        }
        match draw(20) {
            0..=12 => messages.push(message(chat_id, seq)),
            13..=15 if !messages.is_empty() => {
                let index = draw(messages.len() as u64) as usize;
                let edited = &mut messages[index];
                if edited.deleted_at.is_none() {
                    edited.text = format!("edited at {seq}");
                    edited.edited_at = Some(now_ms());
                    edited.updated_seq = seq;
                }
            }
            16..=17 if !messages.is_empty() => {
                let index = draw(messages.len() as u64) as usize;
                let deleted = &mut messages[index];
                if deleted.deleted_at.is_none() {
                    deleted.text = String::new();
                    deleted.deleted_at = Some(now_ms());
                    deleted.updated_seq = seq;
                }
            }
            // Membership events, renames, and edits that found nothing to change.
            _ => {}
        }
    }
    // Members added and removed after the last message.
    (messages, seq + 300)
}

/// What a plain query sorted by seq with a limit returns.
fn expected_history(messages: &[MessageDoc], page: HistoryPage, limit: u32) -> Vec<MessageDoc> {
    let mut sorted = messages.to_vec();
    sorted.sort_by_key(|m| m.seq);
    let selected: Vec<MessageDoc> = match page {
        HistoryPage::Before(before) => sorted
            .into_iter()
            .rev()
            .filter(|m| before.is_none_or(|before| u64::try_from(m.seq).is_ok_and(|seq| seq < before)))
            .collect(),
        HistoryPage::After(after) => {
            sorted.into_iter().filter(|m| u64::try_from(m.seq).is_ok_and(|seq| seq > after)).collect()
        }
    };
    selected.into_iter().take(limit as usize).collect()
}

/// What a plain query on `updated_seq > after` sorted by it with a limit returns.
fn expected_changes(messages: &[MessageDoc], after: u64, limit: u32) -> Vec<MessageDoc> {
    let mut changed: Vec<MessageDoc> =
        messages.iter().filter(|m| u64::try_from(m.updated_seq).is_ok_and(|seq| seq > after)).cloned().collect();
    changed.sort_by_key(|m| m.updated_seq);
    changed.into_iter().take(limit as usize).collect()
}

fn seqs(messages: &[MessageDoc]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

async fn history(store: &Store, chat_id: &str, page: HistoryPage, limit: u32) -> Vec<MessageDoc> {
    store.history(chat_id, page, limit).await.unwrap_or_else(|e| panic!("history {page:?} {limit}: {e}"))
}

/// Cursors worth trying in a chat: both ends, around every message and every gap edge.
fn cursors(messages: &[MessageDoc], last_seq: i64) -> Vec<u64> {
    let mut cursors: Vec<u64> = vec![0, 1, 2, u64::MAX];
    for m in messages {
        for seq in [m.seq - 1, m.seq, m.seq + 1] {
            cursors.push(u64::try_from(seq).unwrap_or(0));
        }
    }
    for seq in [last_seq - 1, last_seq, last_seq + 1, last_seq + 1_000_000] {
        cursors.push(u64::try_from(seq).unwrap_or(0));
    }
    cursors.sort_unstable();
    cursors.dedup();
    cursors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_are_those_of_a_plain_sorted_query_across_gaps_and_at_both_ends() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    let (messages, last_seq) = gapped_chat("c1", 25_000);
    insert_chat(&store, "c1", last_seq).await;
    store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("messages: {e}"));
    // Neighbours in the same index: a chat whose id extends this one's, with the same seqs.
    let (neighbours, neighbour_last) = gapped_chat("c10", 3);
    insert_chat(&store, "c10", neighbour_last).await;
    store.insert_messages(&neighbours).await.unwrap_or_else(|e| panic!("neighbours: {e}"));
    assert!(messages.iter().any(|m| m.deleted_at.is_some()) && messages.iter().any(|m| m.edited_at.is_some()));

    // Every cursor, both ways, with every page size: some of them with a sample of cursors
    // to keep the test short.
    let all = cursors(&messages, last_seq);
    for limit in LIMITS {
        let step = if limit == 51 { 1 } else { 7 };
        for &cursor in all.iter().step_by(step) {
            for page in [HistoryPage::Before(Some(cursor)), HistoryPage::After(cursor)] {
                let got = history(&store, "c1", page, limit).await;
                let want = expected_history(&messages, page, limit);
                assert_eq!(seqs(&got), seqs(&want), "{page:?} limit {limit}");
                assert_eq!(got, want, "{page:?} limit {limit}: the documents, tombstones and edits included");
            }
        }
        let first = history(&store, "c1", HistoryPage::Before(None), limit).await;
        assert_eq!(first, expected_history(&messages, HistoryPage::Before(None), limit), "first page, limit {limit}");
    }

    // The ends: nothing before the first seq or after the last one.
    assert!(history(&store, "c1", HistoryPage::Before(Some(1)), 51).await.is_empty());
    assert!(history(&store, "c1", HistoryPage::Before(Some(0)), 51).await.is_empty());
    let last = u64::try_from(last_seq).unwrap_or(0);
    assert!(history(&store, "c1", HistoryPage::After(last), 51).await.is_empty());
    let newest = messages.iter().map(|m| m.seq).max().unwrap_or(0);
    assert!(history(&store, "c1", HistoryPage::After(u64::try_from(newest).unwrap_or(0)), 51).await.is_empty());

    // Walking the whole chat page by page, as a client with cursors does, both ways.
    let mut walked = Vec::new();
    let mut page = HistoryPage::Before(None);
    loop {
        let got = history(&store, "c1", page, 50).await;
        let Some(oldest) = got.last() else { break };
        page = HistoryPage::Before(Some(u64::try_from(oldest.seq).unwrap_or(0)));
        walked.extend(seqs(&got));
    }
    let mut every: Vec<i64> = seqs(&messages);
    every.sort_unstable();
    assert_eq!(walked.iter().rev().copied().collect::<Vec<_>>(), every, "newest first, back to the first message");
    let mut walked = Vec::new();
    let mut page = HistoryPage::After(0);
    loop {
        let got = history(&store, "c1", page, 50).await;
        let Some(newest) = got.last() else { break };
        page = HistoryPage::After(u64::try_from(newest.seq).unwrap_or(0));
        walked.extend(seqs(&got));
    }
    assert_eq!(walked, every, "oldest first, up to the newest message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_empty_and_unknown_chats_give_short_or_empty_pages() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    // Three messages among membership events; far fewer than a page.
    insert_chat(&store, "small", 12).await;
    let small: Vec<MessageDoc> = [4, 5, 9].into_iter().map(|seq| message("small", seq)).collect();
    store.insert_messages(&small).await.unwrap_or_else(|e| panic!("{e}"));
    // Only its creation event: no message at all.
    insert_chat(&store, "empty", 1).await;

    for limit in LIMITS {
        assert_eq!(
            seqs(&history(&store, "small", HistoryPage::Before(None), limit).await),
            [9, 5, 4][..limit.min(3) as usize]
        );
        assert_eq!(
            seqs(&history(&store, "small", HistoryPage::After(0), limit).await),
            [4, 5, 9][..limit.min(3) as usize]
        );
    }
    assert_eq!(seqs(&history(&store, "small", HistoryPage::Before(Some(9)), 51).await), [5, 4]);
    assert_eq!(seqs(&history(&store, "small", HistoryPage::Before(Some(4)), 51).await), Vec::<i64>::new());
    assert_eq!(seqs(&history(&store, "small", HistoryPage::After(4), 51).await), [5, 9]);
    assert_eq!(seqs(&history(&store, "small", HistoryPage::After(9), 51).await), Vec::<i64>::new());
    for page in [HistoryPage::Before(None), HistoryPage::Before(Some(5)), HistoryPage::After(0)] {
        assert!(history(&store, "empty", page, 51).await.is_empty(), "{page:?}");
        assert!(history(&store, "nowhere", page, 51).await.is_empty(), "{page:?}");
    }
    assert!(store.changes_since("small", 0, 0, 51).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    let changes = store.changes_since("small", 0, 12, 51).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seqs(&changes), [4, 5, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_a_seq_are_those_of_a_plain_sorted_query_across_gaps() {
    let servers = Servers::start().await;
    let store = store(&servers).await;
    let (messages, last_seq) = gapped_chat("c1", 40_000);
    insert_chat(&store, "c1", last_seq).await;
    store.insert_messages(&messages).await.unwrap_or_else(|e| panic!("messages: {e}"));
    let last = u64::try_from(last_seq).unwrap_or(0);
    let mut after: Vec<u64> = messages.iter().map(|m| u64::try_from(m.updated_seq).unwrap_or(0)).collect();
    after.extend([0, 1, last - 1, last]);
    after.sort_unstable();
    after.dedup();
    for limit in [1, 51, 501] {
        for &since in after.iter().step_by(if limit == 51 { 1 } else { 5 }) {
            let got = store.changes_since("c1", since, last, limit).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, expected_changes(&messages, since, limit), "after {since}, limit {limit}");
        }
    }
    // Resuming from the last change of each page visits every message once, in the
    // order of its latest change.
    let mut since = 0;
    let mut visited = Vec::new();
    loop {
        let got = store.changes_since("c1", since, last, 50).await.unwrap_or_else(|e| panic!("{e}"));
        let Some(newest) = got.last() else { break };
        since = u64::try_from(newest.updated_seq).unwrap_or(0);
        visited.extend(got.into_iter().map(|m| m.id));
    }
    let want: Vec<String> = expected_changes(&messages, 0, u32::MAX).into_iter().map(|m| m.id).collect();
    assert_eq!(visited, want);
}
