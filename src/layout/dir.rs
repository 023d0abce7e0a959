//! Directory handles for writing into a pull's DESTINATION without following anything planted
//! there. DESTINATION may sit in a directory other users can write (`/tmp`, a shared build
//! directory), and pull often runs as root: a path-based `open("DEST/blobs/sha256/x.partial")`
//! follows a symlink someone put at any of its components and writes wherever it points.
//!
//! So DESTINATION is opened once (it is the path the user named), and every later file operation
//! is relative to a directory descriptor, one component at a time, with `O_NOFOLLOW`: `blobs/` and
//! `blobs/<alg>/` are opened `O_DIRECTORY|O_NOFOLLOW`, files are created `O_EXCL|O_NOFOLLOW` and
//! renamed with `renameat` inside the same directory. The layout's names are fixed and one level
//! deep, so no path is ever resolved here (nothing for `pathrs` to do); a symlink anywhere is an
//! error, never followed.
//!
//! Files left by an earlier run (the pull marker, `.partial` blobs, blobs) are only trusted when
//! [`check_owned`] says this user made them.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Error;
use crate::fs::{self, check, euid};

/// An open directory and the path it was reached by (for messages only).
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// One of the layout's names (fixed ones, digests): a single component, never a path.
fn component(name: &str) -> &OsStr {
    debug_assert!(!name.contains('/'), "one component: {name}");
    OsStr::new(name)
}

impl Dir {
    /// Opens the directory the user named (following it, as any tool does with its argument).
    pub(crate) fn open_root(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is NUL-terminated; the descriptor is ours.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The subdirectory `name`, created (0755) when `create` and missing; a symlink, a
    /// non-directory or another user's directory there is an error naming it (whoever owns a
    /// directory can swap what is in it while we write).
    pub(crate) fn subdir(&self, name: &str, create: bool) -> Result<Dir, Error> {
        let path = self.join(name);
        let c = component(name);
        if create {
            if let Err(e) = fs::mkdirat(self.fd.as_fd(), c, 0o755) {
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(Error::io("create directory", &path)(e));
                }
            }
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        match fs::openat(self.fd.as_fd(), c, flags, 0) {
            Ok(fd) => {
                let dir = Dir { fd, path };
                let meta = fs::stat_fd(dir.fd.as_fd()).map_err(Error::io("inspect", &dir.path))?;
                if meta.uid() != euid() {
                    return Err(Error::Untrusted {
                        path: dir.path,
                        reason: format!(
                            "is owned by uid {}, not by you (uid {})",
                            meta.uid(),
                            euid()
                        ),
                    });
                }
                Ok(dir)
            }
            Err(e) if is_symlink_error(&e) => Err(Error::Untrusted {
                path,
                reason: "is a symlink or not a directory".into(),
            }),
            Err(e) => Err(Error::io("open directory", &path)(e)),
        }
    }

    /// Opens the file `name` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` added): a symlink there
    /// fails with `ELOOP` (see [`is_symlink_error`]).
    pub(crate) fn open(&self, name: &str, flags: libc::c_int, mode: u32) -> io::Result<File> {
        let flags = flags | libc::O_NOFOLLOW;
        fs::openat(self.fd.as_fd(), component(name), flags, mode).map(File::from)
    }

    /// Whether `name` exists (as anything, a symlink included).
    pub(crate) fn exists(&self, name: &str) -> io::Result<bool> {
        fs::exists_at(self.fd.as_fd(), component(name))
    }

    /// Renames `from` to `to`, both in this directory (what was at `to` is replaced, never
    /// followed).
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::renameat(self.fd.as_fd(), component(from), component(to))
    }

