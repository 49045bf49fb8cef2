//! What `kn` prints of user text is made safe for a terminal: control characters (escape
//! sequences that could move the cursor, recolour or retitle the terminal, or hide output)
//! are written escaped (`\u{1b}`), and long quoted input is shortened, so that a bad 200 KB
//! TOML line or prompt yields a readable message rather than the input itself.

pub use kn_run::text::shorten;
#[cfg(test)]
use kn_run::text::MAX_QUOTED_CHARS;

/// `text` with every control character escaped (newlines and tabs too): for one field of a
/// table or a progress line.
pub fn printable(text: &str) -> String {
    escape(text, false)
}

/// A table or report for the terminal: control characters escaped except newlines.
pub fn printable_lines(text: &str) -> String {
    escape(text, true)
}

/// A message for the terminal: control characters escaped except newlines, and each line cut
/// to [`kn_run::text::MAX_QUOTED_CHARS`] characters with a note of how much was left out.
pub fn printable_message(text: &str) -> String {
    escape(text, true)
        .split('\n')
        .map(shorten)
        .collect::<Vec<_>>()
        .join("\n")
}

fn escape(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && !(keep_newlines && c == '\n') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_are_written_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(printable_message("x\u{9b}y\nz"), "x\\u{9b}y\nz");
        assert_eq!(printable("Paris"), "Paris");
        assert_eq!(printable_lines("a\u{7}\nb"), "a\\u{7}\nb");
    }

    #[test]
    fn long_input_is_shortened() {
        let long = "x".repeat(200_000);
        let message = printable_message(&format!("bad line: {long}"));
        assert!(message.len() < 300, "{}", message.len());
        assert!(message.ends_with("(199810 more characters)"), "{message}");
    }

    proptest! {
        #[test]
        fn nothing_printed_holds_a_control_character(text in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}a ]{0,50}") {
            prop_assert!(!printable(&text).chars().any(char::is_control));
            prop_assert!(!printable_message(&text).chars().any(|c| c.is_control() && c != '\n'));
            prop_assert!(printable_message(&text).lines().all(|l| l.chars().count() <= MAX_QUOTED_CHARS + 40));
        }
    }
}
