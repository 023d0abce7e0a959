//! Random access into an image tarball without extracting it: one pass over the headers (seeking
//! past the data) records where each regular file's bytes lie, then a blob is read as `File` +
//! seek + `take(size)`. A multi-gigabyte `docker save` is thus opened in milliseconds, with memory
//! proportional to the number of entries, and never copied.
//!
//! Entry names are normalised (`./x`, `/x`, `a//x` are `x`) and a name with a `..` component
//! rejects the archive: a well-formed image archive never has one, so it is hostile or broken.
//! Symlinks and hard links between entries are followed (`docker save` and skopeo write a layer
//! shared by several images once and link `<id>/layer.tar` to it).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::Error;
use crate::bounded;

/// How many links a lookup follows before calling it a loop.
const MAX_LINKS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { offset: u64, size: u64 },
    Link(String),
    Sparse,
}

/// Why an archive cannot be indexed or an entry not be found; turned into
/// [`Error::InvalidArchive`] with the archive's path by [`TarFile`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum TarError {
    #[error("not a readable tar archive: {0}")]
    Io(#[from] io::Error),
    #[error("entry name {0:?} escapes the archive (`..`)")]
    Escapes(String),
    #[error("entry {0:?} is a sparse file, which image archives never hold")]
    Sparse(String),
    #[error("links from {0:?} loop or go too deep")]
    LinkLoop(String),
}

/// Normalises an entry name (or a name looked up): `None` for the archive root itself.
pub(crate) fn normalize_name(raw: &[u8]) -> Result<Option<String>, TarError> {
    let mut parts = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(TarError::Escapes(String::from_utf8_lossy(raw).into())),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let joined = parts.join(&b'/');
    // Names we look up are ASCII; an entry with a non-UTF-8 name can never be asked for.
    Ok(String::from_utf8(joined).ok())
}

