//! The sidecar of a download: a small JSON file beside the temp file recording the object version
//! (ETag, size), the part size and the CRC-32 of each part done, so an interrupted download resumes
//! with the parts it started with, whatever the flags are now, and never splices two versions.
//!
//! A resume trusts no part on the sidecar's word: each part it names is read back and its CRC-32
//! compared ([`Ledger::check_parts`]), and a part that differs is fetched again. That is what makes
//! a resume safe after a crash or power loss without syncing the file before every sidecar update
//! (the sidecar can reach the disk before the part's bytes do; a part of zeros, or of stale bytes,
//! fails its CRC): the bytes are made durable once, before the final rename (`verify`).

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;

use flate2::Crc;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dest::Dir;
use super::{io_err, Error};
use crate::s3::ObjectInfo;

/// Which parts of a download are done, beside the temp file, so a re-run resumes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    etag: String,
    size: u64,
    part_size: u64,
    /// The CRC-32 of each part done; `None` for a part still to fetch.
    crc32: Vec<Option<u32>>,
}

/// The number of parts of `size` bytes cut in `part_size` (one, for an empty object).
fn parts_of(size: u64, part_size: u64) -> usize {
    size.div_ceil(part_size).max(1) as usize
}

impl Sidecar {
    /// Whether this sidecar describes `info` in parts it can be resumed with.
    fn fits(&self, info: &ObjectInfo) -> bool {
        self.etag == info.etag
            && self.size == info.size
            && self.part_size >= 1
            && self.crc32.len() == parts_of(self.size, self.part_size)
    }
}

/// The sidecar of one download with its open file, rewritten in place as parts finish.
pub(super) struct Ledger {
    state: Sidecar,
    file: File,
}

impl Ledger {
    /// Takes up an earlier download of the same object version into the locked temp file `file`
    /// (when its sidecar is a regular file of ours and agrees with `info`), else empties the temp
    /// file, replaces the sidecar and starts afresh in parts of `part_size`.
    pub(super) fn open(
        dir: &Dir,
        file: &File,
        partial: &Path,
        sidecar: &OsStr,
        info: &ObjectInfo,
        part_size: u64,
    ) -> Result<Ledger, Error> {
        // Only a regular file of ours is taken up again; anything else under the name is refused.
        if let Some(old) = dir.open_own(sidecar)? {
            let state = crate::bounded::read(&old, crate::bounded::STATE, "")
                .ok()
                .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
                .filter(|s| s.fits(info));
            if let Some(state) = state {
                return Ok(Ledger { state, file: old });
            }
        }
        file.set_len(0).map_err(io_err("truncate", partial))?;
        dir.remove(sidecar);
        Ok(Ledger {
            state: Sidecar {
                etag: info.etag.clone(),
                size: info.size,
                part_size,
                crc32: vec![None; parts_of(info.size, part_size)],
            },
            file: dir.create_new(sidecar)?,
        })
    }

    /// [`check_parts`](Self::check_parts) off the async workers, when there is a part to check.
    pub(super) async fn checked(mut self, file: &File, partial: &Path) -> Result<Ledger, Error> {
        if self.done() == 0 {
            return Ok(self);
        }
        let file = file.try_clone().map_err(io_err("read", partial))?;
        tokio::task::spawn_blocking(move || {
            self.check_parts(&file);
            self
        })
        .await
        .map_err(|e| io_err("read", partial)(std::io::Error::other(e.to_string())))
    }

    /// Reads back every part the sidecar names done and forgets those whose bytes in `file` no
    /// longer match their CRC-32 (or are missing): they are fetched again.
    pub(super) fn check_parts(&mut self, file: &File) {
        let mut buf = vec![0u8; CHECK_BUF];
        for i in 0..self.parts() {
            if let Some(want) = self.state.crc32[i] {
                let (start, end) = self.range(i);
                if crc32_of(file, start, end, &mut buf) != Some(want) {
                    self.state.crc32[i] = None;
                }
            }
        }
    }

    /// Bytes `start..end` of part `i`.
    fn range(&self, i: usize) -> (u64, u64) {
        let ps = self.state.part_size;
        let start = i as u64 * ps;
        (start, (start + ps).min(self.state.size))
    }

