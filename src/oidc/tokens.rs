//! Tokens from the stored session: served from the cache while fresh enough, else refreshed with
//! one round trip to the token endpoint. Refresh tokens rotate, so a refresh happens under a lock
//! and saves the new refresh token before anything else: two processes never spend the same one
//! (a reused refresh token makes the provider revoke the whole grant).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cache::{self, CachedToken, TokenCache};
use super::session::{Session, SessionStore};
use super::{jwt, token_request, Error, Result, TokenResponse};
use crate::atomic::DirLock;
use crate::config::Config;
use crate::http::{self, TlsOptions};
use crate::secret::Secret;

/// When a cached token is good enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// More than this many seconds left (what `print-identity-token` promises its caller).
    Margin(u64),
    /// Not yet past half its life (what the credential helper asks for).
    HalfLife,
}

/// Seconds of life a printed token has at least.
pub const DEFAULT_MARGIN: u64 = 300;

#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub token: Secret,
    pub account: String,
    pub expires_at: u64,
    /// Whether this call refreshed it.
    pub refreshed: bool,
}

fn fresh(t: &CachedToken, freshness: Freshness, now: u64) -> bool {
    let margin = match freshness {
        Freshness::Margin(m) => m.min(t.expires_at.saturating_sub(t.issued_at) / 2),
        Freshness::HalfLife => 0,
    };
    t.valid_at(now, margin) && (freshness != Freshness::HalfLife || !t.stale_at(now))
}

fn lock_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("oidc.lock")
}

/// The cached token under `key` when it is fresh enough.
fn cached_token(cached: &TokenCache, key: &str, freshness: Freshness) -> Option<Token> {
    let t = cached.tokens.get(key)?;
    fresh(t, freshness, cache::now()).then(|| Token {
        token: t.token.clone(),
        account: cached.account.clone(),
        expires_at: t.expires_at,
        refreshed: false,
    })
}

/// A token for `audience` (an access token, RFC 8707) or the ID token (`None`): from the cache
/// while fresh, else refreshed under the lock, so parallel callers refresh once.
pub async fn token(
    config: &Config,
    audience: Option<&str>,
    freshness: Freshness,
    log_http: bool,
) -> Result<Token> {
    let dir = config.dir().to_path_buf();
    let key = audience.unwrap_or(cache::ID_TOKEN);
    if let Some(t) = cached_token(&TokenCache::load(&dir), key, freshness) {
        return Ok(t);
    }
    let lock_path = lock_dir(&dir);
    let _lock = DirLock::acquire(&lock_path).map_err(|source| Error::Io {
        action: "lock",
        path: lock_path.clone(),
        source,
    })?;
    // Another process may have refreshed while we waited for the lock.
    let mut cached = TokenCache::load(&dir);
    if let Some(t) = cached_token(&cached, key, freshness) {
        return Ok(t);
    }
    let store = SessionStore::open(config)?;
    let mut session = store.load()?.ok_or(Error::NoSession)?;
    if let Some(a) = audience {
        if !session.audiences.iter().any(|g| g == a) {
            return Err(Error::AudienceNotGranted(a.to_string()));
        }
    }
    let client = http::client(&TlsOptions {
        insecure: false,
        ca_files: session.ca_file.iter().cloned().collect(),
        log_http,
    })?;
    let resp = refresh(&client, &session, audience).await?;
    // The rotated refresh token first: losing it would end the session.
    if let Some(rt) = &resp.refresh_token {
        session.refresh_token = Secret::new(rt.clone());
        store.save(&session)?;
    }
    record(&client, &session, &resp, audience, &mut cached).await?;
    cached.save(&dir).map_err(|source| Error::Io {
        action: "write",
        path: cache::path(&dir),
        source,
    })?;
    let t = cached.tokens.get(key).ok_or_else(|| Error::Protocol {
        what: "token answer".into(),
        reason: "no ID token (include openid in auth/scopes)".into(),
    })?;
    Ok(Token {
        token: t.token.clone(),
        account: cached.account.clone(),
        expires_at: t.expires_at,
        refreshed: true,
    })
}

/// The refresh grant (RFC 6749 §6) for `audience`; OAuth errors become what the user should do.
async fn refresh(
    client: &reqwest::Client,
    session: &Session,
    audience: Option<&str>,
) -> Result<TokenResponse> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", session.refresh_token.expose()),
        ("client_id", &session.client_id),
    ];
    if let Some(a) = audience {
        form.push(("resource", a));
    }
    let resp = token_request(client, &session.token_endpoint, &form).await?;
    let described = |e: &str| format!("{e} {}", resp.error_description.clone().unwrap_or_default());
    match resp.error.as_deref() {
        None => Ok(resp),
        Some("invalid_target") => Err(Error::AudienceNotGranted(
            audience.unwrap_or("").to_string(),
        )),
        Some(e @ ("invalid_grant" | "invalid_client" | "unauthorized_client")) => {
            Err(Error::SessionExpired(described(e).trim().to_string()))
        }
        Some(e) => Err(Error::Provider {
            url: session.token_endpoint.clone(),
            status: 400,
            message: described(e),
        }),
    }
}

