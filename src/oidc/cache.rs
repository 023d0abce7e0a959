//! The token cache the credential helper reads on every `get`: one small 0600 JSON file in the
//! gdcloud configuration directory, replaced atomically, so a warm `get` is one file read and no
//! network, keyring or crypto.
//!
//! It holds short-lived tokens only (ID token and per-audience access tokens); the long-lived
//! refresh token stays in the credential store ([`super::session`]).

use std::collections::BTreeMap;
use std::fs;
#[cfg(feature = "net")]
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[cfg(feature = "net")]
use crate::atomic;
use crate::secret::Secret;

pub const FILE_NAME: &str = "oidc_token_cache.json";
/// The key of the ID token (the audience-less token `print-identity-token` prints).
#[cfg(feature = "net")]
pub const ID_TOKEN: &str = "";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedToken {
    pub token: Secret,
    /// Seconds since the epoch.
    pub issued_at: u64,
    pub expires_at: u64,
}

impl CachedToken {
    pub fn valid_at(&self, now: u64, margin: u64) -> bool {
        now + margin < self.expires_at
    }

    /// Past half its life: time to refresh, though still usable.
    pub fn stale_at(&self, now: u64) -> bool {
        now >= self.issued_at + (self.expires_at.saturating_sub(self.issued_at)) / 2
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenCache {
    /// The signed-in account (email, else subject), shown as the registry username.
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub tokens: BTreeMap<String, CachedToken>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn path(config_dir: &Path) -> PathBuf {
    config_dir.join(FILE_NAME)
}

impl TokenCache {
    /// Reads the cache; a missing or unreadable file is an empty cache (it is only a cache).
    pub fn load(config_dir: &Path) -> TokenCache {
        match fs::read(path(config_dir)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => TokenCache::default(),
        }
    }

    /// Written only by the sign-in and refreshes (the plugins), never by the helper.
    #[cfg(feature = "net")]
    pub fn save(&self, config_dir: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        text.push(b'\n');
        atomic::write(&path(config_dir), &text, 0o600)
    }

    #[cfg(feature = "net")]
    pub fn remove(config_dir: &Path) -> io::Result<()> {
        match fs::remove_file(path(config_dir)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
