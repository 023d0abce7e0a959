//! The credential helper's token path: for a registry with an audience in
//! `auth/registry_audiences`, `get` answers with the signed-in account and an access token for that
//! audience instead of a stored password. It is a read-only [`CredentialStore`] that sits first in
//! the helper's chain of stores ([`open_store`]); `store` and `erase` go on to the stores of logins.
//!
//! A warm `get` reads the token cache and nothing else. When the token is past half its life it is
//! refreshed by running `gdcloud-auth print-identity-token` (which holds the refresh lock, so 20
//! parallel `get`s refresh once), keeping the helper binary free of HTTP and async code; if that
//! fails the old token is served while it is still valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cache::{self, TokenCache};
use super::registry_audiences;
use crate::config::Config;
use crate::credentials::{self, Chain, CredentialStore, Credentials, Listed, StoreError};
use crate::secret::Secret;

/// The helper's stores: the token path first when registries have audiences, then the stores of
/// logins `auth/credential_store` selects.
pub fn open_store(config: &Config) -> Chain {
    let chain = credentials::open_store(config);
    let audiences = registry_audiences(config);
    if audiences.is_empty() {
        return chain;
    }
    chain.read_first(Box::new(TokenStore {
        dir: config.dir().to_path_buf(),
        config_name: config.name().to_string(),
        audiences,
    }))
}

/// Answers `get` for the registries of `auth/registry_audiences` from the sign-in.
struct TokenStore {
    /// The configuration the refresh runs with (`GDCLOUD_CONFIG`, `GDCLOUD_ACTIVE_CONFIG_NAME`).
    dir: PathBuf,
    config_name: String,
    /// `(host, audience)`, read once.
    audiences: Vec<(String, String)>,
}

impl TokenStore {
    fn audience(&self, key: &str) -> Option<&str> {
        self.audiences
            .iter()
            .find(|(host, _)| host == key)
            .map(|(_, aud)| aud.as_str())
    }
}

impl CredentialStore for TokenStore {
    fn name(&self) -> &'static str {
        "gdcloud-sign-in"
    }

    fn owns(&self, key: &str) -> bool {
        self.audience(key).is_some()
    }

    fn get(&self, key: &str) -> Result<Option<Credentials>, StoreError> {
        let Some(audience) = self.audience(key) else {
            return Ok(None);
        };
        credentials(&self.dir, &self.config_name, key, audience)
            .map(Some)
            .map_err(StoreError::SignIn)
    }

    fn add(&self, _key: &str, _creds: &Credentials) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly(self.name()))
    }

    fn delete(&self, _key: &str) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly(self.name()))
    }

    /// Token registries are not logins: `list` never showed them.
    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        Ok(Vec::new())
    }
}

/// `gdcloud-auth` beside this executable (how install.sh lays them out), else on `PATH`.
fn auth_plugin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("gdcloud-auth")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("gdcloud-auth"))
}

/// Runs the refresh; the error is the plugin's one-line message without its `ERROR: ` prefix.
fn refresh(dir: &Path, config_name: &str, audience: &str) -> Result<(), String> {
    let out = Command::new(auth_plugin())
        .args(["print-identity-token", "--refresh-stale", "--audiences", audience])
        .env("GDCLOUD_CONFIG", dir)
        .env("GDCLOUD_ACTIVE_CONFIG_NAME", config_name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run gdcloud-auth to refresh the registry token ({e}); install gdcloud-kit (./install.sh)"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("ERROR: "))
        .unwrap_or(text.trim());
    let line = line.trim_start_matches("ERROR: ");
    // Drop the command's own context prefix ("print-identity-token: …").
    Err(line
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("print-identity-token"))
        .map(|(_, rest)| rest)
        .unwrap_or(line)
        .to_string())
}

/// Credentials for `server_url` from the sign-in of the configuration in `dir`, or the one-line
/// reason there are none.
fn credentials(
    dir: &Path,
    config_name: &str,
    server_url: &str,
    audience: &str,
) -> Result<Credentials, String> {
    let answer = |cache: &TokenCache, token: &Secret| Credentials {
        server_url: server_url.to_string(),
        username: cache.account.clone(),
        secret: token.clone(),
    };
    let cached = TokenCache::load(dir);
    let now = cache::now();
    if let Some(t) = cached.tokens.get(audience) {
        if t.valid_at(now, 0) && !t.stale_at(now) {
            return Ok(answer(&cached, &t.token));
        }
    }
    let refreshed = refresh(dir, config_name, audience);
    let cache_after = TokenCache::load(dir);
    let now = cache::now();
    if let Some(t) = cache_after
        .tokens
        .get(audience)
        .filter(|t| t.valid_at(now, 0))
    {
        return Ok(answer(&cache_after, &t.token));
    }
    Err(match refreshed {
        Err(reason) => reason,
        Ok(()) => format!("no token for {audience} after refreshing; run: gdcloud auth login"),
    })
}
