//! Local image storage for `gdcloud artifacts pull` and `push`: OCI image layouts on disk
//! (image-layout spec: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`), and the tarballs push reads
//! (oci-archive, `docker save`), so that the ops above never touch a path inside an image themselves.
//!
//! Pull writes a layout that skopeo, umoci and podman read (`oci:DIR:TAG`). Blobs stream through
//! [`BlobWriter`] into `*.partial` files, are hashed as they stream and only get their final name
//! when the digest matches (STYLE §4, rule 5); an interrupted pull leaves a marker file so a re-run
//! resumes (HTTP `Range`) instead of refusing the non-empty directory or starting over.
//!
//! Push reads any of the three local forms through [`open_source`]: one [`LocalImage`] whose blobs
//! are streamed from the directory or straight out of the tarball, never extracted.

mod docker_archive;
mod error;
mod refname;
pub mod source;
mod tar_index;
mod verify;
mod writer;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::oci::{Descriptor, Digest, Index, ANNOTATION_REF_NAME};

pub use error::Error;
pub use refname::is_valid_ref_name;
pub use source::{open_source, BlobSource, LocalImage};
pub use writer::BlobWriter;

/// The file an interrupted pull of ours leaves in its destination, holding the source reference;
/// its presence is what lets a re-run resume into a non-empty directory.
pub const PULL_MARKER: &str = ".gdcloud-pull-incomplete";
/// The image-layout version we write (and the major version we read).
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The largest manifest or index we read into memory: registries refuse bigger ones (Distribution
/// and containers/image cap manifests at 4 MiB).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// The largest image config we read into memory.
pub const CONFIG_LIMIT: u64 = 8 << 20;
/// The largest `index.json` or `manifest.json` we read into memory.
pub(crate) const INDEX_LIMIT: u64 = 16 << 20;

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

/// Reads at most `limit` bytes of `r`; `Ok(None)` when there are more.
pub(crate) fn read_limited(r: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// What [`Layout::create_for_pull`] would refuse, checked without writing anything: a pull
    /// checks DESTINATION before it contacts the registry, and creates it only once the source
    /// is known to exist, so a mistyped reference leaves no half-made layout behind.
    pub fn check_for_pull(root: &Path, source_ref: &str) -> Result<(), Error> {
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    path: root.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("inspect", root)(e)),
        }
        let empty = fs::read_dir(root)
            .map_err(Error::io("list", root))?
            .next()
            .is_none();
        if empty {
            return Ok(());
        }
        let marker = root.join(PULL_MARKER);
        match fs::read(&marker) {
            Ok(b) => {
                let recorded = String::from_utf8_lossy(&b).trim_end().to_string();
                if recorded == source_ref {
                    Ok(())
                } else {
                    Err(Error::OtherPull {
                        path: root.to_path_buf(),
                        source_ref: recorded,
                    })
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotEmpty {
                path: root.to_path_buf(),
            }),
            Err(e) => Err(Error::io("read", &marker)(e)),
        }
    }

    /// For pull: `root` must be absent or an empty directory (anything else is refused, touching
    /// nothing), or a layout left by an interrupted pull of the same `source_ref` (marker file
    /// [`PULL_MARKER`]), which is returned as is so its `.partial` blobs continue.
    ///
    /// The marker is written before anything else, so an interruption at any later point leaves a
    /// directory a re-run recognises; [`Layout::finish_pull`] removes it.
    pub fn create_for_pull(root: &Path, source_ref: &str) -> Result<Layout, Error> {
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    path: root.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(Error::io("create directory", root))?
            }
            Err(e) => return Err(Error::io("inspect", root)(e)),
        }
        // Two pulls started into the same empty directory must not both initialise it.
        let _lock = atomic::DirLock::acquire(root).map_err(Error::io("lock", root))?;
        let layout = Layout {
            root: root.to_path_buf(),
        };
        let marker = root.join(PULL_MARKER);
        let empty = fs::read_dir(root)
            .map_err(Error::io("list", root))?
            .next()
            .is_none();
        if !empty {
            let recorded = match fs::read(&marker) {
                Ok(b) => String::from_utf8_lossy(&b).trim_end().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::NotEmpty {
                        path: root.to_path_buf(),
                    })
                }
                Err(e) => return Err(Error::io("read", &marker)(e)),
            };
            if recorded != source_ref {
                return Err(Error::OtherPull {
                    path: root.to_path_buf(),
                    source_ref: recorded,
                });
            }
        } else {
            atomic::write(&marker, format!("{source_ref}\n").as_bytes(), FILE_MODE)
                .map_err(Error::io("write", &marker))?;
        }
        let layout_file = root.join(LAYOUT_FILE);
        if !layout_file.is_file() {
            let body = serde_json::to_vec(&LayoutFile {
                image_layout_version: LAYOUT_VERSION.to_string(),
            })
            .map_err(|e| Error::io("write", &layout_file)(e.into()))?;
            atomic::write(&layout_file, &body, FILE_MODE)
                .map_err(Error::io("write", &layout_file))?;
        }
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(Error::io("create directory", &blobs))?;
        Ok(layout)
    }

    /// Ends a pull: `index.json` must be written; leftover `.partial` files no writer holds are
    /// removed and the marker goes last, so the layout is complete once the marker is gone.
    pub fn finish_pull(&self) -> Result<(), Error> {
        let index = self.root.join(INDEX_FILE);
        if !index.is_file() {
            return Err(Error::NotALayout {
                path: self.root.clone(),
                reason: "index.json is not written yet: write the index before finishing the pull"
                    .into(),
            });
        }
        writer::remove_stale_partials(&self.root.join("blobs"))?;
        let marker = self.root.join(PULL_MARKER);
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &marker)(e)),
        }
        sync_dir(&self.root);
        Ok(())
    }

    /// Opens an existing layout (a directory with a valid `oci-layout` file).
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
            Ok(f) => read_limited(f, 4096).map_err(Error::io("read", &layout_file))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_layout("it has no oci-layout file".into()))
            }
            Err(e) => return Err(Error::io("read", &layout_file)(e)),
        };
        let bytes = bytes.ok_or_else(|| not_layout("oci-layout file is too large".into()))?;
        check_layout_file(&bytes).map_err(not_layout)?;
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Index, Error> {
        match self.read_index()? {
            Some(index) => Ok(index),
            None => match fs::read(self.root.join(PULL_MARKER)) {
                Ok(b) => Err(Error::IncompletePull {
                    path: self.root.clone(),
                    source_ref: String::from_utf8_lossy(&b).trim_end().to_string(),
                }),
                Err(_) => Err(Error::NotALayout {
                    path: self.root.clone(),
                    reason: "it has no index.json".into(),
                }),
            },
        }
    }

    fn read_index(&self) -> Result<Option<Index>, Error> {
        let path = self.root.join(INDEX_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let not_layout = |reason: String| Error::NotALayout {
            path: self.root.clone(),
            reason,
        };
        let bytes = read_limited(file, INDEX_LIMIT)
            .map_err(Error::io("read", &path))?
            .ok_or_else(|| not_layout("index.json is too large".into()))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| not_layout(format!("invalid index.json: {e}")))
    }

    /// Replaces `index.json` atomically.
    pub fn write_index(&self, index: &Index) -> Result<(), Error> {
        let path = self.root.join(INDEX_FILE);
        let bytes = serde_json::to_vec(index).map_err(|e| Error::io("write", &path)(e.into()))?;
        atomic::write(&path, &bytes, FILE_MODE).map_err(Error::io("write", &path))
    }

    /// Adds `desc` to `index.json` under the annotation `org.opencontainers.image.ref.name` =
    /// `name`, replacing (in place) the entry that had that name: one entry per name, as skopeo
    /// and umoci expect.
    pub fn set_ref(&self, desc: Descriptor, name: &str) -> Result<(), Error> {
        if !is_valid_ref_name(name) {
            return Err(Error::InvalidRefName {
                name: name.to_string(),
            });
        }
        let _lock = atomic::DirLock::acquire(&self.root).map_err(Error::io("lock", &self.root))?;
        let mut index = self.read_index()?.unwrap_or_else(Index::empty);
        let mut desc = desc;
        desc.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
        let named = |d: &Descriptor| d.annotation(ANNOTATION_REF_NAME) == Some(name);
        let at = index.manifests.iter().position(named);
        index.manifests.retain(|d| !named(d));
        match at {
            Some(i) => index.manifests.insert(i, desc),
            None => index.manifests.push(desc),
        }
        self.write_index(&index)
    }

    /// Where the blob `d` lives: `blobs/<algorithm>/<hex>` (a parsed [`Digest`] is safe as a name).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    /// Whether the blob exists with the descriptor's size; cheap (no rehash): pull skips such blobs,
    /// which only ever get their name after their digest was checked.
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

    /// Reads a small blob (manifest, index, config) whole, refusing one over `limit` bytes and
    /// checking its size and digest.
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
        let mut bytes = Vec::new();
        file.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("read blob", &path))?;
        verify::check_bytes(&bytes, desc, &path)?;
        Ok(bytes)
    }

    /// Stores a small blob (manifest, config) atomically and returns its digest; an existing blob
    /// of the same size is kept (same digest, same bytes).
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::sha256_of(bytes);
        let path = self.blob_path(&digest);
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
            return Ok(digest);
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        atomic::write(&path, bytes, FILE_MODE).map_err(Error::io("write blob", &path))?;
        Ok(digest)
    }

    /// Starts or resumes writing `desc`'s blob into `blobs/sha256/<hex>.partial`; bytes already
    /// there are re-hashed and [`BlobWriter::offset`] says where to continue (`Range: bytes=N-`).
    pub fn blob_writer(&self, desc: &Descriptor) -> Result<BlobWriter, Error> {
        BlobWriter::open(self, desc)
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

/// Makes a rename or removal in `dir` durable; best effort (some filesystems refuse to fsync a
/// directory, and the data itself is already synced).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
