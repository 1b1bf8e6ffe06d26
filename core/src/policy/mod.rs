//! The platform's messaging policy: which platform roles may open direct chats with
//! which, which roles may create groups, and which direct chats are created as
//! supervised groups. It is read once at start-up from the TOML file named by
//! `CHAT_POLICY_FILE` ([`file`] parses and validates it); without a file everything is
//! allowed, as before the policy existed.
//!
//! The persister, the only writer, enforces it; the api asks the same questions first
//! for an early answer. Both start from the same file, so a change takes effect when
//! they restart, and it only decides what is created: chats made under an earlier
//! policy stay as they are.
//!
//! A supervised chat is a group holding both parties as members and the configured
//! supervisor as its owner, with the pair's direct key, so that either party opening
//! the direct chat again finds it. Its shape, not the current policy, keeps the
//! supervisor in it ([`may_remove`]).

pub mod file;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use chat_nats::model::{ChatKind, ErrorCode, Role};
use clap::Args;

pub use file::{PolicyError, Problem};

/// The role name that stands for every role, and for users without one.
pub const ANY_ROLE: &str = "*";

/// Where the policy comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// The messaging policy, a TOML file (docs/policy.md); without one, every user may
    /// open direct chats with anyone and create groups.
    #[arg(long = "policy-file", env = "CHAT_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
}

impl PolicyArgs {
    /// Reads and validates the file, or the unrestricted policy without one.
    pub fn load(&self) -> Result<Policy, PolicyError> {
        match &self.policy_file {
            Some(path) => file::read(path),
            None => Ok(Policy::default()),
        }
    }
}

/// A set of platform roles, or every role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roles {
    /// `"*"`: every role, and users without one.
    Any,
    /// These roles only.
    Listed(BTreeSet<String>),
}

impl Roles {
    /// True when a user with `roles` belongs to the set.
    pub fn admits(&self, roles: &[String]) -> bool {
        match self {
            Roles::Any => true,
            Roles::Listed(listed) => roles.iter().any(|role| listed.contains(role)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Roles::Any => "every role".into(),
            Roles::Listed(listed) if listed.is_empty() => "no role".into(),
            Roles::Listed(listed) => listed.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// Which direct chats become supervised groups, and with whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// One side of a supervised pair (students).
    pub students: BTreeSet<String>,
    /// The other side (staff).
    pub staff: BTreeSet<String>,
    /// The user added to every supervised chat as its owner.
    pub supervisor: String,
    /// The supervised group's title.
    pub title: String,
}

/// The title of a supervised chat when the policy names none.
pub const DEFAULT_SUPERVISED_TITLE: &str = "Supervised chat";

/// The policy; the default allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// By the opener's role, whom they may open direct chats with; `None` when direct
    /// chats are not restricted.
    pub direct: Option<BTreeMap<String, Roles>>,
    /// Who may create groups; `None` when everyone may.
    pub groups: Option<Roles>,
    /// Supervised direct chats, if any.
    pub supervised: Option<Supervision>,
}

/// What a direct chat the policy allows is created as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectChat<'a> {
    /// A direct chat of the two.
    Plain,
    /// A group of the two and the supervisor.
    Supervised(&'a Supervision),
}

/// A refusal by the policy: always `forbidden`, with a message naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Safe to show; starts with the rule that refused.
    pub message: String,
}

impl Refusal {
    fn by(rule: &str, reason: String) -> Refusal {
        Refusal { message: format!("the messaging policy's rule {rule} refuses this: {reason}") }
    }

    /// The public error code of every refusal.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Forbidden
    }
}

impl Policy {
    /// True when deciding a direct chat needs the other party's roles (from the user
    /// directory): without such rules nobody looks them up.
    pub fn judges_direct_chats(&self) -> bool {
        self.direct.is_some() || self.supervised.is_some()
    }

