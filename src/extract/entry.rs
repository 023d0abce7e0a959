//! A tar entry's metadata: read once from the header with the PAX records winning (`mtime` and
//! `atime` with their fractions, `SCHILY.xattr.*`; the tar crate already applies `path`,
//! `linkpath`, `size`, `uid` and `gid`), then applied to the inode the entry created — the owner
//! before the mode, since `chown` clears setuid and file capabilities (umoci's `restoreMetadata`).
//! Mode and times are applied by `layer.rs`, which knows when a `chmod` can be skipped and when a
//! directory's times must wait for its contents.

use std::io::{self, Read};
use std::os::fd::AsFd;

use filetime::FileTime;

use super::sys::{self, Inode};

/// An entry's metadata, PAX records applied.
pub(crate) struct Meta {
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: FileTime,
    pub mtime: FileTime,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why an entry's metadata could not be read.
#[derive(Debug)]
pub(crate) enum MetaError {
    /// A malformed field (the reason names it).
    Hostile(&'static str),
    /// The stream failed while reading PAX records.
    Read(io::Error),
}

impl Meta {
    pub(crate) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, MetaError> {
        let h = entry.header();
        let mode = h
            .mode()
            .map_err(|_| MetaError::Hostile("invalid mode field"))?
            & 0o7777;
        let uid = h.uid().ok().and_then(|u| u32::try_from(u).ok());
        let gid = h.gid().ok().and_then(|g| u32::try_from(g).ok());
        let (Some(uid), Some(gid)) = (uid, gid) else {
            return Err(MetaError::Hostile("invalid uid or gid"));
        };
        let mtime = h
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .map(|t| FileTime::from_unix_time(t, 0))
            .ok_or(MetaError::Hostile("invalid mtime field"))?;
        let mut meta = Meta {
            mode,
            uid,
            gid,
            atime: mtime,
            mtime,
            xattrs: Vec::new(),
        };
        let mut atime = None;
        if let Some(pax) = entry.pax_extensions().map_err(MetaError::Read)? {
            for ext in pax {
                let ext = ext.map_err(|_| MetaError::Hostile("invalid PAX record"))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    meta.mtime = parse_pax_time(ext.value_bytes())
                        .ok_or(MetaError::Hostile("invalid PAX mtime"))?;
                } else if key == b"atime" {
                    atime = parse_pax_time(ext.value_bytes());
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        meta.atime = atime.unwrap_or(meta.mtime);
        Ok(meta)
    }

    /// Gives `inode` the entry's owner, unless owners are not kept or it was `born` with it;
    /// returns whether it changed.
    pub(crate) fn chown(
        &self,
        inode: Inode<'_>,
        born: (u32, u32),
        same_owner: bool,
    ) -> io::Result<bool> {
        if !same_owner || born == (self.uid, self.gid) {
            return Ok(false);
        }
        match inode {
            Inode::File(f) => std::os::unix::fs::fchown(f, Some(self.uid), Some(self.gid)),
            Inode::Fd(fd) => sys::chown_fd(fd, self.uid, self.gid),
            Inode::Link(dir, name) => {
                let link = sys::open_path(dir, name)?;
                sys::chown_fd(link.as_fd(), self.uid, self.gid)
            }
        }?;
        Ok(true)
    }

    /// Sets the entry's times on `inode` (a symlink's own, not its target's).
    pub(crate) fn set_times(&self, inode: Inode<'_>) -> io::Result<()> {
        match inode {
            Inode::File(f) => {
                filetime::set_file_handle_times(f, Some(self.atime), Some(self.mtime))
            }
            Inode::Fd(fd) => sys::set_times_fd(fd, self.atime, self.mtime),
            Inode::Link(dir, name) => filetime::set_symlink_file_times(
                sys::proc_path(dir).join(name),
                self.atime,
                self.mtime,
            ),
        }
    }

    /// Applies the xattrs, but `security.selinux`, which belongs to the host's policy (umoci skips
    /// it too). A filesystem without xattrs is not an error; nor, when `lenient`, is `EPERM` (not
    /// root, or `user.*` on a symlink), as in umoci's rootless mode.
    pub(crate) fn set_xattrs(&self, inode: Inode<'_>, lenient: bool) -> io::Result<()> {
        for (name, value) in &self.xattrs {
            if name == b"security.selinux" {
                continue;
            }
            match sys::set_xattr(inode, name, value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) if lenient && e.raw_os_error() == Some(libc::EPERM) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Parses a PAX time (`1700000000`, `1700000000.5`, `-1.25`) into seconds and nanoseconds.
fn parse_pax_time(value: &[u8]) -> Option<FileTime> {
    let s = std::str::from_utf8(value).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(match (neg, nanos) {
        (false, n) => FileTime::from_unix_time(secs, n),
        (true, 0) => FileTime::from_unix_time(-secs, 0),
        (true, n) => FileTime::from_unix_time(-secs - 1, 1_000_000_000 - n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|f| (f.unix_seconds(), f.nanoseconds()));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        assert_eq!(t(""), None);
        assert_eq!(t("1.x"), None);
        assert_eq!(t("+1"), None);
    }

    fn entry_meta(tar: &[u8]) -> Result<Meta, MetaError> {
        let mut archive = tar::Archive::new(tar);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        Meta::read(&mut entry)
    }

    #[test]
    fn pax_records_win() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o104755);
        h.set_mtime(5);
        h.set_uid(1);
        h.set_gid(2);
        b.append_pax_extensions([
            ("mtime", &b"1700000000.25"[..]),
            ("uid", b"70000"),
            ("SCHILY.xattr.user.k", b"v"),
        ])
        .unwrap();
        b.append_data(&mut h, "f", &b""[..]).unwrap();
        let m = entry_meta(&b.into_inner().unwrap()).unwrap();
        assert_eq!(m.mode, 0o4755);
        assert_eq!((m.uid, m.gid), (70000, 2));
        assert_eq!(
            m.mtime,
            FileTime::from_unix_time(1_700_000_000, 250_000_000)
        );
        assert_eq!(m.atime, m.mtime);
        assert_eq!(m.xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    }
}
