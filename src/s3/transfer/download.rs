//! One object down: parallel ranged GETs pinned to its ETag, written in place into a temp file
//! beside the target ([`dest`]), the finished parts recorded with their CRC-32 in the sidecar
//! ([`Ledger`]), then [`verify`](super::verify) (which makes the file durable) and the final name.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::Crc;
use futures_util::{stream, StreamExt};

use super::dest::{self, Dir};
use super::parts::{self, part_size_for, PART_ATTEMPTS};
use super::sidecar::Ledger;
use super::verify::verify_blocking;
use super::writeback::Writeback;
use super::{io_err, lock, Error, Moved, Options, Reused};
use crate::progress::{BlobProgress, Progress};
use crate::s3::{self, ObjectInfo};

/// Downloads one object; `None` when `-n` left an existing target alone.
///
/// Everything written goes through [`dest::Dir`], relative to the open destination directory:
/// see there why no path is trusted. `root` is the directory the user named; `target` is inside
/// it. The temp file stays locked ([`lock`]) until the target has its name.
pub(crate) async fn download(
    client: &s3::Client,
    bucket: &str,
    key: &str,
    root: &Path,
    target: &Path,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Option<Moved>, Error> {
    // A look only, to skip the transfer: the rename in `finish` enforces -n.
    if opts.no_clobber && target.symlink_metadata().is_ok() {
        return Ok(None);
    }
    let info = client.head_object(bucket, key).await?;
    let landing = Landing::open(root, target, key)?;
    let part_size = part_size_for(info.size, opts.concurrency, opts.part_size.max(1 << 20));
    let label = super::shown(target).into_owned();
    let file = lock::lock_partial(&landing.dir, &landing.partial_name, &label, progress).await?;
    let ledger = Ledger::open(
        &landing.dir,
        &file,
        &landing.partial,
        &landing.sidecar_name,
        &info,
        part_size,
    )?
    .checked(&file, &landing.partial)
    .await?;
    let reused = (ledger.done() > 0).then(|| Reused {
        parts: ledger.done(),
        of: ledger.parts(),
        bytes: ledger.done_bytes(),
    });
    file.set_len(info.size)
        .map_err(io_err("size", &landing.partial))?;
    let bar = super::bar(progress, &landing.name.to_string_lossy(), info.size);
    let object = Object {
        client,
        bucket,
        key,
        info: &info,
        file: &file,
        partial: &landing.partial,
        bar: bar.as_ref(),
    };
    let transferred = tokio::select! {
        r = object.fetch(ledger, opts.concurrency) => r?,
        () = opts.interrupt.wait() => {
            return Err(Error::Interrupted {
                what: format!(
                    "what was downloaded of {label} is kept in {}; run the same command again to resume",
                    super::shown(&landing.partial)
                ),
            })
        }
    };
    bar.done();
    if landing
        .finish(&file, &info, target, opts.no_clobber)
        .await?
    {
        Ok(Some(Moved {
            bytes: transferred,
            reused,
        }))
    } else {
        Ok(None)
    }
}

/// Where one download lands: the open directory, the final name and the temp names in it.
struct Landing {
    dir: Dir,
    name: OsString,
    partial_name: OsString,
    sidecar_name: OsString,
    /// The temp file's path, for messages.
    partial: PathBuf,
}

impl Landing {
    fn open(root: &Path, target: &Path, key: &str) -> Result<Landing, Error> {
        let rel = target.strip_prefix(root).unwrap_or(target);
        let name = rel.file_name().ok_or_else(|| Error::HostileKey {
            key: key.to_string(),
            dest: root.to_path_buf(),
            reason: "it names no file",
        })?;
        let dir = Dir::open_named(root)?.subdir(rel.parent().unwrap_or(Path::new("")))?;
        let (partial_name, sidecar_name) = dest::temp_names(name);
        let partial = dir.path_of(&partial_name);
        Ok(Landing {
            dir,
            name: name.to_os_string(),
            partial_name,
            sidecar_name,
            partial,
        })
    }

    /// Removes the temp file and its sidecar.
    fn discard(&self) {
        self.dir.remove(&self.partial_name);
        self.dir.remove(&self.sidecar_name);
    }

    /// Verifies the complete temp file and gives it its final name; `false` when `-n` found the
    /// name taken meanwhile. A file that fails the check is removed.
    /// The lock on `file` is held until the sidecar is gone.
    async fn finish(
        &self,
        file: &File,
        info: &ObjectInfo,
        target: &Path,
        no_clobber: bool,
    ) -> Result<bool, Error> {
        // A second descriptor of the same open file: closing it keeps the lock.
        let copy = file.try_clone().map_err(io_err("verify", &self.partial))?;
        if let Err(e) = verify_blocking(copy, &self.partial, info.size, &info.etag).await {
            self.discard();
            return Err(e);
        }
        // rename(2) replaces the entry under the final name, a symlink included, never its target.
        match self.dir.rename(&self.partial_name, &self.name, no_clobber) {
            Ok(()) => {}
            Err(e) if no_clobber && e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.discard();
                return Ok(false);
            }
            Err(e) => return Err(io_err("rename into place", target)(e)),
        }
        self.dir.remove(&self.sidecar_name);
        // The new name durable too, before "Copied" (the data was synced before the rename).
        self.dir.sync();
        Ok(true)
    }
}

