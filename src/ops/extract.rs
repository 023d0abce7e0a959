//! `gdcloud artifacts extract SOURCE DESTINATION`: an image's root filesystem (the tree `umoci
//! unpack` produces), an artifact's files by title, or with `--docker-executable` a tarball that
//! `docker load`/`podman load` accept — from a pulled layout, a docker-archive or an oci-archive.
//!
//! The extraction itself (whiteouts, link confinement, hostile entries) lives in `crate::extract`;
//! this op picks the image, reads its config and feeds it the layers as streams.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::extract::{self, Layer};
use crate::layout::{self, open_source, LocalImage};
use crate::oci::ANNOTATION_SOURCE;

/// How layers are applied (`LayerOptions::rootless()` for images you do not trust).
pub use crate::extract::Options as LayerOptions;
use crate::oci::{self, AnyManifest, Compression, Descriptor, ImageConfig, Manifest, Platform};
use crate::progress::{BlobProgress, Progress};
use crate::{bounded, text};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Layout(#[from] crate::layout::Error),
    #[error(transparent)]
    Extract(#[from] extract::Error),
    #[error(transparent)]
    Parse(#[from] oci::ParseError),
    #[error("{source_path} holds an image index; choose an image with --platform OS/ARCH (it has: {available})")]
    IndexNeedsPlatform {
        source_path: String,
        available: String,
    },
    #[error("{source_path} has no image for platform {platform} (it has: {available})")]
    NoSuchPlatform {
        source_path: String,
        platform: String,
        available: String,
    },
    #[error("the image config of {0} is not valid JSON; the layout is damaged, pull it again")]
    Config(String),
    #[error("{0} is an artifact, not a container image: --docker-executable needs an image")]
    NotAnImage(String),
    #[error(
        "{0} has no files to extract: none of its layers carries an org.opencontainers.image.title"
    )]
    NoFiles(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} exists; choose a new file name for the docker-archive (nothing was overwritten)")]
    Exists(PathBuf),
    #[error("{0}; the image is malformed or hostile, do not use it")]
    TooLarge(bounded::TooLarge),
}

/// Reads a small JSON blob (manifest, config) whole, refusing one over `limit`.
fn read_small(r: impl Read, limit: u64, what: String, path: &Path) -> Result<Vec<u8>, Error> {
    bounded::read(r, limit, &what).map_err(|source| {
        match source
            .get_ref()
            .and_then(|e| e.downcast_ref::<bounded::TooLarge>())
        {
            Some(too_large) => Error::TooLarge(too_large.clone()),
            None => Error::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            },
        }
    })
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub image_name: Option<String>,
    pub platform: Option<Platform>,
    pub docker_executable: bool,
    pub extract: extract::Options,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub digest: String,
    pub destination: PathBuf,
    /// `rootfs`, `artifact` or `docker-archive`.
    pub mode: &'static str,
    pub files: u64,
    pub directories: u64,
    pub links: u64,
    pub whiteouts: u64,
    pub bytes: u64,
    /// Artifact mode: the files written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<PathBuf>,
}

/// An image (rather than an artifact): a container config and tar layers only.
fn is_image(m: &Manifest) -> bool {
    (m.config.media_type == oci::OCI_CONFIG || m.config.media_type == oci::DOCKER_CONFIG)
        && m.layers
            .iter()
            .all(|l| Compression::of_media_type(&l.media_type).is_some())
}

fn default_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        ..Platform::default()
    }
}

/// The image manifest to extract: the source's own, or one child of its index by platform.
fn choose_manifest(image: &LocalImage, opts: &Options) -> Result<(Descriptor, Manifest), Error> {
    let mut desc = image.manifest.clone();
    let mut bytes = image.manifest_bytes.clone();
    if let AnyManifest::Index(index) = AnyManifest::parse(Some(&desc.media_type), &bytes)? {
        let available = index
            .manifests
            .iter()
            .filter_map(|d| {
                d.platform
                    .as_ref()
                    .map(|p| text::escape(&p.to_string()).into_owned())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let want = opts.platform.clone();
        let child = match &want {
            Some(w) => index
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| w.matches(p)))
                .ok_or_else(|| Error::NoSuchPlatform {
                    source_path: opts.source.display().to_string(),
                    platform: w.to_string(),
                    available: available.clone(),
                })?,
            None if index.manifests.len() == 1 => &index.manifests[0],
            None => {
                let host = default_platform();
                index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| host.matches(p)))
                    .ok_or_else(|| Error::IndexNeedsPlatform {
                        source_path: opts.source.display().to_string(),
                        available: available.clone(),
                    })?
            }
        };
        let r = image.blobs.open(&child.digest)?;
        let what = format!("manifest {} of {}", child.digest, opts.source.display());
        bytes = read_small(r, bounded::MANIFEST, what, &opts.source)?;
        desc = child.clone();
    }
    match AnyManifest::parse(Some(&desc.media_type), &bytes)? {
        AnyManifest::Image(m) => Ok((desc, *m)),
        AnyManifest::Index(_) => Err(Error::IndexNeedsPlatform {
            source_path: opts.source.display().to_string(),
            available: "a nested index".into(),
        }),
    }
}

/// A layer's reader that moves its progress bar by the (compressed) bytes read.
struct Counted {
    inner: Box<dyn Read + Send>,
    bar: Arc<dyn BlobProgress>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.bar.done();
        } else {
            self.bar.inc(n as u64);
        }
        Ok(n)
    }
}

