//! Which layers push compresses, into which media type, and the manifests that then name them.
//!
//! Like `skopeo copy` to a registry, push compresses the layers a manifest lists as plain tar
//! (every layer of a `docker save` tarball; Docker ≥ 25 writes its OCI layout the same way) and
//! leaves the others as they are. The new descriptor keeps the manifest's family (OCI types in an
//! OCI manifest, Docker types in a Docker schema 2 one), so one manifest never mixes the two; the
//! config, and its `rootfs.diff_ids` (the digests of the uncompressed tars), stay untouched.
//!
//! Rewritten manifests change only the `mediaType`, `digest` and `size` of the layers concerned
//! (and an index only its children's `digest` and `size`); every other field, and the key order,
//! stay. The bytes depend on the input only, so the same source always gives the same digests.

use std::collections::HashMap;

use serde_json::Value;

use super::compress::Codec;
use crate::oci::{Digest, DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};

/// Docker schema 2's type for an uncompressed layer (what `docker save` layers are).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How push stores layers the source holds uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// As they are (the manifest keeps its digest).
    None,
    #[default]
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub(crate) fn codec(self) -> Option<Codec> {
        match self {
            LayerCompression::None => None,
            LayerCompression::Gzip => Some(Codec::Gzip),
            LayerCompression::Zstd => Some(Codec::Zstd),
        }
    }

    /// The media type a layer of `media_type` is pushed as: `Ok(None)` when it stays as it is
    /// (already compressed, foreign, not a layer, or compression off). Docker schema 2 has no zstd
    /// type, so a Docker plain-tar layer cannot go up as zstd (`Err`).
    pub(crate) fn target(self, media_type: &str) -> Result<Option<&'static str>, ()> {
        Ok(match (self, media_type) {
            (LayerCompression::None, _) => None,
            (LayerCompression::Gzip, OCI_LAYER_TAR) => Some(OCI_LAYER_GZIP),
            (LayerCompression::Zstd, OCI_LAYER_TAR) => Some(OCI_LAYER_ZSTD),
            (LayerCompression::Gzip, DOCKER_LAYER_TAR) => Some(DOCKER_LAYER_GZIP),
            (LayerCompression::Zstd, DOCKER_LAYER_TAR) => return Err(()),
            _ => None,
        })
    }
}

/// What an uncompressed blob became: its compressed digest and size.
pub type Converted = HashMap<Digest, (Digest, u64)>;

fn parse_digest(v: &Value) -> Option<Digest> {
    v.get("digest")
        .and_then(Value::as_str)
        .and_then(|s| Digest::parse(s).ok())
}

/// `manifest` (an image manifest's bytes) with the layers in `converted` renamed to their
/// compressed blobs; `None` when none of its layers changed (its bytes then stay exact).
pub fn rewrite_manifest(
    manifest: &[u8],
    compression: LayerCompression,
    converted: &Converted,
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let mut doc: Value = serde_json::from_slice(manifest)?;
    let mut changed = false;
    if let Some(layers) = doc.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers {
            let Some(media_type) = layer.get("mediaType").and_then(Value::as_str) else {
                continue;
            };
            let Ok(Some(target)) = compression.target(media_type) else {
                continue;
            };
            let Some((digest, size)) = parse_digest(layer).and_then(|d| converted.get(&d)) else {
                continue;
            };
            layer["mediaType"] = Value::from(target);
            layer["digest"] = Value::from(digest.to_string());
            layer["size"] = Value::from(*size);
            changed = true;
        }
    }
    changed.then(|| serde_json::to_vec(&doc)).transpose()
}

/// `index` (an index's bytes) pointing at rewritten children: `children` maps a child's old
/// digest to its new digest and size. `None` when no child changed.
pub fn rewrite_index(
    index: &[u8],
    children: &Converted,
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let mut doc: Value = serde_json::from_slice(index)?;
    let mut changed = false;
    if let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
        for child in manifests {
            if let Some((digest, size)) = parse_digest(child).and_then(|d| children.get(&d)) {
                child["digest"] = Value::from(digest.to_string());
                child["size"] = Value::from(*size);
                changed = true;
            }
        }
    }
    changed.then(|| serde_json::to_vec(&doc)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::OCI_CONFIG;

    fn d(s: &str) -> Digest {
        Digest::sha256_of(s.as_bytes())
    }

    #[test]
    fn targets_keep_the_manifest_family() {
        use LayerCompression::*;
        assert_eq!(Gzip.target(OCI_LAYER_TAR), Ok(Some(OCI_LAYER_GZIP)));
        assert_eq!(Zstd.target(OCI_LAYER_TAR), Ok(Some(OCI_LAYER_ZSTD)));
        assert_eq!(Gzip.target(DOCKER_LAYER_TAR), Ok(Some(DOCKER_LAYER_GZIP)));
        assert_eq!(Zstd.target(DOCKER_LAYER_TAR), Err(()));
        assert_eq!(None.target(OCI_LAYER_TAR), Ok(Option::None));
        for kept in [
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            DOCKER_LAYER_GZIP,
            OCI_CONFIG,
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
        ] {
            assert_eq!(Gzip.target(kept), Ok(Option::None), "{kept}");
        }
    }

    #[test]
    fn manifest_rewrite_touches_only_converted_layers() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{OCI_CONFIG}","digest":"{c}","size":2}},"layers":[{{"mediaType":"{OCI_LAYER_TAR}","digest":"{a}","size":10,"annotations":{{"k":"v"}}}},{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{b}","size":5}}],"annotations":{{"z":"1","a":"2"}}}}"#,
            c = d("c"),
            a = d("a"),
            b = d("b"),
        );
        let converted = Converted::from([(d("a"), (d("A"), 3))]);
        let out = rewrite_manifest(manifest.as_bytes(), LayerCompression::Gzip, &converted)
            .unwrap()
            .unwrap();
        let expected = manifest
            .replacen(
                &format!(
                    r#""mediaType":"{OCI_LAYER_TAR}","digest":"{}","size":10"#,
                    d("a")
                ),
                &format!(
                    r#""mediaType":"{OCI_LAYER_GZIP}","digest":"{}","size":3"#,
                    d("A")
                ),
                1,
            )
            .into_bytes();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        assert_eq!(
            rewrite_manifest(
                manifest.as_bytes(),
                LayerCompression::Gzip,
                &Converted::new()
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn index_rewrite_renames_changed_children() {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{a}","size":1,"platform":{{"os":"linux"}}}},{{"mediaType":"m","digest":"{b}","size":2}}]}}"#,
            a = d("a"),
            b = d("b"),
        );
        let out = rewrite_index(index.as_bytes(), &Converted::from([(d("b"), (d("B"), 7))]))
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["manifests"][0]["digest"], d("a").to_string());
        assert_eq!(v["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(v["manifests"][1]["digest"], d("B").to_string());
        assert_eq!(v["manifests"][1]["size"], 7);
    }
}
