//! Signing and sending one request: SigV4 headers, the `--log-http` trace, retries with backoff
//! for requests without a streamed body, and a single attempt for streamed uploads (a stream
//! cannot be replayed, so the caller retries with a fresh one).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::error::{connect_error, Result};
use super::region;
use super::sigv4::{self, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use super::Client;
use crate::http;

/// Attempts of one bodiless request.
const ATTEMPTS: u32 = 4;

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt)).min(Duration::from_secs(10))
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
    /// The signed headers for one attempt, plus `extra` (which are signed too).
    fn signed_headers(
        &self,
        method: &Method,
        url: &Url,
        extra: &[(&'static str, String)],
        payload_hash: &str,
    ) -> HeaderMap {
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signed = self.signer.sign_in(
            &self.region.current(),
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
    /// 408/429/5xx, and once more signed for the region the server names when it refused ours
    /// ([`region`]). `extra` headers are lower-case and signed.
    pub(super) async fn send(
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
        let mut region_retried = false;
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
                    if resp.status().is_success() {
                        self.region.confirm();
                    }
                    if region_retried || !region::may_name_region(resp.status().as_u16()) {
                        return Ok(resp);
                    }
                    let (resp, named) = Self::named_region(&method, resp).await;
                    match named {
                        Some(r) if self.region.learn(&r) => region_retried = true,
                        _ => return Ok(resp),
                    }
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

    /// The region a refused answer names, and the answer itself (rebuilt when its error body was
    /// read for it, so that the caller still sees the whole error).
    async fn named_region(method: &Method, resp: Response) -> (Response, Option<String>) {
        if let Some(r) = region::named(super::client::header(&resp, "x-amz-bucket-region"), "") {
            return (resp, Some(r));
        }
        if method == Method::HEAD {
            return (resp, None);
        }
        let (status, version, headers) = (resp.status(), resp.version(), resp.headers().clone());
        let body = crate::bounded::response_prefix(resp, crate::bounded::ERROR_BODY).await;
        let named = region::named(None, &String::from_utf8_lossy(&body));
        let mut rebuilt = ::http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        (Response::from(rebuilt), named)
    }

    /// Learns the region from the bucket's location when nothing has confirmed the current one
    /// yet: call it before a single-PUT upload ([`Client::put_object`]), whose streamed body
    /// cannot be sent twice; the client does after a HEAD refused without a body to say why.
    /// Whether the region changed.
    pub async fn settle_region(&self, bucket: &str) -> Result<bool> {
        if self.region.confirmed() {
            return Ok(false);
        }
        let before = self.region.current();
        let url = self.url(bucket, None, &[("location", "")])?;
        // Any answer will do: a refusal that names a region was learned from in `send`.
        drop(self.send(Method::GET, &url, &[], None).await?);
        Ok(self.region.current() != before)
    }

    /// One request with a streamed body, signed as `UNSIGNED-PAYLOAD`, with the body's MD5 as
    /// `Content-MD5` when known (the server then refuses damaged bytes with `BadDigest`); sent
    /// once.
    pub(super) async fn send_stream<S>(
        &self,
        method: Method,
        url: &Url,
        body: Upload<S>,
    ) -> Result<Response>
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
        if resp.status().is_success() {
            self.region.confirm();
        }
        Ok(resp)
    }
}
