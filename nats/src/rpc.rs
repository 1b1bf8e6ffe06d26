//! Request and reply bodies of the `chat.rpc.*` service answered by the api.

use serde::{Deserialize, Serialize};

use crate::model::Role;

/// The name of the service in `nats micro` listings.
pub const SERVICE_NAME: &str = "chat-rpc";
/// The endpoint listing a user's chats.
pub const MEMBERSHIPS: &str = "memberships";

/// Which chats does this user belong to?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipsRequest {
    /// The user.
    pub user_id: String,
}

/// One chat of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The chat.
    pub chat_id: String,
    /// The user's role there.
    pub role: Role,
}

/// Every chat of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipsReply {
    /// The chats.
    pub chats: Vec<Membership>,
}

/// The error body of a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// What went wrong.
    pub error: String,
}
