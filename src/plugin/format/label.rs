//! Default column headings, as gcloud's projection parser makes them: the key's last name in
//! ANGRY_SNAKE_CASE, lengthened from the right until no earlier column has it.

use std::collections::HashSet;

use super::projection::Step;

/// gcloud's default heading: the last name of the key in ANGRY_SNAKE_CASE; when an earlier column
/// has it, names are added from the right (`NAME`, `LAST_NAME`) until it is new.
pub(super) fn default_label(path: &[Step], taken: &mut HashSet<String>) -> String {
    let mut label = String::new();
    for step in path.iter().rev() {
        let Step::Field(name) = step else { continue };
        let snake = angry_snake(name);
        label = if label.is_empty() {
            snake
        } else {
            format!("{snake}_{label}")
        };
        if taken.insert(label.clone()) {
            break;
        }
    }
    label
}

/// `lastModified` → `LAST_MODIFIED`, `networkIP` → `NETWORK_IP`, `HTTPServer` → `HTTP_SERVER`:
/// an underscore before an upper-case run that follows a lower-case letter or digit, and before
/// an upper-case letter (not the first) that starts a lower-case word.
fn angry_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let after_lower = prev.is_ascii_lowercase() || prev.is_ascii_digit();
            let starts_word = prev.is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if after_lower || starts_word {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angry_snake_splits_words_and_acronyms() {
        for (name, snake) in [
            ("name", "NAME"),
            ("lastModified", "LAST_MODIFIED"),
            ("networkIP", "NETWORK_IP"),
            ("HTTPServer", "HTTP_SERVER"),
            ("s3_endpoint", "S3_ENDPOINT"),
            ("v2Api", "V2_API"),
        ] {
            assert_eq!(angry_snake(name), snake, "{name}");
        }
    }
}
