//! Registry authentication: where credentials come from (as Docker finds them) and what the
//! registry's `WWW-Authenticate` challenge asks for.
//!
//! Lookup order, Docker's: `credHelpers[host]` (any `docker-credential-*`, ours included), then
//! `credsStore`, then `auths` in `$DOCKER_CONFIG/config.json`; an explicit `--username` with
//! `--password-stdin` overrides all of them. Parsing is pure and table-tested; running a helper is
//! the only I/O here.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::credentials::{key, IDENTITY_TOKEN_USER};
use crate::docker_config;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`Username: <token>` in helper answers, `identitytoken` in `auths`).
    IdentityToken(Secret),
}

impl Credentials {
    /// The `Authorization: Basic …` value for a username and password (marked sensitive, so it is
    /// never logged); `None` for other kinds.
    pub fn basic_header(&self) -> Option<reqwest::header::HeaderValue> {
        let Credentials::Basic { username, password } = self else {
            return None;
        };
        let raw = format!("{username}:{}", password.expose());
        let mut v = reqwest::header::HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
        .ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// Credentials plus where they came from, for error messages ("tried credHelpers[h] = gdcloud").
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credential helper docker-credential-{helper} for {host} failed: {message}")]
    Helper {
        helper: String,
        host: String,
        message: String,
    },
    #[error("{0}")]
    DockerConfig(#[from] docker_config::Error),
}

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
pub fn from_auth_entry(entry: &serde_json::Value) -> Option<Credentials> {
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
pub fn lookup(host: &str) -> Result<Found, AuthError> {
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

/// What a registry's `WWW-Authenticate` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"`); quoted values may
/// hold commas (`scope="repository:a:pull,push"`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        });
    }
    None
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("bearer realm=http://h/t"),
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

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
