//! An S3 client for one endpoint with path-style addressing (`endpoint/bucket/key`), signing every
//! request with SigV4. This file holds the client itself and what every request shares (URLs, the
//! deadline of small requests, reading small answers); the requests live beside it by seam:
//! `request` signs and sends, `failure` maps failed answers to [`Error`], `objects` HEADs, GETs,
//! PUTs and DELETEs objects, `multipart` runs multipart uploads and `listing` ListObjectsV2.
//!
//! Bodies are never held in memory: downloads are handed out as response streams (a failed
//! transfer resumes with [`Client::get_range`], optionally pinned to the ETag), uploads take a
//! stream sent as `UNSIGNED-PAYLOAD`. Requests without a streamed body are retried with backoff on
//! 408/429/5xx and transport errors; a streamed body cannot be replayed, so its caller retries
//! (one part, for multipart). It runs on the project's reqwest/rustls client ([`crate::http`]) so
//! custom CAs, `--insecure` and `--log-http` behave as for registries.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Response;
use url::Url;

use super::addressing::{self, Addressing};
use super::deadline;
use super::error::{connect_error, Error, Result};
use super::object::{check_bucket, key_path};
use super::region;
use super::sigv4::{self, Signer};
use crate::bounded;
use crate::http::{self, TlsOptions};
use crate::secret::Secret;

pub use super::region::DEFAULT_REGION;

/// An S3 endpoint with one pair of keys.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    /// The endpoint without a trailing `/`, e.g. `https://s3.example:9000`.
    pub(super) base: String,
    /// The same, parsed.
    base_url: Url,
    /// Where the bucket goes in URLs.
    addressing: Addressing,
    pub(super) signer: Signer,
    /// The region signed for: configured, or learned from the server ([`region`]).
    pub(super) region: Arc<region::State>,
    pub(super) log_http: bool,
    /// The overall deadline of each small request ([`deadline::request_timeout`]).
    pub(super) deadline: Duration,
}

/// What a request is about, for error messages and the mapping of S3 error codes.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Bucket(&'a str),
    Object(&'a str, &'a str),
    Upload(&'a str, &'a str, &'a str),
}

/// A header's value, when it is there and readable.
pub(super) fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Client {
    /// A client for `endpoint` (`http(s)://host[:port][/path]`), signing with the keys for `region`
    /// ([`DEFAULT_REGION`] when `None`) until the server names another. Nothing is sent yet.
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
            base_url: url,
            addressing: Addressing::Path,
            signer: Signer {
                access_key: access_key.to_string(),
                secret_key,
                region: region
                    .filter(|r| !r.is_empty())
                    .unwrap_or(DEFAULT_REGION)
                    .to_string(),
            },
            region: Arc::new(region::State::new(region)),
            log_http: tls.log_http,
            deadline: deadline::request_timeout(),
        })
    }

    /// This client with the bucket in the host where `addressing` says so; names under
    /// `localhost` then resolve to the loopback addresses ([`addressing::LoopbackNames`]).
    pub fn with_addressing(mut self, addressing: Addressing, tls: &TlsOptions) -> Result<Client> {
        if addressing != Addressing::Path {
            self.http = http::builder(tls)?
                .dns_resolver(std::sync::Arc::new(addressing::LoopbackNames))
                .build()
                .map_err(|e| http::Error::Build(e.to_string()))?;
        }
        self.addressing = addressing;
        Ok(self)
    }

    /// The region requests are signed for now.
    pub fn region(&self) -> String {
        self.region.current()
    }

    /// The region the server named, when it was not the configured one: the command says so.
    pub fn learned_region(&self) -> Option<String> {
        self.region.learned()
    }

    /// The URL of a bucket or an object (bucket in the path or in the host, as the addressing
    /// style says), its query sorted as SigV4 signs it.
    pub(super) fn url(
        &self,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<Url> {
        check_bucket(bucket)?;
        let mut s = if self.addressing.in_host(&self.base_url, bucket) {
            let bad = || Error::Name {
                name: bucket.to_string(),
                reason: "cannot be a host name: set storage/s3_addressing_style to path",
            };
            if !addressing::dns_label(bucket, false) {
                return Err(bad());
            }
            let host = addressing::with_bucket_host(&self.base_url, bucket).ok_or_else(bad)?;
            let mut h = host.as_str().trim_end_matches('/').to_string();
            if key.is_none() {
                h.push('/');
            }
            h
        } else {
            format!("{}/{}", self.base, sigv4::encode(bucket))
        };
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

    /// Reads an XML answer (a listing page, an upload id) whole, at most [`bounded::LISTING`]
    /// bytes: a server that sends more is refused before it costs memory.
    pub(super) async fn small_text(url: &Url, resp: Response) -> Result<String> {
        let what = format!("the answer from {}", http::redact_url(url.as_str()));
        match bounded::response(resp, bounded::LISTING, &what).await {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(bounded::BodyError::TooLarge(e)) => Err(Self::protocol(url, e.to_string())),
            Err(bounded::BodyError::Transport(e)) => Err(connect_error(url.as_str(), &e)),
        }
    }

    pub(super) fn protocol(url: &Url, reason: impl Into<String>) -> Error {
        Error::Protocol {
            url: http::redact_url(url.as_str()),
            reason: reason.into(),
        }
    }

    pub(super) fn etag(url: &Url, resp: &Response) -> Result<String> {
        header(resp, "etag")
            .map(str::to_string)
            .ok_or_else(|| Self::protocol(url, "no ETag header"))
    }

    /// Runs one small request within [`Client`]'s deadline; `what` names it in the error.
    pub(super) async fn small<T>(
        &self,
        what: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        deadline::within(self.deadline, what, fut).await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client that sends nothing: for the pure parts (URLs, error mapping).
    pub(in crate::s3) fn client() -> Client {
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
        let v = Client::new(
            "http://localhost:9000/",
            "AK",
            Secret::new("s"),
            None,
            &TlsOptions::default(),
        )
        .unwrap()
        .with_addressing(Addressing::Virtual, &TlsOptions::default())
        .unwrap();
        assert_eq!(
            v.url("bk1", Some("dir/a b"), &[]).unwrap().as_str(),
            "http://bk1.localhost:9000/dir/a%20b"
        );
        assert_eq!(
            v.url("bk1", None, &[("list-type", "2")]).unwrap().as_str(),
            "http://bk1.localhost:9000/?list-type=2"
        );
        assert!(v.url("Upper_Case", Some("k"), &[]).is_err());
        assert!(Client::new(
            "ftp://h",
            "a",
            Secret::new("s"),
            None,
            &TlsOptions::default()
        )
        .is_err());
    }
}
