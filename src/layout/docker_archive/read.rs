//! Reading legacy `docker save` archives. They carry no registry manifest, so one is synthesised:
//! an OCI image manifest whose config is the config file's bytes and whose layers are the layer
//! tars as they are, `application/vnd.oci.image.layer.v1.tar` with digest = `rootfs.diff_ids[i]`
//! (a diff_id *is* the sha256 of the uncompressed layer). No layer is hashed up front — reads
//! verify it — except one some tool stored gzip- or zstd-compressed: its digest is not a diff_id,
//! so it is hashed once here and typed by its compression.
//!
//! The manifest is serialised from a fixed struct (`oci::Manifest`, fields in declaration order,
//! no maps with unordered keys), so the same archive always yields the same manifest digest and a
//! re-push is a no-op for the registry.
//!
//! The layers stay plain tars here (extract reads them so, and `push --compression none` pushes
//! this manifest as it is); push compresses them on the way, as docker and skopeo do, and names
//! the compressed blobs in the manifest it uploads (`ops::push::convert`).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use crate::bounded;
use crate::layout::image::{BlobSource, LocalImage};
use crate::layout::refname::{self, Candidate};
use crate::layout::tar_index::TarFile;
use crate::layout::verify::VerifyingReader;
use crate::layout::Error;
use crate::oci::digest::Hasher;
use crate::oci::{
    Descriptor, Digest, ImageConfig, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
};

use super::{ManifestEntry, MANIFEST_JSON};

/// Parses `manifest.json`.
fn parse_manifest_json(bytes: &[u8]) -> Result<Vec<ManifestEntry>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest.json: {e}"))
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        urls: None,
        annotations: None,
        platform: None,
        artifact_type: None,
    }
}

/// The synthesised manifest's bytes: deterministic for the same config and layers.
fn synthesize(config: Descriptor, layers: Vec<Descriptor>) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: None,
        extra: Default::default(),
    })
}

/// Opens the image `name` (a RepoTag; `None` when the archive holds one image) of the archive
/// `tar`, with a synthesised manifest.
pub(crate) fn open(tar: TarFile, name: Option<&str>) -> Result<LocalImage, Error> {
    let invalid = |reason: String| Error::InvalidArchive {
        path: tar.path().to_path_buf(),
        reason,
    };
    let (image_name, entry) = choose(&tar, name)?;
    let config_bytes = tar.read_small(&entry.config, bounded::CONFIG)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("invalid image config {}: {e}", entry.config)))?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != entry.layers.len() {
        return Err(invalid(format!(
            "config {} lists {} diff_ids for {} layers",
            entry.config,
            diff_ids.len(),
            entry.layers.len()
        )));
    }
    let config_desc = descriptor(
        OCI_CONFIG,
        Digest::sha256_of(&config_bytes),
        config_bytes.len() as u64,
    );
    let (layers, ranges) = locate_layers(&tar, &entry.layers, diff_ids)?;
    let manifest_bytes = synthesize(config_desc.clone(), layers)
        .map_err(|e| invalid(format!("cannot serialise the manifest: {e}")))?;
    let manifest = descriptor(
        OCI_MANIFEST,
        Digest::sha256_of(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    let memory = HashMap::from([
        (manifest.digest.clone(), Arc::from(manifest_bytes.clone())),
        (config_desc.digest, Arc::from(config_bytes)),
    ]);
    Ok(LocalImage {
        name: image_name,
        manifest,
        manifest_bytes,
        blobs: Arc::new(MemoryBlobs {
            memory,
            rest: LayerBlobs { tar, ranges },
        }),
    })
}

/// The entry of `manifest.json` named `name` (or the only one), and the name it goes by.
fn choose(tar: &TarFile, name: Option<&str>) -> Result<(Option<String>, ManifestEntry), Error> {
    let entries =
        parse_manifest_json(&tar.read_small(MANIFEST_JSON, bounded::STATE)?).map_err(|reason| {
            Error::InvalidArchive {
                path: tar.path().to_path_buf(),
                reason,
            }
        })?;
    let candidates = entries
        .into_iter()
        .map(|e| {
            let names = e.repo_tags.clone().unwrap_or_default();
            let label = match names.first() {
                Some(n) => n.clone(),
                None => format!("untagged image {}", e.config),
            };
            Candidate {
                names,
                label,
                item: e,
            }
        })
        .collect();
    refname::choose(candidates, name, tar.path())
}

/// Each layer's descriptor in the synthesised manifest, and where its bytes lie in the tar.
fn locate_layers(
    tar: &TarFile,
    names: &[String],
    diff_ids: &[Digest],
) -> Result<(Vec<Descriptor>, Ranges), Error> {
    let mut layers = Vec::with_capacity(names.len());
    let mut ranges = HashMap::new();
    for (layer, diff_id) in names.iter().zip(diff_ids) {
        let (offset, size) = tar.require(layer)?;
        let (media_type, digest) = match layer_compression(tar, offset, size)? {
            None => (OCI_LAYER_TAR, diff_id.clone()),
            Some(media_type) => (media_type, hash_range(tar, offset, size)?),
        };
        ranges.insert(digest.clone(), (layer.clone(), offset, size));
        layers.push(descriptor(media_type, digest, size));
    }
    Ok((layers, ranges))
}

/// The media type of a layer stored compressed in the archive, `None` for a plain tar.
fn layer_compression(tar: &TarFile, offset: u64, size: u64) -> Result<Option<&'static str>, Error> {
    let mut magic = Vec::with_capacity(4);
    tar.open_range(offset, size.min(4))?
        .read_to_end(&mut magic)
        .map_err(Error::io("read", tar.path()))?;
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => Some(OCI_LAYER_GZIP),
        [0x28, 0xb5, 0x2f, 0xfd] => Some(OCI_LAYER_ZSTD),
        _ => None,
    })
}

