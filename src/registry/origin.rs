//! The one place that decides which URLs may receive a registry's credentials.
//!
//! Registry answers carry URLs we then request: `Link` headers of paged listings, `Location`
//! headers of upload sessions, the token realm of a `WWW-Authenticate` challenge, redirects. A
//! hostile or compromised registry (or a man in the middle of a plain-HTTP hop) can point any of
//! them at another host, or at `http://`, to collect the password. The rules, Docker's:
//!
//! - The registry's own credentials (Basic, or a bearer token it issued) go only to the registry's
//!   origin: the same scheme, host and port it was reached at. Docker's distribution client
//!   (`registry/client/auth`, `endpointAuthorizer.ModifyRequest`) authorizes a request only for
//!   the host and scheme it pinged; containers/image likewise. Anything else gets no
//!   `Authorization` (an upload `Location` on a storage host still works, as with Docker).
//! - The token realm the registry's challenge names may be on any host (Docker and
//!   containers/image send the Basic credentials to it: Harbor and Docker Hub use separate auth
//!   hosts), but a password never travels over plain HTTP unless the realm is a loopback address
//!   (Docker treats `127.0.0.0/8` and `localhost` as insecure registries by default) or `--insecure`
//!   was given and the realm is on the registry's own host.
//!
//! With `--verbosity debug` each decision is logged once per destination on stderr (never the
//! secret itself), so a user can see where their credentials went.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use url::Url;

use super::error::{Error, Result};
use crate::text::Escaped;

/// Whether `host` (`name`, `name:port`, `[v6]:port`) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A URL's scheme, host and port (the port made explicit), for comparing origins.
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_ascii_lowercase(),
        url.host_str().map(|h| h.to_ascii_lowercase()),
        url.port_or_known_default(),
    )
}

/// Decides, for one registry, which URLs get its credentials; see the module docs.
#[derive(Debug)]
pub struct CredentialPolicy {
    registry: Url,
    insecure: bool,
    debug: bool,
    /// Decisions already logged, so a paged listing logs one line, not one per page.
    logged: Mutex<HashSet<String>>,
}

