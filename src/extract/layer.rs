//! One layer's tar stream applied onto a root filesystem: umoci's `TarExtractor` and
//! `UnpackEntry` (`oci/layer/tar_extract.go`), with the same results and far fewer system calls.
//!
//! Per entry: the name is cleaned (`path::clean`, refusing `..` escapes); only its *parent* is
//! resolved inside the root (`path::resolve`, symlinks confined), never the last component, which
//! is created or replaced; a hard link's target takes the same resolution; the root's type cannot
//! change. What exists is clobbered unless both old and new are directories (then the directory
//! stays and its metadata is updated). Owner before mode (chown clears setuid), times last; a file
//! must yield exactly its header's size.
//!
//! Speed comes from state kept for the layer: resolved parents are cached (dropped whenever a
//! directory or symlink is removed, since a resolution may have gone through it); a new inode's
//! owner and mode are known, so `chown`/`chmod` run only when they would change something; file
//! data goes through one large buffer; nothing is fsynced. Directories' modes and times are set
//! when the layer ends, after their contents: a directory this layer adds children to but does not
//! list keeps its old times, as umoci restores them. `written` is umoci's `upperPaths`: what this
//! layer wrote (and the ancestors), which its own whiteouts must spare.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;
use tar::EntryType;

use super::compress::{copy, CopyError, COPY_BUFFER};
use super::entry::{Meta, MetaError};
use super::path::{self, Lookup, Node, ResolveError};
use super::sys::{self, Creds, Inode};
use super::whiteout::{self, Whiteout};
use super::{Error, Options, RootDir, UnpackStats};
use crate::tar_limit;

const SETGID: u32 = libc::S_ISGID;
const SETUID: u32 = libc::S_ISUID;

/// Cached parents hold an fd each: past this many the cache starts afresh (entries come grouped
/// by directory, so this costs little and keeps far below the default limit of 1024 open files).
const PARENT_CACHE: usize = 256;

/// A directory resolved inside the root, and what a child created in it is born with.
#[derive(Debug)]
struct Parent {
    /// Relative to the root; a real directory when it was resolved. Bookkeeping only: every
    /// operation goes through `fd`.
    path: PathBuf,
    /// `O_PATH` fd of the directory, resolved by `pathrs` inside the root (or created by `mkdirat`
    /// in such a directory and opened without following).
    fd: OwnedFd,
    setgid: bool,
    /// The group a new child gets (the directory's own if setgid, else ours).
    child_gid: u32,
}

/// What to apply to a directory when the layer ends.
#[derive(Debug, Default)]
struct DirFix {
    mode: Option<u32>,
    times: Option<(FileTime, FileTime)>,
}

pub(crate) struct LayerExtractor<'a> {
    root: &'a RootDir,
    opts: &'a Options,
    layer: &'a str,
    stats: &'a mut UnpackStats,
    /// When set, every entry must lie under it (an artifact directory).
    prefix: Option<&'a Path>,
    creds: Creds,
    root_dir: Rc<Parent>,
    root_times: (FileTime, FileTime),
    root_owner: (u32, u32),
    root_mode: u32,
    written: HashSet<PathBuf>,
    parents: HashMap<PathBuf, Rc<Parent>>,
    dirs: BTreeMap<PathBuf, DirFix>,
    buf: Vec<u8>,
}

