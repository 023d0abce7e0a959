//! Signing in with the organisation's OpenID Connect provider, and the tokens that sign-in yields:
//! what `gdcloud auth login`, `print-identity-token` and `revoke` do, and what the credential
//! helper hands Docker for registries that take tokens.
//!
//! Settings are gdcloud properties (`auth/issuer_url`, `auth/client_id`, `auth/scopes`,
//! `auth/login_config_cert_path`, `auth/registry_audiences`); the refresh token lives in the
//! credential store ([`session`]), short-lived tokens in a cache file ([`cache`]).

pub mod cache;
pub mod helper;
pub mod jwt;
pub mod login;
pub mod session;
pub mod tokens;

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use crate::bounded;
use crate::config::Config;
use crate::http::{self, TlsOptions};

pub const ISSUER_PROPERTY: &str = "auth/issuer_url";
pub const CLIENT_ID_PROPERTY: &str = "auth/client_id";
pub const SCOPES_PROPERTY: &str = "auth/scopes";
pub const CERT_PROPERTY: &str = "auth/login_config_cert_path";
pub const AUDIENCES_PROPERTY: &str = "auth/registry_audiences";
pub const DEFAULT_SCOPES: &str = "openid offline_access email";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no identity provider configured: pass --issuer-url URL and --client-id ID (or set {ISSUER_PROPERTY} and {CLIENT_ID_PROPERTY})")]
    NotConfigured,
    #[error("not signed in: run: gdcloud auth login")]
    NoSession,
    #[error("your gdcloud sign-in has expired or was revoked ({0}): run: gdcloud auth login")]
    SessionExpired(String),
    #[error("the sign-in does not cover audience {0}: run: gdcloud auth login --audiences {0}")]
    AudienceNotGranted(String),
    #[error("cannot reach the identity provider at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the identity provider answered {url} with HTTP {status}: {message}")]
    Provider {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the identity provider's {what} is not valid: {reason}")]
    Protocol { what: String, reason: String },
    #[error("the ID token was refused: {0}")]
    IdToken(#[from] jwt::JwtError),
    #[error("sign-in failed: {0}")]
    Login(String),
    #[error(
        "sign-in timed out waiting for the browser; run the command again (or use --no-browser)"
    )]
    Timeout,
    #[error(transparent)]
    Store(#[from] crate::credentials::StoreError),
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The sign-in settings of one configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    pub ca_file: Option<PathBuf>,
}

impl Settings {
    /// From the configuration, with flag values taking precedence.
    pub fn resolve(
        config: &Config,
        issuer: Option<&str>,
        client_id: Option<&str>,
        ca: Option<&std::path::Path>,
    ) -> Result<Settings> {
        let issuer = issuer
            .map(str::to_string)
            .or_else(|| config.get(ISSUER_PROPERTY))
            .ok_or(Error::NotConfigured)?;
        let client_id = client_id
            .map(str::to_string)
            .or_else(|| config.get(CLIENT_ID_PROPERTY))
            .ok_or(Error::NotConfigured)?;
        Ok(Settings {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id,
            scopes: config
                .get(SCOPES_PROPERTY)
                .unwrap_or_else(|| DEFAULT_SCOPES.to_string()),
            ca_file: ca
                .map(|p| p.to_path_buf())
                .or_else(|| config.get(CERT_PROPERTY).map(PathBuf::from)),
        })
    }

    pub fn http(&self, log_http: bool) -> Result<reqwest::Client> {
        Ok(http::client(&TlsOptions {
            insecure: false,
            ca_files: self.ca_file.iter().cloned().collect(),
            log_http,
        })?)
    }
}

/// `auth/registry_audiences`: `HOST=AUD` pairs, comma-separated.
pub fn registry_audiences(config: &Config) -> Vec<(String, String)> {
    config
        .get(AUDIENCES_PROPERTY)
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(h, a)| (h.trim().to_ascii_lowercase(), a.trim().to_string()))
        .filter(|(h, a)| !h.is_empty() && !a.is_empty())
        .collect()
}

/// The provider's endpoints, from `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| connect_error(url, &e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Provider {
            url: url.to_string(),
            status: status.as_u16(),
            message: error_text(resp).await,
        });
    }
    let body = read_answer(resp, url, bounded::LISTING, what).await?;
    serde_json::from_slice(&body).map_err(|e| Error::Protocol {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Reads a provider's answer of at most `limit` bytes ([`bounded`]: discovery documents and
/// JWKS are listings, token answers tokens); more is an error naming `what`.
pub(crate) async fn read_answer(
    resp: reqwest::Response,
    url: &str,
    limit: u64,
    what: &str,
) -> Result<bytes::Bytes> {
    bounded::response(resp, limit, &format!("the identity provider's {what}"))
        .await
        .map_err(|e| match e {
            bounded::BodyError::TooLarge(t) => Error::Protocol {
                what: what.to_string(),
                reason: t.to_string(),
            },
            bounded::BodyError::Transport(e) => connect_error(url, &e),
        })
}

/// The start of an error answer, escaped, for a message.
pub(crate) async fn error_text(resp: reqwest::Response) -> String {
    let body = bounded::response_prefix(resp, bounded::ERROR_BODY).await;
    let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    crate::text::escape(&text).into_owned()
}

pub(crate) fn connect_error(url: &str, e: &reqwest::Error) -> Error {
    const HINTS: http::Hints = http::Hints {
        certificate: "; trust the provider's CA with --login-config-cert FILE",
        unreachable: "",
    };
    let f = http::connect_failure(url, e, &HINTS);
    Error::Connect {
        url: f.url,
        detail: f.detail + f.hint,
    }
}

impl Provider {
    pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Provider> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let p: Provider = get_json(client, &url, "discovery document").await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer we asked.
        if p.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(Error::Protocol {
                what: "discovery document".into(),
                reason: format!("it names issuer {:?}, not {issuer:?}", p.issuer),
            });
        }
        Ok(p)
    }

    pub async fn jwks(&self, client: &reqwest::Client) -> Result<jwt::Jwks> {
        get_json(client, &self.jwks_uri, "JWKS").await
    }
}

/// URL-safe random text (`n` random bytes): PKCE verifiers, `state`, `nonce`.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The answer of a token endpoint (RFC 6749 §5.1), or its error (§5.2).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// POSTs a form to the token endpoint; an OAuth error answer comes back as `Ok` with `error` set.
pub async fn token_request(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse> {
    let resp = client
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| connect_error(url, &e))?;
    let status = resp.status();
    let body = read_answer(resp, url, bounded::TOKEN, "token answer").await?;
    match serde_json::from_slice::<TokenResponse>(&body) {
        Ok(t) if status.is_success() || t.error.is_some() => Ok(t),
        _ => Err(Error::Provider {
            url: url.to_string(),
            status: status.as_u16(),
            message: crate::text::escape(
                &String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            )
            .into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
    }
}
