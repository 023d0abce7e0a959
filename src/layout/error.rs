//! The one error type of local image storage. Every variant names the file, archive or image it
//! is about and says what to do; `Read` implementations of this module can only return
//! `io::Error`, so they wrap these variants (see [`Error::downcast_io`]).

use std::io;
use std::path::{Path, PathBuf};

use crate::oci::{self, Digest};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "{path} exists and is not empty: pull into a new or empty directory (nothing was changed)"
    )]
    NotEmpty { path: PathBuf },
    #[error("{path} exists and is not a directory: pull into a new or empty directory (nothing was changed)")]
    NotADirectory { path: PathBuf },
    #[error("{path} holds an interrupted pull of {source_ref:?}: pull that reference again to resume it, or use another directory (nothing was changed)")]
    OtherPull { path: PathBuf, source_ref: String },
    #[error("{path} holds an interrupted pull of {source_ref:?} (no index.json yet): pull it again to finish it")]
    IncompletePull { path: PathBuf, source_ref: String },
    #[error(
        "{path} {reason}: refusing to resume from it; remove it or pull into a fresh directory"
    )]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: content has digest {actual}, expected {expected}; it is corrupt or was changed: delete it and fetch or save the image again")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        path: PathBuf,
    },
    #[error("{path}: content of {digest} is {actual} bytes, expected {expected}; it is corrupt or was changed: delete it and fetch or save the image again")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
        path: PathBuf,
    },
    #[error("{path}: blob {digest} is {size} bytes, over the {limit}-byte limit for a manifest, index or config; this is not an image")]
    TooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
        path: PathBuf,
    },
    #[error(
        "blob {digest} is missing from {path}: the image is incomplete; pull or save it again"
    )]
    MissingBlob { digest: Digest, path: PathBuf },
    #[error("another process is writing {path}: wait for it to finish (or stop it) and retry")]
    Busy { path: PathBuf },
    #[error("no image named {name:?} here; available: {}", list(available))]
    NoSuchImage {
        name: String,
        available: Vec<String>,
    },
    #[error("several images here; choose one by name: {}", list(available))]
    Ambiguous { available: Vec<String> },
    #[error("{path} holds no image")]
    NoImages { path: PathBuf },
    #[error("invalid image name {name:?} in an OCI layout: use letters and digits joined by . _ - : @ + / (e.g. v1.2)")]
    InvalidRefName { name: String },
    #[error(transparent)]
    Parse(#[from] oci::ParseError),
    #[error("{path}: manifest {digest} is invalid: {source}")]
    Manifest {
        path: PathBuf,
        digest: Digest,
        #[source]
        source: oci::ParseError,
    },
    #[error("{path} is not a usable image archive: {reason}")]
    InvalidArchive { path: PathBuf, reason: String },
    #[error("{path} is {format}-compressed: decompress it first (`{command} {path} > image.tar`) and push image.tar")]
    Compressed {
        path: PathBuf,
        format: &'static str,
        command: &'static str,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        // Ref names come from the layout's index.json: control characters made visible.
        names
            .iter()
            .map(|n| crate::text::escape(n).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Error {
    /// The layout error carried by an I/O error from a reader of this module (a [`BlobSource`](super::BlobSource)
    /// reader fails at EOF with [`Error::DigestMismatch`] or [`Error::SizeMismatch`] inside an
    /// `io::Error` of kind `InvalidData`, since `Read` can only return `io::Error`).
    pub fn downcast_io(e: &io::Error) -> Option<&Error> {
        e.get_ref()?.downcast_ref::<Error>()
    }

    pub(crate) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
