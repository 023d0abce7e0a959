//! What can go wrong talking to a registry, each variant naming the reference or URL and saying
//! what to do about it.

use crate::oci::Digest;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot reach {url}: {detail}{hint}")]
    Connect {
        url: String,
        detail: String,
        hint: String,
    },
    #[error("{registry} refused the credentials for {what} (401); tried {tried}. Log in with `docker login {registry}` (or `gdcloud auth login`), or pass --username with --password-stdin")]
    Unauthorized {
        registry: String,
        what: String,
        tried: String,
    },
    #[error("{registry} denied access to {what} (403) for the credentials from {tried}: ask the project admin for access (Harbor: a project member role)")]
    Denied {
        registry: String,
        what: String,
        tried: String,
    },
    /// The repository exists but not the tag or digest: its tags are the next step.
    #[error("manifest unknown: {repository}{}{reference}: check the tag (`gdcloud artifacts list-versions {registry}/{repository}` lists the tags)", if reference.contains(':') { "@" } else { ":" })]
    ManifestUnknown {
        registry: String,
        repository: String,
        reference: String,
    },
    /// No such repository: listing its tags would fail the same way, so the spelling is the step.
    #[error("manifest unknown: {what} (no repository {repository} on {registry}): check the project and repository spelling, HOST/PROJECT/REPO as the registry (Harbor: the project's Repositories page) shows it")]
    RepositoryUnknown {
        registry: String,
        repository: String,
        /// What was asked for (`proj/none:v1`, `proj/none`).
        what: String,
    },
    #[error(
        "blob unknown: {digest} in {repository}: the registry lost it or the manifest is broken"
    )]
    BlobUnknown { repository: String, digest: Digest },
    #[error("{method} {url} failed: HTTP {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{what} from {url} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} is larger than {limit} bytes; refusing to load it into memory")]
    TooLarge { what: String, limit: u64 },
    #[error("invalid answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("token service {realm} refused the credentials from {tried} (HTTP {status}): log in again (`docker login` / `gdcloud auth login`)")]
    Token {
        realm: String,
        status: u16,
        tried: String,
    },
    #[error("{registry} names the token service {realm}, which is plain HTTP on another host; refusing to send the password there (the registry's operator must serve the token realm over https; --insecure only covers the registry's own host)")]
    InsecureRealm { registry: String, realm: String },
    #[error("{url} pointed the next page of {what} at {next}, which is not the registry; refusing to mix another server's answers into the listing (report this to the registry's operator)")]
    ForeignPage {
        what: String,
        url: String,
        next: String,
    },
    #[error("{url}: the listing of {what} {reason}; refusing to page on (report this to the registry's operator)")]
    Paging {
        what: String,
        url: String,
        reason: String,
    },
    #[error("{method} {url} {reason}; check the network or the registry")]
    Stalled {
        method: String,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Bounded(#[from] crate::bounded::TooLarge),
    #[error(transparent)]
    Auth(#[from] super::auth::AuthError),
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    #[error(transparent)]
    Parse(#[from] crate::oci::ParseError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Describes a transport failure with a hint. An untrusted certificate names what it was checked
/// against (`ca_files`: `--ca-cert-path` and the host's `certs.d` files) and a command that works
/// as typed once FILE is the registry's CA.
pub fn connect_error(url: &str, e: &reqwest::Error, ca_files: &[std::path::PathBuf]) -> Error {
    const HINTS: crate::http::Hints = crate::http::Hints {
        certificate: "",
        unreachable: "; check the registry address and that it is running",
    };
    let f = crate::http::connect_failure(url, e, &HINTS);
    let hint = if crate::http::classify(&f.detail) == crate::http::Failure::Certificate {
        certificate_hint(&crate::http::host_of(url), ca_files)
    } else {
        f.hint.to_string()
    };
    Error::Connect {
        url: f.url,
        detail: f.detail,
        hint,
    }
}

/// What to do about a registry certificate nobody vouched for: install its CA for every tool
/// (`configure-docker --config-cert`, which needs the registry named), or pass it once.
fn certificate_hint(host: &str, ca_files: &[std::path::PathBuf]) -> String {
    format!(
        "; {}: trust the registry's CA with `gdcloud auth configure-docker --config-cert --ca-cert-path FILE --registries {host}` (installs certs.d/{host}/ca.crt) or pass --ca-cert-path FILE (--insecure skips verification)",
        crate::http::checked_against(host, ca_files)
    )
}
