//! Presence messages: edges report connections on `presence.conn.<user_id>`, the
//! presence worker announces transitions on `presence.changed.<user_id>`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::timestamp;

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnEvent {
    /// A socket opened.
    Connected,
    /// A socket closed.
    Disconnected,
    /// The socket is still open (sent every [`CONN_HEARTBEAT_S`]).
    Alive,
}

/// How often an edge confirms each open connection.
pub const CONN_HEARTBEAT_S: u64 = 20;
/// A connection not confirmed for this long is considered gone (its edge died).
pub const CONN_EXPIRY_S: u64 = 60;

/// An edge's report about one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnReport {
    /// Payload version.
    pub v: u8,
    /// The user.
    pub user_id: String,
    /// The connection.
    pub conn_id: String,
    /// What happened.
    pub event: ConnEvent,
}

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one connection on some edge.
    Online,
    /// None.
    Offline,
}

/// A user's presence, as clients receive it (`{"type":"presence", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "presence")]
pub struct Presence {
    /// The user.
    pub user_id: String,
    /// Online or offline.
    pub status: Status,
    /// When they were last connected (now, while online); `null` if never seen.
    #[serde(with = "timestamp::option", default)]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub last_seen: Option<DateTime<Utc>>,
}
