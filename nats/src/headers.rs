//! Header names carried on the bus.

/// W3C trace context, carried from the client's request through every hop.
pub const TRACEPARENT: &str = "traceparent";
/// Unix time in microseconds when the persister stored the event; the start of
/// `chat_delivery_seconds` at the edge.
pub const PERSISTED_AT_MICROS: &str = "Chat-Persisted-At";
