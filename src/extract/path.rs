//! Tar entry names and link targets made safe to use under a root directory: the defence against
//! tar-slip (`../../etc/cron.d/x`) and against link escapes in the style of CVE-2019-14271 and
//! CVE-2018-15664, where a symlink planted by one entry redirects a later write outside the rootfs.
//!
//! Two steps, as in umoci's `UnpackEntry`:
//! - [`clean`] is lexical: `.` and empty components go, `..` pops, a leading `/` is dropped (an
//!   absolute name means "from the image root", as umoci, Docker and containerd read it). A `..`
//!   that would climb above the root is refused rather than clamped: no honest tool writes one.
//! - [`resolve`] walks a cleaned *directory* path component by component with `lstat`, expanding
//!   symlinks by hand with the root standing in for `/` (what `filepath-securejoin` does), so a
//!   symlink to `/etc` or to `../../..` lands inside the root. The caller never passes the last
//!   component of an entry's name: that one is created or replaced, never followed.
//!
//! Filesystem access goes through the [`Lookup`] trait, so both functions are table-tested (and
//! fuzzable) against an in-memory tree.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Linux's limit on symlinks followed in one lookup (`MAXSYMLINKS`).
pub(crate) const MAX_SYMLINKS: u32 = 40;

/// Linux's limit on a path given to a system call (`PATH_MAX`, with its NUL): a longer name can
/// never be created under the root, so it is refused before any work is done for it.
pub(crate) const PATH_MAX: usize = 4096;

/// Why [`clean`] refused a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Empty,
    Nul,
    Escapes,
    TooLong,
}

impl Refusal {
    /// The reason, for an entry's own name.
    pub(crate) fn for_name(self) -> &'static str {
        match self {
            Refusal::Empty => "empty name",
            Refusal::Nul => "name contains a NUL byte",
            Refusal::Escapes => "name climbs out of the root with \"..\"",
            Refusal::TooLong => "name is longer than PATH_MAX (4096 bytes)",
        }
    }

    /// The reason, for a hard link's target.
    pub(crate) fn for_link_target(self) -> &'static str {
        match self {
            Refusal::Empty => "hard link has an empty target",
            Refusal::Nul => "hard link target contains a NUL byte",
            Refusal::Escapes => "hard link target climbs out of the root with \"..\"",
            Refusal::TooLong => "hard link target is longer than PATH_MAX (4096 bytes)",
        }
    }
}

/// Lexically cleans a tar name into a relative path (empty for the root itself): `./a//b/` is
/// `a/b`, `/etc/passwd` is `etc/passwd`, `a/../b` is `b`; `../x` and `a/../../x` are refused.
pub(crate) fn clean(name: &[u8]) -> Result<PathBuf, Refusal> {
    if name.is_empty() {
        return Err(Refusal::Empty);
    }
    if name.contains(&0) {
        return Err(Refusal::Nul);
    }
    if name.len() >= PATH_MAX {
        return Err(Refusal::TooLong);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(Refusal::Escapes);
                }
            }
            part => parts.push(part),
        }
    }
    Ok(PathBuf::from(OsString::from_vec(parts.join(&b'/'))))
}

/// Splits a cleaned path into its parent directory and last component; `None` for the root.
pub(crate) fn split(clean: &Path) -> Option<(&Path, &OsStr)> {
    let name = clean.file_name()?;
    Some((clean.parent().unwrap_or(Path::new("")), name))
}

/// What `lstat` finds at a path inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node<M> {
    Missing,
    Dir(M),
    Symlink(Vec<u8>),
    Other,
}

/// Looks paths up inside the root; `rel` is relative to it and holds no symlinks or `..`.
pub(crate) trait Lookup {
    /// What the caller learns about a directory (its `Metadata`, for the real filesystem).
    type Meta;
    fn lookup(&mut self, rel: &Path) -> io::Result<Node<Self::Meta>>;
}

/// A directory path resolved inside the root.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved<M> {
    /// Relative to the root; no component is a symlink, `.` or `..`.
    pub path: PathBuf,
    /// How many leading components of `path` exist (as real directories); the rest are missing.
    pub existing: usize,
    /// The deepest existing directory's metadata, when it was the last thing looked up.
    pub meta: Option<M>,
}

impl<M> Resolved<M> {
    pub(crate) fn complete(&self) -> bool {
        self.existing == self.path.components().count()
    }
}

