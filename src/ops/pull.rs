//! `gdcloud artifacts pull SOURCE DESTINATION`: a registry image (or a whole index) into an OCI
//! image layout that skopeo, umoci and podman read, without a daemon.
//!
//! Blobs stream to `blobs/sha256/<hex>.partial` concurrently, hashed as they arrive, and take their
//! final name only when size and digest match; a dropped connection resumes with HTTP Range, and a
//! re-run of an interrupted pull continues where it stopped. Manifests are written last, so a layout
//! is only complete when everything it names is there.

pub(crate) mod fetch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::layout::{self, Layout};
use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::progress::Progress;
use crate::registry::{self, Client, ClientOptions, Fetched, Reference};

use fetch::{fetch_blob, Fetch};

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
    #[error(transparent)]
    Verify(#[from] crate::ops::verify::Error),
    #[error("{image}@{digest} is refused by --verify: {reason}; nothing was written")]
    Refused {
        image: String,
        digest: String,
        reason: String,
    },
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
    /// `--verify`: the image's cosign signatures must satisfy this key or policy before
    /// anything is written.
    pub verify: Option<crate::ops::verify::Trust>,
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
    /// With `--verify`: the signature verdicts (all accepted, or nothing was pulled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<crate::ops::verify::Verdict>,
}

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

/// A layer hosted elsewhere (`urls`, non-distributable): counted, never copied (as skopeo does).
pub(crate) fn is_foreign(desc: &Descriptor) -> bool {
    desc.urls.as_ref().is_some_and(|u| !u.is_empty())
        && (desc.media_type.contains("nondistributable") || desc.media_type.contains("foreign"))
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let reference = Reference::parse_argument(&opts.source, opts.default_registry.as_deref())?;
    // Refuse a non-empty DESTINATION before any network traffic; create it only once the source
    // is known to exist.
    Layout::check_for_pull(&opts.destination, &reference.to_string())?;
    let policy = opts.verify.as_ref().map(|t| t.load()).transpose()?;
    let client = Client::connect_for(&reference, &opts.client).await?;
    let repo = reference.repository.as_str();
    let top = client
        .get_manifest(repo, &reference.manifest_reference())
        .await?;
    let verified = match &policy {
        Some(p) => check_signatures(&client, &reference, &top, p, opts).await?,
        None => Vec::new(),
    };
    let layout = Layout::create_for_pull(&opts.destination, &reference.to_string())?;

    let mut chosen = resolve(&client, &reference, &top, opts).await?;
    let source_digest = chosen.root.digest.clone();
    chosen.convert_to_oci()?;
    let plan = plan_blobs(&client, &reference, &top, &chosen, opts).await?;
    let (downloaded, present) = transfer_blobs(
        &client,
        repo,
        &layout,
        &plan.blobs,
        opts.concurrency,
        progress,
    )
    .await?;
    write_manifests(&layout, &chosen)?;
    record(&layout, &reference, &chosen.root)?;
    layout.finish_pull()?;
    progress.finish();
    let root = &chosen.root;
    Ok(Report {
        reference: reference.to_string(),
        digest: root.digest.to_string(),
        source_digest: source_digest.to_string(),
        media_type: root.media_type.clone(),
        destination: opts.destination.clone(),
        manifests: chosen.images.len() + usize::from(oci::is_index(&root.media_type)),
        blobs: plan.blobs.len(),
        bytes_downloaded: downloaded,
        blobs_present: present,
        foreign_layers_skipped: plan.foreign,
        verified,
    })
}

/// `--verify`: judges what is pulled (the index, or with `--platform` the image picked from it)
/// before DESTINATION is created; the first refusal is the error.
async fn check_signatures(
    client: &Client,
    reference: &Reference,
    top: &Fetched,
    policy: &crate::sign::Policy,
    opts: &Options,
) -> Result<Vec<crate::ops::verify::Verdict>, Error> {
    let selection = crate::ops::verify::Selection {
        platform: opts.platform.clone(),
        all_platforms: false,
    };
    let verdicts =
        crate::ops::verify::check_registry(client, reference, top, policy, &selection).await?;
    if let Some(v) = verdicts.iter().find(|v| !v.verified) {
        return Err(Error::Refused {
            image: v.image.clone(),
            digest: v.digest.clone(),
            reason: v.reason.clone(),
        });
    }
    Ok(verdicts)
}

/// Which manifest becomes the layout's root, and the image manifests pulled with it.
struct Chosen {
    root: Fetched,
    images: Vec<Fetched>,
}

