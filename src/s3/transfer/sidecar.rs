//! The sidecar of a download: a small JSON file beside the temp file recording the object version
//! (ETag, size), the part size and which parts are done, so an interrupted download resumes with
//! the parts it started with, whatever the flags are now, and never splices two versions.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
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
    done: Vec<bool>,
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
            && self.done.len() == parts_of(self.size, self.part_size)
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
                done: vec![false; parts_of(info.size, part_size)],
            },
            file: dir.create_new(sidecar)?,
        })
    }

    /// The bytes of the parts done.
    pub(super) fn done_bytes(&self) -> u64 {
        let ps = self.state.part_size;
        (0..self.parts())
            .filter(|i| self.state.done[*i])
            .map(|i| ((i as u64 + 1) * ps).min(self.state.size) - i as u64 * ps)
            .sum()
    }

    /// The parts already there when the download started.
    pub(super) fn done(&self) -> usize {
        self.state.done.iter().filter(|d| **d).count()
    }

    /// The part size the download runs with (the one it started with, when resumed).
    pub(super) fn part_size(&self) -> u64 {
        self.state.part_size
    }

    pub(super) fn parts(&self) -> usize {
        self.state.done.len()
    }

    /// The parts still to fetch.
    pub(super) fn todo(&self) -> Vec<usize> {
        (0..self.parts()).filter(|i| !self.state.done[*i]).collect()
    }

    /// Records part `i` as done. A sidecar that cannot be written costs only a resume.
    pub(super) fn mark_done(&mut self, i: usize) {
        self.state.done[i] = true;
        let snapshot = serde_json::to_vec(&self.state).expect("sidecar serializes");
        let _ = self
            .file
            .write_all_at(&snapshot, 0)
            .and_then(|()| self.file.set_len(snapshot.len() as u64));
    }
}
