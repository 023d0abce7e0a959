//! Reading a bundle for `load`: every layout at or below BUNDLE (as `tree` finds them), every
//! entry of their `index.json` as something to load — an image or index under its
//! `PROJECT/REPO:TAG` ref name, a cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`) beside it, or
//! an OCI 1.1 referrer (a manifest with a `subject`) — with the exact bytes of its manifests,
//! children before their index, and the blobs they name.
//!
//! Manifests are small and bounded ([`MAX_MANIFEST_BYTES`]), so they are read and checked
//! against their digests here, once; blobs are only named, and stream from the layout when sent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Error;
use crate::layout::{BlobSource, Layout};
use crate::oci::{self, AnyManifest, Descriptor, Digest};
use crate::ops::list_versions::is_signature_tag;
use crate::ops::tree::{fallback_repository, find_layouts, split_ref_name};
use crate::registry::MAX_MANIFEST_BYTES;

/// How deep an index may nest indexes (an index of indexes is legal, and rare).
const MAX_NESTING: usize = 4;

/// What an entry is to the others: images go first, then what follows an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Image,
    /// A cosign tag: the signature, attestation or SBOM of the manifest with this digest.
    Signature(Digest),
    /// An OCI 1.1 referrer of the manifest with this digest (its `subject`).
    Referrer(Digest),
}

/// One thing to load: a tag (or, for an untagged referrer, a digest) in one repository.
pub(super) struct Entry {
    /// `PROJECT/REPO` in the bundle.
    pub(super) repository: String,
    pub(super) tag: Option<String>,
    /// The entry's ref name in its layout (what `verify` looks it up by).
    pub(super) ref_name: Option<String>,
    /// Index into [`Bundle::layouts`].
    pub(super) layout: usize,
    pub(super) root: Descriptor,
    pub(super) kind: Kind,
    /// Every manifest and index, children before their index; the root is last.
    pub(super) manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Every blob those manifests name, once (non-distributable layers left out).
    pub(super) blobs: Vec<Descriptor>,
    /// Why it cannot be loaded (a manifest missing or corrupt in the layout), one line.
    pub(super) problem: Option<String>,
}

impl Entry {
    /// How the bundle names it: `PROJECT/REPO:TAG`, or `PROJECT/REPO@DIGEST`.
    pub(super) fn name(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repository),
            None => format!("{}@{}", self.repository, self.root.digest),
        }
    }
}

pub(super) struct Layouts {
    pub(super) path: PathBuf,
    pub(super) blobs: Arc<dyn BlobSource>,
}

pub(super) struct Bundle {
    pub(super) layouts: Vec<Layouts>,
    pub(super) entries: Vec<Entry>,
}

/// Reads every layout at or below `dir`.
pub(super) fn read(dir: &Path) -> Result<Bundle, Error> {
    if !dir.is_dir() {
        return Err(Error::NoBundle(dir.to_path_buf()));
    }
    let mut roots = Vec::new();
    find_layouts(dir, 0, &mut roots);
    if roots.is_empty() {
        return Err(Error::NoBundle(dir.to_path_buf()));
    }
    let mut bundle = Bundle {
        layouts: Vec::new(),
        entries: Vec::new(),
    };
    let mut untagged = Vec::new();
    for root in roots {
        let layout = Layout::open(&root)?;
        let fallback = fallback_repository(dir, &root);
        let at = bundle.layouts.len();
        for desc in layout.index()?.manifests {
            let entry = read_entry(&layout, at, desc, &fallback);
            match (&entry.tag, &entry.kind) {
                (Some(_), _) => bundle.entries.push(entry),
                (None, Kind::Referrer(_)) => untagged.push(entry),
                // An untagged entry that refers to nothing is no part of the bundle's listing.
                (None, _) => {}
            }
        }
        bundle.layouts.push(Layouts {
            path: root,
            blobs: layout.blob_source(),
        });
    }
    place_referrers(&mut bundle.entries, untagged);
    Ok(bundle)
}

fn read_entry(layout: &Layout, at: usize, desc: Descriptor, fallback: &str) -> Entry {
    let ref_name = desc
        .annotation(oci::ANNOTATION_REF_NAME)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let pulled_from = desc
        .annotation(oci::ANNOTATION_SOURCE)
        .and_then(|s| s.split_once('/'))
        .map(|(_, repo)| repo.to_string());
    let (repository, tag) = split_ref_name(
        ref_name.as_deref(),
        pulled_from.as_deref().unwrap_or(fallback),
    );
    let mut entry = Entry {
        repository,
        tag,
        ref_name,
        layout: at,
        root: desc.clone(),
        kind: Kind::Image,
        manifests: Vec::new(),
        blobs: Vec::new(),
        problem: None,
    };
    let mut seen = HashSet::new();
    match walk(layout, &desc, 0, &mut entry, &mut seen) {
        Ok(subject) => entry.kind = kind_of(entry.tag.as_deref(), subject),
        Err(reason) => entry.problem = Some(reason),
    }
    entry
}

