//! Everything one reference brings into the bundle: its manifest or index (every platform, exact
//! bytes), the manifests below it, the blobs they name, and with `--with-signatures` the cosign
//! tags of each manifest (`<alg>-<hex>.sig`, `.att`, `.sbom`) and its OCI 1.1 referrers. Only
//! manifests are fetched here (small, verified against their digests); blobs are listed for the
//! one deduplicated transfer of the whole save.

use std::collections::{BTreeMap, HashSet};

use super::refs::Target;
use super::Error;
use crate::oci::{self, AnyManifest, Descriptor, Digest, ANNOTATION_REF_NAME, ANNOTATION_SOURCE};
use crate::registry::{self, Client, Fetched};

/// The cosign tag suffixes saved with `--with-signatures`: signatures, attestations, SBOMs.
pub(super) const SIGNATURE_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// Below one reference, at most this many manifests (an index of indexes is walked whole): a
/// registry cannot make a save fetch without end.
const MAX_MANIFESTS: usize = 4096;

/// What one reference contributes.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub(super) top: Option<Fetched>,
    /// Every manifest and index to store, the top one included.
    pub(super) manifests: Vec<Fetched>,
    /// Blobs to copy (configs, layers), each once.
    pub(super) blobs: Vec<Descriptor>,
    /// `index.json` entries, with their ref name when they have one.
    pub(super) entries: Vec<Descriptor>,
    pub(super) foreign: usize,
    /// The signature, attestation and SBOM tags saved.
    pub(super) signatures: Vec<String>,
    /// Referrer manifests saved.
    pub(super) referrers: usize,
    /// Manifests walked and blobs listed, so each is taken once.
    seen: HashSet<Digest>,
    blobs_seen: HashSet<Digest>,
}

/// An `index.json` entry for `desc`, named `name` when given, with where it came from.
fn entry(desc: Descriptor, name: Option<String>, source: &str) -> Descriptor {
    let mut desc = desc;
    let notes = desc.annotations.get_or_insert_with(BTreeMap::new);
    notes.insert(ANNOTATION_SOURCE.to_string(), source.to_string());
    if let Some(n) = name {
        notes.insert(ANNOTATION_REF_NAME.to_string(), n);
    }
    desc
}

/// Fetches everything `target` brings; see the module docs.
pub(super) async fn collect(
    client: &Client,
    target: &Target,
    with_signatures: bool,
) -> Result<Collected, Error> {
    let r = &target.reference;
    let repo = r.repository.as_str();
    let source = format!("{}/{repo}", r.registry);
    let top = client.get_manifest(repo, &r.manifest_reference()).await?;
    let mut c = Collected::default();
    let children = walk(client, repo, top.clone(), &mut c).await?;
    c.entries
        .push(entry(top.descriptor(), Some(target.name.clone()), &source));
    if with_signatures {
        let mut subjects = vec![top.digest.clone()];
        subjects.extend(children);
        for subject in &subjects {
            signature_tags(client, repo, subject, &source, &mut c).await?;
            referrers(client, repo, subject, &source, &mut c).await?;
        }
    }
    c.top = Some(top);
    Ok(c)
}

/// Stores `root` and every manifest below it, listing their blobs; returns the digests of the
/// manifests `root` names directly when it is an index (its platform manifests).
async fn walk(
    client: &Client,
    repo: &str,
    root: Fetched,
    c: &mut Collected,
) -> Result<Vec<Digest>, Error> {
    let mut direct = Vec::new();
    let mut queue = vec![(root, true)];
    while let Some((m, is_root)) = queue.pop() {
        if !c.seen.insert(m.digest.clone()) {
            continue;
        }
        match AnyManifest::parse(Some(&m.media_type), &m.bytes)? {
            AnyManifest::Image(image) => {
                for d in std::iter::once(&image.config).chain(image.layers.iter()) {
                    if crate::ops::pull::is_foreign(d) {
                        c.foreign += 1;
                    } else if c.blobs_seen.insert(d.digest.clone()) {
                        c.blobs.push(d.clone());
                    }
                }
            }
            AnyManifest::Index(index) => {
                for child in &index.manifests {
                    if is_root {
                        direct.push(child.digest.clone());
                    }
                    if c.seen.contains(&child.digest) {
                        continue;
                    }
                    if c.manifests.len() + queue.len() >= MAX_MANIFESTS {
                        return Err(Error::TooManyManifests {
                            repository: repo.to_string(),
                            limit: MAX_MANIFESTS,
                        });
                    }
                    let f = client.get_manifest(repo, &child.digest.to_string()).await?;
                    queue.push((f, false));
                }
            }
        }
        c.manifests.push(m);
    }
    Ok(direct)
}

/// `subject`'s cosign tags present in `repo` (a 404 means none), each stored whole under
/// `REPO:<alg>-<hex>.<suffix>`.
async fn signature_tags(
    client: &Client,
    repo: &str,
    subject: &Digest,
    source: &str,
    c: &mut Collected,
) -> Result<(), Error> {
    for suffix in SIGNATURE_SUFFIXES {
        let tag = format!("{}-{}.{suffix}", subject.algorithm(), subject.hex());
        let f = match client.get_manifest(repo, &tag).await {
            Ok(f) => f,
            Err(registry::Error::ManifestUnknown { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        walk(client, repo, f.clone(), c).await?;
        c.entries
            .push(entry(f.descriptor(), Some(format!("{repo}:{tag}")), source));
        c.signatures.push(tag);
    }
    Ok(())
}

/// `subject`'s OCI 1.1 referrers: from the referrers API when the registry has it (each stored
/// by digest, unnamed), else from the referrers tag schema (the `<alg>-<hex>` tag's index,
/// stored under `REPO:<alg>-<hex>` with the manifests it lists).
async fn referrers(
    client: &Client,
    repo: &str,
    subject: &Digest,
    source: &str,
    c: &mut Collected,
) -> Result<(), Error> {
    if let Some(listing) = client.referrers(repo, subject).await? {
        for d in &listing.manifests {
            c.referrers += 1;
            // Already in the bundle (a signature tag, say): it needs no second entry.
            if c.seen.contains(&d.digest) {
                continue;
            }
            let f = client.get_manifest(repo, &d.digest.to_string()).await?;
            walk(client, repo, f.clone(), c).await?;
            let mut desc = f.descriptor();
            desc.artifact_type = d.artifact_type.clone();
            c.entries.push(entry(desc, None, source));
        }
        return Ok(());
    }
    let tag = format!("{}-{}", subject.algorithm(), subject.hex());
    let f = match client.get_manifest(repo, &tag).await {
        Ok(f) if oci::is_index(&f.media_type) => f,
        // Not a referrers index: the tag is something else of the user's, not ours to take.
        Ok(_) | Err(registry::Error::ManifestUnknown { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let listed = walk(client, repo, f.clone(), c).await?;
    c.referrers += listed.len();
    c.entries
        .push(entry(f.descriptor(), Some(format!("{repo}:{tag}")), source));
    Ok(())
}
