//! Objects and listings as S3 describes them, and the pure conversions between them and the wire:
//! key paths, `Last-Modified` and `Content-Range` headers, ListObjectsV2 pages and the
//! CompleteMultipartUpload document. Kept apart from [`super::Client`] so they are tested without a
//! server.

use std::time::{Duration, SystemTime};

use super::error::{Error, Result};
use super::sigv4;
use super::xml;

/// What HEAD (or a GET) tells about an object. `etag` is as S3 sends it, quotes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// One object of a listing. `etag` is `None` where the server leaves it out (s3s-fs does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// One ListObjectsV2 page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectEntry>,
    /// With a delimiter: the "directories" (`prefix…delimiter`) under the prefix.
    pub common_prefixes: Vec<String>,
    /// Pass back as [`ListQuery::continuation`] for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// What to list. Empty strings count as absent: s3s-fs (and others) take an empty `delimiter=` as
/// a real delimiter, so it is never sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub continuation: Option<&'a str>,
    /// Page size (S3's default and maximum is 1000).
    pub max_keys: Option<u32>,
}

/// A part as [`super::Client::complete_multipart`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// `Last-Modified` (IMF-fixdate, `Fri, 24 May 2013 00:00:00 GMT`) as an instant.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == mon)? + 1;
    iso_time(&format!("{year}-{m:02}-{day:0>2}T{time}Z"))
}

/// An RFC 3339 timestamp (list answers) as an instant.
fn iso_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = crate::rfc3339::parse(s)?;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `bytes START-END/TOTAL` → (start, end, total).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

pub(crate) fn check_bucket(bucket: &str) -> Result<()> {
    if bucket.is_empty() || bucket.contains('/') {
        return Err(Error::Name {
            name: bucket.into(),
            reason: "a bucket name is not empty and holds no `/`",
        });
    }
    Ok(())
}

/// A key's path: each `/`-separated segment encoded. `.` and `..` segments are refused: URL
/// normalisation (ours and the server's) would resolve them and address another object.
pub(crate) fn key_path(key: &str) -> Result<String> {
    if key.is_empty() {
        return Err(Error::Name {
            name: key.into(),
            reason: "an object key is not empty",
        });
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Err(Error::Name {
            name: key.into(),
            reason: "`.` and `..` path segments cannot be addressed safely",
        });
    }
    Ok(key
        .split('/')
        .map(sigv4::encode)
        .collect::<Vec<_>>()
        .join("/"))
}

/// The `<CompleteMultipartUpload>` document for `parts`.
pub fn complete_body(parts: &[CompletedPart]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for p in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            p.part_number,
            xml::escape(&p.etag)
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

/// A ListObjectsV2 answer.
/// A bucket of a ListBuckets answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub created: Option<SystemTime>,
}

/// A `ListAllMyBucketsResult` document: the buckets, in the server's order.
pub fn parse_buckets(body: &str) -> std::result::Result<Vec<BucketEntry>, String> {
    if !body.contains("<ListAllMyBucketsResult") {
        return Err("not a ListAllMyBucketsResult document".into());
    }
    xml::elements(body, "Bucket")
        .into_iter()
        .map(|b| {
            let name = xml::text(b, "Name").ok_or("a bucket without <Name>")?;
            Ok(BucketEntry {
                name: name.into_owned(),
                created: xml::text(b, "CreationDate").and_then(|t| iso_time(&t)),
            })
        })
        .collect()
}

pub fn parse_list(body: &str) -> std::result::Result<ListPage, String> {
    if !body.contains("<ListBucketResult") {
        return Err("not a ListBucketResult document".into());
    }
    let mut page = ListPage::default();
    for c in xml::elements(body, "Contents") {
        let key = xml::text(c, "Key").ok_or("an entry without <Key>")?;
        let size = xml::text(c, "Size")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("no valid <Size> for {key:?}"))?;
        page.objects.push(ObjectEntry {
            key: key.into_owned(),
            size,
            etag: xml::text(c, "ETag")
                .filter(|e| !e.is_empty())
                .map(|e| e.into_owned()),
            last_modified: xml::text(c, "LastModified").and_then(|t| iso_time(&t)),
        });
    }
    for p in xml::elements(body, "CommonPrefixes") {
        if let Some(prefix) = xml::text(p, "Prefix") {
            page.common_prefixes.push(prefix.into_owned());
        }
    }
    let truncated = xml::text(body, "IsTruncated").is_some_and(|t| t.trim() == "true");
    if truncated {
        let token = xml::text(body, "NextContinuationToken")
            .filter(|t| !t.is_empty())
            .ok_or("a truncated page without <NextContinuationToken>")?;
        page.next_token = Some(token.into_owned());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lists_parse() {
        let doc = r#"<?xml version="1.0"?><ListAllMyBucketsResult><Owner><ID>o</ID></Owner><Buckets>
<Bucket><Name>a&amp;b</Name><CreationDate>2026-12-03T10:00:00.000Z</CreationDate></Bucket>
<Bucket><Name>c</Name></Bucket></Buckets></ListAllMyBucketsResult>"#;
        let b = parse_buckets(doc).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].name, "a&b");
        assert!(b[0].created.is_some());
        assert_eq!(b[1].created, None);
        assert!(parse_buckets("<ListBucketResult/>").is_err());
        assert!(parse_buckets(
            "<ListAllMyBucketsResult><Bucket></Bucket></ListAllMyBucketsResult>"
        )
        .is_err());
    }

    #[test]
    fn list_pages_parse() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
<Contents><Key>p/a &amp; b.txt</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>
<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list(body).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].key, "p/a & b.txt");
        assert_eq!(page.objects[0].size, 434234);
        assert_eq!(
            page.objects[0].etag.as_deref(),
            Some("\"fba9dede5f27731c9771645a39863328\"")
        );
        assert_eq!(
            page.objects[0].last_modified,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_255_369_830))
        );
        assert_eq!(page.common_prefixes, vec!["p/sub/"]);
        assert_eq!(
            page.next_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
        assert!(parse_list("<Error/>").is_err());
        assert!(
            parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                .is_err()
        );
    }

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600))
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_content_range("bytes 0-9/443"), Some((0, 9, 443)));
        assert_eq!(parse_content_range("bytes */443"), None);
        assert_eq!(
            complete_body(&[CompletedPart {
                part_number: 1,
                etag: "\"e1\"".into()
            }]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
