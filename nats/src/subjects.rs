//! Subject builders and parsers. Operators read these subjects with the NATS CLI, so
//! their spelling is a public contract (see `docs/bus.md`).
//!
//! Ids are restricted by the edge and the api to `[A-Za-z0-9_-]`, so they never contain
//! the `.`, `*` or `>` that would change a subject's meaning.

use crate::events::{EventKind, LiveSignalKind, UserDeliveryKind};

/// Wildcard for every command in `CHAT_CMD`.
pub const CMD_ALL: &str = "chat.cmd.>";
/// What edges and the api publish commands on: `chat.cmd.<chat_id>.<command>`.
pub const CMD_PUBLISHED: &str = "chat.cmd.*.>";
/// Wildcard for every persisted event in `CHAT_EVT`.
pub const EVT_ALL: &str = "chat.evt.>";
/// Wildcard for every persisted membership event (`member.added`, `member.removed`).
pub const EVT_MEMBERS_ALL: &str = "chat.evt.*.member.>";
/// Wildcard for every persisted chat event (`chat.created`, `chat.updated`).
pub const EVT_CHATS_ALL: &str = "chat.evt.*.chat.>";
/// Wildcard for every push request in `PUSH`.
pub const PUSH_ALL: &str = "push.>";
/// Wildcard for every typing signal from the edges.
pub const SIGNAL_TYPING_ALL: &str = "chat.signal.*.typing";
/// Wildcard for every live signal.
pub const LIVE_ALL: &str = "chat.live.>";
/// Wildcard for every chat's read marks (the notifier forgets badges by them).
pub const LIVE_READS_ALL: &str = "chat.live.*.read";
/// Wildcard for every connection report from the edges.
pub const PRESENCE_CONN_ALL: &str = "presence.conn.*";
/// Wildcard for every user-scoped delivery: an edge subscribes to it once and hands
/// each delivery to its local connections of that user.
pub const USER_ALL: &str = "user.>";
/// Wildcard for every presence transition: an edge subscribes to it once and hands
/// each change to the local connections that watch that user.
pub const PRESENCE_CHANGED_ALL: &str = "presence.changed.*";
/// Prefix of the request/reply service subjects.
pub const RPC_PREFIX: &str = "chat.rpc";
/// The token that marks a command as the api's: `chat.cmd.<chat_id>.api.<command>`.
/// Only the api's NATS user may publish there (`deploy/nats/auth.conf`), so the
/// persister knows who published a command it reads from `CHAT_CMD`.
pub const API_MARK: &str = "api";
/// Root of every reply subject; each component's replies come under its own
/// [`inbox_prefix`].
pub const INBOX_ROOT: &str = "_INBOX";

/// `chat.cmd.<chat_id>.<command>`: a command for the persister.
pub fn command(chat_id: &str, command: &str) -> String {
    format!("chat.cmd.{chat_id}.{command}")
}

/// `chat.cmd.<chat_id>.api.<command>`: a command published by the api, the only
/// publisher allowed to act as the platform's `service`.
pub fn api_command(chat_id: &str, command: &str) -> String {
    format!("chat.cmd.{chat_id}.{API_MARK}.{command}")
}

/// Who published a command, as its subject tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandPublisher {
    /// A WebSocket edge (or anything else allowed on `chat.cmd.>` but not the api's
    /// subjects).
    Edge,
    /// The api.
    Api,
}