/// Picks what to pull from `top`: the image itself, the index's image for `--platform`, or the
/// whole index with every child.
async fn resolve(
    client: &Client,
    reference: &Reference,
    top: &Fetched,
    opts: &Options,
) -> Result<Chosen, Error> {
    let repo = reference.repository.as_str();
    let index = match AnyManifest::parse(Some(&top.media_type), &top.bytes)? {
        AnyManifest::Image(_) => {
            return Ok(Chosen {
                root: top.clone(),
                images: vec![top.clone()],
            })
        }
        AnyManifest::Index(index) => index,
    };
    if !(opts.single_manifest_repo || opts.platform.is_some()) {
        let mut images = Vec::new();
        for child in &index.manifests {
            if oci::is_index(&child.media_type) {
                return Err(Error::NestedIndex(child.digest.clone()));
            }
            images.push(client.get_manifest(repo, &child.digest.to_string()).await?);
        }
        return Ok(Chosen {
            root: top.clone(),
            images,
        });
    }
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
    let root = client.get_manifest(repo, &child.digest.to_string()).await?;
    Ok(Chosen {
        images: vec![root.clone()],
        root,
    })
}

impl Chosen {
    /// Docker-format images become OCI ones in the layout, as skopeo does: the layout readers look
    /// up OCI media types only. Only media types change; configs and layers keep their digests.
    fn convert_to_oci(&mut self) -> Result<(), Error> {
        let mut converted = HashMap::new();
        for image in &mut self.images {
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
        if let Some((d, _)) = converted.get(&self.root.digest) {
            let d = d.clone();
            self.root = self
                .images
                .iter()
                .find(|i| i.digest == d)
                .cloned()
                .expect("the converted root is one of the images");
        } else if let Some(bytes) = oci::convert::list_to_oci(&self.root.bytes, &converted)? {
            self.root = Fetched {
                digest: Digest::sha256_of(&bytes),
                media_type: oci::OCI_INDEX.into(),
                bytes,
            };
        }
        Ok(())
    }
}

/// The blobs to copy: every blob the images name, once; foreign layers are counted, not copied.
struct Plan {
    blobs: Vec<Descriptor>,
    foreign: usize,
}

async fn plan_blobs(
    client: &Client,
    reference: &Reference,
    top: &Fetched,
    chosen: &Chosen,
    opts: &Options,
) -> Result<Plan, Error> {
    let mut seen = HashSet::new();
    let mut plan = Plan {
        blobs: Vec::new(),
        foreign: 0,
    };
    let plain = chosen.images.len() == 1 && chosen.root.digest == top.digest;
    for image in &chosen.images {
        let AnyManifest::Image(m) = AnyManifest::parse(Some(&image.media_type), &image.bytes)?
        else {
            return Err(Error::NestedIndex(image.digest.clone()));
        };
        if let (Some(want), true) = (&opts.platform, plain) {
            check_platform(client, reference, &m.config, want).await?;
        }
        for d in std::iter::once(&m.config).chain(m.layers.iter()) {
            if is_foreign(d) {
                plan.foreign += 1;
                continue;
            }
            if seen.insert(d.digest.clone()) {
                plan.blobs.push(d.clone());
            }
        }
    }
    Ok(plan)
}

/// A plain manifest with --platform: checks its config says the same platform.
async fn check_platform(
    client: &Client,
    reference: &Reference,
    config: &Descriptor,
    want: &Platform,
) -> Result<(), Error> {
    let cfg = client.get_small_blob(&reference.repository, config).await?;
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
    Ok(())
}

/// Copies the blobs into the layout, `concurrency` at a time; returns the bytes transferred and
/// how many blobs were already there.
async fn transfer_blobs(
    client: &Client,
    repo: &str,
    layout: &Layout,
    blobs: &[Descriptor],
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<(u64, usize), Error> {
    for d in blobs {
        progress.expect(d.size);
    }
    let results: Vec<Result<Fetch, Error>> = stream::iter(blobs.iter())
        .map(|d| fetch_blob(client, repo, layout, d, progress))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let (mut downloaded, mut present) = (0, 0);
    for r in results {
        match r? {
            Fetch::Present => present += 1,
            Fetch::Downloaded(n) => downloaded += n,
        }
    }
    Ok((downloaded, present))
}

/// Writes the manifests last, so the layout names only what is there: the images, then the
/// index itself when the whole index was pulled (the root image is written already).
fn write_manifests(layout: &Layout, chosen: &Chosen) -> Result<(), Error> {
    for image in &chosen.images {
        write_manifest(layout, image)?;
    }
    if !chosen.images.iter().any(|i| i.digest == chosen.root.digest) {
        write_manifest(layout, &chosen.root)?;
    }
    Ok(())
}

/// Names the root in `index.json`, annotated with where it came from ([`crate::oci::ANNOTATION_SOURCE`]).
fn record(layout: &Layout, reference: &Reference, root: &Fetched) -> Result<(), Error> {
    let mut desc = root.descriptor();
    desc.annotations = Some(
        [(
            crate::oci::ANNOTATION_SOURCE.to_string(),
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
    Ok(())
}

/// Writes a manifest or index (small, already verified in memory) under its sha256; whatever an
/// earlier run or anyone else left under that name is replaced, not trusted.
fn write_manifest(layout: &Layout, fetched: &Fetched) -> Result<(), Error> {
    let written = layout.write_blob(&fetched.bytes)?;
    debug_assert_eq!(written, fetched.digest);
    Ok(())
}
