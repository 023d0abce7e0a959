//! One file up: a single PUT up to the part size (its ETag is the plain MD5 a later download
//! checks), else a multipart upload, parts in parallel and each retried from the file, aborted on
//! failure so no orphaned parts are left. Every request carries the bytes' MD5 (`Content-MD5`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use super::parts::{self, upload_part_size, MIN_UPLOAD_PART, PART_ATTEMPTS};
use super::{io_err, Error, Moved, Options};
use crate::progress::{BlobProgress, Progress};
use crate::s3::{self, CompletedPart};

/// Uploads one file as `s3://bucket/key`; `None` when `-n` found the key taken.
pub(crate) async fn upload(
    client: &s3::Client,
    path: &Path,
    bucket: &str,
    key: &str,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Option<Moved>, Error> {
    let meta = std::fs::metadata(path).map_err(io_err("read", path))?;
    if meta.is_dir() {
        return Err(Error::NeedsRecursive {
            path: path.to_path_buf(),
        });
    }
    let size = meta.len();
    if opts.no_clobber {
        match client.head_object(bucket, key).await {
            Ok(_) => return Ok(None),
            Err(s3::Error::NoSuchKey { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let bar = super::bar(progress, super::basename(key), size);
    let file = Source {
        client,
        path,
        bucket,
        key,
        size,
        bar: bar.as_ref(),
    };
    // Up to the part-size cap, one PUT: its ETag is the plain MD5 a later download can check,
    // and servers that hash an upload serially (s3s-fs; many appliances) take it fastest.
    if size <= opts.part_size.max(MIN_UPLOAD_PART) {
        tokio::select! {
            r = file.put_whole() => r?,
            () = opts.interrupt.wait() => {
                return Err(Error::Interrupted {
                    what: format!(
                        "s3://{bucket}/{} was not stored; run the same command again to upload it",
                        crate::text::Escaped(key)
                    ),
                })
            }
        }
    } else {
        file.put_multipart(opts).await?;
    }
    bar.done();
    Ok(Some(Moved {
        bytes: size,
        reused: None,
    }))
}

/// One file being uploaded.
struct Source<'a> {
    client: &'a s3::Client,
    path: &'a Path,
    bucket: &'a str,
    key: &'a str,
    size: u64,
    bar: &'a dyn BlobProgress,
}

impl Source<'_> {
    async fn put_whole(&self) -> Result<(), Error> {
        let md5 = md5_of(self.path, 0, self.size).await?;
        // The body is sent once: the signing region is settled first (multipart uploads learn
        // it from their first, bodiless, request).
        self.client.settle_region(self.bucket).await?;
        self.client
            .put_object(self.bucket, self.key, self.body(0, self.size, md5))
            .await?;
        self.bar.inc(self.size);
        Ok(())
    }

    /// `len` bytes from `offset`, with their MD5, as a request body.
    fn body(
        &self,
        offset: u64,
        len: u64,
        md5: [u8; 16],
    ) -> s3::Upload<impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static> {
        s3::Upload {
            stream: file_stream(self.path.to_path_buf(), offset, len),
            len,
            md5: Some(md5),
        }
    }

    /// Uploads the parts, `concurrency` at once, then completes the upload; on any failure it is
    /// aborted.
    async fn put_multipart(&self, opts: &Options) -> Result<(), Error> {
        let part_size = upload_part_size(self.size, opts.concurrency, opts.part_size);
        let upload_id = self.client.create_multipart(self.bucket, self.key).await?;
        let parts = self.size.div_ceil(part_size);
        let all = stream::iter(0..parts)
            .map(|i| self.put_part(&upload_id, i, part_size))
            .buffer_unordered(opts.concurrency.max(1))
            .collect::<Vec<Result<CompletedPart, Error>>>();
        let results = tokio::select! {
            r = all => r,
            () = opts.interrupt.wait() => vec![Err(Error::Interrupted {
                what: format!(
                    "the multipart upload of s3://{}/{} was aborted; run the same command again to upload it (uploads start over)",
                    self.bucket,
                    crate::text::Escaped(self.key)
                ),
            })],
        };
        let mut done = Vec::new();
        let mut failure = None;
        for r in results {
            match r {
                Ok(p) => done.push(p),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let completed = match failure {
            None => {
                done.sort_by_key(|p| p.part_number);
                self.client
                    .complete_multipart(self.bucket, self.key, &upload_id, &done)
                    .await
                    .map_err(Error::from)
            }
            Some(e) => Err(e),
        };
        if let Err(e) = completed {
            // No orphaned parts: they cost storage and are invisible in listings.
            let _ = self
                .client
                .abort_multipart(self.bucket, self.key, &upload_id)
                .await;
            return Err(e);
        }
        Ok(())
    }

    /// Uploads part `i` (0-based), sent again from the file up to [`PART_ATTEMPTS`] times unless
    /// the keys were refused.
    async fn put_part(
        &self,
        upload_id: &str,
        i: u64,
        part_size: u64,
    ) -> Result<CompletedPart, Error> {
        let start = i * part_size;
        let len = part_size.min(self.size - start);
        let md5 = md5_of(self.path, start, len).await?;
        let part_number = (i + 1) as u32;
        let mut attempt = 0;
        loop {
            let body = self.body(start, len, md5);
            match self
                .client
                .upload_part(self.bucket, self.key, upload_id, part_number, body)
                .await
            {
                Ok(etag) => {
                    self.bar.inc(len);
                    return Ok(CompletedPart { part_number, etag });
                }
                Err(e)
                    if attempt + 1 < PART_ATTEMPTS && !matches!(e, s3::Error::Refused { .. }) =>
                {
                    attempt += 1;
                    parts::pause(attempt).await;
                }
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}

/// The MD5 of `len` bytes of `path` from `offset`, sent as `Content-MD5` so that the server
/// refuses bytes changed on the way (`BadDigest`), as aws-cli and rclone have it checked. The
/// bytes are read again for the upload, from the page cache.
async fn md5_of(path: &Path, offset: u64, len: u64) -> Result<[u8; 16], Error> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 16]> {
        use md5::{Digest, Md5};
        let mut file = std::fs::File::open(&owned)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; crate::body::PIECE];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being uploaded",
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(hasher.finalize().into())
    })
    .await
    .expect("hashing does not panic")
    .map_err(io_err("read", path))
}

/// `len` bytes of `path` from `offset`.
fn file_stream(
    path: PathBuf,
    offset: u64,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static {
    crate::body::from_reader(
        move || {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        },
        Some(len),
        |_| {},
    )
}
