//! What is in the way of an entry, and whiteouts: a name is created exclusively and, if something
//! is there, that is removed (never followed) and the creation tried once more; a whiteout removes
//! what lower layers left. Either way the caches forget what they knew of what was removed.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::{Error, LayerExtractor, Place};
use crate::extract::sys;
use crate::extract::whiteout::{self, Whiteout};

impl LayerExtractor<'_> {
    pub(super) fn whiteout(
        &mut self,
        raw: &[u8],
        dir: &Path,
        wh: Whiteout<'_>,
    ) -> Result<(), Error> {
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
    pub(super) fn create<T>(
        &mut self,
        at: Place<'_>,
        action: &'static str,
        op: impl Fn() -> io::Result<T>,
    ) -> Result<T, Error> {
        let first = match op() {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(at.parent.fd.as_fd(), &at.parent.path)?;
                op()
            }
            r => r,
        };
        match first {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = self.stat_at(at.raw, at.parent.fd.as_fd(), at.name)?;
                self.clobber(at, &m)?;
                op().map_err(|e| self.io(at.raw, action, e))
            }
            r => r.map_err(|e| self.io(at.raw, action, e)),
        }
    }

    /// What is at `name` in `dir`, not followed.
    pub(super) fn stat_at(
        &self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<Metadata, Error> {
        sys::open_path(dir, name)
            .and_then(|fd| sys::stat_fd(fd.as_fd()))
            .map_err(|e| self.io(raw, "inspect the existing path", e))
    }

    /// Removes `name` from `parent` (never following it), forgetting what the caches knew of it.
    pub(super) fn clobber(&mut self, at: Place<'_>, m: &Metadata) -> Result<(), Error> {
        let pfd = at.parent.fd.as_fd();
        let op = || {
            if m.is_dir() {
                sys::remove_at(pfd, at.name)
            } else {
                sys::unlinkat(pfd, at.name, 0)
            }
        };
        // Creating over an existing name fails with EEXIST before write permission is checked:
        // the read-only directory refuses only now.
        let removed = match op() {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.lend(pfd, &at.parent.path)?;
                op()
            }
            r => r,
        };
        if m.is_dir() {
            removed.map_err(|e| self.io(at.raw, "replace the directory", e))?;
            self.forget_dir(at.rel);
        } else {
            removed.map_err(|e| self.io(at.raw, "replace the existing path", e))?;
            if m.file_type().is_symlink() {
                self.parents.clear();
            }
        }
        Ok(())
    }
}
