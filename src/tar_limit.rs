//! A bound on what a tar reader may consume between two entries.
//!
//! The tar crate reads GNU long-name and long-link records and PAX extension records wholly into
//! memory before it yields the entry they describe, however large their header says they are: a
//! small gzip layer can declare a long name of gigabytes of zeros and make extraction allocate all
//! of it. Go's archive/tar (containerd, skopeo, umoci) refuses such records over 1 MiB; so do we, by
//! giving the reader a byte budget for the stretch between one entry's data and the next entry.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The largest long-name, long-link or PAX record accepted (what Go's archive/tar allows).
pub const RECORD_LIMIT: u64 = 1 << 20;

/// Headers, padding and GNU sparse extension blocks that come with the records.
const SLACK: u64 = 64 << 10;

/// Why a [`Limited`] reader stopped.
#[derive(Debug, thiserror::Error)]
#[error("a tar entry's long name, long link or PAX records exceed {} MiB: a corrupt or hostile archive", RECORD_LIMIT >> 20)]
pub struct RecordsTooLarge;

/// Whether `e` is the error a [`Limited`] reader gives when its budget runs out.
pub fn is_records_too_large(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<RecordsTooLarge>())
}

/// A reader that fails with [`RecordsTooLarge`] once it has given out its budget; the [`Budget`]
/// handle sets that budget from outside while the tar crate owns the reader.
#[derive(Debug)]
pub struct Limited<R> {
    inner: R,
    left: Arc<AtomicU64>,
}

/// Sets the budget of the [`Limited`] reader it was made with.
#[derive(Debug, Clone)]
pub struct Budget(Arc<AtomicU64>);

impl Budget {
    /// Before asking the tar reader for its next entry: only headers and bounded records may pass.
    pub fn between_entries(&self) {
        self.0.store(RECORD_LIMIT + SLACK, Ordering::Relaxed);
    }

    /// While an entry's own data is read: no bound (a layer's files may be of any size).
    pub fn within_entry(&self) {
        self.0.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Wraps `inner`; the budget starts as [`Budget::between_entries`].
pub fn limited<R>(inner: R) -> (Limited<R>, Budget) {
    let budget = Budget(Arc::new(AtomicU64::new(0)));
    budget.between_entries();
    (
        Limited {
            inner,
            left: budget.0.clone(),
        },
        budget,
    )
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.load(Ordering::Relaxed);
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordsTooLarge));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if left != u64::MAX {
            self.left.store(left - n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Seeking over data (an index scan) costs no budget.
impl<R: Seek> Seek for Limited<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream whose first record is a GNU long name of `size` zero bytes, made as it is read.
    fn huge_long_name(size: u64) -> impl Read {
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(size);
        h.set_cksum();
        io::Cursor::new(h.as_bytes().to_vec()).chain(io::repeat(0).take(size))
    }

    #[test]
    fn oversized_records_are_refused_before_they_are_buffered() {
        let (reader, _budget) = limited(huge_long_name(64 << 20));
        let mut archive = tar::Archive::new(reader);
        let err = match archive.entries().unwrap().next() {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {:?}", other.map(|r| r.is_ok())),
        };
        assert!(
            err.to_string().contains("exceed 1 MiB"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn records_under_the_limit_and_large_entries_pass() {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(200_000));
        let mut h = tar::Header::new_gnu();
        h.set_size(3 << 20);
        h.set_mode(0o644);
        builder
            .append_data(&mut h, &long, io::repeat(7).take(3 << 20))
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let (reader, budget) = limited(&bytes[..]);
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path_bytes().len(), long.len());
        budget.within_entry();
        assert_eq!(io::copy(&mut entry, &mut io::sink()).unwrap(), 3 << 20);
        budget.between_entries();
        assert!(entries.next().is_none());
    }

    #[test]
    fn an_undrained_entry_counts_against_the_budget() {
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["a", "b"] {
            let mut h = tar::Header::new_gnu();
            h.set_size(2 << 20);
            h.set_mode(0o644);
            builder
                .append_data(&mut h, name, io::repeat(1).take(2 << 20))
                .unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let (reader, _budget) = limited(&bytes[..]);
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive.entries().unwrap();
        // Skipping "a"'s 2 MiB inside next() spends the between-entries budget.
        assert!(entries.next().unwrap().is_ok());
        let Some(Err(err)) = entries.next() else {
            panic!("skipping 2 MiB between entries was allowed");
        };
        assert!(is_records_too_large(&err), "unexpected error: {err}");
    }
}
