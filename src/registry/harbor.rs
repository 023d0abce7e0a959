//! Harbor's REST API (v2.0), for what the distribution API cannot answer: which tag was pushed
//! when. Follows Harbor's published swagger: `GET /api/v2.0/projects/{project_name}/repositories/
//! {repository_name}/artifacts?with_tag=true&page=N&page_size=M`, Basic auth, `repository_name`
//! URL-encoded twice when it holds `/`, paged with `Link: <…>; rel="next"` (and `X-Total-Count`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::auth::Credentials;
use super::client::Client;
use super::error::{Error, Result};
use super::paging::{link_next, Pages};
use super::transport::read_body;
use crate::bounded;

const PAGE_SIZE: u32 = 100;

/// Characters left alone when encoding a path segment (RFC 3986 unreserved).
pub(super) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Harbor's double encoding of a repository name inside a project: `a/b` → `a%252Fb`.
fn encode_repository(name: &str) -> String {
    let once = utf8_percent_encode(name, SEGMENT).to_string();
    utf8_percent_encode(&once, SEGMENT).to_string()
}

/// A tag in Harbor's artifact list.
#[derive(Debug, Clone, Deserialize)]
struct Tag {
    name: String,
    #[serde(default)]
    push_time: Option<String>,
}

/// One entry of Harbor's artifact list.
#[derive(Debug, Clone, Deserialize)]
struct Artifact {
    digest: String,
    #[serde(default)]
    push_time: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
}

/// A tag with when it was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    pub push_time: String,
    pub digest: String,
}

/// Whether the registry behind `client` is a Harbor (answers `/api/v2.0/ping` with `Pong`).
pub async fn is_harbor(client: &Client) -> bool {
    let Ok(url) = client.base_url().join("api/v2.0/ping") else {
        return false;
    };
    match client.send_raw(Method::GET, url, HeaderMap::new()).await {
        Ok(r) if r.status().is_success() => read_body(r, 1024, "Harbor's ping answer", "GET")
            .await
            .map(|t| String::from_utf8_lossy(&t).contains("Pong"))
            .unwrap_or(false),
        _ => false,
    }
}

/// Every tag of `project/repository` with its push time, newest first. The credentials go only
/// to the registry's own origin, and the pages must stay there (see [`Pages`]).
pub async fn tags(
    client: &Client,
    creds: &Credentials,
    project: &str,
    repository: &str,
) -> Result<Vec<TagInfo>> {
    let path = format!(
        "api/v2.0/projects/{}/repositories/{}/artifacts",
        utf8_percent_encode(project, SEGMENT),
        encode_repository(repository)
    );
    let mut url: Url = client.base_url().join(&path).map_err(|e| Error::Protocol {
        url: path.clone(),
        reason: e.to_string(),
    })?;
    set_page(&mut url, 1);
    let name = format!("{project}/{repository}");
    let what = format!("{}/{name}", client.registry());
    let listing = format!("Harbor artifacts of {what}");
    let mut pages = Pages::new(client.policy(), &listing);
    let mut out = Vec::new();
    for page in 1u32.. {
        let (artifacts, next) = fetch_page(client, creds, &url, &name, &what).await?;
        let count = artifacts.len();
        for a in artifacts {
            tag_infos(a, &url, &mut out)?;
        }
        // Without a `Link`, a full page may have a next one.
        let next = match next {
            Some(n) => Some(n),
            None if count as u32 == PAGE_SIZE => {
                let mut n = url.clone();
                set_page(&mut n, page + 1);
                Some(n)
            }
            None => None,
        };
        match pages.next(&url, next)? {
            Some(n) => url = n,
            None => break,
        }
    }
    out.sort_by(|a, b| {
        crate::rfc3339::newest_first(Some(&a.push_time), Some(&b.push_time))
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(out)
}

/// Sets the query of the artifact list's page `page`.
fn set_page(url: &mut Url, page: u32) {
    url.query_pairs_mut()
        .clear()
        .append_pair("with_tag", "true")
        .append_pair("page", &page.to_string())
        .append_pair("page_size", &PAGE_SIZE.to_string());
}

/// Reads one page of the artifact list of `name` (`project/repository`; `what` adds the
/// registry), and the next page its `Link` names.
async fn fetch_page(
    client: &Client,
    creds: &Credentials,
    url: &Url,
    name: &str,
    what: &str,
) -> Result<(Vec<Artifact>, Option<Url>)> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(h) = creds.basic_header() {
        if client
            .policy()
            .registry_may_receive(url, "the Harbor API credentials")
        {
            headers.insert(AUTHORIZATION, h);
        }
    }
    // The client's own retries (408/429/5xx, resets) and --log-http apply here too.
    let resp = client.send_raw(Method::GET, url.clone(), headers).await?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => {
            return Err(Error::RepositoryUnknown {
                registry: client.registry().to_string(),
                repository: name.to_string(),
                what: name.to_string(),
            })
        }
        _ => return Err(client.fail("GET", url, what, resp).await),
    }
    let next = link_next(url, &resp);
    let body = read_body(
        resp,
        bounded::LISTING,
        &format!("a page of Harbor artifacts of {what}"),
        "GET",
    )
    .await?;
    let artifacts = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
        url: crate::http::redact_url(url.as_str()),
        reason: format!("not a Harbor artifact list: {e}"),
    })?;
    Ok((artifacts, next))
}

/// Adds the tags of `artifact` to `out`. Names, digests and times go onto terminals: what no
/// Harbor sends is refused, times are escaped.
fn tag_infos(artifact: Artifact, url: &Url, out: &mut Vec<TagInfo>) -> Result<()> {
    let a = artifact;
    for t in a.tags.unwrap_or_default() {
        if !super::reference::valid_tag(&t.name) || crate::oci::Digest::parse(&a.digest).is_err() {
            return Err(Error::Protocol {
                url: crate::http::redact_url(url.as_str()),
                reason: format!(
                    "artifact {} holds tag {}, which is not a valid digest and tag name",
                    crate::text::escape(&a.digest),
                    crate::text::escape(&t.name)
                ),
            });
        }
        out.push(TagInfo {
            push_time: crate::text::escape(
                &t.push_time
                    .or_else(|| a.push_time.clone())
                    .unwrap_or_default(),
            )
            .into_owned(),
            name: t.name,
            digest: a.digest.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding() {
        assert_eq!(encode_repository("app"), "app");
        assert_eq!(encode_repository("team/app"), "team%252Fapp");
        assert_eq!(encode_repository("a b"), "a%2520b");
    }
}
