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

mod dir;
mod docker_archive;
mod error;
mod refname;
pub mod source;
mod tar_index;
mod verify;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::bounded;
use crate::oci::digest::{Algorithm, Hasher};
use crate::oci::{Descriptor, Digest, Index, ANNOTATION_REF_NAME};

use dir::{open_owned, Dir};
pub use error::Error;
pub use refname::is_valid_ref_name;
pub use source::{open_source, BlobSource, LocalImage};
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
    dirs: Option<Arc<Dirs>>,
}

/// The open directories of a layout being pulled into.
#[derive(Debug)]
struct Dirs {
    root: Dir,
    blobs: Dir,
    /// `blobs/<alg>`, opened (and created) when first needed.
    algs: Mutex<HashMap<Algorithm, Arc<Dir>>>,
}

impl Dirs {
    fn alg(&self, a: Algorithm) -> Result<Arc<Dir>, Error> {
        let mut algs = self.algs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = algs.get(&a) {
            return Ok(Arc::clone(d));
        }
        let d = Arc::new(self.blobs.subdir(a.name(), true)?);
        algs.insert(a, Arc::clone(&d));
        Ok(d)
    }
}

/// A file found under a blob's name in a layout being pulled into; see [`Layout::present_blob`].
pub struct PresentBlob {
    file: File,
    dir: Arc<Dir>,
    desc: Descriptor,
}

impl PresentBlob {
    /// Whether the content is the blob's (size and digest). One that is not is removed, so that
    /// it is fetched again.
    pub fn verify(mut self) -> Result<bool, Error> {
        let name = self.desc.digest.hex();
        let path = self.dir.join(name);
        let mut hasher = Hasher::for_digest(&self.desc.digest);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &path)(e)),
            };
            hasher.update(&buf[..n]);
            if hasher.len() > self.desc.size {
                break;
            }
        }
        if hasher.len() == self.desc.size && hasher.finish() == self.desc.digest {
            return Ok(true);
        }
        self.dir.remove(name).map_err(Error::io("remove", &path))?;
        Ok(false)
    }
}

/// The source reference recorded in `dir`'s pull marker; `None` without one. A marker that is a
/// symlink or not this user's is refused ([`Error::Untrusted`]).
fn read_marker(dir: &Dir) -> Result<Option<String>, Error> {
    let Some(file) = open_owned(dir, PULL_MARKER, libc::O_RDONLY)? else {
        return Ok(None);
    };
    let path = dir.join(PULL_MARKER);
    let bytes =
        bounded::read(file, bounded::STATE, "the pull marker").map_err(Error::io("read", &path))?;
    Ok(Some(String::from_utf8_lossy(&bytes).trim_end().to_string()))
}

