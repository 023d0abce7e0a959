//! Signing in with the organisation's OpenID Connect provider, and the tokens that sign-in yields:
//! what `gdcloud auth login`, `print-identity-token` and `revoke` do, and what the credential
//! helper hands Docker for registries that take tokens.
//!
//! Settings are gdcloud properties (`auth/issuer_url`, `auth/client_id`, `auth/scopes`,
//! `auth/login_config_cert_path`, `auth/registry_audiences`); the refresh token lives in the
//! credential store ([`session`]), short-lived tokens in a cache file ([`cache`]).

pub(crate) mod cache;
pub mod helper;
#[cfg(feature = "net")]
pub(crate) mod jwt;
#[cfg(feature = "net")]
pub(crate) mod login;
#[cfg(feature = "net")]
mod provider;
#[cfg(feature = "net")]
pub(crate) mod session;
#[cfg(feature = "net")]
pub(crate) mod tokens;

use std::path::PathBuf;

use crate::config::Config;

#[cfg(feature = "net")]
pub(crate) use provider::{connect_error, get_json, quoted, read_answer};
#[cfg(feature = "net")]
pub(crate) use provider::{pkce_challenge, random_token, token_request, Provider, TokenResponse};

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
    #[cfg(feature = "net")]
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
    #[cfg(feature = "net")]
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