#[derive(Debug)]
pub(crate) enum ResolveError {
    /// More than [`MAX_SYMLINKS`] symlinks, or a loop.
    Loop,
    /// A component (relative path given) exists but is neither a directory nor a symlink.
    NotDir(PathBuf),
    /// A symlink on the way has an empty target.
    EmptyLink(PathBuf),
    Io(PathBuf, io::Error),
}

impl ResolveError {
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            ResolveError::Loop => io::Error::from_raw_os_error(libc::ELOOP),
            ResolveError::NotDir(p) => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", p.display()),
            ),
            ResolveError::EmptyLink(p) => io::Error::new(
                io::ErrorKind::NotFound,
                format!("symlink {} has an empty target", p.display()),
            ),
            ResolveError::Io(p, e) => io::Error::new(e.kind(), format!("{}: {e}", p.display())),
        }
    }
}

/// Resolves the cleaned directory path `dir` inside the root, following symlinks in every
/// component (the root acts as `/`, and `..` stops at it) without ever leaving the root. Missing
/// components are kept lexically, as `filepath-securejoin` does, so the caller can create them.
pub(crate) fn resolve<L: Lookup>(
    fs: &mut L,
    dir: &Path,
) -> Result<Resolved<L::Meta>, ResolveError> {
    let mut todo: VecDeque<OsString> = dir
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut cur = PathBuf::new();
    let mut depth = 0usize;
    let mut existing = 0usize;
    let mut meta = None;
    let mut links = 0u32;
    while let Some(part) = todo.pop_front() {
        let bytes = part.as_bytes();
        if bytes.is_empty() || bytes == b"." || bytes == b"/" {
            continue;
        }
        if bytes == b".." {
            if cur.pop() {
                depth -= 1;
                existing = existing.min(depth);
                meta = None;
            }
            continue;
        }
        cur.push(&part);
        depth += 1;
        if existing < depth - 1 {
            // Below a missing directory: missing too.
            continue;
        }
        match fs
            .lookup(&cur)
            .map_err(|e| ResolveError::Io(cur.clone(), e))?
        {
            Node::Missing => meta = None,
            Node::Dir(m) => {
                existing = depth;
                meta = Some(m);
            }
            Node::Other => return Err(ResolveError::NotDir(cur)),
            Node::Symlink(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::Loop);
                }
                if target.is_empty() {
                    return Err(ResolveError::EmptyLink(cur));
                }
                cur.pop();
                depth -= 1;
                meta = None;
                if target.first() == Some(&b'/') {
                    cur = PathBuf::new();
                    depth = 0;
                    existing = 0;
                }
                for part in target.split(|&b| b == b'/').rev() {
                    todo.push_front(OsStr::from_bytes(part).to_os_string());
                }
            }
        }
    }
    Ok(Resolved {
        path: cur,
        existing,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn clean_table() {
        let ok = [
            ("a", "a"),
            ("./a", "a"),
            ("a/", "a"),
            ("./a//b/./c/", "a/b/c"),
            ("a/../b", "b"),
            ("a/b/../../c", "c"),
            ("/etc/passwd", "etc/passwd"),
            ("//abs/path", "abs/path"),
            (".", ""),
            ("./", ""),
            ("/", ""),
            ("a/..", ""),
            ("...", "..."),
            (".wh..wh..opq", ".wh..wh..opq"),
            ("a/.wh...", "a/.wh..."),
        ];
        for (name, want) in ok {
            assert_eq!(clean(name.as_bytes()), Ok(PathBuf::from(want)), "{name}");
        }
        let bad = [
            ("", Refusal::Empty),
            ("..", Refusal::Escapes),
            ("../escape", Refusal::Escapes),
            ("a/../../x", Refusal::Escapes),
            ("/../x", Refusal::Escapes),
            ("./../x", Refusal::Escapes),
            ("a/b/../../../x", Refusal::Escapes),
            ("a\0b", Refusal::Nul),
        ];
        for (name, want) in bad {
            assert_eq!(clean(name.as_bytes()), Err(want), "{name:?}");
        }
        let longest = "d/".repeat(PATH_MAX / 2 - 1) + "f";
        assert_eq!(longest.len(), PATH_MAX - 1);
        assert!(clean(longest.as_bytes()).is_ok());
        assert_eq!(
            clean(format!("{longest}x").as_bytes()),
            Err(Refusal::TooLong)
        );
    }

    #[test]
    fn split_table() {
        assert_eq!(split(Path::new("")), None);
        assert_eq!(
            split(Path::new("a")),
            Some((Path::new(""), OsStr::new("a")))
        );
        assert_eq!(
            split(Path::new("a/b/c")),
            Some((Path::new("a/b"), OsStr::new("c")))
        );
    }

    /// An in-memory tree: directories, symlinks and files by relative path.
    struct Fake(HashMap<PathBuf, Node<()>>);

    impl Fake {
        fn new(entries: &[(&str, &str)]) -> Fake {
            let mut map = HashMap::new();
            for (path, kind) in entries {
                let node = match *kind {
                    "dir" => Node::Dir(()),
                    "file" => Node::Other,
                    target => Node::Symlink(target.as_bytes().to_vec()),
                };
                map.insert(PathBuf::from(path), node);
            }
            Fake(map)
        }
    }

    impl Lookup for Fake {
        type Meta = ();
        fn lookup(&mut self, rel: &Path) -> io::Result<Node<()>> {
            assert!(rel.is_relative(), "looked up {rel:?}");
            assert!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "looked up {rel:?}"
            );
            Ok(self.0.get(rel).cloned().unwrap_or(Node::Missing))
        }
    }

    #[test]
    fn resolve_table() {
        let mut fs = Fake::new(&[
            ("usr", "dir"),
            ("usr/lib", "dir"),
            ("lib", "usr/lib"),
            ("abs", "/usr/lib"),
            ("ext", "/etc"),
            ("selfabs", "/selfabs"),
            ("up", "../../.."),
            ("upfar", "../../../usr"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("self", "self/x"),
            ("file", "file"),
            ("chain", "lib/../../lib"),
            ("gone", "nowhere/deeper"),
            ("back", "nowhere/../usr"),
            ("empty", ""),
        ]);
        let ok: &[(&str, &str, usize)] = &[
            ("", "", 0),
            ("usr", "usr", 1),
            ("usr/lib", "usr/lib", 2),
            ("lib", "usr/lib", 2),
            ("abs", "usr/lib", 2),
            ("ext", "etc", 0),
            ("ext/ssh", "etc/ssh", 0),
            ("up", "", 0),
            ("up/etc", "etc", 0),
            ("upfar", "usr", 1),
            ("upfar/lib/x", "usr/lib/x", 2),
            ("chain", "usr/lib", 2),
            ("gone", "nowhere/deeper", 0),
            ("gone/x", "nowhere/deeper/x", 0),
            ("back", "usr", 1),
            ("usr/new/lib", "usr/new/lib", 1),
        ];
        for (dir, want, existing) in ok {
            let r = resolve(&mut fs, Path::new(dir)).unwrap_or_else(|e| panic!("{dir}: {e:?}"));
            assert_eq!(r.path, PathBuf::from(want), "{dir}");
            assert_eq!(r.existing, *existing, "{dir}");
            assert_eq!(r.complete(), r.path.components().count() == *existing);
        }
        assert!(matches!(
            resolve(&mut fs, Path::new("loop1")),
            Err(ResolveError::Loop)
        ));
        assert!(matches!(
            resolve(&mut fs, Path::new("selfabs/ssh")),
            Err(ResolveError::Loop)
        ));
        assert!(matches!(
            resolve(&mut fs, Path::new("self")),
            Err(ResolveError::Loop)
        ));
        assert!(matches!(
            resolve(&mut fs, Path::new("file/x")),
            Err(ResolveError::NotDir(p)) if p == Path::new("file")
        ));
        assert!(matches!(
            resolve(&mut fs, Path::new("empty/x")),
            Err(ResolveError::EmptyLink(_))
        ));
    }

    #[test]
    fn resolve_never_leaves_root() {
        // Every symlink shape that points "out" stays in: the result is always a plain relative
        // path without `..`.
        let targets = [
            "/",
            "..",
            "../..",
            "/..",
            "/../..",
            "a/../..",
            "../etc",
            "/etc/../..",
            ".",
            "./..",
        ];
        for target in targets {
            let mut fs = Fake::new(&[("l", target), ("d", "dir")]);
            for dir in ["l", "l/x", "d/../l", "l/../l/y"] {
                let cleaned = clean(dir.as_bytes()).unwrap();
                let r = resolve(&mut fs, &cleaned).unwrap();
                assert!(
                    r.path
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{target} {dir} -> {:?}",
                    r.path
                );
            }
        }
    }
}
