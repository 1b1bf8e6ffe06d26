//! Header names carried on the bus.

/// W3C trace context, carried from the client's request through every hop.
pub const TRACEPARENT: &str = "traceparent";
/// Unix time in microseconds when the persister stored the event; the start of
/// `chat_delivery_seconds` at the edge.
pub const PERSISTED_AT_MICROS: &str = "Chat-Persisted-At";
/// On a `msg.edited` or `msg.deleted` event of a `since_join` chat only: the seq of the
/// message it is about. An edge withholds the event from members who joined after that
/// message, who may not read it; events of other chats go out without a look.
pub const MESSAGE_SEQ: &str = "Chat-Message-Seq";
