//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and the hashing writer every blob
//! streams through.
//!
//! A digest is validated when parsed, so it is safe to use as a file name under `blobs/<alg>/`:
//! a hostile manifest cannot name `../../etc/passwd` as a blob. The algorithms are the two the
//! OCI image spec registers (descriptor.md, "Registered algorithms"); both are verified wherever
//! content is checked, so a `@sha512:` reference is never taken on trust, and any other
//! algorithm is refused when parsed, with a message that says so.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    /// `algorithm:hex`, validated; one allocation keeps errors that carry digests small.
    text: String,
}

/// A digest that does not parse: the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct DigestError(pub String);

fn describe(s: &str) -> String {
    let shown = crate::text::escape(s);
    match s.split_once(':') {
        // The grammar of the image spec: `algorithm ":" encoded`, algorithm in [a-z0-9+._-].
        Some((alg, _))
            if Algorithm::from_name(alg).is_none()
                && !alg.is_empty()
                && alg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                }) =>
        {
            format!(
                "unsupported digest algorithm {:?} in {shown}: only sha256 and sha512 (the algorithms the OCI image spec registers) can be verified",
                crate::text::escape(alg)
            )
        }
        _ => format!(
            "invalid digest {shown}: expected sha256:<64 lower-case hex digits> or sha512:<128>"
        ),
    }
}

/// A digest algorithm we can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError(s.to_string()))?;
        let len = Algorithm::from_name(algorithm)
            .ok_or_else(|| DigestError(s.to_string()))?
            .hex_len();
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

    /// The digest of `data` in `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::with(algorithm);
        h.update(data);
        h.finish()
    }

    /// The digest of `data` in this digest's algorithm: equal to `self` exactly when `data` is
    /// the content this digest names.
    pub fn recompute(&self, data: &[u8]) -> Digest {
        Digest::of(self.kind(), data)
    }

    /// This digest's algorithm (always one we can verify: [`Digest::parse`] refuses others).
    pub fn kind(&self) -> Algorithm {
        Algorithm::from_name(self.algorithm()).expect("a parsed digest has a known algorithm")
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

/// A hasher (SHA-256 unless told otherwise) that counts bytes; fed as data streams past.
#[derive(Clone)]
pub struct Hasher {
    sha: Sha,
    len: u64,
}

#[derive(Clone)]
enum Sha {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::with(Algorithm::Sha256)
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn with(algorithm: Algorithm) -> Hasher {
        let sha = match algorithm {
            Algorithm::Sha256 => Sha::Sha256(Sha256::new()),
            Algorithm::Sha512 => Sha::Sha512(Sha512::new()),
        };
        Hasher { sha, len: 0 }
    }

    /// A hasher in the algorithm of `expected`, to compare with it at the end.
    pub fn for_digest(expected: &Digest) -> Hasher {
        Hasher::with(expected.kind())
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.sha {
            Sha::Sha256(h) => h.update(data),
            Sha::Sha512(h) => h.update(data),
        }
        self.len += data.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        let text = match self.sha {
            Sha::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Sha::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        Digest { text }
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
    fn sha512_is_computed_and_unknown_algorithms_are_named() {
        let d = Digest::of(Algorithm::Sha512, b"{}");
        assert_eq!(d.algorithm(), "sha512");
        assert_eq!(d.hex().len(), 128);
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(d.recompute(b"{}"), d);
        assert_ne!(d.recompute(b"{ }"), d);
        let mut h = Hasher::for_digest(&d);
        h.update(b"{");
        h.update(b"}");
        assert_eq!(h.finish(), d);
        let e = Digest::parse("blake3:0123").unwrap_err().to_string();
        assert!(
            e.starts_with("unsupported digest algorithm \"blake3\""),
            "{e}"
        );
        let e = Digest::parse("sha512:abc").unwrap_err().to_string();
        assert!(e.starts_with("invalid digest sha512:abc"), "{e}");
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
