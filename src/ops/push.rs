//! `gdcloud artifacts push SOURCE DESTINATION`: an OCI layout, a `docker save` tarball or an
//! oci-archive into a registry, without a daemon — the runbook's `docker load | tag | push`.
//!
//! Blobs the registry already has are skipped (HEAD); a blob the same registry holds in the
//! repository the image was pulled from is mounted instead of uploaded; the rest stream from the
//! source (never loaded whole), one PUT for small blobs and PATCH chunks for large ones. Layers the
//! source holds as plain tar (a `docker save` tarball's) are compressed first, as `docker push` and
//! skopeo do (see `compress`, `convert`), into an unnamed temporary file: the registry must be
//! told a blob's digest, and a HEAD needs it before anything is sent. Manifests go last, children
//! before their index, so a tag never points at something incomplete.

mod compress;
mod convert;

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::layout::source::{open_source, BlobSource, LocalImage};
use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::ops::pull::SOURCE_ANNOTATION;
use crate::progress::{self, Progress};
use crate::registry::{self, BlobUpload, Client, ClientOptions, Mount, Reference, Scope};

use compress::{Codec, Pool, Written};
use convert::Converted;
pub use convert::LayerCompression;

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
    #[error("layer {digest} of a Docker schema 2 manifest cannot go up as zstd (Docker has no media type for it): push with --compression gzip")]
    ZstdInDockerManifest { digest: Digest },
    #[error("cannot compress layer {digest} into a temporary file in {dir}: {source}; free space there or point TMPDIR at another directory")]
    Compress {
        digest: Digest,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot write the manifest naming the compressed layers: {0}; push with --compression none"
    )]
    Rewrite(serde_json::Error),
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
    /// What plain-tar layers become in the registry (gzip by default, as docker and skopeo do).
    pub compression: LayerCompression,
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
    /// Layers compressed on the way (whether then uploaded or found in the registry).
    pub layers_compressed: usize,
    pub bytes_uploaded: u64,
}

const READ_CHUNK: usize = crate::body::PIECE;
const UPLOAD_ATTEMPTS: u32 = 3;

struct Counters {
    uploaded: usize,
    skipped: usize,
    mounted: usize,
    compressed: usize,
    bytes: u64,
}

/// A blob to push: as it is, or a plain-tar layer to compress first.
struct Blob {
    desc: Descriptor,
    codec: Option<Codec>,
}

enum Outcome {
    Uploaded(u64),
    Skipped,
    Mounted,
}

/// What became of one blob; for a compressed layer, also its uncompressed digest and what it
/// became.
struct Pushed {
    outcome: Outcome,
    compressed: Option<(Digest, Written)>,
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
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
    let mut blobs: Vec<Blob> = Vec::new();
    for (desc, bytes) in &images {
        let AnyManifest::Image(m) = AnyManifest::parse(Some(&desc.media_type), bytes)? else {
            continue;
        };
        let layers = m.layers.iter().map(|d| (d, true));
        for (d, is_layer) in std::iter::once((&m.config, false)).chain(layers) {
            let foreign = d.urls.as_ref().is_some_and(|u| !u.is_empty())
                && d.media_type.contains("nondistributable");
            if foreign || !seen.insert(d.digest.clone()) {
                continue;
            }
            // Only layers are compressed; a config is JSON whatever its media type says.
            let codec = if is_layer {
                let target = opts.compression.target(&d.media_type).map_err(|()| {
                    Error::ZstdInDockerManifest {
                        digest: d.digest.clone(),
                    }
                })?;
                target.and(opts.compression.codec())
            } else {
                None
            };
            blobs.push(Blob {
                desc: d.clone(),
                codec,
            });
        }
    }
    for b in &blobs {
        progress.expect(b.desc.size);
    }

