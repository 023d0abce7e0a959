//! Registry host names, read one way everywhere: the key credentials are stored under
//! ([`normalize`]), the host a configuration file or a `certs.d` directory is written for
//! ([`registry_host`]), and whether an image reference starts with a host ([`names_host`]).
//!
//! [`normalize`] makes every form a client may send (`https://Host:5000/`, `host:5000/proj/repo`,
//! `docker.io`) find the same entry. Rules: surrounding whitespace trimmed; `http`/`https` scheme, path and trailing `/` dropped; host
//! lower-cased, port kept; Docker Hub's many names map to the key Docker itself uses,
//! `https://index.docker.io/v1/`.

/// The key Docker uses for Docker Hub credentials.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

const DOCKER_HUB_HOSTS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no credentials server URL")]
    Empty,
    #[error("unsupported scheme in server URL {0:?}: use a registry host such as registry.example.com[:PORT]")]
    Scheme(String),
    #[error(
        "no host in server URL {0:?}: use a registry host such as registry.example.com[:PORT]"
    )]
    NoHost(String),
}

/// The storage key of `server_url`.
pub fn normalize(server_url: &str) -> Result<String, KeyError> {
    let s = server_url.trim();
    if s.is_empty() {
        return Err(KeyError::Empty);
    }
    let rest = match s.split_once("://") {
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(KeyError::Scheme(s.to_string()));
            }
            rest
        }
        None => s,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials embedded in a URL (`user:pass@host`) are never part of a key.
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(KeyError::NoHost(s.to_string()));
    }
    let host = host.to_ascii_lowercase();
    let bare = host.strip_suffix(":443").unwrap_or(&host);
    if DOCKER_HUB_HOSTS.contains(&bare) {
        return Ok(DOCKER_HUB.to_string());
    }
    Ok(host)
}

