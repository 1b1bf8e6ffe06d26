//! One file per command. Each handler receives its own command's struct, authorises
//! it, writes MongoDB, and records in [`Effects`] what to publish; [`handle_step`]
//! hands a step of the pipeline to the handler of its kind.

pub mod chat_create;
pub mod chat_moderate;
pub mod chat_update;
pub mod member_add;
pub mod member_mute;
pub mod member_remove;
pub mod msg_delete;
pub mod msg_edit;
pub mod msg_report;
pub mod msg_send;
pub mod read;
pub mod report_resolve;
pub mod seqs;

use chat_core::{config::ChatLimitArgs, moderation::ModerationArgs, policy::Policy};
use chat_nats::{commands::Command, model::Role};
use chat_store::{Store, docs::ChatDoc};

use crate::{
    command::{HandleError, Issued},
    effects::Effects,
    group_commit::SendWrites,
    known_chats::KnownChats,
};

/// Handles one step of a batch: a run of sends, or one other command (the pipeline's
/// `plan_steps` never mixes them). `known` is what the partition remembers of its chats;
/// `limits` bound the commands that add members; `policy` decides which chats may be
/// created; `moderation` names who resolves reports.
#[allow(clippy::too_many_arguments)]
pub async fn handle_step(
    store: &Store,
    sends: &SendWrites,
    limits: &ChatLimitArgs,
    policy: &Policy,
    moderation: &ModerationArgs,
    known: &mut KnownChats,
    step: &[&Issued],
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let Some(&first) = step.first() else { return Ok(()) };
    // Every command but sends, read marks and reports may move `last_seq` by an increment.
    if !matches!(first.envelope.command, Command::MsgSend(_) | Command::Read(_) | Command::MsgReport(_)) {
        known.forget(first.envelope.chat_id());
    }
    let handled = match &first.envelope.command {
        Command::MsgSend(_) => {
            // The pipeline's steps that start with a send hold only sends.
            let run: Vec<msg_send::SendInRun<'_>> = step
                .iter()
                .filter_map(|&issued| match &issued.envelope.command {
                    Command::MsgSend(command) => Some(msg_send::SendInRun { issued, command }),
                    _ => None,
                })
                .collect();
            msg_send::handle(store, sends, known, &run, effects).await
        }
        Command::MsgEdit(command) => msg_edit::handle(store, first, command, effects).await,
        Command::MsgDelete(command) => msg_delete::handle(store, first, command, effects).await,
        Command::Read(command) => read::handle(store, first, command, effects).await,
        Command::ChatCreate(command) => chat_create::handle(store, limits, policy, first, command, effects).await,
        Command::ChatUpdate(command) => chat_update::handle(store, first, command, effects).await,
        Command::MemberAdd(command) => member_add::handle(store, limits, first, command, effects).await,
        Command::MemberRemove(command) => member_remove::handle(store, first, command, effects).await,
        Command::ChatModerate(command) => chat_moderate::handle(store, first, command, effects).await,
        Command::MemberMute(command) => member_mute::handle(store, first, command, effects).await,
        Command::MsgReport(command) => msg_report::handle(store, first, command, effects).await,
        Command::ReportResolve(command) => report_resolve::handle(store, moderation, first, command, effects).await,
    };
    // Read marks and reports leave the head where it is; everything else may have moved it.
    if handled.is_ok() && !matches!(first.envelope.command, Command::Read(_) | Command::MsgReport(_)) {
        let mut chats: Vec<&str> = step.iter().map(|issued| issued.envelope.chat_id()).collect();
        chats.sort_unstable();
        chats.dedup();
        for chat_id in chats {
            sends.head_moved(chat_id);
        }
    }
    handled
}

/// The role of `user_id` in a stored chat.
pub fn role_in(chat: &ChatDoc, user_id: &str) -> Option<Role> {
    chat.participants.iter().find(|m| m.user_id == user_id).map(|m| m.role)
}
