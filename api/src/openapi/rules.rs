//! The input rules of [`chat_nats::limits`] and of the routes, spelled as JSON Schema.
//!
//! Each type here exists only for its schema: a request field says
//! `#[schemars(with = "rules::Text")]` and the document gets a `Text` component whose
//! pattern and lengths are built from the same constants the checks use. The patterns
//! are ECMA-262 regular expressions (what JSON Schema and OpenAPI specify) with `\uXXXX`
//! escapes only, so Python's `re`, Rust's `regex` and browsers read them alike; none
//! needs a look-ahead. A rule they cannot state is listed in docs/api.md.

use std::borrow::Cow;

use chat_nats::{
    limits::{MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS},
    model::Role,
    moderation::MAX_NOTE_CHARS,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use strum::VariantArray;

use crate::routes::{
    admin::PLATFORM_ROLES,
    users::{MAX_PRESENCE_IDS, MAX_QUERY_CHARS, MIN_QUERY_CHARS},
};

/// The longest id ([`chat_nats::subjects::is_valid_id`]).
pub const MAX_ID_CHARS: usize = 64;

/// `char::is_control`: the C0 and C1 controls and DEL.
const CONTROLS: &str = r"\u0000-\u001F\u007F-\u009F";
/// The controls message text refuses: all but tab, newline and carriage return.
const TEXT_CONTROLS: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// `char::is_whitespace`, which `str::trim` removes.
const WHITESPACE: &str = r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// What `limits` counts as blank beside whitespace: zero-width and empty-looking.
const INVISIBLE: &str = r"\u200B-\u200D\u2060\uFEFF\u2800\u180E\u3164";
/// Bidirectional controls, refused in titles and names.
const BIDI: &str = r"\u202A-\u202E\u2066-\u2069";
/// Line and paragraph separators, refused in one-line values.
const SEPARATORS: &str = r"\u2028\u2029";

/// Any number of allowed characters with at least one visible among them: how "not
/// blank" reads without a look-ahead.
fn with_one_visible(refused: &str) -> String {
    format!("^[^{refused}]*[^{refused}{WHITESPACE}{INVISIBLE}][^{refused}]*$")
}

/// A value that is trimmed before it is checked: surrounding whitespace, then between
/// `min` and `max` allowed characters that start and end with a non-space.
fn trimmed(refused: &str, min: usize, max: usize) -> String {
    let edge = format!("[^{refused}{WHITESPACE}]");
    let core = match min {
        0 | 1 => format!("{edge}(?:[^{refused}]{{0,{}}}{edge})?", max.saturating_sub(2)),
        _ => format!("{edge}[^{refused}]{{{},{}}}{edge}", min - 2, max.saturating_sub(2)),
    };
    format!("^[{WHITESPACE}]*{core}[{WHITESPACE}]*$")
}

/// The id alphabet of `is_valid_id`.
fn id_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$")
}

/// The comma-separated ids of a presence request: empty items and spaces around an id
/// are ignored, 1 to [`MAX_PRESENCE_IDS`] ids remain.
fn id_list_pattern() -> String {
    let gap = format!("[{WHITESPACE}]*");
    let id = format!("{gap}[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}{gap}");
    format!("^(?:{gap},)*{id}(?:,(?:{gap},)*{id}){{0,{}}}(?:,{gap})*$", MAX_PRESENCE_IDS - 1)
}

