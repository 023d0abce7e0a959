//! Choosing one image by name among several: entries of a layout's `index.json` (named by the
//! `org.opencontainers.image.ref.name` annotation, or `io.containerd.image.name` in Docker ≥ 25
//! `docker save` output) and entries of a docker-archive `manifest.json` (named by `RepoTags`).
//!
//! Docker names are compared normalised as well as verbatim, because tools write the same name in
//! different forms (skopeo stores `repo/x:t` as `docker.io/repo/x:t`), and the user types the short
//! one. Pure code, unit-tested here.

use std::path::Path;

use crate::oci::{Descriptor, Index, ANNOTATION_REF_NAME};

use super::Error;

/// The annotation containerd (and Docker ≥ 25 `docker save`) puts the full image name in.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Whether `name` is a valid `org.opencontainers.image.ref.name` (image-spec annotations.md):
/// `component ("/" component)*`, `component = alphanum+ (separator alphanum+)*`,
/// `separator = [-._:@+] | "--"`. This also keeps names free of `..`, spaces and slashes at
/// either end.
pub fn is_valid_ref_name(name: &str) -> bool {
    !name.is_empty() && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_alphanumeric();
    let sep = |x: u8| matches!(x, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            i += 2;
            if !b.get(i).copied().is_some_and(alnum) {
                return false;
            }
        } else if sep(b[i]) {
            i += 1;
            if !b.get(i).copied().is_some_and(alnum) {
                return false;
            }
        } else {
            return false;
        }
    }
    true
}

/// A Docker reference in full form: `docker.io/library/x:latest` for `x`; other names keep their
/// registry, gain `:latest` only when they have neither tag nor digest.
pub(crate) fn normalize_docker(name: &str) -> String {
    let (repo, suffix) = match name.split_once('@') {
        Some((r, d)) => (r, format!("@{d}")),
        None => {
            let last_slash = name.rfind('/').map_or(0, |i| i + 1);
            match name[last_slash..].rfind(':') {
                Some(i) => (&name[..last_slash + i], name[last_slash + i..].to_string()),
                None => (name, ":latest".to_string()),
            }
        }
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}{suffix}")
}

/// Whether the user's `wanted` names the image called `have`.
pub(crate) fn names_match(wanted: &str, have: &str) -> bool {
    wanted == have || normalize_docker(wanted) == normalize_docker(have)
}

/// One image to choose from: the names it answers to (the first is the one reported) and a label
/// for listings.
pub(crate) struct Candidate<T> {
    pub names: Vec<String>,
    pub label: String,
    pub item: T,
}

/// Picks the candidate named `name`, or the only one when `name` is `None`. Returns the name it
/// was chosen by (or its first name) with it.
pub(crate) fn choose<T>(
    mut candidates: Vec<Candidate<T>>,
    name: Option<&str>,
    source: &Path,
) -> Result<(Option<String>, T), Error> {
    if candidates.is_empty() {
        return Err(Error::NoImages {
            path: source.to_path_buf(),
        });
    }
    let Some(wanted) = name else {
        if candidates.len() == 1 {
            if let Some(c) = candidates.pop() {
                return Ok((c.names.into_iter().next(), c.item));
            }
        }
        return Err(Error::Ambiguous {
            available: candidates.into_iter().map(|c| c.label).collect(),
        });
    };
    let labels: Vec<String> = candidates.iter().map(|c| c.label.clone()).collect();
    let mut found: Vec<(String, Candidate<T>)> = candidates
        .into_iter()
        .filter_map(|c| {
            let matched = c
                .names
                .iter()
                .find(|n| wanted == n.as_str())
                .or_else(|| c.names.iter().find(|n| names_match(wanted, n)))?
                .clone();
            Some((matched, c))
        })
        .collect();
    match found.len() {
        0 => Err(Error::NoSuchImage {
            name: wanted.to_string(),
            available: labels,
        }),
        1 => {
            let (matched, c) = found.remove(0);
            Ok((Some(matched), c.item))
        }
        _ => Err(Error::Ambiguous {
            available: found.into_iter().map(|(_, c)| c.label).collect(),
        }),
    }
}

/// [`choose`] over the entries of an `index.json`.
pub(crate) fn choose_in_index(
    index: Index,
    name: Option<&str>,
    source: &Path,
) -> Result<(Option<String>, Descriptor), Error> {
    let candidates = index
        .manifests
        .into_iter()
        .map(|d| {
            let names: Vec<String> = [ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME]
                .iter()
                .filter_map(|k| d.annotation(k).map(str::to_string))
                .collect();
            let label = match names.first() {
                Some(n) => format!("{n} ({})", d.digest.short()),
                None => format!("unnamed {}", d.digest.short()),
            };
            Candidate {
                names,
                label,
                item: d,
            }
        })
        .collect();
    choose(candidates, name, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in ["v1", "1.0", "a/b", "x:1", "a--b", "a_b-c.d+e@f", "latest"] {
            assert!(is_valid_ref_name(ok), "{ok}");
        }
        for bad in [
            "", "-a", "a-", "a/", "/a", "../x", "a..b", "a b", "a---b", "a//b", "ä",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn docker_names() {
        assert_eq!(
            normalize_docker("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_docker("repo/x:t"), "docker.io/repo/x:t");
        assert_eq!(
            normalize_docker("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(normalize_docker("h.io/a/b@sha256:00"), "h.io/a/b@sha256:00");
        assert!(names_match("repo/x:t", "docker.io/repo/x:t"));
        assert!(names_match("busybox", "docker.io/library/busybox:latest"));
        assert!(!names_match(
            "busybox:1",
            "docker.io/library/busybox:latest"
        ));
        assert!(!names_match("v1", "v2"));
    }

    fn cands(names: &[&[&str]]) -> Vec<Candidate<usize>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Candidate {
                names: n.iter().map(|s| s.to_string()).collect(),
                label: n.first().unwrap_or(&"unnamed").to_string(),
                item: i,
            })
            .collect()
    }

    #[test]
    fn choosing() {
        let p = Path::new("src");
        let two = || cands(&[&["a:1"], &["docker.io/b/c:2", "2"]]);
        assert_eq!(
            choose(two(), Some("b/c:2"), p).unwrap(),
            (Some("docker.io/b/c:2".into()), 1)
        );
        assert_eq!(choose(two(), Some("2"), p).unwrap(), (Some("2".into()), 1));
        assert!(matches!(
            choose(two(), None, p),
            Err(Error::Ambiguous { available }) if available == ["a:1", "docker.io/b/c:2"]
        ));
        assert!(matches!(
            choose(two(), Some("zz"), p),
            Err(Error::NoSuchImage { available, .. }) if available.len() == 2
        ));
        assert_eq!(choose(cands(&[&[]]), None, p).unwrap(), (None, 0));
        assert!(matches!(
            choose(cands(&[]), None, p),
            Err(Error::NoImages { .. })
        ));
        assert!(matches!(
            choose(cands(&[&["x"], &["x"]]), Some("x"), p),
            Err(Error::Ambiguous { .. })
        ));
    }
}