impl<'a> LayerExtractor<'a> {
    pub(crate) fn new(
        root: &'a RootDir,
        opts: &'a Options,
        layer: &'a str,
        stats: &'a mut UnpackStats,
        prefix: Option<&'a Path>,
    ) -> Result<Self, Error> {
        let open_err = |source| Error::Io {
            path: root.path.clone(),
            action: "open the destination",
            source,
        };
        let m = sys::stat_fd(root.fd()).map_err(open_err)?;
        let fd = root.fd().try_clone_to_owned().map_err(open_err)?;
        let creds = Creds::current();
        let setgid = m.mode() & SETGID != 0;
        Ok(LayerExtractor {
            root,
            opts,
            layer,
            stats,
            prefix,
            creds,
            root_dir: Rc::new(Parent {
                path: PathBuf::new(),
                fd,
                setgid,
                child_gid: if setgid { m.gid() } else { creds.gid },
            }),
            root_times: times_of(&m),
            root_owner: (m.uid(), m.gid()),
            root_mode: m.mode() & 0o7777,
            written: HashSet::new(),
            parents: HashMap::new(),
            dirs: BTreeMap::new(),
            buf: vec![0; COPY_BUFFER],
        })
    }

    /// Applies every entry of `reader` (an uncompressed tar), then the directories' modes and times.
    /// Stops at the tar's end marker; the caller drains what follows.
    pub(crate) fn apply<R: Read>(mut self, reader: R) -> Result<(), Error> {
        let (reader, budget) = tar_limit::limited(reader);
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive.entries().map_err(|e| self.read_err(e))?;
        loop {
            budget.between_entries();
            let Some(entry) = entries.next() else {
                break;
            };
            let mut entry = entry.map_err(|e| self.read_err(e))?;
            budget.within_entry();
            self.entry(&mut entry)?;
            // What the entry left unread is skipped here, where it does not count against the
            // budget between entries.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| self.read_err(e))?;
        }
        self.finish()
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let clean = path::clean(&raw).map_err(|r| self.hostile(&raw, r.for_name()))?;
        if let Some(prefix) = self.prefix {
            if !clean.starts_with(prefix) {
                return Err(self.hostile(&raw, "entry lies outside the artifact's directory"));
            }
            if clean == prefix && kind != EntryType::Directory {
                return Err(self.hostile(&raw, "the artifact's directory entry is not a directory"));
            }
        }
        let Some((dir, name)) = path::split(&clean) else {
            if kind != EntryType::Directory {
                return Err(self.hostile(&raw, "refusing to change the type of the root directory"));
            }
            let meta = self.meta(&raw, entry)?;
            return self.root_entry(&raw, &meta);
        };
        if let Some(wh) = whiteout::classify(name) {
            let wh = wh.map_err(|reason| self.hostile(&raw, reason))?;
            return self.whiteout(&raw, dir, wh);
        }
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Fifo => {}
            EntryType::Char | EntryType::Block if self.opts.allow_devices => {}
            EntryType::Char | EntryType::Block => return Ok(()),
            other => {
                return Err(Error::UnsupportedEntry {
                    layer: self.layer.to_string(),
                    entry: lossy(&raw),
                    kind: char::from(other.as_byte()),
                })
            }
        }
        let meta = self.meta(&raw, entry)?;
        let parent = self
            .parent(&raw, dir, true)?
            .expect("parents are created when asked to");
        let rel = parent.path.join(name);
        match kind {
            EntryType::Directory => self.dir(&raw, &parent, &clean, &rel, name, &meta)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.symlink(&raw, &parent, &rel, name, &target, &meta)?
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hardlink(&raw, &parent, &rel, name, &target)?
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                let (node, major, minor) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten();
                        let minor = h.device_minor().ok().flatten();
                        let (Some(major), Some(minor)) = (major, minor) else {
                            return Err(self.hostile(&raw, "invalid device numbers"));
                        };
                        let node = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (node, major, minor)
                    }
                };
                self.node(&raw, &parent, &rel, name, (node, major, minor), &meta)?
            }
            _ => self.file(&raw, &parent, &rel, name, entry, &meta)?,
        }
        self.mark_written(&rel);
        Ok(())
    }

    fn meta<R: Read>(&self, raw: &[u8], entry: &mut tar::Entry<'_, R>) -> Result<Meta, Error> {
        let mut meta = Meta::read(entry).map_err(|e| match e {
            MetaError::Hostile(reason) => self.hostile(raw, reason),
            MetaError::Read(e) => self.read_err(e),
        })?;
        if self.opts.drop_privileges {
            if entry.header().entry_type() != EntryType::Directory {
                meta.mode &= !(SETUID | SETGID);
            }
            meta.xattrs.retain(|(name, _)| {
                !name.starts_with(b"security.") && !name.starts_with(b"trusted.")
            });
        }
        Ok(meta)
    }

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
    fn parent(
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
        let root = self.root;
        let resolved = loop {
            match path::resolve(&mut RealFs(&root.lookup), dir) {
                Ok(r) => break r,
                Err(ResolveError::NotDir(_)) if !create => return Ok(None),
                Err(e) => {
                    let e = e.into_io();
                    if e.kind() == io::ErrorKind::PermissionDenied && self.lend_search(dir)? {
                        continue;
                    }
                    return Err(self.io(raw, "resolve the parent directory", e));
                }
            }
        };
        let complete = resolved.complete();
        if !complete && !create {
            return Ok(None);
        }
        let mut cur: PathBuf = resolved.path.iter().take(resolved.existing).collect();
        let (mut fd, setgid, child_gid) = if resolved.existing == 0 {
            self.touch_root();
            let fd = self
                .root_dir
                .fd
                .try_clone()
                .map_err(|e| self.io(raw, "open the parent directory", e))?;
            (fd, self.root_dir.setgid, self.root_dir.child_gid)
        } else {
            let fd = self
                .root
                .open_dir(&cur)
                .map_err(|e| self.io(raw, "open the parent directory", e))?;
            let m = sys::stat_fd(fd.as_fd())
                .map_err(|e| self.io(raw, "inspect the parent directory", e))?;
            if !m.is_dir() {
                let e = io::Error::from_raw_os_error(libc::ENOTDIR);
                return Err(self.io(raw, "open the parent directory", e));
            }
            self.dirs.entry(cur.clone()).or_insert_with(|| DirFix {
                mode: None,
                times: Some(times_of(&m)),
            });
            let setgid = m.mode() & SETGID != 0;
            (fd, setgid, if setgid { m.gid() } else { self.creds.gid })
        };
        for part in resolved.path.iter().skip(resolved.existing) {
            let made = match sys::mkdirat(fd.as_fd(), part, 0o777) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    self.lend(fd.as_fd(), &cur)?;
                    sys::mkdirat(fd.as_fd(), part, 0o777)
                }
                r => r,
            };
            match made {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.io(raw, "create the parent directory", e)),
            }
            cur.push(part);
            fd = sys::open_dir(fd.as_fd(), part)
                .map_err(|e| self.io(raw, "open the parent directory", e))?;
        }
        if self.parents.len() >= PARENT_CACHE {
            self.parents.clear();
        }
        let parent = Rc::new(Parent {
            path: resolved.path,
            fd,
            setgid,
            child_gid,
        });
        self.parents.insert(dir.to_path_buf(), parent.clone());
        Ok(Some(parent))
    }

    /// Not being root, lends ourselves write and search permission on a directory we own that
    /// refuses them (an image's `0555` `usr/`), as `umoci unpack --rootless` does; its mode is
    /// restored when the layer ends. Anything else is left as it is, for the caller's retry to
    /// fail with the original error.
    fn lend(&mut self, dir: BorrowedFd<'_>, rel: &Path) -> Result<bool, Error> {
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

    fn touch_root(&mut self) {
        let times = self.root_times;
        self.dirs.entry(PathBuf::new()).or_insert_with(|| DirFix {
            mode: None,
            times: Some(times),
        });
    }

    /// `./` itself: only its metadata can change.
    fn root_entry(&mut self, raw: &[u8], meta: &Meta) -> Result<(), Error> {
        let root = self.root.fd();
        let chowned = self.chown(raw, Inode::Fd(root), self.root_owner, meta)?;
        if chowned {
            self.root_owner = (meta.uid, meta.gid);
            if self.root_dir.setgid {
                // Children now inherit the new group: no cached parent may claim the old one.
                let fd = root
                    .try_clone_to_owned()
                    .map_err(|e| self.io(raw, "open the destination", e))?;
                self.root_dir = Rc::new(Parent {
                    path: PathBuf::new(),
                    fd,
                    setgid: true,
                    child_gid: meta.gid,
                });
                self.parents.clear();
            }
        }
        self.xattrs(raw, Inode::Fd(root), meta, false)?;
        let fix = self.dirs.entry(PathBuf::new()).or_default();
        fix.times = Some((meta.atime, meta.mtime));
        fix.mode = (self.root_mode != meta.mode || chowned && meta.mode & 0o7000 != 0)
            .then_some(meta.mode);
        self.stats.dirs += 1;
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), Error> {
        let perm = meta.mode & 0o777;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = self.create(raw, parent, rel, name, "create the file", || {
            sys::openat(parent.fd.as_fd(), name, flags, perm)
        })?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let written = match copy(entry, &mut file, &mut self.buf) {
            Ok(n) => n,
            Err(CopyError::Read(e)) => return Err(self.read_err(e)),
            Err(CopyError::Write(e)) => return Err(self.io(raw, "write the file", e)),
        };
        if written != expected {
            return Err(Error::ShortEntry {
                layer: self.layer.to_string(),
                entry: lossy(raw),
                expected,
                actual: written,
            });
        }
        self.stats.files += 1;
        self.stats.bytes += written;
        let born = (self.creds.uid, parent.child_gid);
        let chowned = self.chown(raw, Inode::File(&file), born, meta)?;
        if self.needs_chmod(perm, meta.mode, chowned) {
            file.set_permissions(fs::Permissions::from_mode(meta.mode))
                .map_err(|e| self.io(raw, "set the mode", e))?;
        }
        self.xattrs(raw, Inode::File(&file), meta, false)?;
        meta.set_times(Inode::File(&file))
            .map_err(|e| self.io(raw, "set the times", e))
    }

    fn dir(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        clean: &Path,
        rel: &Path,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<(), Error> {
        // Created searchable and writable by us whatever the final mode, which comes at the end.
        let perm = (meta.mode & 0o777) | 0o700;
        let pfd = parent.fd.as_fd();
        let new_dir = |this: &Self| {
            let inherited = if parent.setgid { SETGID } else { 0 };
            (
                this.creds.created_mode(perm).map(|m| m | inherited),
                (this.creds.uid, parent.child_gid),
                parent.setgid,
            )
        };
        let made = match sys::mkdirat(pfd, name, perm) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(pfd, &parent.path)?;
                sys::mkdirat(pfd, name, perm)
            }
            r => r,
        };
        let (mode, owner, setgid) = match made {
            Ok(()) => new_dir(self),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = self.stat_at(raw, pfd, name)?;
                if m.is_dir() {
                    (
                        Some(m.mode() & 0o7777),
                        (m.uid(), m.gid()),
                        m.mode() & SETGID != 0,
                    )
                } else {
                    self.clobber(raw, parent, rel, name, &m)?;
                    sys::mkdirat(pfd, name, perm)
                        .map_err(|e| self.io(raw, "create the directory", e))?;
                    new_dir(self)
                }
            }
            Err(e) => return Err(self.io(raw, "create the directory", e)),
        };
        let fd = sys::open_dir(pfd, name).map_err(|e| self.io(raw, "open the directory", e))?;
        let chowned = self.chown(raw, Inode::Fd(fd.as_fd()), owner, meta)?;
        self.xattrs(raw, Inode::Fd(fd.as_fd()), meta, false)?;
        let gid = if chowned { meta.gid } else { owner.1 };
        if chowned && setgid {
            // Other cached names for this directory (through symlinks) knew its old group.
            self.parents.clear();
        }
        let fix = DirFix {
            mode: (mode != Some(meta.mode) || chowned && meta.mode & 0o7000 != 0)
                .then_some(meta.mode),
            times: Some((meta.atime, meta.mtime)),
        };
        self.dirs.insert(rel.to_path_buf(), fix);
        if self.parents.len() >= PARENT_CACHE {
            self.parents.clear();
        }
        self.parents.insert(
            clean.to_path_buf(),
            Rc::new(Parent {
                path: rel.to_path_buf(),
                fd,
                setgid,
                child_gid: if setgid { gid } else { self.creds.gid },
            }),
        );
        self.stats.dirs += 1;
        Ok(())
    }

    /// A symlink is created as the tar says: its target is not resolved now (a later write
    /// through it is confined by `path::resolve`).
    fn symlink(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), Error> {
        if target.is_empty() {
            return Err(self.hostile(raw, "symlink with an empty target"));
        }
        if target.contains(&0) {
            return Err(self.hostile(raw, "symlink target contains a NUL byte"));
        }
        let target = OsStr::from_bytes(target);
        let pfd = parent.fd.as_fd();
        self.create(raw, parent, rel, name, "create the symlink", || {
            sys::symlinkat(target, pfd, name)
        })?;
        let link = Inode::Link(pfd, name);
        self.chown(raw, link, (self.creds.uid, parent.child_gid), meta)?;
        self.xattrs(raw, link, meta, true)?;
        meta.set_times(link)
            .map_err(|e| self.io(raw, "set the times", e))?;
        self.stats.links += 1;
        Ok(())
    }

    /// A hard link's target is a name in the image: cleaned and resolved like an entry's name
    /// (its last component not followed), so it can only ever name an inode inside the root.
    fn hardlink(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        target: &[u8],
    ) -> Result<(), Error> {
        let clean = path::clean(target).map_err(|r| self.hostile(raw, r.for_link_target()))?;
        let Some((dir, target_name)) = path::split(&clean) else {
            return Err(self.hostile(raw, "hard link to the root directory"));
        };
        let Some(target_parent) = self.parent(raw, dir, false)? else {
            return Err(self.io(
                raw,
                "create the hard link",
                io::Error::new(io::ErrorKind::NotFound, "its target does not exist"),
            ));
        };
        if target_parent.path.join(target_name) == rel {
            return Err(self.hostile(raw, "hard link to itself"));
        }
        let pfd = parent.fd.as_fd();
        let tfd = target_parent.fd.as_fd();
        // `linkat` without AT_SYMLINK_FOLLOW: a symlink named as the target is linked itself.
        self.create(raw, parent, rel, name, "create the hard link", || {
            sys::linkat(tfd, target_name, pfd, name)
        })?;
        self.stats.links += 1;
        Ok(())
    }

    fn node(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        (kind, major, minor): (u32, u32, u32),
        meta: &Meta,
    ) -> Result<(), Error> {
        let perm = meta.mode & 0o777;
        let pfd = parent.fd.as_fd();
        self.create(raw, parent, rel, name, "create the node", || {
            sys::mknodat(pfd, name, kind, perm, (major, minor))
        })?;
        // Held by fd from here on: what is changed is the node made, never what replaced it.
        let fd = sys::open_path(pfd, name).map_err(|e| self.io(raw, "open the node", e))?;
        let m = sys::stat_fd(fd.as_fd()).map_err(|e| self.io(raw, "inspect the node", e))?;
        if m.mode() & libc::S_IFMT != kind {
            let e = io::Error::other("it was replaced while being extracted");
            return Err(self.io(raw, "open the node", e));
        }
        let inode = Inode::Fd(fd.as_fd());
        let chowned = self.chown(raw, inode, (self.creds.uid, parent.child_gid), meta)?;
        if self.needs_chmod(perm, meta.mode, chowned) {
            sys::chmod_fd(fd.as_fd(), meta.mode).map_err(|e| self.io(raw, "set the mode", e))?;
        }
        self.xattrs(raw, inode, meta, false)?;
        meta.set_times(inode)
            .map_err(|e| self.io(raw, "set the times", e))?;
        self.stats.files += 1;
        Ok(())
    }

    fn whiteout(&mut self, raw: &[u8], dir: &Path, wh: Whiteout<'_>) -> Result<(), Error> {
        let name = match wh {
            Whiteout::Meta => return Ok(()),
            Whiteout::Opaque => None,
            Whiteout::Remove(name) => Some(name),
        };
        self.stats.whiteouts += 1;
        let Some(parent) = self.parent(raw, dir, false)? else {
            return Ok(());
        };
        let pfd = parent.fd.as_fd();
        // Taken for the call (not cloned), so `lend` may borrow the rest of `self`.
        let written = std::mem::take(&mut self.written);
        let mut lent = None;
        let mut lend = |dir: BorrowedFd<'_>, rel: &Path| {
            self.lend(dir, rel).map(|_| ()).map_err(|e| {
                lent = Some(e);
                io::Error::from_raw_os_error(libc::EACCES)
            })
        };
        let result = whiteout::apply(pfd, &parent.path, name, &written, &mut lend);
        self.written = written;
        if let Some(e) = lent {
            return Err(e);
        }
        let removed = result.map_err(|e| self.io(raw, "apply the whiteout", e))?;
        if removed.invalidates {
            self.parents.clear();
        }
        for dir in &removed.dirs {
            self.forget_dir(dir);
        }
        Ok(())
    }

    /// Runs `op` (which creates `name` in `parent` exclusively, never following it); if
    /// something is in the way, removes it and runs `op` again. Not being root, a directory we own
    /// that refuses us gets write permission lent for the layer (see `lend`).
    fn create<T>(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        action: &'static str,
        op: impl Fn() -> io::Result<T>,
    ) -> Result<T, Error> {
        let first = match op() {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(parent.fd.as_fd(), &parent.path)?;
                op()
            }
            r => r,
        };
        match first {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = self.stat_at(raw, parent.fd.as_fd(), name)?;
                self.clobber(raw, parent, rel, name, &m)?;
                op().map_err(|e| self.io(raw, action, e))
            }
            r => r.map_err(|e| self.io(raw, action, e)),
        }
    }

    /// What is at `name` in `dir`, not followed.
    fn stat_at(&self, raw: &[u8], dir: BorrowedFd<'_>, name: &OsStr) -> Result<Metadata, Error> {
        sys::open_path(dir, name)
            .and_then(|fd| sys::stat_fd(fd.as_fd()))
            .map_err(|e| self.io(raw, "inspect the existing path", e))
    }

    /// Removes `name` from `parent` (never following it), forgetting what the caches knew of it.
    fn clobber(
        &mut self,
        raw: &[u8],
        parent: &Parent,
        rel: &Path,
        name: &OsStr,
        m: &Metadata,
    ) -> Result<(), Error> {
        let pfd = parent.fd.as_fd();
        let op = || {
            if m.is_dir() {
                sys::remove_at(pfd, name)
            } else {
                sys::unlinkat(pfd, name, 0)
            }
        };
        // Creating over an existing name fails with EEXIST before write permission is checked:
        // the read-only directory refuses only now.
        let removed = match op() {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(pfd, &parent.path)?;
                op()
            }
            r => r,
        };
        if m.is_dir() {
            removed.map_err(|e| self.io(raw, "replace the directory", e))?;
            self.forget_dir(rel);
        } else {
            removed.map_err(|e| self.io(raw, "replace the existing path", e))?;
            if m.file_type().is_symlink() {
                self.parents.clear();
            }
        }
        Ok(())
    }

    /// `dir` and everything under it is gone: no cached resolution or pending fix may use it.
    fn forget_dir(&mut self, dir: &Path) {
        self.parents.clear();
        let stale: Vec<PathBuf> = self
            .dirs
            .range(dir.to_path_buf()..)
            .take_while(|(k, _)| k.starts_with(dir))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.dirs.remove(&k);
        }
    }

    fn mark_written(&mut self, rel: &Path) {
        let mut p = rel;
        while !p.as_os_str().is_empty() && self.written.insert(p.to_path_buf()) {
            p = p.parent().unwrap_or(Path::new(""));
        }
    }

    /// Gives `inode` the entry's owner unless it was born with it (or owners are not kept).
    fn chown(
        &self,
        raw: &[u8],
        inode: Inode<'_>,
        born: (u32, u32),
        meta: &Meta,
    ) -> Result<bool, Error> {
        meta.chown(inode, born, self.opts.same_owner)
            .map_err(|e| self.io(raw, "change the owner", e))
    }

    /// Whether an inode created with `perm` needs a `chmod` to get `mode`.
    fn needs_chmod(&self, perm: u32, mode: u32, chowned: bool) -> bool {
        self.creds.created_mode(perm) != Some(mode) || chowned && mode & 0o7000 != 0
    }

    fn xattrs(
        &self,
        raw: &[u8],
        inode: Inode<'_>,
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), Error> {
        meta.set_xattrs(inode, symlink || self.creds.uid != 0)
            .map_err(|e| self.io(raw, "set an extended attribute", e))
    }

    /// Directories' modes and times, deepest first, once their contents are done. Each is found
    /// again through `pathrs` inside the root (a held fd per directory could exceed the open-file
    /// limit) and changed through `/proc/self/fd`, never by a path from the root.
    fn finish(self) -> Result<(), Error> {
        for (rel, fix) in self.dirs.iter().rev() {
            let err = |action, source| Error::Entry {
                layer: self.layer.to_string(),
                entry: rel.to_string_lossy().into_owned(),
                action,
                source,
            };
            let held;
            let fd = if rel.as_os_str().is_empty() {
                self.root.fd()
            } else {
                held = self
                    .root
                    .open_dir(rel)
                    .map_err(|e| err("open the directory", e))?;
                held.as_fd()
            };
            if let Some(mode) = fix.mode {
                sys::chmod_fd(fd, mode).map_err(|e| err("set the directory's mode", e))?;
            }
            if let Some((atime, mtime)) = fix.times {
                sys::set_times_fd(fd, atime, mtime)
                    .map_err(|e| err("set the directory's times", e))?;
            }
        }
        Ok(())
    }

    fn hostile(&self, raw: &[u8], reason: &'static str) -> Error {
        Error::HostileEntry {
            layer: self.layer.to_string(),
            entry: lossy(raw),
            reason,
        }
    }

    fn io(&self, raw: &[u8], action: &'static str, source: io::Error) -> Error {
        Error::Entry {
            layer: self.layer.to_string(),
            entry: lossy(raw),
            action,
            source,
        }
    }

    fn read_err(&self, source: io::Error) -> Error {
        if tar_limit::is_records_too_large(&source) {
            return Error::HostileRecords {
                layer: self.layer.to_string(),
                source: tar_limit::RecordsTooLarge,
            };
        }
        Error::Read {
            layer: self.layer.to_string(),
            source,
        }
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

fn times_of(m: &Metadata) -> (FileTime, FileTime) {
    (
        FileTime::from_last_access_time(m),
        FileTime::from_last_modification_time(m),
    )
}

/// An entry name for a message: lossy UTF-8, with the middle of a long name left out so that a
/// hostile one (up to a megabyte) cannot flood the terminal.
fn lossy(raw: &[u8]) -> String {
    const KEEP: usize = 120;
    if raw.len() <= 2 * KEEP + 32 {
        return String::from_utf8_lossy(raw).into_owned();
    }
    format!(
        "{}…({} bytes left out)…{}",
        String::from_utf8_lossy(&raw[..KEEP]),
        raw.len() - 2 * KEEP,
        String::from_utf8_lossy(&raw[raw.len() - KEEP..])
    )
}