    /// The bytes of the parts done.
    pub(super) fn done_bytes(&self) -> u64 {
        (0..self.parts())
            .filter(|i| self.state.crc32[*i].is_some())
            .map(|i| {
                let (start, end) = self.range(i);
                end - start
            })
            .sum()
    }

    /// The parts already there when the download started.
    pub(super) fn done(&self) -> usize {
        self.state.crc32.iter().filter(|d| d.is_some()).count()
    }

    /// The part size the download runs with (the one it started with, when resumed).
    pub(super) fn part_size(&self) -> u64 {
        self.state.part_size
    }

    pub(super) fn parts(&self) -> usize {
        self.state.crc32.len()
    }

    /// The parts still to fetch.
    pub(super) fn todo(&self) -> Vec<usize> {
        (0..self.parts())
            .filter(|i| self.state.crc32[*i].is_none())
            .collect()
    }

    /// Records part `i` as done with the CRC-32 of its bytes. Not synced: see the module doc. A
    /// sidecar that cannot be written costs only a resume.
    pub(super) fn mark_done(&mut self, i: usize, crc32: u32) {
        self.state.crc32[i] = Some(crc32);
        let snapshot = serde_json::to_vec(&self.state).expect("sidecar serializes");
        let _ = self
            .file
            .write_all_at(&snapshot, 0)
            .and_then(|()| self.file.set_len(snapshot.len() as u64));
    }
}

/// The read size of [`Ledger::check_parts`].
const CHECK_BUF: usize = 1 << 20;

/// The CRC-32 of bytes `start..end` of `file`; `None` when the file ends before `end`.
fn crc32_of(file: &File, start: u64, end: u64, buf: &mut [u8]) -> Option<u32> {
    let mut crc = Crc::new();
    let mut at = start;
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |n| n.min(buf.len()));
        match file.read_at(&mut buf[..want], at) {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                crc.update(&buf[..n]);
                at += n as u64;
            }
        }
    }
    Some(crc.sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(file: &File, size: u64, part_size: u64, crc32: Vec<Option<u32>>) -> Ledger {
        Ledger {
            state: Sidecar {
                etag: "\"e-2\"".into(),
                size,
                part_size,
                crc32,
            },
            file: file.try_clone().unwrap(),
        }
    }

    fn crc(bytes: &[u8]) -> u32 {
        let mut c = Crc::new();
        c.update(bytes);
        c.sum()
    }

    /// A resume keeps the parts whose bytes match their CRC and fetches again a part that was
    /// changed (a crash left zeros, or stale bytes) or cut short.
    #[test]
    fn only_parts_that_match_their_crc_are_kept() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let ps = 4096u64;
        let parts: Vec<&[u8]> = data.chunks(ps as usize).collect();
        let crcs: Vec<Option<u32>> = parts.iter().map(|p| Some(crc(p))).collect();
        let file = tempfile::tempfile().unwrap();
        let mut on_disk = data.clone();
        on_disk[5000] ^= 0x80; // part 1 changed
        file.write_all_at(&on_disk, 0).unwrap();
        let mut l = ledger(&file, data.len() as u64, ps, crcs.clone());
        l.check_parts(&file);
        assert_eq!(l.todo(), vec![1]);
        assert_eq!(l.done(), 2);
        assert_eq!(l.done_bytes(), 4096 + (10_000 - 8192));

        // The file cut short (a crash before its size reached the disk): the last part goes.
        file.set_len(9000).unwrap();
        file.write_all_at(&data, 0).unwrap();
        file.set_len(9000).unwrap();
        let mut l = ledger(&file, data.len() as u64, ps, crcs);
        l.check_parts(&file);
        assert_eq!(l.todo(), vec![2]);
    }

    /// A sidecar of the earlier format (a `done` list, no CRCs) does not parse: the download
    /// starts afresh rather than trusting parts it cannot check.
    #[test]
    fn sidecars_without_crcs_are_not_taken_up() {
        let old = r#"{"etag":"\"e\"","size":10,"part_size":8388608,"done":[true]}"#;
        assert!(serde_json::from_str::<Sidecar>(old).is_err());
    }
}
