//! Blobs: reading one (a small config whole and verified, a layer as a stream resumable with HTTP
//! Range) and asking whether the registry has it. Uploads are in [`super::uploads`].

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::client::{Client, Scope};
use super::deadline;
use super::error::{Error, Result};
use super::transport::read_body;
use crate::bounded;
use crate::oci::{self, Digest};

/// A blob download's body, from [`Client::get_blob`].
pub struct Download(Response);

impl Download {
    /// The body's chunks; an item fails when the registry sends less than
    /// `deadline::MIN_RATE` averaged over a window.
    pub fn bytes_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
        let url = self.0.url().to_string();
        deadline::RateChecked::new(Box::pin(self.0.bytes_stream()), &url)
    }
}

impl Client {
    /// Reads a small blob (a config) fully, verified against its digest.
    pub async fn get_small_blob(&self, repo: &str, desc: &oci::Descriptor) -> Result<Vec<u8>> {
        let what = format!("blob {} of {repo}", desc.digest);
        if desc.size > bounded::CONFIG {
            return Err(bounded::TooLarge {
                what,
                limit: bounded::CONFIG,
            }
            .into());
        }
        let (resp, _) = self.blob_response(repo, &desc.digest, 0, true).await?;
        let bytes = read_body(resp, bounded::CONFIG, &what, "GET")
            .await?
            .to_vec();
        let actual = desc.digest.recompute(&bytes);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what,
                url: self
                    .url(&format!("v2/{repo}/blobs/{}", desc.digest))
                    .to_string(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Starts a blob download at `offset` (HTTP Range). Returns the body and whether the
    /// registry honoured the range (206); on `false` the body starts at byte 0. The body fails
    /// when the registry sends less than `deadline::MIN_RATE` over a window.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Download, bool)> {
        let (resp, ranged) = self.blob_response(repo, digest, offset, false).await?;
        Ok((Download(resp), ranged))
    }

    /// The answer to a blob GET from `offset`, and whether the range was honoured (206).
    async fn blob_response(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
        small: bool,
    ) -> Result<(Response, bool)> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"),
            );
        }
        let resp = self
            .request_with(Method::GET, url.clone(), &Scope::pull(repo), headers, small)
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => Ok((resp, true)),
            s if s.is_success() => Ok((resp, false)),
            StatusCode::NOT_FOUND => Err(Error::BlobUnknown {
                repository: repo.to_string(),
                digest: digest.clone(),
            }),
            _ => Err(self
                .fail("GET", &url, &format!("blob {digest} of {repo}"), resp)
                .await),
        }
    }

    /// The blob's size when the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<Option<u64>> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let resp = self
            .request(Method::HEAD, url.clone(), scope, HeaderMap::new())
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self
                .fail("HEAD", &url, &format!("blob {digest} of {repo}"), resp)
                .await),
        }
    }
}
