//! `gdcloud storage ls`: the objects and common prefixes below an `s3://BUCKET[/PREFIX]`, one level
//! or (`-r`) all of them, like `aws s3 ls`; the buckets themselves for a bare `s3://`.

use serde::Serialize;

use super::storage_config::S3Settings;
use super::storage_cp::{connect, parse_location, with_origin, Error, Location};

/// One line of `ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub key: String,
    pub size: Option<u64>,
    pub last_modified: Option<String>,
    /// A common prefix (a "directory"), not an object.
    pub prefix: bool,
    /// A bucket (a bare `s3://` lists them); `last_modified` is its creation time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bucket: bool,
}

/// What `ls` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub entries: Vec<Listed>,
    /// The region the endpoint named, when it was not the configured one.
    pub learned_region: Option<String>,
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The common prefixes, then the objects, below `url` (`s3://BUCKET[/PREFIX]`): one level, or all
/// of them with `recursive`.
pub async fn ls(
    settings: &S3Settings,
    url: &str,
    recursive: bool,
    insecure: bool,
    log_http: bool,
) -> Result<Listing, Error> {
    let client = connect(settings, insecure, log_http)?;
    let entries = list(&client, url, recursive)
        .await
        .map_err(|e| with_origin(e, settings))?;
    Ok(Listing {
        entries,
        learned_region: client.learned_region(),
    })
}

async fn list(
    client: &crate::s3::Client,
    url: &str,
    recursive: bool,
) -> Result<Vec<Listed>, Error> {
    if url == "s3://" || url == "s3:" {
        let buckets = client.list_buckets().await?;
        return Ok(buckets
            .into_iter()
            .map(|b| Listed {
                key: b.name,
                size: None,
                last_modified: b.created.map(rfc3339),
                prefix: false,
                bucket: true,
            })
            .collect());
    }
    let Location::S3 { bucket, key } = parse_location(url)? else {
        return Err(Error::Location(url.to_string()));
    };
    let page = client
        .list_all(&bucket, &key, (!recursive).then_some("/"))
        .await?;
    let mut out = Vec::new();
    for p in page.common_prefixes {
        out.push(Listed {
            key: p,
            size: None,
            last_modified: None,
            prefix: true,
            bucket: false,
        });
    }
    for o in page.objects {
        out.push(Listed {
            key: o.key,
            size: Some(o.size),
            last_modified: o.last_modified.map(rfc3339),
            prefix: false,
            bucket: false,
        });
    }
    Ok(out)
}
