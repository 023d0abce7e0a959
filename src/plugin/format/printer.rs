//! The printers behind `table(…)`, `value(…)`, `csv(…)` and `yaml`, as gcloud's
//! `csv_printer.py`, `table_printer.py` and `yaml_printer.py` behave:
//!
//! - `value`: no heading, fields separated by a tab, list items by `;`, dicts as sorted
//!   `k=v;k=v`, booleans `True`/`False`, missing keys and nulls empty, nothing quoted unless
//!   `[quote]`.
//! - `csv`: a heading of the lower-cased labels unless `[no-heading]`; `,` between fields; a field
//!   (or list item) holding the separator, delimiter, terminator or a quote, or starting or ending
//!   with white space, is put in double quotes with inner quotes doubled (RFC 4180).
//! - `table`: left-aligned columns 2 spaces apart (`[pad=N]`), headings unless `[no-heading]`,
//!   nothing at all for no rows. gcloud shows a list in a table as Python's `repr`; we join it with
//!   `;` as `value` does, which reads the same and is the same in every format.
//! - `yaml`: a list result is one `---` document per element, anything else one document.
//!
//! Values come from outside (registries, buckets, the config file): control characters are written
//! as visible escapes (`\n`, `\x1b`) so a value can neither forge a row nor act on a terminal;
//! other text, backslashes included, is printed as it is unless the field needs escaping at all.

use std::cmp::Ordering;

use serde_json::Value;

use super::projection::{Column, Step};
use super::transform::scalar;
use super::Kind;
use crate::text::escape;

/// The printer attributes in effect, gcloud's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Options {
    heading: bool,
    separator: String,
    delimiter: String,
    terminator: String,
    quote: bool,
    pad: usize,
    /// `table[box]`: borders drawn with box characters, as gcloud's `box` attribute.
    boxed: bool,
    /// `table[title=T]`: a line above the table.
    title: Option<String>,
}

