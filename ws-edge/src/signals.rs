//! Live signals on `chat.live.<chat_id>.<signal>`: forwarded as they are, except that
//! typing must skip its author's own sockets, so only typing is parsed.

use chat_nats::events::{LiveSignal, LiveSignalKind};

/// How a live signal is delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct LiveDelivery {
    /// The author, whose sockets do not get it (typing only).
    pub skip_user: Option<String>,
    /// Whether a full queue may drop it (typing only; read marks are kept).
    pub droppable: bool,
}

/// Decides how the signal `kind` (the subject's last token) with this payload is
/// delivered; a kind this code does not know is delivered like a read mark.
pub fn live_delivery(kind: &str, payload: &[u8]) -> LiveDelivery {
    if LiveSignalKind::parse(kind) != Some(LiveSignalKind::Typing) {
        return LiveDelivery { skip_user: None, droppable: false };
    }
    let author = serde_json::from_slice::<LiveSignal>(payload).ok().map(|signal| signal.user_id().to_owned());
    LiveDelivery { skip_user: author, droppable: true }
}

#[cfg(test)]
mod tests {
    use chat_nats::events::TypingState;

    use super::*;

    #[test]
    fn typing_skips_its_author_and_read_marks_are_kept() {
        let typing = LiveSignal::Typing { chat_id: "c".into(), user_id: "u7".into(), state: TypingState::Start };
        let typing = serde_json::to_vec(&typing).unwrap_or_default();
        let kept = LiveDelivery { skip_user: Some("u7".into()), droppable: true };
        assert_eq!(live_delivery(LiveSignalKind::Typing.name(), &typing), kept);
        let read = LiveSignal::Read { chat_id: "c".into(), user_id: "u7".into(), up_to_seq: 3 };
        let read = serde_json::to_vec(&read).unwrap_or_default();
        let plain = LiveDelivery { skip_user: None, droppable: false };
        assert_eq!(live_delivery(LiveSignalKind::Read.name(), &read), plain);
        assert_eq!(live_delivery("bench", b"{}"), plain);
    }
}