/// Whether a pull of `source_ref` may write into the existing directory `dir`: it must be empty,
/// or hold our marker for the same reference.
fn check_resumable(dir: &Dir, source_ref: &str) -> Result<bool, Error> {
    let path = dir.path();
    if dir.is_empty().map_err(Error::io("list", path))? {
        return Ok(false);
    }
    match read_marker(dir)? {
        None => Err(Error::NotEmpty {
            path: path.to_path_buf(),
        }),
        Some(recorded) if recorded == source_ref => Ok(true),
        Some(recorded) => Err(Error::OtherPull {
            path: path.to_path_buf(),
            source_ref: recorded,
        }),
    }
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
        let dir = Dir::open_root(root).map_err(Error::io("open", root))?;
        check_resumable(&dir, source_ref).map(drop)
    }

    /// For pull: `root` must be absent or an empty directory (anything else is refused, touching
    /// nothing), or a layout left by an interrupted pull of the same `source_ref` (marker file
    /// [`PULL_MARKER`], this user's), which is returned as is so its `.partial` blobs continue.
    ///
    /// The marker is written before anything else, so an interruption at any later point leaves a
    /// directory a re-run recognises; [`Layout::finish_pull`] removes it. Everything is written
    /// relative to `root`'s directory descriptor, never following a symlink (see `dir`).
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
        let top = Dir::open_root(root).map_err(Error::io("open", root))?;
        // Two pulls started into the same empty directory must not both initialise it.
        let _lock = top.lock()?;
        if !check_resumable(&top, source_ref)? {
            top.write_atomic(PULL_MARKER, format!("{source_ref}\n").as_bytes(), FILE_MODE)?;
        }
        let body = serde_json::to_vec(&LayoutFile {
            image_layout_version: LAYOUT_VERSION.to_string(),
        })
        .expect("JSON serializes");
        top.write_atomic(LAYOUT_FILE, &body, FILE_MODE)?;
        let blobs = top.subdir("blobs", true)?;
        let dirs = Dirs {
            root: top,
            blobs,
            algs: Mutex::new(HashMap::new()),
        };
        dirs.alg(Algorithm::Sha256)?;
        Ok(Layout {
            root: root.to_path_buf(),
            dirs: Some(Arc::new(dirs)),
        })
    }

    /// The directories of a layout being pulled into; a layout opened for reading has none.
    fn dirs(&self) -> Result<&Dirs, Error> {
        self.dirs.as_deref().ok_or_else(|| Error::Io {
            action: "write into",
            path: self.root.clone(),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "the layout was opened for reading",
            ),
        })
    }

    /// Ends a pull: `index.json` must be written; leftover `.partial` files no writer holds are
    /// removed and the marker goes last, so the layout is complete once the marker is gone.
    pub fn finish_pull(&self) -> Result<(), Error> {
        let dirs = self.dirs()?;
        let written = dirs
            .root
            .exists(INDEX_FILE)
            .map_err(Error::io("inspect", &self.root.join(INDEX_FILE)))?;
        if !written {
            return Err(Error::NotALayout {
                path: self.root.clone(),
                reason: "index.json is not written yet: write the index before finishing the pull"
                    .into(),
            });
        }
        writer::remove_stale_partials(&dirs.blobs)?;
        dirs.root
            .remove(PULL_MARKER)
            .map_err(Error::io("remove", &self.root.join(PULL_MARKER)))?;
        dirs.root.sync();
        Ok(())
    }

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
                    Some(d) => read_marker(&d.root).ok().flatten(),
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

    /// Replaces `index.json` atomically.
    pub fn write_index(&self, index: &Index) -> Result<(), Error> {
        let bytes = serde_json::to_vec(index).expect("JSON serializes");
        self.dirs()?
            .root
            .write_atomic(INDEX_FILE, &bytes, FILE_MODE)
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
        let _lock = self.dirs()?.root.lock()?;
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

    /// Adds `desc` to `index.json` without a ref name (a pull by digest), replacing an unnamed
    /// entry of the same digest; the index is created when there is none yet.
    pub fn add_unnamed(&self, desc: Descriptor) -> Result<(), Error> {
        let _lock = self.dirs()?.root.lock()?;
        let mut index = self.read_index()?.unwrap_or_else(Index::empty);
        index
            .manifests
            .retain(|d| d.digest != desc.digest || d.annotation(ANNOTATION_REF_NAME).is_some());
        index.manifests.push(desc);
        self.write_index(&index)
    }

    /// Where the blob `d` lives: `blobs/<algorithm>/<hex>` (a parsed [`Digest`] is safe as a name).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    /// Whether the blob exists with the descriptor's size: a cheap check for readers of a layout
    /// they trust. Pull uses [`Layout::verify_present`].
    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&desc.digest))
            .is_ok_and(|m| m.is_file() && m.len() == desc.size)
    }

    /// For pull: the blob when something is already under its name, to be checked with
    /// [`PresentBlob::verify`] (which hashes, so run it off the async workers). Nothing found there
    /// is trusted by its name or size: it must be this user's regular file (else
    /// [`Error::Untrusted`]). Costs one `openat` when the blob is absent, as it is throughout a
    /// fresh pull.
    pub fn present_blob(&self, desc: &Descriptor) -> Result<Option<PresentBlob>, Error> {
        let dir = self.dirs()?.alg(desc.digest.kind())?;
        Ok(
            open_owned(&dir, desc.digest.hex(), libc::O_RDONLY)?.map(|file| PresentBlob {
                file,
                dir,
                desc: desc.clone(),
            }),
        )
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

    /// Stores a small blob (manifest, index) atomically under its sha256 and returns that digest;
    /// whatever was under the name is replaced, never trusted.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::sha256_of(bytes);
        self.dirs()?
            .alg(Algorithm::Sha256)?
            .write_atomic(digest.hex(), bytes, FILE_MODE)?;
        Ok(digest)
    }

    /// Starts or resumes writing `desc`'s blob into `blobs/<alg>/<hex>.partial`; bytes already
    /// there are re-hashed and [`BlobWriter::offset`] says where to continue (`Range: bytes=N-`).
    pub fn blob_writer(&self, desc: &Descriptor) -> Result<BlobWriter, Error> {
        BlobWriter::open(self.dirs()?.alg(desc.digest.kind())?, desc)
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
