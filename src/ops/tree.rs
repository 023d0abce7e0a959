//! `gdcloud artifacts tree OCI_BUNDLE`: what a bundle (or a registry reference) holds — images,
//! indexes, manifests with their platform, configs, layers and signature tags — as data the plugin
//! draws as a tree or prints as JSON.
//!
//! The text form keeps the runbook's pipeline working unchanged:
//! `tree DIR | grep PROJECT/REPO | cut -d ":" -f2 | grep -v '.sig'` prints exactly the tags of that
//! repository, because only an image's own line names its repository (as `PROJECT/REPO:TAG`, never
//! with a registry host or port) and every other line holds digests, sizes and media types only.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::layout::{self, Layout};
use crate::oci::{self, AnyManifest, Descriptor};
use crate::registry::{self, Client, ClientOptions, Reference};

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
    #[error("{0} holds no OCI image layout (no oci-layout file in it or below it)")]
    NoLayout(PathBuf),
    #[error("directory {0} does not exist; check the path (a registry image is written HOST/PROJECT/REPO:TAG)")]
    NoDirectory(PathBuf),
    #[error("{0} is a file, not a directory; give the directory of an OCI layout or bundle")]
    NotDirectory(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A directory (a layout or a bundle of nested layouts) or a registry reference.
    pub target: String,
    pub default_registry: Option<String>,
    pub client: ClientOptions,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    pub kind: &'static str,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Image {
    /// `PROJECT/REPO` (no registry host).
    pub repository: String,
    pub tag: Option<String>,
    /// Where it was found: a layout directory or a registry.
    pub location: String,
    pub signature: bool,
    pub root: Node,
}

const MAX_DEPTH: usize = 8;

/// Layout directories at or below `dir`, in name order.
pub(crate) fn find_layouts(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join("oci-layout").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        find_layouts(&d, depth + 1, out);
    }
}

/// Repository and tag from a layout entry's `ref.name`: a full reference (`[host/]proj/repo:tag`)
/// names both; a bare tag takes the layout's path below the bundle as the repository.
pub fn split_ref_name(ref_name: Option<&str>, fallback_repo: &str) -> (String, Option<String>) {
    let Some(name) = ref_name.filter(|n| !n.is_empty()) else {
        return (fallback_repo.to_string(), None);
    };
    if name.contains('/') {
        if let Ok(r) = Reference::parse(name, Some("localhost")) {
            return (r.repository, r.tag);
        }
    }
    (fallback_repo.to_string(), Some(name.to_string()))
}

fn kind_of(media_type: &str) -> &'static str {
    if oci::is_index(media_type) {
        "index"
    } else if oci::is_manifest(media_type) {
        "manifest"
    } else {
        "blob"
    }
}

enum Source<'a> {
    Local(&'a Layout),
    Remote(&'a Client, &'a str),
}

impl Source<'_> {
    async fn read(&self, desc: &Descriptor) -> Result<Vec<u8>, Error> {
        Ok(match self {
            Source::Local(l) => l.read_blob(desc, registry::client::MAX_MANIFEST_BYTES)?,
            Source::Remote(c, repo) => c.get_manifest(repo, &desc.digest.to_string()).await?.bytes,
        })
    }
}

fn leaf(kind: &'static str, d: &Descriptor) -> Node {
    Node {
        kind,
        digest: d.digest.to_string(),
        media_type: d.media_type.clone(),
        size: d.size,
        platform: d.platform.as_ref().map(|p| p.to_string()),
        artifact_type: d.artifact_type.clone(),
        title: d.annotation(oci::ANNOTATION_TITLE).map(str::to_string),
        children: Vec::new(),
    }
}

/// The node of a manifest or index and everything under it.
async fn describe(source: &Source<'_>, desc: &Descriptor, depth: usize) -> Result<Node, Error> {
    let mut node = leaf(kind_of(&desc.media_type), desc);
    if node.kind == "blob" || depth > 4 {
        return Ok(node);
    }
    let bytes = source.read(desc).await?;
    match AnyManifest::parse(Some(&desc.media_type), &bytes)? {
        AnyManifest::Index(index) => {
            for child in &index.manifests {
                node.children
                    .push(Box::pin(describe(source, child, depth + 1)).await?);
            }
        }
        AnyManifest::Image(m) => {
            node.artifact_type = m.artifact_type.clone().or(node.artifact_type);
            node.children.push(leaf("config", &m.config));
            for l in &m.layers {
                node.children.push(leaf("layer", l));
            }
        }
    }
    Ok(node)
}

