//! `chat.signal.*.typing` (queue group `presence`): typing signals from the edges (which
//! already checked membership), throttled to one per chat, user and second, remembered
//! in Redis for [`TYPING_TTL_S`], and forwarded to `chat.live.<chat_id>.typing`.

use std::sync::Arc;

use async_nats::HeaderMap;
use chat_core::redis_keys;
use chat_nats::{
    events::{LiveSignal, LiveSignalKind, TYPING_TTL_S, TypingState},
    headers, subjects,
};
use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::{metrics, redis_link::RedisLink};

/// At most one signal per chat, user and this many ms (a `stop` after a `start` excepted).
const THROTTLE_MS: u64 = 1000;

/// Decides whether a signal goes through, atomically on the chat's keys (one hash tag):
/// a `stop` after a forwarded `start` always does; anything else only when the
/// throttle marker could be set. Returns 1 to forward, 0 to drop.
const TYPING_SCRIPT: &str = r"
if ARGV[1] == 'stop' and redis.call('GET', KEYS[2]) == 'start' then
  redis.call('DEL', KEYS[2])
  return 1
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
if ARGV[1] == 'start' then
  redis.call('SET', KEYS[2], 'start', 'EX', ARGV[2])
else
  redis.call('DEL', KEYS[2])
end
return 1
";

/// One typing signal, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Typing {
    chat_id: String,
    user_id: String,
    state: TypingState,
    traceparent: Option<String>,
}

/// What handling a signal needs.
pub struct TypingSignals {
    /// Redis, when it answers.
    pub link: Arc<RedisLink>,
    /// Where signals are forwarded.
    pub nats: async_nats::Client,
    script: Script,
}

impl TypingSignals {
    /// Forwards through `nats`, throttling with the Redis behind `link`.
    pub fn new(link: Arc<RedisLink>, nats: async_nats::Client) -> Self {
        TypingSignals { link, nats, script: Script::new(TYPING_SCRIPT) }
    }

    /// Consumes `subscriber` until `shutdown`, in order per chat and user.
    pub async fn run(self: Arc<Self>, subscriber: async_nats::Subscriber, lanes: usize, shutdown: CancellationToken) {
        let route = |message: async_nats::Message| {
            let traceparent = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(headers::TRACEPARENT))
                .map(|value| value.as_str().to_owned());
            match decode(&message.subject, &message.payload, traceparent) {
                Some(typing) => Some(((typing.chat_id.clone(), typing.user_id.clone()), typing)),
                None => {
                    metrics::TYPING.with_label_values(&["malformed"]).inc();
                    tracing::warn!(subject = %message.subject, "malformed typing signal dropped");
                    None
                }
            }
        };
        let handler = move |typing: Typing| {
            let this = self.clone();
            async move { this.handle(typing).await }
        };
        super::consume(subscriber, lanes, shutdown, route, handler).await;
    }

    /// Throttles and forwards one signal.
    async fn handle(&self, typing: Typing) {
        let state = match typing.state {
            TypingState::Start => "start",
            TypingState::Stop => "stop",
        };
        let (chat_id, user_id) = (&typing.chat_id, &typing.user_id);
        let verdict = self
            .link
            .call(|mut redis| async move {
                self.script
                    .key(redis_keys::typing_throttle(chat_id, user_id))
                    .key(redis_keys::typing(chat_id, user_id))
                    .arg(state)
                    .arg(TYPING_TTL_S)
                    .arg(THROTTLE_MS)
                    .invoke_async::<i64>(&mut redis)
                    .await
            })
            .await;
        let outcome = match verdict {
            Some(1) => "forwarded",
            Some(_) => "throttled",
            // Redis is down: typing still flows, throttled only by the edge's
            // per-connection command limits, until Redis answers again.
            None => "unthrottled",
        };
        metrics::TYPING.with_label_values(&[outcome]).inc();
        if outcome != "throttled" {
            self.forward(typing).await;
        }
    }

    /// Publishes the signal to the chat's live subject, with its trace context.
    async fn forward(&self, typing: Typing) {
        let Typing { chat_id, user_id, state, traceparent } = typing;
        let subject = async_nats::Subject::from(subjects::live(&chat_id, LiveSignalKind::Typing));
        let signal = LiveSignal::Typing { chat_id, user_id, state };
        let payload = match serde_json::to_vec(&signal) {
            Ok(payload) => payload.into(),
            Err(error) => {
                tracing::error!(%error, "cannot serialise a typing signal");
                return;
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(traceparent) = traceparent {
            headers.insert(headers::TRACEPARENT, traceparent.as_str());
        }
        // Cloning a subject shares its bytes.
        if let Err(error) = self.nats.publish_with_headers(subject.clone(), headers, payload).await {
            tracing::warn!(%error, %subject, "cannot forward a typing signal");
        }
    }
}

/// A typing signal whose chat matches its subject and whose ids are well-formed.
fn decode(subject: &str, payload: &[u8], traceparent: Option<String>) -> Option<Typing> {
    let LiveSignal::Typing { chat_id, user_id, state } = serde_json::from_slice(payload).ok()? else {
        return None;
    };
    let valid = subjects::is_valid_id(&chat_id)
        && subjects::is_valid_id(&user_id)
        && subject == subjects::signal_typing(&chat_id);
    valid.then_some(Typing { chat_id, user_id, state, traceparent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typing_signal_for_its_own_chat_is_accepted() {
        let payload = br#"{"type":"typing","chat_id":"c1","user_id":"u1","state":"start"}"#;
        let typing = decode("chat.signal.c1.typing", payload, Some("00-trace".into()));
        assert_eq!(
            typing,
            Some(Typing {
                chat_id: "c1".into(),
                user_id: "u1".into(),
                state: TypingState::Start,
                traceparent: Some("00-trace".into())
            })
        );
    }

    #[test]
    fn other_signals_other_chats_and_bad_ids_are_dropped() {
        let read = br#"{"type":"read","chat_id":"c1","user_id":"u1","up_to_seq":3}"#;
        assert!(decode("chat.signal.c1.typing", read, None).is_none(), "not a typing signal");
        let other = br#"{"type":"typing","chat_id":"c2","user_id":"u1","state":"stop"}"#;
        assert!(decode("chat.signal.c1.typing", other, None).is_none(), "chat differs from the subject");
        let bad = br#"{"type":"typing","chat_id":"c1","user_id":"u 1","state":"stop"}"#;
        assert!(decode("chat.signal.c1.typing", bad, None).is_none(), "bad user id");
    }
}