fn layers<'a>(
    image: &'a LocalImage,
    m: &'a Manifest,
    diff_ids: &'a [oci::Digest],
    progress: &'a dyn Progress,
) -> impl Iterator<Item = Result<Layer<Box<dyn Read + Send>>, extract::Error>> + 'a {
    progress.expect(m.layers.iter().map(|d| d.size).sum());
    m.layers.iter().enumerate().map(move |(i, d)| {
        let reader = image
            .blobs
            .open(&d.digest)
            .map_err(|e| extract::Error::Io {
                path: PathBuf::from(d.digest.to_string()),
                action: "open the layer",
                source: std::io::Error::other(e.to_string()),
            })?;
        let hex = d.digest.to_string();
        let short = hex.strip_prefix("sha256:").unwrap_or(&hex);
        let bar = progress.blob(&short[..short.len().min(12)], d.size);
        Ok(Layer {
            descriptor: d.clone(),
            diff_id: diff_ids.get(i).cloned(),
            reader: Box::new(Counted { inner: reader, bar }) as Box<dyn Read + Send>,
        })
    })
}

/// Extracts as `opts` says, reporting the layers read through `progress` (which it finishes).
pub fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let result = extract_with(opts, progress);
    progress.finish();
    result
}

fn extract_with(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let (path, name) = super::split_source_name(&opts.source, opts.image_name.as_deref());
    let image = open_source(&path, name.as_deref())?;
    let (desc, manifest) = choose_manifest(&image, opts)?;
    let mut report = Report {
        digest: desc.digest.to_string(),
        destination: opts.destination.clone(),
        mode: "rootfs",
        files: 0,
        directories: 0,
        links: 0,
        whiteouts: 0,
        bytes: 0,
        written: Vec::new(),
    };
    if !is_image(&manifest) {
        return write_artifact(opts, &image, &manifest, report, progress);
    }
    let config_bytes = {
        // A config is JSON of a few KiB: a huge one is refused before it is read into memory.
        let r = image.blobs.open(&manifest.config.digest)?;
        let what = format!("config of {}", opts.source.display());
        read_small(r, bounded::CONFIG, what, &opts.source)?
    };
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|_| Error::Config(opts.source.display().to_string()))?;
    let diff_ids = &config.rootfs.diff_ids;
    if opts.docker_executable {
        let image = (&image, &desc, &manifest);
        return write_archive(opts, image, &config_bytes, diff_ids, report, progress);
    }
    let stats = extract::unpack_rootfs(
        &opts.destination,
        layers(&image, &manifest, diff_ids, progress),
        &opts.extract,
    )?;
    report.files = stats.files;
    report.directories = stats.dirs;
    report.links = stats.links;
    report.whiteouts = stats.whiteouts;
    report.bytes = stats.bytes;
    Ok(report)
}

/// An artifact (not an image): its titled layers' files, written under DESTINATION.
fn write_artifact(
    opts: &Options,
    image: &LocalImage,
    manifest: &Manifest,
    mut report: Report,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    if opts.docker_executable {
        return Err(Error::NotAnImage(opts.source.display().to_string()));
    }
    if !manifest
        .layers
        .iter()
        .any(|l| l.annotation(oci::ANNOTATION_TITLE).is_some())
    {
        return Err(Error::NoFiles(opts.source.display().to_string()));
    }
    let written =
        extract::write_artifact_files(&opts.destination, layers(image, manifest, &[], progress))?;
    report.mode = "artifact";
    report.files = written.len() as u64;
    report.written = written;
    Ok(report)
}

/// `--docker-executable`: the image as a `docker save` tarball, written to a temporary file beside
/// its target and renamed into place (never over an existing file).
fn write_archive(
    opts: &Options,
    (image, desc, manifest): (&LocalImage, &Descriptor, &Manifest),
    config_bytes: &[u8],
    diff_ids: &[oci::Digest],
    mut report: Report,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    let target = archive_path(&opts.destination, desc);
    if target.exists() {
        return Err(Error::Exists(target));
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let tmp = tempfile::Builder::new()
        .prefix(".docker-archive.")
        .tempfile_in(&dir)
        .map_err(|source| Error::Io {
            action: "create a file in",
            path: dir.clone(),
            source,
        })?;
    let tags = repo_tags(image, desc);
    layout::write_docker_archive(
        tmp.as_file(),
        &tags,
        config_bytes,
        layers(image, manifest, diff_ids, progress),
        &dir,
    )?;
    tmp.as_file().sync_all().map_err(|source| Error::Io {
        action: "write",
        path: target.clone(),
        source,
    })?;
    tmp.persist_noclobber(&target).map_err(|e| Error::Io {
        action: "write",
        path: target.clone(),
        source: e.error,
    })?;
    report.mode = "docker-archive";
    report.destination = target.clone();
    report.bytes = fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    Ok(report)
}

/// `docker load` shows an image under its RepoTags: the repository it was pulled from (or the
/// archive's own name) with its tag.
fn repo_tags(image: &LocalImage, desc: &Descriptor) -> Vec<String> {
    let tag = image.name.clone().or_else(|| {
        image
            .manifest
            .annotation(oci::ANNOTATION_REF_NAME)
            .map(str::to_string)
    });
    let repo = image
        .manifest
        .annotation(ANNOTATION_SOURCE)
        .or_else(|| desc.annotation(ANNOTATION_SOURCE))
        .map(str::to_string);
    match (repo, tag) {
        (_, Some(t)) if t.contains('/') && t.contains(':') => vec![t],
        (Some(r), Some(t)) => vec![format!("{r}:{t}")],
        (Some(r), None) => vec![format!("{r}:latest")],
        _ => Vec::new(),
    }
}

/// DESTINATION names the tarball; an existing directory gets `<digest>.tar` inside.
fn archive_path(dest: &Path, desc: &Descriptor) -> PathBuf {
    if dest.is_dir() {
        dest.join(format!("{}.tar", &desc.digest.hex()[..12]))
    } else {
        dest.to_path_buf()
    }
}
