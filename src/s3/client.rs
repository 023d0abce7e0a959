//! An S3 client for one endpoint with path-style addressing (`endpoint/bucket/key`), signing every
//! request with SigV4: object HEAD, whole and ranged streaming GETs, streamed PUTs, multipart
//! upload (create, part, complete, abort), ListObjectsV2 pages and DELETE.
//!
//! Bodies are never held in memory: downloads are handed out as response streams (a failed
//! transfer resumes with [`Client::get_range`], optionally pinned to the ETag), uploads take a
//! stream sent as `UNSIGNED-PAYLOAD`. Requests without a streamed body are retried with backoff on
//! 408/429/5xx and transport errors; a streamed body cannot be replayed, so its caller retries
//! (one part, for multipart). It runs on the project's reqwest/rustls client ([`crate::http`]) so
//! custom CAs, `--insecure` and `--log-http` behave as for registries.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::deadline;
use super::error::{connect_error, Error, Result};
use super::object::{
    check_bucket, complete_body, key_path, parse_content_range, parse_http_date, parse_list,
    CompletedPart, ListPage, ListQuery, ObjectInfo,
};
use super::sigv4::{self, Signer, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use super::xml;
use crate::bounded;
use crate::http::{self, TlsOptions};
use crate::secret::Secret;

/// The region signed for when none is configured (what S3-compatible servers expect).
pub const DEFAULT_REGION: &str = "us-east-1";
const ATTEMPTS: u32 = 4;

/// An S3 endpoint with one pair of keys.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The endpoint without a trailing `/`, e.g. `https://s3.example:9000`.
    base: String,
    signer: Signer,
    log_http: bool,
    /// The overall deadline of each small request ([`deadline::request_timeout`]).
    deadline: Duration,
}

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

/// What a request is about, for error messages and the mapping of S3 error codes.
#[derive(Clone, Copy)]
enum Target<'a> {
    Bucket(&'a str),
    Object(&'a str, &'a str),
    Upload(&'a str, &'a str, &'a str),
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt)).min(Duration::from_secs(10))
}

/// Whether a transport error will not heal by retrying (refused connection, bad certificate).
fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A streamed request body for [`Client::put_object`] and [`Client::upload_part`].
pub struct Upload<S> {
    /// Exactly `len` bytes.
    pub stream: S,
    pub len: u64,
    /// The MD5 of the bytes, sent as `Content-MD5`; `None` sends none.
    pub md5: Option<[u8; 16]>,
}

