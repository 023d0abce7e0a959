//! An entry's parent directory, resolved inside the root (or created), as an fd; a cache of those
//! for the layer; and, not being root, the permission we lend ourselves on directories we own that
//! refuse us (an image's `0555` `usr/`), as `umoci unpack --rootless` does.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{times_of, DirFix, Error, LayerExtractor, SETGID};
use crate::extract::path::{self, Lookup, Node, ResolveError, Resolved};
use crate::extract::sys;

/// Cached parents hold an fd each: past this many the cache starts afresh (entries come grouped
/// by directory, so this costs little and keeps far below the default limit of 1024 open files).
pub(super) const PARENT_CACHE: usize = 256;

/// A directory resolved inside the root, and what a child created in it is born with.
#[derive(Debug)]
pub(super) struct Parent {
    /// Relative to the root; a real directory when it was resolved. Bookkeeping only: every
    /// operation goes through `fd`.
    pub(super) path: PathBuf,
    /// `O_PATH` fd of the directory, resolved by `pathrs` inside the root (or created by `mkdirat`
    /// in such a directory and opened without following).
    pub(super) fd: OwnedFd,
    pub(super) setgid: bool,
    /// The group a new child gets (the directory's own if setgid, else ours).
    pub(super) child_gid: u32,
}

impl LayerExtractor<'_> {
    /// Resolves the cleaned directory `dir` inside the root, through the cache. With `create`,
    /// missing directories are made (mode 0777 less umask, as umoci's `MkdirAll`); without, a
    /// missing (or non-directory) parent is `None`. The deepest directory that existed is noted,
    /// so its times are restored when the layer ends.
    ///
    /// `path::resolve` (an `lstat` walk under `/proc/self/fd/ROOT`) only plans: it names the
    /// directory (symlinks expanded, the part that is missing). What is used is an fd: the
    /// existing part is opened by `pathrs` (`openat2(RESOLVE_IN_ROOT)`, or its checked fallback),
    /// so a symlink swapped in meanwhile still resolves inside the root, and the missing part is
    /// made with `mkdirat` and opened `O_NOFOLLOW` component by component from that fd.
    pub(super) fn parent(
        &mut self,
        raw: &[u8],
        dir: &Path,
        create: bool,
    ) -> Result<Option<Rc<Parent>>, Error> {
        if dir.as_os_str().is_empty() {
            self.touch_root();
            return Ok(Some(self.root_dir.clone()));
        }
        if let Some(p) = self.parents.get(dir) {
            return Ok(Some(p.clone()));
        }
        let Some(resolved) = self.resolve(raw, dir, create)? else {
            return Ok(None);
        };
        if !resolved.complete() && !create {
            return Ok(None);
        }
        let mut cur: PathBuf = resolved.path.iter().take(resolved.existing).collect();
        let (mut fd, setgid, child_gid) = self.open_existing(raw, &cur)?;
        for part in resolved.path.iter().skip(resolved.existing) {
            self.make_dir(raw, fd.as_fd(), &cur, part)?;
            cur.push(part);
            fd = sys::open_dir(fd.as_fd(), part)
                .map_err(|e| self.io(raw, "open the parent directory", e))?;
        }
        let parent = Rc::new(Parent {
            path: resolved.path,
            fd,
            setgid,
            child_gid,
        });
        self.cache_parent(dir.to_path_buf(), parent.clone());
        Ok(Some(parent))
    }

    /// Plans `dir` with `path::resolve`; `None` when, not creating, a component is no directory.
    /// A directory refusing us search permission is lent it (see `lend_search`) and the walk
    /// starts again.
    fn resolve(
        &mut self,
        raw: &[u8],
        dir: &Path,
        create: bool,
    ) -> Result<Option<Resolved<Metadata>>, Error> {
        let root = self.root;
        loop {
            match path::resolve(&mut RealFs(&root.lookup), dir) {
                Ok(r) => return Ok(Some(r)),
                Err(ResolveError::NotDir(_)) if !create => return Ok(None),
                Err(e) => {
                    let e = e.into_io();
                    if e.kind() == io::ErrorKind::PermissionDenied && self.lend_search(dir)? {
                        continue;
                    }
                    return Err(self.io(raw, "resolve the parent directory", e));
                }
            }
        }
    }

    /// Opens the existing part `cur` of a parent (through `pathrs`), noting its times to restore;
    /// returns its fd, whether it is setgid and the group its children get.
    fn open_existing(&mut self, raw: &[u8], cur: &Path) -> Result<(OwnedFd, bool, u32), Error> {
        if cur.as_os_str().is_empty() {
            self.touch_root();
            let fd = self
                .root_dir
                .fd
                .try_clone()
                .map_err(|e| self.io(raw, "open the parent directory", e))?;
            return Ok((fd, self.root_dir.setgid, self.root_dir.child_gid));
        }
        let fd = self
            .root
            .open_dir(cur)
            .map_err(|e| self.io(raw, "open the parent directory", e))?;
        let m = sys::stat_fd(fd.as_fd())
            .map_err(|e| self.io(raw, "inspect the parent directory", e))?;
        if !m.is_dir() {
            let e = io::Error::from_raw_os_error(libc::ENOTDIR);
            return Err(self.io(raw, "open the parent directory", e));
        }
        self.dirs
            .entry(cur.to_path_buf())
            .or_insert_with(|| DirFix {
                mode: None,
                times: Some(times_of(&m)),
            });
        let setgid = m.mode() & SETGID != 0;
        Ok((fd, setgid, if setgid { m.gid() } else { self.creds.gid }))
    }

    /// Makes the missing directory `part` in `fd` (which is `cur`), lending ourselves write
    /// permission if it refuses; one that appeared meanwhile will do.
    fn make_dir(
        &mut self,
        raw: &[u8],
        fd: BorrowedFd<'_>,
        cur: &Path,
        part: &OsStr,
    ) -> Result<(), Error> {
        let made = match sys::mkdirat(fd, part, 0o777) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(fd, cur)?;
                sys::mkdirat(fd, part, 0o777)
            }
            r => r,
        };
        match made {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(self.io(raw, "create the parent directory", e)),
        }
    }

    /// Remembers the parent `dir` resolves to, starting the cache afresh when it is full.
    pub(super) fn cache_parent(&mut self, dir: PathBuf, parent: Rc<Parent>) {
        if self.parents.len() >= PARENT_CACHE {
            self.parents.clear();
        }
        self.parents.insert(dir, parent);
    }

    /// Not being root, lends ourselves write and search permission on a directory we own that
    /// refuses them (an image's `0555` `usr/`), as `umoci unpack --rootless` does; its mode is
    /// restored when the layer ends. Anything else is left as it is, for the caller's retry to
    /// fail with the original error.
    pub(super) fn lend(&mut self, dir: BorrowedFd<'_>, rel: &Path) -> Result<bool, Error> {
        if self.creds.uid == 0 {
            return Ok(false);
        }
        let err = |action, source| Error::Entry {
            layer: self.layer.to_string(),
            entry: rel.to_string_lossy().into_owned(),
            action,
            source,
        };
        let m = sys::stat_fd(dir).map_err(|e| err("inspect the directory", e))?;
        let mode = m.mode() & 0o7777;
        if m.uid() != self.creds.uid || mode & 0o300 == 0o300 {
            return Ok(false);
        }
        sys::chmod_fd(dir, mode | 0o700).map_err(|e| err("make the directory writable", e))?;
        let fix = self
            .dirs
            .entry(rel.to_path_buf())
            .or_insert_with(|| DirFix {
                mode: None,
                times: Some(times_of(&m)),
            });
        fix.mode.get_or_insert(mode);
        Ok(true)
    }

    /// Not being root, when resolving `dir` met a directory that refuses search permission (an
    /// image's `0666` directory from a lower layer): finds the deepest one that opens (each
    /// prefix opened by `pathrs`, not followed) and lends it permission (see `lend`). Whether
    /// anything was lent, so resolving again may get further; only ever on that error path.
    fn lend_search(&mut self, dir: &Path) -> Result<bool, Error> {
        if self.creds.uid == 0 {
            return Ok(false);
        }
        let root = self.root;
        let mut prefix = PathBuf::new();
        let mut fd: Option<OwnedFd> = None;
        for part in dir.iter() {
            let next = prefix.join(part);
            match root.open_dir(&next) {
                Ok(f) => {
                    fd = Some(f);
                    prefix = next;
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    let at = fd.as_ref().map_or(root.fd(), |f| f.as_fd());
                    return self.lend(at, &prefix);
                }
                Err(_) => return Ok(false),
            }
        }
        Ok(false)
    }
}

/// The real filesystem under the root, for `path::resolve`.
pub(crate) struct RealFs<'a>(pub(crate) &'a Path);

impl Lookup for RealFs<'_> {
    type Meta = Metadata;
    fn lookup(&mut self, rel: &Path) -> io::Result<Node<Metadata>> {
        let abs = self.0.join(rel);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => Ok(Node::Dir(m)),
            Ok(m) if m.file_type().is_symlink() => Ok(Node::Symlink(
                fs::read_link(&abs)?.into_os_string().into_encoded_bytes(),
            )),
            Ok(_) => Ok(Node::Other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Node::Missing),
            Err(e) => Err(e),
        }
    }
}
