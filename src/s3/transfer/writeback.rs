//! Early writeback of a download's bytes, so that making the finished file durable costs the
//! tail of the transfer, not a second pass over the whole file.
//!
//! A download is renamed into place only after `fdatasync` (the project's rule for files it
//! creates: temp file, sync, rename; see `atomic.rs`): without it a crash soon after "Copied"
//! can leave the final name on a file of zeros. Done only at the end, that sync writes the whole
//! object out after its last byte arrived: on the benchmark VM a 1 GiB `fdatasync` takes
//! 1.6–1.8 s, about as long as the transfer itself, which is how far behind rclone and the aws
//! CLI (they never sync) downloads fell. The kernel does not start on its own before
//! `dirty_background_ratio` of memory is dirty: gigabytes, on a machine with memory to spare.
//!
//! So each stream asks for writeback of what it wrote every [`STEP`] bytes, with
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)`: it queues that range's dirty pages for the disk and
//! returns without waiting for them, so the disk writes while the network still delivers, and
//! the final `fdatasync` waits only for the last steps. It is a hint and nothing relies on it:
//! its result is ignored, and the same `fdatasync` still runs before the rename, writing
//! whatever was not queued and reporting any write error.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Bytes written by one stream between two writeback requests: large enough that the calls
/// cost nothing measurable (128 per GiB), small enough that the disk starts early and the final
/// sync waits for little more than one step per stream.
pub(super) const STEP: u64 = 8 << 20;

/// One stream's writeback: where the bytes it wrote and has not handed to the disk start.
pub(super) struct Writeback<'a> {
    file: &'a File,
    from: u64,
}

impl<'a> Writeback<'a> {
    /// A stream writing `file` from `offset` on.
    pub(super) fn new(file: &'a File, offset: u64) -> Self {
        Writeback { file, from: offset }
    }

    /// The stream wrote up to `offset`: writeback starts once [`STEP`] bytes are waiting.
    pub(super) fn wrote_to(&mut self, offset: u64) {
        if let Some((from, len)) = self.due(offset, false) {
            start(self.file, from, len);
        }
    }

    /// The stream ended at `offset`: writeback starts for everything still waiting.
    pub(super) fn flush_to(&mut self, offset: u64) {
        if let Some((from, len)) = self.due(offset, true) {
            start(self.file, from, len);
        }
    }

    /// The range (start, length) to hand to the disk now, if any; `last` takes any remainder.
    fn due(&mut self, offset: u64, last: bool) -> Option<(u64, u64)> {
        let waiting = offset.saturating_sub(self.from);
        if waiting == 0 || (!last && waiting < STEP) {
            return None;
        }
        let range = (self.from, waiting);
        self.from = offset;
        Some(range)
    }
}

/// Queues the dirty pages of `offset..offset + len` for writing, without waiting for them.
fn start(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on an open descriptor; no memory is passed. The result is
    // ignored on purpose (see the module doc): the final fdatasync writes and checks everything.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's writes, in uneven chunks, are handed to the disk in contiguous ranges that
    /// cover every byte once, each but the last at least STEP long and at most one chunk over.
    #[test]
    fn ranges_cover_the_stream_in_steps() {
        let file = tempfile::tempfile().unwrap();
        let (start, end) = (5 << 20, (45 << 20) + 3);
        let mut wb = Writeback::new(&file, start);
        let (mut offset, mut ranges, mut i) = (start, Vec::new(), 0u64);
        let chunk_max = 70_000;
        while offset < end {
            i += 1;
            offset = (offset + 1 + (i * 7919) % chunk_max).min(end);
            ranges.extend(wb.due(offset, false));
        }
        ranges.extend(wb.due(offset, true));
        assert_eq!(wb.due(offset, true), None, "nothing left after the end");
        let mut at = start;
        for (n, (from, len)) in ranges.iter().enumerate() {
            assert_eq!(*from, at, "range {n} does not follow the previous one");
            if n + 1 < ranges.len() {
                assert!(*len >= STEP && *len < STEP + chunk_max, "range {n}: {len}");
            }
            at += len;
        }
        assert_eq!(at, end);
        let n = ranges.len() as u64;
        assert!(
            n >= (end - start) / (STEP + chunk_max) && n <= (end - start) / STEP + 1,
            "{ranges:?}"
        );
    }
}
