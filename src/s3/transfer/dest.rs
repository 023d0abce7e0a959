//! Where a download lands: the destination directory held open by a file descriptor, and every
//! write into it made relative to that descriptor, never through a path that someone else can
//! change between our look and our write.
//!
//! `gdcloud storage cp` often runs as root into a directory other users can write (a shared
//! download directory, `/tmp`). A path-based `open(".NAME.gdcloud-partial")` follows a symlink
//! planted there, so the object would be written into whatever file the symlink names, and a
//! plain `create_dir_all(DEST/sub)` follows a planted `sub -> /etc`. So: the directory the user
//! named is opened once; subdirectories taken from object keys are created and opened one
//! component at a time with `O_NOFOLLOW | O_DIRECTORY` (a symlink is refused, not followed); the
//! temp file and its sidecar are created with `O_EXCL | O_NOFOLLOW` and reopened for a resume only
//! when they are regular files of ours (owned by the effective uid, no other hard link); the
//! finished file takes its name with `renameat` in the same directory, which replaces whatever
//! entry had that name (a symlink included) instead of writing through it.
//!
//! Temp names fit `NAME_MAX` whatever the object's name: a name too long for the suffixes is cut
//! and completed with a hash of the whole name, so a re-run finds the same temp files.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::shown;

/// The longest file name Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
const PARTIAL_SUFFIX: &str = ".gdcloud-partial";
const SIDECAR_SUFFIX: &str = ".gdcloud-partial.json";

/// Why an existing temp file or directory entry is not used.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{} is a symbolic link, not a partial download of gdcloud's; remove it and run the copy again", shown(.path))]
    Symlink { path: PathBuf },
    #[error("{} is not a regular file, not a partial download of gdcloud's; remove it and run the copy again", shown(.path))]
    NotAFile { path: PathBuf },
    #[error("{} belongs to uid {uid}, not to this user (uid {euid}); remove it and run the copy again", shown(.path))]
    NotOurs { path: PathBuf, uid: u32, euid: u32 },
    #[error("{} has other hard links, not a partial download of gdcloud's; remove it and run the copy again", shown(.path))]
    HardLinked { path: PathBuf },
    #[error("{} is a symbolic link or not a directory; refusing to write through it: remove it or copy elsewhere", shown(.path))]
    NotADirectory { path: PathBuf },
    #[error("{action} {}: {source}", shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An open directory: every name below is one component inside it, never a path.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only.
    path: PathBuf,
}

impl Dir {
    /// The directory the user named, created first when missing. Its own path is the user's
    /// choice and is followed as given.
    pub fn open_named(path: &Path) -> Result<Dir, Refusal> {
        let io_err = |action| {
            move |source| Refusal::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        std::fs::create_dir_all(path).map_err(io_err("create directory"))?;
        let c = cstr(path.as_os_str()).map_err(io_err("open directory"))?;
        // SAFETY: `c` is a valid C string; the result is checked before it is owned.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(io_err("open directory"))?;
        Ok(Dir {
            // SAFETY: a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    /// The subdirectory `rel` (plain components only), created as needed one component at a time;
    /// a component that is a symlink (or not a directory) is refused.
    pub fn subdir(self, rel: &Path) -> Result<Dir, Refusal> {
        let mut dir = self;
        for c in rel.components() {
            let name = match c {
                Component::Normal(n) => n,
                Component::CurDir => continue,
                _ => {
                    return Err(Refusal::NotADirectory {
                        path: dir.path.join(c),
                    })
                }
            };
            dir = dir.child_dir(name)?;
        }
        Ok(dir)
    }

    fn child_dir(&self, name: &OsStr) -> Result<Dir, Refusal> {
        let path = self.path.join(name);
        let io_err = |action, source| Refusal::Io {
            action,
            path: path.clone(),
            source,
        };
        let c = cstr(name).map_err(|e| io_err("create directory", e))?;
        // SAFETY: valid descriptor and C string.
        if let Err(e) = check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o777) }) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(io_err("create directory", e));
            }
        }
        // SAFETY: valid descriptor and C string; the result is checked before it is owned.
        match check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        }) {
            Ok(fd) => Ok(Dir {
                // SAFETY: a fresh descriptor that nothing else owns.
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
                path,
            }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                Err(Refusal::NotADirectory { path })
            }
            Err(e) => Err(io_err("open directory", e)),
        }
    }

    /// `name` inside this directory, for messages.
    pub fn path_of(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// A new, empty file `name` (`O_EXCL | O_NOFOLLOW`: never an existing file or a link's target).
    pub fn create_new(&self, name: &OsStr) -> Result<File, Refusal> {
        let c = cstr(name).map_err(|e| self.io("create", name, e))?;
        // SAFETY: valid descriptor and C string; the result is checked before it is owned.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        })
        .map_err(|e| self.io("create", name, e))?;
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The existing file `name` for reading and writing, when it is a regular file owned by the
    /// effective uid; `None` when there is none; refused when it is anything else.
    pub fn open_own(&self, name: &OsStr) -> Result<Option<File>, Refusal> {
        let path = self.path_of(name);
        let c = cstr(name).map_err(|e| self.io("open", name, e))?;
        // O_NONBLOCK: a FIFO planted under the name must not hang the open.
        // SAFETY: valid descriptor and C string; the result is checked before it is owned.
        let fd = match check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_NOCTTY
                    | libc::O_CLOEXEC,
            )
        }) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Refusal::Symlink { path })
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return Err(Refusal::NotAFile { path })
            }
            Err(e) => return Err(self.io("open", name, e)),
        };
        // SAFETY: a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata().map_err(|e| self.io("inspect", name, e))?;
        use std::os::unix::fs::MetadataExt;
        if !meta.file_type().is_file() {
            return Err(Refusal::NotAFile { path });
        }
        let euid = crate::fs::euid();
        if meta.uid() != euid {
            return Err(Refusal::NotOurs {
                path,
                uid: meta.uid(),
                euid,
            });
        }
        // A second name for another file of ours (a hard link planted where
        // fs.protected_hardlinks is off) would be written through like a symlink.
        if meta.nlink() != 1 {
            return Err(Refusal::HardLinked { path });
        }
        Ok(Some(file))
    }

    /// Whether an entry `name` exists (a symlink counts, dangling or not).
    pub fn has(&self, name: &OsStr) -> bool {
        let Ok(c) = cstr(name) else { return false };
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid descriptor, C string and buffer.
        unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
        }
    }

    /// Whether the entry `name` is `file` (same device and inode): it was not renamed away or
    /// replaced since `file` was opened.
    pub fn is_entry(&self, name: &OsStr, file: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(c) = cstr(name) else { return false };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid descriptor, C string and buffer; `st` is read only when fstatat succeeded.
        unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
                && {
                    let st = st.assume_init();
                    st.st_dev == meta.dev() && st.st_ino == meta.ino()
                }
        }
    }

    /// Removes the entry `name` (a symlink itself, never its target); a missing one is fine.
    pub fn remove(&self, name: &OsStr) {
        if let Ok(c) = cstr(name) {
            // SAFETY: valid descriptor and C string.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }

    /// Renames `from` to `to` inside this directory. The entry under `to` is replaced (a symlink
    /// there is replaced, not written through), unless `no_replace`: then an existing `to` is an
    /// `AlreadyExists` error and stays as it is.
    pub fn rename(&self, from: &OsStr, to: &OsStr, no_replace: bool) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        let fd = self.fd.as_raw_fd();
        let raw = |flags: libc::c_uint| {
            // SAFETY: valid descriptor and C strings.
            check(unsafe { libc::renameat2(fd, f.as_ptr(), fd, t.as_ptr(), flags) })
        };
        if !no_replace {
            return raw(0).map(drop);
        }
        match raw(libc::RENAME_NOREPLACE) {
            // File systems without RENAME_NOREPLACE: look, then rename (the look can race, which
            // only costs -n its promise there, never a write through a link).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                if self.has(to) {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                raw(0).map(drop)
            }
            r => r.map(drop),
        }
    }

    /// Makes a rename in this directory durable (`fsync` of the directory), as `atomic.rs`
    /// does after its rename; best effort: some file systems refuse to sync a directory, and the
    /// file's data is already synced.
    pub fn sync(&self) {
        // SAFETY: a plain fsync of an open descriptor.
        unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }

    fn io(&self, action: &'static str, name: &OsStr, source: io::Error) -> Refusal {
        Refusal::Io {
            action,
            path: self.path_of(name),
            source,
        }
    }
}