impl Options {
    /// `attributes` are already checked against the kind's names.
    pub(super) fn new(kind: Kind, attributes: &[(String, Option<String>)]) -> Result<Self, String> {
        if !matches!(kind, Kind::Table | Kind::Value | Kind::Csv) {
            return Ok(Options::default());
        }
        let mut o = Options {
            heading: matches!(kind, Kind::Table | Kind::Csv),
            separator: if kind == Kind::Value { "\t" } else { "," }.to_string(),
            delimiter: ";".to_string(),
            terminator: "\n".to_string(),
            quote: kind == Kind::Csv,
            pad: 2,
            boxed: false,
            title: None,
        };
        for (name, value) in attributes {
            let text = || value.clone().unwrap_or_default();
            match name.as_str() {
                "no-heading" => o.heading = false,
                "heading" => o.heading = true,
                "no-quote" => o.quote = false,
                "quote" => o.quote = true,
                "separator" => o.separator = text(),
                "delimiter" => o.delimiter = text(),
                "terminator" => o.terminator = text(),
                "box" => o.boxed = true,
                "no-box" => o.boxed = false,
                "title" => o.title = Some(text()),
                "pad" => {
                    o.pad = text()
                        .parse()
                        .map_err(|_| format!("pad takes a number, not {:?}", text()))?
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// `rows` projected through `columns` and printed the way `kind` prints.
pub(super) fn project(kind: Kind, o: &Options, columns: &[Column], rows: &[&Value]) -> String {
    let mut cells: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| evaluate(row, c)).collect())
        .collect();
    sort(&mut cells, columns);
    if kind == Kind::Table {
        return table(o, columns, &cells);
    }
    let mut out = String::new();
    if o.heading && !cells.is_empty() {
        let labels: Vec<String> = columns
            .iter()
            .map(|c| quoted(o, &c.label.to_lowercase()))
            .collect();
        out.push_str(&labels.join(&o.separator));
        out.push_str(&o.terminator);
    }
    for row in &cells {
        let fields: Vec<String> = row.iter().map(|v| field(o, v, false)).collect();
        out.push_str(&fields.join(&o.separator));
        out.push_str(&o.terminator);
    }
    out
}

/// One document per element of a list result, else one.
pub(super) fn yaml(result: &Value) -> String {
    let doc = |v: &Value| serde_saphyr::to_string(v).unwrap_or_default();
    match result {
        Value::Array(items) => items.iter().map(|v| format!("---\n{}", doc(v))).collect(),
        other => doc(other),
    }
}

/// The key's value in `row` after its transforms; missing is null.
fn evaluate(row: &Value, column: &Column) -> Value {
    let mut v = lookup(row, &column.path);
    for t in &column.transforms {
        v = t.apply(v);
    }
    v
}

fn lookup(v: &Value, path: &[Step]) -> Value {
    let Some((step, rest)) = path.split_first() else {
        return v.clone();
    };
    let next = match (step, v) {
        (Step::Field(name), Value::Object(map)) => map.get(name),
        (Step::Index(i), Value::Array(items)) => {
            let i = if *i < 0 { items.len() as i64 + i } else { *i };
            usize::try_from(i).ok().and_then(|i| items.get(i))
        }
        (Step::Each, Value::Array(items)) => {
            return Value::Array(items.iter().map(|item| lookup(item, rest)).collect())
        }
        _ => None,
    };
    next.map_or(Value::Null, |n| lookup(n, rest))
}

/// A cell: lists joined by the delimiter, dicts as sorted `k=v`, each item made safe and quoted
/// as the format quotes. `table` escapes every value; the others only values with control
/// characters, so a script gets the text as it is.
fn field(o: &Options, v: &Value, table: bool) -> String {
    let item = |s: String| -> String {
        let safe = if table || s.chars().any(char::is_control) {
            escape(&s).into_owned()
        } else {
            s
        };
        quoted(o, &safe)
    };
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| item(scalar(i))).collect();
            parts.join(&o.delimiter)
        }
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| item(format!("{k}={}", scalar(v))))
                .collect();
            parts.join(&o.delimiter)
        }
        other => item(scalar(other)),
    }
}

/// gcloud's `_QuoteField`: quoted only when the text could be misread.
fn quoted(o: &Options, s: &str) -> String {
    if s.is_empty() || !o.quote {
        return s.to_string();
    }
    let needs = [
        o.delimiter.as_str(),
        "\"",
        o.separator.as_str(),
        o.terminator.as_str(),
    ]
    .iter()
    .any(|t| !t.is_empty() && s.contains(t))
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if !needs {
        return s.to_string();
    }
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Rows ordered by the `:sort=N` columns (lower N first), then the `:reverse`-only ones, each
/// descending when `:reverse`; numbers before text and by value, as gcloud orders them.
fn sort(rows: &mut [Vec<Value>], columns: &[Column]) {
    let mut order: Vec<(u32, usize, bool)> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.sort.is_some() || c.reverse)
        .map(|(i, c)| (c.sort.unwrap_or(u32::MAX), i, c.reverse))
        .collect();
    if order.is_empty() {
        return;
    }
    order.sort();
    rows.sort_by(|a, b| {
        for &(_, i, reverse) in &order {
            let o = compare(&a[i], &b[i]);
            if o != Ordering::Equal {
                return if reverse { o.reverse() } else { o };
            }
        }
        Ordering::Equal
    });
}

fn compare(a: &Value, b: &Value) -> Ordering {
    let number = |v: &Value| v.as_f64().unwrap_or(f64::INFINITY);
    number(a)
        .partial_cmp(&number(b))
        .unwrap_or(Ordering::Equal)
        .then_with(|| scalar(a).cmp(&scalar(b)))
}

