//! What can go wrong talking to S3, each variant naming the bucket, key or URL and saying what to
//! do. S3's XML error codes map onto these variants; no variant ever carries the secret key (S3's
//! own messages do not hold it, and URLs pass through [`crate::http::redact_url`]). Keys come from
//! the server and may hold control characters: messages show them through [`Escaped`].

use crate::text::Escaped;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot reach {url}: {detail}{hint}")]
    Connect {
        url: String,
        detail: String,
        hint: &'static str,
    },
    #[error("the S3 keys were refused by {endpoint} for {what} ({code}): run `gdcloud storage configure`")]
    Refused {
        endpoint: String,
        what: String,
        code: String,
    },
    #[error("{endpoint} refused {what}: it was signed for region {signed}, and the endpoint expects {}: set storage/s3_region (`gdcloud config set storage/s3_region REGION`, or GDCLOUD_STORAGE_S3_REGION)", wanted.as_deref().unwrap_or("another region"))]
    Region {
        endpoint: String,
        what: String,
        signed: String,
        wanted: Option<String>,
    },
    #[error("{what}: the bytes {endpoint} received do not match the MD5 sent with them (BadDigest): they were changed on the way (a proxy, the network, or the file changed while it was read); run the copy again")]
    BadDigest { endpoint: String, what: String },
    #[error("{endpoint} rejected the request time ({code}): set this machine's clock right (NTP)")]
    ClockSkew { endpoint: String, code: String },
    #[error(
        "no such object: s3://{bucket}/{}: check the key (`gdcloud storage ls` lists them)", Escaped(.key)
    )]
    NoSuchKey { bucket: String, key: String },
    #[error("no such bucket: {bucket} at {endpoint}: check the bucket name and the endpoint")]
    NoSuchBucket { bucket: String, endpoint: String },
    #[error("no such multipart upload {} for s3://{bucket}/{}: it was completed or aborted; start the upload again", Escaped(.upload_id), Escaped(.key))]
    NoSuchUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    #[error("range {range} is outside s3://{bucket}/{}", Escaped(.key))]
    InvalidRange {
        bucket: String,
        key: String,
        range: String,
    },
    #[error("s3://{bucket}/{} changed while it was read (ETag no longer {}): start again", Escaped(.key), Escaped(.etag))]
    Changed {
        bucket: String,
        key: String,
        etag: String,
    },
    #[error("{method} {url} failed: HTTP {status}{code}: {message}")]
    Service {
        method: String,
        url: String,
        status: u16,
        /// ` (Code)` when S3 sent an error document, else empty.
        code: String,
        message: String,
    },
    #[error("invalid answer from {url}: {}", Escaped(.reason))]
    Protocol { url: String, reason: String },
    #[error("invalid S3 endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("invalid object name {:?}: {reason}", Escaped(.name))]
    Name { name: String, reason: &'static str },
    #[error("{what}: no answer within {secs} s (the deadline for small S3 requests; {} sets it in seconds): check the endpoint and the network", super::deadline::REQUEST_TIMEOUT_VAR)]
    Deadline { what: String, secs: f64 },
    #[error("{what}: only {bytes} bytes in {secs} s, slower than the 1 KiB/s a transfer needs: check the network or the endpoint, then run the copy again")]
    TooSlow { what: String, bytes: u64, secs: u64 },
    #[error("listing s3://{bucket}/{}: {reason}", Escaped(.prefix))]
    Listing {
        bucket: String,
        prefix: String,
        reason: String,
    },
    #[error(transparent)]
    Http(#[from] crate::http::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Describes a transport failure with a hint: certificate problems point at the CA options.
pub fn connect_error(url: &str, e: &reqwest::Error) -> Error {
    const HINTS: crate::http::Hints = crate::http::Hints {
        certificate: "; the server's TLS certificate is not trusted: trust its CA with --ca-cert-path FILE (--insecure skips verification)",
        unreachable: "; check the S3 endpoint address and that the service is running",
    };
    let f = crate::http::connect_failure(url, e, &HINTS);
    Error::Connect {
        url: f.url,
        detail: f.detail,
        hint: f.hint,
    }
}

impl Error {
    /// Whether this is a certificate problem (the caller should not fall back or retry).
    pub fn is_certificate(&self) -> bool {
        matches!(self, Error::Connect { detail, .. } if crate::http::classify(detail) == crate::http::Failure::Certificate)
    }
}
