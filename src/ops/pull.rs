//! `gdcloud artifacts pull SOURCE DESTINATION`: a registry image (or a whole index) into an OCI
//! image layout that skopeo, umoci and podman read, without a daemon.
//!
//! Blobs stream to `blobs/sha256/<hex>.partial` concurrently, hashed as they arrive, and take their
//! final name only when size and digest match; a dropped connection resumes with HTTP Range, and a
//! re-run of an interrupted pull continues where it stopped. Manifests are written last, so a layout
//! is only complete when everything it names is there.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::layout::{self, Layout};
use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::progress::Progress;
use crate::registry::{self, Client, ClientOptions, Fetched, Reference};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] registry::reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Layout(#[from] layout::Error),
    #[error(transparent)]
    Parse(#[from] oci::ParseError),
    #[error("{reference} is an image index; choose one image with --platform OS/ARCH (it has: {available}), or drop --single-manifest-repo to pull the whole index")]
    IndexNeedsPlatform {
        reference: String,
        available: String,
    },
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoSuchPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error(
        "{reference} is a single image, not an index, and was built for {actual}, not {platform}"
    )]
    WrongPlatform {
        reference: String,
        platform: String,
        actual: String,
    },
    #[error("download of {digest} from {repository} kept failing: {detail}; run the same command again to resume")]
    Download {
        repository: String,
        digest: Digest,
        detail: String,
    },
    #[error("nested index {0} is not supported; pull the child index by digest")]
    NestedIndex(Digest),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub source: String,
    pub destination: PathBuf,
    pub default_registry: Option<String>,
    pub single_manifest_repo: bool,
    pub platform: Option<Platform>,
    pub concurrency: usize,
    pub client: ClientOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub reference: String,
    /// The digest in the layout (an OCI manifest or index).
    pub digest: String,
    /// The digest in the registry; differs from `digest` when a Docker-format image was converted.
    pub source_digest: String,
    pub media_type: String,
    pub destination: PathBuf,
    pub manifests: usize,
    pub blobs: usize,
    pub bytes_downloaded: u64,
    /// Blobs already complete in DESTINATION (an earlier, interrupted run).
    pub blobs_present: usize,
    /// Layers hosted elsewhere (`urls`), not copied, as skopeo does by default.
    pub foreign_layers_skipped: usize,
}

/// Annotation recording where a pulled image came from, so a later push to the same registry can
/// mount its blobs instead of uploading them.
pub const SOURCE_ANNOTATION: &str = "com.google.gdcloud.artifacts.source";

fn platforms_of(index: &oci::Index) -> String {
    let mut names: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    names.dedup();
    if names.is_empty() {
        "no platform information".into()
    } else {
        names.join(", ")
    }
}

