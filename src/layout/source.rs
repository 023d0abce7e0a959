//! What `push` reads: one image from a local SOURCE, whichever of the three forms it is — an OCI
//! layout directory, an oci-archive tarball (`skopeo copy … oci-archive:`) or a `docker save`
//! tarball (docker-archive) — as a [`LocalImage`]: the manifest's exact bytes plus a
//! [`BlobSource`] that streams any blob by digest.
//!
//! Tarballs are indexed once and read in place (see `tar_index`), never extracted; every blob
//! reader verifies size and digest at EOF, so corruption is reported with the file's name before
//! a registry rejects the upload.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use crate::oci::{AnyManifest, Descriptor, Digest, Index};

use super::image::{BlobSource, LocalImage};
use super::tar_index::TarFile;
use super::verify::{check_bytes, VerifyingReader};
use super::{check_layout_file, docker_archive, refname, Error, Layout};
use crate::bounded;

/// Opens the image `name` (a ref name, tag or RepoTag; `None` when the source holds one image) of
/// the local SOURCE at `path`:
/// - a directory with `oci-layout`: an OCI layout;
/// - a tar holding `oci-layout` and `index.json`: an oci-archive (this also covers Docker ≥ 25
///   `docker save`, which writes an OCI layout beside its `manifest.json`; the OCI index is
///   preferred then, as it carries the real manifests);
/// - a tar holding `manifest.json`: a legacy `docker save` archive, for which an OCI manifest is
///   synthesised (see `docker_archive`);
/// - a compressed file: refused, naming the command that decompresses it.
pub fn open_source(path: &Path, name: Option<&str>) -> Result<LocalImage, Error> {
    let meta = fs::metadata(path).map_err(Error::io("open", path))?;
    if meta.is_dir() {
        return open_layout(path, name);
    }
    if !meta.is_file() {
        return Err(Error::InvalidArchive {
            path: path.to_path_buf(),
            reason: "not a regular file or directory".into(),
        });
    }
    check_not_compressed(path)?;
    let tar = TarFile::open(path)?;
    if tar.contains("oci-layout") && tar.contains("index.json") {
        open_oci_archive(tar, name)
    } else if tar.contains("manifest.json") {
        docker_archive::open(tar, name)
    } else {
        Err(Error::InvalidArchive {
            path: path.to_path_buf(),
            reason: "it is neither an oci-archive (oci-layout, index.json) nor a `docker save` \
                     archive (manifest.json)"
                .into(),
        })
    }
}

/// Refuses compressed tarballs up front: scanning them as tar would only say "invalid header".
fn check_not_compressed(path: &Path) -> Result<(), Error> {
    let mut magic = [0u8; 6];
    let mut file = File::open(path).map_err(Error::io("open", path))?;
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path)(e)),
        }
    }
    let (format, command) = match &magic[..n] {
        [0x1f, 0x8b, ..] => ("gzip", "gunzip -c"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => ("zstd", "zstd -dc"),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => ("xz", "xz -dc"),
        [b'B', b'Z', b'h', ..] => ("bzip2", "bzip2 -dc"),
        _ => return Ok(()),
    };
    Err(Error::Compressed {
        path: path.to_path_buf(),
        format,
        command,
    })
}

/// Parses a manifest or index just read, so a source whose "manifest" is not one fails here.
fn check_manifest(desc: &Descriptor, bytes: &[u8], path: &Path) -> Result<(), Error> {
    AnyManifest::parse(Some(&desc.media_type), bytes)
        .map(drop)
        .map_err(|source| Error::Manifest {
            path: path.to_path_buf(),
            digest: desc.digest.clone(),
            source,
        })
}

fn open_layout(path: &Path, name: Option<&str>) -> Result<LocalImage, Error> {
    let layout = Layout::open(path)?;
    let (name, manifest) = layout.resolve_named(name)?;
    let manifest_bytes = layout.read_blob(&manifest, bounded::MANIFEST)?;
    check_manifest(&manifest, &manifest_bytes, path)?;
    Ok(LocalImage {
        name,
        manifest,
        manifest_bytes,
        blobs: Arc::new(LayoutBlobs { layout }),
    })
}

impl Layout {
    /// The layout's blobs as a [`BlobSource`], for a bundle load that sends many images of it.
    pub fn blob_source(&self) -> Arc<dyn BlobSource> {
        Arc::new(LayoutBlobs {
            layout: self.clone(),
        })
    }
}

/// Blobs of an OCI layout directory.
struct LayoutBlobs {
    layout: Layout,
}

impl BlobSource for LayoutBlobs {
    fn open(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        let file = self.layout.open_blob(d)?;
        let path = self.layout.blob_path(d);
        Ok(Box::new(VerifyingReader::new(file, d.clone(), None, path)))
    }

    fn open_for_upload(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        Ok(Box::new(self.layout.open_blob(d)?))
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.layout.blob_path(d))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }
}

fn open_oci_archive(tar: TarFile, name: Option<&str>) -> Result<LocalImage, Error> {
    let invalid = |reason: String| Error::InvalidArchive {
        path: tar.path().to_path_buf(),
        reason,
    };
    let layout_file = tar.read_small("oci-layout", 4096)?;
    check_layout_file(&layout_file).map_err(&invalid)?;
    let index: Index = serde_json::from_slice(&tar.read_small("index.json", bounded::STATE)?)
        .map_err(|e| invalid(format!("invalid index.json: {e}")))?;
    let (name, manifest) = refname::choose_in_index(index, name, tar.path())?;
    let blobs = ArchiveBlobs { tar };
    let manifest_bytes = blobs.read_small(&manifest, bounded::MANIFEST)?;
    check_manifest(&manifest, &manifest_bytes, blobs.tar.path())?;
    Ok(LocalImage {
        name,
        manifest,
        manifest_bytes,
        blobs: Arc::new(blobs),
    })
}

/// Blobs of an oci-archive: `blobs/<alg>/<hex>` entries read in place.
struct ArchiveBlobs {
    tar: TarFile,
}

impl ArchiveBlobs {
    fn entry_name(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm(), d.hex())
    }

    fn locate(&self, d: &Digest) -> Result<(u64, u64), Error> {
        self.tar
            .find(&Self::entry_name(d))?
            .ok_or_else(|| Error::MissingBlob {
                digest: d.clone(),
                path: self.tar.path().to_path_buf(),
            })
    }

    fn read_small(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, Error> {
        let path = self.tar.entry_path(&Self::entry_name(&desc.digest));
        if desc.size > limit {
            return Err(Error::TooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
                limit,
                path,
            });
        }
        let (offset, size) = self.locate(&desc.digest)?;
        let bytes = bounded::read(
            self.tar.open_range(offset, size)?,
            limit,
            &format!("blob {}", desc.digest),
        )
        .map_err(Error::io("read", self.tar.path()))?;
        check_bytes(&bytes, desc, &path)?;
        Ok(bytes)
    }
}

impl BlobSource for ArchiveBlobs {
    fn open(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        let (offset, size) = self.locate(d)?;
        let reader = self.tar.open_range(offset, size)?;
        let path = self.tar.entry_path(&Self::entry_name(d));
        Ok(Box::new(VerifyingReader::new(
            reader,
            d.clone(),
            Some(size),
            path,
        )))
    }

    fn open_for_upload(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        let (offset, size) = self.locate(d)?;
        Ok(Box::new(self.tar.open_range(offset, size)?))
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        self.locate(d).ok().map(|(_, size)| size)
    }
}
