//! gdcloud's items in the system keyring, through the keyring ecosystem (`keyring-core`'s `Entry`
//! and one store crate per system): the freedesktop Secret Service on Linux, the login Keychain on
//! macOS, the Credential Manager on Windows. Registry logins ([`super::store::keyring`]) and the
//! sign-in session ([`crate::oidc::session`]) are both [`Kind`]s of item here.
//!
//! Every item has a kind, a key (the registry, or the issuer), a user, a label, attributes and a
//! secret. The Secret Service keeps the attributes as its own, searchable ones, with the schema,
//! attribute names and label this helper always wrote, so entries stored before the move to
//! keyring-core are found as they are (`tests/secret_service.rs` checks it). The native stores of
//! macOS and Windows have no searchable attributes: there the attributes travel in the secret.

#[cfg(any(target_os = "macos", windows))]
mod native;
#[cfg(any(target_os = "macos", windows))]
use native as platform;
#[cfg(all(unix, not(target_os = "macos")))]
mod secret_service;
#[cfg(all(unix, not(target_os = "macos")))]
use secret_service as platform;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore as NativeStore, Entry};

use super::store::{Result, StoreError};
use super::StoreKind;
use crate::atomic;

/// How long `auto` waits for the bus to say whether a keyring runs.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// The name `auth/credential_store` gives this system's keyring (`secret-service` on Linux).
pub(crate) use platform::NAME;

/// One kind of gdcloud item.
pub(crate) struct Kind {
    /// The Secret Service schema (`xdg:schema`): what every search of this kind asks for.
    pub schema: &'static str,
    /// The keyring service name: this prefix, followed by the key for keyed kinds.
    pub service: &'static str,
    /// The attribute holding the key; `None` for a kind with one item (the session).
    pub key_attribute: Option<&'static str>,
}

impl Kind {
    fn service_for(&self, key: &str) -> String {
        match self.key_attribute {
            Some(_) => format!("{}{key}", self.service),
            None => self.service.to_string(),
        }
    }
}

/// Registry logins, one item per registry key.
pub(crate) const REGISTRY: Kind = Kind {
    schema: "com.google.gdcloud.RegistryCredential",
    service: "gdcloud-registry:",
    key_attribute: Some("server"),
};

/// The sign-in session (issuer, account, refresh token): one item.
#[cfg(feature = "net")]
pub(crate) const SESSION: Kind = Kind {
    schema: "com.google.gdcloud.OidcSession",
    service: "gdcloud-sign-in",
    key_attribute: None,
};

/// What an item to create holds.
pub(crate) struct NewItem<'a> {
    /// The registry key (`server`), or for the session its issuer.
    pub key: &'a str,
    /// The keyring user: the registry username, or the signed-in account.
    pub user: &'a str,
    /// What a keyring browser shows (Secret Service).
    pub label: &'a str,
    /// More attributes, besides the schema, `application`, the key and the user.
    pub attributes: &'a [(&'static str, &'a str)],
    pub secret: &'a str,
}

/// An item found by a search.
pub(crate) struct Item {
    entry: Entry,
    attributes: HashMap<String, String>,
    /// Native stores read the secret together with the attributes.
    secret: Option<String>,
}

impl Item {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// The secret's bytes; callers say what is wrong when they are not what they expect.
    pub fn secret(&self) -> Result<Vec<u8>> {
        match &self.secret {
            Some(s) => Ok(s.clone().into_bytes()),
            None => self.entry.get_secret().map_err(error),
        }
    }

    pub fn delete(&self) -> Result<()> {
        match self.entry.delete_credential() {
            Err(keyring_core::Error::NoEntry) => Ok(()),
            other => other.map_err(error),
        }
    }
}

/// The system keyring, opened; writers serialise on the configuration directory's lock (a
/// keyring has no transactions).
pub(crate) struct Keyring {
    store: Arc<NativeStore>,
    lock_dir: PathBuf,
}

impl Keyring {
    /// Opens the keyring, checking first (without a prompt) that it can be used now.
    pub fn open(lock_dir: PathBuf) -> Result<Keyring> {
        Ok(Keyring {
            store: platform::connect()?,
            lock_dir,
        })
    }

    /// Every item of `kind`, or with `key` only those of that key.
    pub fn find(&self, kind: &Kind, key: Option<&str>) -> Result<Vec<Item>> {
        platform::find(&self.store, kind, key)
    }

    /// Creates the item (replacing the one with the same service and user).
    pub fn create(&self, kind: &Kind, item: &NewItem) -> Result<()> {
        platform::create(&self.store, kind, item)
    }

    pub fn lock(&self) -> Result<atomic::DirLock> {
        atomic::DirLock::acquire(&self.lock_dir).map_err(|source| StoreError::Io {
            action: "lock",
            path: self.lock_dir.clone(),
            source,
        })
    }
}

/// The keyring `kind` selects: always for [`StoreKind::Keyring`] (an error when it cannot be used),
/// for `auto` when one runs now and can be used (asked without starting one, waiting at most
/// [`PROBE_TIMEOUT`]), never for the file.
pub(crate) fn selected(kind: StoreKind, lock_dir: PathBuf) -> Result<Option<Keyring>> {
    match kind {
        StoreKind::File => Ok(None),
        StoreKind::Keyring => Keyring::open(lock_dir).map(Some),
        StoreKind::Auto => Ok(platform::is_running(PROBE_TIMEOUT)
            .then(|| Keyring::open(lock_dir).ok())
            .flatten()),
    }
}

fn error(e: keyring_core::Error) -> StoreError {
    match e {
        keyring_core::Error::NoStorageAccess(_) => StoreError::Locked,
        other => platform::failure(other.to_string()),
    }
}
