//! Local image storage for `gdcloud artifacts pull` and `push`: OCI image layouts on disk
//! (image-layout spec: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`), and the tarballs push reads
//! (oci-archive, `docker save`), so that the ops above never touch a path inside an image themselves.
//!
//! Pull writes a layout that skopeo, umoci and podman read (`oci:DIR:TAG`). Blobs stream through
//! [`BlobWriter`] into `*.partial` files, are hashed as they stream and only get their final name
//! when the digest matches (STYLE §4, rule 5); an interrupted pull leaves a marker file so a re-run
//! resumes (HTTP `Range`) instead of refusing the non-empty directory or starting over. The
//! writing half lives in `pull`: fd-relative to DESTINATION, never following a symlink, and
//! resuming only from state this user left (DESTINATION may lie where others can write).
//!
//! Push reads any of the three local forms through [`open_source`]: one [`LocalImage`] (`image`)
//! whose blobs are streamed from the directory or straight out of the tarball, never extracted.
//! `docker_archive` holds both halves of the `docker save` format: the reader `open_source` uses
//! and the writer `extract --docker-executable` uses ([`write_docker_archive`], which takes
//! `extract`'s layers: `layout` imports `extract`, never the other way round).

mod dir;
mod docker_archive;
mod error;
mod image;
mod pull;
mod refname;
mod source;
mod tar_index;
mod verify;
mod writer;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bounded;
use crate::oci::{Descriptor, Digest, Index};

use dir::open_owned;
pub use docker_archive::write_docker_archive;
pub use error::Error;
pub use image::{BlobSource, LocalImage};
pub use pull::PresentBlob;
pub use refname::is_valid_ref_name;
pub use source::open_source;
pub use writer::BlobWriter;

/// The file an interrupted pull of ours leaves in its destination, holding the source reference;
/// its presence is what lets a re-run resume into a non-empty directory. It is only believed when
/// this user owns it (see `dir::check_owned`): anyone who can write the parent directory can
/// plant one.
pub const PULL_MARKER: &str = ".gdcloud-pull-incomplete";
/// The image-layout version we write (and the major version we read).
pub const LAYOUT_VERSION: &str = "1.0.0";

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
/// Layouts are shared with other tools (podman may run as another user): plain 0644 files.
const FILE_MODE: u32 = 0o644;

/// The `oci-layout` file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

/// Checks an `oci-layout` file's content; the error is the reason for [`Error::NotALayout`].
pub(crate) fn check_layout_file(bytes: &[u8]) -> Result<(), String> {
    let f: LayoutFile =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid oci-layout file: {e}"))?;
    if f.image_layout_version.split('.').next() != Some("1") {
        return Err(format!(
            "unsupported imageLayoutVersion {:?} (expected 1.x)",
            f.image_layout_version
        ));
    }
    Ok(())
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// Set for a layout a pull writes: every write goes through these descriptors (see `dir`).
    dirs: Option<Arc<pull::Dirs>>,
}