/// gcloud's `[box]`: solid lines all round, the heading ruled off with `├─┼─┤`.
const GCLOUD_BOX: comfy_table::TableStyle = {
    use comfy_table::{ContentLineStyle as Content, LineStyle as Line, TableStyle};
    TableStyle::new()
        .top_border(Line::new('┌', '─', '┬', '┐'))
        .header_lines(Content::new('│', '│', '│'))
        .header_separator(Line::new('├', '─', '┼', '┤'))
        .content_lines(Content::new('│', '│', '│'))
        .bottom_border(Line::new('└', '─', '┴', '┘'))
};

/// Left-aligned columns by display width (comfy-table), no borders (or box borders with
/// `[box]`), trailing blanks trimmed; `[title=T]` goes on a line of its own above.
fn table(o: &Options, columns: &[Column], rows: &[Vec<Value>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut t = comfy_table::Table::new();
    let style = if o.boxed {
        GCLOUD_BOX
    } else {
        comfy_table::presets::NOTHING
    };
    t.load_style(style)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    if o.heading {
        t.set_header(columns.iter().map(|c| escape(&c.label).into_owned()));
    }
    for row in rows {
        t.add_row(row.iter().map(|v| field(o, v, true)));
    }
    let last = columns.len().saturating_sub(1);
    for (i, column) in t.column_iter_mut().enumerate() {
        // Boxed cells get one blank each side, as gcloud draws them.
        let padding = match (o.boxed, i == last) {
            (true, _) => (1, 1),
            (false, true) => (0, 0),
            (false, false) => (0, u16::try_from(o.pad).unwrap_or(u16::MAX)),
        };
        column.set_padding(padding);
    }
    let mut out = String::new();
    if let Some(title) = &o.title {
        out.push_str(&escape(title));
        out.push('\n');
    }
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use serde_json::{json, Value};

    fn render(format: &str, v: &Value) -> String {
        Format::parse(format).unwrap().render(v, None).unwrap()
    }

    fn versions() -> Value {
        json!([
            {"tag": "1.10", "size": 10, "labels": {"b": "2", "a": "1"}, "tags": ["x", "y"], "ok": true},
            {"tag": "1.9", "size": 9, "tags": [], "ok": false, "nested": {"deep": {"er": "d"}}},
            {"tag": "latest", "size": 100, "tags": ["only"], "ok": null}
        ])
    }

    #[test]
    fn value_is_tab_separated_without_heading() {
        assert_eq!(
            render("value(tag, size, ok)", &versions()),
            "1.10\t10\tTrue\n1.9\t9\tFalse\nlatest\t100\t\n"
        );
        assert_eq!(
            render("value[separator=','](tag,tags)", &versions()),
            "1.10,x;y\n1.9,\nlatest,only\n"
        );
        assert_eq!(
            render("value[delimiter=' ',terminator=' '](tags)", &versions()),
            "x y  only "
        );
    }

    #[test]
    fn nested_keys_indexes_and_missing_keys() {
        assert_eq!(
            render(
                "value(nested.deep.er, tags[0], tags[-1], missing.key, tag.nope)",
                &versions()
            ),
            "\tx\ty\t\t\nd\t\t\t\t\n\tonly\tonly\t\t\n"
        );
        let v = json!({"items": [{"n": "a"}, {"n": "b"}]});
        assert_eq!(render("value(items[].n)", &v), "a;b\n");
        assert_eq!(render("value(items[].n.join(','))", &v), "a,b\n");
    }

    #[test]
    fn dicts_print_as_sorted_pairs() {
        assert_eq!(render("value(labels)", &versions()), "a=1;b=2\n\n\n");
        assert_eq!(
            render("value(labels.list(), labels.list(show=keys), labels.list(show=values,separator=' '))", &versions()),
            "a=1,b=2\ta,b\t1 2\n\t\t\n\t\t\n"
        );
    }

    #[test]
    fn transforms_list_join_len() {
        assert_eq!(
            render("value(tags.list(), tags.join(' '), tags.len(), tag.join('-'), tags.list(undefined=none))", &versions()),
            "x,y\tx y\t2\t1-.-1-0\tx,y\n\t\t0\t1-.-9\tnone\nonly\tonly\t1\tl-a-t-e-s-t\tonly\n"
        );
    }

    #[test]
    fn csv_has_a_heading_and_quotes_what_needs_it() {
        let v = json!([
            {"name": "plain", "note": "a,b", "q": "say \"hi\"", "sp": " lead", "list": ["1;2", "3"]},
            {"name": "two", "note": "x;y", "q": "", "sp": "t", "list": []}
        ]);
        assert_eq!(
            render("csv(name, note, q, sp, list:label=ITEMS)", &v),
            "name,note,q,sp,items\nplain,\"a,b\",\"say \"\"hi\"\"\",\" lead\",\"1;2\";3\ntwo,\"x;y\",,t,\n"
        );
        assert_eq!(
            render("csv[no-heading,separator=';'](name,note)", &v),
            "plain;a,b\ntwo;\"x;y\"\n"
        );
        assert_eq!(render("csv[no-quote](note)", &v), "note\na,b\nx;y\n");
        assert_eq!(render("value[quote](note)", &v), "a,b\n\"x;y\"\n");
    }

    #[test]
    fn control_characters_are_escaped_backslashes_kept() {
        let v = json!([{"k": "a\nb\u{1b}[2J", "p": "C:\\dir"}]);
        assert_eq!(render("value(k, p)", &v), "a\\nb\\x1b[2J\tC:\\dir\n");
        assert_eq!(render("csv[no-heading](k)", &v), "a\\nb\\x1b[2J\n");
    }

    #[test]
    fn table_aligns_columns_under_upper_case_headings() {
        assert_eq!(
            render("table(tag, size, tags.list():label=TAGS)", &versions()),
            "TAG     SIZE  TAGS\n1.10    10    x,y\n1.9     9\nlatest  100   only\n"
        );
        assert_eq!(
            render("table[no-heading,pad=1](tag, size)", &versions()),
            "1.10   10\n1.9    9\nlatest 100\n"
        );
        let wide = json!([{"a": "日本語", "b": "x"}, {"a": "abcdefg", "b": "y"}]);
        assert_eq!(
            render("table(a, b)", &wide),
            "A        B\n日本語   x\nabcdefg  y\n"
        );
    }

    #[test]
    fn table_box_draws_borders_and_title_goes_above() {
        let v = json!([{"tag": "1.10", "size": 10}, {"tag": "latest", "size": 100}]);
        let got = render("table[box,title=Versions](tag, size)", &v);
        let want = [
            "Versions",
            "┌────────┬──────┐",
            "│ TAG    │ SIZE │",
            "├────────┼──────┤",
            "│ 1.10   │ 10   │",
            "│ latest │ 100  │",
            "└────────┴──────┘",
        ];
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "{got}");
    }

    #[test]
    fn sort_and_reverse_order_rows() {
        assert_eq!(
            render("value(tag, size:sort=1)", &versions()),
            "1.9\t9\n1.10\t10\nlatest\t100\n"
        );
        assert_eq!(
            render("value(tag:reverse)", &versions()),
            "latest\n1.9\n1.10\n"
        );
        let v = json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 1, "b": "z"}]);
        assert_eq!(
            render("value(a:sort=1, b:sort=2:reverse)", &v),
            "1\tz\n1\tx\n2\ty\n"
        );
    }

    #[test]
    fn yaml_is_one_document_or_one_per_element() {
        assert_eq!(
            render(
                "yaml",
                &json!({"b": 1, "a": ["x", "True"], "c": null, "d": {"e": "two\nlines"}})
            ),
            "b: 1\na:\n- x\n- \"True\"\nc: null\nd:\n  e: |-\n    two\n    lines\n"
        );
        assert_eq!(
            render("yaml", &json!([{"name": 1}, {"name": 2}])),
            "---\nname: 1\n---\nname: 2\n"
        );
        assert_eq!(render("yaml", &json!("v")), "v\n");
    }
}
