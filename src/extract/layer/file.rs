//! Regular files, fifos and device nodes: created exclusively in their parent's fd (never
//! following the name), then owner, mode, xattrs and times applied to what was created, by fd.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::{lossy, Error, LayerExtractor, Place};
use crate::extract::compress::{copy, CopyError};
use crate::extract::entry::Meta;
use crate::extract::sys::{self, Inode};

/// A node's file type (`S_IFIFO`, `S_IFCHR`, `S_IFBLK`) and device numbers.
pub(super) type NodeKind = (u32, u32, u32);

impl LayerExtractor<'_> {
    /// A regular file: its data must be exactly the header's size.
    pub(super) fn file<R: Read>(
        &mut self,
        at: Place<'_>,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), Error> {
        let perm = meta.mode & 0o777;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = self.create(at, "create the file", || {
            sys::openat(at.parent.fd.as_fd(), at.name, flags, perm)
        })?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let written = match copy(entry, &mut file, &mut self.buf) {
            Ok(n) => n,
            Err(CopyError::Read(e)) => return Err(self.read_err(e)),
            Err(CopyError::Write(e)) => return Err(self.io(at.raw, "write the file", e)),
        };
        if written != expected {
            return Err(Error::ShortEntry {
                layer: self.layer.to_string(),
                entry: lossy(at.raw),
                expected,
                actual: written,
            });
        }
        self.stats.files += 1;
        self.stats.bytes += written;
        let born = (self.creds.uid, at.parent.child_gid);
        let chowned = self.chown(at.raw, Inode::File(&file), born, meta)?;
        if self.needs_chmod(perm, meta.mode, chowned) {
            file.set_permissions(fs::Permissions::from_mode(meta.mode))
                .map_err(|e| self.io(at.raw, "set the mode", e))?;
        }
        self.xattrs(at.raw, Inode::File(&file), meta, false)?;
        meta.set_times(Inode::File(&file))
            .map_err(|e| self.io(at.raw, "set the times", e))
    }

    /// What node a fifo, character or block device entry makes.
    pub(super) fn node_kind(
        &self,
        raw: &[u8],
        kind: tar::EntryType,
        header: &tar::Header,
    ) -> Result<NodeKind, Error> {
        if kind == tar::EntryType::Fifo {
            return Ok((libc::S_IFIFO, 0, 0));
        }
        let major = header.device_major().ok().flatten();
        let minor = header.device_minor().ok().flatten();
        let (Some(major), Some(minor)) = (major, minor) else {
            return Err(self.hostile(raw, "invalid device numbers"));
        };
        let node = if kind == tar::EntryType::Char {
            libc::S_IFCHR
        } else {
            libc::S_IFBLK
        };
        Ok((node, major, minor))
    }

    /// A fifo or device node, checked after creation to be what was made.
    pub(super) fn node(
        &mut self,
        at: Place<'_>,
        (kind, major, minor): NodeKind,
        meta: &Meta,
    ) -> Result<(), Error> {
        let perm = meta.mode & 0o777;
        let pfd = at.parent.fd.as_fd();
        self.create(at, "create the node", || {
            sys::mknodat(pfd, at.name, kind, perm, (major, minor))
        })?;
        // Held by fd from here on: what is changed is the node made, never what replaced it.
        let fd = sys::open_path(pfd, at.name).map_err(|e| self.io(at.raw, "open the node", e))?;
        let m = sys::stat_fd(fd.as_fd()).map_err(|e| self.io(at.raw, "inspect the node", e))?;
        if m.mode() & libc::S_IFMT != kind {
            let e = io::Error::other("it was replaced while being extracted");
            return Err(self.io(at.raw, "open the node", e));
        }
        let inode = Inode::Fd(fd.as_fd());
        let chowned = self.chown(at.raw, inode, (self.creds.uid, at.parent.child_gid), meta)?;
        if self.needs_chmod(perm, meta.mode, chowned) {
            sys::chmod_fd(fd.as_fd(), meta.mode).map_err(|e| self.io(at.raw, "set the mode", e))?;
        }
        self.xattrs(at.raw, inode, meta, false)?;
        meta.set_times(inode)
            .map_err(|e| self.io(at.raw, "set the times", e))?;
        self.stats.files += 1;
        Ok(())
    }
}
