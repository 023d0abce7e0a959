//! `gdcloud storage cp`: objects between S3 and local files, fast and safe.
//!
//! The op plans what goes where (`plan`: one job per object or file, keys confined to
//! DESTINATION), hands each job to the transfer engine (`s3::transfer`: resumable ranged
//! downloads, multipart uploads, verification) and reports what was copied, left alone or failed.

use std::path::PathBuf;

use serde::Serialize;

use super::storage_config::S3Settings;
use crate::http::TlsOptions;
use crate::progress::Progress;
use crate::s3::{self, transfer};

mod plan;

use plan::Job;

/// What can go wrong in `cp` (and `ls`, which shares the locations and the connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error("{0} is not a location: use s3://BUCKET/KEY or a local path")]
    Location(String),
    #[error("copying several sources needs a directory (or an s3://BUCKET/PREFIX/) as DESTINATION, not {0}")]
    NotADirectory(String),
    #[error("{} is a prefix, not an object: add -r to copy everything below it", crate::text::Escaped(.0))]
    PrefixNeedsRecursive(String),
    #[error("{0}: copy between S3 and local files only (one side must be s3://…)")]
    Unsupported(String),
    #[error("{error} (endpoint from {origin})")]
    Endpoint {
        error: Box<s3::Error>,
        /// Where the endpoint came from ([`S3Settings::endpoint_origin`]).
        origin: String,
    },
    #[error("{property}: {reason}")]
    Setting {
        property: &'static str,
        reason: String,
    },
    #[error("{failed} of {total} copies failed (first: {first})")]
    SomeFailed {
        failed: usize,
        total: usize,
        first: String,
    },
}

impl Error {
    /// Ctrl-C stopped the run (the message says what was kept and how to resume).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Transfer(transfer::Error::Interrupted { .. }))
    }
}

impl From<s3::Error> for Error {
    fn from(e: s3::Error) -> Self {
        Error::Transfer(e.into())
    }
}

/// The `cp` command line, with the storage settings resolved.
#[derive(Debug, Clone)]
pub struct Options {
    pub sources: Vec<String>,
    pub destination: String,
    pub recursive: bool,
    pub no_clobber: bool,
    pub continue_on_error: bool,
    pub concurrency: usize,
    pub part_size: u64,
    pub settings: S3Settings,
    pub insecure: bool,
    pub log_http: bool,
}

/// One copy made (or, in `skipped`, left alone).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub source: String,
    pub destination: String,
    pub bytes: u64,
    /// A resumed download: the parts an interrupted run had already fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<transfer::Reused>,
}

/// One copy that failed, with its message (`-c`).
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub source: String,
    pub error: String,
}

/// What `cp` did, for the plugin to render as text or JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub copied: Vec<Item>,
    /// Targets left alone because of `-n`.
    pub skipped: Vec<Item>,
    pub failed: Vec<Failure>,
    pub bytes: u64,
    /// The region the endpoint named, when it was not the configured one (the requests were
    /// signed for it instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_region: Option<String>,
}

/// A SOURCE or DESTINATION argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    S3 { bucket: String, key: String },
    Local(PathBuf),
}

pub(crate) fn parse_location(s: &str) -> Result<Location, Error> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Location(s.to_string()));
        }
        return Ok(Location::S3 {
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
    }
    if s.contains("://") || s.is_empty() {
        return Err(Error::Location(s.to_string()));
    }
    Ok(Location::Local(PathBuf::from(s)))
}

/// A client for the configured endpoint and keys; nothing is sent yet.
pub(crate) fn connect(
    settings: &S3Settings,
    insecure: bool,
    log_http: bool,
) -> Result<s3::Client, Error> {
    let tls = TlsOptions {
        insecure,
        ca_files: settings.ca_file.iter().cloned().collect(),
        log_http,
    };
    let addressing =
        s3::Addressing::parse(settings.addressing.as_deref()).map_err(|reason| Error::Setting {
            property: super::storage_config::ADDRESSING_PROPERTY,
            reason,
        })?;
    s3::Client::new(
        &settings.endpoint,
        &settings.access_key_id,
        settings.secret_access_key.clone(),
        settings.region.as_deref(),
        &tls,
    )
    .and_then(|c| c.with_addressing(addressing, &tls))
    .map_err(|e| with_origin(e.into(), settings))
}

