//! The `gdcloud config` commands: property verbs and named configurations, and how their results
//! are rendered (gcloud's text, or JSON).

pub mod configurations;
pub mod properties;

use gdcloud::ops::config::{Sections, KNOWN};
use gdcloud::plugin::Escaped;

/// Every property with its description, for `--help`.
pub fn properties_help() -> String {
    let width = KNOWN.iter().map(|k| k.name.len()).max().unwrap_or(0);
    let mut help = String::from("Properties:\n");
    for k in KNOWN {
        help.push_str(&format!("  {:width$}  {}\n", k.name, k.description));
    }
    help
}

/// Sections as gcloud's `config list` prints them: `[section]`, then `key = value` (or
/// `key (unset)`).
pub fn render_sections(sections: &Sections) -> String {
    let mut text = String::new();
    for (section, keys) in sections {
        text.push_str(&format!("[{}]\n", Escaped(section)));
        for (key, value) in keys {
            let key = Escaped(key);
            match value {
                Some(v) => text.push_str(&format!("{key} = {}\n", Escaped(v))),
                None => text.push_str(&format!("{key} (unset)\n")),
            }
        }
    }
    text
}
