//! Listings: one ListObjectsV2 page ([`Client::list_objects_v2`]), and whole listings (`cp -r`,
//! `ls`): every page of a prefix, within limits.
//!
//! A listing is held in memory, so a server that never ends one (a continuation token on every
//! page, or the same token again) would grow it until the machine runs out. Each page is read
//! within [`crate::bounded::LISTING`] (in [`Client::list_objects_v2`]); here a token seen before
//! ends the listing with an error, and so do more than [`MAX_PAGES`] pages or [`MAX_LISTED`]
//! entries: far beyond a prefix one copies with one command, and a clear error instead of an
//! out-of-memory kill.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use reqwest::Method;
use url::Url;

use super::client::Target;
use super::error::{Error, Result};
use super::object::{parse_buckets, parse_list, BucketEntry, ListPage, ListQuery, ObjectEntry};
use super::Client;

/// The most objects and common prefixes one listing holds.
pub const MAX_LISTED: usize = 1_000_000;
/// The most pages one listing reads: S3 sends up to 1000 keys a page, so [`MAX_LISTED`] fits in
/// pages of 100.
pub const MAX_PAGES: usize = 10_000;

/// All of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

impl Client {
    /// Every page of the listing of `prefix` (with `delimiter`, one level), within the limits
    /// above.
    pub async fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Listing> {
        let fail = |reason: String| Error::Listing {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            reason,
        };
        let mut out = Listing::default();
        // Digests, not the tokens: a token may be large, and only whether it came before matters.
        let mut seen: HashSet<[u8; 32]> = HashSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .list_objects_v2(
                    bucket,
                    &ListQuery {
                        prefix,
                        delimiter,
                        continuation: token.as_deref(),
                        max_keys: None,
                    },
                )
                .await?;
            out.objects.extend(page.objects);
            out.common_prefixes.extend(page.common_prefixes);
            if out.objects.len() + out.common_prefixes.len() > MAX_LISTED {
                return Err(fail(format!(
                    "more than {MAX_LISTED} entries; copy or list narrower prefixes"
                )));
            }
            match page.next_token {
                None => return Ok(out),
                Some(t) if !seen.insert(Sha256::digest(t.as_bytes()).into()) => {
                    return Err(fail(
                        "the server sent a continuation token it had sent before (a listing without end); check the endpoint".into(),
                    ))
                }
                Some(t) => token = Some(t),
            }
        }
        Err(fail(format!(
            "more than {MAX_PAGES} pages; copy or list narrower prefixes"
        )))
    }
}

impl Client {
    /// The buckets these keys may see (ListBuckets; at most [`crate::bounded::LISTING`] bytes).
    pub async fn list_buckets(&self) -> Result<Vec<BucketEntry>> {
        self.small(
            || "listing the buckets".to_string(),
            self.list_buckets_once(),
        )
        .await
    }

    async fn list_buckets_once(&self) -> Result<Vec<BucketEntry>> {
        let url = Url::parse(&format!("{}/", self.base)).map_err(|_| Error::Name {
            name: self.base.clone(),
            reason: "does not form a valid URL",
        })?;
        let resp = self.send(Method::GET, &url, &[], None).await?;
        let resp = self
            .success(&Method::GET, &url, Target::Bucket(""), resp)
            .await?;
        let body = Self::small_text(&url, resp).await?;
        parse_buckets(&body).map_err(|reason| Self::protocol(&url, reason))
    }

    /// One page of ListObjectsV2 (at most [`crate::bounded::LISTING`] bytes).
    pub async fn list_objects_v2(&self, bucket: &str, q: &ListQuery<'_>) -> Result<ListPage> {
        let what = || format!("listing s3://{bucket}/{}", crate::text::Escaped(q.prefix));
        self.small(what, self.list_objects_v2_once(bucket, q)).await
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
        let resp = self
            .success(&Method::GET, &url, Target::Bucket(bucket), resp)
            .await?;
        let body = Self::small_text(&url, resp).await?;
        parse_list(&body).map_err(|reason| Self::protocol(&url, reason))
    }
}
