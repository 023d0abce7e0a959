//! The transfer engine behind `gdcloud storage cp`: one object down or one file up, fast and safe.
//!
//! Downloads ([`download`]) run as parallel ranged GETs pinned to the object's ETag, written in
//! place into a hidden temp file beside the target with a small sidecar ([`sidecar`]) recording
//! the finished parts, so an interrupted download resumes where it stopped; the file takes its
//! final name only when complete and checked ([`verify`]: size always, MD5 when the ETag is a
//! plain MD5). Everything a download writes goes through [`dest`], relative to the open
//! destination directory. Uploads ([`upload`]) above the part size go multipart and are aborted
//! on failure, leaving no orphaned parts. Part sizes are in [`parts`].
//!
//! What to copy where is decided by the op (`ops::storage_cp`); keys are mapped into the
//! destination here, by [`confined`], so an object key never writes outside it.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::progress::{BlobProgress, Progress};
use crate::s3;
use crate::text::Escaped;

mod dest;
mod download;
mod interrupt;
mod lock;
mod parts;
mod sidecar;
mod upload;
mod verify;
mod writeback;

pub(crate) use download::download;
pub(crate) use interrupt::Interrupt;
pub(crate) use upload::upload;

/// What can go wrong moving one object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    S3(Box<s3::Error>),
    #[error("object key {:?} would be written outside {} ({reason}); refused", Escaped(.key), shown(.dest))]
    HostileKey {
        key: String,
        dest: PathBuf,
        reason: &'static str,
    },
    #[error(transparent)]
    Destination(#[from] dest::Refusal),
    #[error("{} is a directory: add -r to copy it", shown(.path))]
    NeedsRecursive { path: PathBuf },
    #[error("{action} {}: {source}", shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted: {what}")]
    Interrupted { what: String },
    #[error("{target}: another `gdcloud storage cp` is still writing it (waited {secs} s; {} sets the wait in seconds): run the copy again when that one has finished", lock::LOCK_WAIT_VAR)]
    Busy { target: String, secs: u64 },
    #[error("{}: {what} does not match the object ({detail}); the partial download was removed, run the command again", shown(.path))]
    Verify {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

impl From<s3::Error> for Error {
    fn from(e: s3::Error) -> Self {
        Error::S3(Box::new(e))
    }
}

/// A path for a message: it holds object keys, so control characters are made visible.
fn shown(p: &Path) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    crate::text::escape_bytes(p.as_os_str().as_bytes())
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// How one object moves: the `cp` flags the engine obeys, and Ctrl-C.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Stops the transfer in flight, keeping what can be resumed.
    pub interrupt: Interrupt,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// The largest part (`--part-size-mib`), in bytes.
    pub part_size: u64,
    /// `-n`: an existing target is left alone.
    pub no_clobber: bool,
}

/// `rel` (an object key, or its part below a prefix) as a path inside `dest`, or why it cannot be.
pub(crate) fn confined(dest: &Path, key: &str, rel: &str) -> Result<PathBuf, Error> {
    let hostile = |reason| Error::HostileKey {
        key: key.to_string(),
        dest: dest.to_path_buf(),
        reason,
    };
    if rel.is_empty() {
        return Err(hostile("it names no file"));
    }
    if rel.starts_with('/') {
        return Err(hostile("it is an absolute path"));
    }
    let path = Path::new(rel);
    let mut out = dest.to_path_buf();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(hostile("it climbs with ..")),
            _ => return Err(hostile("it is an absolute path")),
        }
    }
    if rel.contains('\0') {
        return Err(hostile("it holds a NUL byte"));
    }
    Ok(out)
}

/// What a finished transfer moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Moved {
    /// Bytes transferred by this run.
    pub bytes: u64,
    /// For a resumed download: what an earlier run had already fetched.
    pub reused: Option<Reused>,
}

/// The parts a resumed download found already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Reused {
    pub parts: usize,
    pub of: usize,
    pub bytes: u64,
}

/// The last component of an object key.
pub(crate) fn basename(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// One object's bar, labelled with (the start of) its name made printable.
fn bar(progress: &dyn Progress, name: &str, size: u64) -> Arc<dyn BlobProgress> {
    let label = crate::text::escape(name).into_owned();
    let bar = progress.blob(&label.chars().take(20).collect::<String>(), size);
    progress.expect(size);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside() {
        let d = Path::new("/dest");
        assert_eq!(
            confined(d, "a/b", "a/b").unwrap(),
            PathBuf::from("/dest/a/b")
        );
        assert!(confined(d, "../x", "../x").is_err());
        assert!(confined(d, "a/../../x", "a/../../x").is_err());
        assert!(confined(d, "/etc/passwd", "/etc/passwd").is_err());
        assert!(confined(d, "", "").is_err());
        assert_eq!(confined(d, "./a", "./a").unwrap(), PathBuf::from("/dest/a"));
    }
}
