//! A failed answer as our [`Error`]: S3's error document (code and message, made printable) and
//! the HTTP status, mapped to the variant that says what to do.

use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::client::Target;
use super::error::{Error, Result};
use super::{region, xml, Client};
use crate::bounded;
use crate::http;

impl Client {
    /// `resp` when it is a success, else the error it holds.
    pub(super) async fn success(
        &self,
        method: &Method,
        url: &Url,
        target: Target<'_>,
        resp: Response,
    ) -> Result<Response> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.fail(method, url, target, resp).await)
        }
    }

    /// Maps a failed answer to our error, from S3's error document when there is one.
    pub(super) async fn fail(
        &self,
        method: &Method,
        url: &Url,
        target: Target<'_>,
        resp: Response,
    ) -> Error {
        let status = resp.status();
        let body = bounded::response_prefix(resp, bounded::ERROR_BODY).await;
        self.classify(method, url, target, status, &String::from_utf8_lossy(&body))
    }

    pub(super) fn classify(
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
            None if bucket.is_empty() => "the bucket list".to_string(),
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
            ("AuthorizationHeaderMalformed" | "PermanentRedirect", _)
                if code == "AuthorizationHeaderMalformed"
                    || region::named(None, body).is_some() =>
            {
                Error::Region {
                    endpoint: self.base.clone(),
                    what,
                    signed: self.region.current(),
                    wanted: region::named(None, body),
                }
            }
            // A HEAD refusal has no body; a 400 there is the signing region (AWS, Garage).
            ("", 400) if *method == Method::HEAD => Error::Region {
                endpoint: self.base.clone(),
                what,
                signed: self.region.current(),
                wanted: None,
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
                | "ExpiredToken",
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
            _ => service(method, url, status, &code, message),
        }
    }
}

/// Any other failure: the method, URL, status and what the server said.
fn service(method: &Method, url: &Url, status: StatusCode, code: &str, message: String) -> Error {
    Error::Service {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::client::tests::client;

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
        // A region refusal names the regions, not the keys.
        let region = classify(
            obj,
            400,
            "<Error><Code>AuthorizationHeaderMalformed</Code><Region>garage</Region></Error>",
        );
        let msg = region.to_string();
        assert!(matches!(region, Error::Region { .. }), "{region:?}");
        assert!(
            msg.contains("us-east-1")
                && msg.contains("expects garage")
                && msg.contains("storage/s3_region")
                && !msg.contains("keys"),
            "{msg}"
        );
        let other = classify(obj, 500, &doc("InternalError")).to_string();
        assert!(other.contains("(InternalError): msg & more"), "{other}");
    }
}