fn is_foreign(desc: &Descriptor) -> bool {
    desc.urls.as_ref().is_some_and(|u| !u.is_empty())
        && (desc.media_type.contains("nondistributable") || desc.media_type.contains("foreign"))
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let reference = Reference::parse(&opts.source, opts.default_registry.as_deref())?;
    // Refuse a non-empty DESTINATION before any network traffic; create it only once the source
    // is known to exist.
    Layout::check_for_pull(&opts.destination, &reference.to_string())?;
    let client = Client::connect(&reference.registry, &opts.client).await?;
    let repo = reference.repository.as_str();
    let top = client
        .get_manifest(repo, &reference.manifest_reference())
        .await?;
    let layout = Layout::create_for_pull(&opts.destination, &reference.to_string())?;

    // Which manifest becomes the layout's root, and which manifests must be fetched with it.
    let mut root = top.clone();
    let mut images: Vec<Fetched> = Vec::new();
    match AnyManifest::parse(Some(&top.media_type), &top.bytes)? {
        AnyManifest::Index(index) => {
            let choose = opts.single_manifest_repo || opts.platform.is_some();
            if choose {
                let Some(want) = &opts.platform else {
                    return Err(Error::IndexNeedsPlatform {
                        reference: reference.to_string(),
                        available: platforms_of(&index),
                    });
                };
                let child = index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
                    .ok_or_else(|| Error::NoSuchPlatform {
                        reference: reference.to_string(),
                        platform: want.to_string(),
                        available: platforms_of(&index),
                    })?;
                root = client.get_manifest(repo, &child.digest.to_string()).await?;
                images.push(root.clone());
            } else {
                for child in &index.manifests {
                    if oci::is_index(&child.media_type) {
                        return Err(Error::NestedIndex(child.digest.clone()));
                    }
                    images.push(client.get_manifest(repo, &child.digest.to_string()).await?);
                }
            }
        }
        AnyManifest::Image(_) => images.push(top.clone()),
    }

    // Docker-format images become OCI ones in the layout, as skopeo does: the layout readers look
    // up OCI media types only. Only media types change; configs and layers keep their digests.
    let source_digest = root.digest.clone();
    let mut converted = HashMap::new();
    for image in &mut images {
        if let Some(bytes) = oci::convert::manifest_to_oci(&image.bytes)? {
            let new = Fetched {
                digest: Digest::sha256_of(&bytes),
                media_type: oci::OCI_MANIFEST.into(),
                bytes,
            };
            converted.insert(
                image.digest.clone(),
                (new.digest.clone(), new.bytes.len() as u64),
            );
            *image = new;
        }
    }
    if let Some((d, _)) = converted.get(&root.digest) {
        let d = d.clone();
        root = images
            .iter()
            .find(|i| i.digest == d)
            .cloned()
            .expect("the converted root is one of the images");
    } else if let Some(bytes) = oci::convert::list_to_oci(&root.bytes, &converted)? {
        root = Fetched {
            digest: Digest::sha256_of(&bytes),
            media_type: oci::OCI_INDEX.into(),
            bytes,
        };
    }

    // Every blob the images name, once.
    let mut seen = HashSet::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut foreign = 0;
    for image in &images {
        let AnyManifest::Image(m) = AnyManifest::parse(Some(&image.media_type), &image.bytes)?
        else {
            return Err(Error::NestedIndex(image.digest.clone()));
        };
        if let (Some(want), true) = (
            &opts.platform,
            images.len() == 1 && root.digest == top.digest,
        ) {
            // A plain manifest with --platform: check its config says the same platform.
            let cfg = client.get_small_blob(repo, &m.config).await?;
            if let Ok(c) = serde_json::from_slice::<oci::ImageConfig>(&cfg) {
                let actual = Platform {
                    os: c.os.clone(),
                    architecture: c.architecture.clone(),
                    variant: c.variant.clone(),
                    ..Platform::default()
                };
                if !c.os.is_empty() && !want.matches(&actual) {
                    return Err(Error::WrongPlatform {
                        reference: reference.to_string(),
                        platform: want.to_string(),
                        actual: actual.to_string(),
                    });
                }
            }
        }
        for d in std::iter::once(&m.config).chain(m.layers.iter()) {
            if is_foreign(d) {
                foreign += 1;
                continue;
            }
            if seen.insert(d.digest.clone()) {
                blobs.push(d.clone());
            }
        }
    }

    for d in &blobs {
        progress.expect(d.size);
    }
    let concurrency = opts.concurrency.max(1);
    let results: Vec<Result<Fetch, Error>> = stream::iter(blobs.iter())
        .map(|d| fetch_blob(&client, repo, &layout, d, progress))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (mut downloaded, mut present) = (0, 0);
    for r in results {
        match r? {
            Fetch::Present => present += 1,
            Fetch::Downloaded(n) => downloaded += n,
        }
    }

    for image in &images {
        write_manifest(&layout, image)?;
    }
    // The index itself, when the whole index was pulled (the root image is written already).
    if !images.iter().any(|i| i.digest == root.digest) {
        write_manifest(&layout, &root)?;
    }

    let mut desc = root.descriptor();
    desc.annotations = Some(
        [(
            SOURCE_ANNOTATION.to_string(),
            format!("{}/{}", reference.registry, reference.repository),
        )]
        .into_iter()
        .collect(),
    );
    match reference.tag_or_default() {
        Some(tag) => layout.set_ref(desc, &tag)?,
        // By digest: no index.json exists yet in a fresh pull; the entry gets no ref name.
        None => layout.add_unnamed(desc)?,
    }
    layout.finish_pull()?;
    progress.finish();
    Ok(Report {
        reference: reference.to_string(),
        digest: root.digest.to_string(),
        source_digest: source_digest.to_string(),
        media_type: root.media_type.clone(),
        destination: opts.destination.clone(),
        manifests: images.len() + usize::from(oci::is_index(&root.media_type)),
        blobs: blobs.len(),
        bytes_downloaded: downloaded,
        blobs_present: present,
        foreign_layers_skipped: foreign,
    })
}

