//! Following a paged listing (`Link: <…>; rel="next"`, RFC 8288, as Distribution and Harbor
//! page tag lists and artifacts) without letting the server steer it: the next page must be on the
//! registry itself (another host's answers would be mixed in as the registry's own, and the
//! credentials would follow), must not be a page already read, and there are at most
//! [`MAX_PAGES`] of them.

use std::collections::HashSet;

use reqwest::Response;
use url::Url;

use super::error::{Error, Result};
use super::origin::CredentialPolicy;
use crate::http;

/// At most this many pages are read (a tag list with `n=1000`: a million tags): a registry
/// that pages forever must not hold the command forever.
pub const MAX_PAGES: usize = 1000;

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
        {
            Some(
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            )
        } else {
            None
        }
    })
}

/// The `rel="next"` page a response's `Link` header names, resolved against `url`.
pub(crate) fn link_next(url: &Url, resp: &Response) -> Option<Url> {
    resp.headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .and_then(next_link)
        .and_then(|l| url.join(&l).ok())
}

/// Where paging may go next: only on the registry, never back, at most [`MAX_PAGES`] pages.
pub(crate) struct Pages<'a> {
    policy: &'a CredentialPolicy,
    what: &'a str,
    seen: HashSet<Url>,
}

impl<'a> Pages<'a> {
    pub(crate) fn new(policy: &'a CredentialPolicy, what: &'a str) -> Pages<'a> {
        Pages {
            policy,
            what,
            seen: HashSet::new(),
        }
    }

    /// Records `current` as read and checks `next`.
    pub(crate) fn next(&mut self, current: &Url, next: Option<Url>) -> Result<Option<Url>> {
        self.seen.insert(current.clone());
        let Some(next) = next else { return Ok(None) };
        self.policy.next_page(current, &next, self.what)?;
        let reason = if self.seen.contains(&next) {
            "points back at a page already read".to_string()
        } else if self.seen.len() >= MAX_PAGES {
            format!("has more than {MAX_PAGES} pages")
        } else {
            return Ok(Some(next));
        };
        Err(Error::Paging {
            what: self.what.to_string(),
            url: crate::text::escape(&http::redact_url(current.as_str())).into_owned(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/p/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/p/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<a>; rel="prev""#), None);
    }

    #[test]
    fn pages_never_repeat_and_stop_at_the_cap() {
        let policy =
            CredentialPolicy::new(Url::parse("http://127.0.0.1:5000/").unwrap(), false, false);
        let mut pages = Pages::new(&policy, "tags");
        let page = |i: usize| {
            Url::parse(&format!("http://127.0.0.1:5000/v2/a/tags/list?last={i}")).unwrap()
        };
        let e = pages.next(&page(0), Some(page(0))).unwrap_err();
        assert!(e.to_string().contains("already read"), "{e}");
        let mut pages = Pages::new(&policy, "tags");
        for i in 0..MAX_PAGES - 1 {
            assert_eq!(
                pages.next(&page(i), Some(page(i + 1))).unwrap(),
                Some(page(i + 1))
            );
        }
        let e = pages
            .next(&page(MAX_PAGES - 1), Some(page(MAX_PAGES)))
            .unwrap_err();
        assert!(e.to_string().contains("more than 1000 pages"), "{e}");
        assert_eq!(pages.next(&page(0), None).unwrap(), None);
    }
}
