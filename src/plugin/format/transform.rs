//! The transforms a projection key may end with (`gcloud topic projections`): `list()`,
//! `join(SEP)` and `len()`, with gcloud's arguments and defaults. Others are refused by name.

use serde_json::Value;

/// How `list()` shows a dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Pairs,
    Keys,
    Values,
}

/// The transforms a key may end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// `list(show=, undefined=, separator=',')`: a list or dict as one compact string.
    List {
        show: Show,
        undefined: String,
        separator: String,
    },
    /// `join(sep='/', undefined='')`: a list's elements (a string's characters) joined.
    Join { sep: String, undefined: String },
    /// `len()`: the length of a list, dict or string, 0 for anything else.
    Len,
}

impl Transform {
    /// The transform `name(args)`; arguments by position or by name, as gcloud takes them.
    pub fn from_call(name: &str, args: &[(Option<String>, String)]) -> Result<Transform, String> {
        let arg = |key: &str, position: usize, default: &str| -> String {
            args.iter()
                .enumerate()
                .find(|(i, (k, _))| k.as_deref() == Some(key) || (k.is_none() && *i == position))
                .map(|(_, (_, v))| v.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let known = ["show", "undefined", "separator", "sep"];
        if let Some((Some(k), _)) = args
            .iter()
            .find(|(k, _)| k.as_deref().is_some_and(|k| !known.contains(&k)))
        {
            return Err(format!("{name}() takes no argument {k:?}"));
        }
        Ok(match name {
            "list" => Transform::List {
                show: match arg("show", 0, "").as_str() {
                    "keys" => Show::Keys,
                    "values" => Show::Values,
                    _ => Show::Pairs,
                },
                undefined: arg("undefined", 1, ""),
                separator: arg("separator", 2, ","),
            },
            "join" => Transform::Join {
                sep: arg("sep", 0, "/"),
                undefined: arg("undefined", 1, ""),
            },
            "len" => Transform::Len,
            other => {
                return Err(format!(
                    "unknown transform {other}(); known: list(), join(SEP), len()"
                ))
            }
        })
    }

    /// The transform applied to a key's value (null when the key is missing).
    pub fn apply(&self, v: Value) -> Value {
        let or_undefined = |s: String, undefined: &str| {
            Value::String(if s.is_empty() {
                undefined.to_string()
            } else {
                s
            })
        };
        match self {
            Transform::List {
                show,
                undefined,
                separator,
            } => match v {
                Value::Object(map) => {
                    let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(b.0));
                    let parts: Vec<String> = pairs
                        .into_iter()
                        .map(|(k, v)| match show {
                            Show::Keys => k.clone(),
                            Show::Values => scalar(v),
                            Show::Pairs => format!("{k}={}", scalar(v)),
                        })
                        .collect();
                    or_undefined(parts.join(separator), undefined)
                }
                Value::Array(items) => {
                    let parts: Vec<String> = items.iter().map(scalar).collect();
                    or_undefined(parts.join(separator), undefined)
                }
                Value::Null => Value::String(undefined.clone()),
                other => other,
            },
            Transform::Join { sep, undefined } => match v {
                Value::Array(items) => {
                    let parts: Vec<String> = items.iter().map(scalar).collect();
                    or_undefined(parts.join(sep), undefined)
                }
                Value::String(s) => {
                    let parts: Vec<String> = s.chars().map(String::from).collect();
                    or_undefined(parts.join(sep), undefined)
                }
                _ => Value::String(undefined.clone()),
            },
            Transform::Len => Value::from(match &v {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(s) => s.chars().count(),
                _ => 0,
            }),
        }
    }
}

/// A value as one piece of text: strings as they are, booleans as gcloud (Python) prints them,
/// nested lists and dicts as compact JSON.
pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        nested => nested.to_string(),
    }
}
