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
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// Deletes `target` (relative to `root`, already resolved: no symlink in its parents) unless this
/// layer wrote it; when this layer wrote it, or `opaque` is set (then `target` is the opaque
/// directory itself, which stays), deletes only its children this layer did not write, recursively.
/// A missing `target` is not an error: another whiteout may have taken it already.
pub(crate) fn apply(
    root: &Path,
    target: &Path,
    opaque: bool,
    written: &HashSet<PathBuf>,
) -> io::Result<Removed> {
    let mut removed = Removed::default();
    let meta = match fs::symlink_metadata(root.join(target)) {
        Ok(m) => m,
        Err(e) if missing(&e) => return Ok(removed),
        Err(e) => return Err(e),
    };
    if !opaque && !written.contains(target) {
        remove(root, target, meta.file_type(), &mut removed)?;
    } else if meta.is_dir() {
        prune(root, target, written, &mut removed)?;
    }
    Ok(removed)
}

/// Removes the children of `dir` this layer did not write, descending into the ones it did.
fn prune(
    root: &Path,
    dir: &Path,
    written: &HashSet<PathBuf>,
    removed: &mut Removed,
) -> io::Result<()> {
    for child in fs::read_dir(root.join(dir))? {
        let child = child?;
        let rel = dir.join(child.file_name());
        let kind = child.file_type()?;
        if !written.contains(&rel) {
            remove(root, &rel, kind, removed)?;
        } else if kind.is_dir() {
            prune(root, &rel, written, removed)?;
        }
    }
    Ok(())
}

fn remove(root: &Path, rel: &Path, kind: fs::FileType, removed: &mut Removed) -> io::Result<()> {
    let abs = root.join(rel);
    let result = if kind.is_dir() {
        removed.dirs.push(rel.to_path_buf());
        removed.invalidates = true;
        // Does not follow symlinks inside (CVE-2022-21658 fixed in std 1.58.1).
        fs::remove_dir_all(&abs)
    } else {
        removed.invalidates |= kind.is_symlink();
        fs::remove_file(&abs)
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

    fn set(paths: &[&str]) -> HashSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn whiteout_spares_this_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        tree(root);
        // Not written by this layer: gone entirely.
        let r = apply(root, Path::new("d/sub"), false, &set(&[])).unwrap();
        assert!(!root.join("d/sub").exists());
        assert_eq!(r.dirs, vec![PathBuf::from("d/sub")]);
        // Written by this layer (with `d/new/c`): only the lower child goes.
        let written = set(&["d", "d/new", "d/new/c"]);
        apply(root, Path::new("d/new"), false, &written).unwrap();
        assert!(root.join("d/new/c").exists());
        assert!(!root.join("d/new/lower").exists());
        // Missing: fine.
        apply(root, Path::new("d/nothing"), false, &written).unwrap();
        apply(root, Path::new("d/a/under-a-file"), false, &written).unwrap();
    }

    #[test]
    fn opaque_keeps_dir_and_upper_entries_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        tree(root);
        let written = set(&["d", "d/new", "d/new/c"]);
        let r = apply(root, Path::new("d"), true, &written).unwrap();
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