/// What an entry is from its tag and `subject`: a cosign tag (`sha256-<hex>.sig/.att/.sbom`) or
/// the OCI referrers tag schema's index (`sha256-<hex>`, what `save` stores when the registry has
/// no referrers API) travels with the image of that digest, as does a manifest with a subject;
/// anything else is an image.
fn kind_of(tag: Option<&str>, subject: Option<Digest>) -> Kind {
    let referrers_tag = |t: &&str| {
        t.strip_prefix("sha256-")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if let Some(tag) = tag.filter(|t| is_signature_tag(t) || referrers_tag(t)) {
        let hex = &tag["sha256-".len().."sha256-".len() + 64];
        if let Ok(d) = Digest::parse(&format!("sha256:{hex}")) {
            return Kind::Signature(d);
        }
    }
    match subject {
        Some(d) => Kind::Referrer(d),
        None => Kind::Image,
    }
}

/// Reads `desc` and what it names into `entry`, children first; returns its `subject`.
fn walk(
    layout: &Layout,
    desc: &Descriptor,
    depth: usize,
    entry: &mut Entry,
    seen: &mut HashSet<Digest>,
) -> Result<Option<Digest>, String> {
    if !seen.insert(desc.digest.clone()) {
        return Ok(None);
    }
    if depth > MAX_NESTING {
        return Err(format!(
            "indexes nest deeper than {MAX_NESTING} levels at {}",
            desc.digest
        ));
    }
    let bytes = layout
        .read_blob(desc, MAX_MANIFEST_BYTES)
        .map_err(|e| e.to_string())?;
    let parsed = AnyManifest::parse(Some(&desc.media_type), &bytes)
        .map_err(|e| format!("manifest {} is not valid: {e}", desc.digest))?;
    let subject = match parsed {
        AnyManifest::Index(index) => {
            for child in &index.manifests {
                walk(layout, child, depth + 1, entry, seen)?;
            }
            index
                .extra
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(|d| d.as_str())
                .and_then(|d| Digest::parse(d).ok())
        }
        AnyManifest::Image(m) => {
            for d in std::iter::once(&m.config).chain(&m.layers) {
                let foreign = d.urls.as_ref().is_some_and(|u| !u.is_empty())
                    && d.media_type.contains("nondistributable");
                if !foreign && seen.insert(d.digest.clone()) {
                    entry.blobs.push(d.clone());
                }
            }
            m.subject.map(|s| s.digest)
        }
    };
    entry.manifests.push((desc.clone(), bytes));
    Ok(subject)
}

/// `--ref PATTERN`: the images whose `PROJECT/REPO:TAG` matches a pattern (`*` stands for any
/// run of characters), with their cosign tags and referrers; everything without patterns.
pub(super) fn select(entries: Vec<Entry>, patterns: &[String]) -> Vec<Entry> {
    if patterns.is_empty() {
        return entries;
    }
    let chosen = |e: &Entry| patterns.iter().any(|p| glob(p, &e.name()));
    let kept: HashSet<(String, Digest)> = entries
        .iter()
        .filter(|e| e.kind == Kind::Image && chosen(e))
        .flat_map(|e| {
            e.manifests
                .iter()
                .map(|(d, _)| (e.repository.clone(), d.digest.clone()))
        })
        .collect();
    entries
        .into_iter()
        .filter(|e| match &e.kind {
            Kind::Image => chosen(e),
            Kind::Signature(d) | Kind::Referrer(d) => {
                chosen(e) || kept.contains(&(e.repository.clone(), d.clone()))
            }
        })
        .collect()
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included).
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields one part at least");
    let Some(mut left) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// An untagged referrer goes into every repository of the bundle that holds its subject (an
/// image or one of an index's manifests); one whose subject is not in the bundle stays out.
fn place_referrers(entries: &mut Vec<Entry>, untagged: Vec<Entry>) {
    for referrer in untagged {
        let Kind::Referrer(subject) = &referrer.kind else {
            continue;
        };
        let mut repos: Vec<String> = entries
            .iter()
            .filter(|e| e.manifests.iter().any(|(d, _)| &d.digest == subject))
            .map(|e| e.repository.clone())
            .collect();
        repos.sort();
        repos.dedup();
        for repository in repos {
            entries.push(Entry {
                repository,
                tag: None,
                ref_name: None,
                layout: referrer.layout,
                root: referrer.root.clone(),
                kind: referrer.kind.clone(),
                manifests: referrer.manifests.clone(),
                blobs: referrer.blobs.clone(),
                problem: referrer.problem.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags_follow_their_image_and_subjects_make_referrers() {
        let d = Digest::sha256_of(b"m");
        let sig = format!("sha256-{}.sig", d.hex());
        assert_eq!(kind_of(Some(&sig), None), Kind::Signature(d.clone()));
        let att = format!("sha256-{}.att", d.hex());
        assert_eq!(kind_of(Some(&att), None), Kind::Signature(d.clone()));
        assert_eq!(kind_of(Some("1.0"), None), Kind::Image);
        assert_eq!(
            kind_of(Some("1.0"), Some(d.clone())),
            Kind::Referrer(d.clone())
        );
        assert_eq!(kind_of(Some("sha256-abc.sig"), None), Kind::Image);
        // The referrers tag schema's index travels with its image too.
        let referrers = format!("sha256-{}", d.hex());
        assert_eq!(kind_of(Some(&referrers), None), Kind::Signature(d.clone()));
        assert_eq!(kind_of(Some("sha256-abc"), None), Kind::Image);
    }

    #[test]
    fn ref_patterns() {
        assert!(glob("proj/app:1.0", "proj/app:1.0"));
        assert!(!glob("proj/app:1.0", "proj/app:1.01"));
        assert!(glob("proj/*", "proj/a/b:t"));
        assert!(glob("*:1.0", "proj/app:1.0"));
        assert!(glob("proj/*:*", "proj/app:1.0"));
        assert!(glob("p*a*p:1", "proj/app:1"));
        assert!(!glob("p*x*", "proj/app:1"));
        assert!(!glob("*app:1.0", "proj/app:1"));
        assert!(glob("*", ""));
    }
}
