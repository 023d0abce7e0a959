//! `--format`, gcloud's way (`gcloud topic formats`): `text` (the command's own output, the
//! default), `json`, `yaml`, `none`, and the projections `table(…)`, `value(…)` and `csv(…)` with
//! their attributes, e.g. `value(tag)`, `csv[no-heading,separator=';'](name,is_active)`,
//! `table[no-heading](name, tags.list():label=TAGS)`.
//!
//! A command's result is a serde value. `json` and `yaml` print it whole. For `table`, `value`
//! and `csv` the rows are its resources: the elements of a list, or the list a command names in
//! an object that wraps one (`list-versions` names `versions`), or the object itself; each key of
//! the projection gives one column. The expression is parsed once, at argument parsing, so a
//! mistake is a usage error before any work is done.

mod label;
mod lexer;
mod printer;
pub mod projection;
mod transform;

use std::fmt;

use serde_json::Value;

pub use projection::{Column, Step};

/// What `--format` accepts, for errors and help.
pub const ACCEPTED: &str =
    "json, yaml, text, none, table(KEY,…), value(KEY,…) or csv(KEY,…), e.g. 'value(name)' or 'csv[no-heading](name,tags.list())'";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The command's own output for people.
    #[default]
    Text,
    Json,
    Yaml,
    /// Nothing on stdout (`--format none`): for commands run for their effect.
    None,
    Table,
    Value,
    Csv,
}

/// A parsed `--format` expression.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Format {
    pub kind: Kind,
    options: printer::Options,
    columns: Vec<Column>,
}

/// Why a `--format` expression is refused; one line naming what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}; --format takes {ACCEPTED}")]
pub struct Error {
    what: String,
}

impl Error {
    fn new(what: impl Into<String>) -> Self {
        Error { what: what.into() }
    }
}

impl From<projection::Error> for Error {
    fn from(e: projection::Error) -> Self {
        Error::new(e.to_string())
    }
}

/// The printer attributes each format knows (gcloud's, less wrapping and column widths).
fn known_attributes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Table => &["no-heading", "heading", "pad", "box", "no-box", "title"],
        Kind::Csv => &[
            "no-heading",
            "heading",
            "separator",
            "delimiter",
            "terminator",
            "no-quote",
            "quote",
        ],
        Kind::Value => &["separator", "delimiter", "terminator", "quote", "no-quote"],
        Kind::Text | Kind::Json | Kind::Yaml | Kind::None => &[],
    }
}

impl Format {
    /// The text format (each command's own output).
    pub fn text() -> Self {
        Format::default()
    }

    pub fn parse(expression: &str) -> Result<Format, Error> {
        let e = projection::parse(expression)?;
        let kind = match e.name.as_str() {
            "text" => Kind::Text,
            "json" => Kind::Json,
            "yaml" => Kind::Yaml,
            "none" => Kind::None,
            "table" => Kind::Table,
            "value" => Kind::Value,
            "csv" => Kind::Csv,
            other => return Err(Error::new(format!("unknown format {other:?}"))),
        };
        let projected = matches!(kind, Kind::Table | Kind::Value | Kind::Csv);
        let columns = match (e.columns, projected) {
            (Some(c), true) if !c.is_empty() => c,
            (_, true) => {
                return Err(Error::new(format!(
                    "{} needs the keys to print, as in {}(name)",
                    e.name, e.name
                )))
            }
            (Some(_), false) => {
                return Err(Error::new(format!("{} takes no keys", e.name)));
            }
            (None, false) => Vec::new(),
        };
        let known = known_attributes(kind);
        for (name, _) in &e.attributes {
            if !known.contains(&name.as_str()) {
                let known = match known {
                    [] => "none".to_string(),
                    k => k.join(", "),
                };
                return Err(Error::new(format!(
                    "{} has no attribute {name:?} (it has: {known})",
                    e.name
                )));
            }
        }
        let options = printer::Options::new(kind, &e.attributes).map_err(Error::new)?;
        Ok(Format {
            kind,
            options,
            columns,
        })
    }

