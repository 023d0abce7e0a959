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
pub(crate) mod upload;

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::layout::{open_source, LocalImage};
use crate::oci::ANNOTATION_SOURCE;
use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::progress::Progress;
use crate::registry::{self, Client, ClientOptions, Reference, Scope};

use convert::Converted;
pub use convert::LayerCompression;
use upload::{push_blob, Blob, Outcome, Pushed, Target};

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

/// Blobs are read, and chunk sizes rounded, in pieces of this size.
pub(crate) const READ_CHUNK: usize = crate::body::PIECE;

#[derive(Default)]
struct Counters {
    uploaded: usize,
    skipped: usize,
    mounted: usize,
    compressed: usize,
    bytes: u64,
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let (path, image, dest) = open(opts)?;
    let tag = dest.tag.clone().or_else(|| {
        image
            .name
            .clone()
            .map(|n| n.rsplit(':').next().unwrap_or(&n).to_string())
    });
    let repo = dest.repository.clone();
    let client = Client::connect_for(&dest, &opts.client).await?;
    let mount_from = mount_from(&image, &dest);
    let mut chosen = select(&image, &path, opts)?;
    let blobs = plan_blobs(&chosen, opts)?;

    let scope = match &mount_from {
        Some(from) => Scope::push_mount(&repo, from),
        None => Scope::push(&repo),
    };
    let target = Target {
        client: &client,
        repo: &repo,
        mount_from: mount_from.as_deref(),
        scope: &scope,
        chunk_size: (opts.chunk_size.max(READ_CHUNK as u64) / READ_CHUNK as u64)
            * READ_CHUNK as u64,
        head_first: true,
    };
    let (counters, converted) = transfer_blobs(&target, &blobs, &image, opts, progress).await?;
    chosen.rewrite(opts.compression, &converted)?;
    put_manifests(&client, &repo, &chosen, tag.as_deref()).await?;
    progress.finish();
    let digest = Digest::sha256_of(&chosen.root_bytes);
    Ok(Report {
        destination: match &tag {
            Some(t) => format!("{}/{}:{t}", dest.registry, repo),
            None => format!("{}/{}@{digest}", dest.registry, repo),
        },
        digest: digest.to_string(),
        media_type: chosen.root_desc.media_type.clone(),
        blobs_uploaded: counters.uploaded,
        blobs_skipped: counters.skipped,
        blobs_mounted: counters.mounted,
        layers_compressed: counters.compressed,
        bytes_uploaded: counters.bytes,
    })
}

/// Opens SOURCE and parses DESTINATION. A layout holding several images: the destination's tag
/// picks one when no name was given.
fn open(opts: &Options) -> Result<(PathBuf, LocalImage, Reference), Error> {
    let (path, mut name) = super::split_source_name(&opts.source, None);
    if !path.exists() {
        return Err(Error::NoSource(path));
    }
    let dest = Reference::parse_argument(&opts.destination, opts.default_registry.as_deref())?;
    let image = match open_source(&path, name.as_deref()) {
        Err(crate::layout::Error::Ambiguous { .. }) if name.is_none() && dest.tag.is_some() => {
            name = dest.tag.clone();
            open_source(&path, name.as_deref())?
        }
        other => other?,
    };
    Ok((path, image, dest))
}

/// The repository to mount blobs from: the one the image was pulled from
/// ([`ANNOTATION_SOURCE`]), when it lives on this registry.
fn mount_from(image: &LocalImage, dest: &Reference) -> Option<String> {
    image
        .manifest
        .annotation(ANNOTATION_SOURCE)
        .and_then(|s| s.split_once('/'))
        .filter(|(host, r)| *host == dest.registry && *r != dest.repository)
        .map(|(_, r)| r.to_string())
}

/// What goes up: the root (the image, the index's image for `--platform`, or the index) and,
/// for a whole index, its children, each with its exact bytes.
struct Chosen {
    root_desc: Descriptor,
    root_bytes: Vec<u8>,
    children: Vec<(Descriptor, Vec<u8>)>,
}

