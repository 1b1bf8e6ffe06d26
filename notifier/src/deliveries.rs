//! User-scoped deliveries: membership events become `user.<id>.chat.joined` and
//! `user.<id>.chat.left`, which make every edge start or stop delivering a chat to that
//! user's sockets at once.

use chat_nats::{
    events::{ChatEvent, EventBody, UserEvent},
    subjects,
};

/// The user deliveries an event causes.
pub fn for_event(event: &ChatEvent) -> Vec<(String, UserEvent)> {
    let at = chrono::Utc::now();
    let v = chat_nats::PAYLOAD_VERSION;
    let joined = |user_id: &str, role| {
        let delivery = UserEvent::ChatJoined { v, chat_id: event.chat_id.clone(), role, at };
        (subjects::user(user_id, delivery.name()), delivery)
    };
    match &event.body {
        EventBody::ChatCreated { chat } => chat.participants.iter().map(|m| joined(&m.user_id, m.role)).collect(),
        EventBody::MemberAdded { user_id, role } => vec![joined(user_id, *role)],
        EventBody::MemberRemoved { user_id, .. } => {
            let delivery = UserEvent::ChatLeft { v, chat_id: event.chat_id.clone(), at };
            vec![(subjects::user(user_id, delivery.name()), delivery)]
        }
        EventBody::MsgCreated { .. }
        | EventBody::MsgEdited { .. }
        | EventBody::MsgDeleted { .. }
        | EventBody::ChatUpdated { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_nats::model::Role;

    #[test]
    fn joining_and_leaving_are_told_to_the_user() {
        let added = ChatEvent::new("c1", 3, EventBody::MemberAdded { user_id: "u9".into(), role: Role::Member });
        let deliveries = for_event(&added);
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].0, "user.u9.chat.joined");
        let removed = ChatEvent::new("c1", 4, EventBody::MemberRemoved { user_id: "u9".into(), role: Role::Member });
        let deliveries = for_event(&removed);
        assert_eq!(deliveries[0].0, "user.u9.chat.left");
        assert!(matches!(&deliveries[0].1, UserEvent::ChatLeft { chat_id, .. } if chat_id == "c1"));
    }
}
