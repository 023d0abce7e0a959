//! The only code that replaces user files: temp file in the same directory, fsync, rename, under an
//! advisory lock.
//!
//! Readers never lock: a rename is atomic, so they see the old file or the new one, never a torn one.
//! Writers serialise on a lock taken on the *directory* that holds the file (flock works on directories
//! on Linux), which leaves no lock files behind in `~/.docker` or the gdcloud configuration directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Holds an exclusive advisory lock on a directory until dropped.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Blocks until the lock on `dir` is ours. Creates `dir` (0700) when missing.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        create_private_dir(dir)?;
        let file = File::open(dir)?;
        file.lock()?;
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Creates `dir` and its missing parents, the new ones private to the user.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Where a write to `path` must really go: a symlink is followed (to its final target) so that the
/// link stays a link and its target is what gets replaced.
pub fn resolve_target(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = if link.is_absolute() {
                    link
                } else {
                    current.parent().unwrap_or(Path::new("/")).join(link)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "too many levels of symbolic links at {}",
        path.display()
    )))
}

/// Replaces `path` with `contents` atomically: the data is written to a temp file beside the target,
/// flushed to disk, given `mode`, then renamed over the target; the directory is synced after.
///
/// The caller holds the lock (see [`DirLock`]) when a read-modify-write must not lose a concurrent
/// update. A symlinked `path` is resolved first so the link survives.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let target = resolve_target(path)?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            target.file_name().unwrap_or_default().to_string_lossy()
        ))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    // The umask may have narrowed the mode at creation; set it exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Opens `path` for appending, creating it 0600; used for opt-in diagnostic logs.
///
/// Only a regular file is accepted: the path is opened non-blocking (a FIFO with no reader
/// fails at once instead of hanging the caller, one with a reader is then refused), and anything
/// that is not a regular file is refused with `InvalidInput`.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// The permission bits of an existing file, if it exists.
#[cfg(feature = "net")]
pub fn existing_mode(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"one", 0o600).unwrap();
        write(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(existing_mode(&p), Some(0o640));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn write_through_symlink_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write(&link, b"new", 0o600).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
    }

    #[test]
    fn dir_lock_is_exclusive_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire(dir.path()).unwrap();
        let f = File::open(dir.path()).unwrap();
        assert!(f.try_lock().is_err());
        drop(a);
        assert!(f.try_lock().is_ok());
    }
}
