//! The check a finished download passes before it takes its name: its size always, its MD5 when
//! the ETag is a plain MD5 (single-part uploads), then `fdatasync`, which by then waits only for
//! the last bytes: the streams handed the rest to the disk as they went ([`writeback`](super::writeback)).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{io_err, Error};

/// [`verify`] off the async runtime (it reads the whole file).
pub(super) async fn verify_blocking(
    file: File,
    path: &Path,
    size: u64,
    etag: &str,
) -> Result<(), Error> {
    let owned: PathBuf = path.to_path_buf();
    let etag = etag.to_string();
    tokio::task::spawn_blocking(move || verify(file, &owned, size, &etag))
        .await
        .map_err(|e| Error::Io {
            action: "verify",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
        .and_then(|r| r)
}

/// Size always; MD5 when the ETag is a plain MD5 (single-part uploads); then `fdatasync` (the
/// size was set before the first byte, so it is among the metadata `fdatasync` writes).
fn verify(file: File, path: &Path, size: u64, etag: &str) -> Result<(), Error> {
    let len = file.metadata().map_err(io_err("inspect", path))?.len();
    if len != size {
        return Err(Error::Verify {
            path: path.to_path_buf(),
            what: "size",
            detail: format!("{len} bytes, expected {size}"),
        });
    }
    let plain = etag.trim_matches('"');
    if plain.len() == 32 && plain.bytes().all(|b| b.is_ascii_hexdigit()) {
        use md5::{Digest, Md5};
        let mut hasher = Md5::new();
        let mut f = &file;
        f.seek(SeekFrom::Start(0)).map_err(io_err("read", path))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let got = hex::encode(hasher.finalize());
        if !got.eq_ignore_ascii_case(plain) {
            return Err(Error::Verify {
                path: path.to_path_buf(),
                what: "MD5",
                detail: format!("{got}, expected {plain}"),
            });
        }
    }
    file.sync_data().map_err(io_err("sync", path))
}
