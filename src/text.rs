//! Text from outside (registry answers, tar names, S3 keys, ref names, secrets' labels, a
//! credential request's server URL) made safe to print on a terminal or write into a log line.
//!
//! Such text may hold ESC sequences that move the cursor, rewrite the title or hide what follows,
//! and newlines that forge extra lines in a log or in a `tree | grep | cut` pipeline. Every place
//! that prints outside text passes it through [`escape`] (or [`Escaped`] in a `format!`), which
//! keeps printable text as it is and writes each control character as a visible escape, the way
//! Go's `%q` and Rust's `escape_debug` do, so nothing outside text says can act on the terminal.
//!
//! Escaped: C0 controls (`\n`, `\t`, ESC, …), DEL, C1 controls (U+0080–U+009F, which some
//! terminals obey as CSI), the Unicode bidi overrides and isolates (which reorder what a reader
//! sees, CVE-2021-42574), line and paragraph separators, and the backslash itself, so the output
//! maps back to exactly one input.

use std::borrow::Cow;
use std::fmt;

/// True for a character that must not reach a terminal or a log as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c,
            '\u{200e}' | '\u{200f}'            // left-to-right / right-to-left marks
            | '\u{2028}' | '\u{2029}'          // line and paragraph separators
            | '\u{202a}'..='\u{202e}'          // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}'          // bidi isolates
            | '\u{feff}' // byte order mark / zero-width no-break space
        )
}

/// `s` with every control character (and backslash) written as a visible escape: `\n`, `\t`,
/// `\r`, `\\`, `\x1b`, `\u{202e}`. Borrowed when nothing needed escaping (the usual case).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`escape`] for bytes that may not be UTF-8 (tar names, file names): invalid bytes become
/// `\xNN`, so two different names never print alike.
pub fn escape_bytes(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => escape(s),
        Err(_) => {
            let mut out = String::with_capacity(b.len() + 8);
            for chunk in b.utf8_chunks() {
                for c in chunk.valid().chars() {
                    push_escaped(&mut out, c);
                }
                for byte in chunk.invalid() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            Cow::Owned(out)
        }
    }
}

fn push_escaped(out: &mut String, c: char) {
    if !needs_escape(c) {
        out.push(c);
        return;
    }
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// Displays a string through [`escape`]: `format!("tag {}", Escaped(&tag))`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", escape(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "proj/app:1.0",
            "sha256-abc.sig",
            "日本語 ok",
            "a b\u{a0}c",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(x) if x == s), "{s:?}");
        }
    }

    #[test]
    fn controls_become_visible() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("x\r\ty", "x\\r\\ty"),
            ("\u{1b}[2J\u{1b}]0;owned\u{7}", "\\x1b[2J\\x1b]0;owned\\x07"),
            ("del\u{7f}", "del\\x7f"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("back\\slash", "back\\\\slash"),
            ("rtl\u{202e}gpj.exe", "rtl\\u{202e}gpj.exe"),
            ("iso\u{2066}x\u{2069}", "iso\\u{2066}x\\u{2069}"),
            ("ls\u{2028}", "ls\\u{2028}"),
            ("\0", "\\x00"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
            assert_eq!(Escaped(input).to_string(), want);
        }
    }

    #[test]
    fn escaping_is_injective_on_tricky_pairs() {
        // A literal backslash-n and a newline must not print alike.
        assert_ne!(escape("a\\nb"), escape("a\nb"));
    }

    #[test]
    fn bytes_keep_invalid_utf8_visible() {
        assert_eq!(escape_bytes(b"ok/name"), "ok/name");
        assert_eq!(escape_bytes(b"bad\xff\x1bname"), "bad\\xff\\x1bname");
        assert_eq!(escape_bytes(b"e\xc3\xa9\n"), "e\u{e9}\\n");
    }

    #[test]
    fn no_output_holds_a_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = escape(&all);
        assert!(!out
            .chars()
            .any(|c| c.is_control() || needs_escape(c) && c != '\\'));
    }
}
