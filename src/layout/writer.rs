//! [`BlobWriter`]: the only way a large blob enters a layout (STYLE §4, after oci-client's
//! `pull_blob`). Bytes go to `blobs/<alg>/<hex>.partial` and through a hasher of the digest's
//! algorithm as they stream; the blob gets its final name only after size and digest matched.
//!
//! The partial is created `O_EXCL|O_NOFOLLOW` in the directory descriptor of `blobs/<alg>` (see
//! `dir`), so nothing planted under its name is ever opened for writing: a symlink is refused, and
//! an existing file is resumed from only when it is this user's own regular file.
//!
//! A `.partial` survives an interruption (the writer is simply dropped): the next writer for the
//! same blob re-hashes what is there and reports the offset to resume from with HTTP `Range`.
//! The partial file is `flock`ed while a writer holds it, so two pulls into the same layout cannot
//! interleave bytes of one blob.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::oci::digest::Hasher;
use crate::oci::{Descriptor, Digest};

use super::dir::{open_owned, Dir};
use super::{Error, FILE_MODE};

const PARTIAL_SUFFIX: &str = ".partial";

/// Writes one blob of a layout; see the module docs. Dropping it without [`BlobWriter::commit`]
/// keeps the `.partial` for a later resume.
pub struct BlobWriter {
    file: File,
    hasher: Hasher,
    digest: Digest,
    size: u64,
    dir: Arc<Dir>,
    partial_name: String,
    /// The partial's path, for messages.
    partial: PathBuf,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("offset", &self.hasher.len())
            .field("partial", &self.partial)
            .finish()
    }
}

impl BlobWriter {
    /// `dir` is the open `blobs/<alg>` directory of `desc`'s digest.
    pub(crate) fn open(dir: Arc<Dir>, desc: &Descriptor) -> Result<BlobWriter, Error> {
        let partial_name = format!("{}{PARTIAL_SUFFIX}", desc.digest.hex());
        let partial = dir.join(&partial_name);
        let created = dir.open(
            &partial_name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            FILE_MODE,
        );
        let (mut file, resumed) = match created {
            Ok(f) => (f, false),
            // Left by an earlier run (or planted: a symlink also ends here, O_EXCL never follows).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match open_owned(&dir, &partial_name, libc::O_RDWR)? {
                    Some(f) => (f, true),
                    None => return Err(Error::Busy { path: partial }),
                }
            }
            Err(e) => return Err(Error::io("create", &partial)(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Busy { path: partial }),
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &partial)(e)),
        }
        let mut hasher = Hasher::for_digest(&desc.digest);
        if resumed {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read", &partial)(e)),
                };
                hasher.update(&buf[..n]);
                if hasher.len() > desc.size {
                    break;
                }
            }
        }
        let mut w = BlobWriter {
            file,
            hasher,
            digest: desc.digest.clone(),
            size: desc.size,
            dir,
            partial_name,
            partial,
        };
        if w.hasher.len() > w.size {
            // Longer than the blob can be: not a prefix of it.
            w.restart()?;
        }
        Ok(w)
    }

    /// How many bytes are already written (and hashed): ask the server for `bytes=<offset>-`. When
    /// it equals the descriptor's size, nothing is left to fetch: call [`BlobWriter::commit`].
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Empties the partial blob, for a server that ignored our `Range` and sent the whole blob.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(Error::io("truncate", &self.partial))?;
        self.hasher = Hasher::for_digest(&self.digest);
        Ok(())
    }

    /// Checks size and digest against the descriptor, syncs the data and renames the partial to the
    /// blob's name (inside the same directory descriptor). On a mismatch the partial is deleted
    /// (the next attempt starts over) and [`Error::SizeMismatch`] or [`Error::DigestMismatch`]
    /// returned.
    pub fn commit(self) -> Result<(), Error> {
        let BlobWriter {
            file,
            hasher,
            digest,
            size,
            dir,
            partial_name,
            partial,
        } = self;
        let actual_len = hasher.len();
        let mismatch = if actual_len != size {
            Some(Error::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: actual_len,
                path: partial.clone(),
            })
        } else {
            let actual = hasher.finish();
            (actual != digest).then(|| Error::DigestMismatch {
                expected: digest.clone(),
                actual,
                path: partial.clone(),
            })
        };
        if let Some(e) = mismatch {
            drop(file);
            let _ = dir.remove(&partial_name);
            return Err(e);
        }
        file.sync_all().map_err(Error::io("sync", &partial))?;
        dir.rename(&partial_name, digest.hex())
            .map_err(Error::io("rename", &partial))?;
        drop(file);
        dir.sync();
        Ok(())
    }
}

