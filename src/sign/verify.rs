//! One image's signatures against one requirement: the checks containers/image makes for a
//! `sigstoreSigned` requirement (`signature/policy_eval_sigstore.go`), in its order.
//!
//! A signature is accepted when the base64 signature in its layer's annotation verifies over the
//! layer's exact bytes with one of the keys, the payload says the image's manifest digest, and
//! the identity it names satisfies `signedIdentity`. One accepted signature is enough; layers of
//! another media type are not signatures and are skipped. No transparency log is consulted: the
//! tool runs air-gapped, and reports say so.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::identity::{DockerRef, SignedIdentity};
use super::key::PublicKey;
use super::payload::{self, MEDIA_TYPE, SIGNATURE_ANNOTATION};
use crate::oci::Digest;

/// One layer of a `.sig` manifest, its bytes already read (bounded, digest checked).
#[derive(Debug, Clone)]
pub struct Signature {
    pub media_type: String,
    pub annotations: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// The image whose signatures are checked.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The manifest (or index) digest the payload must name.
    pub digest: &'a Digest,
    /// The reference the image is known by, for `signedIdentity`; `None` when it has none.
    pub identity: Option<&'a DockerRef>,
}

/// Checks one signature; the error is the reason it is not accepted.
pub fn check_one(
    keys: &[PublicKey],
    rule: &SignedIdentity,
    subject: Subject<'_>,
    sig: &Signature,
) -> Result<String, String> {
    let encoded = sig
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("signature layer has no {SIGNATURE_ANNOTATION} annotation"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the signature annotation is not base64".to_string())?;
    let key = keys
        .iter()
        .find(|k| k.verify(&sig.payload, &raw))
        .ok_or("the signature does not verify with the given key (wrong key or altered payload)")?;
    let claims = payload::parse(&sig.payload)?;
    let signed = Digest::parse(&claims.manifest_digest)
        .map_err(|_| "the payload names no valid manifest digest".to_string())?;
    if &signed != subject.digest {
        return Err(format!(
            "the signature is for {signed}, not for this image ({})",
            subject.digest
        ));
    }
    if !rule.matches(subject.identity, &claims.docker_reference) {
        return Err(format!(
            "signed identity {} does not match {} ({})",
            crate::text::escape(&claims.docker_reference),
            subject
                .identity
                .map_or("an image without a registry reference".to_string(), |i| i
                    .to_string()),
            rule.name()
        ));
    }
    let unchecked = match rule {
        SignedIdentity::AnyIdentity => {
            " (name not checked with --key, as cosign; --policy checks it)"
        }
        _ => "",
    };
    Ok(format!(
        "signed by the {} key as {}{unchecked}",
        key.kind(),
        crate::text::escape(&claims.docker_reference)
    ))
}

/// Checks every signature layer until one is accepted: `Ok` with its description, else the first
/// reason (or "no signature").
pub fn check_any(
    keys: &[PublicKey],
    rule: &SignedIdentity,
    subject: Subject<'_>,
    sigs: &[Signature],
) -> Result<String, String> {
    let mut first = None;
    for sig in sigs.iter().filter(|s| s.media_type == MEDIA_TYPE) {
        match check_one(keys, rule, subject, sig) {
            Ok(how) => return Ok(how),
            Err(why) => {
                first.get_or_insert(why);
            }
        }
    }
    Err(first.unwrap_or_else(|| "no signature: a signature is required".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::key::tests::p256;
    use crate::sign::payload::tests::payload_for;

    fn signed(key: &crate::sign::key::tests::TestKey, payload: Vec<u8>) -> Signature {
        let sig = base64::engine::general_purpose::STANDARD.encode((key.sign)(&payload));
        Signature {
            media_type: MEDIA_TYPE.into(),
            annotations: [(SIGNATURE_ANNOTATION.to_string(), sig)]
                .into_iter()
                .collect(),
            payload,
        }
    }

    #[test]
    fn the_cases_of_the_issue() {
        let key = p256();
        let public = vec![PublicKey::from_pem(key.public_pem.as_bytes(), "k").unwrap()];
        let other = vec![PublicKey::from_pem(p256().public_pem.as_bytes(), "k").unwrap()];
        let digest = Digest::sha256_of(b"manifest");
        let another = Digest::sha256_of(b"another");
        let me = DockerRef::parse("reg.io/p/app:1").unwrap();
        let subject = Subject {
            digest: &digest,
            identity: Some(&me),
        };
        let rule = SignedIdentity::default();
        let good = signed(&key, payload_for(&digest.to_string(), "reg.io/p/app:1"));

        assert!(check_any(&public, &rule, subject, std::slice::from_ref(&good)).is_ok());
        let e = check_any(&other, &rule, subject, std::slice::from_ref(&good)).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");

        let mut tampered = good.clone();
        tampered.payload = payload_for(&another.to_string(), "reg.io/p/app:1");
        let e = check_any(&public, &rule, subject, &[tampered]).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");

        let elsewhere = signed(&key, payload_for(&another.to_string(), "reg.io/p/app:1"));
        let e = check_any(&public, &rule, subject, &[elsewhere]).unwrap_err();
        assert!(
            e.contains(&format!("the signature is for {another}")),
            "{e}"
        );

        let renamed = signed(&key, payload_for(&digest.to_string(), "reg.io/p/evil:1"));
        let e = check_any(&public, &rule, subject, std::slice::from_ref(&renamed)).unwrap_err();
        assert!(
            e.contains("signed identity reg.io/p/evil:1 does not match"),
            "{e}"
        );

        let e = check_any(&public, &rule, subject, &[]).unwrap_err();
        assert!(e.starts_with("no signature"), "{e}");

        // One good signature among bad ones is enough; other media types are not signatures.
        let mut not_a_sig = good.clone();
        not_a_sig.media_type = "application/octet-stream".into();
        assert!(check_any(&public, &rule, subject, &[renamed.clone(), good.clone()]).is_ok());
        assert!(check_any(&public, &rule, subject, &[not_a_sig])
            .unwrap_err()
            .starts_with("no signature"));

        let mut no_annotation = good;
        no_annotation.annotations.clear();
        let e = check_any(&public, &rule, subject, &[no_annotation]).unwrap_err();
        assert!(
            e.contains("no dev.cosignproject.cosign/signature annotation"),
            "{e}"
        );
    }
}
