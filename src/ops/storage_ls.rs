//! `gdcloud storage ls`: the objects and common prefixes below an `s3://BUCKET[/PREFIX]`, one level
//! or (`-r`) all of them, like `aws s3 ls`.

use serde::Serialize;

use super::storage_config::S3Settings;
use super::storage_cp::{connect, parse_location, Error, Location};

/// One line of `ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub key: String,
    pub size: Option<u64>,
    pub last_modified: Option<String>,
    /// A common prefix (a "directory"), not an object.
    pub prefix: bool,
}

/// The common prefixes, then the objects, below `url` (`s3://BUCKET[/PREFIX]`): one level, or all
/// of them with `recursive`.
pub async fn ls(
    settings: &S3Settings,
    url: &str,
    recursive: bool,
    insecure: bool,
    log_http: bool,
) -> Result<Vec<Listed>, Error> {
    let Location::S3 { bucket, key } = parse_location(url)? else {
        return Err(Error::Location(url.to_string()));
    };
    let client = connect(settings, insecure, log_http)?;
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
        });
    }
    for o in page.objects {
        out.push(Listed {
            key: o.key,
            size: Some(o.size),
            last_modified: o
                .last_modified
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            prefix: false,
        });
    }
    Ok(out)
}
