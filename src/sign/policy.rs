//! containers `policy.json` (containers-policy.json(5)), the part that decides signatures for
//! registry images: `default` and `transports.docker` scopes, with the requirement types
//! `insecureAcceptAnything`, `reject` and `sigstoreSigned` (`keyPath`, `keyPaths`, `keyData`,
//! `signedIdentity`).
//!
//! A scope is looked up as containers/image does (`signature/policy_eval.go`,
//! `docker/policyconfiguration`): the image's full reference, then its repository and each
//! parent namespace up to the host, then `*.domain` wildcards of the host, then the transport's
//! `""` entry, then `default`: the longest matching prefix wins, and every requirement of the
//! chosen list must accept. Requirements this offline verifier cannot honour (GPG `signedBy`,
//! `signedBaseLayer`, Fulcio certificates, a Rekor log) are kept and refuse the images they
//! apply to with that reason, rather than being skipped.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use super::identity::{DockerRef, SignedIdentity};
use super::key::PublicKey;
use super::verify::{check_any, Signature, Subject};
use super::Error;

/// One requirement of a scope's list.
#[derive(Debug, Clone)]
pub enum Requirement {
    AcceptAnything,
    Reject,
    Sigstore {
        keys: Vec<PublicKey>,
        identity: SignedIdentity,
    },
    /// A requirement that cannot be checked here; it refuses with this reason.
    Unsupported(String),
}

/// A trust policy: from a policy.json, or a single key (`--key`).
#[derive(Debug, Clone)]
pub struct Policy {
    default: Vec<Requirement>,
    docker: BTreeMap<String, Vec<Requirement>>,
}

/// A verdict on one image: accepted or not, and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: bool,
    pub reason: String,
}

impl Policy {
    /// `--key FILE`: every image must carry a signature by this key over its manifest digest,
    /// under whatever name it was signed (as `cosign verify --key` checks; see
    /// [`SignedIdentity::AnyIdentity`]). Name rules need `--policy`.
    pub fn from_key(key: PublicKey) -> Policy {
        Policy {
            default: vec![Requirement::Sigstore {
                keys: vec![key],
                identity: SignedIdentity::AnyIdentity,
            }],
            docker: BTreeMap::new(),
        }
    }

    /// Parses a policy.json; `read` returns the content of a `keyPath` file.
    pub fn parse(
        json: &[u8],
        what: &str,
        read: &dyn Fn(&Path) -> Result<Vec<u8>, Error>,
    ) -> Result<Policy, Error> {
        let bad = |reason: String| Error::Policy {
            what: what.to_string(),
            reason,
        };
        let doc: Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let default = obj
            .get("default")
            .ok_or_else(|| bad("it has no \"default\" requirements".into()))?;
        let default = requirements(default, "default", &bad, read)?;
        let mut docker = BTreeMap::new();
        if let Some(scopes) = obj
            .get("transports")
            .and_then(|t| t.get("docker"))
            .and_then(Value::as_object)
        {
            for (scope, list) in scopes {
                let reqs =
                    requirements(list, &format!("transports.docker[{scope:?}]"), &bad, read)?;
                docker.insert(scope.clone(), reqs);
            }
        }
        Ok(Policy { default, docker })
    }

    /// The requirements for an image known as `identity` (none: an image with no registry
    /// reference, which only `default` covers).
    pub fn requirements_for(&self, identity: Option<&DockerRef>) -> &[Requirement] {
        let Some(image) = identity else {
            return &self.default;
        };
        let mut candidates = vec![image.to_string()];
        let mut name = image.name.as_str();
        candidates.push(name.to_string());
        while let Some((parent, _)) = name.rsplit_once('/') {
            candidates.push(parent.to_string());
            name = parent;
        }
        let mut host = name;
        while let Some((_, rest)) = host.split_once('.') {
            candidates.push(format!("*.{rest}"));
            host = rest;
        }
        candidates.push(String::new());
        candidates
            .iter()
            .find_map(|c| self.docker.get(c))
            .unwrap_or(&self.default)
    }

