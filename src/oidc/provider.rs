//! Talking to the OpenID provider over HTTP: discovery, JWKS, the token endpoint, and the PKCE and
//! random values a sign-in needs. Only the plugins build this (feature `net`); the credential
//! helper reads the token cache and never speaks HTTP.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use super::{jwt, Error, Result, Settings};
use crate::bounded;
use crate::http::{self, TlsOptions};

impl Settings {
    pub fn http(&self, log_http: bool) -> Result<reqwest::Client> {
        Ok(http::client(&TlsOptions {
            insecure: false,
            ca_files: self.ca_file.iter().cloned().collect(),
            log_http,
        })?)
    }
}

/// The provider's endpoints, from `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| connect_error(url, &e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Provider {
            url: url.to_string(),
            status: status.as_u16(),
            message: error_text(resp).await,
        });
    }
    let body = read_answer(resp, url, bounded::LISTING, what).await?;
    serde_json::from_slice(&body).map_err(|e| Error::Protocol {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Reads a provider's answer of at most `limit` bytes ([`bounded`]: discovery documents and
/// JWKS are listings, token answers tokens); more is an error naming `what`.
pub(crate) async fn read_answer(
    resp: reqwest::Response,
    url: &str,
    limit: u64,
    what: &str,
) -> Result<bytes::Bytes> {
    bounded::response(resp, limit, &format!("the identity provider's {what}"))
        .await
        .map_err(|e| match e {
            bounded::BodyError::TooLarge(t) => Error::Protocol {
                what: what.to_string(),
                reason: t.to_string(),
            },
            bounded::BodyError::Transport(e) => connect_error(url, &e),
        })
}

/// The start of an error answer, escaped, for a message.
async fn error_text(resp: reqwest::Response) -> String {
    quoted(&bounded::response_prefix(resp, bounded::ERROR_BODY).await)
}

pub(crate) fn connect_error(url: &str, e: &reqwest::Error) -> Error {
    const HINTS: http::Hints = http::Hints {
        certificate: "",
        unreachable: "",
    };
    let f = http::connect_failure(url, e, &HINTS);
    let hint = if http::classify(&f.detail) == http::Failure::Certificate {
        format!(
            "; checked {} against the system roots and the CA in {} (if set): trust the provider's CA with --login-config-cert FILE",
            http::host_of(url),
            super::CERT_PROPERTY
        )
    } else {
        String::new()
    };
    Error::Connect {
        url: f.url,
        detail: f.detail + &hint,
    }
}

impl Provider {
    pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Provider> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let p: Provider = get_json(client, &url, "discovery document").await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer we asked.
        if p.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(Error::Protocol {
                what: "discovery document".into(),
                reason: format!("it names issuer {:?}, not {issuer:?}", p.issuer),
            });
        }
        Ok(p)
    }

    pub async fn jwks(&self, client: &reqwest::Client) -> Result<jwt::Jwks> {
        get_json(client, &self.jwks_uri, "JWKS").await
    }
}

/// URL-safe random text (`n` random bytes): PKCE verifiers, `state`, `nonce`.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The answer of a token endpoint (RFC 6749 §5.1), or its error (§5.2).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// The start of an answer that is not what was expected, escaped, for a message.
pub(crate) fn quoted(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    crate::text::escape(&text).into_owned()
}

/// POSTs a form to the token endpoint; an OAuth error answer comes back as `Ok` with `error` set.
pub async fn token_request(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse> {
    let resp = client
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| connect_error(url, &e))?;
    let status = resp.status();
    let body = read_answer(resp, url, bounded::TOKEN, "token answer").await?;
    match serde_json::from_slice::<TokenResponse>(&body) {
        Ok(t) if status.is_success() || t.error.is_some() => Ok(t),
        _ => Err(Error::Provider {
            url: url.to_string(),
            status: status.as_u16(),
            message: quoted(&body),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
    }
}