/// Puts the refreshed tokens into the cache: the ID token (verified like the one from sign-in
/// when it is what the caller asked for, but for the nonce, which a refresh does not carry) and
/// the access token for `audience`.
async fn record(
    client: &reqwest::Client,
    session: &Session,
    resp: &TokenResponse,
    audience: Option<&str>,
    cached: &mut TokenCache,
) -> Result<()> {
    let now = cache::now();
    cached.account = session.account.clone();
    cached.issuer = session.issuer.clone();
    if let (None, Some(id), Some(jwks_uri)) = (audience, &resp.id_token, &session.jwks_uri) {
        let d = jwt::decode(id)?;
        let jwks: jwt::Jwks = super::get_json(client, jwks_uri, "JWKS").await?;
        d.verify_signature(&jwks)?;
        d.verify_id_token(&session.issuer, &session.client_id, None, now)?;
    }
    if let Some(id) = &resp.id_token {
        if let Ok(d) = jwt::decode(id) {
            cached.tokens.insert(
                cache::ID_TOKEN.into(),
                CachedToken {
                    token: Secret::new(id.clone()),
                    issued_at: d.claims.get("iat").and_then(|v| v.as_u64()).unwrap_or(now),
                    expires_at: d.expires_at().unwrap_or(now),
                },
            );
        }
    }
    if let Some(a) = audience {
        let access = resp.access_token.clone().ok_or_else(|| Error::Protocol {
            what: "token answer".into(),
            reason: "no access token".into(),
        })?;
        cached.tokens.insert(
            a.to_string(),
            CachedToken {
                token: Secret::new(access),
                issued_at: now,
                expires_at: now + resp.expires_in.unwrap_or(60),
            },
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    pub account: Option<String>,
    /// Whether the provider confirmed the revocation (RFC 7009).
    pub revoked_at_provider: bool,
    /// Why it could not be revoked there (offline, no endpoint); the local session is gone anyway.
    pub warning: Option<String>,
}

/// Revokes the refresh token at the provider and removes the session and cached tokens, offline too.
pub async fn revoke(config: &Config, log_http: bool) -> Result<RevokeReport> {
    let dir = config.dir().to_path_buf();
    let lock_path = lock_dir(&dir);
    let _lock = DirLock::acquire(&lock_path).map_err(|source| Error::Io {
        action: "lock",
        path: lock_path.clone(),
        source,
    })?;
    let store = SessionStore::open(config)?;
    let session = store.load()?;
    let mut report = RevokeReport {
        account: session.as_ref().map(|s| s.account.clone()),
        revoked_at_provider: false,
        warning: None,
    };
    match &session {
        None => report.warning = Some("no stored sign-in; cached tokens removed".into()),
        Some(s) => {
            match &s.revocation_endpoint {
                None => report.warning = Some(
                    "the provider has no revocation endpoint; the sign-in was removed here only"
                        .into(),
                ),
                Some(endpoint) => match revoke_at_provider(s, endpoint, log_http).await {
                    Ok(()) => report.revoked_at_provider = true,
                    Err(warning) => report.warning = Some(warning),
                },
            }
        }
    }
    store.delete()?;
    TokenCache::remove(&dir).map_err(|source| Error::Io {
        action: "remove",
        path: cache::path(&dir),
        source,
    })?;
    Ok(report)
}

/// RFC 7009 revocation of the session's refresh token; the error is the warning to show (the
/// sign-in is removed here whatever happens there).
async fn revoke_at_provider(
    s: &super::session::Session,
    endpoint: &str,
    log_http: bool,
) -> std::result::Result<(), String> {
    // A client that cannot be built (the provider's CA file is gone) must not stop the local
    // removal either.
    let client = http::client(&TlsOptions {
        insecure: false,
        ca_files: s.ca_file.iter().cloned().collect(),
        log_http,
    })
    .map_err(|e| {
        format!("could not contact the provider ({e}); the sign-in was removed here only")
    })?;
    let form = [
        ("token", s.refresh_token.expose()),
        ("token_type_hint", "refresh_token"),
        ("client_id", s.client_id.as_str()),
    ];
    match client.post(endpoint).form(&form).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!(
            "the provider answered the revocation with HTTP {}; the sign-in was removed here",
            r.status().as_u16()
        )),
        Err(e) => Err(format!(
            "could not reach the provider ({}); the sign-in was removed here only",
            super::connect_error(endpoint, &e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_rules() {
        let t = CachedToken {
            token: Secret::new("x"),
            issued_at: 1000,
            expires_at: 2000,
        };
        assert!(fresh(&t, Freshness::HalfLife, 1400));
        assert!(!fresh(&t, Freshness::HalfLife, 1600));
        assert!(fresh(&t, Freshness::Margin(300), 1600));
        assert!(!fresh(&t, Freshness::Margin(300), 1800));
        assert!(!fresh(&t, Freshness::Margin(0), 2000));
    }
}
