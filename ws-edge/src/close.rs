//! WebSocket close codes of the protocol: one enum with their numbers and reasons, so
//! that the socket, the tests and the AsyncAPI document (`/asyncapi.json`) read the
//! same list.

use strum::{IntoStaticStr, VariantArray};

/// A close code the edge sends, with the number a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
#[repr(u16)]
pub enum CloseCode {
    /// The client stopped pinging within the idle timeout (a normal closure).
    Idle = 1000,
    /// The edge is shutting down; a `reconnect` frame came first.
    GoingAway = 1001,
    /// A frame was larger than `limits.max_frame_bytes`.
    TooLarge = 1009,
    /// A bug on our side while serving this connection; nothing else is touched.
    Internal = 1011,
    /// The token expired without an `auth.refresh`: reconnect with a fresh one.
    TokenExpired = 4001,
    /// Forbidden (reserved by the protocol; this edge refuses at the upgrade instead).
    Forbidden = 4003,
    /// The client kept sending past `rate_limited`: back off before reconnecting.
    Policy = 4008,
    /// The client reads too slowly; its send queue overflowed.
    SlowConsumer = 4009,
    /// The user has too many connections on this edge: back off.
    TooManyConnections = 4010,
}

impl CloseCode {
    /// The number on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The snake_case name, as the AsyncAPI document lists it.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The reason sent with the code.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Idle => "no ping within the idle timeout",
            CloseCode::GoingAway => "server shutting down",
            CloseCode::TooLarge => "frame too large",
            CloseCode::Internal => "internal error",
            CloseCode::TokenExpired => "token expired",
            CloseCode::Forbidden => "forbidden",
            CloseCode::Policy => "rate limit ignored",
            CloseCode::SlowConsumer => "slow consumer: send queue overflowed",
            CloseCode::TooManyConnections => "too many connections for this user",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_keep_the_protocols_numbers() {
        let numbers: Vec<(&str, u16)> = CloseCode::VARIANTS.iter().map(|code| (code.name(), code.code())).collect();
        assert_eq!(
            numbers,
            [
                ("idle", 1000),
                ("going_away", 1001),
                ("too_large", 1009),
                ("internal", 1011),
                ("token_expired", 4001),
                ("forbidden", 4003),
                ("policy", 4008),
                ("slow_consumer", 4009),
                ("too_many_connections", 4010),
            ]
        );
    }
}
