//! The destination of an extraction: opened once, every later operation relative to that fd; and
//! the guard that removes a half-built root filesystem when a layer fails (umoci's cleanup).

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{sys, Error};

/// The destination, opened once: every later operation is relative to this fd (through
/// `pathrs::Root`, `*at` calls on fds it resolved, or `/proc/self/fd`), so renaming or replacing
/// the path (or anything under it) while we work cannot send a write elsewhere.
pub(crate) struct RootDir {
    /// As the caller named it, for messages (and to remove a root we created).
    pub(crate) path: PathBuf,
    root: pathrs::Root,
    /// `/proc/self/fd/N` of the root, where `path::resolve` looks names up.
    pub(crate) lookup: PathBuf,
}

impl RootDir {
    pub(crate) fn open(path: &Path) -> Result<RootDir, Error> {
        let err = |source| Error::Io {
            path: path.to_path_buf(),
            action: "open the destination",
            source,
        };
        // Followed as the caller named it, once; a directory or nothing.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(err)?;
        let root = pathrs::Root::from_fd(std::os::fd::OwnedFd::from(file));
        let lookup = sys::proc_path(root.as_fd());
        Ok(RootDir {
            path: path.to_path_buf(),
            root,
            lookup,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// An `O_PATH` fd of the directory `rel` (relative, cleaned), resolved inside the root by
    /// `pathrs`: `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` where the kernel has it, else
    /// pathrs' userspace resolver that checks each step. The last component is not followed.
    pub(crate) fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let handle = self.root.resolve_nofollow(rel).map_err(|e| {
            let kind = match e.kind() {
                pathrs::error::ErrorKind::OsError(Some(n)) => {
                    io::Error::from_raw_os_error(n).kind()
                }
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e.to_string())
        })?;
        let fd = OwnedFd::from(handle);
        if !sys::stat_fd(fd.as_fd())?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(fd)
    }
}

/// Owns the destination while layers are applied: removes what was built if dropped armed,
/// through the root's fd (never by a path that could have been replaced meanwhile).
pub(crate) struct RootGuard {
    pub(crate) dir: RootDir,
    created: bool,
    armed: bool,
}

impl RootGuard {
    pub(crate) fn prepare(root: &Path) -> Result<RootGuard, Error> {
        let io_err = |action, source| Error::Io {
            path: root.to_path_buf(),
            action,
            source,
        };
        let created = match fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => false,
            // A symlink to a directory: allowed, checked once opened.
            Ok(m) if m.file_type().is_symlink() => false,
            Ok(_) => {
                return Err(Error::NotEmpty {
                    path: root.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|e| io_err("create the destination", e))?;
                true
            }
            Err(e) => return Err(io_err("inspect the destination", e)),
        };
        let dir = RootDir::open(root)?;
        let mut entries =
            fs::read_dir(&dir.lookup).map_err(|e| io_err("read the destination", e))?;
        if entries.next().is_some() {
            return Err(Error::NotEmpty {
                path: root.to_path_buf(),
            });
        }
        Ok(RootGuard {
            dir,
            created,
            armed: true,
        })
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(entries) = fs::read_dir(&self.dir.lookup) {
            for entry in entries.flatten() {
                let _ = sys::remove_at(self.dir.fd(), &entry.file_name());
            }
        }
        if self.created {
            // Only ever removes an empty directory.
            let _ = fs::remove_dir(&self.dir.path);
        }
    }
}