    /// May the actor open a direct chat with the other user, and as what? Roles are
    /// platform roles; a user the directory does not know has none, so only `"*"`
    /// reaches them.
    pub fn direct_chat(
        &self,
        actor_id: &str,
        actor_roles: &[String],
        other_id: &str,
        other_roles: &[String],
    ) -> Result<DirectChat<'_>, Refusal> {
        if let Some(direct) = &self.direct {
            let rule_of = |role: &str| direct.get(role).filter(|allowed| allowed.admits(other_roles));
            let allowed = actor_roles.iter().map(String::as_str).chain([ANY_ROLE]).any(|role| rule_of(role).is_some());
            if !allowed {
                return Err(Refusal::by(
                    "[direct]",
                    format!("{} may not open a direct chat with {}", who(actor_roles), who(other_roles)),
                ));
            }
        }
        let Some(supervision) = &self.supervised else { return Ok(DirectChat::Plain) };
        let involves_supervisor = actor_id == supervision.supervisor || other_id == supervision.supervisor;
        let side = |roles: &[String], set: &BTreeSet<String>| roles.iter().any(|role| set.contains(role));
        let pair = (side(actor_roles, &supervision.students) && side(other_roles, &supervision.staff))
            || (side(actor_roles, &supervision.staff) && side(other_roles, &supervision.students));
        Ok(if pair && !involves_supervisor { DirectChat::Supervised(supervision) } else { DirectChat::Plain })
    }

    /// May a user with `roles` create a group?
    pub fn may_create_group(&self, roles: &[String]) -> Result<(), Refusal> {
        match &self.groups {
            Some(allowed) if !allowed.admits(roles) => Err(Refusal::by(
                "[groups] create",
                format!("{} may not create groups (allowed: {})", who(roles), allowed.describe()),
            )),
            _ => Ok(()),
        }
    }
}

/// True for a supervised chat: a group created for a pair (it has their direct key).
pub fn is_supervised(kind: ChatKind, direct_key: Option<&str>) -> bool {
    kind == ChatKind::Group && direct_key.is_some()
}

/// May a member whose role is `target` be removed from a chat (`supervised`: see
/// [`is_supervised`]; `leaving`: the actor removes themself)? The supervisor is a
/// supervised chat's owner, and nobody removes them, whatever the policy says now.
/// Everything else is left to the chat's own roles.
pub fn may_remove(supervised: bool, target: Option<Role>, leaving: bool) -> Result<(), Refusal> {
    if supervised && target == Some(Role::Owner) && !leaving {
        return Err(Refusal::by("[supervised]", "the supervisor of a supervised chat cannot be removed".into()));
    }
    Ok(())
}

