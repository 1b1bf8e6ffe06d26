//! One file per command. Each handler authorises, writes MongoDB, and records in
//! [`Effects`](crate::effects::Effects) what to publish.

pub mod chat_create;
pub mod chat_update;
pub mod member_add;
pub mod member_remove;
pub mod msg_delete;
pub mod msg_edit;
pub mod msg_send;
pub mod read;

use chat_nats::model::Role;
use chat_store::docs::ChatDoc;

/// The role of `user_id` in a stored chat.
pub fn role_in(chat: &ChatDoc, user_id: &str) -> Option<Role> {
    chat.participants.iter().find(|m| m.user_id == user_id).map(|m| m.role)
}