/// The registry host as Docker keys `credHelpers`: no scheme, no path, lower case, port kept.
pub fn registry_host(input: &str) -> Result<String, KeyError> {
    let s = input.trim();
    let s = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    // The host becomes a directory name under certs.d: it must start like a host name or an IPv6
    // literal, and `..` can never pass.
    let valid = host.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[')
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if valid && valid_port(&host) {
        Ok(host)
    } else {
        Err(KeyError::NoHost(input.to_string()))
    }
}

/// A port, when present, is 1–65535 (`[v6]:port` for IPv6 literals).
fn valid_port(host: &str) -> bool {
    let after_bracket = host.rsplit_once(']').map(|(_, r)| r).unwrap_or(host);
    let colons = after_bracket.matches(':').count();
    if host.starts_with('[') {
        if !host.contains(']') {
            return false;
        }
        if colons == 0 {
            return after_bracket.is_empty();
        }
    }
    match after_bracket.split_once(':') {
        None => true,
        Some((_, port)) => {
            colons == 1
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && port
                    .parse::<u32>()
                    .map(|p| (1..=65535).contains(&p))
                    .unwrap_or(false)
        }
    }
}

/// Whether the first component of an image reference is a registry host rather than a
/// repository path (Docker's rule: it has a `.` or a `:`, is `localhost`, or is an IPv6 literal).
pub fn looks_like_host(component: &str) -> bool {
    component.contains('.')
        || component.contains(':')
        || component == "localhost"
        || component.starts_with('[')
}

/// Whether `reference` starts with a registry host (`host.domain/…`, `host:port/…`, `localhost/…`),
/// so that no default registry is needed for it.
pub fn names_host(reference: &str) -> bool {
    if written_as_path(reference) {
        return false;
    }
    let (r, _) = strip_scheme(reference);
    r.split_once('/')
        .is_some_and(|(first, _)| looks_like_host(first))
}

/// Whether `arg` is spelled as a filesystem path (`./x`, `../x`, `/x`, `~/x`, `.`, `..`): such an
/// argument is never a registry reference, so `tree ./bundel` (a typo) says the directory is
/// missing instead of trying to reach a registry named `.` (issue 10).
pub fn written_as_path(arg: &str) -> bool {
    let a = arg.trim();
    a.starts_with("./")
        || a.starts_with("../")
        || a.starts_with('/')
        || a.starts_with('~')
        || a == "."
        || a == ".."
}

/// A reference without its leading scheme, and whether that scheme asked for plain HTTP.
/// `https://` and skopeo's `docker://` are dropped (the runbook's `HARBOR_URL` carries the
/// scheme); `http://` is kept as a request for plain HTTP to that host.
pub fn strip_scheme(reference: &str) -> (&str, bool) {
    let r = reference.trim();
    for (scheme, plain) in [("docker://", false), ("https://", false), ("http://", true)] {
        if let Some(head) = r
            .get(..scheme.len())
            .filter(|h| h.eq_ignore_ascii_case(scheme))
        {
            return (&r[head.len()..], plain);
        }
    }
    (r, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("  127.0.0.1:5000\n", "127.0.0.1:5000"),
            (
                "https://Registry.Example.com:5000/",
                "registry.example.com:5000",
            ),
            ("http://registry.example.com", "registry.example.com"),
            ("registry.example.com/proj/repo", "registry.example.com"),
            (
                "https://registry.example.com/v2/proj/repo?x=1",
                "registry.example.com",
            ),
            ("HARBOR.ORG.GOOG", "harbor.org.goog"),
            ("[::1]:5000/x", "[::1]:5000"),
            ("docker.io", DOCKER_HUB),
            ("https://index.docker.io/v1/", DOCKER_HUB),
            ("registry-1.docker.io", DOCKER_HUB),
            ("index.docker.io:443", DOCKER_HUB),
            ("https://user:pw@host:1/x", "host:1"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(normalize("  "), Err(KeyError::Empty));
        assert!(matches!(normalize("ftp://host"), Err(KeyError::Scheme(_))));
        assert!(matches!(
            normalize("https:///path"),
            Err(KeyError::NoHost(_))
        ));
        assert!(matches!(normalize(":5000"), Err(KeyError::NoHost(_))));
    }

    #[test]
    fn hosts() {
        assert_eq!(
            registry_host("https://Harbor.Org:443/v2/").unwrap(),
            "harbor.org:443"
        );
        assert_eq!(registry_host("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert!(registry_host("").is_err());
        assert!(registry_host("a b").is_err());
        assert!(registry_host("../x").is_err());
        assert!(registry_host("h:").is_err());
        assert!(registry_host("h:port").is_err());
        assert!(registry_host("h:50:00").is_err());
        assert!(registry_host("h:70000").is_err());
        assert_eq!(registry_host("[::1]:5000").unwrap(), "[::1]:5000");
        assert_eq!(registry_host("[::1]").unwrap(), "[::1]");
        assert!(registry_host("[::1]x").is_err());
    }

    #[test]
    fn references_with_hosts() {
        assert!(names_host("harbor.example.com/p/r:1"));
        assert!(names_host("docker://localhost/p/r"));
        assert!(names_host("127.0.0.1:5000/p/r"));
        assert!(!names_host("project/repo:1"));
        assert!(!names_host("repo"));
        assert!(names_host("https://harbor.example.com/p/r:1"));
        assert!(names_host("HTTP://10.0.0.1:5000/p/r"));
        assert!(!names_host("./bundel/p"));
        assert!(!names_host("../x.y/p"));
    }

    #[test]
    fn paths_and_schemes() {
        for p in [
            "./bundel", "../b", "/abs/dir", "~/b", "~", ".", "..", " ./x ",
        ] {
            assert!(written_as_path(p), "{p:?}");
        }
        for r in [
            "proj/app:1",
            "h.io/p/r",
            "https://h.io/p/r",
            "bundle",
            ".hidden/x",
        ] {
            assert!(!written_as_path(r), "{r:?}");
        }
        assert_eq!(strip_scheme("https://h.io/p/r:1"), ("h.io/p/r:1", false));
        assert_eq!(strip_scheme("HTTPS://h.io/p"), ("h.io/p", false));
        assert_eq!(strip_scheme("http://h.io:80/p"), ("h.io:80/p", true));
        assert_eq!(strip_scheme("docker://h.io/p"), ("h.io/p", false));
        assert_eq!(strip_scheme("h.io/p"), ("h.io/p", false));
        assert_eq!(strip_scheme("ht"), ("ht", false));
    }
}
