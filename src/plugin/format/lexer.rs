//! The characters of a format expression: position, white space, words, and values that may be
//! quoted (`'…'`, `"…"`) with `\t`, `\n` and `\\` escapes. The grammar is in `projection`.

use super::projection::Error;

pub(super) struct Lexer {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
}

impl Lexer {
    pub(super) fn new(text: &str) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, c: char, context: &str) -> Result<(), Error> {
        self.skip_space();
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {c:?} {context}")))
        }
    }

    pub(super) fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    pub(super) fn error(&self, what: &str) -> Error {
        Error {
            what: what.to_string(),
            at: self.pos,
            end: self.peek().is_none(),
        }
    }

    pub(super) fn word(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A quoted string (`'…'` or `"…"`) or a bare run up to one of `stops` (trimmed); `\t`,
    /// `\n` and `\\` are turned into what they name, so `separator='\t'` works from any shell.
    pub(super) fn value(&mut self, stops: &str) -> Result<String, Error> {
        self.skip_space();
        let raw = match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let start = self.pos;
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => {
                            self.pos = start;
                            return Err(self.error(&format!("unterminated {q} quote")));
                        }
                        Some('\\') if self.chars.get(self.pos + 1).is_some() => {
                            s.push('\\');
                            s.push(self.chars[self.pos + 1]);
                            self.pos += 2;
                        }
                        Some(c) if c == q => {
                            self.pos += 1;
                            break s;
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            _ => self.word(|c| !stops.contains(c)).trim_end().to_string(),
        };
        Ok(unescape(&raw))
    }
}

/// `\t`, `\n`, `\r`, `\\` and an escaped quote as the characters they name; other backslashes
/// stay as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(c @ ('\\' | '\'' | '"')) => out.push(c),
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_names_tab_newline_and_backslash() {
        assert_eq!(unescape(r"a\tb\nc\\d\x"), "a\tb\nc\\d\\x");
    }
}
