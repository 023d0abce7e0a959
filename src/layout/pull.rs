//! The writing half of [`Layout`], for `pull`: creating or resuming DESTINATION, blobs, manifests,
//! `index.json` and the marker. Every write goes through the directory descriptors of `dir`
//! (`O_NOFOLLOW`, `O_EXCL`, `renameat`), and what an earlier run left (the marker, `.partial`
//! files, blobs, `index.json`) is only used when this user owns it, since DESTINATION may lie
//! where others can write.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::bounded;
use crate::oci::digest::{Algorithm, Hasher};
use crate::oci::{Descriptor, Digest, Index, ANNOTATION_REF_NAME};

use super::dir::{open_owned, Dir};
use super::{
    is_valid_ref_name, writer, BlobWriter, Error, Layout, LayoutFile, FILE_MODE, INDEX_FILE,
    LAYOUT_FILE, LAYOUT_VERSION, PULL_MARKER,
};

/// The open directories of a layout being pulled into.
#[derive(Debug)]
pub(super) struct Dirs {
    pub(super) root: Dir,
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
pub(super) fn read_marker(dir: &Dir) -> Result<Option<String>, Error> {
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
}
