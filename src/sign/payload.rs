//! Cosign's "simple signing" payload: the JSON document a signature covers, stored as a layer of
//! the `sha256-<hex>.sig` manifest. Read as strictly as containers/image reads it
//! (`signature/internal/sigstore_payload.go`): unknown or duplicate keys, a missing field or a
//! wrong `type` refuse the payload, so a signature is never taken to mean more than it says.

use serde::Deserialize;

/// The media type of a signature layer (cosign, containers/image `SigstoreSignatureMIMEType`).
pub const MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the layer's bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The one `critical.type` cosign and containers/image write.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    critical: Critical,
    // Free-form (creator, timestamp, cosign's annotations); signed but never interpreted.
    #[serde(default)]
    #[allow(dead_code)]
    optional: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    identity: Identity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

/// What a verified payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.image.docker-manifest-digest`: the manifest the signature is for.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`: the name it was signed under.
    pub docker_reference: String,
}

/// Parses a payload; the error is a one-line reason.
pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid signature payload: {e}"))?;
    if doc.critical.kind != PAYLOAD_TYPE {
        return Err(format!(
            "signature payload type {:?} is not {PAYLOAD_TYPE:?}",
            crate::text::escape(&doc.critical.kind)
        ));
    }
    Ok(Payload {
        manifest_digest: doc.critical.image.docker_manifest_digest,
        docker_reference: doc.critical.identity.docker_reference,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A payload as cosign and skopeo write it.
    pub(crate) fn payload_for(digest: &str, reference: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{PAYLOAD_TYPE}"}},"optional":{{"creator":"test"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn reads_what_cosign_writes() {
        let p = parse(&payload_for("sha256:ab", "r.io/a:1")).unwrap();
        assert_eq!(p.manifest_digest, "sha256:ab");
        assert_eq!(p.docker_reference, "r.io/a:1");
        let no_optional = r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"cosign container image signature"}}"#;
        assert!(parse(no_optional.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_anything_looser() {
        let t = PAYLOAD_TYPE;
        for bad in [
            r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"other"}}"#.to_string(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"d"}},"type":"{t}","x":1}}}}"#
            ),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{}},"type":"{t}"}}}}"#
            ),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"d","docker-manifest-digest":"e"}},"type":"{t}"}}}}"#
            ),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"d"}},"type":"{t}"}},"extra":1}}"#
            ),
            "not json".to_string(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