impl CredentialPolicy {
    /// For the registry reached at `registry` (its base URL). `insecure` is `--insecure`;
    /// `debug` turns on the log of decisions.
    pub fn new(registry: Url, insecure: bool, debug: bool) -> CredentialPolicy {
        CredentialPolicy {
            registry,
            insecure,
            debug,
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `url` is on the registry's origin (same scheme, host and port).
    pub fn is_registry(&self, url: &Url) -> bool {
        origin(url) == origin(&self.registry)
    }

    /// Whether a request to `url` may carry the registry's credentials (Basic or its token).
    /// `what` names the credentials for the debug log.
    pub fn registry_may_receive(&self, url: &Url, what: &str) -> bool {
        let ok = self.is_registry(url);
        if ok {
            self.log(
                url,
                &format!("sending {what} to {} (the registry)", show(url)),
            );
        } else {
            self.log(
                url,
                &format!(
                    "not sending {what} to {}: it is not the registry {}",
                    show(url),
                    show(&self.registry)
                ),
            );
        }
        ok
    }

    /// Whether the token realm `realm` may receive the user's password or identity token.
    /// Plain HTTP is refused with an error that says why, except on loopback or, with
    /// `--insecure`, on the registry's own host.
    pub fn realm_may_receive(&self, realm: &Url, what: &str) -> Result<()> {
        let same_host = realm.host_str().map(|h| h.to_ascii_lowercase())
            == self.registry.host_str().map(|h| h.to_ascii_lowercase());
        let plain_ok = is_loopback(realm.host_str().unwrap_or("")) || (self.insecure && same_host);
        match realm.scheme() {
            "https" => {}
            "http" if plain_ok => {}
            _ => {
                self.log(
                    realm,
                    &format!(
                        "not sending {what} to token realm {}: plain HTTP",
                        show(realm)
                    ),
                );
                return Err(Error::InsecureRealm {
                    registry: show(&self.registry),
                    realm: show(realm),
                });
            }
        }
        self.log(
            realm,
            &format!(
                "sending {what} to token realm {} (named by the challenge of {})",
                show(realm),
                show(&self.registry)
            ),
        );
        Ok(())
    }

    /// Checks that the next page of a listing stays on the registry: another host's answers must
    /// never be mixed in as the registry's own, and the credentials must not follow.
    pub fn next_page(&self, current: &Url, next: &Url, what: &str) -> Result<()> {
        if self.is_registry(next) {
            return Ok(());
        }
        Err(Error::ForeignPage {
            what: what.to_string(),
            url: show(current),
            next: show(next),
        })
    }

    fn log(&self, url: &Url, line: &str) {
        if !self.debug {
            return;
        }
        let key = format!("{}|{line}", url.origin().ascii_serialization());
        let first = self
            .logged
            .lock()
            .map(|mut seen| seen.insert(key))
            .unwrap_or(true);
        if first {
            crate::debug::log(format_args!("{line}"));
        }
    }
}

/// A URL for messages: origin and path only (queries may hold state or signatures), escaped.
fn show(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    Escaped(u.as_str()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: &str, insecure: bool) -> CredentialPolicy {
        CredentialPolicy::new(Url::parse(base).unwrap(), insecure, false)
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(!is_loopback("harbor.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.evil.example"));
    }

    #[test]
    fn registry_credentials_stay_on_its_origin() {
        let p = policy("https://reg.example:5000/", false);
        assert!(p.registry_may_receive(&u("https://reg.example:5000/v2/a/tags/list?n=1"), "x"));
        assert!(p.registry_may_receive(&u("https://REG.example:5000/v2/"), "x"));
        // Another host, another port, a downgrade to plain HTTP: none get them.
        assert!(!p.registry_may_receive(&u("https://other.example:5000/v2/"), "x"));
        assert!(!p.registry_may_receive(&u("https://reg.example/v2/"), "x"));
        assert!(!p.registry_may_receive(&u("http://reg.example:5000/v2/"), "x"));
        // The default port written out is the same origin.
        let p = policy("https://reg.example/", false);
        assert!(p.registry_may_receive(&u("https://reg.example:443/v2/"), "x"));
    }

    #[test]
    fn realms_follow_docker_but_never_plain_http_elsewhere() {
        let p = policy("https://reg.example/", false);
        assert!(p
            .realm_may_receive(&u("https://auth.example/token"), "x")
            .is_ok());
        assert!(p
            .realm_may_receive(&u("http://127.0.0.1:9/token"), "x")
            .is_ok());
        assert!(p
            .realm_may_receive(&u("http://localhost:9/token"), "x")
            .is_ok());
        assert!(p.realm_may_receive(&u("http://[::1]:9/token"), "x").is_ok());
        let e = p
            .realm_may_receive(&u("http://auth.example/token"), "x")
            .unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        assert!(p
            .realm_may_receive(&u("http://reg.example/token"), "x")
            .is_err());
        assert!(p
            .realm_may_receive(&u("ftp://reg.example/token"), "x")
            .is_err());
        // --insecure covers the registry's own host, not a third one.
        let p = policy("http://reg.example:5000/", true);
        assert!(p
            .realm_may_receive(&u("http://reg.example:5001/token"), "x")
            .is_ok());
        assert!(p
            .realm_may_receive(&u("http://auth.example/token"), "x")
            .is_err());
    }

    #[test]
    fn pages_stay_on_the_registry() {
        let p = policy("http://127.0.0.1:5000/", false);
        let here = u("http://127.0.0.1:5000/v2/a/tags/list");
        assert!(p
            .next_page(
                &here,
                &u("http://127.0.0.1:5000/v2/a/tags/list?last=x"),
                "tags"
            )
            .is_ok());
        let e = p
            .next_page(
                &here,
                &u("http://127.0.0.1:5001/v2/a/tags/list\x1b"),
                "tags",
            )
            .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:5001"), "{e}");
    }
}
