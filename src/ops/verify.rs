//! `gdcloud artifacts verify REF|LAYOUT[:NAME]`: are an image's cosign signatures (its
//! `sha256-<hex>.sig` tag) good under `--key FILE` or a containers `--policy FILE`, checked
//! offline, as podman and skopeo check a `sigstoreSigned` requirement. The same checks run
//! before `pull --verify` writes anything (see [`check_registry`]) and before
//! `extract --verify`; a bundle load will call them per image.
//!
//! Which manifests are judged: the image, or for an index the index itself (cosign signs the
//! index); with `--platform` the chosen platform's manifest (what skopeo checks when it copies
//! one platform of an index); with `--all-platforms` the index and every platform manifest.
//! No transparency log is consulted ([`sign::NO_TRANSPARENCY_LOG`]).

mod layout;

use std::path::PathBuf;

use serde::Serialize;

use crate::oci::{self, AnyManifest, Descriptor, Digest, Platform};
use crate::registry::{self, Client, ClientOptions, Fetched, Reference};
use crate::sign::{self, DockerRef, Policy, Signature, Subject};

pub use layout::check_layout;

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
    #[error(transparent)]
    Trust(#[from] sign::Error),
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoSuchPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("signature payload {digest} of {what} is {size} bytes, over the {limit}-byte limit for a signature; the signature tag is malformed or hostile")]
    PayloadTooLarge {
        what: String,
        digest: Digest,
        size: u64,
        limit: u64,
    },
}

/// Where the trust comes from: `--key FILE` (a cosign public key) or `--policy FILE`.
#[derive(Debug, Clone)]
pub enum Trust {
    Key(PathBuf),
    Policy(PathBuf),
}

impl Trust {
    /// Reads the key or the policy (and the policy's key files).
    pub fn load(&self) -> Result<Policy, Error> {
        Ok(match self {
            Trust::Key(p) => sign::policy_from_key_file(p)?,
            Trust::Policy(p) => sign::policy_from_file(p)?,
        })
    }
}

/// Which manifests of an index are judged.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this platform's manifest.
    pub platform: Option<Platform>,
    /// The index and every platform manifest.
    pub all_platforms: bool,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// A registry reference, or a local OCI layout / oci-archive.
    pub source: String,
    /// The image of a local source (`--image-name`, or the `PATH:NAME` form).
    pub image_name: Option<String>,
    pub default_registry: Option<String>,
    pub selection: Selection,
    pub client: ClientOptions,
    pub trust: Trust,
}

/// The verdict on one manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The reference it is known by (or the local source and name).
    pub image: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub verified: bool,
    /// One line: how it was signed, or why it is refused.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub transparency_log: &'static str,
    pub verdicts: Vec<Verdict>,
}

impl Report {
    pub fn refused(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.verified)
    }
}

/// Signature payloads are small (containers/image `MaxSignatureBodySize`: 4 MiB).
pub(crate) const MAX_PAYLOAD: u64 = 4 << 20;

pub async fn run(opts: &Options) -> Result<Report, Error> {
    let policy = opts.trust.load()?;
    let (path, name) = crate::ops::split_source_name(
        std::path::Path::new(&opts.source),
        opts.image_name.as_deref(),
    );
    let verdicts = if path.exists() {
        check_layout(
            &path,
            name.as_deref(),
            &policy,
            &opts.selection,
            opts.default_registry.as_deref(),
        )?
    } else {
        let reference = Reference::parse_argument(&opts.source, opts.default_registry.as_deref())?;
        let client = Client::connect_for(&reference, &opts.client).await?;
        let top = client
            .get_manifest(&reference.repository, &reference.manifest_reference())
            .await?;
        check_registry(&client, &reference, &top, &policy, &opts.selection).await?
    };
    Ok(Report {
        source: opts.source.clone(),
        transparency_log: sign::NO_TRANSPARENCY_LOG,
        verdicts,
    })
}

/// The identity a registry image is known by, for `signedIdentity` and policy scopes.
pub(crate) fn identity_of(reference: &Reference) -> Option<DockerRef> {
    let mut s = format!("{}/{}", reference.registry, reference.repository);
    if let Some(t) = reference.tag_or_default() {
        s.push(':');
        s.push_str(&t);
    }
    if let Some(d) = &reference.digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
    DockerRef::parse(&s)
}

