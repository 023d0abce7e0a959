//! An entry's metadata as it is applied: privileges dropped when asked, owner (only when the
//! inode was not born with it), mode (only when the umask did not already give it) and xattrs.

use std::io::Read;

use tar::EntryType;

use super::{Error, LayerExtractor, SETGID, SETUID};
use crate::extract::entry::{Meta, MetaError};
use crate::extract::sys::Inode;

impl LayerExtractor<'_> {
    /// The entry's metadata, less what `drop_privileges` drops.
    pub(super) fn meta<R: Read>(
        &self,
        raw: &[u8],
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Meta, Error> {
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

    /// Gives `inode` the entry's owner unless it was born with it (or owners are not kept).
    pub(super) fn chown(
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
    pub(super) fn needs_chmod(&self, perm: u32, mode: u32, chowned: bool) -> bool {
        self.creds.created_mode(perm) != Some(mode) || chowned && mode & 0o7000 != 0
    }

    /// Sets the entry's xattrs; not being root (or on a symlink), one the kernel refuses with
    /// `EPERM` is skipped (see `Meta::set_xattrs`).
    pub(super) fn xattrs(
        &self,
        raw: &[u8],
        inode: Inode<'_>,
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), Error> {
        meta.set_xattrs(inode, symlink || self.creds.uid != 0)
            .map_err(|e| self.io(raw, "set an extended attribute", e))
    }
}
