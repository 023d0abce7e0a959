//! The fd-relative file-system calls `std` does not wrap, shared by everything that writes where
//! others could plant a symlink: `extract` (a root filesystem from untrusted layers) and `layout`
//! (a pull's DESTINATION, possibly in a shared directory), and `storage cp`'s destination. Each acts on a name *in* a directory we
//! hold open, so no path is walked twice; none adds `O_NOFOLLOW` on its own, the caller says
//! whether the last component may be followed (extract and layout never do).
//!
//! Who we are (`euid`) lives here too: whether a file is ours decides what both trust.

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The effective user id: who this process writes as.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether we run as root (and so may chown, make devices, and are not refused by modes).
pub(crate) fn is_root() -> bool {
    euid() == 0
}

/// A name for a system call; one with a NUL byte cannot be passed and is refused.
pub(crate) fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// A system call's return code as a result (`errno` when negative).
pub(crate) fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`, retried on `EINTR`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    loop {
        // SAFETY: `c` is NUL-terminated and outlives the call; the fd is open.
        let rc = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        match check(rc) {
            // SAFETY: a new fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `fstat` of any fd, `O_PATH` ones included.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Metadata> {
    // SAFETY: the File is never dropped, so the borrowed fd is not closed.
    let f = ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f.metadata()
}

/// Whether `name` exists in `dir` (as anything, a symlink included: it is not followed).
pub(crate) fn exists_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    let c = c_name(name)?;
    // SAFETY: an all-zero `stat` is a valid value; the kernel overwrites it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is valid for writing; both outlive the call.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(rc) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is NUL-terminated and outlives the call; the fd is open.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Removes `name` from `dir` (a symlink itself, never its target; a directory with
/// `AT_REMOVEDIR`).
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: as in `mkdirat`.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// Renames `from` to `to`, both in `dir`; what was at `to` is replaced, never followed.
pub(crate) fn renameat(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (f, t) = (c_name(from)?, c_name(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated and outlive the call; the fd is open.
    check(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn names_with_nul_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let e = mkdirat(dir.as_fd(), OsStr::from_bytes(b"a\0b"), 0o755).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn at_calls_stay_in_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let d = dir.as_fd();
        mkdirat(d, OsStr::new("sub"), 0o755).unwrap();
        assert!(exists_at(d, OsStr::new("sub")).unwrap());
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        drop(openat(d, OsStr::new("f"), flags, 0o644).unwrap());
        renameat(d, OsStr::new("f"), OsStr::new("g")).unwrap();
        assert!(!exists_at(d, OsStr::new("f")).unwrap());
        unlinkat(d, OsStr::new("g"), 0).unwrap();
        unlinkat(d, OsStr::new("sub"), libc::AT_REMOVEDIR).unwrap();
        assert!(!exists_at(d, OsStr::new("sub")).unwrap());
    }
}
