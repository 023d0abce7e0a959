//! [`Client`], the one type callers use to talk to an OCI distribution registry: connecting
//! (scheme discovery and the `/v2/` ping), and what every call shares (the URL of a path, a
//! failure answer as our error).
//!
//! Its methods live beside what they do: the send loop with retries in [`super::transport`], the
//! token dance in [`super::auth`], and the calls themselves in [`super::manifests`],
//! [`super::blobs`] and [`super::uploads`]. Blobs are never held in memory: downloads are handed
//! out as response streams, uploads take a stream factory so a failed upload can start again from
//! the source.
//!
//! Which URLs receive the credentials is [`CredentialPolicy`]'s call (the registry's own origin;
//! the token realm, never over plain HTTP elsewhere); answers read whole are bounded
//! ([`crate::bounded`]); small requests have a deadline and blob streams a rate floor
//! ([`super::deadline`]); registry text in errors is escaped ([`crate::text::escape`]).

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::auth::{self, AuthState, Credentials, Found};
use super::error::{Error, Result};
use super::origin::{is_loopback, CredentialPolicy};
use crate::bounded;
use crate::http::{self, TlsOptions};

/// Kept here for the callers that name it by this path; it belongs to [`super::manifests`].
pub use super::manifests::MAX_MANIFEST_BYTES;

/// How to reach a registry and whom to be there.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub tls: TlsOptions,
    /// Credentials given on the command line; else looked up as Docker does.
    pub credentials: Option<Credentials>,
    /// `--verbosity debug`: say on stderr where credentials are sent (and where not).
    pub debug: bool,
    /// Plain HTTP only, never HTTPS: the reference was written `http://HOST/…`.
    pub plain_http: bool,
}

/// What a request needs access to, as a token scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn pull(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull"))
    }
    pub fn push(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull,push"))
    }
    /// Push to `repo` and mount from `from`.
    pub fn push_mount(repo: &str, from: &str) -> Scope {
        Scope(format!(
            "repository:{repo}:pull,push repository:{from}:pull"
        ))
    }
    /// The scopes a token request names, one per `scope` parameter.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ')
    }
}

/// A connection to one registry: its origin, the credentials found for it, and what the token
/// dance learned so far.
pub struct Client {
    pub(super) http: reqwest::Client,
    /// The same client without redirects, for POSTs whose form holds the password: reqwest
    /// re-sends a form body on 307/308 to wherever the redirect points.
    pub(super) direct: reqwest::Client,
    pub(super) policy: CredentialPolicy,
    pub(super) registry: String,
    base: Url,
    pub(super) creds: Found,
    pub(super) state: Mutex<AuthState>,
    pub(super) log_http: bool,
    /// The CA files trusted besides the system roots, named when a certificate is refused.
    pub(super) ca_files: Vec<std::path::PathBuf>,
}

/// The body of a registry error answer, for messages: `{"errors":[{"code","message"}]}`. Only
/// its first [`bounded::ERROR_BODY`] bytes are read, and the text is escaped: it is the
/// registry's, and it ends up on a terminal.
pub(super) async fn error_message(resp: Response) -> String {
    let status = resp.status();
    let body = bounded::response_prefix(resp, bounded::ERROR_BODY).await;
    describe_error_body(status, &body)
}

/// The message of an error answer's (possibly cut) body: its `errors[]` when it is the
/// registry's JSON, else its first 200 characters; escaped either way.
fn describe_error_body(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !parts.is_empty() {
            return crate::text::escape(&parts.join("; ")).into_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(200).collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        crate::text::escape(&text).into_owned()
    }
}