    /// Whether any of `reqs` looks at signatures (else they need not be fetched).
    pub fn needs_signatures(reqs: &[Requirement]) -> bool {
        reqs.iter()
            .any(|r| matches!(r, Requirement::Sigstore { .. }))
    }

    /// Every requirement must accept; the first refusal is the reason.
    pub fn evaluate(reqs: &[Requirement], subject: Subject<'_>, sigs: &[Signature]) -> Verdict {
        let mut reasons = Vec::new();
        for req in reqs {
            let outcome = match req {
                Requirement::AcceptAnything => {
                    Ok("accepted without a signature (insecureAcceptAnything)".to_string())
                }
                Requirement::Reject => Err("the policy rejects this image (reject)".to_string()),
                Requirement::Unsupported(why) => Err(why.clone()),
                Requirement::Sigstore { keys, identity } => {
                    check_any(keys, identity, subject, sigs)
                }
            };
            match outcome {
                Ok(how) => reasons.push(how),
                Err(why) => {
                    return Verdict {
                        accepted: false,
                        reason: why,
                    }
                }
            }
        }
        Verdict {
            accepted: !reqs.is_empty(),
            reason: if reqs.is_empty() {
                "the policy has no requirement for this image".into()
            } else {
                reasons.join("; ")
            },
        }
    }
}

fn requirements(
    list: &Value,
    at: &str,
    bad: &dyn Fn(String) -> Error,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, Error>,
) -> Result<Vec<Requirement>, Error> {
    let list = list
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad(format!("{at} must be a non-empty list of requirements")))?;
    list.iter().map(|r| requirement(r, at, bad, read)).collect()
}

fn requirement(
    r: &Value,
    at: &str,
    bad: &dyn Fn(String) -> Error,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, Error>,
) -> Result<Requirement, Error> {
    let kind = r.get("type").and_then(Value::as_str).unwrap_or_default();
    Ok(match kind {
        "insecureAcceptAnything" => Requirement::AcceptAnything,
        "reject" => Requirement::Reject,
        "signedBy" => Requirement::Unsupported(
            "the policy requires a GPG signature (signedBy), which this tool does not verify".into(),
        ),
        "signedBaseLayer" => Requirement::Unsupported(
            "the policy requires a signed base layer (signedBaseLayer), which this tool does not verify".into(),
        ),
        "sigstoreSigned" => sigstore(r, at, bad, read)?,
        other => {
            return Err(bad(format!(
                "{at}: unknown requirement type {:?}",
                crate::text::escape(other)
            )))
        }
    })
}