impl Client {
    /// A client for `endpoint` (`http(s)://host[:port][/path]`), signing with the keys for `region`
    /// ([`DEFAULT_REGION`] when `None`). Nothing is sent yet.
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: Secret,
        region: Option<&str>,
        tls: &TlsOptions,
    ) -> Result<Client> {
        let bad = |reason: &str| Error::Endpoint {
            endpoint: endpoint.into(),
            reason: reason.into(),
        };
        let url = Url::parse(endpoint).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme is http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("an endpoint has no user, query or fragment"));
        }
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(bad("no S3 keys: run `gdcloud storage configure`"));
        }
        Ok(Client {
            http: http::client(tls)?,
            base: url.as_str().trim_end_matches('/').to_string(),
            signer: Signer {
                access_key: access_key.to_string(),
                secret_key,
                region: region
                    .filter(|r| !r.is_empty())
                    .unwrap_or(DEFAULT_REGION)
                    .to_string(),
            },
            log_http: tls.log_http,
            deadline: deadline::request_timeout(),
        })
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    fn url(&self, bucket: &str, key: Option<&str>, query: &[(&str, &str)]) -> Result<Url> {
        check_bucket(bucket)?;
        let mut s = format!("{}/{}", self.base, sigv4::encode(bucket));
        if let Some(k) = key {
            s.push('/');
            s.push_str(&key_path(k)?);
        }
        if !query.is_empty() {
            let mut q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", sigv4::encode(k), sigv4::encode(v)))
                .collect();
            q.sort();
            s.push('?');
            s.push_str(&q.join("&"));
        }
        Url::parse(&s).map_err(|_| Error::Name {
            name: key.unwrap_or(bucket).to_string(),
            reason: "does not form a valid URL",
        })
    }

    /// The signed headers for one attempt, plus `extra` (which are signed too).
    fn signed_headers(
        &self,
        method: &Method,
        url: &Url,
        extra: &[(&'static str, String)],
        payload_hash: &str,
    ) -> HeaderMap {
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signed = self.signer.sign(
            method.as_str(),
            url,
            &pairs,
            payload_hash,
            SystemTime::now(),
        );
        let mut h = HeaderMap::new();
        for (k, v) in extra {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(HeaderName::from_static(k), v);
            }
        }
        let value = |s: &str| HeaderValue::from_str(s).expect("signature headers are ASCII");
        h.insert(AUTHORIZATION, value(&signed.authorization));
        h.insert("x-amz-date", value(&signed.amz_date));
        h.insert("x-amz-content-sha256", value(&signed.content_sha256));
        h
    }

    fn log(&self, method: &Method, url: &Url, status: Option<u16>, headers: &HeaderMap) {
        if self.log_http {
            http::log_exchange(method.as_str(), url.as_str(), status, headers);
        }
    }

    /// One request with a small (or no) body, re-signed and retried on transport errors and
    /// 408/429/5xx. `extra` headers are lower-case and signed.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        extra: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<Response> {
        let hash = body
            .as_deref()
            .map_or_else(|| EMPTY_SHA256.to_string(), sigv4::payload_hash);
        let mut attempt = 0;
        loop {
            let headers = self.signed_headers(&method, url, extra, &hash);
            self.log(&method, url, None, &headers);
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers);
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            match req.send().await {
                Ok(resp) => {
                    self.log(&method, url, Some(resp.status().as_u16()), resp.headers());
                    if retryable(resp.status()) && attempt + 1 < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    if crate::http::is_permanent(&e) || attempt + 1 >= ATTEMPTS {
                        return Err(connect_error(url.as_str(), &e));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One request with a streamed body, signed as `UNSIGNED-PAYLOAD`, with the body's MD5 as
    /// `Content-MD5` when known (the server then refuses damaged bytes with `BadDigest`); sent
    /// once.
    async fn send_stream<S>(&self, method: Method, url: &Url, body: Upload<S>) -> Result<Response>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        use base64::Engine as _;
        let Upload { stream, len, md5 } = body;
        let extra: Vec<(&'static str, String)> = md5
            .map(|m| {
                (
                    "content-md5",
                    base64::engine::general_purpose::STANDARD.encode(m),
                )
            })
            .into_iter()
            .collect();
        let mut headers = self.signed_headers(&method, url, &extra, UNSIGNED_PAYLOAD);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        self.log(&method, url, None, &headers);
        let resp = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| connect_error(url.as_str(), &e))?;
        self.log(&method, url, Some(resp.status().as_u16()), resp.headers());
        Ok(resp)
    }

    /// Reads an XML answer (a listing page, an upload id) whole, at most [`bounded::LISTING`]
    /// bytes: a server that sends more is refused before it costs memory.
    async fn small_text(url: &Url, resp: Response) -> Result<String> {
        let what = format!("the answer from {}", http::redact_url(url.as_str()));
        match bounded::response(resp, bounded::LISTING, &what).await {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(bounded::BodyError::TooLarge(e)) => Err(Self::protocol(url, e.to_string())),
            Err(bounded::BodyError::Transport(e)) => Err(connect_error(url.as_str(), &e)),
        }
    }

    /// Maps a failed answer to our error, from S3's error document when there is one.
    async fn fail(&self, method: &Method, url: &Url, target: Target<'_>, resp: Response) -> Error {
        let status = resp.status();
        let body = bounded::response_prefix(resp, bounded::ERROR_BODY).await;
        self.classify(method, url, target, status, &String::from_utf8_lossy(&body))
    }

    fn classify(
        &self,
        method: &Method,
        url: &Url,
        target: Target<'_>,
        status: StatusCode,
        body: &str,
    ) -> Error {
        // What the server says is shown, never obeyed: control characters made visible.
        let (code, message) = xml::error(body).unwrap_or_default();
        let (code, message) = (
            crate::text::escape(&code).into_owned(),
            crate::text::escape(&message).into_owned(),
        );
        let (bucket, key, upload) = match target {
            Target::Bucket(b) => (b, None, None),
            Target::Object(b, k) => (b, Some(k), None),
            Target::Upload(b, k, u) => (b, Some(k), Some(u)),
        };
        let what = match key {
            Some(k) => format!("s3://{bucket}/{}", crate::text::Escaped(k)),
            None => format!("bucket {bucket}"),
        };
        let code_or = |fallback: &str| {
            if code.is_empty() {
                fallback.to_string()
            } else {
                code.clone()
            }
        };
        match (code.as_str(), status.as_u16()) {
            ("NoSuchKey", _) | ("", 404) if key.is_some() && upload.is_none() => Error::NoSuchKey {
                bucket: bucket.into(),
                key: key.unwrap_or_default().into(),
            },
            ("NoSuchUpload", _) | ("", 404) if upload.is_some() => Error::NoSuchUpload {
                bucket: bucket.into(),
                key: key.unwrap_or_default().into(),
                upload_id: upload.unwrap_or_default().into(),
            },
            ("NoSuchBucket", _) | ("", 404) => Error::NoSuchBucket {
                bucket: bucket.into(),
                endpoint: self.base.clone(),
            },
            ("RequestTimeTooSkewed", _) => Error::ClockSkew {
                endpoint: self.base.clone(),
                code,
            },
            (
                "AccessDenied"
                | "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "InvalidToken"
                | "ExpiredToken"
                | "AuthorizationHeaderMalformed",
                _,
            )
            | ("", 401 | 403) => Error::Refused {
                endpoint: self.base.clone(),
                what,
                code: code_or(&format!("HTTP {}", status.as_u16())),
            },
            ("BadDigest", _) => Error::BadDigest {
                endpoint: self.base.clone(),
                what,
            },
            ("InvalidRange", _) | ("", 416) => Error::InvalidRange {
                bucket: bucket.into(),
                key: key.unwrap_or_default().into(),
                range: "requested".into(),
            },
            _ => Error::Service {
                method: method.to_string(),
                url: http::redact_url(url.as_str()),
                status: status.as_u16(),
                code: if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code})")
                },
                message: if message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    message
                },
            },
        }
    }

    fn protocol(url: &Url, reason: impl Into<String>) -> Error {
        Error::Protocol {
            url: http::redact_url(url.as_str()),
            reason: reason.into(),
        }
    }

    fn etag(url: &Url, resp: &Response) -> Result<String> {
        header(resp, "etag")
            .map(str::to_string)
            .ok_or_else(|| Self::protocol(url, "no ETag header"))
    }

    /// Size, ETag and modification time of an object.
    async fn head_object_once(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send(Method::HEAD, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::HEAD, &url, Target::Object(bucket, key), resp)
                .await);
        }
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
        let len = header(&resp, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Self::protocol(&url, "no Content-Length"))?;
        let (start, size) = match (status, range) {
            (StatusCode::PARTIAL_CONTENT, Some((a, _))) => {
                let (s, e, total) = header(&resp, "content-range")
                    .and_then(parse_content_range)
                    .ok_or_else(|| Self::protocol(&url, "206 without a valid Content-Range"))?;
                if s != a || e + 1 - s != len {
                    return Err(Self::protocol(
                        &url,
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
                    &url,
                    format!("the server ignored the Range header (HTTP {status})"),
                ))
            }
            (_, None) => (0, len),
        };
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

    /// Uploads `body` as the object (one PUT, up to 5 GiB); returns its ETag. Sent once: on
    /// failure, call again with a fresh stream.
    pub async fn put_object<S>(&self, bucket: &str, key: &str, body: Upload<S>) -> Result<String>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send_stream(Method::PUT, &url, body).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::PUT, &url, Target::Object(bucket, key), resp)
                .await);
        }
        Self::etag(&url, &resp)
    }

    /// Uploads a small object held in memory, signed with its SHA-256 and retried like the other
    /// bodiless requests; returns its ETag.
    async fn put_object_bytes_once(&self, bucket: &str, key: &str, body: Bytes) -> Result<String> {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send(Method::PUT, &url, &[], Some(body)).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::PUT, &url, Target::Object(bucket, key), resp)
                .await);
        }
        Self::etag(&url, &resp)
    }

    /// Starts a multipart upload; returns its upload id.
    async fn create_multipart_once(&self, bucket: &str, key: &str) -> Result<String> {
        let url = self.url(bucket, Some(key), &[("uploads", "")])?;
        let resp = self.send(Method::POST, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::POST, &url, Target::Object(bucket, key), resp)
                .await);
        }
        let body = Self::small_text(&url, resp).await?;
        xml::text(&body, "UploadId")
            .filter(|u| !u.is_empty())
            .map(|u| u.into_owned())
            .ok_or_else(|| Self::protocol(&url, "no <UploadId> in the answer"))
    }

    /// Uploads `body` as part `part_number` (1–10000; all but the last at least 5 MiB); returns
    /// its ETag for [`Client::complete_multipart`]. Sent once: on failure, send the part again
    /// from its source.
    pub async fn upload_part<S>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Upload<S>,
    ) -> Result<String>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let n = part_number.to_string();
        let url = self.url(
            bucket,
            Some(key),
            &[("partNumber", &n), ("uploadId", upload_id)],
        )?;
        let resp = self.send_stream(Method::PUT, &url, body).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(
                    &Method::PUT,
                    &url,
                    Target::Upload(bucket, key, upload_id),
                    resp,
                )
                .await);
        }
        Self::etag(&url, &resp)
    }

    /// Assembles the object from `parts` (in part-number order); returns its ETag. S3 may answer
    /// 200 with an error document here, which is reported as the error it holds.
    async fn complete_multipart_once(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String> {
        let url = self.url(bucket, Some(key), &[("uploadId", upload_id)])?;
        let body = Bytes::from(complete_body(parts));
        let extra = [("content-type", "application/xml".to_string())];
        let resp = self.send(Method::POST, &url, &extra, Some(body)).await?;
        let target = Target::Upload(bucket, key, upload_id);
        if !resp.status().is_success() {
            return Err(self.fail(&Method::POST, &url, target, resp).await);
        }
        let status = resp.status();
        let text = Self::small_text(&url, resp).await?;
        if xml::error(&text).is_some() {
            return Err(self.classify(&Method::POST, &url, target, status, &text));
        }
        xml::text(&text, "ETag")
            .map(|e| e.into_owned())
            .ok_or_else(|| Self::protocol(&url, "no <ETag> in CompleteMultipartUploadResult"))
    }

    /// Abandons a multipart upload and frees its parts.
    async fn abort_multipart_once(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let url = self.url(bucket, Some(key), &[("uploadId", upload_id)])?;
        let resp = self.send(Method::DELETE, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(
                    &Method::DELETE,
                    &url,
                    Target::Upload(bucket, key, upload_id),
                    resp,
                )
                .await);
        }
        Ok(())
    }

    /// One page of ListObjectsV2.
    async fn list_objects_v2_once(&self, bucket: &str, q: &ListQuery<'_>) -> Result<ListPage> {
        let max = q.max_keys.map(|m| m.to_string());
        let mut query = vec![("list-type", "2")];
        if !q.prefix.is_empty() {
            query.push(("prefix", q.prefix));
        }
        if let Some(d) = q.delimiter.filter(|d| !d.is_empty()) {
            query.push(("delimiter", d));
        }
        if let Some(t) = q.continuation.filter(|t| !t.is_empty()) {
            query.push(("continuation-token", t));
        }
        if let Some(m) = &max {
            query.push(("max-keys", m));
        }
        let url = self.url(bucket, None, &query)?;
        let resp = self.send(Method::GET, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::GET, &url, Target::Bucket(bucket), resp)
                .await);
        }
        let body = Self::small_text(&url, resp).await?;
        parse_list(&body).map_err(|reason| Self::protocol(&url, reason))
    }

    /// Deletes an object (S3 answers success for a missing key too).
    async fn delete_object_once(&self, bucket: &str, key: &str) -> Result<()> {
        let url = self.url(bucket, Some(key), &[])?;
        let resp = self.send(Method::DELETE, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&Method::DELETE, &url, Target::Object(bucket, key), resp)
                .await);
        }
        Ok(())
    }

    /// Runs one small request within [`Client`]'s deadline; `what` names it in the error.
    async fn small<T>(
        &self,
        what: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        deadline::within(self.deadline, what, fut).await
    }

    /// Size, ETag and modification time of an object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let what = || format!("HEAD s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.head_object_once(bucket, key)).await
    }

    /// Uploads a small object held in memory, signed with its SHA-256 and retried like the other
    /// bodiless requests; returns its ETag.
    pub async fn put_object_bytes(&self, bucket: &str, key: &str, body: Bytes) -> Result<String> {
        let what = || format!("PUT s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.put_object_bytes_once(bucket, key, body))
            .await
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String> {
        let what = || {
            format!(
                "starting the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        self.small(what, self.create_multipart_once(bucket, key))
            .await
    }

    /// Assembles the object from `parts` (in part-number order); returns its ETag. S3 may answer
    /// 200 with an error document here, which is reported as the error it holds.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String> {
        let what = || {
            format!(
                "completing the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        // S3 may take minutes to assemble a large object (it keeps the connection alive with
        // blanks meanwhile): five deadlines for this one.
        let fut = self.complete_multipart_once(bucket, key, upload_id, parts);
        deadline::within(self.deadline * 5, what, fut).await
    }

    /// Abandons a multipart upload and frees its parts.
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let what = || {
            format!(
                "aborting the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        self.small(what, self.abort_multipart_once(bucket, key, upload_id))
            .await
    }

    /// One page of ListObjectsV2 (at most [`bounded::LISTING`] bytes).
    pub async fn list_objects_v2(&self, bucket: &str, q: &ListQuery<'_>) -> Result<ListPage> {
        let what = || format!("listing s3://{bucket}/{}", crate::text::Escaped(q.prefix));
        self.small(what, self.list_objects_v2_once(bucket, q)).await
    }

    /// Deletes an object (S3 answers success for a missing key too).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let what = || format!("DELETE s3://{bucket}/{}", crate::text::Escaped(key));
        self.small(what, self.delete_object_once(bucket, key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(
            "http://127.0.0.1:9000/",
            "AK",
            Secret::new("s3cr3t-value"),
            None,
            &TlsOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn urls_encode_keys_path_style() {
        let c = client();
        let u = c.url("b", Some("dir/a b+c€~.txt"), &[]).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9000/b/dir/a%20b%2Bc%E2%82%AC~.txt"
        );
        assert_eq!(sigv4::canonical_uri(&u), "/b/dir/a%20b%2Bc%E2%82%AC~.txt");
        let u = c
            .url("b", None, &[("prefix", "x/y z"), ("list-type", "2")])
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9000/b?list-type=2&prefix=x%2Fy%20z"
        );
        assert!(c.url("b", Some("a/../c"), &[]).is_err());
        assert!(c.url("b", Some(""), &[]).is_err());
        assert!(c.url("a/b", Some("k"), &[]).is_err());
        assert!(Client::new(
            "ftp://h",
            "a",
            Secret::new("s"),
            None,
            &TlsOptions::default()
        )
        .is_err());
    }

    #[test]
    fn errors_are_classified() {
        let c = client();
        let url = c.url("b", Some("k"), &[]).unwrap();
        let doc = |code: &str| {
            format!("<Error><Code>{code}</Code><Message>msg &amp; more</Message></Error>")
        };
        let classify = |t, s: u16, body: &str| {
            c.classify(
                &Method::GET,
                &url,
                t,
                StatusCode::from_u16(s).unwrap(),
                body,
            )
        };
        let obj = Target::Object("b", "k");
        assert!(matches!(
            classify(obj, 404, &doc("NoSuchKey")),
            Error::NoSuchKey { .. }
        ));
        assert!(matches!(classify(obj, 404, ""), Error::NoSuchKey { .. }));
        assert!(matches!(
            classify(obj, 404, &doc("NoSuchBucket")),
            Error::NoSuchBucket { .. }
        ));
        let refused = classify(obj, 403, &doc("SignatureDoesNotMatch"));
        assert!(matches!(refused, Error::Refused { .. }));
        let msg = refused.to_string();
        assert!(msg.contains("gdcloud storage configure"), "{msg}");
        assert!(!msg.contains("s3cr3t") && !format!("{c:?}").contains("s3cr3t"));
        assert!(matches!(classify(obj, 403, ""), Error::Refused { .. }));
        assert!(matches!(
            classify(Target::Upload("b", "k", "u"), 404, &doc("NoSuchUpload")),
            Error::NoSuchUpload { .. }
        ));
        let other = classify(obj, 500, &doc("InternalError")).to_string();
        assert!(other.contains("(InternalError): msg & more"), "{other}");
    }
}
