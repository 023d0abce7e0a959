//! The OCI 1.1 referrers API (distribution-spec "Listing Referrers"): which manifests name a
//! digest as their `subject`. A registry without the API answers 404; the caller then falls back
//! to the referrers tag schema (`<alg>-<hex>` tag holding an index), as oras and cosign do.

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::{Method, StatusCode};

use super::client::{Client, Scope};
use super::error::{Error, Result};
use super::manifests::MAX_MANIFEST_BYTES;
use super::transport::read_body;
use crate::http;
use crate::oci::{self, Digest};

impl Client {
    /// `GET /v2/<repo>/referrers/<digest>`: the index listing `digest`'s referrers, or `None`
    /// when the registry does not offer the API (404). Only the first page is read; the listing
    /// is bounded like a manifest.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Option<oci::Index>> {
        let url = self.url(&format!("v2/{repo}/referrers/{digest}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(oci::OCI_INDEX));
        let resp = self
            .request(Method::GET, url.clone(), &Scope::pull(repo), headers)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("referrers of {}/{repo}@{digest}", self.registry);
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, &what, resp).await);
        }
        let body = read_body(resp, MAX_MANIFEST_BYTES, &what, "GET").await?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::Protocol {
                url: http::redact_url(url.as_str()),
                reason: format!("the referrers answer is not an image index: {e}"),
            })
    }
}