/// Who published the command for `chat_id` named `command` that `CHAT_CMD` stored on
/// `subject`; `None` when the subject does not name that chat and command, which no
/// publisher of this code base does.
///
/// `CHAT_CMD` stores every command with its partition in front of the chat id (see
/// [`cmd_partition_transform`]); only commands stored before partitioning lack it, and
/// those predate the api's mark. The unpartitioned reading therefore never says
/// [`CommandPublisher::Api`]: an edge that publishes `chat.cmd.api.<command>` for the
/// chat named like its partition would otherwise pass for the api.
pub fn command_publisher(subject: &str, chat_id: &str, command: &str) -> Option<CommandPublisher> {
    let rest = subject.strip_prefix("chat.cmd.")?;
    let after_chat = |rest: &str| {
        let tail = rest.strip_prefix(chat_id)?.strip_prefix('.')?;
        if tail == command {
            return Some(CommandPublisher::Edge);
        }
        let tail = tail.strip_prefix(API_MARK)?.strip_prefix('.')?;
        (tail == command).then_some(CommandPublisher::Api)
    };
    let partitioned = rest.split_once('.').filter(|(partition, _)| partition.bytes().all(|b| b.is_ascii_digit()));
    partitioned
        .and_then(|(_, rest)| after_chat(rest))
        .or_else(|| after_chat(rest).filter(|publisher| *publisher == CommandPublisher::Edge))
}

/// `_INBOX.<component>`: where a component's replies arrive (JetStream acks, request
/// answers, command outcomes), so that each NATS user may read its own replies only.
pub fn inbox_prefix(component: &str) -> String {
    format!("{INBOX_ROOT}.{component}")
}

/// True for a reply subject that is an inbox, never a subject of the bus: the
/// persister publishes a command's outcome only there.
pub fn is_inbox(subject: &str) -> bool {
    subject.strip_prefix(INBOX_ROOT).is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
}

/// How `CHAT_CMD` stores a command: its chat's partition (a hash of the chat id) goes in
/// front of the chat id.
pub fn cmd_partition_transform(partitions: u32) -> String {
    format!("chat.cmd.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}.>")
}

/// The partition count a transform made by [`cmd_partition_transform`] names.
pub fn partitions_in_transform(destination: &str) -> Option<u32> {
    let count = destination.split("partition(").nth(1)?.split(',').next()?;
    count.trim().parse().ok()
}

/// `chat.cmd.<partition>.>`: the commands of one partition, as `CHAT_CMD` stores them.
pub fn cmd_partition(partition: u32) -> String {
    format!("chat.cmd.{partition}.>")
}

/// `chat.evt.<chat_id>.<kind>`: a persisted event.
pub fn event(chat_id: &str, kind: EventKind) -> String {
    format!("chat.evt.{chat_id}.{}", kind.name())
}

/// `chat.evt.<chat_id>.>`: every persisted event of one chat (an edge subscribes to this
/// for each chat with local members).
pub fn chat_events(chat_id: &str) -> String {
    format!("chat.evt.{chat_id}.>")
}

/// `chat.live.<chat_id>.<kind>`: a live-only signal (typing, read).
pub fn live(chat_id: &str, kind: LiveSignalKind) -> String {
    format!("chat.live.{chat_id}.{}", kind.name())
}

/// `chat.live.<chat_id>.bench`: where `chatctl bench` injects message-shaped frames,
/// which edges forward to the chat's local members like any live signal.
pub fn live_bench(chat_id: &str) -> String {
    format!("chat.live.{chat_id}.bench")
}

/// True for a live subject (`chat.live.…`), whose payloads are forwarded without the
/// seq checks of persisted events.
pub fn is_live(subject: &str) -> bool {
    subject.starts_with("chat.live.")
}

/// `chat.live.<chat_id>.>`: every live signal of one chat.
pub fn chat_live(chat_id: &str) -> String {
    format!("chat.live.{chat_id}.>")
}

/// `chat.signal.<chat_id>.typing`: a typing signal from an edge to the presence worker.
pub fn signal_typing(chat_id: &str) -> String {
    format!("chat.signal.{chat_id}.typing")
}

/// `user.<user_id>.<kind>`: a delivery for every connection of one user.
pub fn user(user_id: &str, kind: UserDeliveryKind) -> String {
    format!("user.{user_id}.{}", kind.name())
}

/// `edge.<edge_id>.outcome.<user_id>.<conn_id>`: where the persister answers a command
/// an edge published for one of its connections (the command's `reply`).
pub fn edge_outcome(edge_id: &str, user_id: &str, conn_id: &str) -> String {
    format!("edge.{edge_id}.outcome.{user_id}.{conn_id}")
}

