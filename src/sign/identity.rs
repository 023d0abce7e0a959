//! Image identities and the policy's `signedIdentity` (containers-policy.json(5)): which Docker
//! references a signature's `critical.identity.docker-reference` may name for an image to be
//! accepted.
//!
//! References are compared in containers/image's normalised form (docker/distribution's
//! `ParseNormalizedNamed`): a name without a registry host is Docker Hub's (`docker.io`, and
//! `library/` for a one-part name), `index.docker.io` is `docker.io`. The matching rules mirror
//! `signature/policy_reference_match.go`, so a policy accepts here what it accepts in podman.

use serde::Deserialize;

/// A normalised Docker reference: `name` (`host/path`), with a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRef {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl std::fmt::Display for DockerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl DockerRef {
    /// Parses and normalises `s`; `None` when it is not a Docker reference.
    pub fn parse(s: &str) -> Option<DockerRef> {
        if s.is_empty() || s.len() > 4096 || s.contains(char::is_whitespace) {
            return None;
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(crate::oci::Digest::parse(d).ok()?.to_string())),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !crate::registry::reference::valid_tag(t) {
                return None;
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first != first.to_lowercase() =>
            {
                (first, path.to_string())
            }
            _ => ("docker.io", name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io"
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let path_ok = path.split('/').all(|c| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        });
        if !path_ok || domain.is_empty() {
            return None;
        }
        Some(DockerRef {
            name: format!("{domain}/{path}"),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    fn name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }
}

/// A policy's `signedIdentity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SignedIdentity {
    /// The default: a digest reference needs the same repository, a tagged one the same
    /// reference.
    #[default]
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact,
    #[serde(rename = "matchExact")]
    MatchExact,
    #[serde(rename = "matchRepository")]
    MatchRepository,
    #[serde(rename = "exactReference")]
    ExactReference {
        #[serde(rename = "dockerReference")]
        docker_reference: String,
    },
    #[serde(rename = "exactRepository")]
    ExactRepository {
        #[serde(rename = "dockerRepository")]
        docker_repository: String,
    },
    /// `--key` without a policy: any signed name, as `cosign verify` accepts it. The payload's
    /// digest still binds the signature to these exact bytes; what goes unchecked is only the
    /// name it was signed under, which on an air-gapped mirror is the source registry's, never
    /// the local Harbor's. Not a policy.json rule (a policy names its own).
    #[serde(skip)]
    AnyIdentity,
    /// Images under `prefix` are expected to be signed as under `signedPrefix` (a mirror).
    #[serde(rename = "remapIdentity")]
    RemapIdentity {
        prefix: String,
        #[serde(rename = "signedPrefix")]
        signed_prefix: String,
    },
}

fn repo_digest_or_exact(image: &DockerRef, signed: &DockerRef) -> bool {
    if image.tag.is_some() {
        signed.to_string() == image.to_string()
    } else if image.digest.is_some() {
        signed.name == image.name
    } else {
        false
    }
}

/// Whether `name` is `prefix` or lies below it (containers/image `refMatchesPrefix`).
fn under_prefix(name: &str, prefix: &str) -> bool {
    name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/'))
}

impl SignedIdentity {
    /// The rule's name in policy.json, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            SignedIdentity::MatchExact => "matchExact",
            SignedIdentity::MatchRepository => "matchRepository",
            SignedIdentity::ExactReference { .. } => "exactReference",
            SignedIdentity::ExactRepository { .. } => "exactRepository",
            SignedIdentity::RemapIdentity { .. } => "remapIdentity",
            SignedIdentity::AnyIdentity => "any identity (--key)",
        }
    }

    /// Whether a signature naming `signed` is acceptable for the image known as `image` (`None`:
    /// the image has no Docker reference, as an OCI layout entry without a registry name).
    pub fn matches(&self, image: Option<&DockerRef>, signed: &str) -> bool {
        let Some(signed) = DockerRef::parse(signed) else {
            return false;
        };
        match self {
            SignedIdentity::MatchRepoDigestOrExact => {
                image.is_some_and(|i| repo_digest_or_exact(i, &signed))
            }
            SignedIdentity::MatchExact => image.is_some_and(|i| {
                !i.name_only() && !signed.name_only() && i.to_string() == signed.to_string()
            }),
            SignedIdentity::MatchRepository => image.is_some_and(|i| i.name == signed.name),
            SignedIdentity::AnyIdentity => true,
            SignedIdentity::ExactReference { docker_reference } => {
                DockerRef::parse(docker_reference).is_some_and(|want| {
                    !want.name_only()
                        && !signed.name_only()
                        && want.to_string() == signed.to_string()
                })
            }
            SignedIdentity::ExactRepository { docker_repository } => {
                DockerRef::parse(docker_repository).is_some_and(|want| want.name == signed.name)
            }
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => image.is_some_and(|i| {
                let remapped = if under_prefix(&i.name, prefix) {
                    let text = i.to_string();
                    match DockerRef::parse(&format!("{signed_prefix}{}", &text[prefix.len()..])) {
                        Some(r) => r,
                        None => return false,
                    }
                } else {
                    i.clone()
                };
                repo_digest_or_exact(&remapped, &signed)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn r(s: &str) -> DockerRef {
        DockerRef::parse(s).unwrap()
    }

    #[test]
    fn references_are_normalised_as_docker_does() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox");
        assert_eq!(r("index.docker.io/a/b:1").to_string(), "docker.io/a/b:1");
        assert_eq!(r("localhost/x").name, "localhost/x");
        assert_eq!(r("127.0.0.1:5000/p/r:t").tag.as_deref(), Some("t"));
        assert_eq!(
            r(&format!("h.io/r:t@{D}")).to_string(),
            format!("h.io/r:t@{D}")
        );
        for bad in ["", "h.io/R", "h.io/r:", "h.io/r@sha256:1", "h.io//r", "a b"] {
            assert!(DockerRef::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn any_identity_is_not_a_policy_rule_and_needs_no_image_name() {
        assert!(SignedIdentity::AnyIdentity.matches(None, "reg.io/p/app"));
        assert!(!SignedIdentity::AnyIdentity.matches(None, "not a reference"));
        let parsed: Result<SignedIdentity, _> = serde_json::from_str(r#"{"type":"AnyIdentity"}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn match_rules_follow_containers_policy_json() {
        use SignedIdentity::*;
        let tagged = r("reg.io/p/app:1");
        let by_digest = r(&format!("reg.io/p/app@{D}"));
        let cases: &[(SignedIdentity, &DockerRef, &str, bool)] = &[
            (MatchRepoDigestOrExact, &tagged, "reg.io/p/app:1", true),
            (MatchRepoDigestOrExact, &tagged, "reg.io/p/app:2", false),
            (MatchRepoDigestOrExact, &tagged, "reg.io/p/app", false),
            (MatchRepoDigestOrExact, &by_digest, "reg.io/p/app:9", true),
            (
                MatchRepoDigestOrExact,
                &by_digest,
                "reg.io/p/other:9",
                false,
            ),
            (MatchExact, &tagged, "reg.io/p/app:1", true),
            (MatchExact, &by_digest, "reg.io/p/app:1", false),
            (MatchRepository, &tagged, "reg.io/p/app", true),
            (MatchRepository, &tagged, "reg.io/p/app2:1", false),
            // --key: cosign's tag-less repository, or the source registry of a mirror.
            (AnyIdentity, &tagged, "reg.io/p/app", true),
            (AnyIdentity, &tagged, "gcr.io/source/app:1", true),
            (
                ExactReference {
                    docker_reference: "other.io/x:1".into(),
                },
                &tagged,
                "other.io/x:1",
                true,
            ),
            (
                ExactReference {
                    docker_reference: "other.io/x:1".into(),
                },
                &tagged,
                "other.io/x",
                false,
            ),
            (
                ExactRepository {
                    docker_repository: "other.io/x".into(),
                },
                &tagged,
                "other.io/x:5",
                true,
            ),
            (
                RemapIdentity {
                    prefix: "reg.io/p".into(),
                    signed_prefix: "up.io/q".into(),
                },
                &tagged,
                "up.io/q/app:1",
                true,
            ),
            (
                RemapIdentity {
                    prefix: "reg.io/p".into(),
                    signed_prefix: "up.io/q".into(),
                },
                &tagged,
                "reg.io/p/app:1",
                false,
            ),
            (
                RemapIdentity {
                    prefix: "reg.io/pp".into(),
                    signed_prefix: "up.io/q".into(),
                },
                &tagged,
                "reg.io/p/app:1",
                true,
            ),
            (MatchRepository, &tagged, "not a reference", false),
        ];
        for (rule, image, signed, want) in cases {
            assert_eq!(
                rule.matches(Some(image), signed),
                *want,
                "{rule:?} {image} {signed}"
            );
        }
        assert!(!MatchRepository.matches(None, "reg.io/p/app"));
    }

    #[test]
    fn signed_identity_parses_from_policy_json() {
        let s: SignedIdentity = serde_json::from_str(
            r#"{"type":"remapIdentity","prefix":"a.io","signedPrefix":"b.io"}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            SignedIdentity::RemapIdentity {
                prefix: "a.io".into(),
                signed_prefix: "b.io".into()
            }
        );
        assert!(serde_json::from_str::<SignedIdentity>(
            r#"{"type":"exactRepository","dockerRepository":"a.io/b","x":1}"#
        )
        .is_err());
    }
}
