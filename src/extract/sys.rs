//! The few system calls `std` does not wrap that only extraction makes (mknod, links, xattrs,
//! `O_PATH` opens, the process's credentials and umask), kept in one place so the `unsafe` blocks
//! are small and reviewed once; the `*at` calls `layout` makes too come from `crate::fs`.
//!
//! Everything that changes the tree under extraction is fd-relative (`*at` calls on a directory fd
//! that `pathrs` resolved inside the root, the last component never followed) or goes through
//! `/proc/self/fd/N`, the kernel's own link to an inode we hold open: no path is walked twice.
//!
//! The umask is read from `/proc/self/status` rather than with `umask(2)`, which can only be read
//! by setting it — a race with every other thread creating files in the process.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::fs::{c_name, euid, is_root};
/// The `*at` calls shared with `layout` (see `crate::fs`), here beside the ones only extraction
/// makes.
pub(crate) use crate::fs::{mkdirat, openat, stat_fd, unlinkat};

/// Who new files belong to, and what the kernel masks off their modes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// `None` when unknown: then every mode is set explicitly.
    pub umask: Option<u32>,
}

impl Creds {
    pub(crate) fn current() -> Creds {
        // SAFETY: getegid cannot fail and touches no memory.
        let gid = unsafe { libc::getegid() };
        Creds {
            uid: euid(),
            gid,
            umask: read_umask(),
        }
    }

    /// The mode a file created with `perm` actually gets.
    pub(crate) fn created_mode(&self, perm: u32) -> Option<u32> {
        self.umask.map(|m| perm & !m)
    }
}

fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The inode an entry's metadata is applied to, held so that no name is looked up again.
#[derive(Clone, Copy)]
pub(crate) enum Inode<'a> {
    /// A regular file we created and hold open.
    File(&'a File),
    /// An `O_PATH` fd of a directory or a node.
    Fd(BorrowedFd<'a>),
    /// A symlink: the directory fd that holds it and its name (never followed).
    Link(BorrowedFd<'a>, &'a OsStr),
}

/// Sets an extended attribute on `inode`.
pub(crate) fn set_xattr(inode: Inode<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains a NUL"))?;
    let (ptr, len) = (value.as_ptr().cast(), value.len());
    let rc = match inode {
        // SAFETY: the fd is open for the call; name and value are valid for their lengths.
        Inode::File(f) => unsafe { libc::fsetxattr(f.as_raw_fd(), name.as_ptr(), ptr, len, 0) },
        Inode::Fd(fd) => {
            let c = cstring(&proc_path(fd))?;
            // SAFETY: both strings are NUL-terminated and outlive the call.
            unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), ptr, len, 0) }
        }
        Inode::Link(dir, link) => {
            let c = cstring(&proc_path(dir).join(link))?;
            // SAFETY: as above; `lsetxattr` does not follow the last component.
            unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), ptr, len, 0) }
        }
    };
    check(rc)
}

/// Removes a directory tree we built, even when its modes lock us out (a `0555` directory, as a
/// non-root user): on failure, every directory is made `0700` and removal is retried.
/// Symlinks are never followed.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            unlock(path);
            fs::remove_dir_all(path)
        }
    }
}

fn unlock(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                unlock(&e.path());
            }
        }
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    crate::fs::check(rc).map(drop)
}

/// `/proc/self/fd/N`: the kernel's link to the very inode `fd` holds (followed, it cannot be
/// redirected by renames or symlinks), for the calls that have no fd form (`chmod` and
/// `utimensat` of an `O_PATH` fd, `setxattr`, `readdir`).
pub(crate) fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// An `O_PATH` fd of `name` in `dir`, a symlink not followed.
pub(crate) fn open_path(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// An `O_PATH` fd of the directory `name` in `dir`; `ENOTDIR` for anything else (a symlink too).
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

pub(crate) fn symlinkat(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let t = c_name(target)?;
    let c = c_name(name)?;
    // SAFETY: the names are NUL-terminated and outlive the call; the fd is open.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// A hard link; a symlink named as the target is linked itself, never followed (no
/// `AT_SYMLINK_FOLLOW`).
pub(crate) fn linkat(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    let f = c_name(from)?;
    let c = c_name(name)?;
    // SAFETY: the names are NUL-terminated and outlive the call; the fd is open.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            0,
        )
    })
}

/// Creates a fifo or device node (`kind` is `S_IFIFO`, `S_IFCHR` or `S_IFBLK`).
pub(crate) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: u32,
    perm: u32,
    (major, minor): (u32, u32),
) -> io::Result<()> {
    let c = c_name(name)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: the names are NUL-terminated and outlive the call; the fd is open.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            (kind | (perm & 0o7777)) as libc::mode_t,
            dev,
        )
    })
}

/// Changes the owner of the inode `fd` holds (an `O_PATH` fd of a symlink: the symlink itself).
pub(crate) fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the empty string is NUL-terminated; AT_EMPTY_PATH makes the call act on `fd`.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// `chmod` of the inode an `O_PATH` fd holds (not a symlink: those have no mode of their own).
pub(crate) fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // chmod(2) itself: never an open, which would block on a fifo.
    let c = cstring(&proc_path(fd))?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    check(unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) })
}

/// Sets the times of the inode `fd` holds, through `utimensat(2)` on `/proc/self/fd/N`: never
/// an open, which would block on a fifo.
pub(crate) fn set_times_fd(
    fd: BorrowedFd<'_>,
    atime: filetime::FileTime,
    mtime: filetime::FileTime,
) -> io::Result<()> {
    let c = cstring(&proc_path(fd))?;
    let ts = |t: filetime::FileTime| libc::timespec {
        tv_sec: t.unix_seconds() as libc::time_t,
        tv_nsec: t.nanoseconds() as _,
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: `c` is NUL-terminated and `times` holds two timespecs; both outlive the call.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) })
}

/// Removes `name` from `dir` and, for a directory, everything under it, fd-relative all the way
/// down (nothing is followed). Not being root, directories we own that lock us out are made
/// `0700` first: they are going anyway. A missing `name` is not an error.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match unlinkat(dir, name, 0) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // Linux says EISDIR for a directory (POSIX allows EPERM).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {}
        Err(e) => return Err(e),
    }
    let sub = open_dir(dir, name)?;
    if !is_root() {
        let m = stat_fd(sub.as_fd())?;
        if m.uid() == euid() && m.mode() & 0o700 != 0o700 {
            chmod_fd(sub.as_fd(), 0o700)?;
        }
    }
    for entry in fs::read_dir(proc_path(sub.as_fd()))? {
        remove_at(sub.as_fd(), &entry?.file_name())?;
    }
    match unlinkat(dir, name, libc::AT_REMOVEDIR) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_readable() {
        let c = Creds::current();
        assert!(c.umask.is_some(), "/proc/self/status has no Umask line");
        assert_eq!(c.created_mode(0o777).unwrap() & 0o700, 0o700);
    }

    #[test]
    fn remove_tree_unlocks() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), "x").unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o500)).unwrap();
        fs::set_permissions(tmp.path().join("a"), fs::Permissions::from_mode(0o000)).unwrap();
        remove_tree(&tmp.path().join("a")).unwrap();
        assert!(!tmp.path().join("a").exists());
    }
}