fn select(image: &LocalImage, path: &std::path::Path, opts: &Options) -> Result<Chosen, Error> {
    let mut chosen = Chosen {
        root_desc: image.manifest.clone(),
        root_bytes: image.manifest_bytes.clone(),
        children: Vec::new(),
    };
    let AnyManifest::Index(index) =
        AnyManifest::parse(Some(&chosen.root_desc.media_type), &chosen.root_bytes)?
    else {
        return Ok(chosen);
    };
    if !(opts.single_manifest_repo || opts.platform.is_some()) {
        for child in &index.manifests {
            chosen
                .children
                .push((child.clone(), read_small(image, child)?));
        }
        return Ok(chosen);
    }
    let Some(want) = &opts.platform else {
        return Err(Error::IndexNeedsPlatform {
            source_path: path.display().to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
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
    chosen.root_bytes = read_small(image, child)?;
    chosen.root_desc = child.clone();
    Ok(chosen)
}

impl Chosen {
    /// The image manifests: the children of an index, else the root.
    fn images(&self) -> Vec<(&Descriptor, &[u8])> {
        if self.children.is_empty() {
            vec![(&self.root_desc, &self.root_bytes)]
        } else {
            self.children
                .iter()
                .map(|(d, b)| (d, b.as_slice()))
                .collect()
        }
    }

    /// The manifests name the compressed layers; an index, its rewritten children.
    fn rewrite(
        &mut self,
        compression: LayerCompression,
        converted: &Converted,
    ) -> Result<(), Error> {
        let rewrite = |bytes: &[u8]| {
            convert::rewrite_manifest(bytes, compression, converted).map_err(Error::Rewrite)
        };
        let rename = |desc: &mut Descriptor, bytes: &[u8]| {
            desc.digest = Digest::sha256_of(bytes);
            desc.size = bytes.len() as u64;
        };
        if self.children.is_empty() {
            if let Some(new) = rewrite(&self.root_bytes)? {
                rename(&mut self.root_desc, &new);
                self.root_bytes = new;
            }
            return Ok(());
        }
        let mut renamed = Converted::new();
        for (desc, bytes) in &mut self.children {
            if let Some(new) = rewrite(bytes)? {
                let old = desc.digest.clone();
                rename(desc, &new);
                renamed.insert(old, (desc.digest.clone(), desc.size));
                *bytes = new;
            }
        }
        if let Some(new) =
            convert::rewrite_index(&self.root_bytes, &renamed).map_err(Error::Rewrite)?
        {
            rename(&mut self.root_desc, &new);
            self.root_bytes = new;
        }
        Ok(())
    }
}

/// Every blob the images name, once, foreign layers left out; plain-tar layers are marked for
/// compression as `--compression` says.
fn plan_blobs(chosen: &Chosen, opts: &Options) -> Result<Vec<Blob>, Error> {
    let mut seen = HashSet::new();
    let mut blobs: Vec<Blob> = Vec::new();
    for (desc, bytes) in chosen.images() {
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
    Ok(blobs)
}

/// Pushes the blobs, `--concurrency` at a time; returns what became of them and which layers
/// were compressed into what.
async fn transfer_blobs(
    target: &Target<'_>,
    blobs: &[Blob],
    image: &LocalImage,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<(Counters, Converted), Error> {
    for b in blobs {
        progress.expect(b.desc.size);
    }
    let results: Vec<Result<Pushed, Error>> = stream::iter(blobs.iter())
        .map(|b| push_blob(target, b, image.blobs.clone(), progress))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut counters = Counters::default();
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
    Ok((counters, converted))
}

/// Manifests go last, children before their index, so a tag never points at something
/// incomplete; the root goes under `tag`, else under its digest.
async fn put_manifests(
    client: &Client,
    repo: &str,
    chosen: &Chosen,
    tag: Option<&str>,
) -> Result<(), Error> {
    for (desc, bytes) in &chosen.children {
        client
            .put_manifest(
                repo,
                &desc.digest.to_string(),
                &desc.media_type,
                bytes.clone(),
            )
            .await?;
    }
    let digest = chosen.root_desc.digest.to_string();
    let reference = tag.unwrap_or(&digest);
    let root = &chosen.root_desc;
    client
        .put_manifest(repo, reference, &root.media_type, chosen.root_bytes.clone())
        .await?;
    Ok(())
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
