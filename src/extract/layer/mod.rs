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
//!
//! Files: this one holds the extractor's state, the entry loop and the dispatch by entry kind;
//! `parent.rs` resolves (or creates) an entry's parent directory and lends ourselves permission on
//! read-only ones; `dir.rs` applies directory entries and the deferred directory metadata;
//! `file.rs` regular files, fifos and device nodes; `link.rs` symlinks and hard links;
//! `replace.rs` what is in the way (clobbering, whiteouts); `attrs.rs` owner, mode and xattrs.

mod attrs;
mod dir;
mod file;
mod link;
mod parent;
mod replace;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;
use tar::EntryType;

use super::compress::COPY_BUFFER;
use super::entry::Meta;
use super::path;
use super::sys::{self, Creds};
use super::whiteout;
use super::{Error, Options, RootDir, UnpackStats};
use crate::tar_limit;
use dir::DirFix;
use parent::Parent;
pub(crate) use parent::RealFs;

const SETGID: u32 = libc::S_ISGID;
const SETUID: u32 = libc::S_ISUID;

/// Where an entry goes: the name the tar gives it (for messages), the directory it is created in,
/// its path relative to the root (bookkeeping), and the name it is created under in `parent`.
#[derive(Clone, Copy)]
struct Place<'a> {
    raw: &'a [u8],
    parent: &'a Parent,
    rel: &'a Path,
    name: &'a OsStr,
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
        self.check_prefix(&raw, &clean, kind)?;
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
        if !self.extracts(&raw, kind)? {
            return Ok(());
        }
        let meta = self.meta(&raw, entry)?;
        let parent = self
            .parent(&raw, dir, true)?
            .expect("parents are created when asked to");
        let rel = parent.path.join(name);
        let at = Place {
            raw: &raw,
            parent: &parent,
            rel: &rel,
            name,
        };
        self.create_entry(at, &clean, entry, &meta)?;
        self.mark_written(&rel);
        Ok(())
    }

    /// An artifact's entries must all lie under its directory, which must be a directory.
    fn check_prefix(&self, raw: &[u8], clean: &Path, kind: EntryType) -> Result<(), Error> {
        let Some(prefix) = self.prefix else {
            return Ok(());
        };
        if !clean.starts_with(prefix) {
            return Err(self.hostile(raw, "entry lies outside the artifact's directory"));
        }
        if clean == prefix && kind != EntryType::Directory {
            return Err(self.hostile(raw, "the artifact's directory entry is not a directory"));
        }
        Ok(())
    }

    /// Whether an entry of this kind is extracted: devices are skipped unless allowed; kinds we
    /// cannot make are refused.
    fn extracts(&self, raw: &[u8], kind: EntryType) -> Result<bool, Error> {
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Fifo => Ok(true),
            EntryType::Char | EntryType::Block => Ok(self.opts.allow_devices),
            other => Err(Error::UnsupportedEntry {
                layer: self.layer.to_string(),
                entry: lossy(raw),
                kind: char::from(other.as_byte()),
            }),
        }
    }

    /// Creates the entry `at` its place (`clean` is its cleaned name), by its kind.
    fn create_entry<R: Read>(
        &mut self,
        at: Place<'_>,
        clean: &Path,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), Error> {
        match entry.header().entry_type() {
            EntryType::Directory => self.dir(at, clean, meta),
            EntryType::Symlink => {
                let target = link_target(entry);
                self.symlink(at, &target, meta)
            }
            EntryType::Link => {
                let target = link_target(entry);
                self.hardlink(at, &target)
            }
            kind @ (EntryType::Fifo | EntryType::Char | EntryType::Block) => {
                let node = self.node_kind(at.raw, kind, entry.header())?;
                self.node(at, node, meta)
            }
            _ => self.file(at, entry, meta),
        }
    }

    fn mark_written(&mut self, rel: &Path) {
        let mut p = rel;
        while !p.as_os_str().is_empty() && self.written.insert(p.to_path_buf()) {
            p = p.parent().unwrap_or(Path::new(""));
        }
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

/// A link entry's target as the tar stores it (empty when it has none).
fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> Vec<u8> {
    entry
        .link_name_bytes()
        .map(|t| t.into_owned())
        .unwrap_or_default()
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
