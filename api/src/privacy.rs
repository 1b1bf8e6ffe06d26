//! What one user may learn about another (minors use this service): whose presence a
//! caller sees, whether the directory shows staff roles, and how fast the directory
//! may be searched. Staff (`teacher`, `admin`, `service`) see presence and roles.

use std::{
    collections::HashSet,
    time::{SystemTime, UNIX_EPOCH},
};

use chat_nats::{
    commands::Actor,
    model::{Chat, HistoryVisibility},
    presence::{Presence, Status},
};

use crate::{error::ApiError, state::AppState};

pub use chat_nats::roles::is_staff;

/// The first seq of a chat a member who joined at `joined_seq` reads.
pub fn first_readable_seq(visibility: HistoryVisibility, joined_seq: i64) -> u64 {
    visibility.first_readable_seq(u64::try_from(joined_seq).unwrap_or(0))
}

/// A chat as a member who reads from `first_seq` on sees it: without the preview of a
/// message from before.
pub fn chat_as_seen(mut chat: Chat, first_seq: u64) -> Chat {
    if chat.last_message.as_ref().is_some_and(|last| last.seq < first_seq) {
        chat.last_message = None;
    }
    chat
}

/// Whose presence a user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresenceVisibility {
    /// Their own, that of users they share a chat with, and everyone's for staff.
    Shared,
    /// Everyone's.
    All,
}

/// Who sees the platform roles of staff in directory results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectoryRoles {
    /// Staff callers only: other callers get every result's `roles` empty, so a staff
    /// member looks like anyone else.
    Staff,
    /// Every caller.
    Everyone,
}

/// The privacy settings of the api.
#[derive(Debug, Clone, clap::Args)]
pub struct PrivacyArgs {
    /// Whose presence and last seen a user sees (`shared`: users they share a chat
    /// with, and everyone's for staff).
    #[arg(long = "presence-visibility", env = "CHAT_PRESENCE_VISIBILITY", value_enum, default_value = "shared")]
    pub presence_visibility: PresenceVisibility,
    /// Who sees platform roles in `GET /api/users` results.
    #[arg(long = "directory-roles", env = "CHAT_DIRECTORY_ROLES", value_enum, default_value = "staff")]
    pub directory_roles: DirectoryRoles,
    /// Directory searches per user per minute, counted across replicas (0: off).
    #[arg(long = "directory-searches-per-min", env = "CHAT_DIRECTORY_SEARCHES_PER_MIN", default_value_t = 30)]
    pub directory_searches_per_min: u32,
    /// Directory searches per user per hour, counted across replicas (0: off).
    #[arg(long = "directory-searches-per-hour", env = "CHAT_DIRECTORY_SEARCHES_PER_HOUR", default_value_t = 300)]
    pub directory_searches_per_hour: u32,
}

impl Default for PrivacyArgs {
    fn default() -> Self {
        PrivacyArgs {
            presence_visibility: PresenceVisibility::Shared,
            directory_roles: DirectoryRoles::Staff,
            directory_searches_per_min: 30,
            directory_searches_per_hour: 300,
        }
    }
}

/// The ids among `targets` whose presence `viewer` may see (their own included); with
/// no viewer, none.
pub async fn visible_presence(
    state: &AppState,
    viewer: Option<&Actor>,
    targets: &[String],
) -> Result<HashSet<String>, ApiError> {
    let Some(viewer) = viewer else { return Ok(HashSet::new()) };
    if state.inner.privacy.presence_visibility == PresenceVisibility::All || is_staff(&viewer.roles) {
        return Ok(targets.iter().cloned().collect());
    }
    let others: Vec<String> = targets.iter().filter(|id| **id != viewer.user_id).cloned().collect();
    let mut visible = state.inner.store.users_sharing_a_chat(&viewer.user_id, &others).await?;
    if targets.contains(&viewer.user_id) {
        visible.insert(viewer.user_id.clone());
    }
    Ok(visible)
}

/// The presence of a user the caller may not see: exactly what a user who was never
/// connected shows.
pub fn hidden_presence(user_id: &str) -> Presence {
    Presence { user_id: user_id.to_owned(), status: Status::Offline, last_seen: None }
}

/// Counts one directory search of `user_id` in the minute and the hour windows; the
/// platform (`admin`, `service`) is not counted. When Redis is down the search is
/// allowed: the directory stays usable and the 2-character minimum and page size
/// still bound each request.
pub async fn take_directory_search(state: &AppState, user_id: &str, roles: &[String]) -> Result<(), ApiError> {
    if chat_nats::roles::is_platform(roles) {
        return Ok(());
    }
    let settings = &state.inner.privacy;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let windows = [(60, settings.directory_searches_per_min, "m"), (3600, settings.directory_searches_per_hour, "h")];
    let Ok(mut redis) = state.inner.redis.get().await else { return Ok(()) };
    for (length, allowed, name) in windows {
        if allowed == 0 {
            continue;
        }
        let key = chat_core::redis_keys::directory_budget(user_id, &format!("{name}{}", now / length));
        let counted: Result<(u64, bool), _> =
            redis::pipe().incr(&key, 1).expire(&key, length as i64 + 5).query_async(&mut redis).await;
        match counted {
            Ok((count, _)) if count > u64::from(allowed) => {
                return Err(ApiError {
                    code: chat_nats::model::ErrorCode::RateLimited,
                    message: "too many directory searches; slow down".into(),
                    retry_after_s: Some(length - now % length),
                });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "directory budget unavailable; search allowed");
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_are_teachers_admins_and_services() {
        let roles = |list: &[&str]| list.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>();
        assert!(is_staff(&roles(&["student", "teacher"])));
        assert!(is_staff(&roles(&["service"])));
        assert!(!is_staff(&roles(&["student"])));
        assert!(!is_staff(&roles(&[])));
    }
}
