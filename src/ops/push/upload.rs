//! One blob of a push: skipped when the registry has it (HEAD), mounted from the repository it
//! was pulled from when the registry can, else uploaded from the source, with retries. A layer to
//! compress is first staged into an unnamed temporary file: the registry must be told the
//! compressed digest before anything is sent. A bundle load (`ops::load`) sends its blobs
//! through the same [`push_blob`], one [`Target`] per blob (its mount source varies).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compress::{self, Codec, Pool, Written};
use super::Error;
use crate::layout::BlobSource;
use crate::oci::{Descriptor, Digest};
use crate::progress::{self, BlobProgress, Progress};
use crate::registry::{self, BlobUpload, Client, Mount, Scope};

/// How often one blob's upload is tried.
const UPLOAD_ATTEMPTS: u32 = 3;

/// A blob to push: as it is, or a plain-tar layer to compress first.
pub(crate) struct Blob {
    pub(crate) desc: Descriptor,
    pub(crate) codec: Option<Codec>,
}

pub(crate) enum Outcome {
    Uploaded(u64),
    Skipped,
    Mounted,
}

/// What became of one blob; for a compressed layer, also its uncompressed digest and what it
/// became.
pub(crate) struct Pushed {
    pub(crate) outcome: Outcome,
    pub(crate) compressed: Option<(Digest, Written)>,
}

/// A read error of a local blob as our error: a layout error it carries (a corrupt file, named)
/// comes out as it is.
fn read_error(e: std::io::Error, digest: &Digest) -> Error {
    if crate::layout::Error::downcast_io(&e).is_some() {
        let inner = e.into_inner().expect("downcast_io found an inner error");
        return Error::from(
            *inner
                .downcast::<crate::layout::Error>()
                .expect("downcast_io found a layout error"),
        );
    }
    let path = PathBuf::from(digest.to_string());
    crate::layout::Error::io("read", &path)(e).into()
}

/// Reads the local blob through its verifying reader; the error names the corrupt file.
async fn check_local_blob(blobs: Arc<dyn BlobSource>, digest: Digest) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut r = blobs.open(&digest)?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map(drop)
            .map_err(|e| read_error(e, &digest))
    })
    .await
    .expect("the blob check does not panic")
}

/// Where blobs go: the same for every blob of a push.
pub(crate) struct Target<'a> {
    pub(crate) client: &'a Client,
    pub(crate) repo: &'a str,
    pub(crate) mount_from: Option<&'a str>,
    pub(crate) scope: &'a Scope,
    pub(crate) chunk_size: u64,
    /// HEAD the blob first: off when the caller has just asked (a bundle load's plan).
    pub(crate) head_first: bool,
}

