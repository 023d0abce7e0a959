//! The credential helper's token path: for a registry with an audience in
//! `auth/registry_audiences`, `get` answers with the signed-in account and an access token for that
//! audience instead of a stored password.
//!
//! A warm `get` reads the token cache and nothing else. When the token is past half its life it is
//! refreshed by running `gdcloud-auth print-identity-token` (which holds the refresh lock, so 20
//! parallel `get`s refresh once), keeping the helper binary free of HTTP and async code; if that
//! fails the old token is served while it is still valid.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::cache::{self, TokenCache};
use super::registry_audiences;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::secret::Secret;

/// The audience configured for the registry `key` (a normalised host), if any.
pub fn audience_for(config: &Config, key: &str) -> Option<String> {
    registry_audiences(config)
        .into_iter()
        .find(|(host, _)| host == key)
        .map(|(_, aud)| aud)
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
fn refresh(config: &Config, audience: &str) -> Result<(), String> {
    let out = Command::new(auth_plugin())
        .args(["print-identity-token", "--refresh-stale", "--audiences", audience])
        .env("GDCLOUD_CONFIG", config.dir())
        .env("GDCLOUD_ACTIVE_CONFIG_NAME", config.name())
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

/// Credentials for `server_url` from the sign-in, or the one-line reason there are none.
pub fn credentials(
    config: &Config,
    server_url: &str,
    audience: &str,
) -> Result<Credentials, String> {
    let dir = config.dir();
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
    let refreshed = refresh(config, audience);
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