    /// What to print for `result` (`None` for text: the command draws that itself). `list` names
    /// the field of an object result that holds its resources.
    pub fn render(&self, result: &Value, list: Option<&str>) -> Option<String> {
        Some(match self.kind {
            Kind::Text => return None,
            Kind::None => String::new(),
            Kind::Json => {
                let mut s = serde_json::to_string_pretty(result).unwrap_or_default();
                s.push('\n');
                s
            }
            Kind::Yaml => printer::yaml(result),
            Kind::Table | Kind::Value | Kind::Csv => {
                let rows = resources(result, list);
                printer::project(self.kind, &self.options, &self.columns, &rows)
            }
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Text => "text",
            Kind::Json => "json",
            Kind::Yaml => "yaml",
            Kind::None => "none",
            Kind::Table => "table",
            Kind::Value => "value",
            Kind::Csv => "csv",
        })
    }
}

/// The rows of a result: a list's elements, the named list of an object, or the result itself.
fn resources<'a>(result: &'a Value, list: Option<&str>) -> Vec<&'a Value> {
    let node = match (list, result) {
        (Some(key), Value::Object(map)) => map.get(key).unwrap_or(&Value::Null),
        _ => result,
    };
    match node {
        Value::Array(items) => items.iter().collect(),
        Value::Null if list.is_some() => Vec::new(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(format: &str, value: &Value, list: Option<&str>) -> String {
        Format::parse(format)
            .unwrap_or_else(|e| panic!("{format}: {e}"))
            .render(value, list)
            .unwrap()
    }

    #[test]
    fn the_kinds_and_their_defaults() {
        assert_eq!(Format::parse("text").unwrap(), Format::text());
        assert_eq!(Format::parse("json").unwrap().kind, Kind::Json);
        assert_eq!(Format::parse("yaml").unwrap().kind, Kind::Yaml);
        assert_eq!(Format::text().render(&json!({}), None), None);
        assert_eq!(render("none", &json!({"a": 1}), None), "");
    }

    #[test]
    fn refusals_name_what_is_accepted() {
        for (bad, says) in [
            ("tabel(name)", "unknown format \"tabel\""),
            ("table", "table needs the keys to print"),
            ("value()", "value needs the keys"),
            ("json(name)", "json takes no keys"),
            ("table[wrap](name)", "table has no attribute \"wrap\""),
            (
                "yaml[null=x]",
                "yaml has no attribute \"null\" (it has: none)",
            ),
            ("csv[pad=2](a)", "csv has no attribute \"pad\""),
            ("table[pad=x](a)", "pad takes a number"),
            ("value(a", "expected ')'"),
        ] {
            let e = Format::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("--format takes json, yaml, text"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn json_prints_the_whole_result() {
        let v = json!({"versions": [{"tag": "1"}], "repository": "p/a"});
        assert_eq!(
            render("json", &v, Some("versions")),
            "{\n  \"versions\": [\n    {\n      \"tag\": \"1\"\n    }\n  ],\n  \"repository\": \"p/a\"\n}\n"
        );
    }

    #[test]
    fn rows_are_the_named_list_the_list_or_the_object() {
        let wrapped = json!({"versions": [{"tag": "2"}, {"tag": "1"}], "repository": "p/a"});
        assert_eq!(render("value(tag)", &wrapped, Some("versions")), "2\n1\n");
        let list = json!([{"tag": "a"}, {"tag": "b"}]);
        assert_eq!(render("value(tag)", &list, None), "a\nb\n");
        let object = json!({"core": {"account": "me"}});
        assert_eq!(render("value(core.account)", &object, None), "me\n");
        let empty = json!({"versions": []});
        assert_eq!(render("table(tag)", &empty, Some("versions")), "");
        assert_eq!(render("csv(tag)", &empty, Some("versions")), "");
    }
}