/// `e`, naming where the endpoint came from when it is about the endpoint (invalid, unreachable,
/// untrusted): the value to fix is there.
pub(crate) fn with_origin(e: Error, settings: &S3Settings) -> Error {
    let about_endpoint =
        |e: &s3::Error| matches!(e, s3::Error::Endpoint { .. } | s3::Error::Connect { .. });
    match e {
        Error::Transfer(transfer::Error::S3(inner)) if about_endpoint(&inner) => Error::Endpoint {
            error: inner,
            origin: settings.endpoint_origin.clone(),
        },
        other => other,
    }
}

/// Copies every source to the destination, one job after the other (each job's parts in
/// parallel); with `continue_on_error`, failures are reported instead of ending the run.
pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let client = connect(&opts.settings, opts.insecure, opts.log_http)?;
    let jobs = plan::plan(&client, opts)
        .await
        .map_err(|e| with_origin(e, &opts.settings))?;
    let engine = transfer::Options {
        interrupt: transfer::Interrupt::on_ctrl_c(),
        concurrency: opts.concurrency,
        part_size: opts.part_size,
        no_clobber: opts.no_clobber,
    };
    let mut report = Report::default();
    let total = jobs.len();
    for mut job in jobs {
        if engine.interrupt.is_set() {
            return Err(transfer::Error::Interrupted {
                what: format!(
                    "{} was not copied; run the same command again",
                    job.source()
                ),
            }
            .into());
        }
        let result = copy(&client, &mut job, &engine, progress).await;
        let item = |moved: transfer::Moved| Item {
            source: job.source(),
            destination: job.destination(),
            bytes: moved.bytes,
            resumed: moved.reused,
        };
        match result {
            Ok(Some(moved)) => {
                report.bytes += moved.bytes;
                report.copied.push(item(moved));
            }
            Ok(None) => report.skipped.push(item(transfer::Moved::default())),
            Err(e @ transfer::Error::Interrupted { .. }) => return Err(e.into()),
            Err(e) if opts.continue_on_error => report.failed.push(Failure {
                source: job.source(),
                error: e.to_string(),
            }),
            Err(e) => return Err(with_origin(e.into(), &opts.settings)),
        }
    }
    progress.finish();
    report.learned_region = client.learned_region();
    if !report.failed.is_empty() && !opts.continue_on_error {
        let first = report.failed[0].error.clone();
        return Err(Error::SomeFailed {
            failed: report.failed.len(),
            total,
            first,
        });
    }
    Ok(report)
}

/// Runs one job through the engine; `None` when `-n` left the target alone.
async fn copy(
    client: &s3::Client,
    job: &mut Job,
    engine: &transfer::Options,
    progress: &dyn Progress,
) -> Result<Option<transfer::Moved>, transfer::Error> {
    match job {
        Job::Download {
            bucket,
            key,
            root,
            target,
        } => transfer::download(client, bucket, key, root, target, engine, progress).await,
        Job::Upload { path, bucket, key } => {
            transfer::upload(client, path, bucket, key, engine, progress).await
        }
        Job::Refused { error, .. } => Err(error.take().expect("a refused job holds its error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("s3://b/k/x").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "k/x".into()
            }
        );
        assert_eq!(
            parse_location("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "".into()
            }
        );
        assert!(parse_location("s3:///k").is_err());
        assert!(parse_location("gs://b/k").is_err());
        assert_eq!(
            parse_location("out/x").unwrap(),
            Location::Local("out/x".into())
        );
    }
}