pub async fn run(opts: &Options) -> Result<Vec<Image>, Error> {
    let path = Path::new(&opts.target);
    if path.is_dir() {
        return local(path).await;
    }
    // A path is never a registry reference: a typo in `./bundle` is a missing directory.
    if path.exists() {
        return Err(Error::NotDirectory(path.to_path_buf()));
    }
    if crate::host::written_as_path(&opts.target) {
        return Err(Error::NoDirectory(path.to_path_buf()));
    }
    remote(opts).await
}

async fn local(dir: &Path) -> Result<Vec<Image>, Error> {
    let mut layouts = Vec::new();
    find_layouts(dir, 0, &mut layouts);
    if layouts.is_empty() {
        return Err(Error::NoLayout(dir.to_path_buf()));
    }
    let mut images = Vec::new();
    for root in layouts {
        let layout = Layout::open(&root)?;
        let fallback = fallback_repository(dir, &root);
        for entry in layout.index()?.manifests {
            // An image we pulled remembers its repository; a bundle's folders name theirs.
            let pulled_from = entry
                .annotation(crate::oci::ANNOTATION_SOURCE)
                .and_then(|s| s.split_once('/'))
                .map(|(_, repo)| repo.to_string());
            let (repository, tag) = split_ref_name(
                entry.annotation(oci::ANNOTATION_REF_NAME),
                pulled_from.as_deref().unwrap_or(&fallback),
            );
            let node = describe(&Source::Local(&layout), &entry, 0).await?;
            images.push(Image {
                signature: tag
                    .as_deref()
                    .is_some_and(super::list_versions::is_signature_tag),
                repository,
                tag,
                location: root.display().to_string(),
                root: node,
            });
        }
    }
    Ok(images)
}

/// The repository of a layout entry whose ref name is a bare tag: the layout's path below the
/// bundle `dir`; for a layout given directly, its folder and the one above it (Harbor
/// repositories are PROJECT/REPO: `bundle/proj/app` → `proj/app`).
pub(crate) fn fallback_repository(dir: &Path, root: &Path) -> String {
    let rel = root
        .strip_prefix(dir)
        .unwrap_or(root)
        .to_string_lossy()
        .to_string();
    if !rel.is_empty() {
        return rel;
    }
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut parts: Vec<String> = canonical
        .components()
        .rev()
        .take(2)
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().to_string()),
            _ => None,
        })
        .collect();
    parts.reverse();
    parts.join("/")
}

async fn remote(opts: &Options) -> Result<Vec<Image>, Error> {
    let reference = Reference::parse_argument(&opts.target, opts.default_registry.as_deref())?;
    let client = Client::connect_for(&reference, &opts.client).await?;
    let repo = reference.repository.as_str();
    let top = client
        .get_manifest(repo, &reference.manifest_reference())
        .await?;
    let source = Source::Remote(&client, repo);
    let root = describe(&source, &top.descriptor(), 0).await?;
    let mut images = vec![Image {
        repository: reference.repository.clone(),
        tag: reference
            .tag
            .clone()
            .or_else(|| reference.digest.is_none().then(|| "latest".into())),
        location: reference.registry.clone(),
        signature: false,
        root,
    }];
    // Cosign keeps signatures as tags named after the digest; show the ones for this image.
    let prefix = format!("sha256-{}.", top.digest.hex());
    if let Ok(tags) = client.tags(repo).await {
        for tag in tags.into_iter().filter(|t| t.starts_with(&prefix)) {
            let fetched = client.get_manifest(repo, &tag).await?;
            let node = describe(&source, &fetched.descriptor(), 0).await?;
            images.push(Image {
                repository: reference.repository.clone(),
                tag: Some(tag),
                location: reference.registry.clone(),
                signature: true,
                root: node,
            });
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        assert_eq!(
            split_ref_name(Some("v1"), "proj/app"),
            ("proj/app".into(), Some("v1".into()))
        );
        assert_eq!(
            split_ref_name(Some("harbor.org:443/proj/app:v2"), "x"),
            ("proj/app".into(), Some("v2".into()))
        );
        assert_eq!(
            split_ref_name(Some("proj/app:v3"), "x"),
            ("proj/app".into(), Some("v3".into()))
        );
        assert_eq!(split_ref_name(None, "proj/app"), ("proj/app".into(), None));
    }
}
