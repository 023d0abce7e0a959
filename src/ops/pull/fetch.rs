//! One blob of a pull into the layout: checked when an earlier run left it, else downloaded into
//! its `*.partial` file, resumed with HTTP Range after a dropped connection, and committed only
//! when size and digest match.

use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;

use super::Error;
use crate::layout::{self, BlobWriter, Layout};
use crate::oci::Descriptor;
use crate::progress::{BlobProgress, Progress};
use crate::registry::{self, Client, Download};

const DOWNLOAD_ATTEMPTS: u32 = 6;

/// What [`fetch_blob`] did.
pub(crate) enum Fetch {
    /// The blob was already in the layout (an earlier, interrupted run), its content checked.
    Present,
    /// This many bytes were transferred.
    Downloaded(u64),
}

/// Runs blocking file work (hashing, fsync) off the async workers, which are busy receiving the
/// other blobs.
async fn blocking<T: Send + 'static>(
    layout: &Layout,
    desc: &Descriptor,
    work: impl FnOnce() -> Result<T, layout::Error> + Send + 'static,
) -> Result<T, Error> {
    let r = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| layout::Error::Io {
            action: "write",
            path: layout.blob_path(&desc.digest),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(r)
}

/// Downloads one blob into the layout, resuming from what is already on disk.
pub(crate) async fn fetch_blob(
    client: &Client,
    repo: &str,
    layout: &Layout,
    desc: &Descriptor,
    progress: &dyn Progress,
) -> Result<Fetch, Error> {
    let bar = progress.blob(&desc.digest.short(), desc.size);
    // A blob already there is trusted only after hashing it (a resumed layout may hold anything
    // of the right size); in a fresh pull this is one failing `openat`.
    let present = match layout.present_blob(desc)? {
        Some(blob) => blocking(layout, desc, move || blob.verify()).await?,
        None => false,
    };
    if present {
        bar.skip(desc.size);
        bar.done();
        return Ok(Fetch::Present);
    }
    let mut writer = layout.blob_writer(desc)?;
    bar.skip(writer.offset());
    let mut transferred = 0u64;
    let mut attempt = 0;
    while writer.offset() < desc.size {
        let offset = writer.offset();
        let failure = match client.get_blob(repo, &desc.digest, offset).await {
            Err(registry::Error::Connect { detail, .. }) => Some(detail),
            Err(e) => return Err(e.into()),
            Ok((resp, ranged)) => {
                if offset > 0 && !ranged {
                    writer.restart()?;
                    bar.reset();
                }
                let sink = Sink {
                    layout,
                    desc,
                    bar: bar.as_ref(),
                };
                receive(resp, &mut writer, &sink, &mut transferred).await?
            }
        };
        if let Some(detail) = failure {
            attempt += 1;
            if attempt >= DOWNLOAD_ATTEMPTS {
                return Err(Error::Download {
                    repository: repo.to_string(),
                    digest: desc.digest.clone(),
                    detail,
                });
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5)))).await;
        }
        if writer.offset() > desc.size {
            break;
        }
    }
    // The fsync of a large blob takes a while.
    blocking(layout, desc, move || writer.commit()).await?;
    bar.done();
    Ok(Fetch::Downloaded(transferred))
}

/// Where one blob's bytes go, and what they count on.
struct Sink<'a> {
    layout: &'a Layout,
    desc: &'a Descriptor,
    bar: &'a dyn BlobProgress,
}

/// Writes one answer's body into `writer`; returns why it stopped short (the next attempt
/// resumes from there), `None` when the blob is complete (or overlong: the commit says so).
async fn receive(
    resp: Download,
    writer: &mut BlobWriter,
    sink: &Sink<'_>,
    transferred: &mut u64,
) -> Result<Option<String>, Error> {
    let size = sink.desc.size;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                writer.write_all(&bytes).map_err(|e| layout::Error::Io {
                    action: "write",
                    path: sink.layout.blob_path(&sink.desc.digest),
                    source: e,
                })?;
                *transferred += bytes.len() as u64;
                sink.bar.inc(bytes.len() as u64);
                if writer.offset() > size {
                    return Ok(None);
                }
            }
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
    Ok((writer.offset() < size).then(|| {
        format!(
            "the registry ended the blob after {} of {size} bytes",
            writer.offset()
        )
    }))
}
