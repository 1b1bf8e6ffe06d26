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
#[schemars(rename = "Presence", transform = presence_tag)]
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

/// Adds the `type` that serde writes into every [`Presence`]: schemars reads a
/// struct's `rename` as the schema's name and leaves its `tag` out.
fn presence_tag(schema: &mut schemars::Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
        properties.insert("type".into(), serde_json::json!({"type": "string", "const": "presence"}));
    }
    if let Some(required) = schema.get_mut("required").and_then(serde_json::Value::as_array_mut) {
        required.insert(0, "type".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_of_presence_pins_the_type_serde_writes() {
        let presence = Presence { user_id: "u1".into(), status: Status::Online, last_seen: None };
        let json = serde_json::to_value(&presence).unwrap_or_default();
        assert_eq!(json["type"], "presence");
        let schema = schemars::schema_for!(Presence);
        assert_eq!(schema.get("properties").map(|p| p["type"]["const"].clone()), Some(json["type"].clone()));
        assert_eq!(schema.get("required").and_then(|r| r.get(0)).cloned(), Some("type".into()));
    }
}
