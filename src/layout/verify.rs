//! Checking content against its digest on the way out: every blob push reads from a local image goes
//! through [`VerifyingReader`], so a corrupted layout file or tarball fails here with the file's name
//! instead of as an opaque "digest invalid" from the registry after the upload — and a docker-archive
//! layer, whose digest we take from the config's `diff_ids` without hashing it up front, is still
//! checked.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::oci::digest::Hasher;
use crate::oci::{Descriptor, Digest};

use super::Error;

/// Checks a small blob already in memory against its descriptor.
pub(crate) fn check_bytes(bytes: &[u8], desc: &Descriptor, path: &Path) -> Result<(), Error> {
    if bytes.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: bytes.len() as u64,
            path: path.to_path_buf(),
        });
    }
    let actual = desc.digest.recompute(bytes);
    if actual != desc.digest {
        return Err(Error::DigestMismatch {
            expected: desc.digest.clone(),
            actual,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A reader that hashes what passes and, at EOF, fails (`InvalidData`, carrying
/// [`Error::DigestMismatch`] or [`Error::SizeMismatch`]) unless the content matched. The failure
/// sticks: reading again after it returns it again, never a clean EOF.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    size: Option<u64>,
    path: PathBuf,
    state: State,
}

enum State {
    Reading,
    Verified,
    Failed,
}

impl<R: Read> VerifyingReader<R> {
    /// `size`, when known, is checked too (and an overlong stream fails as soon as it is overlong).
    /// The content is hashed in `expected`'s algorithm.
    pub(crate) fn new(inner: R, expected: Digest, size: Option<u64>, path: PathBuf) -> Self {
        VerifyingReader {
            inner,
            hasher: Hasher::for_digest(&expected),
            expected,
            size,
            path,
            state: State::Reading,
        }
    }

    fn error(&self) -> io::Error {
        let actual_len = self.hasher.len();
        let e = match self.size {
            Some(size) if size != actual_len => Error::SizeMismatch {
                digest: self.expected.clone(),
                expected: size,
                actual: actual_len,
                path: self.path.clone(),
            },
            _ => Error::DigestMismatch {
                expected: self.expected.clone(),
                actual: self.hasher.clone().finish(),
                path: self.path.clone(),
            },
        };
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            State::Verified => return Ok(0),
            State::Failed => return Err(self.error()),
            State::Reading => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        let overlong = self.size.is_some_and(|s| self.hasher.len() > s);
        if overlong {
            self.state = State::Failed;
            return Err(self.error());
        }
        if n == 0 {
            let size_ok = self.size.is_none_or(|s| s == self.hasher.len());
            if size_ok && self.hasher.clone().finish() == self.expected {
                self.state = State::Verified;
            } else {
                self.state = State::Failed;
                return Err(self.error());
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    }

    #[test]
    fn passes_good_content() {
        let d = Digest::sha256_of(b"hello");
        let mut r = VerifyingReader::new(&b"hello"[..], d.clone(), Some(5), "x".into());
        assert_eq!(read_all(&mut r).unwrap(), b"hello");
        let mut r = VerifyingReader::new(&b"hello"[..], d, None, "x".into());
        assert_eq!(read_all(&mut r).unwrap(), b"hello");
    }

    #[test]
    fn fails_at_eof_and_keeps_failing() {
        let d = Digest::sha256_of(b"hello");
        let mut r = VerifyingReader::new(&b"hellO"[..], d, Some(5), "x".into());
        let e = read_all(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            Error::downcast_io(&e),
            Some(Error::DigestMismatch { .. })
        ));
        assert!(r.read(&mut [0; 4]).is_err());
    }

    #[test]
    fn size_mismatch_short_and_long() {
        let d = Digest::sha256_of(b"hello");
        let mut r = VerifyingReader::new(&b"hell"[..], d.clone(), Some(5), "x".into());
        let e = read_all(&mut r).unwrap_err();
        assert!(matches!(
            Error::downcast_io(&e),
            Some(Error::SizeMismatch { actual: 4, .. })
        ));
        let mut r = VerifyingReader::new(&b"hello!"[..], d, Some(5), "x".into());
        let e = read_all(&mut r).unwrap_err();
        assert!(matches!(
            Error::downcast_io(&e),
            Some(Error::SizeMismatch { expected: 5, .. })
        ));
    }
}