impl Write for BlobWriter {
    /// Refuses bytes beyond the descriptor's size (`InvalidData`, carrying
    /// [`Error::SizeMismatch`]), so a server that sends too much cannot fill the disk.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.size - self.hasher.len();
        if buf.len() as u64 > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected: self.size,
                    actual: self.hasher.len() + buf.len() as u64,
                    path: self.partial.clone(),
                },
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Removes `*.partial` files under `blobs/<alg>/` that no writer holds (left by an interrupted pull
/// for blobs the finished pull did not need). Only names are removed (`unlinkat`); a symlink or a
/// directory that is not an algorithm's is left alone.
pub(crate) fn remove_stale_partials(blobs: &Dir) -> Result<(), Error> {
    let algs = blobs.names().map_err(Error::io("list", blobs.path()))?;
    for alg in algs {
        let Some(alg) = alg.to_str() else { continue };
        if crate::oci::digest::Algorithm::from_name(alg).is_none() {
            continue;
        }
        let Ok(dir) = blobs.subdir(alg, false) else {
            continue;
        };
        let Ok(names) = dir.names() else { continue };
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(PARTIAL_SUFFIX) {
                continue;
            }
            let free = match dir.open(name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
                Ok(f) => f.try_lock().is_ok(),
                // A symlink under a partial's name is not ours to keep.
                Err(e) => super::dir::is_symlink_error(&e),
            };
            if free {
                dir.remove(name)
                    .map_err(Error::io("remove", &dir.join(name)))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::oci;
    use std::fs;

    fn desc_of(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: oci::OCI_LAYER_TAR.into(),
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_for_pull(&dir.path().join("l"), "src").unwrap();
        (dir, l)
    }

    #[test]
    fn second_writer_on_same_blob_is_busy() {
        let (_d, l) = layout();
        let desc = desc_of(b"data");
        let _w = l.blob_writer(&desc).unwrap();
        assert!(matches!(l.blob_writer(&desc), Err(Error::Busy { .. })));
    }

    #[test]
    fn overlong_write_is_refused_and_overlong_partial_restarts() {
        let (_d, l) = layout();
        let desc = desc_of(b"data");
        let mut w = l.blob_writer(&desc).unwrap();
        let e = w.write_all(b"data!").unwrap_err();
        assert!(matches!(
            Error::downcast_io(&e),
            Some(Error::SizeMismatch { .. })
        ));
        drop(w);
        let partial = l.blob_path(&desc.digest).with_extension("partial");
        fs::write(&partial, b"0123456789").unwrap();
        let mut w = l.blob_writer(&desc).unwrap();
        assert_eq!(w.offset(), 0);
        w.write_all(b"data").unwrap();
        w.commit().unwrap();
        assert!(l.has_blob(&desc));
        assert!(!partial.exists());
    }

    #[test]
    fn restart_discards_written_bytes() {
        let (_d, l) = layout();
        let desc = desc_of(b"data");
        let mut w = l.blob_writer(&desc).unwrap();
        w.write_all(b"da").unwrap();
        w.restart().unwrap();
        assert_eq!(w.offset(), 0);
        w.write_all(b"data").unwrap();
        w.commit().unwrap();
        assert_eq!(fs::read(l.blob_path(&desc.digest)).unwrap(), b"data");
    }

    #[test]
    fn sha512_blobs_are_verified_and_stored_under_their_algorithm() {
        let (_d, l) = layout();
        let mut desc = desc_of(b"data");
        desc.digest = Digest::of(crate::oci::digest::Algorithm::Sha512, b"data");
        let mut w = l.blob_writer(&desc).unwrap();
        w.write_all(b"dat").unwrap();
        drop(w);
        let mut w = l.blob_writer(&desc).unwrap();
        assert_eq!(w.offset(), 3);
        w.write_all(b"a").unwrap();
        w.commit().unwrap();
        let path = l.root().join("blobs/sha512").join(desc.digest.hex());
        assert_eq!(fs::read(path).unwrap(), b"data");
        let mut w = l.blob_writer(&desc).unwrap();
        w.write_all(b"DATA").unwrap();
        assert!(matches!(w.commit(), Err(Error::DigestMismatch { .. })));
    }

    #[test]
    fn short_commit_is_a_size_mismatch() {
        let (_d, l) = layout();
        let desc = desc_of(b"data");
        let mut w = l.blob_writer(&desc).unwrap();
        w.write_all(b"da").unwrap();
        assert!(matches!(
            w.commit(),
            Err(Error::SizeMismatch {
                expected: 4,
                actual: 2,
                ..
            })
        ));
        assert!(!l.has_blob(&desc));
    }
}
