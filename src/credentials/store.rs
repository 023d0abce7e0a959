//! What a credential store is: four operations on entries keyed by [`crate::host::normalize`], blind to
//! argv and JSON (those belong to [`super::protocol`]).

pub mod file;
pub mod keyring;

use std::path::PathBuf;

use super::Credentials;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential file {path} is not valid ({reason}); fix or remove it, then log in again")]
    Corrupt { path: PathBuf, reason: String },
    #[error("Secret Service: {0}")]
    SecretService(String),
    #[error("the Secret Service keyring is locked; unlock it (e.g. log in to the desktop, or `gnome-keyring-daemon --unlock`) or run `gdcloud config set auth/credential_store file`")]
    Locked,
    #[error("no Secret Service on the session bus; start a keyring (gnome-keyring, KeePassXC) or run `gdcloud config set auth/credential_store file`")]
    Unavailable,
    /// The macOS Keychain or Windows Credential Manager failed.
    #[error("keychain: {0}")]
    Keychain(String),
    /// Why the token path has no token for a registry with an audience (one line, says what to do).
    #[error("{0}")]
    SignIn(String),
    /// A store that answers `get` only (the token path) was asked to change an entry.
    #[error("the {0} store is read-only")]
    ReadOnly(&'static str),
    /// Why the selected store could not be opened, repeated to each call a [`super::Chain`] makes.
    #[error("{0}")]
    Unopened(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One stored entry as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub server_url: String,
    pub username: String,
}

pub trait CredentialStore {
    /// A short name for diagnostics (`file`, `secret-service`).
    fn name(&self) -> &'static str;
    /// Whether `get` for `key` is this store's to answer: always, for a store of logins; only for
    /// registries with an audience, for the token path. A [`super::Chain`] asks its read-only
    /// stores only about the keys they own.
    fn owns(&self, _key: &str) -> bool {
        true
    }
    /// The store that answers `get` for `key`, named for the log (a chain names its member).
    fn name_for(&self, _key: &str) -> &'static str {
        self.name()
    }
    /// Stores `creds` under `key`, replacing whatever was there.
    fn add(&self, key: &str, creds: &Credentials) -> Result<()>;
    /// Removes the entry of `key`; a missing entry is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Credentials>>;
    fn list(&self) -> Result<Vec<Listed>>;
}