    /// Removes the file `name` (a symlink itself, never its target); a missing one is fine.
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        match fs::unlinkat(self.fd.as_fd(), component(name), 0) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The names in this directory (`.` and `..` left out).
    pub(crate) fn names(&self) -> io::Result<Vec<OsString>> {
        // A fresh open file description, so that reading it moves no offset of `self.fd`.
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let fd = fs::openat(self.fd.as_fd(), OsStr::new("."), flags, 0)?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        // SAFETY: `raw` is an open directory descriptor; `fdopendir` owns it from here on and
        // `closedir` closes it.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let mut out = Vec::new();
        loop {
            // SAFETY: `dirp` is open; the entry is valid until the next `readdir`.
            let entry = unsafe { libc::readdir(dirp) };
            if entry.is_null() {
                break;
            }
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                out.push(OsString::from_vec(name.to_vec()));
            }
        }
        unsafe { libc::closedir(dirp) };
        Ok(out)
    }

    /// Whether the directory holds nothing.
    pub(crate) fn is_empty(&self) -> io::Result<bool> {
        self.names().map(|n| n.is_empty())
    }

    /// Makes renames and removals in this directory durable; best effort (some filesystems
    /// refuse to fsync a directory, and the data itself is already synced).
    pub(crate) fn sync(&self) {
        // SAFETY: plain fsync of an open descriptor.
        unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }

    /// An exclusive `flock` on this directory, held until the returned file is dropped.
    pub(crate) fn lock(&self) -> Result<File, Error> {
        let f = File::from(self.fd.try_clone().map_err(Error::io("lock", &self.path))?);
        f.lock().map_err(Error::io("lock", &self.path))?;
        Ok(f)
    }

    /// Replaces `name` with `bytes` atomically: a new temp file (`O_EXCL|O_NOFOLLOW`), synced,
    /// renamed over `name` in this directory, the directory synced.
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let target = self.join(name);
        let (tmp, mut file) = loop {
            let tmp = format!(
                ".{name}.{}.{}.tmp",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            match self.open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, mode) {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("write", &target)(e)),
            }
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| self.rename(&tmp, name));
        if let Err(e) = written {
            let _ = self.remove(&tmp);
            return Err(Error::io("write", &target)(e));
        }
        self.sync();
        Ok(())
    }
}

/// Whether an `open` with `O_NOFOLLOW` (or `O_DIRECTORY`) failed because of what is there: a
/// symlink (`ELOOP`) or, for a directory, a file (`ENOTDIR`).
pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

/// Checks that `file` (just opened without following symlinks) is state this user left: a
/// regular file with one link, owned by the effective uid. Anything else was put there by
/// someone else (a hard link to a file elsewhere, another user's file), and resuming from it
/// would let them choose what we write or trust.
pub(crate) fn check_owned(file: &File, path: &Path) -> Result<(), Error> {
    let meta = file.metadata().map_err(Error::io("inspect", path))?;
    let reason = if !meta.file_type().is_file() {
        "is not a regular file".to_string()
    } else if meta.uid() != euid() {
        format!(
            "is owned by uid {}, not by you (uid {})",
            meta.uid(),
            euid()
        )
    } else if meta.nlink() != 1 {
        format!("has {} hard links", meta.nlink())
    } else {
        return Ok(());
    };
    Err(Error::Untrusted {
        path: path.to_path_buf(),
        reason,
    })
}

/// Opens a file an earlier run may have left (`flags` without `O_CREAT`): `Ok(None)` when it is
/// not there, [`Error::Untrusted`] when it is a symlink or fails [`check_owned`].
pub(crate) fn open_owned(dir: &Dir, name: &str, flags: libc::c_int) -> Result<Option<File>, Error> {
    let path = dir.join(name);
    // O_NONBLOCK: a FIFO planted under the name must not hang the open.
    match dir.open(name, flags | libc::O_NONBLOCK, 0) {
        Ok(f) => {
            check_owned(&f, &path)?;
            Ok(Some(f))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::Untrusted {
            path,
            reason: "is a symlink".into(),
        }),
        Err(e) => Err(Error::io("open", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"secret").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink(&outside, root.join("file")).unwrap();
        symlink(tmp.path(), root.join("dir")).unwrap();
        let d = Dir::open_root(&root).unwrap();
        let e = d
            .open("file", libc::O_WRONLY | libc::O_TRUNC, 0)
            .unwrap_err();
        assert!(is_symlink_error(&e), "{e}");
        assert!(matches!(
            d.subdir("dir", true),
            Err(Error::Untrusted { .. })
        ));
        let e = open_owned(&d, "file", libc::O_RDWR).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        d.write_atomic("file", b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
        assert_eq!(std::fs::read(root.join("file")).unwrap(), b"new");
        let mut names = d.names().unwrap();
        names.sort();
        assert_eq!(names, [OsString::from("dir"), OsString::from("file")]);
    }

    #[test]
    fn hard_links_are_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Dir::open_root(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("a"), b"x").unwrap();
        assert!(open_owned(&d, "a", libc::O_RDONLY).unwrap().is_some());
        std::fs::hard_link(tmp.path().join("a"), tmp.path().join("b")).unwrap();
        let e = open_owned(&d, "a", libc::O_RDONLY).unwrap_err();
        assert!(e.to_string().contains("2 hard links"), "{e}");
        assert!(open_owned(&d, "none", libc::O_RDONLY).unwrap().is_none());
    }
}
