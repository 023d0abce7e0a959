//! Registry credentials: the docker-credential-helpers protocol, the key rules and the stores behind
//! them, and which store a configuration selects (`auth/credential_store`).

pub mod key;
pub mod log;
pub mod protocol;
pub mod store;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::secret::Secret;
use store::file::FileStore;
use store::secret_service::{self, SecretServiceStore};
pub use store::{CredentialStore, Listed, StoreError};

/// The property that chooses the store.
pub const STORE_PROPERTY: &str = "auth/credential_store";

/// The username docker-credential-helpers use to mark an identity token instead of a password.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// One credential, spelled as on the helper protocol's wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username", default)]
    pub username: String,
    #[serde(rename = "Secret", default)]
    pub secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Auto,
    SecretService,
    File,
}

impl StoreKind {
    pub fn parse(value: Option<&str>) -> Result<StoreKind, StoreError> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(StoreKind::Auto),
            Some("secret-service") | Some("secretservice") => Ok(StoreKind::SecretService),
            Some("file") => Ok(StoreKind::File),
            Some(other) => Err(StoreError::SecretService(format!(
                "unknown {STORE_PROPERTY} {other:?}: use auto, secret-service or file"
            ))),
        }
    }
}

/// How long `auto` waits for the bus to say whether a Secret Service runs.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// The store(s) one invocation uses. With `auto` and a Secret Service in use, the file store is the
/// fallback for reads and erases, so entries written while no keyring was running are still found
/// and `docker logout` removes them wherever they are.
pub struct Stores {
    pub primary: Box<dyn CredentialStore>,
    pub fallback: Option<FileStore>,
}

impl CredentialStore for Stores {
    fn get(&self, key: &str) -> Result<Option<Credentials>, StoreError> {
        if let Some(c) = self.primary.get(key)? {
            return Ok(Some(c));
        }
        match &self.fallback {
            Some(f) => f.get(key),
            None => Ok(None),
        }
    }

    fn add(&self, key: &str, creds: &Credentials) -> Result<(), StoreError> {
        self.primary.add(key, creds)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.primary.delete(key)?;
        if let Some(f) = &self.fallback {
            f.delete(key)?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut all = self.primary.list()?;
        if let Some(f) = &self.fallback {
            all.extend(f.list()?);
        }
        Ok(all)
    }

    fn name(&self) -> &'static str {
        self.primary.name()
    }
}

/// Opens the store `auth/credential_store` selects for `config`.
pub fn open_store(config: &Config) -> Result<Stores, StoreError> {
    let kind = StoreKind::parse(config.get(STORE_PROPERTY).as_deref())?;
    let dir = config.dir().to_path_buf();
    let file = || FileStore::new(&dir);
    match kind {
        StoreKind::File => Ok(Stores {
            primary: Box::new(file()),
            fallback: None,
        }),
        StoreKind::SecretService => Ok(Stores {
            primary: Box::new(SecretServiceStore::connect(dir.clone())?),
            fallback: None,
        }),
        StoreKind::Auto => {
            if secret_service::is_running(PROBE_TIMEOUT) {
                if let Ok(ss) = SecretServiceStore::connect(dir.clone()) {
                    return Ok(Stores {
                        primary: Box::new(ss),
                        fallback: Some(file()),
                    });
                }
            }
            Ok(Stores {
                primary: Box::new(file()),
                fallback: None,
            })
        }
    }
}
