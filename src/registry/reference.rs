//! Image references (`HOST[:PORT]/PROJECT/REPO[:TAG][@DIGEST]`), parsed once and validated, so every
//! URL we build from one is well formed and every error names what was typed.
//!
//! A reference without a host (`PROJECT/REPO:TAG`) takes the default registry (property
//! `artifacts/registry`), as the operator's runbook commands assume one organisation registry.

use crate::oci::Digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {0:?}: expected HOST/PROJECT/REPO[:TAG][@sha256:DIGEST]")]
    Invalid(String),
    #[error("image reference {0:?} names no registry host: write HOST/PROJECT/REPO:TAG or run `gdcloud config set artifacts/registry HOST`")]
    NoRegistry(String),
    #[error("invalid tag {tag:?} in {reference:?}: tags are up to 128 of [A-Za-z0-9_.-], not starting with . or -")]
    Tag { reference: String, tag: String },
    #[error("invalid repository {repo:?} in {reference:?}: use lower-case [a-z0-9], separated by . _ __ - or /")]
    Repository { reference: String, repo: String },
    #[error("{0:?} is a local path, not a registry reference: write HOST/PROJECT/REPO[:TAG], or check the path")]
    Path(String),
    #[error("{0}")]
    Digest(#[from] crate::oci::digest::DigestError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    /// Written as `http://HOST/…`: the user asked for plain HTTP to that host.
    pub plain_http: bool,
}

/// Whether `tag` is a tag by the distribution spec's grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        })
}

impl Reference {
    /// Parses `input`; `default_registry` serves references without a host.
    /// A path-spelled `input` (`./x`, `/x`, `~/x`) is refused, never read as a host.
    pub fn parse(input: &str, default_registry: Option<&str>) -> Result<Reference, ReferenceError> {
        if crate::host::written_as_path(input) {
            return Err(ReferenceError::Path(input.to_string()));
        }
        let (s, plain_http) = crate::host::strip_scheme(input);
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(ReferenceError::Invalid(input.to_string()));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i + 1..].contains('/') => {
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            _ => (name_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if crate::host::looks_like_host(first) => {
                (first.to_ascii_lowercase(), rest)
            }
            _ => match default_registry {
                Some(r) => (
                    crate::host::registry_host(r)
                        .map_err(|_| ReferenceError::Invalid(r.to_string()))?,
                    name,
                ),
                None => return Err(ReferenceError::NoRegistry(input.to_string())),
            },
        };
        if !valid_repository(repository) {
            return Err(ReferenceError::Repository {
                reference: input.to_string(),
                repo: repository.to_string(),
            });
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(ReferenceError::Tag {
                    reference: input.to_string(),
                    tag: t.clone(),
                });
            }
        }
        Ok(Reference {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
            plain_http,
        })
    }

    /// [`Reference::parse`] of a command-line argument, which is also refused when it names an
    /// existing file or directory: a path is never taken for a registry reference.
    pub fn parse_argument(
        input: &str,
        default_registry: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        if std::path::Path::new(input.trim()).exists() {
            return Err(ReferenceError::Path(input.to_string()));
        }
        Reference::parse(input, default_registry)
    }

    /// What goes in `/v2/<name>/manifests/<reference>`: the digest when pinned, else the tag, else
    /// `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The tag to record locally (ref.name): the tag, else `latest` unless pinned by digest only.
    pub fn tag_or_default(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".into()),
        }
    }

    /// `project/repo` split for Harbor: the project is the first component.
    pub fn harbor_project(&self) -> Option<(&str, &str)> {
        self.repository.split_once('/')
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let r = Reference::parse("harbor.example.com:8443/proj/app:v1.2", None).unwrap();
        assert_eq!(r.registry, "harbor.example.com:8443");
        assert_eq!(r.repository, "proj/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        assert_eq!(r.to_string(), "harbor.example.com:8443/proj/app:v1.2");

        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let r = Reference::parse(&format!("docker://127.0.0.1:5000/a/b/c@{d}"), None).unwrap();
        assert_eq!(r.repository, "a/b/c");
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.tag_or_default(), None);

        let r = Reference::parse("proj/app", Some("https://Harbor.Org/")).unwrap();
        assert_eq!(r.registry, "harbor.org");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.harbor_project(), Some(("proj", "app")));
        let r = Reference::parse("localhost/app:1", None).unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            Reference::parse("proj/app:v1", None),
            Err(ReferenceError::NoRegistry(_))
        ));
        assert!(matches!(
            Reference::parse("h.io/Proj/app", None),
            Err(ReferenceError::Repository { .. })
        ));
        assert!(matches!(
            Reference::parse("h.io/p/app:-bad", None),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(Reference::parse("h.io/p/app@sha256:xyz", None).is_err());
        assert!(Reference::parse("h.io/p/../app", None).is_err());
        assert!(Reference::parse("", None).is_err());
        for path in ["./bundel", "../x.io/p/r", "/srv/bundle", "~/bundle", "."] {
            assert_eq!(
                Reference::parse(path, Some("h.io")),
                Err(ReferenceError::Path(path.into())),
                "{path}"
            );
        }
    }

    #[test]
    fn schemes() {
        let r = Reference::parse("https://Harbor.Org/proj/app:19c", None).unwrap();
        assert_eq!(r.registry, "harbor.org");
        assert_eq!(r.repository, "proj/app");
        assert_eq!(r.tag.as_deref(), Some("19c"));
        assert!(!r.plain_http);
        assert_eq!(r.to_string(), "harbor.org/proj/app:19c");
        let r = Reference::parse("http://10.1.2.3:5000/proj/app", Some("h.io")).unwrap();
        assert_eq!(r.registry, "10.1.2.3:5000");
        assert_eq!(r.repository, "proj/app");
        assert!(r.plain_http);
        assert!(!Reference::parse("h.io/p/r", None).unwrap().plain_http);
        assert!(matches!(
            Reference::parse("ftp://h.io/p/r", None),
            Err(ReferenceError::Repository { .. } | ReferenceError::Invalid(_))
        ));
    }

    #[test]
    fn existing_paths_are_not_references() {
        // `cargo test` runs in the package root, where `src` is a directory and `src/lib.rs` a file.
        for existing in ["src", "src/lib.rs"] {
            assert!(std::path::Path::new(existing).exists());
            assert!(Reference::parse(existing, Some("h.io")).is_ok());
            assert_eq!(
                Reference::parse_argument(existing, Some("h.io")),
                Err(ReferenceError::Path(existing.into()))
            );
        }
        assert!(Reference::parse_argument("proj/none-such:1", Some("h.io")).is_ok());
    }
}
