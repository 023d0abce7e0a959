//! Symlinks and hard links. A symlink's target is stored, never resolved; a hard link's target is
//! a name in the image, resolved like an entry's name, so it can only name an inode in the root.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use super::{Error, LayerExtractor, Place};
use crate::extract::entry::Meta;
use crate::extract::path;
use crate::extract::sys::{self, Inode};

impl LayerExtractor<'_> {
    /// A symlink is created as the tar says: its target is not resolved now (a later write
    /// through it is confined by `path::resolve`).
    pub(super) fn symlink(
        &mut self,
        at: Place<'_>,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), Error> {
        if target.is_empty() {
            return Err(self.hostile(at.raw, "symlink with an empty target"));
        }
        if target.contains(&0) {
            return Err(self.hostile(at.raw, "symlink target contains a NUL byte"));
        }
        let target = OsStr::from_bytes(target);
        let pfd = at.parent.fd.as_fd();
        self.create(at, "create the symlink", || {
            sys::symlinkat(target, pfd, at.name)
        })?;
        let link = Inode::Link(pfd, at.name);
        self.chown(at.raw, link, (self.creds.uid, at.parent.child_gid), meta)?;
        self.xattrs(at.raw, link, meta, true)?;
        meta.set_times(link)
            .map_err(|e| self.io(at.raw, "set the times", e))?;
        self.stats.links += 1;
        Ok(())
    }

    /// A hard link's target is a name in the image: cleaned and resolved like an entry's name
    /// (its last component not followed), so it can only ever name an inode inside the root.
    pub(super) fn hardlink(&mut self, at: Place<'_>, target: &[u8]) -> Result<(), Error> {
        let clean = path::clean(target).map_err(|r| self.hostile(at.raw, r.for_link_target()))?;
        let Some((dir, target_name)) = path::split(&clean) else {
            return Err(self.hostile(at.raw, "hard link to the root directory"));
        };
        let Some(target_parent) = self.parent(at.raw, dir, false)? else {
            return Err(self.io(
                at.raw,
                "create the hard link",
                io::Error::new(io::ErrorKind::NotFound, "its target does not exist"),
            ));
        };
        if target_parent.path.join(target_name) == at.rel {
            return Err(self.hostile(at.raw, "hard link to itself"));
        }
        let pfd = at.parent.fd.as_fd();
        let tfd = target_parent.fd.as_fd();
        // `linkat` without AT_SYMLINK_FOLLOW: a symlink named as the target is linked itself.
        self.create(at, "create the hard link", || {
            sys::linkat(tfd, target_name, pfd, at.name)
        })?;
        self.stats.links += 1;
        Ok(())
    }
}
