//! Per-user budgets of every write other than a message send, counted across the api
//! replicas and the edges in Redis (the token buckets of [`crate::rate_limit`], one
//! kind each): changes to chats (create, rename or update, member add, remove and role
//! change), changes to messages (edit, delete), read marks (frequent, so a larger
//! budget of their own), and the chats a user creates per hour.
//!
//! The platform (`admin`, `service`) provisions courses and moderates in bulk, so it
//! is counted by none of them; staff (`teacher` too) create groups for their classes,
//! so the hourly creation budget does not count them either.

use std::time::Duration;

use chat_nats::{commands::Command, roles};

use crate::{
    config::WriteLimitArgs,
    connect::LazyRedis,
    rate_limit::{BucketRule, UserBudget, Verdict},
};

/// A kind of write with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// `chat.create`, `chat.update`, `member.add`, `member.remove`.
    ChatChange,
    /// `chat.create` again, in the hourly budget.
    ChatCreate,
    /// `msg.edit`, `msg.delete`.
    MessageChange,
    /// `read`.
    ReadMark,
}

impl WriteKind {
    /// The kind's name in its Redis key ([`crate::redis_keys::user_budget`]).
    pub const fn key(self) -> &'static str {
        match self {
            WriteKind::ChatChange => "chat",
            WriteKind::ChatCreate => "create",
            WriteKind::MessageChange => "change",
            WriteKind::ReadMark => "read",
        }
    }

    /// What a client is told when it is over this budget.
    pub const fn refusal(self) -> &'static str {
        match self {
            WriteKind::ChatChange => "too many chat and member changes; slow down",
            WriteKind::ChatCreate => "too many chats created this hour; wait",
            WriteKind::MessageChange => "too many edits and deletes; slow down",
            WriteKind::ReadMark => "too many read marks; slow down",
        }
    }
}

/// Over a budget: which one, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// The budget refused.
    pub kind: WriteKind,
    /// Milliseconds until it admits one again.
    pub retry_after_ms: u64,
}

/// The budgets of writes other than sends. Cheap to clone.
#[derive(Clone)]
pub struct WriteBudgets {
    chat_changes: UserBudget,
    chat_creates: UserBudget,
    message_changes: UserBudget,
    read_marks: UserBudget,
}

impl WriteBudgets {
    /// The budgets `args` sets, counted in `redis` (each replica alone while it is down).
    pub fn new(redis: &LazyRedis, args: &WriteLimitArgs) -> Self {
        let minute = Duration::from_secs(60);
        let budget = |kind: WriteKind, rule| UserBudget::new(redis.clone(), kind.key(), rule);
        WriteBudgets {
            chat_changes: budget(
                WriteKind::ChatChange,
                BucketRule::per(minute, args.chat_changes_per_user_per_min, args.chat_changes_per_user_burst),
            ),
            chat_creates: budget(
                WriteKind::ChatCreate,
                BucketRule::per(
                    Duration::from_secs(3600),
                    args.chat_creates_per_user_per_hour,
                    args.chat_creates_per_user_per_hour,
                ),
            ),
            message_changes: budget(
                WriteKind::MessageChange,
                BucketRule::per(minute, args.message_changes_per_user_per_min, args.message_changes_per_user_burst),
            ),
            read_marks: budget(
                WriteKind::ReadMark,
                BucketRule::per(minute, args.read_marks_per_user_per_min, args.read_marks_per_user_burst),
            ),
        }
    }

