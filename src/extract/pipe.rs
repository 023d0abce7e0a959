//! One layer on two cores: the calling thread applies the tar while a second one reads, hashes
//! and decompresses the blob (the CPU-heavy half). A small bounded queue between them keeps
//! memory flat whatever the layer's size.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::compress::{decompress, HashingReader};
use super::Error;
use crate::oci::{Descriptor, Digest};

/// Bytes per piece handed between the two stages, and pieces in flight.
const PIPE_CHUNK: usize = 256 * 1024;
const PIPE_DEPTH: usize = 8;

type Piece = io::Result<Vec<u8>>;

/// The producer's end and the extractor's end of a new pipe.
pub(crate) fn pipe() -> (SyncSender<Piece>, PipeReader) {
    let (tx, rx) = sync_channel::<Piece>(PIPE_DEPTH);
    let reader = PipeReader {
        rx,
        current: Vec::new(),
        pos: 0,
    };
    (tx, reader)
}

/// The producer: reads the blob `reader` (hashed, to check `descriptor`), decompresses it by
/// media type (hashed again, to check the diff_id) and sends the tar stream down `tx`, then
/// drains what follows the compressed stream. Returns the blob's digest and size and the
/// diff_id; a read error is sent down the pipe too, so the extractor stops.
pub(crate) fn produce<R: Read>(
    reader: R,
    descriptor: &Descriptor,
    expected_diff_id: Option<&Digest>,
    name: String,
    tx: SyncSender<Piece>,
) -> Result<(Digest, u64, Digest), Error> {
    let mut blob = HashingReader::new(reader, Some(&descriptor.digest));
    let diff_id = {
        let stream = decompress(&descriptor.media_type, &mut blob).map_err(|e| Error::Layer {
            layer: name.clone(),
            source: Box::new(e),
        })?;
        let mut tar = HashingReader::new(stream, expected_diff_id);
        loop {
            let mut buf = vec![0u8; PIPE_CHUNK];
            let n = match read_full(&mut tar, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let kind = e.kind();
                    let _ = tx.send(Err(io::Error::new(kind, e.to_string())));
                    return Err(Error::Read {
                        layer: name,
                        source: e,
                    });
                }
            };
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx.send(Ok(buf)).is_err() {
                // The extractor stopped (it has its own error to report).
                break;
            }
        }
        tar.finish().1
    };
    blob.drain().map_err(|source| Error::Read {
        layer: name.clone(),
        source,
    })?;
    let (_, digest, size) = blob.finish();
    Ok((digest, size, diff_id))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The extractor's end of the pipe: a `Read` over the pieces the producer sends.
pub(crate) struct PipeReader {
    rx: Receiver<Piece>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