/// `edge.<edge_id>.outcome.>`: every outcome addressed to one edge.
pub fn edge_outcomes(edge_id: &str) -> String {
    format!("edge.{edge_id}.outcome.>")
}

/// The user and connection an outcome subject names.
pub fn outcome_target_of(subject: &str) -> Option<(&str, &str)> {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("edge"), Some(_), Some("outcome"), Some(user_id), Some(conn_id), None)
            if !user_id.is_empty() && !conn_id.is_empty() =>
        {
            Some((user_id, conn_id))
        }
        _ => None,
    }
}

/// `user.<user_id>.>`: everything addressed to one user.
pub fn user_all(user_id: &str) -> String {
    format!("user.{user_id}.>")
}

/// `presence.conn.<user_id>`: an edge reports a connection opening, closing or alive.
pub fn presence_conn(user_id: &str) -> String {
    format!("presence.conn.{user_id}")
}

/// `presence.changed.<user_id>`: a user went online or offline.
pub fn presence_changed(user_id: &str) -> String {
    format!("presence.changed.{user_id}")
}

/// `push.<user_id>`: a push notification request for the platform's push gateway.
pub fn push(user_id: &str) -> String {
    format!("push.{user_id}")
}

/// `chat.rpc.<method>`: a request/reply endpoint answered by the api.
pub fn rpc(method: &str) -> String {
    format!("{RPC_PREFIX}.{method}")
}

/// The chat id in `chat.<kind>.<chat_id>.…`, if the subject has that shape.
pub fn chat_id_of(subject: &str) -> Option<&str> {
    let mut parts = subject.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("chat"), Some(_), Some(chat_id)) if !chat_id.is_empty() => Some(chat_id),
        _ => None,
    }
}

/// The last token of a subject: the command, event or signal name after the chat id.
pub fn tail_after_chat(subject: &str) -> Option<&str> {
    subject.splitn(4, '.').nth(3)
}

