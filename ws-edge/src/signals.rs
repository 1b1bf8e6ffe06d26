//! Live signals on `chat.live.<chat_id>.<signal>`: forwarded as they are, except that
//! typing must skip its author's own sockets, so only typing is parsed.

use chat_nats::events::LiveSignal;

/// How a live signal is delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct LiveDelivery {
    /// The author, whose sockets do not get it (typing only).
    pub skip_user: Option<String>,
    /// Whether a full queue may drop it (typing only; read marks are kept).
    pub droppable: bool,
}

/// Decides how the signal `kind` with this payload is delivered.
pub fn live_delivery(kind: &str, payload: &[u8]) -> LiveDelivery {
    if kind != "typing" {
        return LiveDelivery { skip_user: None, droppable: false };
    }
    let author = serde_json::from_slice::<LiveSignal>(payload).ok().map(|signal| signal.user_id().to_owned());
    LiveDelivery { skip_user: author, droppable: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_skips_its_author_and_read_marks_are_kept() {
        let typing = br#"{"type":"typing","chat_id":"c","user_id":"u7","state":"start"}"#;
        assert_eq!(live_delivery("typing", typing), LiveDelivery { skip_user: Some("u7".into()), droppable: true });
        let read = br#"{"type":"read","chat_id":"c","user_id":"u7","up_to_seq":3}"#;
        assert_eq!(live_delivery("read", read), LiveDelivery { skip_user: None, droppable: false });
    }
}
