//! Whether a member may post in a chat's current mode: the moderation rules of
//! `msg.send` as one pure function of what the pipeline knows (role, mute, mode, the
//! member's last stored send), so each rule is tested here and the handler only
//! gathers the facts. Owners and admins are exempt from posting and slow mode, never
//! from a freeze.

use chat_nats::model::{ChatMode, ErrorCode, Posting};
use chrono::{DateTime, Utc};

use crate::known_chats::KnownMember;

/// Why a send is refused in this mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRefusal {
    /// `forbidden` or `rate_limited`.
    pub code: ErrorCode,
    /// The reason the client is told.
    pub reason: String,
    /// When trying again can succeed (slow mode, a mute's end).
    pub retry_after_ms: Option<u64>,
}

/// May `member` post now, in a chat in `mode`, having last sent at `last_send`?
pub fn may_send(
    mode: ChatMode,
    member: KnownMember,
    last_send: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), SendRefusal> {
    let refuse = |code, reason: String, retry_after_ms| Err(SendRefusal { code, reason, retry_after_ms });
    if mode.frozen {
        return refuse(ErrorCode::Forbidden, "the chat is frozen: it is read-only".to_owned(), None);
    }
    if member.role.can_manage() {
        return Ok(());
    }
    if mode.posting == Posting::Admins {
        return refuse(
            ErrorCode::Forbidden,
            "this is an announcement chat: only its owner and admins post".to_owned(),
            None,
        );
    }
    if let Some(until) = member.muted_until.filter(|until| *until > now) {
        let left = millis(until - now);
        let reason = format!("you are muted in this chat until {} ({}s left)", until.to_rfc3339(), left.div_ceil(1000));
        return refuse(ErrorCode::Forbidden, reason, Some(left));
    }
    if mode.slow_mode_seconds > 0
        && let Some(last) = last_send
    {
        let next = last + chrono::Duration::seconds(i64::from(mode.slow_mode_seconds));
        if next > now {
            let left = millis(next - now);
            let reason = format!("slow mode: one message every {}s", mode.slow_mode_seconds);
            return refuse(ErrorCode::RateLimited, reason, Some(left));
        }
    }
    Ok(())
}

fn millis(span: chrono::Duration) -> u64 {
    u64::try_from(span.num_milliseconds()).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use chat_nats::model::Role;

    use super::*;

    const ROLES: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];

    fn member(role: Role) -> KnownMember {
        KnownMember { role, muted_until: None }
    }

    fn code(decision: Result<(), SendRefusal>) -> Option<ErrorCode> {
        decision.err().map(|refusal| refusal.code)
    }

    #[test]
    fn a_frozen_chat_refuses_everyone() {
        let now = Utc::now();
        let frozen = ChatMode { frozen: true, ..ChatMode::default() };
        for role in ROLES {
            let refusal = may_send(frozen, member(role), None, now).err();
            assert_eq!(refusal.as_ref().map(|r| r.code), Some(ErrorCode::Forbidden), "{role:?}");
            assert!(refusal.is_some_and(|r| r.reason.contains("frozen")));
        }
    }

    #[test]
    fn announcement_chats_let_only_owners_and_admins_post() {
        let now = Utc::now();
        let announcements = ChatMode { posting: Posting::Admins, ..ChatMode::default() };
        for role in ROLES {
            let expected = (role == Role::Member).then_some(ErrorCode::Forbidden);
            assert_eq!(code(may_send(announcements, member(role), None, now)), expected, "{role:?}");
        }
        assert!(may_send(ChatMode::default(), member(Role::Member), None, now).is_ok());
    }

    #[test]
    fn a_mute_refuses_with_the_time_left_until_it_ends() {
        let now = Utc::now();
        let muted = KnownMember { role: Role::Member, muted_until: Some(now + chrono::Duration::seconds(90)) };
        let refusal = may_send(ChatMode::default(), muted, None, now).err();
        assert_eq!(refusal.as_ref().map(|r| (r.code, r.retry_after_ms)), Some((ErrorCode::Forbidden, Some(90_000))));
        assert!(refusal.is_some_and(|r| r.reason.contains("muted") && r.reason.contains("90s left")));
        let over = KnownMember { muted_until: Some(now - chrono::Duration::seconds(1)), ..muted };
        assert!(may_send(ChatMode::default(), over, None, now).is_ok(), "an expired mute lets them post");
    }

    #[test]
    fn slow_mode_spaces_members_sends_but_not_admins() {
        let now = Utc::now();
        let slow = ChatMode { slow_mode_seconds: 30, ..ChatMode::default() };
        let ten_ago = Some(now - chrono::Duration::seconds(10));
        let refusal = may_send(slow, member(Role::Member), ten_ago, now).err();
        assert_eq!(refusal.map(|r| (r.code, r.retry_after_ms)), Some((ErrorCode::RateLimited, Some(20_000))));
        assert!(may_send(slow, member(Role::Member), None, now).is_ok(), "the first message passes");
        let long_ago = Some(now - chrono::Duration::seconds(30));
        assert!(may_send(slow, member(Role::Member), long_ago, now).is_ok());
        for role in [Role::Admin, Role::Owner] {
            assert!(may_send(slow, member(role), ten_ago, now).is_ok(), "{role:?} is exempt");
        }
        assert!(may_send(ChatMode::default(), member(Role::Member), ten_ago, now).is_ok(), "off at 0");
    }
}
