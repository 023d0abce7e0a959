//! The signed-in session (issuer, client, account and the refresh token) in the credential store
//! the configuration selects — the desktop keyring (Secret Service) or a 0600 file — never in the
//! configuration file.
//!
//! It is kept apart from registry logins (its own Secret Service schema, its own file) so
//! `docker-credential-gdcloud list` never shows it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::config::Config;
use crate::credentials::keyring::{self, Keyring, NewItem, SESSION};
use crate::credentials::{StoreError, StoreKind, STORE_PROPERTY};
use crate::secret::Secret;

pub const FILE_NAME: &str = "oidc_session.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub issuer: String,
    pub client_id: String,
    pub account: String,
    pub refresh_token: Secret,
    /// Audiences (RFC 8707 resources) granted at sign-in.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub scopes: String,
    /// Endpoints found at sign-in, so a refresh is one round trip (no discovery).
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The provider's keys, to verify refreshed ID tokens.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The provider's CA, when it is not in the system roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

enum Backend {
    File(PathBuf),
    Keyring(Keyring),
}

pub struct SessionStore {
    backend: Backend,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

impl SessionStore {
    /// The store `auth/credential_store` selects (as for registry logins).
    pub fn open(config: &Config) -> Result<SessionStore, StoreError> {
        let kind = StoreKind::parse(config.get(STORE_PROPERTY).as_deref())?;
        let backend = match keyring::selected(kind, config.dir().to_path_buf())? {
            Some(k) => Backend::Keyring(k),
            None => Backend::File(config.dir().join(FILE_NAME)),
        };
        Ok(SessionStore { backend })
    }

    pub fn load(&self) -> Result<Option<Session>, StoreError> {
        match &self.backend {
            Backend::File(p) => match fs::read(p) {
                Ok(b) => serde_json::from_slice(&b)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path: p.clone(),
                        reason: e.to_string(),
                    }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("read", p)(e)),
            },
            Backend::Keyring(k) => {
                let Some(item) = k.find(&SESSION, None)?.into_iter().next() else {
                    return Ok(None);
                };
                serde_json::from_slice(&item.secret()?)
                    .map(Some)
                    .map_err(|e| {
                        StoreError::SecretService(format!(
                            "the stored gdcloud session is damaged ({e}); run: gdcloud auth login"
                        ))
                    })
            }
        }
    }

    pub fn save(&self, session: &Session) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(session).expect("session serializes");
        match &self.backend {
            Backend::File(p) => atomic::write(p, &bytes, 0o600).map_err(io_err("write", p)),
            Backend::Keyring(k) => {
                let label = format!(
                    "gdcloud sign-in of {} at {}",
                    session.account, session.issuer
                );
                let json = String::from_utf8(bytes).expect("JSON is UTF-8");
                // Replaces the item of this account in place; then every other session goes,
                // items written before the move to keyring-core (no `service`) included.
                k.create(
                    &SESSION,
                    &NewItem {
                        key: &session.issuer,
                        user: &session.account,
                        label: &label,
                        attributes: &[("issuer", &session.issuer), ("account", &session.account)],
                        secret: &json,
                    },
                )?;
                for item in k.find(&SESSION, None)? {
                    let current = item.attribute("service") == Some(SESSION.service)
                        && item.attribute("username") == Some(&session.account);
                    if !current {
                        item.delete()?;
                    }
                }
                Ok(())
            }
        }
    }

    pub fn delete(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File(p) => match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
                _ => Ok(()),
            },
            Backend::Keyring(k) => k
                .find(&SESSION, None)?
                .iter()
                .try_for_each(|item| item.delete()),
        }
    }
}
