//! `chat.create`: a direct chat (one per pair) or a group owned by its creator.
//! The chat id comes from the api, so a retried command finds the chat it created.
//! The messaging policy decides who may create which chat, and turns a supervised
//! pair's direct chat into a group that the supervisor owns (`chat_core::policy`).

use chat_core::{
    config::ChatLimitArgs,
    policy::{DirectChat, Policy, Refusal, Supervision},
};
use chat_nats::{
    commands::{ChatCreate, CommandOutcome},
    events::{ChatEvent, EventBody},
    limits,
    model::{ChatKind, ErrorCode, HistoryVisibility, Role, direct_key},
    roles, subjects,
};
use chat_store::{
    Store,
    docs::{ChatDoc, MemberDoc, ParticipantDoc},
};

use crate::{
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// The seq of a chat's creation event.
const CREATED_SEQ: u64 = 1;
/// Why a chat with an `external_id` was refused to its creator.
const EXTERNAL_ID_FORBIDDEN: &str = "only the platform (admin or service role) may set external_id";

/// Handles one `chat.create`; a group with more members than `limits` allow is refused
/// (`conflict`), a chat `policy` does not allow is refused (`forbidden`).
pub async fn handle(
    store: &Store,
    limits: &ChatLimitArgs,
    policy: &Policy,
    issued: &Issued,
    command: &ChatCreate,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let ChatCreate { chat_id, kind, title, member_ids, external_id, history_visibility } = command;
    let creator = &envelope.actor.user_id;
    if let Err(reason) = validate(creator, *kind, title.as_deref(), member_ids, external_id.as_deref()) {
        effects.reject(envelope, ErrorCode::Invalid, reason);
        return Ok(());
    }
    if *kind == ChatKind::Direct && history_visibility.is_some() {
        effects.reject(envelope, ErrorCode::Invalid, "a direct chat has no history visibility");
        return Ok(());
    }
    // Checked here, not only at the api: a command on the bus names its actor's roles,
    // and the persister is the one writer that decides.
    if external_id.is_some() && !roles::is_platform(&envelope.actor.roles) {
        effects.reject(envelope, ErrorCode::Forbidden, EXTERNAL_ID_FORBIDDEN);
        return Ok(());
    }

    if let Some(existing) = store.chat(chat_id).await? {
        return finish(store, issued, existing, false, effects).await;
    }
    let key = (*kind == ChatKind::Direct).then(|| direct_key(creator, &member_ids[0]));
    if let Some(key) = &key
        && let Some(existing) = store.direct_chat(key).await?
    {
        return finish(store, issued, existing, false, effects).await;
    }
    // Only what is created is judged: a chat found above stays as it was made.
    let supervision = match judge(store, policy, issued, command).await? {
        Ok(supervision) => supervision,
        Err(refusal) => {
            effects.reject(envelope, refusal.code(), refusal.message);
            return Ok(());
        }
    };
    if let Some(external_id) = external_id
        && store.chat_by_external_id(external_id).await?.is_some()
    {
        effects.reject(envelope, ErrorCode::Conflict, "a chat with this external_id exists");
        return Ok(());
    }

    let now = chrono::Utc::now();
    let creator_role = if *kind == ChatKind::Group && supervision.is_none() { Role::Owner } else { Role::Member };
    let mut participants = vec![MemberDoc { user_id: creator.clone(), role: creator_role, muted_until: None }];
    for member in member_ids {
        if participants.iter().all(|p| &p.user_id != member) {
            participants.push(MemberDoc { user_id: member.clone(), role: Role::Member, muted_until: None });
        }
    }
    // The supervisor owns a supervised chat: an owner is never removed, and only they
    // manage its members.
    if let Some(supervision) = supervision {
        participants.push(MemberDoc { user_id: supervision.supervisor.clone(), role: Role::Owner, muted_until: None });
    }
    if participants.len() > limits.max_participants {
        effects.reject(envelope, ErrorCode::Conflict, limits.too_many_participants());
        return Ok(());
    }
    let (kind, title, history_visibility) = match supervision {
        Some(supervision) => (ChatKind::Group, Some(supervision.title.clone()), Some(HistoryVisibility::All)),
        None => (*kind, title.clone(), *history_visibility),
    };
    let chat = ChatDoc {
        id: chat_id.clone(),
        kind,
        title,
        created_by: creator.clone(),
        created_at: now,
        updated_at: now,
        last_seq: CREATED_SEQ as i64,
        last_message: None,
        participants,
        external_id: external_id.clone(),
        direct_key: key.clone(),
        last_update: None,
        last_removal: None,
        history_visibility: history_visibility.unwrap_or_else(|| default_visibility(&envelope.actor.roles)),
        mode: Default::default(),
        last_moderation: None,
    };
    match store.insert_chat(&chat).await {
        Ok(()) => finish(store, issued, chat, true, effects).await,
        Err(error) if error.is_duplicate_key() => {
            // Another command created the same pair's chat or took the external id first.
            let winner = match &key {
                Some(key) => store.direct_chat(key).await?,
                None => None,
            };
            match winner {
                Some(existing) => finish(store, issued, existing, false, effects).await,
                None => {
                    effects.reject(envelope, ErrorCode::Conflict, "a chat with this external_id exists");
                    Ok(())
                }
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// What the policy says of a chat about to be created: refused, or allowed and, for a
/// supervised pair, how it is supervised. The other party's roles come from the user
/// directory; a user it does not know has none.
async fn judge<'a>(
    store: &Store,
    policy: &'a Policy,
    issued: &Issued,
    command: &ChatCreate,
) -> Result<Result<Option<&'a Supervision>, Refusal>, HandleError> {
    let actor = &issued.envelope.actor;
    match (command.kind, command.member_ids.first()) {
        (ChatKind::Group, _) => Ok(policy.may_create_group(&actor.roles).map(|()| None)),
        (ChatKind::Direct, Some(other)) if policy.judges_direct_chats() => {
            let other_roles = store.user(other).await?.map(|user| user.roles).unwrap_or_default();
            Ok(policy.direct_chat(&actor.user_id, &actor.roles, other, &other_roles).map(|chat| match chat {
                DirectChat::Plain => None,
                DirectChat::Supervised(supervision) => Some(supervision),
            }))
        }
        (ChatKind::Direct, _) => Ok(Ok(None)),
    }
}

/// Makes sure the chat's head and every participant document exist (a crash may have
/// stopped short of them), then records the event and the answer.
async fn finish(
    store: &Store,
    issued: &Issued,
    chat: ChatDoc,
    created: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    if !created {
        store.head(&chat.id).await?;
    }
    let participants: Vec<ParticipantDoc> = chat
        .participants
        .iter()
        .map(|member| ParticipantDoc {
            id: ParticipantDoc::key(&chat.id, &member.user_id),
            chat_id: chat.id.clone(),
            user_id: member.user_id.clone(),
            role: member.role,
            joined_at: chat.created_at,
            joined_seq: CREATED_SEQ as i64,
            role_seq: None,
            last_read_seq: 0,
            muted: false,
            muted_until: None,
            added_by: Some(issued.envelope.id.clone()),
        })
        .collect();
    store.insert_participants(&participants).await?;
    let public: chat_nats::model::Chat = chat.into();
    if created || issued.redelivered {
        let event = ChatEvent::new(&public.id, CREATED_SEQ, EventBody::ChatCreated { chat: public.clone() });
        effects.event(event, issued.traceparent.as_deref());
    }
    let outcome = if created { "stored" } else { "duplicate" };
    metrics::COMMANDS.with_label_values(&["chat.create", outcome]).inc();
    effects.answer(&issued.envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(public)), created });
    Ok(())
}

/// A group's history visibility when its creator chose none: staff's groups (a class,
/// a course) show new members the whole history, students' groups do not.
fn default_visibility(roles: &[String]) -> HistoryVisibility {
    if roles::is_staff(roles) { HistoryVisibility::All } else { HistoryVisibility::SinceJoin }
}

fn validate(
    creator: &str,
    kind: ChatKind,
    title: Option<&str>,
    member_ids: &[String],
    external_id: Option<&str>,
) -> Result<(), String> {
    if member_ids.len() > limits::MAX_MEMBERS_PER_COMMAND {
        return Err(format!("at most {} members at once", limits::MAX_MEMBERS_PER_COMMAND));
    }
    if let Some(bad) = member_ids.iter().find(|id| !subjects::is_valid_id(id)) {
        return Err(format!("invalid user id {bad:?}"));
    }
    if let Some(external_id) = external_id {
        limits::check_client_id(external_id, "external_id")?;
    }
    match kind {
        ChatKind::Direct => {
            if member_ids.len() != 1 || member_ids[0] == creator {
                return Err("a direct chat needs exactly one other member".into());
            }
            if title.is_some() {
                return Err("a direct chat has no title".into());
            }
        }
        ChatKind::Group => limits::check_title(title.unwrap_or_default())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_chats_need_exactly_one_other_member() {
        assert!(validate("u1", ChatKind::Direct, None, &["u2".into()], None).is_ok());
        assert!(validate("u1", ChatKind::Direct, None, &["u1".into()], None).is_err());
        assert!(validate("u1", ChatKind::Direct, None, &[], None).is_err());
        assert!(validate("u1", ChatKind::Direct, Some("t"), &["u2".into()], None).is_err());
    }

    #[test]
    fn groups_need_a_title_and_valid_ids() {
        assert!(validate("u1", ChatKind::Group, Some("9Б"), &["u2".into(), "u3".into()], Some("course-1")).is_ok());
        assert!(validate("u1", ChatKind::Group, None, &[], None).is_err());
        assert!(validate("u1", ChatKind::Group, Some("t"), &["a.b".into()], None).is_err());
        assert!(validate("u1", ChatKind::Group, Some("t"), &[], Some("{\"$ne\":1}")).is_err());
    }
}