    let scope = match &mount_from {
        Some(from) => Scope::push_mount(&repo, from),
        None => Scope::push(&repo),
    };
    let chunk_size =
        (opts.chunk_size.max(READ_CHUNK as u64) / READ_CHUNK as u64) * READ_CHUNK as u64;
    let target = Target {
        client: &client,
        repo: &repo,
        mount_from: mount_from.as_deref(),
        scope: &scope,
        chunk_size,
    };
    let results: Vec<Result<Pushed, Error>> = stream::iter(blobs.iter())
        .map(|b| push_blob(&target, b, image.blobs.clone(), progress))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut counters = Counters {
        uploaded: 0,
        skipped: 0,
        mounted: 0,
        compressed: 0,
        bytes: 0,
    };
    let mut converted = Converted::new();
    for r in results {
        let Pushed {
            outcome,
            compressed,
        } = r?;
        if let Some((from, to)) = compressed {
            counters.compressed += 1;
            converted.insert(from, (to.digest, to.size));
        }
        match outcome {
            Outcome::Uploaded(n) => {
                counters.uploaded += 1;
                counters.bytes += n;
            }
            Outcome::Skipped => counters.skipped += 1,
            Outcome::Mounted => counters.mounted += 1,
        }
    }

    // The manifests name the compressed layers; an index, its rewritten children.
    let rewrite = |bytes: &[u8]| {
        convert::rewrite_manifest(bytes, opts.compression, &converted).map_err(Error::Rewrite)
    };
    let rename = |desc: &mut Descriptor, bytes: &[u8]| {
        desc.digest = Digest::sha256_of(bytes);
        desc.size = bytes.len() as u64;
    };
    if children.is_empty() {
        if let Some(new) = rewrite(&root_bytes)? {
            rename(&mut root_desc, &new);
            root_bytes = new;
        }
    } else {
        let mut renamed = Converted::new();
        for (desc, bytes) in &mut children {
            if let Some(new) = rewrite(bytes)? {
                let old = desc.digest.clone();
                rename(desc, &new);
                renamed.insert(old, (desc.digest.clone(), desc.size));
                *bytes = new;
            }
        }
        if let Some(new) = convert::rewrite_index(&root_bytes, &renamed).map_err(Error::Rewrite)? {
            rename(&mut root_desc, &new);
            root_bytes = new;
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
        layers_compressed: counters.compressed,
        bytes_uploaded: counters.bytes,
    })
}

fn read_small(image: &LocalImage, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut r = image.blobs.open(&desc.digest)?;
    let mut buf = Vec::new();
    r.by_ref()
        .take(registry::MAX_MANIFEST_BYTES + 1)
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

/// A read error of a local blob as our error: a layout error it carries (a corrupt file, named)
/// comes out as it is.
fn read_error(e: std::io::Error, digest: &Digest) -> Error {
    if crate::layout::Error::downcast_io(&e).is_some() {
        let inner = e.into_inner().expect("downcast_io found an inner error");
        return Error::from(
            *inner
                .downcast::<crate::layout::Error>()
                .expect("downcast_io found a layout error"),
        );
    }
    let path = PathBuf::from(digest.to_string());
    crate::layout::Error::io("read", &path)(e).into()
}

/// Reads the local blob through its verifying reader; the error names the corrupt file.
async fn check_local_blob(blobs: Arc<dyn BlobSource>, digest: Digest) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut r = blobs.open(&digest)?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map(drop)
            .map_err(|e| read_error(e, &digest))
    })
    .await
    .expect("the blob check does not panic")
}

/// Where blobs go: the same for every blob of a push.
struct Target<'a> {
    client: &'a Client,
    repo: &'a str,
    mount_from: Option<&'a str>,
    scope: &'a Scope,
    chunk_size: u64,
}

