//! The parser of gcloud's format expressions, `NAME[ATTRIBUTES](PROJECTION)`, as `gcloud topic
//! formats` and `gcloud topic projections` define them: `table[no-heading](name, tags.list():label=TAGS)`,
//! `value(versions[0].tag)`, `csv[separator=';'](a,b)`. Pure: a string in, a parsed [`Expression`]
//! out, so every rule is a table test without I/O.
//!
//! A key is a dotted path of names, `[N]` indexes (negative counts from the end) and `[]` (every
//! element, as in `items[].name`), then transforms (`.list()`, `.join(SEP)`, `.len()`), then key
//! attributes (`:label=L`, `:sort=N`, `:reverse`). Default labels are gcloud's: the key's last
//! name in ANGRY_SNAKE_CASE (`lastModified` → `LAST_MODIFIED`), lengthened from the right
//! (`first.name`, `last.name` → `NAME`, `LAST_NAME`) when an earlier column took it. What gcloud
//! has beyond that (filters, `always()`, `:alias`, `:align`, nested formats) is refused with a
//! message naming what is accepted, never ignored: a script would otherwise print the wrong thing.

use std::collections::HashSet;
use std::fmt;

use super::label::default_label;
use super::lexer::Lexer;
pub use super::transform::{Show, Transform};

/// One step of a key's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    /// `[N]`; negative counts from the end, as in Python.
    Index(i64),
    /// `[]`: the rest of the path on every element, giving a list.
    Each,
}

/// One projected key: a table column, a csv field, a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub path: Vec<Step>,
    pub transforms: Vec<Transform>,
    /// The heading: `:label=` or the ANGRY_SNAKE_CASE default.
    pub label: String,
    /// `:sort=N`: sorted by this column, lower N first.
    pub sort: Option<u32>,
    /// `:reverse`: descending (sorts by this column even without `:sort`).
    pub reverse: bool,
}

/// A whole `--format` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    pub name: String,
    /// `[a,b=c]` in order; `no-x` is kept as written.
    pub attributes: Vec<(String, Option<String>)>,
    /// `None` without parentheses; `Some(vec![])` for `()`.
    pub columns: Option<Vec<Column>>,
}

/// Where and why an expression is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub what: String,
    /// Character position (0-based) in the expression.
    pub at: usize,
    /// The expression ended where more was expected.
    pub end: bool,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            true => write!(f, "{} at the end of the format", self.what),
            false => write!(f, "{} at character {}", self.what, self.at + 1),
        }
    }
}