/// Names a user by their roles in a refusal.
fn who(roles: &[String]) -> String {
    match roles {
        [] => "a user without a platform role".into(),
        [role] => format!("role {role}"),
        roles => format!("roles {}", roles.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn listed(names: &[&str]) -> Roles {
        Roles::Listed(names.iter().map(|name| (*name).to_owned()).collect())
    }

    fn refused<T: std::fmt::Debug>(decision: Result<T, Refusal>) -> Refusal {
        match decision {
            Err(refusal) => refusal,
            Ok(allowed) => panic!("allowed: {allowed:?}"),
        }
    }

    fn school() -> Policy {
        Policy {
            direct: Some(BTreeMap::from([
                ("student".to_owned(), listed(&["teacher"])),
                ("teacher".to_owned(), Roles::Any),
            ])),
            groups: Some(listed(&["teacher", "admin"])),
            supervised: Some(Supervision {
                students: ["student".to_owned()].into(),
                staff: ["teacher".to_owned()].into(),
                supervisor: "counsellor".into(),
                title: DEFAULT_SUPERVISED_TITLE.into(),
            }),
        }
    }

    #[test]
    fn no_policy_allows_everything_plainly() {
        let policy = Policy::default();
        assert!(!policy.judges_direct_chats());
        let pairs: [(&[&str], &[&str]); 3] = [(&[], &[]), (&["student"], &["student"]), (&["teacher"], &["student"])];
        for (actor, other) in pairs {
            assert_eq!(policy.direct_chat("a", &roles(actor), "b", &roles(other)), Ok(DirectChat::Plain));
            assert!(policy.may_create_group(&roles(actor)).is_ok());
        }
    }

    #[test]
    fn direct_chats_follow_the_openers_role() {
        let policy = school();
        let decide = |actor: &[&str], other: &[&str]| policy.direct_chat("a", &roles(actor), "b", &roles(other));
        let refusal = refused(decide(&["student"], &["student"]));
        assert_eq!(refusal.code(), ErrorCode::Forbidden);
        assert!(refusal.message.contains("rule [direct]"), "{}", refusal.message);
        assert!(refusal.message.contains("role student may not open a direct chat with role student"));
        // A user the directory does not know has no role: only "*" reaches them.
        assert!(refused(decide(&["student"], &[])).message.contains("a user without a platform role"));
        assert_eq!(decide(&["teacher"], &[]), Ok(DirectChat::Plain));
        // A role without a rule opens nothing; any one role's rule is enough.
        assert!(decide(&["parent"], &["teacher"]).is_err());
        assert!(decide(&[], &["teacher"]).is_err());
        assert!(decide(&["parent", "teacher"], &["parent"]).is_ok());
    }

    #[test]
    fn a_star_rule_applies_to_every_opener() {
        let policy =
            Policy { direct: Some(BTreeMap::from([(ANY_ROLE.to_owned(), listed(&["teacher"]))])), ..Policy::default() };
        assert!(policy.direct_chat("a", &[], "b", &roles(&["teacher"])).is_ok());
        assert!(policy.direct_chat("a", &roles(&["student"]), "b", &roles(&["student"])).is_err());
    }

    #[test]
    fn student_staff_pairs_are_supervised_both_ways_unless_the_supervisor_is_one_of_them() {
        let policy = school();
        let supervised = |actor: &str, actor_roles: &[&str], other: &str, other_roles: &[&str]| {
            matches!(
                policy.direct_chat(actor, &roles(actor_roles), other, &roles(other_roles)),
                Ok(DirectChat::Supervised(s)) if s.supervisor == "counsellor"
            )
        };
        assert!(supervised("s1", &["student"], "t1", &["teacher"]));
        assert!(supervised("t1", &["teacher"], "s1", &["student"]));
        assert!(!supervised("t1", &["teacher"], "t2", &["teacher"]));
        assert!(!supervised("counsellor", &["teacher"], "s1", &["student"]));
        assert!(!supervised("t1", &["teacher"], "s9", &[]));
    }

    #[test]
    fn groups_are_created_by_the_listed_roles() {
        let policy = school();
        assert!(policy.may_create_group(&roles(&["teacher"])).is_ok());
        assert!(policy.may_create_group(&roles(&["student", "admin"])).is_ok());
        let refusal = refused(policy.may_create_group(&roles(&["student"])));
        assert!(refusal.message.contains("rule [groups] create"), "{}", refusal.message);
        assert!(refusal.message.contains("allowed: admin, teacher"), "{}", refusal.message);
        assert!(policy.may_create_group(&[]).is_err());
    }

    #[test]
    fn nobody_removes_a_supervised_chats_supervisor() {
        let refusal = refused(may_remove(true, Some(Role::Owner), false));
        assert!(refusal.message.contains("rule [supervised]"), "{}", refusal.message);
        assert!(may_remove(true, Some(Role::Member), false).is_ok());
        assert!(may_remove(false, Some(Role::Owner), false).is_ok(), "an ordinary group's owner: the chat's rules");
        assert!(may_remove(true, Some(Role::Owner), true).is_ok(), "leaving: the chat's rules");
        assert!(is_supervised(ChatKind::Group, Some("a:b")));
        assert!(!is_supervised(ChatKind::Direct, Some("a:b")));
        assert!(!is_supervised(ChatKind::Group, None));
    }
}
