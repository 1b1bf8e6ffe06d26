//! `typing` (the seed's TypingHandler): members only, at most one per chat per second
//! per connection (extra ones are dropped silently), published as a core NATS signal
//! to the presence worker, which throttles per user and fans it out.

use std::time::{Duration, Instant};

use chat_nats::{
    events::{LiveSignal, TypingState},
    model::ErrorCode,
    subjects,
};

use super::{check_ids, reply_error};
use crate::{outbox::ConnHandle, session::Session, state::EdgeState};

/// Shortest gap between two typing signals of one connection in one chat.
const MIN_GAP: Duration = Duration::from_secs(1);

/// Per-connection memory of the last typing signal per chat.
#[derive(Debug, Default)]
pub struct TypingThrottle {
    last: std::collections::HashMap<String, (Instant, TypingState)>,
}

impl TypingThrottle {
    /// True when this signal should go out: a change of state always does, a repeat only
    /// after [`MIN_GAP`].
    pub fn allow(&mut self, chat_id: &str, state: TypingState, now: Instant) -> bool {
        if self.last.len() > 256 {
            self.last.retain(|_, (at, _)| now.duration_since(*at) < MIN_GAP);
        }
        match self.last.get(chat_id) {
            Some((at, previous)) if *previous == state && now.duration_since(*at) < MIN_GAP => false,
            _ => {
                self.last.insert(chat_id.to_owned(), (now, state));
                true
            }
        }
    }
}

/// Handles one `typing`.
pub async fn handle(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    throttle: &mut TypingThrottle,
    reference: Option<String>,
    chat_id: String,
    state: TypingState,
) -> &'static str {
    let refer = reference.as_deref();
    if let Err(reason) = check_ids(&[(chat_id.as_str(), "chat_id")]) {
        reply_error(conn, refer, ErrorCode::Invalid, &reason, None);
        return "invalid";
    }
    if !edge.hub.is_member(&session.user_id, &chat_id) {
        reply_error(conn, refer, ErrorCode::NotFound, "no such chat", None);
        return "rejected";
    }
    if !throttle.allow(&chat_id, state, Instant::now()) {
        return "dropped";
    }
    let signal = LiveSignal::Typing { chat_id: chat_id.clone(), user_id: session.user_id.to_string(), state };
    let Ok(body) = serde_json::to_vec(&signal) else { return "failed" };
    match edge.nats.publish(subjects::signal_typing(&chat_id), body.into()).await {
        Ok(()) => "accepted",
        Err(error) => {
            tracing::debug!(%error, "typing signal not published");
            "failed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_second_are_dropped_but_changes_pass() {
        let mut throttle = TypingThrottle::default();
        let t0 = Instant::now();
        assert!(throttle.allow("c", TypingState::Start, t0));
        assert!(!throttle.allow("c", TypingState::Start, t0 + Duration::from_millis(300)));
        assert!(throttle.allow("other", TypingState::Start, t0 + Duration::from_millis(300)));
        assert!(throttle.allow("c", TypingState::Stop, t0 + Duration::from_millis(400)));
        assert!(throttle.allow("c", TypingState::Start, t0 + Duration::from_millis(1500)));
    }
}