impl Layout {
    /// Opens an existing layout (a directory with a valid `oci-layout` file), for reading.
    pub fn open(root: &Path) -> Result<Layout, Error> {
        let meta = fs::metadata(root).map_err(Error::io("open layout", root))?;
        let not_layout = |reason: String| Error::NotALayout {
            path: root.to_path_buf(),
            reason,
        };
        if !meta.is_dir() {
            return Err(not_layout("not a directory".into()));
        }
        let layout_file = root.join(LAYOUT_FILE);
        let bytes = match File::open(&layout_file) {
            Ok(f) => bounded::read(f, 4096, "the oci-layout file")
                .map_err(|e| not_layout(e.to_string()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_layout("it has no oci-layout file".into()))
            }
            Err(e) => return Err(Error::io("read", &layout_file)(e)),
        };
        check_layout_file(&bytes).map_err(not_layout)?;
        Ok(Layout {
            root: root.to_path_buf(),
            dirs: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Index, Error> {
        match self.read_index()? {
            Some(index) => Ok(index),
            None => {
                let marker = match &self.dirs {
                    Some(d) => pull::read_marker(&d.root).ok().flatten(),
                    None => fs::read(self.root.join(PULL_MARKER))
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string()),
                };
                Err(match marker {
                    Some(source_ref) => Error::IncompletePull {
                        path: self.root.clone(),
                        source_ref,
                    },
                    None => Error::NotALayout {
                        path: self.root.clone(),
                        reason: "it has no index.json".into(),
                    },
                })
            }
        }
    }

    /// `index.json`, bounded by [`bounded::STATE`]; in a layout being pulled into, only one this
    /// user wrote (a planted one would add its entries to ours).
    fn read_index(&self) -> Result<Option<Index>, Error> {
        let path = self.root.join(INDEX_FILE);
        let file = match &self.dirs {
            Some(d) => match open_owned(&d.root, INDEX_FILE, libc::O_RDONLY)? {
                Some(f) => f,
                None => return Ok(None),
            },
            None => match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("read", &path)(e)),
            },
        };
        let not_layout = |reason: String| Error::NotALayout {
            path: self.root.clone(),
            reason,
        };
        let bytes = bounded::read(file, bounded::STATE, "index.json")
            .map_err(|e| not_layout(e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| not_layout(format!("invalid index.json: {e}")))
    }

    /// Where the blob `d` lives: `blobs/<algorithm>/<hex>` (a parsed [`Digest`] is safe as a name).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    /// Whether the blob exists with the descriptor's size: a cheap check for readers of a layout
    /// they trust. Pull uses [`Layout::present_blob`].
    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&desc.digest))
            .is_ok_and(|m| m.is_file() && m.len() == desc.size)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, Error> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingBlob {
                    digest: d.clone(),
                    path: self.root.clone(),
                }
            } else {
                Error::io("open blob", &path)(e)
            }
        })
    }

    /// Reads a small blob (manifest, index, config) whole, refusing one over `limit` bytes (a
    /// [`bounded`] limit) and checking its size and digest.
    pub fn read_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(&desc.digest);
        if desc.size > limit {
            return Err(Error::TooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
                limit,
                path,
            });
        }
        let file = self.open_blob(&desc.digest)?;
        let bytes = bounded::read(file, limit, &format!("blob {}", desc.digest))
            .map_err(Error::io("read blob", &path))?;
        verify::check_bytes(&bytes, desc, &path)?;
        Ok(bytes)
    }

    /// The image to push or extract: the entry whose ref name (or containerd image name) is
    /// `name`; without a name, the only entry; else [`Error::Ambiguous`] listing the names.
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor, Error> {
        self.resolve_named(name).map(|(_, d)| d)
    }

    pub(crate) fn resolve_named(
        &self,
        name: Option<&str>,
    ) -> Result<(Option<String>, Descriptor), Error> {
        refname::choose_in_index(self.index()?, name, &self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::ANNOTATION_REF_NAME;

    fn desc_of(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: crate::oci::OCI_LAYER_TAR.into(),
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    #[test]
    fn layout_file_versions() {
        assert!(check_layout_file(br#"{"imageLayoutVersion":"1.0.0"}"#).is_ok());
        assert!(check_layout_file(br#"{"imageLayoutVersion":"1.1.0"}"#).is_ok());
        assert!(check_layout_file(br#"{"imageLayoutVersion":"2.0.0"}"#).is_err());
        assert!(check_layout_file(b"{}").is_err());
    }

    #[test]
    fn set_ref_replaces_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_for_pull(&dir.path().join("l"), "r").unwrap();
        l.set_ref(desc_of(b"a"), "a").unwrap();
        l.set_ref(desc_of(b"b"), "b").unwrap();
        l.set_ref(desc_of(b"c"), "a").unwrap();
        let names: Vec<_> = l
            .index()
            .unwrap()
            .manifests
            .iter()
            .map(|d| {
                (
                    d.annotation(ANNOTATION_REF_NAME).unwrap().to_string(),
                    d.size,
                )
            })
            .collect();
        assert_eq!(names, [("a".to_string(), 1), ("b".to_string(), 1)]);
        assert_eq!(
            l.resolve(Some("a")).unwrap().digest,
            Digest::sha256_of(b"c")
        );
        assert!(matches!(
            l.set_ref(desc_of(b"d"), "../x"),
            Err(Error::InvalidRefName { .. })
        ));
    }

    #[test]
    fn read_blob_checks_limit_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_for_pull(&dir.path().join("l"), "r").unwrap();
        let d = l.write_blob(b"{}").unwrap();
        let desc = desc_of(b"{}");
        assert_eq!(d, desc.digest);
        assert_eq!(l.read_blob(&desc, 10).unwrap(), b"{}");
        assert!(matches!(l.read_blob(&desc, 1), Err(Error::TooLarge { .. })));
        fs::write(l.blob_path(&d), b"{]").unwrap();
        assert!(matches!(
            l.read_blob(&desc, 10),
            Err(Error::DigestMismatch { .. })
        ));
        fs::write(l.blob_path(&d), b"{ }").unwrap();
        assert!(matches!(
            l.read_blob(&desc, 10),
            Err(Error::SizeMismatch { .. })
        ));
        assert!(!l.has_blob(&desc));
    }

    #[test]
    fn index_json_is_read_within_the_state_bound() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_for_pull(&dir.path().join("l"), "r").unwrap();
        l.set_ref(desc_of(b"a"), "a").unwrap();
        let f = File::options()
            .write(true)
            .open(l.root().join(INDEX_FILE))
            .unwrap();
        f.set_len(bounded::STATE + 1).unwrap();
        let e = Layout::open(l.root()).unwrap().index().unwrap_err();
        assert!(
            e.to_string()
                .ends_with("index.json is larger than 16 MiB (the limit for it); refusing to read it into memory"),
            "{e}"
        );
    }

    #[test]
    fn index_of_incomplete_pull_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_for_pull(&dir.path().join("l"), "reg/x:1").unwrap();
        assert!(matches!(
            l.index(),
            Err(Error::IncompletePull { source_ref, .. }) if source_ref == "reg/x:1"
        ));
        assert!(matches!(l.finish_pull(), Err(Error::NotALayout { .. })));
    }
}
