//! Who may do what in a chat: the persister's authorization decisions as pure
//! functions of roles and facts, so every row of the table is tested here and each
//! handler only gathers the facts. Membership itself (a non-member learns nothing,
//! not even that the chat exists) is checked by the handlers before these.
//!
//! | action | allowed |
//! |---|---|
//! | rename a group | its owner and admins; direct chats have no title |
//! | add members | owners and admins of a group, granting at most their own role, never owner |
//! | change a member's role | as adding, and only of a member ranked below the actor |
//! | remove a member | owners remove admins and members, admins remove members; anyone but the owner leaves; never in a direct chat |
//! | edit a message | its sender, while it is not deleted |
//! | delete a message | its sender, the chat's owner and admins, a platform admin |
//! | edit or delete in a frozen chat | nobody (unfreeze first); read marks still move |
//! | change the chat's mode (`chat.moderate`) | its owner and admins, a platform admin |
//! | mute or unmute a member | owners mute admins and members, admins mute members; a platform admin mutes anyone, the owner too |

use chat_nats::model::{ChatKind, ErrorCode, Role};

/// Why an action is refused: the error code and the reason the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The public error code.
    pub code: ErrorCode,
    /// The reason, safe to show.
    pub reason: &'static str,
}

const fn refuse(code: ErrorCode, reason: &'static str) -> Result<(), Refusal> {
    Err(Refusal { code, reason })
}

/// May `actor` rename the chat?
pub fn may_rename(kind: ChatKind, actor: Role) -> Result<(), Refusal> {
    if kind == ChatKind::Direct {
        return refuse(ErrorCode::Forbidden, "direct chats have no title");
    }
    if !actor.can_manage() {
        return refuse(ErrorCode::Forbidden, "only owners and admins rename a chat");
    }
    Ok(())
}

/// May `actor` add members with role `granted`?
pub fn may_add(kind: ChatKind, actor: Role, granted: Role) -> Result<(), Refusal> {
    if kind == ChatKind::Direct {
        return refuse(ErrorCode::Forbidden, "direct chats have exactly two members");
    }
    if !actor.can_manage() {
        return refuse(ErrorCode::Forbidden, "only owners and admins add members");
    }
    if granted > actor || granted == Role::Owner {
        return refuse(ErrorCode::Forbidden, "cannot grant this role");
    }
    Ok(())
}

/// May `actor` (who may add with that role) change the role of a member who has
/// `current`?
pub fn may_change_role(actor: Role, current: Role) -> Result<(), Refusal> {
    if current >= actor {
        return refuse(ErrorCode::Forbidden, "cannot change the role of an equal or higher member");
    }
    Ok(())
}

/// May `actor` remove a member whose role is `target` (`None`: not a member)? `leaving`
/// when the actor removes themself.
pub fn may_remove(kind: ChatKind, actor: Role, target: Option<Role>, leaving: bool) -> Result<(), Refusal> {
    if kind == ChatKind::Direct {
        return refuse(ErrorCode::Forbidden, "direct chats keep their two members");
    }
    let Some(target) = target else { return refuse(ErrorCode::NotFound, "not a member") };
    if target == Role::Owner {
        return refuse(ErrorCode::Conflict, "the owner cannot leave or be removed");
    }
    let outranks = actor.can_manage() && target < actor;
    if !(leaving || outranks) {
        return refuse(ErrorCode::Forbidden, "owners remove admins and members; admins remove members");
    }
    Ok(())
}

/// May the actor edit a message (`is_sender`: they sent it)?
pub fn may_edit(is_sender: bool, deleted: bool) -> Result<(), Refusal> {
    if !is_sender {
        return refuse(ErrorCode::Forbidden, "only the sender edits a message");
    }
    if deleted {
        return refuse(ErrorCode::Conflict, "the message is deleted");
    }
    Ok(())
}

/// May the actor delete a message? `role` is theirs in the chat (`None` for a
/// platform admin who is not a member).
pub fn may_delete(is_sender: bool, role: Option<Role>, platform_admin: bool) -> Result<(), Refusal> {
    if is_sender || role.is_some_and(Role::can_manage) || platform_admin {
        return Ok(());
    }
    refuse(ErrorCode::Forbidden, "only the sender, a chat owner or admin, or a platform admin deletes")
}

/// May messages of a chat be edited or deleted? Not while it is frozen.
pub fn may_change_messages(frozen: bool) -> Result<(), Refusal> {
    if frozen {
        return refuse(ErrorCode::Forbidden, "the chat is frozen: it is read-only");
    }
    Ok(())
}

/// May the actor change the chat's mode? `role` is theirs in the chat (`None` for a
/// platform admin who is not a member).
pub fn may_moderate(role: Option<Role>, platform_admin: bool) -> Result<(), Refusal> {
    if role.is_some_and(Role::can_manage) || platform_admin {
        return Ok(());
    }
    refuse(ErrorCode::Forbidden, "only the chat's owner and admins, or a platform admin, moderate it")
}