/// The sha256 of `size` bytes at `offset`, streamed.
fn hash_range(tar: &TarFile, offset: u64, size: u64) -> Result<Digest, Error> {
    let mut reader = tar.open_range(offset, size)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", tar.path())(e)),
        };
        hasher.update(&buf[..n]);
    }
    if hasher.len() != size {
        return Err(Error::InvalidArchive {
            path: tar.path().to_path_buf(),
            reason: "it is truncated".into(),
        });
    }
    Ok(hasher.finish())
}

/// digest → (entry name, offset, size)
type Ranges = HashMap<Digest, (String, u64, u64)>;

/// The layer tars of a docker-archive, by the digest the synthesised manifest gives them.
struct LayerBlobs {
    tar: TarFile,
    ranges: Ranges,
}
impl BlobSource for LayerBlobs {
    fn open(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        let (name, offset, size) = self.ranges.get(d).ok_or_else(|| Error::MissingBlob {
            digest: d.clone(),
            path: self.tar.path().to_path_buf(),
        })?;
        let reader = self.tar.open_range(*offset, *size)?;
        Ok(Box::new(VerifyingReader::new(
            reader,
            d.clone(),
            Some(*size),
            self.tar.entry_path(name),
        )))
    }

    fn open_for_upload(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        let (_, offset, size) = self.ranges.get(d).ok_or_else(|| Error::MissingBlob {
            digest: d.clone(),
            path: self.tar.path().to_path_buf(),
        })?;
        Ok(Box::new(self.tar.open_range(*offset, *size)?))
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        self.ranges.get(d).map(|(_, _, size)| *size)
    }
}

/// Blobs served from memory (a synthesised manifest, a config) in front of another source.
struct MemoryBlobs<S> {
    memory: HashMap<Digest, Arc<[u8]>>,
    rest: S,
}

impl<S: BlobSource> BlobSource for MemoryBlobs<S> {
    fn open(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        match self.memory.get(d) {
            Some(bytes) => Ok(Box::new(io::Cursor::new(Arc::clone(bytes)))),
            None => self.rest.open(d),
        }
    }

    fn open_for_upload(&self, d: &Digest) -> Result<Box<dyn Read + Send>, Error> {
        match self.memory.get(d) {
            Some(bytes) => Ok(Box::new(io::Cursor::new(Arc::clone(bytes)))),
            None => self.rest.open_for_upload(d),
        }
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        match self.memory.get(d) {
            Some(bytes) => Some(bytes.len() as u64),
            None => self.rest.size(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_forms() {
        let m = parse_manifest_json(
            br#"[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar"]},
                 {"Config":"d.json","RepoTags":["x:1"],"Layers":[],"LayerSources":{}}]"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].repo_tags.is_none());
        assert_eq!(m[1].repo_tags.as_deref(), Some(&["x:1".to_string()][..]));
        assert!(parse_manifest_json(b"{}").is_err());
    }

    #[test]
    fn synthesised_manifest_is_stable_and_parses() {
        let config = descriptor(OCI_CONFIG, Digest::sha256_of(b"{}"), 2);
        let layer = descriptor(OCI_LAYER_TAR, Digest::sha256_of(b"l"), 1);
        let a = synthesize(config.clone(), vec![layer.clone()]).unwrap();
        let b = synthesize(config, vec![layer]).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"#
        ));
        assert!(matches!(
            crate::oci::AnyManifest::parse(None, &a).unwrap(),
            crate::oci::AnyManifest::Image(m) if m.layers.len() == 1
        ));
    }
}
