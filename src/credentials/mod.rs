//! Registry credentials: the docker-credential-helpers protocol, the key rules, the stores behind
//! them, and the chain of stores a configuration selects (`auth/credential_store`).

mod chain;
pub(crate) mod keyring;
pub mod log;
pub mod protocol;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::secret::Secret;
pub use chain::Chain;
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

/// What `auth/credential_store` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The system keyring when one runs, else the file.
    Auto,
    /// The system keyring: `secret-service` on Linux, `keychain` on macOS, `wincred` on Windows.
    Keyring,
    File,
}

impl StoreKind {
    pub fn parse(value: Option<&str>) -> Result<StoreKind, StoreError> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(StoreKind::Auto),
            Some(name)
                if name == keyring::NAME
                    || (keyring::NAME == "secret-service" && name == "secretservice") =>
            {
                Ok(StoreKind::Keyring)
            }
            Some("file") => Ok(StoreKind::File),
            Some(other) => Err(StoreError::SecretService(format!(
                "unknown {STORE_PROPERTY} {other:?}: use auto, {} or file",
                keyring::NAME
            ))),
        }
    }
}

/// The chain of stores `auth/credential_store` selects for `config`, opened on first use. With
/// `auto` and a Secret Service in use, the file store is the fallback for reads and erases.
pub fn open_store(config: &Config) -> Chain {
    Chain::new(config.get(STORE_PROPERTY), config.dir().to_path_buf())
}
