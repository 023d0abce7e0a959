//! Directory entries, the root's own entry, and what is deferred to the layer's end: directories'
//! modes and times, set deepest first once their contents are written (a `0555` directory must
//! stay writable while it fills; a child's creation would move its parent's mtime).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;

use super::{Error, LayerExtractor, Parent, Place, SETGID};
use crate::extract::entry::Meta;
use crate::extract::sys::{self, Inode};

/// What to apply to a directory when the layer ends.
#[derive(Debug, Default)]
pub(super) struct DirFix {
    pub(super) mode: Option<u32>,
    pub(super) times: Option<(FileTime, FileTime)>,
}

/// A directory as found or made: its mode now (`None` if unknown), owner, and setgid bit.
type DirState = (Option<u32>, (u32, u32), bool);

impl LayerExtractor<'_> {
    /// The root's times are restored when the layer ends, as it now has children we wrote.
    pub(super) fn touch_root(&mut self) {
        let times = self.root_times;
        self.dirs.entry(PathBuf::new()).or_insert_with(|| DirFix {
            mode: None,
            times: Some(times),
        });
    }

    /// `./` itself: only its metadata can change.
    pub(super) fn root_entry(&mut self, raw: &[u8], meta: &Meta) -> Result<(), Error> {
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

    /// A directory entry: an existing directory stays (its metadata is updated), anything else
    /// in the way is replaced. Owner and xattrs now; mode and times when the layer ends.
    pub(super) fn dir(&mut self, at: Place<'_>, clean: &Path, meta: &Meta) -> Result<(), Error> {
        let pfd = at.parent.fd.as_fd();
        let (mode, owner, setgid) = self.make_or_keep_dir(at, meta)?;
        let fd =
            sys::open_dir(pfd, at.name).map_err(|e| self.io(at.raw, "open the directory", e))?;
        let chowned = self.chown(at.raw, Inode::Fd(fd.as_fd()), owner, meta)?;
        self.xattrs(at.raw, Inode::Fd(fd.as_fd()), meta, false)?;
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
        self.dirs.insert(at.rel.to_path_buf(), fix);
        let child_gid = if setgid { gid } else { self.creds.gid };
        self.cache_parent(
            clean.to_path_buf(),
            Rc::new(Parent {
                path: at.rel.to_path_buf(),
                fd,
                setgid,
                child_gid,
            }),
        );
        self.stats.dirs += 1;
        Ok(())
    }

    /// Makes the directory `name` in `parent`, or keeps the directory already there; what else
    /// is there is clobbered first.
    fn make_or_keep_dir(&mut self, at: Place<'_>, meta: &Meta) -> Result<DirState, Error> {
        // Created searchable and writable by us whatever the final mode, which comes at the end.
        let perm = (meta.mode & 0o777) | 0o700;
        let pfd = at.parent.fd.as_fd();
        let new_dir = |this: &Self| {
            let inherited = if at.parent.setgid { SETGID } else { 0 };
            (
                this.creds.created_mode(perm).map(|m| m | inherited),
                (this.creds.uid, at.parent.child_gid),
                at.parent.setgid,
            )
        };
        let made = match sys::mkdirat(pfd, at.name, perm) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(pfd, &at.parent.path)?;
                sys::mkdirat(pfd, at.name, perm)
            }
            r => r,
        };
        match made {
            Ok(()) => Ok(new_dir(self)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = self.stat_at(at.raw, pfd, at.name)?;
                if m.is_dir() {
                    return Ok((
                        Some(m.mode() & 0o7777),
                        (m.uid(), m.gid()),
                        m.mode() & SETGID != 0,
                    ));
                }
                self.clobber(at, &m)?;
                sys::mkdirat(pfd, at.name, perm)
                    .map_err(|e| self.io(at.raw, "create the directory", e))?;
                Ok(new_dir(self))
            }
            Err(e) => Err(self.io(at.raw, "create the directory", e)),
        }
    }

    /// `dir` and everything under it is gone: no cached resolution or pending fix may use it.
    pub(super) fn forget_dir(&mut self, dir: &Path) {
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

    /// Directories' modes and times, deepest first, once their contents are done. Each is found
    /// again through `pathrs` inside the root (a held fd per directory could exceed the open-file
    /// limit) and changed through `/proc/self/fd`, never by a path from the root.
    pub(super) fn finish(self) -> Result<(), Error> {
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
}
