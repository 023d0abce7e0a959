//! The token dance: the `Authorization` header for a scope, from the challenge the registry last
//! sent. Basic sends the password itself; Bearer fetches a token from the realm (GET with Basic
//! auth, Docker's way, else the OAuth2 POST grants) and caches it per scope for the run.
//!
//! The realm may be on another host (Docker's rule), but a password never goes to it over plain
//! HTTP ([`CredentialPolicy::realm_may_receive`]); a request to a URL off the registry's origin
//! goes without credentials ([`CredentialPolicy::is_registry`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response};
use serde::Deserialize;
use url::Url;

use super::{parse_challenge, Challenge, Credentials};
use crate::bounded;
use crate::http;
use crate::registry::client::{Client, Scope};
use crate::registry::deadline;
use crate::registry::error::{connect_error, Error, Result};
#[cfg(doc)]
use crate::registry::origin::CredentialPolicy;
use crate::registry::transport::read_body;

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    expires: Instant,
}

/// What the client learned about authenticating for this run: the last challenge, and the tokens
/// fetched per scope.
#[derive(Default)]
pub(crate) struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<Scope, Token>,
}

impl AuthState {
    pub(crate) fn knows_challenge(&self) -> bool {
        self.challenge.is_some()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn bearer(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}

/// The challenge of a 401 (or a ping's) answer, if it names one we speak.
pub(crate) fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_challenge)
}

impl Client {
    /// Records the challenge of the `/v2/` ping.
    pub(crate) async fn set_challenge(&self, challenge: Option<Challenge>) {
        self.state.lock().await.challenge = challenge;
    }

    /// The `Authorization` value for `scope`, fetching a token when the registry uses token auth.
    async fn authorization(&self, scope: &Scope) -> Result<Option<HeaderValue>> {
        let mut state = self.state.lock().await;
        let challenge = state.challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic_header()),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some(t) = state.tokens.get(scope) {
                    if t.expires > Instant::now() {
                        return Ok(Some(bearer(&t.value)));
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                let header = bearer(&token.value);
                state.tokens.insert(scope.clone(), token);
                Ok(Some(header))
            }
        }
    }

    /// Puts the credentials for `scope` into `headers` when `url` may receive them (see
    /// [`CredentialPolicy`]); a request elsewhere (an upload `Location` on another host, a
    /// downgrade to plain HTTP) goes without.
    pub(crate) async fn authorize(
        &self,
        url: &Url,
        scope: &Scope,
        headers: &mut HeaderMap,
    ) -> Result<()> {
        headers.remove(AUTHORIZATION);
        if !self.policy.is_registry(url) {
            if self.creds.credentials != Credentials::Anonymous
                || self.state.lock().await.knows_challenge()
            {
                self.policy
                    .registry_may_receive(url, "the registry's credentials");
            }
            return Ok(());
        }
        if let Some(h) = self.authorization(scope).await? {
            let what = if h.as_bytes().starts_with(b"Basic ") {
                format!("the password from {}", self.creds.source)
            } else {
                "the registry's bearer token".to_string()
            };
            self.policy.registry_may_receive(url, &what);
            headers.insert(AUTHORIZATION, h);
        }
        Ok(())
    }

    /// After a 401: forgets the token of `scope` and takes the challenge the answer sends.
    pub(crate) async fn learn_challenge(&self, resp: &Response, scope: &Scope) {
        let challenge = challenge_of(resp);
        let mut state = self.state.lock().await;
        state.tokens.remove(scope);
        if challenge.is_some() {
            state.challenge = challenge;
        }
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        self.creds.credentials.basic_header()
    }

    /// Gets a bearer token from `realm` for `scope` (see [`Client::token_answer`] for how).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token> {
        let url = Url::parse(realm).map_err(|e| Error::Protocol {
            url: crate::text::escape(realm).into_owned(),
            reason: format!("bad token realm: {e}"),
        })?;
        if self.creds.credentials != Credentials::Anonymous {
            self.policy
                .realm_may_receive(&url, &format!("the credentials from {}", self.creds.source))?;
        }
        let resp = self.token_answer(url, service, scope).await?;
        self.read_token(resp, realm).await
    }

    /// Asks the realm for a token: GET with Basic auth (Docker's way), falling back to the OAuth2
    /// POST password grant where the GET form is not served; identity tokens use the
    /// refresh-token grant.
    async fn token_answer(
        &self,
        mut url: Url,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Response> {
        let scopes: Vec<&str> = scope.parts().collect();
        let form = |grant: Vec<(&str, String)>| {
            let mut f: Vec<(String, String)> =
                grant.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            f.push(("client_id".into(), "gdcloud-kit".into()));
            if let Some(s) = service {
                f.push(("service".into(), s.to_string()));
            }
            f.push(("scope".into(), scopes.join(" ")));
            f
        };
        if let Credentials::IdentityToken(rt) = &self.creds.credentials {
            let grant = vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt.expose().to_string()),
            ];
            return self.post_form(&url, form(grant)).await;
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &scopes {
                q.append_pair("scope", s);
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(h) = self.basic_header() {
            headers.insert(AUTHORIZATION, h);
        }
        let resp = self.send_raw(Method::GET, url.clone(), headers).await?;
        match &self.creds.credentials {
            Credentials::Basic { username, password }
                if matches!(resp.status().as_u16(), 404 | 405) =>
            {
                url.set_query(None);
                let grant = vec![
                    ("grant_type", "password".into()),
                    ("username", username.clone()),
                    ("password", password.expose().to_string()),
                ];
                self.post_form(&url, form(grant)).await
            }
            _ => Ok(resp),
        }
    }

    /// The token in the realm's answer, and how long it may be used.
    async fn read_token(&self, resp: Response, realm: &str) -> Result<Token> {
        let status = resp.status();
        let shown = crate::text::escape(&http::redact_url(realm)).into_owned();
        if !status.is_success() {
            return Err(Error::Token {
                realm: shown,
                status: status.as_u16(),
                tried: self.creds.source.clone(),
            });
        }
        let what = format!("the token answer from {shown}");
        let body = read_body(resp, bounded::TOKEN, &what, "GET").await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            url: shown.clone(),
            reason: format!("token answer is not JSON: {e}"),
        })?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                url: shown,
                reason: "token answer holds no token".into(),
            })?;
        // Renew a little early so a token never expires mid-request.
        // A day at most: the server's number must not overflow the clock (a panic).
        let life = answer.expires_in.unwrap_or(60).clamp(10, 86_400);
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(life.saturating_sub(5)),
        })
    }

    /// POSTs a form holding a secret to the token realm: no redirects followed (reqwest re-sends a
    /// form body on 307/308 to wherever the redirect points), small deadline.
    async fn post_form(&self, url: &Url, form: Vec<(String, String)>) -> Result<Response> {
        if self.log_http {
            http::log_exchange("POST", url.as_str(), None, &HeaderMap::new());
        }
        let resp = self
            .direct
            .post(url.clone())
            .form(&form)
            .timeout(deadline::request_timeout())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() && !e.is_connect() {
                    deadline::too_long("POST", url.as_str())
                } else {
                    connect_error(url.as_str(), &e, &self.ca_files)
                }
            })?;
        self.log_answer(&Method::POST, url, &resp);
        Ok(resp)
    }
}
