//! The signed-in session (issuer, client, account and the refresh token) in the credential store
//! the configuration selects — the desktop keyring (Secret Service) or a 0600 file — never in the
//! configuration file.
//!
//! It is kept apart from registry logins (its own Secret Service schema, its own file) so
//! `docker-credential-gdcloud list` never shows it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dbus_secret_service::{EncryptionType, SecretService};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::config::Config;
use crate::credentials::store::secret_service as ss;
use crate::credentials::{StoreError, StoreKind, STORE_PROPERTY};
use crate::secret::Secret;

const SCHEMA: &str = "com.google.gdcloud.OidcSession";
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
    Keyring(SecretService),
}

pub struct SessionStore {
    backend: Backend,
}

fn ss_err(e: dbus_secret_service::Error) -> StoreError {
    match e {
        dbus_secret_service::Error::Locked | dbus_secret_service::Error::Prompt => {
            StoreError::Locked
        }
        dbus_secret_service::Error::Unavailable => StoreError::Unavailable,
        other => StoreError::SecretService(other.to_string()),
    }
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
        let file = || SessionStore {
            backend: Backend::File(config.dir().join(FILE_NAME)),
        };
        let keyring = || -> Result<SessionStore, StoreError> {
            // Connecting also checks the default collection is there and unlocked.
            ss::SecretServiceStore::connect(config.dir().to_path_buf())?;
            let s = SecretService::connect_with_max_prompt_timeout(EncryptionType::Plain, 0)
                .map_err(ss_err)?;
            Ok(SessionStore {
                backend: Backend::Keyring(s),
            })
        };
        match kind {
            StoreKind::File => Ok(file()),
            StoreKind::SecretService => keyring(),
            StoreKind::Auto => {
                if ss::is_running(std::time::Duration::from_millis(300)) {
                    if let Ok(s) = keyring() {
                        return Ok(s);
                    }
                }
                Ok(file())
            }
        }
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
            Backend::Keyring(s) => {
                let found = s
                    .search_items(HashMap::from([("xdg:schema", SCHEMA)]))
                    .map_err(ss_err)?;
                let Some(item) = found.unlocked.first() else {
                    return if found.locked.is_empty() {
                        Ok(None)
                    } else {
                        Err(StoreError::Locked)
                    };
                };
                let secret = item.get_secret().map_err(ss_err)?;
                serde_json::from_slice(&secret).map(Some).map_err(|e| {
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
            Backend::Keyring(s) => {
                let collection = s.get_default_collection().map_err(ss_err)?;
                let attrs = HashMap::from([
                    ("xdg:schema", SCHEMA),
                    ("application", "gdcloud"),
                    ("issuer", session.issuer.as_str()),
                    ("account", session.account.as_str()),
                ]);
                // `replace` swaps the item with the same attributes; other sessions are removed after.
                let label = format!(
                    "gdcloud sign-in of {} at {}",
                    session.account, session.issuer
                );
                let created = collection
                    .create_item(&label, attrs, &bytes, true, "application/json")
                    .map_err(ss_err)?;
                let all = s
                    .search_items(HashMap::from([("xdg:schema", SCHEMA)]))
                    .map_err(ss_err)?;
                for item in all.unlocked {
                    if item.path != created.path {
                        item.delete().map_err(ss_err)?;
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
            Backend::Keyring(s) => {
                let all = s
                    .search_items(HashMap::from([("xdg:schema", SCHEMA)]))
                    .map_err(ss_err)?;
                for item in all.unlocked {
                    item.delete().map_err(ss_err)?;
                }
                Ok(())
            }
        }
    }
}
