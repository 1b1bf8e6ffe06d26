//! Input rules every entry point applies the same way (edge, api, persister).

use chrono::{DateTime, Utc};

use crate::{commands::MAX_SLOW_MODE_SECONDS, model::Posting};

/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest `client_msg_id`, in bytes of its ASCII-only alphabet.
pub const MAX_CLIENT_MSG_ID: usize = 64;
/// Longest group title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest user display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most members named in one create or add.
pub const MAX_MEMBERS_PER_COMMAND: usize = 1000;

/// Checks message text: not blank, not too long, no control characters other than
/// newline, carriage return and tab.
pub fn check_text(text: &str) -> Result<(), String> {
    if is_blank(text) {
        return Err("text must not be empty".into());
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("text is longer than {MAX_TEXT_CHARS} characters"));
    }
    check_no_controls(text, "text")
}

/// Checks a group title.
pub fn check_title(title: &str) -> Result<(), String> {
    if is_blank(title) {
        return Err("title must not be empty".into());
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("title is longer than {MAX_TITLE_CHARS} characters"));
    }
    if title.contains(['\n', '\r', '\t', '\u{2028}', '\u{2029}']) {
        return Err("title must be one line".into());
    }
    if title.chars().any(is_bidi_control) {
        return Err("title contains bidirectional control characters".into());
    }
    check_no_controls(title, "title")
}

/// Checks a user's display name, from the platform's upsert or from a token's `name`,
/// and returns it without surrounding whitespace: something visible, at most
/// [`MAX_NAME_CHARS`], one line, no control or bidirectional control characters (a name
/// is shown beside every message, where reordered text could impersonate someone).
pub fn check_display_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if is_blank(name) {
        return Err("name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err("name contains control characters".into());
    }
    if name.chars().any(is_bidi_control) {
        return Err("name contains bidirectional control characters".into());
    }
    Ok(name)
}

/// Checks an id the client chose (`client_msg_id`): the same alphabet as every id.
pub fn check_client_id(value: &str, field: &str) -> Result<(), String> {
    if crate::subjects::is_valid_id(value) {
        Ok(())
    } else {
        Err(format!("{field} must be 1-{MAX_CLIENT_MSG_ID} characters of [A-Za-z0-9_-]"))
    }
}

/// Nothing visible: only whitespace and zero-width or blank-looking characters.
fn is_blank(value: &str) -> bool {
    value.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{2800}' | '\u{180E}' | '\u{3164}')
    })
}

/// Characters that reorder text around them (used to disguise names and titles).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_no_controls(value: &str, field: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        Err(format!("{field} contains control characters"))
    } else {
        Ok(())
    }
}

/// Checks a `chat.moderate`: it changes something, and slow mode stays within
/// [`MAX_SLOW_MODE_SECONDS`].
pub fn check_moderation(
    posting: Option<Posting>,
    slow_mode_seconds: Option<u32>,
    frozen: Option<bool>,
) -> Result<(), String> {
    if posting.is_none() && slow_mode_seconds.is_none() && frozen.is_none() {
        return Err("nothing to change: give posting, slow_mode_seconds or frozen".into());
    }
    if slow_mode_seconds.is_some_and(|seconds| seconds > MAX_SLOW_MODE_SECONDS) {
        return Err(format!("slow_mode_seconds is at most {MAX_SLOW_MODE_SECONDS}"));
    }
    Ok(())
}

/// Checks when a mute ends: after `now` (`None` unmutes).
pub fn check_mute_until(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), &'static str> {
    match until {
        Some(until) if until <= now => Err("until is in the past: send null (or leave it out) to unmute"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(check_text("hello\nworld\t!").is_ok());
        assert!(check_text("Привет, мир").is_ok());
        assert!(check_text("   ").is_err());
        assert!(check_text("a\u{0}b").is_err());
        assert!(check_text("a\u{1b}[31m").is_err());
        assert!(check_text(&"я".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(check_text(&"я".repeat(MAX_TEXT_CHARS + 1)).is_err());
    }

    #[test]
    fn title_and_id_rules() {
        assert!(check_title("Физика 9Б").is_ok());
        assert!(check_title("two\nlines").is_err());
        assert!(check_title("a\u{2028}b").is_err());
        assert!(check_title("admin\u{202E}txt.exe").is_err());
        assert!(check_title("\u{200B}\u{FEFF}").is_err());
        assert!(check_text("\u{2800}").is_err());
        assert!(check_text("שלום, мир").is_ok());
        assert!(check_client_id("k-1_a", "client_msg_id").is_ok());
        assert!(check_client_id("k.1", "client_msg_id").is_err());
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(check_display_name("  Мария Ивановна "), Ok("Мария Ивановна"));
        assert_eq!(check_display_name("שרה כהן"), Ok("שרה כהן"));
        assert!(check_display_name(&"я".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_display_name(&"я".repeat(MAX_NAME_CHARS + 1)).is_err());
        for bad in [
            "",
            "   ",
            "\u{200B}",
            "Ann\nAdmin",
            "Ann\tB",
            "a\u{1b}[31m",
            "a\u{2028}b",
            "Ann\u{202E}nimda",
            "x\u{2066}y",
        ] {
            assert!(check_display_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn moderation_changes_something_within_bounds_and_mutes_end_later() {
        assert!(check_moderation(None, None, None).is_err());
        assert!(check_moderation(None, Some(MAX_SLOW_MODE_SECONDS), None).is_ok());
        assert!(check_moderation(None, Some(MAX_SLOW_MODE_SECONDS + 1), None).is_err());
        assert!(check_moderation(Some(Posting::Admins), None, Some(false)).is_ok());
        let now = Utc::now();
        assert!(check_mute_until(None, now).is_ok());
        assert!(check_mute_until(Some(now), now).is_err());
        assert!(check_mute_until(Some(now + chrono::Duration::seconds(1)), now).is_ok());
    }
}
