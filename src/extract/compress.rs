//! Layer streams: decompression by media type and the digests checked on the way.
//!
//! A layer is read once, as a stream, however large (umoci's `UnpackRootfs` does the same): the
//! compressed bytes pass through a hasher checked against the descriptor's digest, the decompressed
//! bytes through one checked against the config's `rootfs.diff_ids` entry. Nothing is buffered
//! beyond the decoders' own windows, so memory stays flat. Gzip is read as multi-member (Go's
//! reader, which produced most layers in the wild, concatenates members too); zstd as multi-frame.

use std::io::{self, Read, Write};

use sha2::Digest as _;

use super::Error;
use crate::oci::digest::Hasher;
use crate::oci::{Compression, Descriptor, Digest};

/// Wraps `reader` (a blob's bytes) in the decoder its `media_type` calls for: gzip, zstd, or none
/// for plain tar. Unknown media types (foreign, encrypted, …) are an error, never guessed.
pub fn decompress<'a, R: Read + 'a>(
    media_type: &str,
    reader: R,
) -> Result<Box<dyn Read + 'a>, Error> {
    match Compression::of_media_type(media_type) {
        Some(Compression::None) => Ok(Box::new(reader)),
        Some(Compression::Gzip) => Ok(Box::new(flate2::read::MultiGzDecoder::new(reader))),
        Some(Compression::Zstd) => zstd::stream::read::Decoder::new(reader)
            .map(|d| Box::new(d) as Box<dyn Read + 'a>)
            .map_err(|source| Error::Io {
                path: media_type.into(),
                action: "start the zstd decoder",
                source,
            }),
        None => Err(Error::MediaType {
            media_type: media_type.to_string(),
        }),
    }
}

/// A digest being computed, in the algorithm of the digest it will be compared with.
pub(crate) enum Verifier {
    Sha256(Hasher),
    Sha512(sha2::Sha512, u64),
}

impl Verifier {
    /// A verifier for the algorithm of `expected` (SHA-256 when unknown).
    pub(crate) fn for_digest(expected: Option<&Digest>) -> Verifier {
        match expected.map(Digest::algorithm) {
            Some("sha512") => Verifier::Sha512(sha2::Sha512::new(), 0),
            _ => Verifier::Sha256(Hasher::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Verifier::Sha256(h) => h.update(data),
            Verifier::Sha512(h, n) => {
                h.update(data);
                *n += data.len() as u64;
            }
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Verifier::Sha256(h) => h.len(),
            Verifier::Sha512(_, n) => *n,
        }
    }

    pub(crate) fn finish(self) -> Digest {
        match self {
            Verifier::Sha256(h) => h.finish(),
            Verifier::Sha512(h, _) => {
                Digest::parse(&format!("sha512:{}", hex::encode(h.finalize())))
                    .expect("a sha512 digest is valid")
            }
        }
    }
}

/// A reader that hashes (and counts) everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    verifier: Verifier,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, expected: Option<&Digest>) -> Self {
        HashingReader {
            inner,
            verifier: Verifier::for_digest(expected),
        }
    }

    /// Reads what is left (a tar's trailing zero blocks, padding) into the hash.
    pub(crate) fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    pub(crate) fn finish(self) -> (R, Digest, u64) {
        let len = self.verifier.len();
        (self.inner, self.verifier.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }
}

/// Data is copied through a buffer this large: one `write` for most files, few for the rest.
pub(crate) const COPY_BUFFER: usize = 1 << 20;

/// Which side of a copy failed: a read error is a corrupt layer, a write error our disk.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `r` to `w` through `buf`, filling it before each write (few, large writes).
pub(crate) fn copy(
    r: &mut impl Read,
    w: &mut impl Write,
    buf: &mut [u8],
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        w.write_all(&buf[..filled]).map_err(CopyError::Write)?;
        total += filled as u64;
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

/// Checks a blob's digest and size against its descriptor.
pub(crate) fn check_blob(layer: &Descriptor, actual: Digest, size: u64) -> Result<(), Error> {
    if size != layer.size {
        return Err(Error::Size {
            layer: layer.digest.to_string(),
            expected: layer.size,
            actual: size,
        });
    }
    if actual != layer.digest {
        return Err(Error::Digest {
            layer: layer.digest.to_string(),
            what: "compressed",
            expected: layer.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// Checks an uncompressed stream's digest against the config's diff_id, when there is one.
pub(crate) fn check_diff_id(
    layer: &Descriptor,
    expected: Option<&Digest>,
    actual: Digest,
) -> Result<(), Error> {
    match expected {
        Some(expected) if *expected != actual => Err(Error::Digest {
            layer: layer.digest.to_string(),
            what: "uncompressed (diff_id)",
            expected: expected.clone(),
            actual,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(media_type: &str, compressed: &[u8], plain: &[u8]) {
        let mut out = Vec::new();
        decompress(media_type, compressed)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain, "{media_type}");
    }

    #[test]
    fn decompress_by_media_type() {
        let plain = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain[..500]).unwrap();
        let mut two = gz.finish().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain[500..]).unwrap();
        two.extend(gz.finish().unwrap());
        roundtrip(crate::oci::OCI_LAYER_GZIP, &two, &plain);
        roundtrip(crate::oci::DOCKER_LAYER_GZIP, &two, &plain);
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        roundtrip(crate::oci::OCI_LAYER_ZSTD, &zst, &plain);
        roundtrip(crate::oci::OCI_LAYER_TAR, &plain, &plain);
        assert!(matches!(
            decompress("application/vnd.oci.image.layer.v1.tar+encrypted", &b""[..]),
            Err(Error::MediaType { .. })
        ));
    }

    #[test]
    fn hashing_reader_hashes_what_passes() {
        let mut r = HashingReader::new(&b"{}"[..], None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let (_, d, n) = r.finish();
        assert_eq!((d, n), (Digest::sha256_of(b"{}"), 2));
        let sha512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let mut r = HashingReader::new(&b"abc"[..], Some(&sha512));
        r.drain().unwrap();
        assert_eq!(
            r.finish().1.to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
