//! Whole objects: HEAD, streamed GETs (whole, ranged, pinned to an ETag), PUT (streamed or from
//! memory) and DELETE.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::client::{header, Target};
use super::deadline;
use super::error::{connect_error, Error, Result};
use super::object::{parse_content_range, parse_http_date, ObjectInfo};
use super::region;
use super::request::Upload;
use super::Client;
use crate::http;

/// A GET in progress: the object's metadata, which bytes the body holds, and the body.
#[derive(Debug)]
pub struct Download {
    /// The whole object (its full size, even for a range).
    pub info: ObjectInfo,
    /// Offset of the body's first byte in the object.
    pub start: u64,
    /// Bytes in the body.
    pub len: u64,
    pub response: Response,
    url: String,
}

impl Download {
    /// The body as a stream of chunks; a transport failure midway is an [`Error::Connect`] (resume
    /// with [`Client::get_range_if_match`] from the bytes received).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let url = self.url;
        self.response
            .bytes_stream()
            .map(move |r| r.map_err(|e| connect_error(&url, &e)))
    }
}

impl Client {
    /// Size, ETag and modification time of an object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let what = || format!("HEAD s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.head_object_once(bucket, key)).await
    }

    /// Uploads a small object held in memory, signed with its SHA-256 and retried like the other
    /// Size, ETag and modification time of an object.
    async fn head_object_once(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let url = self.url(bucket, Some(key), &[])?;
        let mut resp = self.send(Method::HEAD, &url, &[], None).await?;
        // A HEAD refusal has no body to name the region: ask the bucket's location, then again.
        if region::may_name_region(resp.status().as_u16()) && self.settle_region(bucket).await? {
            resp = self.send(Method::HEAD, &url, &[], None).await?;
        }
        let resp = self
            .success(&Method::HEAD, &url, Target::Object(bucket, key), resp)
            .await?;
        Ok(ObjectInfo {
            // The header, not `content_length()`: a HEAD answer's body is empty whatever the size.
            size: header(&resp, "content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Self::protocol(&url, "no Content-Length"))?,
            etag: Self::etag(&url, &resp)?,
            last_modified: header(&resp, "last-modified").and_then(parse_http_date),
        })
    }

    /// Starts downloading the whole object.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Download> {
        self.get(bucket, key, None, None).await
    }

    /// Starts downloading bytes `start..=end_inclusive` (clamped to the object's end by S3).
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> Result<Download> {
        self.get(bucket, key, Some((start, end_inclusive)), None)
            .await
    }

    /// [`Client::get_range`] that fails with [`Error::Changed`] unless the object still has `etag`
    /// (for resuming a download without splicing two versions).
    pub async fn get_range_if_match(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end_inclusive: u64,
        etag: &str,
    ) -> Result<Download> {
        self.get(bucket, key, Some((start, end_inclusive)), Some(etag))
            .await
    }

    /// The GET behind the three above: the headers within the deadline of small requests, the
    /// body left to the caller as a stream.
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, u64)>,
        if_match: Option<&str>,
    ) -> Result<Download> {
        let url = self.url(bucket, Some(key), &[])?;
        let mut extra = Vec::new();
        if let Some((a, b)) = range {
            if b < a {
                return Err(Error::InvalidRange {
                    bucket: bucket.into(),
                    key: key.into(),
                    range: format!("bytes={a}-{b}"),
                });
            }
            extra.push(("range", format!("bytes={a}-{b}")));
        }
        if let Some(e) = if_match {
            extra.push(("if-match", e.to_string()));
        }
        // The headers within the deadline of small requests; the body is a stream, watched by
        // the caller (`deadline::RateFloor`).
        let resp = deadline::within(
            self.deadline,
            || format!("GET s3://{bucket}/{}", crate::text::Escaped(key)),
            self.send(Method::GET, &url, &extra, None),
        )
        .await?;
        let status = resp.status();
        if status == StatusCode::PRECONDITION_FAILED && if_match.is_some() {
            return Err(Error::Changed {
                bucket: bucket.into(),
                key: key.into(),
                etag: if_match.unwrap_or_default().into(),
            });
        }
        if !status.is_success() {
            let err = self
                .fail(&Method::GET, &url, Target::Object(bucket, key), resp)
                .await;
            return Err(match (err, range) {
                (Error::InvalidRange { bucket, key, .. }, Some((a, b))) => Error::InvalidRange {
                    bucket,
                    key,
                    range: format!("bytes={a}-{b}"),
                },
                (e, _) => e,
            });
        }
        let (start, len, size) = Self::span(&url, &resp, range)?;
        let etag = Self::etag(&url, &resp)?;
        // Checked here too: some servers (s3s-fs) ignore If-Match on GET.
        if let Some(want) = if_match.filter(|w| *w != etag) {
            return Err(Error::Changed {
                bucket: bucket.into(),
                key: key.into(),
                etag: want.into(),
            });
        }
        Ok(Download {
            info: ObjectInfo {
                size,
                etag,
                last_modified: header(&resp, "last-modified").and_then(parse_http_date),
            },
            start,
            len,
            url: http::redact_url(url.as_str()),
            response: resp,
        })
    }

    /// Which bytes of the object the body holds (`start`, `len`) and the object's size, from the
    /// answer's headers; an answer that does not match the range asked for is refused.
    fn span(url: &Url, resp: &Response, range: Option<(u64, u64)>) -> Result<(u64, u64, u64)> {
        let len = header(resp, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Self::protocol(url, "no Content-Length"))?;
        let status = resp.status();
        let (start, size) = match (status, range) {
            (StatusCode::PARTIAL_CONTENT, Some((a, _))) => {
                let (s, e, total) = header(resp, "content-range")
                    .and_then(parse_content_range)
                    .ok_or_else(|| Self::protocol(url, "206 without a valid Content-Range"))?;
                if s != a || e + 1 - s != len {
                    return Err(Self::protocol(
                        url,
                        format!(
                            "asked for bytes from {a}, got Content-Range {s}-{e} of {len} bytes"
                        ),
                    ));
                }
                (s, total)
            }
            // The whole object: fine when that is what the range covers, else the server ignored it.
            (_, Some((a, b)))
                if status == StatusCode::OK && a == 0 && len <= b.saturating_add(1) =>
            {
                (0, len)
            }
            (_, Some(_)) => {
                return Err(Self::protocol(
                    url,
                    format!("the server ignored the Range header (HTTP {status})"),
                ))
            }
            (_, None) => (0, len),
        };
        Ok((start, len, size))
    }

    /// Uploads `body` as the object (one PUT, up to 5 GiB); returns its ETag. Sent once: on
    /// failure, call again with a fresh stream.
    pub async fn put_object<S>(&self, bucket: &str, key: &str, body: Upload<S>) -> Result<String>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send_stream(Method::PUT, &url, body).await?;
        let resp = self
            .success(&Method::PUT, &url, Target::Object(bucket, key), resp)
            .await?;
        Self::etag(&url, &resp)
    }

    /// Uploads a small object held in memory, signed with its SHA-256 and retried like the other
    /// bodiless requests; returns its ETag.
    pub async fn put_object_bytes(&self, bucket: &str, key: &str, body: Bytes) -> Result<String> {
        let what = || format!("PUT s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.put_object_bytes_once(bucket, key, body))
            .await
    }

    /// bodiless requests; returns its ETag.
    async fn put_object_bytes_once(&self, bucket: &str, key: &str, body: Bytes) -> Result<String> {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send(Method::PUT, &url, &[], Some(body)).await?;
        let resp = self
            .success(&Method::PUT, &url, Target::Object(bucket, key), resp)
            .await?;
        Self::etag(&url, &resp)
    }

    /// Deletes an object (S3 answers success for a missing key too).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let what = || format!("DELETE s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.delete_object_once(bucket, key)).await
    }
    /// Deletes an object (S3 answers success for a missing key too).
    async fn delete_object_once(&self, bucket: &str, key: &str) -> Result<()> {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send(Method::DELETE, &url, &[], None).await?;
        self.success(&Method::DELETE, &url, Target::Object(bucket, key), resp)
            .await?;
        Ok(())
    }
}