impl Client {
    /// Connects to `registry` (`host[:port]`): HTTPS, with plain HTTP tried after it only for
    /// loopback registries or `--insecure` (as Docker treats them). The `/v2/` ping learns how the
    /// registry wants to be authenticated.
    pub async fn connect(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let mut tls = opts.tls.clone();
        tls.ca_files.extend(crate::certs::installed_cas(registry));
        let http = http::client(&tls)?;
        let direct = http::client_without_redirects(&tls)?;
        let creds = match &opts.credentials {
            Some(c) => Found {
                credentials: c.clone(),
                source: "--username/--password-stdin".into(),
            },
            None => auth::lookup(registry)?,
        };
        crate::debug::log(format_args!(
            "registry {registry}: {} from {}",
            match &creds.credentials {
                Credentials::Anonymous => "anonymous (no credentials)",
                Credentials::Basic { .. } => "a username and password",
                Credentials::IdentityToken(_) => "an identity token",
            },
            creds.source
        ));
        let mut schemes = vec!["https"];
        if opts.plain_http {
            schemes = vec!["http"];
        } else if tls.insecure || is_loopback(registry) {
            schemes.push("http");
        }
        let mut first_err: Option<Error> = None;
        for scheme in schemes {
            let base =
                Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| Error::Protocol {
                    url: registry.into(),
                    reason: e.to_string(),
                })?;
            let client = Client {
                http: http.clone(),
                direct: direct.clone(),
                // `http://HOST` is the user's own choice of plain HTTP for that host, as
                // `--insecure` is: a token realm on the same host may be plain HTTP too.
                policy: CredentialPolicy::new(
                    base.clone(),
                    tls.insecure || opts.plain_http,
                    opts.debug,
                ),
                registry: registry.to_string(),
                base,
                creds: creds.clone(),
                state: Mutex::new(AuthState::default()),
                log_http: tls.log_http,
                ca_files: tls.ca_files.clone(),
            };
            match (client.ping().await, first_err.take()) {
                (Ok(()), _) => return Ok(client),
                // A certificate problem is the answer: falling back to plain HTTP would hide it.
                (Err(e @ Error::Connect { .. }), None) if matches!(&e, Error::Connect { hint, .. } if hint.contains("CA")) => {
                    return Err(e)
                }
                // A server that never finishes the TLS handshake may be plain HTTP that waits for
                // a request line: try plain HTTP where allowed, as after a refused handshake.
                (Err(e @ (Error::Connect { .. } | Error::Stalled { .. })), None) => {
                    first_err = Some(e)
                }
                (Err(e), None) => return Err(e),
                // HTTPS failed and plain HTTP did not work either: the HTTPS failure says more.
                (Err(_), Some(https_err)) => return Err(https_err),
            }
        }
        Err(first_err.expect("at least one scheme tried"))
    }

    /// Connects to the registry `reference` names, over plain HTTP only when it was written
    /// `http://HOST/…`.
    pub async fn connect_for(reference: &super::Reference, opts: &ClientOptions) -> Result<Client> {
        let mut opts = opts.clone();
        opts.plain_http |= reference.plain_http;
        Client::connect(&reference.registry, &opts).await
    }

    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The credentials found for the registry (Harbor's API takes the same).
    pub fn credentials(&self) -> &Credentials {
        &self.creds.credentials
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    /// The policy that decides which URLs get this registry's credentials.
    pub(crate) fn policy(&self) -> &CredentialPolicy {
        &self.policy
    }

    async fn ping(&self) -> Result<()> {
        let url = self.base.join("v2/").expect("static path");
        let resp = self
            .send_raw(Method::GET, url.clone(), HeaderMap::new())
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                self.set_challenge(auth::challenge_of(&resp)).await;
                Ok(())
            }
            s => Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: s.as_u16(),
                message: format!(
                    "{} is not an OCI registry here ({})",
                    self.registry,
                    error_message(resp).await
                ),
            }),
        }
    }

    pub(super) fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("registry paths are valid")
    }

    /// Maps a failure status to our error, naming `what` (a reference, a blob).
    pub(crate) async fn fail(&self, method: &str, url: &Url, what: &str, resp: Response) -> Error {
        match resp.status() {
            StatusCode::UNAUTHORIZED => Error::Unauthorized {
                registry: self.registry.clone(),
                what: what.to_string(),
                tried: self.creds.source.clone(),
            },
            StatusCode::FORBIDDEN => Error::Denied {
                registry: self.registry.clone(),
                what: what.to_string(),
                tried: self.creds.source.clone(),
            },
            status => Error::Status {
                method: method.to_string(),
                url: http::redact_url(url.as_str()),
                status: status.as_u16(),
                message: error_message(resp).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_escaped_and_cut() {
        let body = br#"{"errors":[{"code":"DENIED","message":"a\u001b[2J\nb"}]}"#;
        assert_eq!(
            describe_error_body(StatusCode::FORBIDDEN, body),
            "DENIED a\\x1b[2J\\nb"
        );
        let text = format!("oops\u{1b}]0;t\u{7}{}", "x".repeat(500));
        let msg = describe_error_body(StatusCode::BAD_REQUEST, text.as_bytes());
        assert!(msg.starts_with("oops\\x1b]0;t\\x07xx"), "{msg}");
        assert!(msg.len() < 220, "{}", msg.len());
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, b" "),
            "Not Found"
        );
    }
}