/// Parses `NAME[ATTRIBUTES](KEYS)`.
pub fn parse(expression: &str) -> Result<Expression, Error> {
    let mut lex = Lexer::new(expression);
    lex.skip_space();
    let name = lex.word(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() {
        return Err(lex.error("expected a format name"));
    }
    let mut attributes = Vec::new();
    if lex.eat('[') {
        attributes = lex.attributes()?;
    }
    let mut columns = None;
    if lex.eat('(') {
        columns = Some(lex.columns()?);
    }
    lex.skip_space();
    if let Some(c) = lex.peek() {
        return Err(lex.error(&format!("unexpected {c:?}")));
    }
    Ok(Expression {
        name: name.to_string(),
        attributes,
        columns,
    })
}

/// The characters that end a bare name or value.
const SPECIAL: &str = ".[](),:=";

impl Lexer {
    /// `[name, name=value, …]`, the `[` taken.
    fn attributes(&mut self) -> Result<Vec<(String, Option<String>)>, Error> {
        let mut out = Vec::new();
        loop {
            self.skip_space();
            if self.eat(']') {
                return Ok(out);
            }
            let name = self.word(|c| !"=,]".contains(c) && !c.is_whitespace());
            if name.is_empty() {
                return Err(self.error("expected an attribute name in [...]"));
            }
            self.skip_space();
            let value = if self.eat('=') {
                self.skip_space();
                if matches!(self.peek(), Some(',' | ']') | None) {
                    return Err(self.error(&format!(
                        "{name}= needs a value; quote one that holds ',' or ']', as in {name}=','"
                    )));
                }
                Some(self.value(",]")?)
            } else {
                None
            };
            out.push((name, value));
            self.skip_space();
            if !self.eat(',') {
                self.expect(']', "after the attributes")?;
                return Ok(out);
            }
        }
    }

    /// `key, key, …)`, the `(` taken.
    fn columns(&mut self) -> Result<Vec<Column>, Error> {
        let mut columns = Vec::new();
        self.skip_space();
        if self.eat(')') {
            return Ok(columns);
        }
        let mut taken = HashSet::new();
        loop {
            let mut column = self.column()?;
            if column.label.is_empty() {
                column.label = default_label(&column.path, &mut taken);
            }
            columns.push(column);
            self.skip_space();
            if !self.eat(',') {
                self.expect(')', "after the keys")?;
                return Ok(columns);
            }
        }
    }

    /// One key with its transforms and attributes (label left empty for the default).
    fn column(&mut self) -> Result<Column, Error> {
        self.skip_space();
        let mut path = Vec::new();
        let mut transforms = Vec::new();
        loop {
            let at = self.pos;
            if self.eat('[') {
                path.push(self.index()?);
            } else {
                let name = self.name()?;
                self.skip_space();
                if self.eat('(') {
                    transforms.push(self.transform(&name, at)?);
                } else if transforms.is_empty() {
                    path.push(Step::Field(name));
                } else {
                    self.pos = at;
                    return Err(self.error("a key continues after a transform"));
                }
            }
            if self.peek() == Some('[') {
                continue;
            }
            if !self.eat('.') {
                break;
            }
        }
        if path.is_empty() {
            return Err(self.error("expected a key before the transform"));
        }
        let mut column = Column {
            path,
            transforms,
            label: String::new(),
            sort: None,
            reverse: false,
        };
        self.skip_space();
        while self.eat(':') {
            self.key_attribute(&mut column)?;
            self.skip_space();
        }
        Ok(column)
    }

    fn name(&mut self) -> Result<String, Error> {
        self.skip_space();
        if matches!(self.peek(), Some('\'' | '"')) {
            return self.value("");
        }
        let name = self.word(|c| !SPECIAL.contains(c) && !c.is_whitespace());
        if name.is_empty() {
            return Err(self.error("expected a key name"));
        }
        Ok(name)
    }

    /// `N]`, `-N]` or `]`, the `[` taken.
    fn index(&mut self) -> Result<Step, Error> {
        if self.eat(']') {
            return Ok(Step::Each);
        }
        let negative = self.eat('-');
        let digits = self.word(|c| c.is_ascii_digit());
        let n: i64 = digits
            .parse()
            .map_err(|_| self.error("expected a number or nothing in [...]"))?;
        self.expect(']', "after the index")?;
        Ok(Step::Index(if negative { -n } else { n }))
    }

    /// `name(args)` with the `(` taken.
    fn transform(&mut self, name: &str, at: usize) -> Result<Transform, Error> {
        let args = self.arguments()?;
        Transform::from_call(name, &args).map_err(|what| Error {
            what,
            at,
            end: false,
        })
    }

    /// `a, k=b, …)` with the `(` taken.
    fn arguments(&mut self) -> Result<Vec<(Option<String>, String)>, Error> {
        let mut args = Vec::new();
        self.skip_space();
        if self.eat(')') {
            return Ok(args);
        }
        loop {
            let first = self.value(",)=")?;
            self.skip_space();
            if self.eat('=') {
                let v = self.value(",)")?;
                args.push((Some(first), v));
            } else {
                args.push((None, first));
            }
            self.skip_space();
            if !self.eat(',') {
                self.expect(')', "after the transform's arguments")?;
                return Ok(args);
            }
        }
    }

    /// One `:name[=value]`, the `:` taken.
    fn key_attribute(&mut self, column: &mut Column) -> Result<(), Error> {
        let at = self.pos;
        let name = self.word(|c| !"=:,)".contains(c) && !c.is_whitespace());
        self.skip_space();
        let value = if self.eat('=') {
            Some(self.value(":,)")?)
        } else {
            None
        };
        match (name.as_str(), value) {
            ("label", Some(v)) => column.label = v,
            ("sort", Some(v)) => {
                column.sort = Some(v.parse().map_err(|_| Error {
                    what: format!(":sort takes a number, not {v:?}"),
                    at,
                    end: false,
                })?)
            }
            ("reverse", None) => column.reverse = true,
            ("no-reverse", None) => column.reverse = false,
            _ => {
                return Err(Error {
                    what: format!(
                        "unknown key attribute :{name}; known: :label=LABEL, :sort=N, :reverse"
                    ),
                    at,
                    end: false,
                })
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> Step {
        Step::Field(s.to_string())
    }

    fn columns(s: &str) -> Vec<Column> {
        parse(s).unwrap().columns.unwrap()
    }

    #[test]
    fn name_alone_has_no_attributes_and_no_projection() {
        let e = parse("json").unwrap();
        assert_eq!(e.name, "json");
        assert!(e.attributes.is_empty());
        assert_eq!(e.columns, None);
        assert_eq!(parse(" yaml ").unwrap().name, "yaml");
    }

    #[test]
    fn attributes_take_bare_and_quoted_values() {
        let e = parse("csv[no-heading,separator=';', delimiter=\" | \"](a,b)").unwrap();
        assert_eq!(
            e.attributes,
            vec![
                ("no-heading".to_string(), None),
                ("separator".to_string(), Some(";".to_string())),
                ("delimiter".to_string(), Some(" | ".to_string())),
            ]
        );
        let e = parse("value[separator=,](a)").unwrap_err();
        assert!(e.to_string().contains("separator= needs a value"), "{e}");
        let e = parse(r"value[separator='\t',terminator=\n](a)").unwrap();
        assert_eq!(e.attributes[0].1.as_deref(), Some("\t"));
        assert_eq!(e.attributes[1].1.as_deref(), Some("\n"));
    }

    #[test]
    fn keys_are_dotted_paths_with_indexes() {
        let c = columns("value(versions[0].tag, a.b[-1], items[].name, 'odd key'.x)");
        assert_eq!(
            c[0].path,
            vec![field("versions"), Step::Index(0), field("tag")]
        );
        assert_eq!(c[1].path, vec![field("a"), field("b"), Step::Index(-1)]);
        assert_eq!(c[2].path, vec![field("items"), Step::Each, field("name")]);
        assert_eq!(c[3].path, vec![field("odd key"), field("x")]);
        assert_eq!(
            columns("value(storage/s3_endpoint)")[0].path,
            vec![field("storage/s3_endpoint")]
        );
    }

    #[test]
    fn transforms_and_key_attributes() {
        let c = columns("table[no-heading](name, tags.list():label=TAGS, size:sort=1:reverse)");
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].path, vec![field("tags")]);
        assert_eq!(
            c[1].transforms,
            vec![Transform::List {
                show: Show::Pairs,
                undefined: String::new(),
                separator: ",".to_string()
            }]
        );
        assert_eq!(c[1].label, "TAGS");
        assert_eq!((c[2].sort, c[2].reverse), (Some(1), true));
        let c = columns(
            "value(a.join(sep=' '), b.join(','), c.list(show=keys, separator=';'), d.len())",
        );
        assert_eq!(
            c[0].transforms,
            vec![Transform::Join {
                sep: " ".to_string(),
                undefined: String::new()
            }]
        );
        assert_eq!(
            c[1].transforms,
            vec![Transform::Join {
                sep: ",".to_string(),
                undefined: String::new()
            }]
        );
        assert!(matches!(
            &c[2].transforms[0],
            Transform::List { show: Show::Keys, separator, .. } if separator == ";"
        ));
        assert_eq!(c[3].transforms, vec![Transform::Len]);
        let c = columns("csv(name:label='The Name', x.list().len())");
        assert_eq!(c[0].label, "The Name");
        assert_eq!(c[1].transforms.len(), 2);
    }

    #[test]
    fn default_labels_are_angry_snake_case_disambiguated_from_the_right() {
        let labels: Vec<String> = columns(
            "table(first.name, last.name, lastModified, networkIP, HTTPServer, versions[0].tag, s3_endpoint, tags.list())",
        )
        .into_iter()
        .map(|c| c.label)
        .collect();
        assert_eq!(
            labels,
            [
                "NAME",
                "LAST_NAME",
                "LAST_MODIFIED",
                "NETWORK_IP",
                "HTTP_SERVER",
                "TAG",
                "S3_ENDPOINT",
                "TAGS"
            ]
        );
    }

    #[test]
    fn mistakes_are_errors_that_say_where_and_what() {
        for (bad, says) in [
            ("", "expected a format name"),
            (
                "table(name",
                "expected ')' after the keys at the end of the format",
            ),
            ("table(name,)", "expected a key name"),
            ("value(a.b.c)x", "unexpected 'x'"),
            ("value(a[x])", "expected a number"),
            ("value(a.upper())", "unknown transform upper()"),
            ("value(a:align=left)", "unknown key attribute :align"),
            ("value(a:sort=first)", ":sort takes a number"),
            ("value(a.list().b)", "a key continues after a transform"),
            ("csv[separator=';'(a)", "expected ']'"),
            ("value(a:label='x)", "unterminated ' quote"),
            (
                "value(a.join(sep=',', by=x))",
                "join() takes no argument \"by\"",
            ),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
        }
        assert_eq!(parse("table(name,)").unwrap_err().at, 11);
    }
}