/// The user id in `user.<user_id>.…`.
pub fn user_id_of(subject: &str) -> Option<&str> {
    let mut parts = subject.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some("user"), Some(id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

/// The user id in `presence.changed.<user_id>`.
pub fn presence_changed_user(subject: &str) -> Option<&str> {
    subject.strip_prefix("presence.changed.").filter(|id| !id.is_empty() && !id.contains('.'))
}

/// The delivery kind in `user.<user_id>.<kind>`; `None` for a kind this code does not
/// know.
pub fn user_delivery_of(subject: &str) -> Option<UserDeliveryKind> {
    subject.splitn(3, '.').nth(2).and_then(UserDeliveryKind::parse)
}

/// True when `id` can be used inside a subject and a MongoDB document id: 1 to 64
/// characters from `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_spell_the_pinned_subjects() {
        assert_eq!(command("c1", "msg.send"), "chat.cmd.c1.msg.send");
        assert_eq!(cmd_partition_transform(16), "chat.cmd.{{partition(16,1)}}.{{wildcard(1)}}.>");
        assert_eq!(partitions_in_transform(&cmd_partition_transform(16)), Some(16));
        assert_eq!(partitions_in_transform("chat.cmd.{{wildcard(1)}}.>"), None);
        assert_eq!(cmd_partition(3), "chat.cmd.3.>");
        assert_eq!(event("c1", EventKind::MsgCreated), "chat.evt.c1.msg.created");
        assert_eq!(chat_events("c1"), "chat.evt.c1.>");
        assert_eq!(live("c1", LiveSignalKind::Typing), "chat.live.c1.typing");
        assert!(is_live(&live_bench("c1")) && !is_live(&event("c1", EventKind::MsgCreated)));
        assert_eq!(signal_typing("c1"), "chat.signal.c1.typing");
        assert_eq!(user("u1", UserDeliveryKind::ChatJoined), "user.u1.chat.joined");
        assert_eq!(presence_conn("u1"), "presence.conn.u1");
        assert_eq!(presence_changed("u1"), "presence.changed.u1");
        assert_eq!(push("u1"), "push.u1");
        assert_eq!(rpc("memberships"), "chat.rpc.memberships");
        assert_eq!(edge_outcome("e1", "u1", "c1"), "edge.e1.outcome.u1.c1");
        assert_eq!(edge_outcomes("e1"), "edge.e1.outcome.>");
        assert_eq!(api_command("c1", "msg.send"), "chat.cmd.c1.api.msg.send");
        assert_eq!(inbox_prefix("api"), "_INBOX.api");
    }

    #[test]
    fn a_commands_subject_tells_who_published_it() {
        use CommandPublisher::*;
        for (subject, want) in [
            ("chat.cmd.7.c1.msg.send", Some(Edge)),
            ("chat.cmd.c1.msg.send", Some(Edge)),
            ("chat.cmd.7.c1.api.msg.send", Some(Api)),
            // Another chat than the body's, another command, or a mark elsewhere.
            ("chat.cmd.7.c2.msg.send", None),
            ("chat.cmd.7.c1.read", None),
            ("chat.cmd.7.c1.msg.send.api", None),
            ("chat.cmd.7.x.c1.api.msg.send", None),
            ("chat.evt.7.c1.msg.send", None),
        ] {
            assert_eq!(command_publisher(subject, "c1", "msg.send"), want, "{subject}");
        }
        // A numeric chat id is not mistaken for a partition.
        assert_eq!(command_publisher("chat.cmd.3.42.read", "42", "read"), Some(Edge));
        assert_eq!(command_publisher("chat.cmd.42.read", "42", "read"), Some(Edge));
        assert_eq!(command_publisher("chat.cmd.3.42.api.read", "42", "read"), Some(Api));
        // An edge's `chat.cmd.api.read` for chat "5", stored in partition 5, is no api command.
        assert_eq!(command_publisher("chat.cmd.5.api.read", "5", "read"), None);
        assert_eq!(command_publisher("chat.cmd.c1.api.read", "c1", "read"), None, "unpartitioned: never the api");
    }

    #[test]
    fn only_inboxes_are_reply_subjects() {
        assert!(is_inbox("_INBOX.api.abc"));
        assert!(is_inbox("_INBOX.abc"));
        for bad in ["_INBOX", "_INBOX.", "_INBOXx.a", "chat.evt.c1.msg.created", "user.u1.chat.joined"] {
            assert!(!is_inbox(bad), "{bad}");
        }
    }

    #[test]
    fn parsers_recover_ids_and_names() {
        assert_eq!(chat_id_of("chat.evt.c1.msg.created"), Some("c1"));
        assert_eq!(tail_after_chat("chat.evt.c1.msg.created"), Some("msg.created"));
        assert_eq!(chat_id_of("user.u1.x"), None);
        assert_eq!(user_id_of("user.u1.chat.joined"), Some("u1"));
        assert_eq!(user_id_of("chat.evt.c1.x"), None);
        assert_eq!(user_delivery_of("user.u1.chat.joined"), Some(UserDeliveryKind::ChatJoined));
        assert_eq!(user_delivery_of("user.u1.msg.created"), Some(UserDeliveryKind::MsgCreated));
        assert_eq!(user_delivery_of("user.u1.chat.exploded"), None);
        assert_eq!(user_delivery_of("user.u1"), None);
        assert_eq!(outcome_target_of(&edge_outcome("e1", "u1", "c1")), Some(("u1", "c1")));
        assert_eq!(outcome_target_of("edge.e1.outcome.u1"), None);
        assert_eq!(outcome_target_of("edge.e1.outcome.u1.c1.x"), None);
        assert_eq!(outcome_target_of("user.u1.rejected"), None);
        assert_eq!(presence_changed_user("presence.changed.u1"), Some("u1"));
        assert_eq!(presence_changed_user("presence.changed."), None);
        assert_eq!(presence_changed_user("presence.conn.u1"), None);
    }

    #[test]
    fn ids_that_would_break_a_subject_are_invalid() {
        assert!(is_valid_id("u-1_A"));
        for bad in ["", "a.b", "a*", "a>", "a b", "ü", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} accepted");
        }
    }
}
