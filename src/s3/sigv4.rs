//! AWS Signature Version 4 for S3, as pure functions: method, URL, headers, payload hash and time
//! in; the `Authorization`, `x-amz-date` and `x-amz-content-sha256` values out. Kept apart from the
//! client so that it is tested against AWS's published examples without a server.
//!
//! S3 differs from the other AWS services in two places this file follows
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>): the canonical
//! URI encodes each path segment once (not twice), and `x-amz-content-sha256` is always signed,
//! either as the body's SHA-256 or as `UNSIGNED-PAYLOAD` for streamed bodies.

use std::time::SystemTime;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::hmac;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::secret::Secret;

/// The payload hash of a streamed body, whose bytes are not known when the request is signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// URI encoding as SigV4 defines it: everything but `A-Z a-z 0-9 - _ . ~` becomes `%XX`
/// (upper-case hex, UTF-8 bytes).
pub const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes one path segment or query component per SigV4.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// Who signs, and for which region.
#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: Secret,
    pub region: String,
}

/// The headers a signed request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub authorization: String,
    pub amz_date: String,
    pub content_sha256: String,
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for `t`.
pub fn amz_date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// SHA-256 of a body, in hex, for `x-amz-content-sha256`.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The canonical URI of `url`: each path segment decoded and re-encoded once, so that whatever
/// escaping the URL carries, the signature covers what S3 will see.
pub fn canonical_uri(url: &Url) -> String {
    let path = url.path();
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(|seg| encode(&percent_decode_str(seg).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query string: names and values decoded, re-encoded, sorted by name then value;
/// a parameter without a value is `name=`.
pub fn canonical_query(url: &Url) -> String {
    let Some(q) = url.query() else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| encode(&percent_decode_str(s).decode_utf8_lossy());
            (dec(k), dec(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `host[:port]` as the `Host` header carries it (the port only when not the scheme's default).
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The canonical request. `headers` are the signed headers (any case, any order), including
/// `host`, `x-amz-date` and `x-amz-content-sha256`. Returns it with the signed-headers list.
pub fn canonical_request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> (String, String) {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    hs.sort();
    let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        canonical_uri(url),
        canonical_query(url)
    );
    (request, signed_headers)
}

/// `date/region/s3/aws4_request`.
fn scope(amz_date: &str, region: &str) -> String {
    format!("{}/{region}/{SERVICE}/aws4_request", &amz_date[..8])
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, region: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope(amz_date, region),
        payload_hash(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &str) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
}

/// The hex signature of `string_to_sign` with the key derived for the day, region and S3.
pub fn signature(secret: &Secret, amz_date: &str, region: &str, string_to_sign: &str) -> String {
    let k_date = hmac(
        format!("AWS4{}", secret.expose()).as_bytes(),
        &amz_date[..8],
    );
    let k_region = hmac(k_date.as_ref(), region);
    let k_service = hmac(k_region.as_ref(), SERVICE);
    let k_signing = hmac(k_service.as_ref(), "aws4_request");
    hex::encode(hmac(k_signing.as_ref(), string_to_sign).as_ref())
}

impl Signer {
    /// Signs a request at `now`. `headers` are the extra headers to sign (e.g. `range`,
    /// `content-type`); `host`, `x-amz-date` and `x-amz-content-sha256` are added here.
    pub fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        payload_hash: &str,
        now: SystemTime,
    ) -> Signed {
        self.sign_at(method, url, headers, payload_hash, &amz_date(now))
    }

    /// [`Signer::sign`] for `region` instead of the signer's own: the region a server named
    /// ([`super::region`]).
    pub fn sign_in(
        &self,
        region: &str,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        payload_hash: &str,
        now: SystemTime,
    ) -> Signed {
        self.sign_region(region, method, url, headers, payload_hash, &amz_date(now))
    }

    /// [`Signer::sign`] with the time already as `YYYYMMDDTHHMMSSZ`.
    pub fn sign_at(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> Signed {
        self.sign_region(&self.region, method, url, headers, payload_hash, amz_date)
    }

    fn sign_region(
        &self,
        region: &str,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> Signed {
        let host = host_header(url);
        let mut all: Vec<(&str, &str)> = vec![
            ("host", &host),
            ("x-amz-date", amz_date),
            ("x-amz-content-sha256", payload_hash),
        ];
        all.extend(headers.iter().copied().filter(|(k, _)| {
            !matches!(
                k.to_ascii_lowercase().as_str(),
                "host" | "x-amz-date" | "x-amz-content-sha256"
            )
        }));
        let (request, signed_headers) = canonical_request(method, url, &all, payload_hash);
        let sts = string_to_sign(amz_date, region, &request);
        let sig = signature(&self.secret_key, amz_date, region, &sts);
        Signed {
            authorization: format!(
                "{ALGORITHM} Credential={}/{},SignedHeaders={signed_headers},Signature={sig}",
                self.access_key,
                scope(amz_date, region)
            ),
            amz_date: amz_date.to_string(),
            content_sha256: payload_hash.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of "Signature Calculations for the Authorization Header: Transferring Payload
    // in a Single Chunk" (Amazon S3 API reference).
    const DATE: &str = "20130524T000000Z";

    fn aws() -> Signer {
        Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            region: "us-east-1".into(),
        }
    }

    fn sig(s: &Signed) -> &str {
        s.authorization.rsplit_once("Signature=").unwrap().1
    }

    #[test]
    fn get_object_example() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let host = host_header(&url);
        let (request, signed) = canonical_request(
            "GET",
            &url,
            &[
                ("host", &host),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", DATE),
            ],
            EMPTY_SHA256,
        );
        assert_eq!(
            request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        let s = aws().sign_at("GET", &url, &[("Range", "bytes=0-9")], EMPTY_SHA256, DATE);
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(s.amz_date, DATE);
        assert_eq!(s.content_sha256, EMPTY_SHA256);
    }

    #[test]
    fn put_object_example() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test$file.text").unwrap();
        let body = payload_hash(b"Welcome to Amazon S3.");
        assert_eq!(
            body,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        assert_eq!(canonical_uri(&url), "/test%24file.text");
        let s = aws().sign_at(
            "PUT",
            &url,
            &[
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            &body,
            DATE,
        );
        assert_eq!(
            sig(&s),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn get_bucket_lifecycle_example() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/?lifecycle").unwrap();
        assert_eq!(canonical_query(&url), "lifecycle=");
        let s = aws().sign_at("GET", &url, &[], EMPTY_SHA256, DATE);
        assert_eq!(
            sig(&s),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn list_objects_example() {
        let url =
            Url::parse("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J").unwrap();
        assert_eq!(canonical_query(&url), "max-keys=2&prefix=J");
        let s = aws().sign_at("GET", &url, &[], EMPTY_SHA256, DATE);
        assert_eq!(
            sig(&s),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn uri_segments_are_encoded_once() {
        let url = Url::parse("http://127.0.0.1:9000/b/a%20b/%E2%82%AC+x~y%2B").unwrap();
        assert_eq!(canonical_uri(&url), "/b/a%20b/%E2%82%AC%2Bx~y%2B");
        assert_eq!(host_header(&url), "127.0.0.1:9000");
        assert_eq!(
            canonical_uri(&Url::parse("https://h").unwrap()),
            "/",
            "an empty path is /"
        );
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        let url =
            Url::parse("http://h/b?prefix=a%20b/c&list-type=2&uploads&continuation-token=x%2By=")
                .unwrap();
        assert_eq!(
            canonical_query(&url),
            "continuation-token=x%2By%3D&list-type=2&prefix=a%20b%2Fc&uploads="
        );
    }

    #[test]
    fn dates_and_redaction() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        assert_eq!(amz_date(t), DATE);
        assert!(!format!("{:?}", aws()).contains("EXAMPLEKEY"));
    }
}
