//! What a credential store is: four operations on entries keyed by [`super::key::normalize`], blind to
//! argv and JSON (those belong to [`super::protocol`]).

pub mod file;
pub mod secret_service;

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
    /// Stores `creds` under `key`, replacing whatever was there.
    fn add(&self, key: &str, creds: &Credentials) -> Result<()>;
    /// Removes the entry of `key`; a missing entry is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Credentials>>;
    fn list(&self) -> Result<Vec<Listed>>;
}
