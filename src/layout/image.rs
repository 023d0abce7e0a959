//! A local image as push and extract read it, whatever its source: the manifest's exact bytes
//! and a [`BlobSource`] that streams any blob by digest. Each source form (`source` for layouts
//! and oci-archives, `docker_archive` for `docker save` tarballs) builds one.

use std::io::Read;
use std::sync::Arc;

use super::Error;
use crate::oci::{Descriptor, Digest};

/// The blobs of a local image, by digest. Readers fail at EOF (`InvalidData`, carrying
/// [`Error::DigestMismatch`] / [`Error::SizeMismatch`], see [`Error::downcast_io`]) when the
/// content does not match its digest.
pub trait BlobSource: Send + Sync {
    fn open(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error>;
    /// For an upload to a registry, which checks every blob against its digest itself (the
    /// distribution spec requires it, and refuses a mismatch): a content-addressed source skips
    /// hashing the bytes a second time here, the larger part of a push's CPU. Nothing is lost: on
    /// a refusal, [`BlobSource::open`] tells whether the local copy is the corrupt one.
    fn open_for_upload(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        self.open(d)
    }
    /// The blob's size, when the source holds it.
    fn size(&self, d: &Digest) -> Option<u64>;
}

/// One image read from a local source.
pub struct LocalImage {
    /// The name it was chosen by, or its only name: a layout's ref name (a tag), a `docker save`
    /// RepoTag (`repo:tag`), or Docker ≥ 25's full image name.
    pub name: Option<String>,
    /// The manifest (or, for a multi-platform image, the index) as the source's index lists it,
    /// annotations included; its children are reachable through `blobs`.
    pub manifest: Descriptor,
    /// The manifest's exact bytes (their digest is `manifest.digest`).
    pub manifest_bytes: Vec<u8>,
    pub blobs: Arc<dyn BlobSource>,
}

impl std::fmt::Debug for LocalImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalImage")
            .field("name", &self.name)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}
