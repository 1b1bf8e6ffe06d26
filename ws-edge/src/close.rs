//! WebSocket close codes of the protocol.

/// The token expired without a refresh.
pub const TOKEN_EXPIRED: u16 = 4001;
/// Forbidden.
pub const FORBIDDEN: u16 = 4003;
/// Rate-limit abuse.
pub const POLICY: u16 = 4008;
/// The client reads too slowly; its queue overflowed.
pub const SLOW_CONSUMER: u16 = 4009;
/// The user has too many connections.
pub const TOO_MANY_CONNECTIONS: u16 = 4010;
/// Shutdown.
pub const GOING_AWAY: u16 = 1001;
/// A frame was too large.
pub const TOO_LARGE: u16 = 1009;
/// A bug on our side.
pub const INTERNAL: u16 = 1011;
/// The client stopped pinging.
pub const IDLE: u16 = 1000;

/// The reason sent with a close code.
pub fn reason(code: u16) -> &'static str {
    match code {
        TOKEN_EXPIRED => "token expired",
        SLOW_CONSUMER => "slow consumer: send queue overflowed",
        TOO_MANY_CONNECTIONS => "too many connections for this user",
        GOING_AWAY => "server shutting down",
        TOO_LARGE => "frame too large",
        POLICY => "rate limit ignored",
        INTERNAL => "internal error",
        IDLE => "no ping within the idle timeout",
        _ => "",
    }
}
