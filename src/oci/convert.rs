//! Docker schema 2 → OCI, for writing pulled images into an OCI layout: skopeo, podman and umoci
//! look up only OCI media types in a layout's `index.json` (skopeo copy converts the same way).
//!
//! Only media types change; every other field and the key order stay, and blobs (configs, layers)
//! keep their bytes and digests. The manifest's own digest changes, since its bytes do.

use std::collections::HashMap;

use serde_json::Value;

use super::*;

fn oci_media_type(docker: &str) -> Option<&'static str> {
    Some(match docker {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_MANIFEST_LIST => OCI_INDEX,
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER_TAR,
        DOCKER_LAYER_FOREIGN_GZIP => OCI_LAYER_NONDIST_GZIP,
        _ => return None,
    })
}

fn retype(obj: &mut Value) {
    if let Some(mt) = obj.get("mediaType").and_then(Value::as_str) {
        if let Some(new) = oci_media_type(mt) {
            obj["mediaType"] = Value::String(new.to_string());
        }
    }
}

fn parse_value(bytes: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(bytes).map_err(|source| ParseError::Json {
        what: "manifest",
        source,
    })
}

/// The OCI form of a Docker image manifest, or `None` when it is not one.
pub fn manifest_to_oci(bytes: &[u8]) -> Result<Option<Vec<u8>>, ParseError> {
    let mut v = parse_value(bytes)?;
    if v.get("mediaType").and_then(Value::as_str) != Some(DOCKER_MANIFEST) {
        return Ok(None);
    }
    retype(&mut v);
    if let Some(config) = v.get_mut("config") {
        retype(config);
    }
    if let Some(Value::Array(layers)) = v.get_mut("layers") {
        layers.iter_mut().for_each(retype);
    }
    Ok(Some(serde_json::to_vec(&v).expect("JSON serializes")))
}

/// The OCI form of an index whose children were converted (`converted`: old digest → new
/// digest and size): a Docker manifest list becomes an OCI index, and in either kind every
/// converted child is re-pointed at its new manifest, so the index names only what the layout
/// holds. skopeo `copy --all` to an `oci:` layout does the same (containers/image edits the
/// instances of the list after converting them). `None` when nothing changes: the index keeps
/// its bytes and digest.
pub fn list_to_oci(
    bytes: &[u8],
    converted: &HashMap<Digest, (Digest, u64)>,
) -> Result<Option<Vec<u8>>, ParseError> {
    let mut v = parse_value(bytes)?;
    let mut changed = v.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST_LIST);
    if changed {
        retype(&mut v);
    }
    if let Some(Value::Array(children)) = v.get_mut("manifests") {
        for child in children {
            let old = child
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok());
            if let Some((digest, size)) = old.and_then(|d| converted.get(&d)) {
                child["digest"] = Value::String(digest.to_string());
                child["size"] = Value::from(*size);
                retype(child);
                changed = true;
            }
        }
    }
    Ok(changed.then(|| serde_json::to_vec(&v).expect("JSON serializes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_manifest_becomes_oci() {
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":2,"digest":"{d}"}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":3,"digest":"{d}"}}]}}"#
        );
        let oci = manifest_to_oci(docker.as_bytes()).unwrap().unwrap();
        let m: Manifest = serde_json::from_slice(&oci).unwrap();
        assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(m.config.media_type, OCI_CONFIG);
        assert_eq!(m.layers[0].media_type, OCI_LAYER_GZIP);
        assert_eq!(
            m.layers[0].digest.to_string(),
            d,
            "blobs keep their digests"
        );
        assert!(
            manifest_to_oci(&oci).unwrap().is_none(),
            "OCI stays as it is"
        );

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","size":9,"digest":"{d}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let new = Digest::sha256_of(&oci);
        let map = HashMap::from([(Digest::parse(d).unwrap(), (new.clone(), oci.len() as u64))]);
        let index: Index =
            serde_json::from_slice(&list_to_oci(list.as_bytes(), &map).unwrap().unwrap()).unwrap();
        assert_eq!(index.media_type.as_deref(), Some(OCI_INDEX));
        assert_eq!(index.manifests[0].digest, new);
        assert_eq!(index.manifests[0].media_type, OCI_MANIFEST);
        assert!(index.manifests[0].platform.is_some());

        // An OCI index with a Docker child: same re-pointing, the index stays OCI.
        let mixed = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","size":9,"digest":"{d}"}}]}}"#
        );
        let index: Index =
            serde_json::from_slice(&list_to_oci(mixed.as_bytes(), &map).unwrap().unwrap()).unwrap();
        assert_eq!(index.manifests[0].digest, new);
        assert_eq!(index.manifests[0].media_type, OCI_MANIFEST);
        assert!(list_to_oci(mixed.as_bytes(), &HashMap::new())
            .unwrap()
            .is_none());
    }
}
