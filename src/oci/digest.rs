//! Content digests (`sha256:<64 hex>`) and the hashing writer every blob streams through.
//!
//! A digest is validated when parsed, so it is safe to use as a file name under `blobs/sha256/`:
//! a hostile manifest cannot name `../../etc/passwd` as a blob.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    /// `algorithm:hex`, validated; one allocation keeps errors that carry digests small.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 lower-case hex digits> (or sha512:<128>)")]
pub struct DigestError(pub String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError(s.to_string()))?;
        let len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(DigestError(s.to_string())),
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError(s.to_string()));
        }
        Ok(Digest {
            text: format!("{algorithm}:{hex}"),
        })
    }

    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest {
            text: format!("sha256:{}", hex::encode(Sha256::digest(data))),
        }
    }

    pub fn algorithm(&self) -> &str {
        self.text.split_once(':').map(|(a, _)| a).unwrap_or("")
    }

    pub fn hex(&self) -> &str {
        self.text.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    /// A short form for people: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm(), &self.hex()[..12])
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// A SHA-256 hasher that counts bytes; fed as data streams past.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        Digest {
            text: format!("sha256:{}", hex::encode(self.sha.finalize())),
        }
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Continues a hash of bytes already written (a resumed download).
    pub fn with_hasher(inner: W, hasher: Hasher) -> Self {
        HashingWriter { inner, hasher }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        let d = Digest::sha256_of(b"{}");
        assert_eq!(
            d.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABC",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256",
            "",
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_writer_matches() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"{").unwrap();
        w.write_all(b"}").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(buf, b"{}");
        assert_eq!(n, 2);
        assert_eq!(d, Digest::sha256_of(b"{}"));
    }
}
