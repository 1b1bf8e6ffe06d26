//! The bus contract between every component of the chat service.
//!
//! This crate is the only place that spells a NATS subject, a stream or consumer name,
//! or the shape of a command or event. Everything else imports from here.
//!
//! Layout:
//! - [`subjects`]: builders and parsers for every subject;
//! - [`model`]: the public shapes of messages and chats, shared by events and REST;
//! - [`commands`]: what edges and the api ask the persister to do (`CHAT_CMD`);
//! - [`events`]: what the persister reports as done (`CHAT_EVT`) and the live signals;
//! - [`presence`]: connection reports and presence transitions;
//! - [`rpc`]: request/reply bodies of the `chat.rpc.*` service;
//! - [`streams`]: stream and consumer definitions, created idempotently;
//! - [`publish`]: JetStream publishing with `Nats-Msg-Id` and pipelined acks;
//! - [`headers`]: the header names carried on the bus;
//! - [`moderation`]: message reports, their review, the audit trail's shapes;
//! - [`limits`]: input rules applied the same way at every entry point;
//! - [`asyncapi`]: AsyncAPI documents built from these types ([`asyncapi::bus`] is the
//!   bus's, checked into `docs/asyncapi-nats.json`).

pub mod asyncapi;
pub mod commands;
pub mod events;
pub mod headers;
pub mod limits;
pub mod model;
pub mod moderation;
pub mod presence;
pub mod publish;
pub mod rpc;
pub mod streams;
pub mod subjects;

/// Platform roles carried in tokens.
pub mod roles {
    /// May delete any message and manage users.
    pub const PLATFORM_ADMIN: &str = "admin";
    /// The platform's own services (user sync).
    pub const SERVICE: &str = "service";

    /// True for the platform itself (`admin` or `service`): only it may bind a chat to
    /// one of its own ids (`external_id`, a course or class), so that no user can claim
    /// a course's id before the platform creates the course's chat.
    pub fn is_platform(roles: &[String]) -> bool {
        roles.iter().any(|role| role == PLATFORM_ADMIN || role == SERVICE)
    }

    /// Teachers.
    pub const TEACHER: &str = "teacher";

    /// True for staff (`teacher`, `admin`, `service`): they see everyone's presence and
    /// roles, and their groups show new members the whole history by default.
    pub fn is_staff(roles: &[String]) -> bool {
        roles.iter().any(|role| role == TEACHER || role == PLATFORM_ADMIN || role == SERVICE)
    }
}

/// The version stamped into every payload as `"v": 1`.
pub const PAYLOAD_VERSION: u8 = 1;