/// Writes a manifest or index (small, already verified in memory) under its sha256; whatever an
/// earlier run or anyone else left under that name is replaced, not trusted.
fn write_manifest(layout: &Layout, fetched: &Fetched) -> Result<(), Error> {
    let written = layout.write_blob(&fetched.bytes)?;
    debug_assert_eq!(written, fetched.digest);
    Ok(())
}

const DOWNLOAD_ATTEMPTS: u32 = 6;

/// What [`fetch_blob`] did.
enum Fetch {
    /// The blob was already in the layout (an earlier, interrupted run), its content checked.
    Present,
    /// This many bytes were transferred.
    Downloaded(u64),
}

/// Runs blocking file work (hashing, fsync) off the async workers, which are busy receiving the
/// other blobs.
async fn blocking<T: Send + 'static>(
    layout: &Layout,
    desc: &Descriptor,
    work: impl FnOnce() -> Result<T, layout::Error> + Send + 'static,
) -> Result<T, Error> {
    let r = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| layout::Error::Io {
            action: "write",
            path: layout.blob_path(&desc.digest),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(r)
}

/// Downloads one blob into the layout, resuming from what is already on disk.
async fn fetch_blob(
    client: &Client,
    repo: &str,
    layout: &Layout,
    desc: &Descriptor,
    progress: &dyn Progress,
) -> Result<Fetch, Error> {
    let bar = progress.blob(&desc.digest.short(), desc.size);
    // A blob already there is trusted only after hashing it (a resumed layout may hold anything
    // of the right size); in a fresh pull this is one failing `openat`.
    let present = match layout.present_blob(desc)? {
        Some(blob) => blocking(layout, desc, move || blob.verify()).await?,
        None => false,
    };
    if present {
        bar.skip(desc.size);
        bar.done();
        return Ok(Fetch::Present);
    }
    let mut writer = layout.blob_writer(desc)?;
    bar.skip(writer.offset());
    let mut transferred = 0u64;
    let mut attempt = 0;
    while writer.offset() < desc.size {
        let offset = writer.offset();
        let failure = match client.get_blob(repo, &desc.digest, offset).await {
            Err(registry::Error::Connect { detail, .. }) => Some(detail),
            Err(e) => return Err(e.into()),
            Ok((resp, ranged)) => {
                if offset > 0 && !ranged {
                    writer.restart()?;
                    bar.reset();
                }
                let mut body = resp.bytes_stream();
                let mut failure = None;
                while let Some(chunk) = body.next().await {
                    match chunk {
                        Ok(bytes) => {
                            writer.write_all(&bytes).map_err(|e| layout::Error::Io {
                                action: "write",
                                path: layout.blob_path(&desc.digest),
                                source: e,
                            })?;
                            transferred += bytes.len() as u64;
                            bar.inc(bytes.len() as u64);
                            if writer.offset() > desc.size {
                                break;
                            }
                        }
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
                if failure.is_none() && writer.offset() < desc.size {
                    failure = Some(format!(
                        "the registry ended the blob after {} of {} bytes",
                        writer.offset(),
                        desc.size
                    ));
                }
                failure
            }
        };
        if let Some(detail) = failure {
            attempt += 1;
            if attempt >= DOWNLOAD_ATTEMPTS {
                return Err(Error::Download {
                    repository: repo.to_string(),
                    digest: desc.digest.clone(),
                    detail,
                });
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5)))).await;
        }
        if writer.offset() > desc.size {
            break;
        }
    }
    // The fsync of a large blob takes a while.
    blocking(layout, desc, move || writer.commit()).await?;
    bar.done();
    Ok(Fetch::Downloaded(transferred))
}
