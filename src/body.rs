//! Request bodies read from disk: a blocking reader turned into a stream of 1 MiB pieces on a
//! blocking thread (the async runtime never waits on disk), with only a couple of pieces in flight,
//! so memory stays flat whatever the blob or object size. Push (registry blobs) and storage
//! uploads (file sections) both send their bodies this way.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

/// Bytes per piece. Pieces are always full but for the last, so a consumer can cut the stream at
/// multiples of this size (chunked registry uploads do).
pub const PIECE: usize = 1 << 20;

/// Pieces queued per stream.
const DEPTH: usize = 2;

/// Streams what `open` returns, at most `limit` bytes (all of it when `None`); with a limit, ending
/// early is an error. `counted` sees each piece's size as it is read (progress).
pub fn from_reader<R, O, C>(
    open: O,
    limit: Option<u64>,
    counted: C,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static
where
    R: Read,
    O: FnOnce() -> std::io::Result<R> + Send + 'static,
    C: Fn(u64) + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut reader = match open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut left = limit.unwrap_or(u64::MAX);
        while left > 0 {
            let want = left.min(PIECE as u64) as usize;
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled < want && limit.is_some() {
                let _ = tx.blocking_send(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the source ended early",
                )));
                return;
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            counted(filled as u64);
            if tx.blocking_send(Ok(buf.freeze())).is_err() || filled < want {
                return;
            }
            left -= filled as u64;
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
