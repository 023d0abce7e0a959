//! The few system calls `std` does not wrap (mknod, xattrs, the process's credentials and umask),
//! kept in one place so the `unsafe` blocks are small and reviewed once.
//!
//! The umask is read from `/proc/self/status` rather than with `umask(2)`, which can only be read
//! by setting it — a race with every other thread creating files in the process.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

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
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Creds {
            uid,
            gid,
            umask: read_umask(),
        }
    }

    /// The mode a file created with `perm` actually gets.
    pub(crate) fn created_mode(&self, perm: u32) -> Option<u32> {
        self.umask.map(|m| perm & !m)
    }
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

fn read_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Creates a fifo or device node (`kind` is `S_IFIFO`, `S_IFCHR` or `S_IFBLK`).
pub(crate) fn mknod(path: &Path, kind: u32, perm: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cstring(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), (kind | (perm & 0o7777)) as libc::mode_t, dev) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an extended attribute on `file` (an open regular file) or on `path` (not followed).
pub(crate) fn set_xattr(
    file: Option<&File>,
    path: &Path,
    name: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains a NUL"))?;
    let rc = match file {
        // SAFETY: the fd is open for the call; name and value are valid for their lengths.
        Some(f) => unsafe {
            libc::fsetxattr(
                f.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        },
        None => {
            let c = cstring(path)?;
            // SAFETY: both strings are NUL-terminated and outlive the call.
            unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
