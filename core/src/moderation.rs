//! Who reviews reported messages: the platform roles named by `CHAT_MODERATION_ROLES`.
//! The persister enforces it on `report.resolve`; the api reads the same setting to
//! serve the review queue and to answer early.

use clap::Args;

/// The moderation roles when `CHAT_MODERATION_ROLES` is not set.
pub const DEFAULT_MODERATION_ROLES: &str = "admin";

/// The platform roles that see the review queue and resolve reports.
#[derive(Debug, Clone, Args)]
pub struct ModerationArgs {
    /// Platform roles (a token's `roles`) of the staff who review reports,
    /// comma-separated.
    #[arg(
        long = "moderation-roles",
        env = "CHAT_MODERATION_ROLES",
        default_value = DEFAULT_MODERATION_ROLES,
        value_delimiter = ','
    )]
    pub moderation_roles: Vec<String>,
}

impl Default for ModerationArgs {
    fn default() -> Self {
        ModerationArgs { moderation_roles: vec![DEFAULT_MODERATION_ROLES.to_owned()] }
    }
}

impl ModerationArgs {
    /// True when one of `roles` is a moderation role.
    pub fn is_moderator(&self, roles: &[String]) -> bool {
        roles.iter().any(|role| self.moderation_roles.iter().any(|allowed| allowed.trim() == role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_roles_moderate() {
        let args = ModerationArgs { moderation_roles: vec!["admin".into(), " teacher".into()] };
        assert!(args.is_moderator(&["teacher".into()]));
        assert!(!args.is_moderator(&["student".into()]));
        assert!(!args.is_moderator(&[]));
        assert!(ModerationArgs::default().is_moderator(&["admin".into()]));
    }
}