    /// Counts `command` of `user_id` (with platform `roles`) in its budgets, without
    /// waiting for Redis. Sends are the message budget's, so they pass here.
    pub fn take(&self, user_id: &str, user_roles: &[String], command: &Command) -> Result<(), OverBudget> {
        if roles::is_platform(user_roles) {
            return Ok(());
        }
        let over = |kind: WriteKind, budget: &UserBudget| match budget.take(user_id) {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { retry_after_ms } => Err(OverBudget { kind, retry_after_ms }),
        };
        match command {
            Command::MsgSend(_) => Ok(()),
            Command::ChatCreate(_) => {
                if !roles::is_staff(user_roles) {
                    over(WriteKind::ChatCreate, &self.chat_creates)?;
                }
                over(WriteKind::ChatChange, &self.chat_changes)
            }
            Command::ChatUpdate(_)
            | Command::MemberAdd(_)
            | Command::MemberRemove(_)
            | Command::ChatModerate(_)
            | Command::MemberMute(_) => over(WriteKind::ChatChange, &self.chat_changes),
            Command::MsgEdit(_) | Command::MsgDelete(_) | Command::MsgReport(_) | Command::ReportResolve(_) => {
                over(WriteKind::MessageChange, &self.message_changes)
            }
            Command::Read(_) => over(WriteKind::ReadMark, &self.read_marks),
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_nats::commands::{ChatCreate, ChatUpdate, MsgDelete, MsgSend, Read};

    use super::*;

    /// Budgets of two of each kind (one a minute or an hour after), counted locally:
    /// nothing listens on port 1.
    fn budgets() -> WriteBudgets {
        let redis = LazyRedis::new(&crate::config::RedisArgs { redis_url: "redis://127.0.0.1:1".into() })
            .unwrap_or_else(|error| panic!("{error}"));
        let args = WriteLimitArgs {
            chat_changes_per_user_per_min: 1,
            chat_changes_per_user_burst: 2,
            chat_creates_per_user_per_hour: 1,
            message_changes_per_user_per_min: 1,
            message_changes_per_user_burst: 2,
            read_marks_per_user_per_min: 1,
            read_marks_per_user_burst: 2,
        };
        WriteBudgets::new(&redis, &args)
    }

    fn roles(list: &[&str]) -> Vec<String> {
        list.iter().map(|role| (*role).to_owned()).collect()
    }

    fn create() -> Command {
        Command::ChatCreate(ChatCreate {
            chat_id: "c".into(),
            kind: chat_nats::model::ChatKind::Group,
            title: Some("t".into()),
            member_ids: vec![],
            external_id: None,
            history_visibility: None,
        })
    }

    fn over(result: Result<(), OverBudget>) -> Option<WriteKind> {
        result.err().map(|over| over.kind)
    }

    #[tokio::test]
    async fn each_kind_has_its_budget_and_the_platform_and_staff_are_exempt_as_documented() {
        let budgets = budgets();
        let student = roles(&["student"]);
        let rename =
            Command::ChatUpdate(ChatUpdate { chat_id: "c".into(), title: Some("t".into()), history_visibility: None });
        assert_eq!(over(budgets.take("s", &student, &create())), None);
        assert_eq!(over(budgets.take("s", &student, &create())), Some(WriteKind::ChatCreate), "one chat an hour");
        assert_eq!(over(budgets.take("s", &student, &rename)), None, "a refused create spent no chat change");
        assert_eq!(over(budgets.take("s", &student, &rename)), Some(WriteKind::ChatChange));

        let delete = Command::MsgDelete(MsgDelete { chat_id: "c".into(), message_id: "m".into() });
        let read = Command::Read(Read { chat_id: "c".into(), up_to_seq: 1 });
        for _ in 0..2 {
            assert_eq!(over(budgets.take("s", &student, &delete)), None);
            assert_eq!(over(budgets.take("s", &student, &read)), None, "read marks count apart");
        }
        let refused = budgets.take("s", &student, &delete).err();
        assert_eq!(refused.map(|o| o.kind), Some(WriteKind::MessageChange));
        assert!(refused.is_some_and(|o| o.retry_after_ms > 0 && o.retry_after_ms <= 60_000), "{refused:?}");
        assert_eq!(over(budgets.take("s", &student, &read)), Some(WriteKind::ReadMark));
        let send = Command::MsgSend(MsgSend {
            chat_id: "c".into(),
            client_msg_id: "k".into(),
            text: "hi".into(),
            reply_to: None,
        });
        assert_eq!(over(budgets.take("s", &student, &send)), None, "sends are the message budget's");

        let teacher = roles(&["teacher"]);
        assert_eq!(over(budgets.take("t", &teacher, &create())), None);
        assert_eq!(over(budgets.take("t", &teacher, &create())), None, "staff: no hourly creation budget");
        assert_eq!(over(budgets.take("t", &teacher, &create())), Some(WriteKind::ChatChange), "but chat changes");
        for _ in 0..10 {
            assert_eq!(over(budgets.take("lms", &roles(&["service"]), &create())), None, "the platform: none");
        }
    }
}
