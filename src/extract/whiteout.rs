//! OCI whiteouts (image-spec `layer.md`, "Whiteouts"): an entry `.wh.NAME` deletes `NAME` from
//! the lower layers, `.wh..wh..opq` empties its directory of everything the lower layers put there.
//! Neither is ever created on disk.
//!
//! A whiteout only deletes what *lower* layers wrote: the paths this layer already wrote (and
//! their ancestors) are spared, whatever the order of entries in the tar — umoci's `upperPaths`,
//! here the `written` set the caller keeps. Names are checked after lexical cleaning: `.wh.`
//! (empty name), `.wh..` and `.wh...` are refused, so a whiteout can only name a child of the
//! directory it sits in, and that directory has been resolved inside the root. Other
//! `.wh..wh.*` names are AUFS bookkeeping (`.wh..wh.plnk`): skipped, as Docker and containerd do.
//! Removal never follows a symlink: a symlinked child is unlinked, not its target emptied.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::sys;

const PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What a whiteout entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// Delete this child of the entry's directory.
    Remove(&'a OsStr),
    /// Delete every lower-layer child of the entry's directory.
    Opaque,
    /// AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): nothing to do.
    Meta,
}

/// Classifies the last component of a cleaned entry name: `None` for an ordinary entry,
/// `Err(reason)` for a whiteout that names nothing or names `.`/`..`.
pub(crate) fn classify(file_name: &OsStr) -> Option<Result<Whiteout<'_>, &'static str>> {
    let bytes = file_name.as_bytes();
    let name = bytes.strip_prefix(PREFIX)?;
    Some(if bytes == OPAQUE {
        Ok(Whiteout::Opaque)
    } else if bytes.starts_with(META_PREFIX) {
        Ok(Whiteout::Meta)
    } else if name.is_empty() {
        Err("whiteout with an empty name")
    } else if name == b"." || name == b".." {
        Err("whiteout of \".\" or \"..\"")
    } else {
        Ok(Whiteout::Remove(OsStr::from_bytes(name)))
    })
}

/// What [`apply`] deleted that matters to the caller's caches.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    /// Directories removed (relative), with everything under them.
    pub dirs: Vec<PathBuf>,
    /// Whether a directory or a symlink went, so cached parent resolutions may be stale.
    pub invalidates: bool,
}

/// Deletes `name` from the directory `dir` (held by fd, resolved inside the root; `dir_rel` names
/// it relative to the root) unless this layer wrote it; when this layer wrote it, or `name` is
/// `None` (an opaque whiteout of `dir` itself, which stays), deletes only its children this layer
/// did not write, recursively. A missing target is not an error: another whiteout may have taken
/// it already. Every call is fd-relative: nothing is looked up by a path from the root again.
///
/// A directory that refuses a removal with EACCES (a read-only `0555` directory, possibly below
/// `dir` when this layer spared it) is passed to `lend` (with its relative name), which may make
/// it writable for the rest of the layer, and the removal is tried once more.
pub(crate) fn apply(
    dir: BorrowedFd<'_>,
    dir_rel: &Path,
    name: Option<&OsStr>,
    written: &HashSet<PathBuf>,
    lend: &mut Lend<'_>,
) -> io::Result<Removed> {
    let mut removed = Removed::default();
    let Some(name) = name else {
        prune(dir, dir_rel, written, &mut removed, lend)?;
        return Ok(removed);
    };
    let target = dir_rel.join(name);
    let meta = match sys::open_path(dir, name).and_then(|fd| sys::stat_fd(fd.as_fd())) {
        Ok(m) => m,
        Err(e) if missing(&e) => return Ok(removed),
        Err(e) => return Err(e),
    };
    if !written.contains(&target) {
        remove(
            dir,
            dir_rel,
            name,
            &target,
            meta.file_type(),
            &mut removed,
            lend,
        )?;
    } else if meta.is_dir() {
        let sub = sys::open_dir(dir, name)?;
        prune(sub.as_fd(), &target, written, &mut removed, lend)?;
    }
    Ok(removed)
}

/// Called with a directory (and its name relative to the root) that refused a removal.
pub(crate) type Lend<'a> = dyn FnMut(BorrowedFd<'_>, &Path) -> io::Result<()> + 'a;

