//! `gdcloud artifacts push SOURCE DESTINATION`: an OCI layout, a `docker save` tarball or an
//! oci-archive into a registry, without a daemon — the runbook's `docker load | tag | push`.
//!
//! Blobs the registry already has are skipped (HEAD); a blob the same registry holds in the
//! repository the image was pulled from is mounted instead of uploaded; the rest stream from the
//! source (never loaded whole), one PUT for small blobs and PATCH chunks for large ones. Manifests go
//! last, children before their index, so a tag never points at something incomplete.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::layout::source::{open_source, BlobSource, LocalImage};
use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::ops::pull::SOURCE_ANNOTATION;
use crate::plugin::progress::Progress;
use crate::registry::client::{BlobUpload, Mount};
use crate::registry::{self, Client, ClientOptions, Reference, Scope};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] registry::reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Layout(#[from] crate::layout::Error),
    #[error(transparent)]
    Parse(#[from] oci::ParseError),
    #[error("{source_path} holds an image index; choose one image with --platform OS/ARCH (it has: {available}), or drop --single-manifest-repo to push the whole index")]
    IndexNeedsPlatform {
        source_path: String,
        available: String,
    },
    #[error("{source_path} has no image for platform {platform}")]
    NoSuchPlatform {
        source_path: String,
        platform: String,
    },
    #[error("upload of {digest} to {repository} failed: {detail}")]
    Upload {
        repository: String,
        digest: Digest,
        detail: String,
    },
    #[error("{0} does not exist: give an OCI layout directory, a docker-archive (docker save) or an oci-archive tarball")]
    NoSource(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub source: PathBuf,
    pub destination: String,
    pub default_registry: Option<String>,
    pub single_manifest_repo: bool,
    pub platform: Option<Platform>,
    pub concurrency: usize,
    /// Blobs larger than this upload as PATCH chunks of this size (a multiple of 1 MiB).
    pub chunk_size: u64,
    pub client: ClientOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub destination: String,
    pub digest: String,
    pub media_type: String,
    pub blobs_uploaded: usize,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub bytes_uploaded: u64,
}

const READ_CHUNK: usize = crate::body::PIECE;
const UPLOAD_ATTEMPTS: u32 = 3;

struct Counters {
    uploaded: usize,
    skipped: usize,
    mounted: usize,
    bytes: u64,
}

enum Outcome {
    Uploaded(u64),
    Skipped,
    Mounted,
}

pub async fn run(opts: &Options, progress: &Progress) -> Result<Report, Error> {
    let (path, mut name) = super::split_source_name(&opts.source, None);
    if !path.exists() {
        return Err(Error::NoSource(path));
    }
    let dest = Reference::parse(&opts.destination, opts.default_registry.as_deref())?;
    // A layout holding several images: the destination's tag picks one when no name was given.
    let image = match open_source(&path, name.as_deref()) {
        Err(crate::layout::Error::Ambiguous { .. }) if name.is_none() && dest.tag.is_some() => {
            name = dest.tag.clone();
            open_source(&path, name.as_deref())?
        }
        other => other?,
    };
    let tag = dest.tag.clone().or_else(|| {
        image
            .name
            .clone()
            .map(|n| n.rsplit(':').next().unwrap_or(&n).to_string())
    });
    let repo = dest.repository.clone();
    let client = Client::connect(&dest.registry, &opts.client).await?;

    // Mount from the repository the image was pulled from, when it lives on this registry.
    let mount_from = image
        .manifest
        .annotation(SOURCE_ANNOTATION)
        .and_then(|s| s.split_once('/'))
        .filter(|(host, r)| *host == dest.registry && *r != repo)
        .map(|(_, r)| r.to_string());

    let mut root_bytes = image.manifest_bytes.clone();
    let mut root_desc = image.manifest.clone();
    let mut children: Vec<(Descriptor, Vec<u8>)> = Vec::new();
    match AnyManifest::parse(Some(&root_desc.media_type), &root_bytes)? {
        AnyManifest::Index(index) => {
            let choose = opts.single_manifest_repo || opts.platform.is_some();
            let available = || {
                index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if choose {
                let Some(want) = &opts.platform else {
                    return Err(Error::IndexNeedsPlatform {
                        source_path: path.display().to_string(),
                        available: available(),
                    });
                };
                let child = index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
                    .ok_or_else(|| Error::NoSuchPlatform {
                        source_path: path.display().to_string(),
                        platform: want.to_string(),
                    })?;
                root_bytes = read_small(&image, child)?;
                root_desc = child.clone();
            } else {
                for child in &index.manifests {
                    children.push((child.clone(), read_small(&image, child)?));
                }
            }
        }
        AnyManifest::Image(_) => {}
    }
    let images: Vec<(Descriptor, Vec<u8>)> = if children.is_empty() {
        vec![(root_desc.clone(), root_bytes.clone())]
    } else {
        children.clone()
    };

    let mut seen = HashSet::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    for (desc, bytes) in &images {
        let AnyManifest::Image(m) = AnyManifest::parse(Some(&desc.media_type), bytes)? else {
            continue;
        };
        for d in std::iter::once(&m.config).chain(m.layers.iter()) {
            let foreign = d.urls.as_ref().is_some_and(|u| !u.is_empty())
                && d.media_type.contains("nondistributable");
            if !foreign && seen.insert(d.digest.clone()) {
                blobs.push(d.clone());
            }
        }
    }
    for d in &blobs {
        progress.expect(d.size);
    }

    let scope = match &mount_from {
        Some(from) => Scope::push_mount(&repo, from),
        None => Scope::push(&repo),
    };
    let chunk_size =
        (opts.chunk_size.max(READ_CHUNK as u64) / READ_CHUNK as u64) * READ_CHUNK as u64;
    let results: Vec<Result<Outcome, Error>> = stream::iter(blobs.iter())
        .map(|d| {
            push_blob(
                &client,
                &repo,
                d,
                image.blobs.clone(),
                mount_from.as_deref(),
                &scope,
                chunk_size,
                progress,
            )
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut counters = Counters {
        uploaded: 0,
        skipped: 0,
        mounted: 0,
        bytes: 0,
    };
    for r in results {
        match r? {
            Outcome::Uploaded(n) => {
                counters.uploaded += 1;
                counters.bytes += n;
            }
            Outcome::Skipped => counters.skipped += 1,
            Outcome::Mounted => counters.mounted += 1,
        }
    }

    for (desc, bytes) in &children {
        client
            .put_manifest(
                &repo,
                &desc.digest.to_string(),
                &desc.media_type,
                bytes.clone(),
            )
            .await?;
    }
    let reference = tag.clone().unwrap_or_else(|| root_desc.digest.to_string());
    client
        .put_manifest(&repo, &reference, &root_desc.media_type, root_bytes.clone())
        .await?;
    progress.finish();
    let digest = Digest::sha256_of(&root_bytes);
    Ok(Report {
        destination: match &tag {
            Some(t) => format!("{}/{}:{t}", dest.registry, repo),
            None => format!("{}/{}@{digest}", dest.registry, repo),
        },
        digest: digest.to_string(),
        media_type: root_desc.media_type.clone(),
        blobs_uploaded: counters.uploaded,
        blobs_skipped: counters.skipped,
        blobs_mounted: counters.mounted,
        bytes_uploaded: counters.bytes,
    })
}

fn read_small(image: &LocalImage, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut r = image.blobs.open(&desc.digest)?;
    let mut buf = Vec::new();
    r.by_ref()
        .take(registry::client::MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| crate::layout::Error::Io {
            action: "read",
            path: PathBuf::from(desc.digest.to_string()),
            source: e,
        })?;
    let actual = Digest::sha256_of(&buf);
    if actual != desc.digest {
        return Err(crate::layout::Error::DigestMismatch {
            expected: desc.digest.clone(),
            actual,
            path: PathBuf::from(desc.digest.to_string()),
        }
        .into());
    }
    Ok(buf)
}

/// Reads the local blob through its verifying reader; the error names the corrupt file.
async fn check_local_blob(blobs: Arc<dyn BlobSource>, digest: Digest) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut r = blobs.open(&digest)?;
        match std::io::copy(&mut r, &mut std::io::sink()) {
            Ok(_) => Ok(()),
            Err(e) if crate::layout::Error::downcast_io(&e).is_some() => {
                let inner = e.into_inner().expect("downcast_io found an inner error");
                Err(Error::from(
                    *inner
                        .downcast::<crate::layout::Error>()
                        .expect("downcast_io found a layout error"),
                ))
            }
            Err(e) => {
                let path = PathBuf::from(digest.to_string());
                Err(crate::layout::Error::io("read", &path)(e).into())
            }
        }
    })
    .await
    .expect("the blob check does not panic")
}

#[allow(clippy::too_many_arguments)]
async fn push_blob(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    blobs: Arc<dyn BlobSource>,
    mount_from: Option<&str>,
    scope: &Scope,
    chunk_size: u64,
    progress: &Progress,
) -> Result<Outcome, Error> {
    let bar = progress.blob(&desc.digest.short(), desc.size);
    if client
        .blob_exists(repo, &desc.digest, scope)
        .await?
        .is_some()
    {
        bar.skip(desc.size);
        bar.done();
        return Ok(Outcome::Skipped);
    }
    let mut attempt = 0;
    loop {
        let location = match client
            .start_upload(repo, Some((&desc.digest, mount_from)), scope)
            .await?
        {
            Mount::Mounted => {
                bar.skip(desc.size);
                bar.done();
                return Ok(Outcome::Mounted);
            }
            Mount::Upload(loc) => loc,
        };
        let (source, digest) = (blobs.clone(), desc.digest.clone());
        let body = crate::body::from_reader(
            move || {
                source
                    .open_for_upload(&digest)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            },
            Some(desc.size),
            bar.counter(),
        );
        let blob = BlobUpload {
            digest: &desc.digest,
            size: desc.size,
            chunk_size,
        };
        match client.upload(repo, location, blob, scope, body).await {
            Ok(()) => {
                bar.done();
                return Ok(Outcome::Uploaded(desc.size));
            }
            Err(e) => {
                attempt += 1;
                bar.reset();
                // A refused blob (400: DIGEST_INVALID, SIZE_INVALID …) is checked here, where a
                // corrupt local copy is named; the upload skipped hashing it (open_for_upload).
                if let registry::Error::Status { status: 400, .. } = e {
                    check_local_blob(blobs.clone(), desc.digest.clone()).await?;
                }
                if attempt >= UPLOAD_ATTEMPTS
                    || matches!(
                        e,
                        registry::Error::Unauthorized { .. } | registry::Error::Denied { .. }
                    )
                {
                    return Err(match e {
                        registry::Error::Connect { detail, .. } => Error::Upload {
                            repository: repo.to_string(),
                            digest: desc.digest.clone(),
                            detail,
                        },
                        other => other.into(),
                    });
                }
            }
        }
    }
}
