//! Where a registry's credentials come from, as Docker finds them.
//!
//! Lookup order, Docker's: `credHelpers[host]` (any `docker-credential-*`, ours included), then
//! `credsStore`, then `auths` in `$DOCKER_CONFIG/config.json`; an explicit `--username` with
//! `--password-stdin` overrides all of them (see [`crate::registry::Client::connect`]). Decoding
//! is pure and table-tested; running a helper is the only I/O here.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::{AuthError, Credentials, Found};
use crate::credentials::IDENTITY_TOKEN_USER;
use crate::docker_config;
use crate::host as key;
use crate::secret::Secret;

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` for `host`. "Not found" is anonymous, not an error.
fn from_helper(helper: &str, host: &str) -> Result<Credentials, AuthError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| AuthError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        message,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program} ({e}); install it or fix credHelpers/credsStore in the Docker config")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let msg = stdout.trim();
        if msg.contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        let msg = if msg.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            msg.to_string()
        };
        return Err(fail(msg));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("it answered something that is not credentials JSON".into()))?;
    Ok(match answer.username.as_str() {
        IDENTITY_TOKEN_USER => Credentials::IdentityToken(Secret::new(answer.secret)),
        "" if answer.secret.is_empty() => Credentials::Anonymous,
        _ => Credentials::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        },
    })
}

/// Decodes one `auths` entry (`auth` = base64 "user:password", or `username`/`password`,
/// or `identitytoken`).
fn from_auth_entry(entry: &serde_json::Value) -> Option<Credentials> {
    if let Some(tok) = entry
        .get("identitytoken")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        return Some(Credentials::IdentityToken(Secret::new(tok)));
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some(Credentials::Basic {
            username: u.to_string(),
            password: Secret::new(p.trim_end_matches('\n')),
        });
    }
    let u = entry.get("username").and_then(|v| v.as_str())?;
    let p = entry.get("password").and_then(|v| v.as_str()).unwrap_or("");
    Some(Credentials::Basic {
        username: u.to_string(),
        password: Secret::new(p),
    })
}

/// Finds credentials for `host` the way Docker does.
pub(crate) fn lookup(host: &str) -> Result<Found, AuthError> {
    let path = docker_config::docker_config_path()?;
    let file = match docker_config::JsonFile::load(&path) {
        Ok(f) => f,
        // An unreadable Docker config must not stop an anonymous pull; say where we looked instead.
        Err(docker_config::Error::Io { .. }) => {
            return Ok(Found {
                credentials: Credentials::Anonymous,
                source: format!("no readable {}", path.display()),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(helpers) = file.object("credHelpers")? {
        if let Some(helper) = helpers.get(host).and_then(|v| v.as_str()) {
            return Ok(Found {
                credentials: from_helper(helper, host)?,
                source: format!("credHelpers[{host:?}] = {helper:?} in {}", path.display()),
            });
        }
    }
    let store = file.render();
    let store: serde_json::Value = serde_json::from_slice(&store).unwrap_or_default();
    if let Some(helper) = store
        .get("credsStore")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let creds = from_helper(helper, host)?;
        if creds != Credentials::Anonymous {
            return Ok(Found {
                credentials: creds,
                source: format!("credsStore {helper:?} in {}", path.display()),
            });
        }
    }
    if let Some(auths) = file.object("auths")? {
        for (k, v) in auths {
            if key::normalize(k).ok().as_deref() == Some(host) {
                if let Some(c) = from_auth_entry(v) {
                    return Ok(Found {
                        credentials: c,
                        source: format!("auths[{k:?}] in {}", path.display()),
                    });
                }
            }
        }
    }
    Ok(Found {
        credentials: Credentials::Anonymous,
        source: format!("no login for {host} in {}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_entries() {
        let v = serde_json::json!({"auth": "dXNlcjpwYTpzcw=="});
        assert_eq!(
            from_auth_entry(&v),
            Some(Credentials::Basic {
                username: "user".into(),
                password: Secret::new("pa:ss")
            })
        );
        let v = serde_json::json!({"identitytoken": "rt"});
        assert_eq!(
            from_auth_entry(&v),
            Some(Credentials::IdentityToken(Secret::new("rt")))
        );
        assert_eq!(from_auth_entry(&serde_json::json!({})), None);
    }
}
