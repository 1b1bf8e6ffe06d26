//! The `history` scenario: a chat created over REST is filled with many messages written
//! straight into MongoDB (their seqs reserved first, as the persister does, then batched
//! `insert_many` of the store's own documents), and its history is read
//! page by page through the api at random cursors in a few depth bands (the first page
//! without a cursor, near the newest message, a quarter, half and three quarters of the
//! way back, near the oldest), each band reported on its own.

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
    report::{HistoryBand, HistoryFigures},
    scenario::HistorySpec,
};
use crate::progress::Progress;

/// Messages per `insert_many`.
const BATCH: u64 = 10_000;
/// Batches written at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// Where the requests read, in turn: a name and the range of depths (0 is the newest
/// message, 1 the oldest full page) their `before_seq` is drawn from; `None` is the
/// first page, with no `before_seq`.
const BANDS: [(&str, Option<(f64, f64)>); 6] = [
    ("first page", None),
    ("newest 1 %", Some((0.0, 0.01))),
    ("25 %", Some((0.24, 0.26))),
    ("50 %", Some((0.49, 0.51))),
    ("75 %", Some((0.74, 0.76))),
    ("oldest 1 %", Some((0.99, 1.0))),
];

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
    let chats = population::create_chats(settings, &http, &users, 1, population::Offline::NONE, progress).await?;
    let chat = chats.first().ok_or(BenchError::EmptyChat(0))?;
    let seeding = Instant::now();
    // The seqs are reserved first, as the persister does, so that no send of the
    // service can take one of them.
    let last_seq =
        store.reserve_seqs(&chat.id, spec.messages).await?.ok_or_else(|| BenchError::ChatVanished(chat.id.clone()))?;
    let base = last_seq - spec.messages;
    seed(store, &chat.id, &users[0].id, base, spec.messages, progress).await?;
    let seed_s = seeding.elapsed().as_secs_f64();

    // Cursors from just above the oldest full page to just above the newest message;
    // request `i` reads in band `i % BANDS.len()`.
    let lowest = base + u64::from(spec.limit) + 1;
    let highest = base + spec.messages + 1;
    let span = (highest - lowest) as f64;
    let requests: Vec<(usize, Option<u64>)> = {
        let mut rng = rand::rng();
        (0..spec.requests)
            .map(|i| {
                let band = (i % BANDS.len() as u64) as usize;
                let before_seq = BANDS[band].1.map(|(from, to)| {
                    let depth = rng.random_range(from..=to);
                    (highest - (depth * span) as u64).max(lowest)
                });
                (band, before_seq)
            })
            .collect()
    };
    let bar = progress.bar("history", spec.requests);
    let token = &users[0].token;
    let started = Instant::now();
    let max = Duration::from_secs_f64(spec.max_s);
    let outcomes: Vec<(usize, Option<Duration>)> = futures::stream::iter(requests)
        .take_while(|_| std::future::ready(started.elapsed() < max))
        .map(|(band, before_seq)| {
            let mut url = format!("{}/api/chats/{}/messages?limit={}", settings.api_url, chat.id, spec.limit);
            if let Some(before_seq) = before_seq {
                url.push_str(&format!("&before_seq={before_seq}"));
            }
            let (http, bar) = (&http, &bar);
            async move {
                let sent = Instant::now();
                let page: Result<Page, BenchError> =
                    super::json_response(&url, http.get(&url).bearer_auth(token).send().await).await;
                let took = sent.elapsed();
                bar.inc(1);
                (band, page.ok().filter(|page| page.items.len() == spec.limit as usize).map(|_| took))
            }
        })
        .buffer_unordered(spec.parallel)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut latency = histogram();
    let mut per_band: Vec<_> = BANDS.iter().map(|_| (histogram(), 0u64, 0u64)).collect();
    for (band, outcome) in &outcomes {
        let (band_latency, requests, errors) = &mut per_band[*band];
        *requests += 1;
        match outcome {
            Some(took) => {
                let us = (took.as_micros() as u64).max(1);
                latency.saturating_record(us);
                band_latency.saturating_record(us);
            }
            None => *errors += 1,
        }
    }
    let bands = BANDS
        .iter()
        .zip(per_band)
        .map(|((name, _), (band_latency, requests, errors))| HistoryBand {
            band: (*name).to_owned(),
            requests,
            errors,
            latency_ms: Percentiles::of(&band_latency),
        })
        .collect();
    Ok(HistoryFigures {
        messages: spec.messages,
        seed_s,
        requests_planned: spec.requests,
        requests: outcomes.len() as u64,
        parallel: spec.parallel,
        limit: spec.limit,
        latency_ms: Percentiles::of(&latency),
        bands,
        requests_per_s: if elapsed > 0.0 { outcomes.len() as f64 / elapsed } else { 0.0 },
        errors: outcomes.iter().filter(|(_, outcome)| outcome.is_none()).count() as u64,
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
