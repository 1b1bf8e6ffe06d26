//! Fuzzes the input rules every entry point applies: `chat_nats::limits::check_text`,
//! `check_title` and `check_client_id`.
//!
//! Input: a head, a unit repeated up to a few thousand times and a tail, so strings
//! cross the 200- and 4000-character limits even though libFuzzer's inputs are short.
//! The checks must never panic and must agree with their documented rules:
//! * text is accepted exactly when it is not blank, has at most 4000 characters and no
//!   control characters other than `\n`, `\r` and `\t`;
//! * a title exactly when it is not blank, has at most 200 characters and no control
//!   characters at all (so it is one line);
//! * a client id exactly when it is 1-64 characters of `[A-Za-z0-9_-]`, so never with
//!   `.`, `*`, `>` or whitespace.
#![no_main]

use arbitrary::Arbitrary;
use chat_nats::limits::{MAX_TEXT_CHARS, MAX_TITLE_CHARS, check_client_id, check_text, check_title};
use libfuzzer_sys::fuzz_target;

/// Longest string built, in characters: well past the text limit.
const MAX_BUILT_CHARS: usize = 2 * MAX_TEXT_CHARS + 100;

#[derive(Debug, Arbitrary)]
struct Input {
    head: String,
    unit: String,
    repeat: u16,
    tail: String,
}

impl Input {
    fn build(&self) -> String {
        let mut text = self.head.clone();
        let unit_chars = self.unit.chars().count().max(1);
        let room = MAX_BUILT_CHARS.saturating_sub(text.chars().count()) / unit_chars;
        for _ in 0..usize::from(self.repeat).min(room) {
            text.push_str(&self.unit);
        }
        text.push_str(&self.tail);
        text
    }
}

fuzz_target!(|input: Input| {
    let text = input.build();
    let chars = text.chars().count();
    // Blank as documented: nothing but whitespace and zero-width or blank-looking
    // characters.
    let blank = text.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{2800}' | '\u{180E}' | '\u{3164}')
    });
    // A title is one line, displayed as it reads: no line or paragraph separator, no
    // bidirectional control.
    let title_breaker =
        text.chars().any(|c| matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'));
    let has_control = |allowed: &[char]| text.chars().any(|c| c.is_control() && !allowed.contains(&c));

    let text_ok = check_text(&text).is_ok();
    if text_ok {
        assert!(!blank, "accepted blank text");
        assert!(chars <= MAX_TEXT_CHARS, "accepted text of {chars} characters");
        assert!(!has_control(&['\n', '\r', '\t']), "accepted text with a control character: {text:?}");
    } else {
        assert!(
            blank || chars > MAX_TEXT_CHARS || has_control(&['\n', '\r', '\t']),
            "refused text that meets every rule: {text:?}"
        );
    }

    let title_ok = check_title(&text).is_ok();
    if title_ok {
        assert!(!blank, "accepted a blank title");
        assert!(chars <= MAX_TITLE_CHARS, "accepted a title of {chars} characters");
        assert!(!has_control(&[]), "accepted a title with a control character: {text:?}");
        assert!(!title_breaker, "accepted a title with a separator or bidi control: {text:?}");
    } else {
        assert!(
            blank || chars > MAX_TITLE_CHARS || has_control(&[]) || title_breaker,
            "refused a title that meets every rule: {text:?}"
        );
    }

    let id_ok = check_client_id(&text, "client_msg_id").is_ok();
    let id_rule = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    assert_eq!(id_ok, id_rule, "check_client_id disagrees with its rule on {text:?}");
    if id_ok {
        assert!(
            !text.chars().any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace()),
            "accepted an id that would break a subject: {text:?}"
        );
    }
});
