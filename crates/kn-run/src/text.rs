//! User text quoted in messages: long input is shortened, so that a bad 200 KB prompt or
//! option yields a readable error (the CLI and the Python package print the same messages).

/// The most characters of one line of a message, and of quoted input in it.
pub const MAX_QUOTED_CHARS: usize = 200;

/// `text` cut to [`MAX_QUOTED_CHARS`] characters, saying how many more there were.
pub fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_QUOTED_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{kept}... ({} more characters)", count - MAX_QUOTED_CHARS)
}
