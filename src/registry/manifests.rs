//! Manifests and tags: fetching a manifest or index by tag or digest (verified against the digest
//! asked for or claimed), putting one under a tag or digest, and listing a repository's tags
//! (paged, see [`super::paging`]).

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::client::{Client, Scope};
use super::error::{Error, Result};
use super::paging::{link_next, Pages};
use super::transport::read_body;
use crate::bounded;
use crate::http;
use crate::oci::{self, Digest};

/// Manifests are small; anything bigger is refused rather than loaded (the one limit,
/// [`bounded::MANIFEST`], also applied to local layouts).
pub const MAX_MANIFEST_BYTES: u64 = bounded::MANIFEST;

/// A fetched manifest or index: the exact bytes (their digest is the manifest's identity).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Fetched {
    pub fn descriptor(&self) -> oci::Descriptor {
        oci::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// Checks `bytes` against the digest `expected` (asked for, else claimed by the registry), in
/// its algorithm: a `@sha512:` reference is verified too. Returns the bytes' sha256.
fn verify(bytes: &[u8], expected: Option<Digest>, what: &str, url: &Url) -> Result<Digest> {
    if let Some(expected) = expected {
        let got = expected.recompute(bytes);
        if expected != got {
            return Err(Error::DigestMismatch {
                what: format!("manifest {what}"),
                url: url.to_string(),
                expected,
                actual: got,
            });
        }
    }
    Ok(Digest::sha256_of(bytes))
}

/// The manifest's media type: the `Content-Type` when it names a manifest or index, else the
/// document's own `mediaType` (or what its shape says).
fn media_type_of(content_type: Option<String>, bytes: &[u8]) -> Result<String> {
    Ok(
        match content_type.filter(|c| oci::is_index(c) || oci::is_manifest(c)) {
            Some(c) => c,
            None => match oci::AnyManifest::parse(None, bytes)? {
                oci::AnyManifest::Index(i) => i.media_type.unwrap_or_else(|| oci::OCI_INDEX.into()),
                oci::AnyManifest::Image(m) => {
                    m.media_type.unwrap_or_else(|| oci::OCI_MANIFEST.into())
                }
            },
        },
    )
}

impl Client {
    /// Fetches a manifest or index by tag or digest, verifying the bytes against the digest asked for
    /// (or the one the registry claims).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&oci::MANIFEST_ACCEPT.join(", ")).expect("static"),
        );
        let resp = self
            .request(Method::GET, url.clone(), &Scope::pull(repo), headers)
            .await?;
        let what = format!(
            "{}/{repo}{}{reference}",
            self.registry,
            if reference.contains(':') { "@" } else { ":" }
        );
        if resp.status() == StatusCode::NOT_FOUND {
            // A registry may say NAME_UNKNOWN for a repository that does not exist; Distribution 3
            // says MANIFEST_UNKNOWN either way, so its tags list (404 without the repository) tells.
            let message = super::client::error_message(resp).await;
            let no_repository = message.contains("NAME_UNKNOWN")
                || matches!(self.tags(repo).await, Err(Error::RepositoryUnknown { .. }));
            return Err(if no_repository {
                Error::RepositoryUnknown {
                    registry: self.registry.clone(),
                    repository: repo.to_string(),
                    what: format!(
                        "{repo}{}{reference}",
                        if reference.contains(':') { "@" } else { ":" }
                    ),
                }
            } else {
                Error::ManifestUnknown {
                    registry: self.registry.clone(),
                    repository: repo.to_string(),
                    reference: reference.to_string(),
                }
            });
        }
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, &what, resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Digest::parse(s).ok());
        let bytes = read_body(resp, MAX_MANIFEST_BYTES, &format!("manifest {what}"), "GET")
            .await?
            .to_vec();
        let actual = verify(
            &bytes,
            Digest::parse(reference).ok().or(claimed),
            &what,
            &url,
        )?;
        Ok(Fetched {
            media_type: media_type_of(content_type, &bytes)?,
            bytes,
            digest: actual,
        })
    }

    /// The digest `reference` (a tag or digest) names in `repo`, from a HEAD's
    /// `Docker-Content-Digest`; `None` when the registry has no such manifest. A bundle load
    /// skips what is already there with one request, touching none of its blobs.
    pub async fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Option<Digest>> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&oci::MANIFEST_ACCEPT.join(", ")).expect("static"),
        );
        let resp = self
            .request(Method::HEAD, url.clone(), &Scope::push(repo), headers)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| Digest::parse(s).ok())
                .or_else(|| Digest::parse(reference).ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self
                .fail("HEAD", &url, &format!("manifest {repo}:{reference}"), resp)
                .await),
        }
    }

    /// Uploads a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
                url: url.to_string(),
                reason: format!("bad media type {media_type:?}"),
            })?,
        );
        let resp = self
            .send_body(
                Method::PUT,
                url.clone(),
                &Scope::push(repo),
                headers.clone(),
                bytes.clone().into(),
                true,
            )
            .await?;
        let resp = if resp.status() == StatusCode::UNAUTHORIZED {
            self.learn_challenge(&resp, &Scope::push(repo)).await;
            self.send_body(
                Method::PUT,
                url.clone(),
                &Scope::push(repo),
                headers,
                bytes.into(),
                true,
            )
            .await?
        } else {
            resp
        };
        if !resp.status().is_success() {
            return Err(self
                .fail("PUT", &url, &format!("manifest {repo}:{reference}"), resp)
                .await);
        }
        Ok(())
    }

    /// Every tag of `repo`, following `Link` pagination on the registry itself: a page pointing
    /// elsewhere, back at a page already read, or past `paging::MAX_PAGES` is an error.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(&format!("v2/{repo}/tags/list"));
        url.query_pairs_mut().append_pair("n", "1000");
        let what = format!("tags of {}/{repo}", self.registry);
        let mut all = Vec::new();
        let mut pages = Pages::new(&self.policy, &what);
        loop {
            let resp = self
                .request(
                    Method::GET,
                    url.clone(),
                    &Scope::pull(repo),
                    HeaderMap::new(),
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(Error::RepositoryUnknown {
                    registry: self.registry.clone(),
                    repository: repo.to_string(),
                    what: repo.to_string(),
                });
            }
            if !resp.status().is_success() {
                return Err(self
                    .fail("GET", &url, &format!("tags of {repo}"), resp)
                    .await);
            }
            let next = link_next(&url, &resp);
            let body =
                read_body(resp, bounded::LISTING, &format!("a page of {what}"), "GET").await?;
            let list: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                url: http::redact_url(url.as_str()),
                reason: e.to_string(),
            })?;
            let tags = list.tags.unwrap_or_default();
            // Tags go into URLs and onto terminals: a name outside the spec's grammar is the
            // registry's fault, not something to print or request.
            if let Some(bad) = tags.iter().find(|t| !super::reference::valid_tag(t)) {
                return Err(Error::Protocol {
                    url: http::redact_url(url.as_str()),
                    reason: format!(
                        "the tag list holds {}, which is not a valid tag name",
                        crate::text::escape(bad)
                    ),
                });
            }
            all.extend(tags);
            match pages.next(&url, next)? {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }
}
