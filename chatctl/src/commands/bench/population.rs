//! The simulated population: one user (and token) per client, and group chats created
//! through the REST API exactly as a real owner would, each with a contiguous slice of
//! the clients as members.

use std::ops::Range;

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

use super::{BenchError, Settings};
use crate::progress::Progress;

/// How long the minted tokens live: longer than any scenario.
const TOKEN_TTL_S: u64 = 6 * 3600;
/// Chats created at once.
const CREATE_CONCURRENCY: usize = 8;

/// One simulated user.
#[derive(Debug, Clone)]
pub struct User {
    /// The user id (`sub`).
    pub id: String,
    /// A token for it.
    pub token: String,
}

/// A group chat of the population.
#[derive(Debug, Clone)]
pub struct GroupChat {
    /// The chat id.
    pub id: String,
    /// Which clients are members (the first one owns the chat).
    pub members: Range<usize>,
    /// The chat's `last_seq` right after it was created.
    pub last_seq: u64,
}

/// Clients of chat `chat` when `clients` are spread over `chats` contiguous slices.
pub fn chat_members(clients: usize, chats: usize, chat: usize) -> Range<usize> {
    (chat * clients / chats)..((chat + 1) * clients / chats)
}

/// Mints tokens for `count` users named `<prefix>-<n>`.
pub fn users(settings: &Settings, prefix: &str, count: usize) -> Result<Vec<User>, BenchError> {
    (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            let mut claims = chat_core::auth::dev_claims(&id, &format!("Bench {n}"), &["student"], TOKEN_TTL_S);
            claims.iss = settings.jwt_issuer.clone();
            claims.aud = Some(chat_core::auth::Audience::One(settings.jwt_audience.clone()));
            let token = chat_core::auth::mint_hs256(&settings.jwt_secret, &claims).map_err(BenchError::Token)?;
            Ok(User { id, token })
        })
        .collect()
}

/// What the api answers about a created chat.
#[derive(Debug, Deserialize)]
struct CreatedChat {
    id: String,
    #[serde(default)]
    last_seq: u64,
}

/// Members added to every chat who never connect, named `<tag>-away-<chat>-<n>`.
#[derive(Debug, Clone, Copy)]
pub struct Offline<'a> {
    /// The run's tag.
    pub tag: &'a str,
    /// How many per chat.
    pub per_chat: usize,
}

impl Offline<'_> {
    /// Nobody offline.
    pub const NONE: Offline<'static> = Offline { tag: "", per_chat: 0 };

    fn of_chat(&self, chat: usize) -> Vec<String> {
        (0..self.per_chat).map(|n| format!("{}-away-{chat}-{n}", self.tag)).collect()
    }
}

/// Creates `chats` group chats over REST, each owned by the first of its members, with
/// `offline.per_chat` members more who never connect.
pub async fn create_chats(
    settings: &Settings,
    http: &reqwest::Client,
    users: &[User],
    chats: usize,
    offline: Offline<'_>,
    progress: &Progress,
) -> Result<Vec<GroupChat>, BenchError> {
    let bar = progress.bar("chats", chats as u64);
    let created = futures::stream::iter(0..chats)
        .map(|chat| {
            let members = chat_members(users.len(), chats, chat);
            let bar = bar.clone();
            async move {
                let away = offline.of_chat(chat);
                let created = create_chat(settings, http, &users[members.clone()], &away, chat).await?;
                bar.inc(1);
                Ok::<_, BenchError>(GroupChat { id: created.id, members, last_seq: created.last_seq })
            }
        })
        .buffered(CREATE_CONCURRENCY)
        .try_collect()
        .await;
    bar.finish_and_clear();
    created
}

/// Creates one chat with `members[0]` as owner and the other members and `away`, adding
/// members past the first 1,000 in further calls (the api takes at most 1,000 ids per
/// call).
async fn create_chat(
    settings: &Settings,
    http: &reqwest::Client,
    members: &[User],
    away: &[String],
    index: usize,
) -> Result<CreatedChat, BenchError> {
    let (owner, others) = members.split_first().ok_or(BenchError::EmptyChat(index))?;
    let others: Vec<&str> = others.iter().map(|user| user.id.as_str()).chain(away.iter().map(String::as_str)).collect();
    let per_call = chat_nats::limits::MAX_MEMBERS_PER_COMMAND;
    let mut batches = others.chunks(per_call);
    let first: &[&str] = batches.next().unwrap_or_default();
    let body = json!({"type": "group", "title": format!("bench {index}"), "member_ids": first});
    let url = format!("{}/api/chats", settings.api_url);
    let response = http.post(&url).bearer_auth(&owner.token).json(&body).send().await;
    let mut chat: CreatedChat = super::json_response(&url, response).await?;
    let url = format!("{}/api/chats/{}/participants", settings.api_url, chat.id);
    for batch in batches {
        let body = json!({"user_ids": batch, "role": "member"});
        let response = http.post(&url).bearer_auth(&owner.token).json(&body).send().await;
        let updated: CreatedChat = super::json_response(&url, response).await?;
        chat.last_seq = updated.last_seq;
    }
    Ok(chat)
}

#[cfg(test)]
mod tests {
    use super::chat_members;

    #[test]
    fn chats_split_the_clients_into_contiguous_slices_that_cover_everyone() {
        let slices: Vec<_> = (0..3).map(|chat| chat_members(10, 3, chat)).collect();
        assert_eq!(slices, vec![0..3, 3..6, 6..10]);
        assert_eq!(chat_members(2000, 20, 19), 1900..2000);
    }
}
