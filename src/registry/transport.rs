//! The HTTP send loop of [`Client`]: one request, with retries and backoff on transport errors
//! and 408/429/5xx, the small-request deadline, `--log-http`, and the one 401 round that lets the
//! token dance ([`super::auth`]) learn a new challenge.
//!
//! Requests with a body cannot be replayed: they are authorized first and sent once; the caller
//! (an upload) starts again from its source.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::client::{Client, Scope};
use super::deadline;
use super::error::{connect_error, Error, Result};
use crate::bounded;
use crate::http;

/// How often a request is tried in all.
const ATTEMPTS: u32 = 4;

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(250 * 2u64.pow(attempt)))
        .min(Duration::from_secs(10))
}

fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Reads a whole small answer of at most `limit` bytes (see [`bounded`]), mapping a transfer
/// past the request's deadline to the error that names it.
pub(crate) async fn read_body(
    resp: Response,
    limit: u64,
    what: &str,
    method: &str,
) -> Result<Bytes> {
    let url = resp.url().to_string();
    bounded::response(resp, limit, what)
        .await
        .map_err(|e| match e {
            bounded::BodyError::TooLarge(t) => Error::Bounded(t),
            bounded::BodyError::Transport(e) if e.is_timeout() => deadline::too_long(method, &url),
            // The answer's headers came, so the handshake (and any certificate) was already accepted.
            bounded::BodyError::Transport(e) => connect_error(&url, &e, &[]),
        })
}

impl Client {
    /// One small request (its answer read whole, under [`deadline::request_timeout`]) with
    /// retries on transport errors and 408/429/5xx. No auth handling.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
    ) -> Result<Response> {
        self.send_raw_with(method, url, headers, true).await
    }

    /// [`Client::send_raw`]; `small: false` for blob streams, which the caller reads under a
    /// rate floor instead of a deadline.
    async fn send_raw_with(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        small: bool,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            if self.log_http {
                http::log_exchange(method.as_str(), url.as_str(), None, &headers);
            }
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if small {
                req = req.timeout(deadline::request_timeout());
            }
            match req.send().await {
                Ok(resp) => {
                    self.log_answer(&method, &url, &resp);
                    if retryable(resp.status()) && attempt + 1 < ATTEMPTS {
                        let wait = backoff(attempt, retry_after(&resp));
                        crate::debug::log(format_args!(
                            "{method} {}: HTTP {} (attempt {} of {ATTEMPTS}); retrying in {} ms",
                            http::redact_url(url.as_str()),
                            resp.status().as_u16(),
                            attempt + 1,
                            wait.as_millis()
                        ));
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) if small && e.is_timeout() && !e.is_connect() => {
                    return Err(deadline::too_long(method.as_str(), url.as_str()));
                }
                Err(e) => {
                    // A refused connection or a TLS failure will not heal by retrying.
                    let permanent = crate::http::is_permanent(&e);
                    if permanent || attempt + 1 >= ATTEMPTS {
                        return Err(connect_error(url.as_str(), &e, &self.ca_files));
                    }
                    let wait = backoff(attempt, None);
                    crate::debug::log(format_args!(
                        "{method} {}: {} (attempt {} of {ATTEMPTS}); retrying in {} ms",
                        http::redact_url(url.as_str()),
                        http::error_chain(&e),
                        attempt + 1,
                        wait.as_millis()
                    ));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One small request with a body and no token dance (Harbor's REST API takes Basic auth in
    /// `headers`), sent once under the small-request deadline: a POST that creates something is
    /// not replayed blindly.
    pub(crate) async fn send_raw_body(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response> {
        if self.log_http {
            http::log_exchange(method.as_str(), url.as_str(), None, &headers);
        }
        let resp = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(body)
            .timeout(deadline::request_timeout())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() && !e.is_connect() {
                    deadline::too_long(method.as_str(), url.as_str())
                } else {
                    connect_error(url.as_str(), &e, &self.ca_files)
                }
            })?;
        self.log_answer(&method, &url, &resp);
        Ok(resp)
    }

    /// `--log-http`: the answer's status and headers (redacted).
    pub(super) fn log_answer(&self, method: &Method, url: &Url, resp: &Response) {
        if self.log_http {
            http::log_exchange(
                method.as_str(),
                url.as_str(),
                Some(resp.status().as_u16()),
                resp.headers(),
            );
        }
    }

    /// An authenticated small request without a body. A 401 drops the cached token and retries
    /// once (the registry may have asked for another scope or the token expired).
    pub(crate) async fn request(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        headers: HeaderMap,
    ) -> Result<Response> {
        self.request_with(method, url, scope, headers, true).await
    }

    /// [`Client::request`]; `small: false` for blob streams (see [`Client::send_raw_with`]).
    pub(crate) async fn request_with(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
        small: bool,
    ) -> Result<Response> {
        for round in 0..2 {
            self.authorize(&url, scope, &mut headers).await?;
            let resp = self
                .send_raw_with(method.clone(), url.clone(), headers.clone(), small)
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED && round == 0 {
                self.learn_challenge(&resp, scope).await;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns in its second round")
    }

    /// Sends a request with a body. The body cannot be replayed, so auth is settled first; a 401
    /// here is reported, and the caller restarts the upload. A small body (a manifest) gets the
    /// small-request deadline; a streamed blob (`small: false`) is watched by
    /// [`Client::upload`] instead.
    pub(crate) async fn send_body(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
        body: reqwest::Body,
        small: bool,
    ) -> Result<Response> {
        self.authorize(&url, scope, &mut headers).await?;
        if self.log_http {
            http::log_exchange(method.as_str(), url.as_str(), None, &headers);
        }
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(body);
        if small {
            req = req.timeout(deadline::request_timeout());
        }
        let resp = req.send().await.map_err(|e| {
            if small && e.is_timeout() && !e.is_connect() {
                deadline::too_long(method.as_str(), url.as_str())
            } else {
                connect_error(url.as_str(), &e, &self.ca_files)
            }
        })?;
        self.log_answer(&method, &url, &resp);
        Ok(resp)
    }
}