/// One object being fetched into its temp file.
struct Object<'a> {
    client: &'a s3::Client,
    bucket: &'a str,
    key: &'a str,
    info: &'a ObjectInfo,
    file: &'a File,
    partial: &'a Path,
    bar: &'a dyn BlobProgress,
}

impl Object<'_> {
    /// Fetches the parts the ledger has not recorded, `concurrency` at once; returns the bytes
    /// transferred. On failure the temp file and sidecar stay, for a resume.
    async fn fetch(&self, ledger: Ledger, concurrency: usize) -> Result<u64, Error> {
        let part_size = ledger.part_size();
        let todo = ledger.todo();
        self.bar
            .skip((ledger.parts() - todo.len()) as u64 * part_size.min(self.info.size));
        // The sidecar is rewritten in place under the lock, one part at a time.
        let ledger = Mutex::new(ledger);
        let results: Vec<Result<u64, Error>> = stream::iter(todo)
            .map(|i| self.fetch_part(i, part_size, &ledger))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut transferred = 0;
        for r in results {
            transferred += r?;
        }
        Ok(transferred)
    }

    /// Fetches part `i`, resuming a broken stream from the bytes received, up to
    /// [`PART_ATTEMPTS`] times; then records it done with the CRC-32 of its bytes.
    async fn fetch_part(
        &self,
        i: usize,
        part_size: u64,
        ledger: &Mutex<Ledger>,
    ) -> Result<u64, Error> {
        let start = i as u64 * part_size;
        let end = (start + part_size).min(self.info.size);
        if end == start {
            return Ok(0);
        }
        let mut attempt = 0;
        let mut offset = start;
        let mut crc = Crc::new();
        loop {
            match self.copy_range(&mut offset, end, &mut crc).await {
                Ok(()) if offset >= end => break,
                Ok(()) | Err(Error::S3(_)) if attempt + 1 < PART_ATTEMPTS => {
                    attempt += 1;
                    parts::pause(attempt).await;
                }
                Ok(()) => {
                    return Err(Error::Verify {
                        path: self.partial.to_path_buf(),
                        what: "length",
                        detail: format!("part {i} ended early"),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        ledger.lock().expect("not poisoned").mark_done(i, crc.sum());
        Ok(end - start)
    }

    /// Writes bytes `offset..end` of the object at their place in the temp file, advancing
    /// `offset` past what arrived and adding it to `crc`; a stream slower than
    /// [`s3::RateFloor`] allows fails.
    async fn copy_range(&self, offset: &mut u64, end: u64, crc: &mut Crc) -> Result<(), Error> {
        let dl = self
            .client
            .get_range_if_match(self.bucket, self.key, *offset, end - 1, &self.info.etag)
            .await?;
        let body = dl.into_stream();
        let mut body = std::pin::pin!(body);
        let mut floor = s3::RateFloor::new(self.bucket, self.key);
        let mut writeback = Writeback::new(self.file, *offset);
        loop {
            let chunk = tokio::select! {
                biased;
                c = body.next() => c,
                r = floor.tick() => { r?; continue; }
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk?;
            self.file
                .write_all_at(&chunk, *offset)
                .map_err(io_err("write", self.partial))?;
            crc.update(&chunk);
            *offset += chunk.len() as u64;
            writeback.wrote_to(*offset);
            floor.add(chunk.len());
            self.bar.inc(chunk.len() as u64);
        }
        writeback.flush_to(*offset);
        Ok(())
    }
}
