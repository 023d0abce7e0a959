//! Verification of an image in a local OCI layout or oci-archive (a pulled image, a bundle):
//! its signatures are the layout's entries named `sha256-<hex>.sig` (as `skopeo copy` and
//! cosign write them into a layout), or `PROJECT/REPO:sha256-<hex>.sig` beside an image named
//! `PROJECT/REPO:TAG` in a bundle.
//!
//! A layout entry has no registry name of its own, yet `signedIdentity` and policy scopes need
//! one. It is, in order: the entry's name when it starts with a registry host; the registry and
//! repository a pull of ours recorded (`com.google.gdcloud.artifacts.source`) with the entry's
//! tag; a `PROJECT/REPO:TAG` name under the default registry (`artifacts/registry`). Otherwise
//! the image has no identity, and only rules that need none (`exactReference`,
//! `exactRepository`) can accept it.

use std::path::Path;

use super::{
    check_payload_size, signature_layers, signature_of, targets, Error, Selection, Verdict,
    MAX_PAYLOAD,
};
use crate::bounded;
use crate::layout::{self, open_source, LocalImage};
use crate::oci::{Digest, ANNOTATION_SOURCE};
use crate::registry::Reference;
use crate::sign::{self, DockerRef, Policy, Signature, Subject};

/// Judges the image `name` of the local source at `path` (and, as `selection` asks, its
/// platform manifests).
pub fn check_layout(
    path: &Path,
    name: Option<&str>,
    policy: &Policy,
    selection: &Selection,
    default_registry: Option<&str>,
) -> Result<Vec<Verdict>, Error> {
    let image = open_source(path, name)?;
    let identity = identity_of(&image, default_registry);
    let label = match &image.name {
        Some(n) => format!("{}:{n}", path.display()),
        None => path.display().to_string(),
    };
    let reqs = policy.requirements_for(identity.as_ref());
    let mut verdicts = Vec::new();
    for target in targets(&label, &image.manifest, &image.manifest_bytes, selection)? {
        let sigs = if Policy::needs_signatures(reqs) {
            layout_signatures(path, image.name.as_deref(), &target.digest)?
        } else {
            Vec::new()
        };
        let subject = Subject {
            digest: &target.digest,
            identity: identity.as_ref(),
        };
        let v = Policy::evaluate(reqs, subject, &sigs);
        verdicts.push(Verdict {
            image: label.clone(),
            digest: target.digest.to_string(),
            platform: target.platform,
            verified: v.accepted,
            reason: v.reason,
        });
    }
    Ok(verdicts)
}

fn identity_of(image: &LocalImage, default_registry: Option<&str>) -> Option<DockerRef> {
    let name = image.name.as_deref()?;
    let first = name.split('/').next().unwrap_or("");
    if name.contains('/') && crate::host::looks_like_host(first) {
        return DockerRef::parse(name);
    }
    if let Some(source) = image.manifest.annotation(ANNOTATION_SOURCE) {
        if crate::registry::reference::valid_tag(name) {
            return DockerRef::parse(&format!("{source}:{name}"));
        }
    }
    let reference = Reference::parse(name, default_registry).ok()?;
    super::identity_of(&reference)
}

/// The layout entries that may hold `digest`'s signatures, most specific first.
fn signature_names(name: Option<&str>, digest: &Digest) -> Vec<String> {
    let tag = sign::signature_tag(digest);
    let mut names = Vec::new();
    if let Some((repo, _)) = name
        .and_then(|n| n.rsplit_once(':'))
        .filter(|(r, _)| !r.is_empty())
    {
        names.push(format!("{repo}:{tag}"));
    }
    names.push(tag);
    names
}

fn layout_signatures(
    path: &Path,
    name: Option<&str>,
    digest: &Digest,
) -> Result<Vec<Signature>, Error> {
    for candidate in signature_names(name, digest) {
        let sig = match open_source(path, Some(&candidate)) {
            Ok(s) => s,
            Err(layout::Error::NoSuchImage { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let what = format!("{}:{candidate}", path.display());
        let mut out = Vec::new();
        for layer in signature_layers(&sig.manifest.media_type, &sig.manifest_bytes)? {
            check_payload_size(&what, &layer)?;
            let reader = sig.blobs.open(&layer.digest)?;
            // The reader checks the digest at EOF, which a payload within the limit reaches.
            let payload = bounded::read(
                reader,
                MAX_PAYLOAD,
                &format!("signature payload {}", layer.digest),
            )
            .map_err(layout::Error::io("read signature payload", path))?;
            if payload.len() as u64 != layer.size {
                return Err(layout::Error::SizeMismatch {
                    path: path.to_path_buf(),
                    digest: layer.digest.clone(),
                    expected: layer.size,
                    actual: payload.len() as u64,
                }
                .into());
            }
            out.push(signature_of(&layer, payload));
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_looked_up_beside_a_bundle_name_then_bare() {
        let d = Digest::sha256_of(b"m");
        let tag = sign::signature_tag(&d);
        assert_eq!(
            signature_names(Some("proj/app:1.0"), &d),
            vec![format!("proj/app:{tag}"), tag.clone()]
        );
        assert_eq!(signature_names(Some("1.0"), &d), vec![tag.clone()]);
        assert_eq!(signature_names(None, &d), vec![tag]);
    }
}
