//! User-scoped deliveries: membership events become `user.<id>.chat.joined` and
//! `user.<id>.chat.left`, which make every edge start or stop delivering a chat to that
//! user's sockets at once. A join names where its event is stored in `CHAT_EVT`, so an
//! edge that was not delivering the chat replays it from that event on.

use chat_nats::{
    events::{ChatEvent, EventBody, UserEvent},
    subjects,
};

/// The user deliveries an event stored at `stream_seq` in `CHAT_EVT` causes.
pub fn for_event(event: &ChatEvent, stream_seq: Option<u64>) -> Vec<(String, UserEvent)> {
    let at = chrono::Utc::now();
    let v = chat_nats::PAYLOAD_VERSION;
    let joined = |user_id: &str, role| {
        let delivery = UserEvent::ChatJoined { v, chat_id: event.chat_id.clone(), role, stream_seq, at };
        (subjects::user(user_id, delivery.kind()), delivery)
    };
    match &event.body {
        EventBody::ChatCreated { chat } => chat.participants.iter().map(|m| joined(&m.user_id, m.role)).collect(),
        EventBody::MemberAdded { user_id, role } => vec![joined(user_id, *role)],
        EventBody::MemberRemoved { user_id, .. } => {
            let delivery = UserEvent::ChatLeft { v, chat_id: event.chat_id.clone(), at };
            vec![(subjects::user(user_id, delivery.kind()), delivery)]
        }
        EventBody::MsgCreated { .. }
        | EventBody::MsgEdited { .. }
        | EventBody::MsgDeleted { .. }
        | EventBody::ChatUpdated { .. }
        | EventBody::ChatModerated { .. }
        | EventBody::MemberMuted { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_nats::model::Role;

    #[test]
    fn joining_and_leaving_are_told_to_the_user() {
        let added = ChatEvent::new("c1", 3, EventBody::MemberAdded { user_id: "u9".into(), role: Role::Member });
        let deliveries = for_event(&added, Some(41));
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].0, "user.u9.chat.joined");
        assert!(matches!(deliveries[0].1, UserEvent::ChatJoined { stream_seq: Some(41), .. }), "replayed from there");
        let removed = ChatEvent::new("c1", 4, EventBody::MemberRemoved { user_id: "u9".into(), role: Role::Member });
        let deliveries = for_event(&removed, Some(42));
        assert_eq!(deliveries[0].0, "user.u9.chat.left");
        assert!(matches!(&deliveries[0].1, UserEvent::ChatLeft { chat_id, .. } if chat_id == "c1"));
    }
}
