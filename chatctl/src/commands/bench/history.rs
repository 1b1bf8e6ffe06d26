//! The `history` scenario: a chat created over REST is filled with many messages written
//! straight into MongoDB (batched `insert_many` of the store's own documents, seqs
//! following the chat's, then its `last_seq` moved past them), and its history is read
//! page by page at random cursors through the api.

use std::time::{Duration, Instant};

use bson::doc;
use chat_store::docs::MessageDoc;
use futures::StreamExt;
use rand::Rng;
use serde::Deserialize;

use super::{
    BenchError, Settings,
    latency::{Percentiles, histogram},
    population,
    report::HistoryFigures,
    scenario::HistorySpec,
};
use crate::progress::Progress;

/// Messages per `insert_many`.
const BATCH: u64 = 10_000;
/// Batches written at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// The part of a history page that is checked.
#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<serde::de::IgnoredAny>,
}

/// Seeds the chat and measures the pages.
pub async fn run(settings: &Settings, spec: &HistorySpec, progress: &Progress) -> Result<HistoryFigures, BenchError> {
    let uri = settings.mongodb_uri.as_deref().ok_or(BenchError::NoMongo)?;
    let client = mongodb::Client::with_uri_str(uri).await.map_err(BenchError::Mongo)?;
    let store = chat_store::Store::new(client.database(&settings.mongodb_db));
    let result = seed_and_read(settings, &store, spec, progress).await;
    client.shutdown().await;
    result
}

async fn seed_and_read(
    settings: &Settings,
    store: &chat_store::Store,
    spec: &HistorySpec,
    progress: &Progress,
) -> Result<HistoryFigures, BenchError> {
    let users = population::users(settings, &super::run_tag(), 2)?;
    let http = super::http_client()?;
    let chats = population::create_chats(settings, &http, &users, 1, progress).await?;
    let chat = chats.first().ok_or(BenchError::EmptyChat(0))?;
    let base = chat.last_seq;
    let seeding = Instant::now();
    seed(store, &chat.id, &users[0].id, base, spec.messages, progress).await?;
    let last_seq = seq_i64(base + spec.messages)?;
    store
        .chats()
        .update_one(doc! { "_id": &chat.id }, doc! { "$set": { "last_seq": last_seq } })
        .await
        .map_err(BenchError::Mongo)?;
    let seed_s = seeding.elapsed().as_secs_f64();

    // Cursors from just above the oldest full page to just above the newest message.
    let lowest = base + u64::from(spec.limit) + 1;
    let highest = base + spec.messages + 1;
    let cursors: Vec<u64> = {
        let mut rng = rand::rng();
        (0..spec.requests).map(|_| rng.random_range(lowest..=highest)).collect()
    };
    let bar = progress.bar("history", spec.requests);
    let token = &users[0].token;
    let started = Instant::now();
    let max = Duration::from_secs_f64(spec.max_s);
    let outcomes: Vec<Option<Duration>> = futures::stream::iter(cursors)
        .take_while(|_| std::future::ready(started.elapsed() < max))
        .map(|before_seq| {
            let url = format!(
                "{}/api/chats/{}/messages?limit={}&before_seq={before_seq}",
                settings.api_url, chat.id, spec.limit
            );
            let (http, bar) = (&http, &bar);
            async move {
                let sent = Instant::now();
                let page: Result<Page, BenchError> =
                    super::json_response(&url, http.get(&url).bearer_auth(token).send().await).await;
                let took = sent.elapsed();
                bar.inc(1);
                page.ok().filter(|page| page.items.len() == spec.limit as usize).map(|_| took)
            }
        })
        .buffer_unordered(spec.parallel)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut latency = histogram();
    for took in outcomes.iter().flatten() {
        latency.saturating_record((took.as_micros() as u64).max(1));
    }
    Ok(HistoryFigures {
        messages: spec.messages,
        seed_s,
        requests_planned: spec.requests,
        requests: outcomes.len() as u64,
        parallel: spec.parallel,
        limit: spec.limit,
        latency_ms: Percentiles::of(&latency),
        requests_per_s: if elapsed > 0.0 { outcomes.len() as f64 / elapsed } else { 0.0 },
        errors: outcomes.iter().filter(|outcome| outcome.is_none()).count() as u64,
    })
}

fn seq_i64(seq: u64) -> Result<i64, BenchError> {
    i64::try_from(seq).map_err(|_| BenchError::Flag(format!("seq {seq} does not fit in MongoDB's int64")))
}

/// Writes messages `base + 1 ..= base + count` in batches, a few batches at a time.
async fn seed(
    store: &chat_store::Store,
    chat_id: &str,
    sender_id: &str,
    base: u64,
    count: u64,
    progress: &Progress,
) -> Result<(), BenchError> {
    let bar = progress.bar("seed", count);
    let now = chrono::Utc::now();
    let batches = (0..count.div_ceil(BATCH)).map(|batch| {
        let first = base + 1 + batch * BATCH;
        let last = (first + BATCH - 1).min(base + count);
        (first..=last)
            .map(|seq| {
                let at = now - chrono::Duration::milliseconds(i64::try_from(base + count - seq).unwrap_or(0));
                let seq = seq_i64(seq)?;
                Ok(MessageDoc {
                    id: format!("{chat_id}-h{seq}"),
                    chat_id: chat_id.to_owned(),
                    seq,
                    updated_seq: seq,
                    sender_id: sender_id.to_owned(),
                    client_msg_id: format!("h{seq}"),
                    text: format!("history message {seq}"),
                    reply_to: None,
                    created_at: at,
                    edited_at: None,
                    deleted_at: None,
                    last_command: None,
                })
            })
            .collect::<Result<Vec<_>, BenchError>>()
    });
    let mut writes = futures::stream::iter(batches)
        .map(|batch| async {
            let batch = batch?;
            store.messages().insert_many(&batch).await.map_err(BenchError::Mongo)?;
            bar.inc(batch.len() as u64);
            Ok::<_, BenchError>(())
        })
        .buffer_unordered(BATCHES_IN_FLIGHT);
    while let Some(written) = writes.next().await {
        written?;
    }
    bar.finish_and_clear();
    Ok(())
}
