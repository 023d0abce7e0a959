//! The little XML S3 speaks to us: list pages, multipart answers and error documents. S3's answers
//! are flat, namespace-free and never nest an element in one of the same name, so a tag extractor
//! that finds `<Name>…</Name>` and decodes the five predefined entities (plus character
//! references) is all we need, without an XML crate in the tree.

use std::borrow::Cow;

/// The inner text of every `<tag>…</tag>` (or empty `<tag/>`) in `xml`, in order, still escaped.
/// Matches the exact name: `<Key>` does not match `<KeyMarker>`.
pub fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(gt) = after.find('>') else { break };
        let head = &after[..gt];
        if !(head.is_empty() || head.starts_with(char::is_whitespace) || head == "/") {
            rest = after;
            continue;
        }
        if head.ends_with('/') {
            out.push("");
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The first `<tag>` of `xml`, unescaped.
pub fn text<'a>(xml: &'a str, tag: &str) -> Option<Cow<'a, str>> {
    elements(xml, tag).first().map(|s| unescape(s))
}

/// Decodes `&amp; &lt; &gt; &quot; &apos;`, `&#NN;` and `&#xHH;`; other `&` are left as they are.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = tail.find(';').and_then(|semi| {
            let name = &tail[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes text for an element's content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<Error><Code>…</Code><Message>…</Message></Error>`: the code and message, when `body` is one.
pub fn error(body: &str) -> Option<(String, String)> {
    let err = elements(body, "Error").into_iter().next()?;
    let code = text(err, "Code")?.into_owned();
    let message = text(err, "Message").unwrap_or_default().into_owned();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exact_tags() {
        let x = "<R><KeyMarker>m</KeyMarker><Key>a</Key><Key attr=\"1\">b &amp; c</Key><Key/><Keys>z</Keys></R>";
        assert_eq!(elements(x, "Key"), vec!["a", "b &amp; c", ""]);
        assert_eq!(text(x, "KeyMarker").as_deref(), Some("m"));
        assert_eq!(text(x, "Nope"), None);
        assert_eq!(elements("<Key>unterminated", "Key"), Vec::<&str>::new());
    }

    #[test]
    fn entities() {
        assert_eq!(
            unescape(
                "a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#8364; &#x20AC; & x &bogus;"
            ),
            "a & b <c> \"d\" 'e' € € & x &bogus;"
        );
        assert!(matches!(unescape("plain"), Cow::Borrowed("plain")));
        assert_eq!(unescape(&escape("<a & 'b' \"c\">")), "<a & 'b' \"c\">");
    }

    #[test]
    fn error_documents() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
                    <Message>The specified key does not exist.</Message><Key>a&amp;b</Key></Error>";
        assert_eq!(
            error(body),
            Some((
                "NoSuchKey".into(),
                "The specified key does not exist.".into()
            ))
        );
        assert_eq!(error("<ListBucketResult/>"), None);
        assert_eq!(error(""), None);
    }
}