/// Removes the children of `dir` this layer did not write, descending into the ones it did.
fn prune(
    dir: BorrowedFd<'_>,
    rel: &Path,
    written: &HashSet<PathBuf>,
    removed: &mut Removed,
    lend: &mut Lend<'_>,
) -> io::Result<()> {
    for child in fs::read_dir(sys::proc_path(dir))? {
        let child = child?;
        let name = child.file_name();
        let child_rel = rel.join(&name);
        let kind = child.file_type()?;
        if !written.contains(&child_rel) {
            remove(dir, rel, &name, &child_rel, kind, removed, lend)?;
        } else if kind.is_dir() {
            let sub = sys::open_dir(dir, &name)?;
            prune(sub.as_fd(), &child_rel, written, removed, lend)?;
        }
    }
    Ok(())
}

fn remove(
    dir: BorrowedFd<'_>,
    dir_rel: &Path,
    name: &OsStr,
    rel: &Path,
    kind: fs::FileType,
    removed: &mut Removed,
    lend: &mut Lend<'_>,
) -> io::Result<()> {
    let op = || {
        if kind.is_dir() {
            sys::remove_at(dir, name)
        } else {
            sys::unlinkat(dir, name, 0)
        }
    };
    if kind.is_dir() {
        removed.dirs.push(rel.to_path_buf());
        removed.invalidates = true;
    } else {
        removed.invalidates |= kind.is_symlink();
    }
    let result = match op() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            lend(dir, dir_rel)?;
            op()
        }
        r => r,
    };
    match result {
        Err(e) if missing(&e) => Ok(()),
        r => r,
    }
}

fn missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases: &[(&str, Option<Result<Whiteout, &str>>)] = &[
            ("file", None),
            (".wh", None),
            ("a.wh.b", None),
            (".wh.file", Some(Ok(Whiteout::Remove(OsStr::new("file"))))),
            (
                ".wh..hidden",
                Some(Ok(Whiteout::Remove(OsStr::new(".hidden")))),
            ),
            (".wh.wh.x", Some(Ok(Whiteout::Remove(OsStr::new("wh.x"))))),
            (".wh..wh..opq", Some(Ok(Whiteout::Opaque))),
            (".wh..wh.plnk", Some(Ok(Whiteout::Meta))),
            (".wh..wh..opqx", Some(Ok(Whiteout::Meta))),
            (".wh.", Some(Err("whiteout with an empty name"))),
            (".wh..", Some(Err("whiteout of \".\" or \"..\""))),
            (".wh...", Some(Err("whiteout of \".\" or \"..\""))),
        ];
        for (name, want) in cases {
            assert_eq!(classify(OsStr::new(name)), *want, "{name}");
        }
    }

    fn tree(root: &Path) {
        for d in ["d", "d/sub", "d/new", "keep"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["d/a", "d/sub/b", "d/new/c", "d/new/lower", "keep/k"] {
            fs::write(root.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("../keep", root.join("d/link")).unwrap();
    }

    fn wh(root: &Path, dir: &str, name: Option<&str>, written: &HashSet<PathBuf>) -> Removed {
        let d = fs::File::open(root.join(dir)).unwrap();
        apply(
            d.as_fd(),
            Path::new(dir),
            name.map(OsStr::new),
            written,
            &mut |_, _| Ok(()),
        )
        .unwrap()
    }

    fn set(paths: &[&str]) -> HashSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn whiteout_spares_this_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        tree(root);
        // Not written by this layer: gone entirely.
        let r = wh(root, "d", Some("sub"), &set(&[]));
        assert!(!root.join("d/sub").exists());
        assert_eq!(r.dirs, vec![PathBuf::from("d/sub")]);
        // Written by this layer (with `d/new/c`): only the lower child goes.
        let written = set(&["d", "d/new", "d/new/c"]);
        wh(root, "d", Some("new"), &written);
        assert!(root.join("d/new/c").exists());
        assert!(!root.join("d/new/lower").exists());
        // Missing: fine.
        wh(root, "d", Some("nothing"), &written);
    }

    #[test]
    fn opaque_keeps_dir_and_upper_entries_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        tree(root);
        let written = set(&["d", "d/new", "d/new/c"]);
        let r = wh(root, "d", None, &written);
        assert!(r.invalidates);
        let mut left: Vec<_> = fs::read_dir(root.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec![OsStr::new("new")]);
        assert!(root.join("d/new/c").exists());
        assert!(!root.join("d/new/lower").exists());
        // The symlink went, not what it pointed to.
        assert!(root.join("keep/k").exists());
    }
}
