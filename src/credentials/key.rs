//! How a registry address becomes the key its credentials are stored under, so that every form a
//! client may send (`https://Host:5000/`, `host:5000/proj/repo`, `docker.io`) finds the same entry.
//!
//! Rules: surrounding whitespace trimmed; `http`/`https` scheme, path and trailing `/` dropped; host
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
}