/// The temp file's and the sidecar's names for the final name `name`: `.NAME.gdcloud-partial`
/// and `.NAME.gdcloud-partial.json`, or, when those would pass `NAME_MAX`, a cut `NAME` completed
/// with `~` and 16 hex digits of the SHA-256 of the whole name (stable, so a re-run resumes).
pub fn temp_names(name: &OsStr) -> (OsString, OsString) {
    let bytes = name.as_bytes();
    let stem: Vec<u8> = if 1 + bytes.len() + SIDECAR_SUFFIX.len() <= NAME_MAX {
        bytes.to_vec()
    } else {
        let hash = hex::encode(&Sha256::digest(bytes)[..8]);
        let mut keep = NAME_MAX - 1 - SIDECAR_SUFFIX.len() - 1 - hash.len();
        // Cut at a character boundary when the name is UTF-8, so it stays readable.
        while keep > 0 && (bytes[keep] & 0xc0) == 0x80 {
            keep -= 1;
        }
        let mut s = bytes[..keep].to_vec();
        s.push(b'~');
        s.extend_from_slice(hash.as_bytes());
        s
    };
    let with = |suffix: &str| {
        let mut v = Vec::with_capacity(stem.len() + 1 + suffix.len());
        v.push(b'.');
        v.extend_from_slice(&stem);
        v.extend_from_slice(suffix.as_bytes());
        OsString::from_vec(v)
    };
    (with(PARTIAL_SUFFIX), with(SIDECAR_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_fit_name_max_and_stay_stable() {
        let (p, s) = temp_names(OsStr::new("blob.bin"));
        assert_eq!(p, ".blob.bin.gdcloud-partial");
        assert_eq!(s, ".blob.bin.gdcloud-partial.json");
        for n in [233, 234, 238, 239, 250, 255] {
            let name = "é".repeat(n / 2) + &"x".repeat(n % 2);
            assert_eq!(name.len(), n);
            let (p, s) = temp_names(OsStr::new(&name));
            assert!(s.len() <= NAME_MAX && p.len() < s.len(), "{n}: {}", s.len());
            assert!(
                std::str::from_utf8(p.as_bytes()).is_ok(),
                "{n}: cut inside a character"
            );
            assert_eq!((p.clone(), s.clone()), temp_names(OsStr::new(&name)));
        }
        // Two long names with the same beginning never share temp files.
        let a = "a".repeat(250);
        let b = format!("{}b", "a".repeat(249));
        assert_ne!(temp_names(OsStr::new(&a)).0, temp_names(OsStr::new(&b)).0);
    }
}
