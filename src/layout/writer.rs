//! [`BlobWriter`]: the only way a large blob enters a layout (STYLE §4, after oci-client's
//! `pull_blob`). Bytes go to `blobs/sha256/<hex>.partial` and through a SHA-256 hasher as they
//! stream; the blob gets its final name only after size and digest matched, so a name under
//! `blobs/` always means verified content and [`Layout::has_blob`] can trust a size check.
//!
//! A `.partial` survives an interruption (the writer is simply dropped): the next writer for the
//! same blob re-hashes what is there and reports the offset to resume from with HTTP `Range`.
//! The partial file is `flock`ed while a writer holds it, so two pulls into the same layout cannot
//! interleave bytes of one blob.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::oci::digest::Hasher;
use crate::oci::{Descriptor, Digest};

use super::verify::require_sha256;
use super::{sync_dir, Error, Layout, FILE_MODE};

const PARTIAL_SUFFIX: &str = ".partial";

/// Writes one blob of a layout; see the module docs. Dropping it without [`BlobWriter::commit`]
/// keeps the `.partial` for a later resume.
pub struct BlobWriter {
    file: File,
    hasher: Hasher,
    digest: Digest,
    size: u64,
    partial: PathBuf,
    target: PathBuf,
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
    pub(crate) fn open(layout: &Layout, desc: &Descriptor) -> Result<BlobWriter, Error> {
        require_sha256(&desc.digest)?;
        let target = layout.blob_path(&desc.digest);
        let dir = target.parent().unwrap_or(layout.root());
        fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        let partial = dir.join(format!("{}{PARTIAL_SUFFIX}", desc.digest.hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&partial)
            .map_err(Error::io("open", &partial))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Busy { path: partial }),
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &partial)(e)),
        }
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &partial)(e)),
            };
            hasher.update(&buf[..n]);
        }
        let mut w = BlobWriter {
            file,
            hasher,
            digest: desc.digest.clone(),
            size: desc.size,
            partial,
            target,
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
        self.hasher = Hasher::new();
        Ok(())
    }

    /// Checks size and digest against the descriptor, syncs the data and renames the partial to the
    /// blob's name. On a mismatch the partial is deleted (the next attempt starts over) and
    /// [`Error::SizeMismatch`] or [`Error::DigestMismatch`] returned.
    pub fn commit(self) -> Result<(), Error> {
        let BlobWriter {
            file,
            hasher,
            digest,
            size,
            partial,
            target,
        } = self;
        let actual_len = hasher.len();
        let mismatch = if actual_len != size {
            Some(Error::SizeMismatch {
                digest,
                expected: size,
                actual: actual_len,
                path: partial.clone(),
            })
        } else {
            let actual = hasher.finish();
            (actual != digest).then(|| Error::DigestMismatch {
                expected: digest,
                actual,
                path: partial.clone(),
            })
        };
        if let Some(e) = mismatch {
            drop(file);
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        file.sync_all().map_err(Error::io("sync", &partial))?;
        fs::rename(&partial, &target).map_err(Error::io("rename", &partial))?;
        drop(file);
        if let Some(dir) = target.parent() {
            sync_dir(dir);
        }
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
/// for blobs the finished pull did not need).
pub(crate) fn remove_stale_partials(blobs: &Path) -> Result<(), Error> {
    let algs = match fs::read_dir(blobs) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", blobs)(e)),
    };
    for alg in algs.flatten() {
        let Ok(entries) = fs::read_dir(alg.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(PARTIAL_SUFFIX) {
                continue;
            }
            let Ok(f) = File::open(&path) else { continue };
            if f.try_lock().is_ok() {
                fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci;

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