/// A manifest to judge: its digest and, for an index's child, its platform.
pub(crate) struct Target {
    pub digest: Digest,
    pub platform: Option<String>,
}

/// The manifests `selection` asks about, given the top manifest's bytes.
pub(crate) fn targets(
    what: &str,
    top: &Descriptor,
    bytes: &[u8],
    selection: &Selection,
) -> Result<Vec<Target>, Error> {
    let whole = Target {
        digest: top.digest.clone(),
        platform: None,
    };
    let AnyManifest::Index(index) = AnyManifest::parse(Some(&top.media_type), bytes)? else {
        return Ok(vec![whole]);
    };
    let child = |d: &Descriptor| Target {
        digest: d.digest.clone(),
        platform: d.platform.as_ref().map(|p| p.to_string()),
    };
    if let Some(want) = &selection.platform {
        let found = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
            .ok_or_else(|| Error::NoSuchPlatform {
                reference: what.to_string(),
                platform: want.to_string(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        return Ok(vec![child(found)]);
    }
    let mut out = vec![whole];
    if selection.all_platforms {
        out.extend(index.manifests.iter().map(child));
    }
    Ok(out)
}

/// Judges `top` (fetched for `reference`) and, as `selection` asks, its platform manifests; the
/// signatures come from the same repository's `.sig` tags.
pub async fn check_registry(
    client: &Client,
    reference: &Reference,
    top: &Fetched,
    policy: &Policy,
    selection: &Selection,
) -> Result<Vec<Verdict>, Error> {
    let identity = identity_of(reference);
    let reqs = policy.requirements_for(identity.as_ref());
    let mut verdicts = Vec::new();
    for target in targets(
        &reference.to_string(),
        &top.descriptor(),
        &top.bytes,
        selection,
    )? {
        let sigs = if Policy::needs_signatures(reqs) {
            registry_signatures(client, &reference.repository, &target.digest).await?
        } else {
            Vec::new()
        };
        let subject = Subject {
            digest: &target.digest,
            identity: identity.as_ref(),
        };
        let v = Policy::evaluate(reqs, subject, &sigs);
        verdicts.push(Verdict {
            image: reference.to_string(),
            digest: target.digest.to_string(),
            platform: target.platform,
            verified: v.accepted,
            reason: v.reason,
        });
    }
    Ok(verdicts)
}

/// The signature layers under `digest`'s `.sig` tag in `repo` (none when there is no tag);
/// each payload is fetched bounded and checked against its digest.
async fn registry_signatures(
    client: &Client,
    repo: &str,
    digest: &Digest,
) -> Result<Vec<Signature>, Error> {
    let tag = sign::signature_tag(digest);
    let fetched = match client.get_manifest(repo, &tag).await {
        Ok(f) => f,
        Err(registry::Error::ManifestUnknown { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for layer in signature_layers(&fetched.media_type, &fetched.bytes)? {
        check_payload_size(&format!("{repo}:{tag}"), &layer)?;
        let payload = client.get_small_blob(repo, &layer).await?;
        out.push(signature_of(&layer, payload));
    }
    Ok(out)
}

/// The layers of a `.sig` manifest that are signatures (other media types are not read); a tag
/// holding an index holds none.
pub(crate) fn signature_layers(media_type: &str, bytes: &[u8]) -> Result<Vec<Descriptor>, Error> {
    Ok(match AnyManifest::parse(Some(media_type), bytes)? {
        AnyManifest::Image(m) => m
            .layers
            .into_iter()
            .filter(|l| l.media_type == sign::MEDIA_TYPE)
            .collect(),
        AnyManifest::Index(_) => Vec::new(),
    })
}

pub(crate) fn check_payload_size(what: &str, layer: &Descriptor) -> Result<(), Error> {
    if layer.size > MAX_PAYLOAD {
        return Err(Error::PayloadTooLarge {
            what: what.to_string(),
            digest: layer.digest.clone(),
            size: layer.size,
            limit: MAX_PAYLOAD,
        });
    }
    Ok(())
}

pub(crate) fn signature_of(layer: &Descriptor, payload: Vec<u8>) -> Signature {
    Signature {
        media_type: layer.media_type.clone(),
        annotations: layer.annotations.clone().unwrap_or_default(),
        payload,
    }
}
