//! Request and reply bodies of the `chat.rpc.*` service answered by the api.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Role;

/// The name of the service in `nats micro` listings.
pub const SERVICE_NAME: &str = "chat-rpc";
/// The endpoint listing a user's chats.
pub const MEMBERSHIPS: &str = "memberships";
/// The endpoint answering `sync` for the edges.
pub const SYNC: &str = "sync";
/// The endpoint answering presence snapshots for the edges.
pub const PRESENCE: &str = "presence";

/// Which chats does this user belong to? One page of them, in chat id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipsRequest {
    /// The user.
    pub user_id: String,
    /// The page after this chat id (the previous answer's `next`); the first without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One chat of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Membership {
    /// The chat.
    pub chat_id: String,
    /// The user's role there.
    pub role: Role,
    /// The seq of the event that made them a member: in a `since_join` chat, edits and
    /// deletions of older messages are not forwarded to them. 0 from older apis.
    #[serde(default)]
    pub joined_seq: u64,
}

/// One page of the user's chats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MembershipsReply {
    /// The chats, in chat id order.
    pub chats: Vec<Membership>,
    /// Set when more follow: ask again with it as `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Most chats in one memberships answer. With ids of at most 64 characters an entry
/// takes under 100 bytes, so a page stays far below NATS' 1 MB payload limit, which a
/// user's whole list could pass.
pub const MEMBERSHIPS_PAGE: usize = 5_000;

/// The error body of a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RpcError {
    /// What went wrong.
    pub error: String,
}

/// What changed in a user's chats since the given seqs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The user.
    pub user_id: String,
    /// Last seen seq per chat.
    pub chats: std::collections::BTreeMap<String, u64>,
}

/// Presence of several users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// The users (at most 200).
    pub user_ids: Vec<String>,
    /// Who asks: the answer shows only the presence they may see (users they share a
    /// chat with, or everyone for staff, as the api is configured). Without it, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer: Option<crate::commands::Actor>,
}

/// The answer to [`PresenceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresenceReply {
    /// One entry per requested user; those the viewer may not see are offline and
    /// never seen, like a user who never connected.
    pub users: Vec<crate::presence::Presence>,
    /// The requested users the viewer may not see: the edge does not forward their
    /// changes either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<String>,
}

/// The answer to [`SyncRequest`]: what a reconnecting client missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncResult {
    /// Per requested chat the user still belongs to.
    pub chats: std::collections::BTreeMap<String, ChatChanges>,
    /// Chats the user belongs to that were not in the request.
    pub new_chats: Vec<crate::model::Chat>,
    /// Requested chats the user no longer belongs to (or that do not exist).
    pub removed_chats: Vec<String>,
    /// True when the answer was cut to [`SYNC_MAX_BYTES`]: some chat has `has_more`,
    /// or some new chats are left for the next sync.
    #[serde(default)]
    pub has_more: bool,
}

/// What changed in one chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatChanges {
    /// Messages created, edited or deleted after the given seq, oldest change first.
    pub messages: Vec<crate::model::Message>,
    /// True when more changed than this answer holds; sync again from the last
    /// `updated_seq` received (or the same seq when `messages` is empty).
    pub has_more: bool,
    /// The chat's latest seq.
    pub last_seq: u64,
    /// The chat as it is now (title, members); left out, with every message, of chats
    /// past the answer's byte budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<crate::model::Chat>,
}

/// Most messages per chat in one sync answer.
pub const SYNC_MAX_MESSAGES: u32 = 500;
/// Most bytes of messages and chats in one sync answer. NATS refuses payloads over its
/// `max_payload` (1 MB by default); the entries of chats past the budget (id, seqs,
/// `has_more`, about 110 bytes each for up to [`SYNC_MAX_CHATS`]) and the removed ids
/// come on top, and the whole stays under 1 MB.
pub const SYNC_MAX_BYTES: usize = 512 * 1024;
/// Most chats in one sync request.
pub const SYNC_MAX_CHATS: usize = 1000;
