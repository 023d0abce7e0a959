//! A line-preserving INI document: gdcloud's configuration files are edited by people too, so a write
//! changes the one line it must and keeps every other line, comment, blank and section where it was.
//!
//! The dialect is Python configparser's as gcloud writes it: `[section]` headers, `key = value` or
//! `key: value`, `#`/`;` comment lines. Keys are case-sensitive here (gcloud writes them lower case).

/// One parsed file. Lines are kept verbatim; only their roles are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Section {
        raw: String,
        name: String,
    },
    Entry {
        raw: String,
        key: String,
        value: String,
    },
    Other(String),
}

impl Document {
    pub fn parse(text: &str) -> Document {
        let lines = text
            .lines()
            .map(|raw| {
                let trimmed = raw.trim();
                if trimmed.starts_with('[') && trimmed.ends_with(']') {
                    return Line::Section {
                        raw: raw.to_string(),
                        name: trimmed[1..trimmed.len() - 1].trim().to_string(),
                    };
                }
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                    return Line::Other(raw.to_string());
                }
                // Continuation lines (indented) belong to the previous value in configparser; gcloud
                // never writes them, so they are kept as opaque text.
                if raw.starts_with(char::is_whitespace) {
                    return Line::Other(raw.to_string());
                }
                match raw.find(['=', ':']) {
                    Some(i) => Line::Entry {
                        raw: raw.to_string(),
                        key: raw[..i].trim().to_string(),
                        value: raw[i + 1..].trim().to_string(),
                    },
                    None => Line::Other(raw.to_string()),
                }
            })
            .collect();
        Document { lines }
    }

    /// The value of `key` in `section`; the last occurrence wins, as in configparser's lenient mode.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let mut current: Option<&str> = None;
        let mut found = None;
        for line in &self.lines {
            match line {
                Line::Section { name, .. } => current = Some(name),
                Line::Entry { key: k, value, .. } if current == Some(section) && k == key => {
                    found = Some(value.as_str())
                }
                _ => {}
            }
        }
        found
    }

    /// Every `(section, key, value)` in file order.
    pub fn entries(&self) -> Vec<(&str, &str, &str)> {
        let mut current = None;
        let mut out = Vec::new();
        for line in &self.lines {
            match line {
                Line::Section { name, .. } => current = Some(name.as_str()),
                Line::Entry { key, value, .. } => {
                    if let Some(section) = current {
                        out.push((section, key.as_str(), value.as_str()));
                    }
                }
                Line::Other(_) => {}
            }
        }
        out
    }

    /// Sets `key` in `section`: the existing line is rewritten in place, else a line is added after the
    /// section's last entry, else the section is appended. The caller guarantees `value` has no newline.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let new_line = format!("{key} = {value}");
        let mut current: Option<String> = None;
        let mut last_in_section: Option<usize> = None;
        let mut existing: Option<usize> = None;
        for (i, line) in self.lines.iter().enumerate() {
            match line {
                Line::Section { name, .. } => {
                    current = Some(name.clone());
                    if name == section {
                        last_in_section = Some(i);
                    }
                }
                Line::Entry { key: k, .. } if current.as_deref() == Some(section) => {
                    last_in_section = Some(i);
                    if k == key {
                        existing = Some(i);
                    }
                }
                _ => {}
            }
        }
        let entry = Line::Entry {
            raw: new_line,
            key: key.to_string(),
            value: value.to_string(),
        };
        match (existing, last_in_section) {
            (Some(i), _) => self.lines[i] = entry,
            (None, Some(i)) => self.lines.insert(i + 1, entry),
            (None, None) => {
                if matches!(self.lines.last(), Some(l) if !matches!(l, Line::Other(s) if s.trim().is_empty()))
                {
                    self.lines.push(Line::Other(String::new()));
                }
                self.lines.push(Line::Section {
                    raw: format!("[{section}]"),
                    name: section.to_string(),
                });
                self.lines.push(entry);
            }
        }
    }

    /// Removes every line setting `key` in `section`; returns whether anything was removed.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        let mut current: Option<String> = None;
        let before = self.lines.len();
        self.lines.retain(|line| match line {
            Line::Section { name, .. } => {
                current = Some(name.clone());
                true
            }
            Line::Entry { key: k, .. } => !(current.as_deref() == Some(section) && k == key),
            Line::Other(_) => true,
        });
        before != self.lines.len()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let raw = match line {
                Line::Section { raw, .. } | Line::Entry { raw, .. } | Line::Other(raw) => raw,
            };
            out.push_str(raw);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# my settings\n[core]\naccount = me@example.com\n\n; storage keys\n[storage]\ns3_endpoint: https://old\nother = 1\n";

    #[test]
    fn get_reads_both_separators() {
        let d = Document::parse(SAMPLE);
        assert_eq!(d.get("core", "account"), Some("me@example.com"));
        assert_eq!(d.get("storage", "s3_endpoint"), Some("https://old"));
        assert_eq!(d.get("storage", "missing"), None);
        assert_eq!(d.get("nosuch", "account"), None);
    }

    #[test]
    fn set_existing_changes_only_that_line() {
        let mut d = Document::parse(SAMPLE);
        d.set("storage", "s3_endpoint", "https://new");
        assert_eq!(
            d.render(),
            SAMPLE.replace("s3_endpoint: https://old", "s3_endpoint = https://new")
        );
    }

    #[test]
    fn set_new_key_goes_into_its_section() {
        let mut d = Document::parse(SAMPLE);
        d.set("core", "project", "p1");
        assert!(d
            .render()
            .contains("[core]\naccount = me@example.com\nproject = p1\n\n; storage keys"));
    }

    #[test]
    fn set_new_section_is_appended() {
        let mut d = Document::parse(SAMPLE);
        d.set("auth", "credential_store", "file");
        assert!(d
            .render()
            .ends_with("other = 1\n\n[auth]\ncredential_store = file\n"));
        assert_eq!(d.get("auth", "credential_store"), Some("file"));
    }

    #[test]
    fn remove_keeps_the_rest() {
        let mut d = Document::parse(SAMPLE);
        assert!(d.remove("storage", "other"));
        assert!(!d.remove("storage", "other"));
        assert_eq!(d.render(), SAMPLE.replace("other = 1\n", ""));
    }

    #[test]
    fn round_trip_is_exact() {
        let d = Document::parse(SAMPLE);
        assert_eq!(d.render(), SAMPLE);
    }
}