/// Implements [`JsonSchema`] for a schema-only type: a named component built by `$schema`.
macro_rules! rule {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub enum $name {}

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

rule!(
    /// A chat, message, user or client id: also a NATS subject token and a document id.
    Id => json_schema!({
        "type": "string",
        "description": format!("1 to {MAX_ID_CHARS} characters of A-Z, a-z, 0-9, _ and -"),
        "pattern": id_pattern(),
    })
);

rule!(
    /// Message text ([`chat_nats::limits::check_text`]).
    Text => json_schema!({
        "type": "string",
        "description": format!(
            "At most {MAX_TEXT_CHARS} characters (413 too_large beyond), at least one of them visible \
             (not whitespace or zero-width); no control characters but tab, newline and carriage return."
        ),
        "maxLength": MAX_TEXT_CHARS,
        "pattern": with_one_visible(TEXT_CONTROLS),
    })
);

rule!(
    /// A report's note ([`chat_nats::moderation::check_note`]).
    Note => json_schema!({
        "type": "string",
        "description": format!(
            "At most {MAX_NOTE_CHARS} characters; no control characters but tab, newline and carriage return."
        ),
        "maxLength": MAX_NOTE_CHARS,
        "pattern": format!("^[^{TEXT_CONTROLS}]*$"),
    })
);

rule!(
    /// A group title ([`chat_nats::limits::check_title`]).
    Title => json_schema!({
        "type": "string",
        "description": format!(
            "One line of at most {MAX_TITLE_CHARS} characters, at least one of them visible; no control, \
             line separator or bidirectional control characters."
        ),
        "maxLength": MAX_TITLE_CHARS,
        "pattern": with_one_visible(&format!("{CONTROLS}{SEPARATORS}{BIDI}")),
    })
);

rule!(
    /// A display name ([`chat_nats::limits::check_display_name`]), trimmed before it is
    /// checked.
    DisplayName => json_schema!({
        "type": "string",
        "description": format!(
            "Surrounding whitespace is removed; then 1 to {MAX_NAME_CHARS} characters with no control, \
             line separator or bidirectional control characters, not only zero-width ones."
        ),
        "pattern": trimmed(&format!("{CONTROLS}{SEPARATORS}{BIDI}"), 1, MAX_NAME_CHARS),
    })
);

rule!(
    /// A directory query (`GET /api/users?q=`), trimmed before it is checked.
    SearchText => json_schema!({
        "type": "string",
        "description": format!(
            "A name prefix or an exact id: surrounding whitespace is removed, then \
             {MIN_QUERY_CHARS} to {MAX_QUERY_CHARS} characters with no control characters."
        ),
        "pattern": trimmed(CONTROLS, MIN_QUERY_CHARS, MAX_QUERY_CHARS),
    })
);

rule!(
    /// The ids of a presence request.
    IdList => json_schema!({
        "type": "string",
        "description": format!(
            "Comma-separated ids, 1 to {MAX_PRESENCE_IDS} of them; spaces around an id and empty items are ignored."
        ),
        "pattern": id_list_pattern(),
    })
);

rule!(
    /// A page cursor: opaque, taken from a previous page's `next_cursor`.
    Cursor => json_schema!({
        "type": "string",
        "description": "A previous page's next_cursor, unchanged (base64url); anything else is 400 invalid.",
        "minLength": 1,
        "pattern": "^[A-Za-z0-9_-]+$",
    })
);

rule!(
    /// A chat sequence number in a body: any JSON integer, `934.0` included, since JSON
    /// Schema counts a number with no fraction as an integer.
    Seq => json_schema!({
        "type": "integer",
        "minimum": 0,
        "maximum": u64::MAX,
    })
);

rule!(
    /// A role one member may grant another: every role but `owner`, which nobody grants.
    GrantedRole => json_schema!({
        "type": "string",
        "description": "member (the default) or admin; only the owner grants admin",
        "enum": Role::VARIANTS.iter().filter(|role| **role != Role::Owner).map(|role| role.as_str()).collect::<Vec<_>>(),
        "default": Role::Member.as_str(),
    })
);

rule!(
    /// A platform role in the directory.
    PlatformRole => json_schema!({
        "type": "string",
        "enum": PLATFORM_ROLES,
    })
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The patterns must mean what the checks do; the Rust `regex` crate reads the same
    /// syntax as ECMA-262 for everything used here.
    fn matches(pattern: &str, value: &str) -> bool {
        jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": pattern }))
            .map(|validator| validator.is_valid(&serde_json::json!(value)))
            .unwrap_or_else(|error| panic!("{pattern}: {error}"))
    }

    #[test]
    fn text_patterns_agree_with_the_checks() {
        let text = with_one_visible(TEXT_CONTROLS);
        for value in ["hello\nworld\t!", "Привет", " a ", "שלום, мир", "\u{200B}x"] {
            assert!(matches(&text, value), "{value:?}");
            assert!(chat_nats::limits::check_text(value).is_ok(), "{value:?}");
        }
        for value in ["", "   ", "a\u{0}b", "a\u{1b}[31m", "\u{2800}", "\u{200B}\u{FEFF}", "x\u{85}"] {
            assert!(!matches(&text, value), "{value:?}");
            assert!(chat_nats::limits::check_text(value).is_err(), "{value:?}");
        }
        let title = with_one_visible(&format!("{CONTROLS}{SEPARATORS}{BIDI}"));
        for value in ["two\nlines", "a\u{2028}b", "admin\u{202E}txt.exe", "tab\there"] {
            assert!(!matches(&title, value), "{value:?}");
            assert!(chat_nats::limits::check_title(value).is_err(), "{value:?}");
        }
        assert!(matches(&title, "Физика 9Б"));
    }

    #[test]
    fn trimmed_patterns_count_what_is_left() {
        let name = trimmed(&format!("{CONTROLS}{SEPARATORS}{BIDI}"), 1, MAX_NAME_CHARS);
        let longest = "я".repeat(MAX_NAME_CHARS);
        for value in ["A", "  Мария Ивановна ", "\tAnn\n", longest.as_str(), &format!("  {longest}  ")] {
            assert!(matches(&name, value), "{value:?}");
            assert!(chat_nats::limits::check_display_name(value).is_ok(), "{value:?}");
        }
        let too_long = "я".repeat(MAX_NAME_CHARS + 1);
        for value in ["", "   ", "Ann\nAdmin", "Ann\tB", "a\u{2028}b", "x\u{2066}y", too_long.as_str()] {
            assert!(!matches(&name, value), "{value:?}");
            assert!(chat_nats::limits::check_display_name(value).is_err(), "{value:?}");
        }
        let q = trimmed(CONTROLS, MIN_QUERY_CHARS, MAX_QUERY_CHARS);
        assert!(matches(&q, "an") && matches(&q, " an ") && matches(&q, "a b") && matches(&q, &"x".repeat(100)));
        for value in ["a", " a ", "a\u{99}b", &"x".repeat(101), "\u{7f}ab"] {
            assert!(!matches(&q, value), "{value:?}");
        }
    }

    #[test]
    fn id_patterns_agree_with_is_valid_id() {
        let id = id_pattern();
        for value in ["a", "k-1_A", &"x".repeat(64)] {
            assert!(matches(&id, value) && chat_nats::subjects::is_valid_id(value), "{value:?}");
        }
        for value in ["", "k.1", "a b", &"x".repeat(65), "é"] {
            assert!(!matches(&id, value) && !chat_nats::subjects::is_valid_id(value), "{value:?}");
        }
        let list = id_list_pattern();
        let most = vec!["u"; MAX_PRESENCE_IDS].join(",");
        for value in ["a", "a,b", " a , b ", ",a,,b,", most.as_str()] {
            assert!(matches(&list, value), "{value:?}");
        }
        let too_many = vec!["u"; MAX_PRESENCE_IDS + 1].join(",");
        for value in ["", ",", " , ", "a b", "a,b.c", too_many.as_str()] {
            assert!(!matches(&list, value), "{value:?}");
        }
    }
}