/// May the actor (role `actor`, `None` when not a member) mute or unmute a member whose
/// role is `target` (`None`: not a member)? A chat's own moderators mute only those
/// ranked below them, so an admin cannot silence another admin or the owner; a
/// platform admin mutes anyone.
pub fn may_mute(actor: Option<Role>, platform_admin: bool, target: Option<Role>) -> Result<(), Refusal> {
    let Some(target) = target else { return refuse(ErrorCode::NotFound, "not a member") };
    if platform_admin {
        return Ok(());
    }
    let Some(actor) = actor.filter(|role| role.can_manage()) else {
        return refuse(ErrorCode::Forbidden, "only the chat's owner and admins, or a platform admin, mute members");
    };
    if target >= actor {
        return refuse(ErrorCode::Forbidden, "cannot mute an equal or higher member");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];
    const KINDS: [ChatKind; 2] = [ChatKind::Direct, ChatKind::Group];

    fn code(decision: Result<(), Refusal>) -> Option<ErrorCode> {
        decision.err().map(|refusal| refusal.code)
    }

    #[test]
    fn renaming() {
        for kind in KINDS {
            for actor in ROLES {
                let allowed = kind == ChatKind::Group && actor != Role::Member;
                assert_eq!(may_rename(kind, actor).is_ok(), allowed, "{kind:?} {actor:?}");
            }
        }
    }

    #[test]
    fn adding_grants_at_most_ones_own_role_and_never_owner() {
        // Written out rather than derived from the rule, so the table is checked.
        let expected = |actor: Role, granted: Role| {
            matches!((actor, granted), (Role::Owner | Role::Admin, Role::Member | Role::Admin))
        };
        for actor in ROLES {
            for granted in ROLES {
                assert_eq!(may_add(ChatKind::Group, actor, granted).is_ok(), expected(actor, granted));
                assert_eq!(code(may_add(ChatKind::Direct, actor, granted)), Some(ErrorCode::Forbidden));
            }
        }
    }

    #[test]
    fn role_changes_only_of_members_ranked_below() {
        for actor in ROLES {
            for current in ROLES {
                assert_eq!(may_change_role(actor, current).is_ok(), current < actor, "{actor:?} changes {current:?}");
            }
        }
    }

    #[test]
    fn removing_and_leaving() {
        for actor in ROLES {
            for target in ROLES {
                for leaving in [false, true] {
                    let decision = may_remove(ChatKind::Group, actor, Some(target), leaving);
                    let expected = if target == Role::Owner {
                        Some(ErrorCode::Conflict)
                    } else if leaving || (actor.can_manage() && target < actor) {
                        None
                    } else {
                        Some(ErrorCode::Forbidden)
                    };
                    assert_eq!(code(decision), expected, "{actor:?} removes {target:?}, leaving {leaving}");
                    let direct = may_remove(ChatKind::Direct, actor, Some(target), leaving);
                    assert_eq!(code(direct), Some(ErrorCode::Forbidden));
                }
            }
            assert_eq!(code(may_remove(ChatKind::Group, actor, None, false)), Some(ErrorCode::NotFound));
        }
        // The rows a school cares about, spelled out.
        assert!(may_remove(ChatKind::Group, Role::Owner, Some(Role::Admin), false).is_ok());
        assert!(may_remove(ChatKind::Group, Role::Admin, Some(Role::Admin), false).is_err());
        assert!(may_remove(ChatKind::Group, Role::Member, Some(Role::Member), true).is_ok());
    }

    #[test]
    fn editing() {
        assert!(may_edit(true, false).is_ok());
        assert_eq!(code(may_edit(false, false)), Some(ErrorCode::Forbidden));
        assert_eq!(code(may_edit(false, true)), Some(ErrorCode::Forbidden));
        assert_eq!(code(may_edit(true, true)), Some(ErrorCode::Conflict));
    }

    #[test]
    fn deleting() {
        let roles = [None, Some(Role::Member), Some(Role::Admin), Some(Role::Owner)];
        for is_sender in [false, true] {
            for role in roles {
                for platform_admin in [false, true] {
                    let expected = is_sender || matches!(role, Some(Role::Admin | Role::Owner)) || platform_admin;
                    assert_eq!(
                        may_delete(is_sender, role, platform_admin).is_ok(),
                        expected,
                        "sender {is_sender}, {role:?}, platform admin {platform_admin}"
                    );
                }
            }
        }
    }

    #[test]
    fn frozen_chats_keep_their_messages_as_they_are() {
        assert!(may_change_messages(false).is_ok());
        assert_eq!(code(may_change_messages(true)), Some(ErrorCode::Forbidden));
    }

    #[test]
    fn moderating() {
        let roles = [None, Some(Role::Member), Some(Role::Admin), Some(Role::Owner)];
        for role in roles {
            for platform_admin in [false, true] {
                let expected = matches!(role, Some(Role::Admin | Role::Owner)) || platform_admin;
                assert_eq!(
                    may_moderate(role, platform_admin).is_ok(),
                    expected,
                    "{role:?}, platform admin {platform_admin}"
                );
            }
        }
    }

    #[test]
    fn muting_only_those_ranked_below_unless_platform_admin() {
        let actors = [None, Some(Role::Member), Some(Role::Admin), Some(Role::Owner)];
        for actor in actors {
            for target in ROLES {
                for platform_admin in [false, true] {
                    let allowed = platform_admin || actor.is_some_and(|actor| actor.can_manage() && target < actor);
                    let expected = (!allowed).then_some(ErrorCode::Forbidden);
                    let decision = may_mute(actor, platform_admin, Some(target));
                    assert_eq!(code(decision), expected, "{actor:?} mutes {target:?}, platform admin {platform_admin}");
                }
            }
            assert_eq!(code(may_mute(actor, true, None)), Some(ErrorCode::NotFound));
        }
        // The rows a school cares about, spelled out.
        assert!(may_mute(Some(Role::Owner), false, Some(Role::Admin)).is_ok());
        assert!(may_mute(Some(Role::Admin), false, Some(Role::Admin)).is_err());
        assert!(may_mute(Some(Role::Admin), false, Some(Role::Owner)).is_err());
        assert!(may_mute(None, true, Some(Role::Owner)).is_ok());
    }
}
