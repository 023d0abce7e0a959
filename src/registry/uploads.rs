//! Blob uploads: opening a session (or mounting the blob from another repository instead), then
//! sending the bytes as one streamed PUT or as PATCH chunks and a closing PUT.
//!
//! A streamed body cannot be replayed: each request is authorized before it is sent, and a failed
//! upload is started again by the caller from its source. Streams are watched for a rate floor
//! ([`deadline::watch_upload`]), not a deadline: a large blob may take hours.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Mutex;
use url::Url;

use super::client::{Client, Scope};
use super::deadline;
use super::error::{Error, Result};
use crate::oci::Digest;

/// What [`Client::upload`] sends: `size` bytes of `digest`, in PATCH chunks of `chunk_size` when
/// larger than that.
#[derive(Debug, Clone, Copy)]
pub struct BlobUpload<'a> {
    pub digest: &'a Digest,
    pub size: u64,
    pub chunk_size: u64,
}

/// What [`Client::start_upload`] got: a mount, or an upload session.
pub enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session at this location instead.
    Upload(Url),
}

/// The session URL with the blob's `digest` parameter, which closes the upload.
fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    url
}

/// The headers of a request carrying `len` bytes of a blob.
fn octets(len: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers
}

impl Client {
    /// Opens an upload session, trying a cross-repository mount of `digest` first (from `from`
    /// when known; registries that support it may also mount without).
    pub async fn start_upload(
        &self,
        repo: &str,
        mount: Option<(&Digest, Option<&str>)>,
        scope: &Scope,
    ) -> Result<Mount> {
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        if let Some((digest, from)) = mount {
            let mut q = url.query_pairs_mut();
            q.append_pair("mount", &digest.to_string());
            if let Some(f) = from {
                q.append_pair("from", f);
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .request(Method::POST, url.clone(), scope, headers)
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Mount::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                Ok(Mount::Upload(self.location(&url, &resp)?))
            }
            _ => Err(self
                .fail("POST", &url, &format!("upload to {repo}"), resp)
                .await),
        }
    }

    /// Resolves a `Location` header against the request URL.
    fn location(&self, url: &Url, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol {
                url: url.to_string(),
                reason: "no Location header".into(),
            })?;
        url.join(loc).map_err(|e| Error::Protocol {
            url: url.to_string(),
            reason: format!("bad Location {loc:?}: {e}"),
        })
    }

    /// Uploads `size` bytes from `stream` to an open session: one streamed PUT when the blob fits in
    /// `chunk_size`, else PATCH chunks of `chunk_size` (with Content-Range) and a closing PUT.
    /// `stream` yields exactly `size` bytes split at multiples of its item size.
    pub async fn upload<S>(
        &self,
        repo: &str,
        location: Url,
        blob: BlobUpload<'_>,
        scope: &Scope,
        stream: S,
    ) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let what = format!("blob {} to {repo}", blob.digest);
        let (url, resp) = if blob.size <= blob.chunk_size {
            let url = with_digest(&location, blob.digest);
            let headers = octets(blob.size);
            let resp = self
                .send_stream(Method::PUT, url.clone(), scope, headers, stream, blob.size)
                .await?;
            (url, resp)
        } else {
            let location = self
                .patch_chunks(location, blob, scope, stream, &what)
                .await?;
            let url = with_digest(&location, blob.digest);
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            let resp = self
                .request(Method::PUT, url.clone(), scope, headers)
                .await?;
            (url, resp)
        };
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, &what, resp).await);
        }
        Ok(())
    }

    /// Sends the blob as PATCH chunks of `chunk_size` with their Content-Range; returns where the
    /// session went on (each answer names the next location).
    async fn patch_chunks<S>(
        &self,
        mut location: Url,
        blob: BlobUpload<'_>,
        scope: &Scope,
        stream: S,
        what: &str,
    ) -> Result<Url>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let shared = Arc::new(Mutex::new(stream));
        let mut sent = 0u64;
        while sent < blob.size {
            let len = blob.chunk_size.min(blob.size - sent);
            let part = take_stream(shared.clone(), len);
            let mut headers = octets(len);
            headers.insert(
                "content-range",
                HeaderValue::from_str(&format!("{}-{}", sent, sent + len - 1)).expect("ascii"),
            );
            let resp = self
                .send_stream(Method::PATCH, location.clone(), scope, headers, part, len)
                .await?;
            if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
                return Err(self.fail("PATCH", &location, what, resp).await);
            }
            location = self.location(&location, &resp)?;
            sent += len;
        }
        Ok(location)
    }

    /// Sends a streamed blob body of `total` bytes, failing it when the registry takes less than
    /// [`deadline::MIN_RATE`] over a window.
    async fn send_stream<S>(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        headers: HeaderMap,
        stream: S,
        total: u64,
    ) -> Result<Response>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let counter = Arc::new(AtomicU64::new(0));
        let body = reqwest::Body::wrap_stream(deadline::counted(stream, counter.clone()));
        let send = self.send_body(method.clone(), url.clone(), scope, headers, body, false);
        deadline::watch_upload(send, counter, total, method.as_str(), url.as_str()).await
    }
}

/// A stream of exactly `len` bytes taken from `shared` (whose items never straddle the boundary).
fn take_stream<S>(
    shared: Arc<Mutex<S>>,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold((shared, 0u64), move |(shared, taken)| async move {
        use futures_util::StreamExt;
        if taken >= len {
            return None;
        }
        let item = shared.lock().await.next().await;
        match item {
            Some(Ok(b)) => {
                let n = b.len() as u64;
                Some((Ok(b), (shared, taken + n)))
            }
            Some(Err(e)) => Some((Err(e), (shared, len))),
            None => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob source ended early",
                )),
                (shared, len),
            )),
        }
    })
}