/// Where a symlink at `from` pointing to `target` leads, as an archive name: relative to the
/// link's directory (absolute targets are taken from the archive root); `..` may climb within
/// the archive but not out of it.
fn resolve_link(from: &str, target: &[u8]) -> Result<Option<String>, TarError> {
    let mut parts: Vec<&[u8]> = if target.first() == Some(&b'/') {
        Vec::new()
    } else {
        let mut p: Vec<&[u8]> = from.as_bytes().split(|&b| b == b'/').collect();
        p.pop();
        p
    };
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(TarError::Escapes(format!(
                        "{from} -> {}",
                        String::from_utf8_lossy(target)
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    normalize_name(&parts.join(&b'/'))
}

/// The entries of one tar archive: name → where its bytes are.
#[derive(Debug, Default)]
pub(crate) struct TarIndex {
    entries: HashMap<String, Entry>,
}

impl TarIndex {
    /// Reads every header once, seeking over the data. Later entries of the same name win, as
    /// they would on extraction.
    pub(crate) fn scan<R: Read + Seek>(reader: R) -> Result<TarIndex, TarError> {
        let (reader, budget) = crate::tar_limit::limited(reader);
        let mut archive = tar::Archive::new(reader);
        let mut entries = HashMap::new();
        let mut iter = archive.entries_with_seek()?;
        loop {
            // Data is seeked over, so only headers and their records spend the budget.
            budget.between_entries();
            let Some(entry) = iter.next() else {
                break;
            };
            let entry = entry?;
            let Some(name) = normalize_name(&entry.path_bytes())? else {
                continue;
            };
            let kind = entry.header().entry_type();
            let value = match kind {
                EntryType::Regular | EntryType::Continuous => Entry::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                EntryType::GNUSparse => Entry::Sparse,
                EntryType::Symlink | EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let resolved = if kind == EntryType::Symlink {
                        resolve_link(&name, &target)?
                    } else {
                        normalize_name(&target)?
                    };
                    match resolved {
                        Some(t) => Entry::Link(t),
                        None => continue,
                    }
                }
                _ => {
                    entries.remove(&name);
                    continue;
                }
            };
            entries.insert(name, value);
        }
        Ok(TarIndex { entries })
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// `(offset, size)` of the regular file `name` names (following links), `None` if absent.
    /// `name` is normalised like entry names, so `./manifest.json` finds `manifest.json`.
    pub(crate) fn find(&self, name: &str) -> Result<Option<(u64, u64)>, TarError> {
        let Some(mut current) = normalize_name(name.as_bytes())? else {
            return Ok(None);
        };
        for _ in 0..=MAX_LINKS {
            match self.entries.get(&current) {
                None => return Ok(None),
                Some(Entry::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Entry::Sparse) => return Err(TarError::Sparse(current)),
                Some(Entry::Link(t)) => current = t.clone(),
            }
        }
        Err(TarError::LinkLoop(name.to_string()))
    }
}

/// An indexed tarball on disk; every read opens the file anew, so readers are independent and
/// can run on several threads.
#[derive(Debug)]
pub(crate) struct TarFile {
    path: PathBuf,
    index: TarIndex,
}

impl TarFile {
    pub(crate) fn open(path: &Path) -> Result<TarFile, Error> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let index =
            TarIndex::scan(io::BufReader::new(file)).map_err(|e| Error::InvalidArchive {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(TarFile {
            path: path.to_path_buf(),
            index,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index.contains(name)
    }

    /// A path naming an entry in messages: the archive's path followed by the entry name.
    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(name.trim_start_matches('/'))
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidArchive {
            path: self.path.clone(),
            reason,
        }
    }

    /// `(offset, size)` of entry `name`; `None` if the archive has no such file.
    pub(crate) fn find(&self, name: &str) -> Result<Option<(u64, u64)>, Error> {
        self.index
            .find(name)
            .map_err(|e| self.invalid(e.to_string()))
    }

    /// Like [`TarFile::find`], but a missing entry is an error naming it.
    pub(crate) fn require(&self, name: &str) -> Result<(u64, u64), Error> {
        self.find(name)?
            .ok_or_else(|| self.invalid(format!("it has no file {name:?}")))
    }

    /// A reader of the `size` bytes at `offset`.
    pub(crate) fn open_range(&self, offset: u64, size: u64) -> Result<io::Take<File>, Error> {
        let mut file = File::open(&self.path).map_err(Error::io("open", &self.path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io("seek in", &self.path))?;
        Ok(file.take(size))
    }

    /// Reads a small entry whole (`manifest.json`, `index.json`, a config), refusing one over
    /// `limit` bytes.
    pub(crate) fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (offset, size) = self.require(name)?;
        if size > limit {
            return Err(self.invalid(format!(
                "{name} is {size} bytes, over the {limit}-byte limit for metadata"
            )));
        }
        let reader = self.open_range(offset, size)?;
        let bytes = bounded::read(reader, limit, name).map_err(Error::io("read", &self.path))?;
        if bytes.len() as u64 != size {
            return Err(self.invalid(format!("{name} is truncated")));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(kind: EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    /// Writes `name` straight into the header, bypassing the tar crate's own path checks, as a
    /// hostile archive would.
    fn raw_name(h: &mut tar::Header, name: &str) {
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
    }

    fn build(entries: &[(&str, EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = header(*kind, data.len() as u64);
            raw_name(&mut h, name);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
                h.set_cksum();
            }
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn huge_long_name_records_are_refused_without_reading_them() {
        // A sparse file: a GNU long-name header declaring 1 GiB of name, then a hole.
        let mut h = header(EntryType::GNULongName, 1 << 30);
        raw_name(&mut h, "././@LongLink");
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, h.as_bytes()).unwrap();
        file.set_len(512 + (1 << 30) + 1024).unwrap();
        file.rewind().unwrap();
        let err = TarIndex::scan(file).unwrap_err().to_string();
        assert!(err.contains("exceed 1 MiB"), "{err}");
    }

    #[test]
    fn names_are_normalised_and_escapes_refused() {
        assert_eq!(
            normalize_name(b"./a//b/./c").unwrap().as_deref(),
            Some("a/b/c")
        );
        assert_eq!(normalize_name(b"/x").unwrap().as_deref(), Some("x"));
        assert_eq!(normalize_name(b"./").unwrap(), None);
        assert!(normalize_name(b"a/../b").is_err());
        assert!(normalize_name(b"../etc/passwd").is_err());
    }

    #[test]
    fn finds_files_and_follows_links() {
        let tar = build(&[
            ("./manifest.json", EntryType::Regular, b"[]", ""),
            ("abc.tar", EntryType::Regular, b"layer", ""),
            ("id/layer.tar", EntryType::Symlink, b"", "../abc.tar"),
            ("hard", EntryType::Link, b"", "./abc.tar"),
            ("loop1", EntryType::Symlink, b"", "loop2"),
            ("loop2", EntryType::Symlink, b"", "loop1"),
            ("out", EntryType::Regular, b"", ""),
        ]);
        let idx = TarIndex::scan(Cursor::new(&tar)).unwrap();
        let read = |name: &str| {
            let (o, s) = idx.find(name).unwrap().unwrap();
            tar[o as usize..(o + s) as usize].to_vec()
        };
        assert_eq!(read("manifest.json"), b"[]");
        assert_eq!(read("./id/layer.tar"), b"layer");
        assert_eq!(read("hard"), b"layer");
        assert!(idx.find("missing").unwrap().is_none());
        assert!(matches!(idx.find("loop1"), Err(TarError::LinkLoop(_))));
        assert!(idx.find("../x").is_err());
    }

    #[test]
    fn escaping_entries_reject_the_archive() {
        let tar = build(&[("../evil", EntryType::Regular, b"x", "")]);
        assert!(matches!(
            TarIndex::scan(Cursor::new(&tar)),
            Err(TarError::Escapes(_))
        ));
        let tar = build(&[("a/l", EntryType::Symlink, b"", "../../etc/passwd")]);
        assert!(matches!(
            TarIndex::scan(Cursor::new(&tar)),
            Err(TarError::Escapes(_))
        ));
    }

    #[test]
    fn not_a_tar() {
        assert!(TarIndex::scan(Cursor::new(vec![7u8; 2048])).is_err());
    }
}
