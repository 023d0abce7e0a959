//! Bounded reads: the one way outside data is read whole into memory.
//!
//! Manifests, image configs, token answers, error bodies, listings and state files come from
//! registries, servers and directories we do not control. Read with `read_to_end` or
//! `Response::bytes()`, a 1 GiB config or error body costs gigabytes of memory before anything
//! can look at it. Everything that is read whole goes through [`read`] (files, tar entries) or
//! [`response`] (HTTP bodies) with a limit from the table below, and more than the limit is an
//! error that names what was too large; error bodies, which are only ever shown, are cut with
//! [`response_prefix`] instead. Streams (blobs, objects, layers) never come here: they go to disk
//! through hashing writers.
//!
//! The limits follow containers/image (`internal/iolimits`), which skopeo and podman enforce, so
//! that what they accept we accept.

use std::io::{self, Read};

#[cfg(feature = "net")]
use bytes::{Bytes, BytesMut};

const MIB: u64 = 1 << 20;

/// An image or artifact manifest, or an index (containers/image: 4 MiB; Distribution: 4 MiB).
pub const MANIFEST: u64 = 4 * MIB;
/// An image config blob (containers/image `MaxConfigBodySize`: 4 MiB).
pub const CONFIG: u64 = 4 * MIB;
/// A token server's answer (containers/image `MaxAuthTokenBodySize`: 1 MiB).
pub const TOKEN: u64 = MIB;
/// A JSON or XML page of a listing: tags, Harbor artifacts, S3 objects (1000 keys of 1 KiB plus
/// their metadata fit several times over).
pub const LISTING: u64 = 16 * MIB;
/// A small state or metadata file we wrote ourselves but read back from a directory others may
/// write (`index.json`, sidecars, markers).
pub const STATE: u64 = 16 * MIB;
/// How much of an error answer's body is kept for the message.
pub const ERROR_BODY: usize = 64 << 10;

/// More than the limit was offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is larger than {} (the limit for it); refusing to read it into memory", human(*limit))]
pub struct TooLarge {
    /// What was being read ("manifest of host/repo:tag", "token answer from https://…").
    pub what: String,
    pub limit: u64,
}

fn human(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Reads all of `r` when it holds at most `limit` bytes. More is an `InvalidData` error whose
/// inner error is a [`TooLarge`] naming `what`; at most `limit + 1` bytes are ever buffered.
pub fn read(r: impl Read, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            TooLarge {
                what: what.to_string(),
                limit,
            },
        ));
    }
    Ok(buf)
}

/// Why [`response`] gave no body.
#[cfg(feature = "net")]
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The transfer failed; callers describe it with `http::error_chain`.
    #[error("{0}")]
    Transport(reqwest::Error),
}

#[cfg(feature = "net")]
/// Reads an HTTP body of at most `limit` bytes. A `Content-Length` above the limit is refused
/// before any byte is read; a body that grows past it is refused as soon as it does.
pub async fn response(
    mut resp: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Bytes, BodyError> {
    let too_large = || TooLarge {
        what: what.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large().into());
    }
    let mut out = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large().into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

#[cfg(feature = "net")]
/// The first `limit` bytes of an HTTP body (of an error answer, to quote in a message); the
/// rest is never read, and a transfer error ends the body where it happened.
pub async fn response_prefix(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut out = BytesMut::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit() {
        assert_eq!(read(&b"abcd"[..], 4, "x").unwrap(), b"abcd");
        assert_eq!(read(&b""[..], 0, "x").unwrap(), b"");
    }

    #[test]
    fn refuses_one_byte_more_and_names_it() {
        let e = read(&b"abcde"[..], 4, "config of r:t").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let inner = e.get_ref().unwrap().downcast_ref::<TooLarge>().unwrap();
        assert_eq!(inner.what, "config of r:t");
        assert_eq!(
            e.to_string(),
            "config of r:t is larger than 4 bytes (the limit for it); refusing to read it into memory"
        );
    }

    #[test]
    fn never_buffers_past_the_limit() {
        // An endless reader: the read must stop at limit + 1 bytes, not run out of memory.
        let e = read(io::repeat(b'x'), CONFIG, "config").unwrap_err();
        assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
    }

    #[test]
    fn sizes_print_in_their_unit() {
        assert_eq!(human(4 * MIB), "4 MiB");
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