/// Pushes one blob, compressing it first when asked.
async fn push_blob(
    target: &Target<'_>,
    blob: &Blob,
    blobs: Arc<dyn BlobSource>,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    let desc = &blob.desc;
    let bar = progress.blob(&desc.digest.short(), desc.size);
    let Some(codec) = blob.codec else {
        let (source, digest) = (blobs.clone(), desc.digest.clone());
        let open = move || {
            source
                .open_for_upload(&digest)
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        let outcome = send(target, &desc.digest, desc.size, open, Some(blobs), &bar).await?;
        return Ok(Pushed {
            outcome,
            compressed: None,
        });
    };
    // The progress bar follows the uncompressed bytes, read while compressing (the slow part).
    let (file, written) = {
        let (desc, counter) = (desc.clone(), progress::counter(&bar));
        tokio::task::spawn_blocking(move || stage(codec, blobs.as_ref(), &desc, counter))
            .await
            .expect("compression does not panic")?
    };
    let file = Arc::new(file);
    let open = move || -> std::io::Result<FileAt> {
        Ok(FileAt {
            file: file.clone(),
            at: 0,
        })
    };
    let outcome = send(target, &written.digest, written.size, open, None, &bar).await?;
    Ok(Pushed {
        outcome,
        compressed: Some((desc.digest.clone(), written)),
    })
}

/// Where compressed layers wait for their upload: `$TMPDIR` when set, else `/var/tmp` (on disk,
/// where `/tmp` is often memory; podman stages image copies there for the same reason).
fn stage_dir() -> PathBuf {
    let var_tmp = Path::new("/var/tmp");
    if std::env::var_os("TMPDIR").is_none() && var_tmp.is_dir() {
        var_tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Compresses the layer `desc` into an unnamed temporary file (`O_TMPFILE`, mode 0600: no other
/// user can open it, and it vanishes when closed, even if we are killed). The layer is read
/// through its verifying reader: the registry can check only the compressed digest, so the
/// uncompressed one (the config's diff_id) is checked here.
fn stage(
    codec: Codec,
    blobs: &dyn BlobSource,
    desc: &Descriptor,
    counted: impl Fn(u64),
) -> Result<(File, Written), Error> {
    let dir = stage_dir();
    let failed = |source| Error::Compress {
        digest: desc.digest.clone(),
        dir: dir.clone(),
        source,
    };
    let mut input = blobs.open(&desc.digest)?;
    let mut file = tempfile::tempfile_in(&dir).map_err(failed)?;
    let pool = Pool::shared().map_err(failed)?;
    match compress::compress(pool, codec, &mut input, &mut file, &counted) {
        Ok(written) => Ok((file, written)),
        Err(e) if crate::layout::Error::downcast_io(&e).is_some() => {
            Err(read_error(e, &desc.digest))
        }
        Err(e) => Err(failed(e)),
    }
}

/// A reader of a shared file from the start, for each upload attempt.
struct FileAt {
    file: Arc<File>,
    at: u64,
}

impl Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Sends one blob unless the registry has it (HEAD) or mounts it; retries a failed upload.
/// `check` is the local source, checked when the registry refuses the bytes (a corrupt copy is
/// then named); a staged compressed blob was hashed as it was written and needs no check.
async fn send<R, O>(
    target: &Target<'_>,
    digest: &Digest,
    size: u64,
    open: O,
    check: Option<Arc<dyn BlobSource>>,
    bar: &Arc<dyn crate::progress::BlobProgress>,
) -> Result<Outcome, Error>
where
    R: Read + 'static,
    O: Fn() -> std::io::Result<R> + Clone + Send + 'static,
{
    let Target {
        client,
        repo,
        mount_from,
        scope,
        chunk_size,
    } = *target;
    // A compressed layer's bar already counted its input: the upload does not count again.
    let counts = check.is_some();
    let left = if counts { size } else { 0 };
    if client.blob_exists(repo, digest, scope).await?.is_some() {
        bar.skip(left);
        bar.done();
        return Ok(Outcome::Skipped);
    }
    let mut attempt = 0;
    loop {
        let location = match client
            .start_upload(repo, Some((digest, mount_from)), scope)
            .await?
        {
            Mount::Mounted => {
                bar.skip(left);
                bar.done();
                return Ok(Outcome::Mounted);
            }
            Mount::Upload(loc) => loc,
        };
        let counter = progress::counter(bar);
        let body = crate::body::from_reader(open.clone(), Some(size), move |n| {
            if counts {
                counter(n)
            }
        });
        let blob = BlobUpload {
            digest,
            size,
            chunk_size,
        };
        match client.upload(repo, location, blob, scope, body).await {
            Ok(()) => {
                bar.done();
                return Ok(Outcome::Uploaded(size));
            }
            Err(e) => {
                attempt += 1;
                if counts {
                    bar.reset();
                }
                // A refused blob (400: DIGEST_INVALID, SIZE_INVALID …) is checked here, where a
                // corrupt local copy is named; the upload skipped hashing it (open_for_upload).
                if let (registry::Error::Status { status: 400, .. }, Some(blobs)) = (&e, &check) {
                    check_local_blob(blobs.clone(), digest.clone()).await?;
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
                            digest: digest.clone(),
                            detail,
                        },
                        other => other.into(),
                    });
                }
            }
        }
    }
}