/// Pushes one blob, compressing it first when asked.
pub(crate) async fn push_blob(
    target: &Target<'_>,
    blob: &Blob,
    blobs: Arc<dyn BlobSource>,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    let desc = &blob.desc;
    let bar = progress.blob(&desc.digest.short(), desc.size);
    let Some(codec) = blob.codec else {
        let (source, digest) = (blobs.clone(), desc.digest.clone());
        let open = move || {
            source
                .open_for_upload(&digest)
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        let outcome = send(target, &desc.digest, desc.size, open, Some(blobs), &bar).await?;
        return Ok(Pushed {
            outcome,
            compressed: None,
        });
    };
    // The progress bar follows the uncompressed bytes, read while compressing (the slow part).
    let (file, written) = {
        let (desc, counter) = (desc.clone(), progress::counter(&bar));
        tokio::task::spawn_blocking(move || stage(codec, blobs.as_ref(), &desc, counter))
            .await
            .expect("compression does not panic")?
    };
    let file = Arc::new(file);
    let open = move || -> std::io::Result<FileAt> {
        Ok(FileAt {
            file: file.clone(),
            at: 0,
        })
    };
    let outcome = send(target, &written.digest, written.size, open, None, &bar).await?;
    Ok(Pushed {
        outcome,
        compressed: Some((desc.digest.clone(), written)),
    })
}

/// Where compressed layers wait for their upload: `$TMPDIR` when set, else `/var/tmp` (on disk,
/// where `/tmp` is often memory; podman stages image copies there for the same reason).
fn stage_dir() -> PathBuf {
    let var_tmp = Path::new("/var/tmp");
    if std::env::var_os("TMPDIR").is_none() && var_tmp.is_dir() {
        var_tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Compresses the layer `desc` into an unnamed temporary file (`O_TMPFILE`, mode 0600: no other
/// user can open it, and it vanishes when closed, even if we are killed). The layer is read
/// through its verifying reader: the registry can check only the compressed digest, so the
/// uncompressed one (the config's diff_id) is checked here.
fn stage(
    codec: Codec,
    blobs: &dyn BlobSource,
    desc: &Descriptor,
    counted: impl Fn(u64),
) -> Result<(File, Written), Error> {
    let dir = stage_dir();
    let failed = |source| Error::Compress {
        digest: desc.digest.clone(),
        dir: dir.clone(),
        source,
    };
    let mut input = blobs.open(&desc.digest)?;
    let mut file = tempfile::tempfile_in(&dir).map_err(failed)?;
    let pool = Pool::shared().map_err(failed)?;
    match compress::compress(pool, codec, &mut input, &mut file, &counted) {
        Ok(written) => Ok((file, written)),
        Err(e) if crate::layout::Error::downcast_io(&e).is_some() => {
            Err(read_error(e, &desc.digest))
        }
        Err(e) => Err(failed(e)),
    }
}

/// A reader of a shared file from the start, for each upload attempt.
struct FileAt {
    file: Arc<File>,
    at: u64,
}

impl Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Sends one blob unless the registry has it (HEAD) or mounts it; retries a failed upload.
/// `check` is the local source, checked when the registry refuses the bytes (a corrupt copy is
/// then named); a staged compressed blob was hashed as it was written and needs no check.
async fn send<R, O>(
    target: &Target<'_>,
    digest: &Digest,
    size: u64,
    open: O,
    check: Option<Arc<dyn BlobSource>>,
    bar: &Arc<dyn BlobProgress>,
) -> Result<Outcome, Error>
where
    R: Read + 'static,
    O: Fn() -> std::io::Result<R> + Clone + Send + 'static,
{
    let Target {
        client,
        repo,
        mount_from,
        scope,
        chunk_size,
        head_first,
    } = *target;
    // A compressed layer's bar already counted its input: the upload does not count again.
    let counts = check.is_some();
    let left = if counts { size } else { 0 };
    if head_first && client.blob_exists(repo, digest, scope).await?.is_some() {
        bar.skip(left);
        bar.done();
        return Ok(Outcome::Skipped);
    }
    let mut attempt = 0;
    loop {
        let location = match client
            .start_upload(repo, Some((digest, mount_from)), scope)
            .await?
        {
            Mount::Mounted => {
                bar.skip(left);
                bar.done();
                return Ok(Outcome::Mounted);
            }
            Mount::Upload(loc) => loc,
        };
        let counter = progress::counter(bar);
        let body = crate::body::from_reader(open.clone(), Some(size), move |n| {
            if counts {
                counter(n)
            }
        });
        let blob = BlobUpload {
            digest,
            size,
            chunk_size,
        };
        match client.upload(repo, location, blob, scope, body).await {
            Ok(()) => {
                bar.done();
                return Ok(Outcome::Uploaded(size));
            }
            Err(e) => {
                attempt += 1;
                if counts {
                    bar.reset();
                }
                if let Some(e) = after_failure(target, digest, e, attempt, &check).await? {
                    return Err(e);
                }
            }
        }
    }
}

/// What a failed upload attempt means: the error to give up with, or `None` to try again.
/// A refused blob (400: DIGEST_INVALID, SIZE_INVALID …) is checked here, where a corrupt local
/// copy is named; the upload skipped hashing it (open_for_upload).
async fn after_failure(
    target: &Target<'_>,
    digest: &Digest,
    e: registry::Error,
    attempt: u32,
    check: &Option<Arc<dyn BlobSource>>,
) -> Result<Option<Error>, Error> {
    if let (registry::Error::Status { status: 400, .. }, Some(blobs)) = (&e, check) {
        check_local_blob(blobs.clone(), digest.clone()).await?;
    }
    let refused = matches!(
        e,
        registry::Error::Unauthorized { .. } | registry::Error::Denied { .. }
    );
    if attempt < UPLOAD_ATTEMPTS && !refused {
        return Ok(None);
    }
    Ok(Some(match e {
        registry::Error::Connect { detail, .. } => Error::Upload {
            repository: target.repo.to_string(),
            digest: digest.clone(),
            detail,
        },
        other => other.into(),
    }))
}
