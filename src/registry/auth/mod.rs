//! Registry authentication, the whole of it: where credentials come from (`docker`, as Docker
//! finds them), what the registry's `WWW-Authenticate` challenge asks for (`challenge`), and the
//! token dance that turns both into an `Authorization` header per scope (`token`).
//!
//! Which URLs may receive the credentials is `origin::CredentialPolicy`'s call; this
//! module only asks it.

mod challenge;
mod docker;
mod token;

pub(crate) use challenge::{parse_challenge, Challenge};
pub(crate) use docker::lookup;
pub(crate) use token::{challenge_of, AuthState};

use base64::Engine as _;

use crate::docker_config;
use crate::secret::Secret;

/// What requests to a registry (and its token service) authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`Username: <token>` in helper answers, `identitytoken` in `auths`).
    IdentityToken(Secret),
}

impl Credentials {
    /// The `Authorization: Basic …` value for a username and password (marked sensitive, so it is
    /// never logged); `None` for other kinds.
    pub(crate) fn basic_header(&self) -> Option<reqwest::header::HeaderValue> {
        let Credentials::Basic { username, password } = self else {
            return None;
        };
        let raw = format!("{username}:{}", password.expose());
        let mut v = reqwest::header::HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
        .ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// Credentials plus where they came from, for error messages ("tried credHelpers\[h\] = gdcloud").
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) credentials: Credentials,
    pub(crate) source: String,
}

/// Why no credentials could be looked up (a [`super::Error::Auth`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credential helper docker-credential-{helper} for {host} failed: {message}")]
    Helper {
        helper: String,
        host: String,
        message: String,
    },
    #[error("{0}")]
    DockerConfig(#[from] docker_config::Error),
}