fn sigstore(
    r: &Value,
    at: &str,
    bad: &dyn Fn(String) -> Error,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, Error>,
) -> Result<Requirement, Error> {
    let obj = r.as_object().expect("has a type, so an object");
    if obj.contains_key("fulcio") {
        return Ok(Requirement::Unsupported(
            "the policy requires a Fulcio certificate (keyless signing), which cannot be checked offline".into(),
        ));
    }
    if obj.contains_key("rekorPublicKeyPath") || obj.contains_key("rekorPublicKeyData") {
        return Ok(Requirement::Unsupported(
            "the policy requires a Rekor transparency log entry, which is not checked offline"
                .into(),
        ));
    }
    let mut keys = Vec::new();
    let mut load = |pem: &[u8], what: &str| -> Result<(), Error> {
        keys.push(PublicKey::from_pem(pem, what)?);
        Ok(())
    };
    if let Some(p) = obj.get("keyPath").and_then(Value::as_str) {
        load(&read(Path::new(p))?, &format!("key file {p}"))?;
    }
    for p in obj
        .get("keyPaths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = p
            .as_str()
            .ok_or_else(|| bad(format!("{at}: keyPaths must hold strings")))?;
        load(&read(Path::new(p))?, &format!("key file {p}"))?;
    }
    if let Some(d) = obj.get("keyData").and_then(Value::as_str) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(d)
            .map_err(|_| bad(format!("{at}: keyData is not base64")))?;
        load(&pem, &format!("keyData of {at}"))?;
    }
    if keys.is_empty() {
        return Err(bad(format!(
            "{at}: a sigstoreSigned requirement needs keyPath, keyPaths or keyData"
        )));
    }
    let identity = match obj.get("signedIdentity") {
        None => SignedIdentity::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| bad(format!("{at}: signedIdentity: {e}")))?,
    };
    Ok(Requirement::Sigstore { keys, identity })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::key::tests::p256;

    fn parse(json: &str, key_pem: &str) -> Result<Policy, Error> {
        let pem = key_pem.to_string();
        Policy::parse(json.as_bytes(), "policy.json", &move |p: &Path| {
            assert_eq!(p, Path::new("/keys/k.pub"));
            Ok(pem.clone().into_bytes())
        })
    }

    fn kind(reqs: &[Requirement]) -> String {
        reqs.iter()
            .map(|r| match r {
                Requirement::AcceptAnything => "accept".to_string(),
                Requirement::Reject => "reject".to_string(),
                Requirement::Sigstore { identity, .. } => format!("sigstore/{}", identity.name()),
                Requirement::Unsupported(_) => "unsupported".to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn the_longest_matching_scope_wins() {
        let key = p256();
        let data = base64::engine::general_purpose::STANDARD.encode(&key.public_pem);
        let policy = parse(
            &format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{
                "reg.io":[{{"type":"insecureAcceptAnything"}}],
                "reg.io/p":[{{"type":"sigstoreSigned","keyPath":"/keys/k.pub"}}],
                "reg.io/p/app:1":[{{"type":"sigstoreSigned","keyData":"{data}","signedIdentity":{{"type":"matchRepository"}}}}],
                "*.example.com":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"/x"}}]
                }},"docker-daemon":{{"":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#
            ),
            &key.public_pem,
        )
        .unwrap();
        let of = |s: &str| kind(policy.requirements_for(Some(&DockerRef::parse(s).unwrap())));
        assert_eq!(of("reg.io/p/app:1"), "sigstore/matchRepository");
        assert_eq!(of("reg.io/p/app:2"), "sigstore/matchRepoDigestOrExact");
        assert_eq!(of("reg.io/p/deep/app:2"), "sigstore/matchRepoDigestOrExact");
        assert_eq!(of("reg.io/pp/app:1"), "accept");
        assert_eq!(of("a.b.example.com/x:1"), "unsupported");
        assert_eq!(of("other.io/x:1"), "reject");
        assert_eq!(kind(policy.requirements_for(None)), "reject");
    }

    #[test]
    fn every_requirement_must_accept() {
        let subject_digest = crate::oci::Digest::sha256_of(b"m");
        let subject = Subject {
            digest: &subject_digest,
            identity: None,
        };
        let v = Policy::evaluate(
            &[Requirement::AcceptAnything, Requirement::Reject],
            subject,
            &[],
        );
        assert!(!v.accepted);
        assert_eq!(v.reason, "the policy rejects this image (reject)");
        let v = Policy::evaluate(&[Requirement::AcceptAnything], subject, &[]);
        assert!(v.accepted, "{v:?}");
    }

    #[test]
    fn refuses_malformed_policies_with_the_place() {
        let key = p256();
        for (json, want) in [
            (r#"{"transports":{}}"#, "no \"default\""),
            (r#"{"default":[]}"#, "default must be a non-empty list"),
            (
                r#"{"default":[{"type":"nope"}]}"#,
                "unknown requirement type \"nope\"",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned"}]}"#,
                "needs keyPath, keyPaths or keyData",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyPath":"/keys/k.pub","signedIdentity":{"type":"bogus"}}]}"#,
                "signedIdentity",
            ),
        ] {
            let e = parse(json, &key.public_pem).unwrap_err().to_string();
            assert!(e.starts_with("policy.json: "), "{e}");
            assert!(e.contains(want), "{json}: {e}");
        }
        let fulcio = r#"{"default":[{"type":"sigstoreSigned","fulcio":{}}]}"#;
        let p = parse(fulcio, &key.public_pem).unwrap();
        assert_eq!(kind(p.requirements_for(None)), "unsupported");
    }
}
