//! An OCI distribution client for one registry: scheme discovery, Basic and Bearer token auth
//! (tokens cached per scope for the run), retries with backoff, and the manifest, blob, upload and
//! tag calls the artifacts operations need.
//!
//! Blobs are never held in memory: downloads are handed out as response streams, uploads take a
//! stream factory so a failed upload can start again from the source.
//!
//! Which URLs receive the credentials is [`CredentialPolicy`]'s call (the registry's own origin;
//! the token realm, never over plain HTTP elsewhere); answers read whole are bounded
//! ([`crate::bounded`]); small requests have a deadline and blob streams a rate floor
//! ([`deadline`]); registry text in errors is escaped ([`crate::text::escape`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::auth::{self, Challenge, Credentials, Found};
use super::deadline;
use super::error::{connect_error, Error, Result};
use super::origin::{is_loopback, CredentialPolicy};
use super::paging::{link_next, Pages};
pub use super::paging::{next_link, MAX_PAGES};
use crate::bounded;
use crate::http::{self, TlsOptions};
use crate::oci::{self, Digest};

/// Manifests are small; anything bigger is refused rather than loaded (the one limit,
/// [`bounded::MANIFEST`], also applied to local layouts).
pub const MAX_MANIFEST_BYTES: u64 = bounded::MANIFEST;

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub tls: TlsOptions,
    /// Credentials given on the command line; else looked up as Docker does.
    pub credentials: Option<Credentials>,
    /// `--verbosity debug`: say on stderr where credentials are sent (and where not).
    pub debug: bool,
}

/// What a request needs access to, as a token scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn pull(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull"))
    }
    pub fn push(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull,push"))
    }
    /// Push to `repo` and mount from `from`.
    pub fn push_mount(repo: &str, from: &str) -> Scope {
        Scope(format!(
            "repository:{repo}:pull,push repository:{from}:pull"
        ))
    }
    pub fn catalog() -> Scope {
        Scope("registry:catalog:*".into())
    }
}

struct Token {
    value: String,
    expires: Instant,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<Scope, Token>,
}

pub struct Client {
    http: reqwest::Client,
    /// The same client without redirects, for POSTs whose form holds the password: reqwest
    /// re-sends a form body on 307/308 to wherever the redirect points.
    direct: reqwest::Client,
    policy: CredentialPolicy,
    registry: String,
    base: Url,
    creds: Found,
    state: Mutex<AuthState>,
    log_http: bool,
}

/// A fetched manifest or index: the exact bytes (their digest is the manifest's identity).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Fetched {
    pub fn descriptor(&self) -> oci::Descriptor {
        oci::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// A blob download's body, from [`Client::get_blob`].
pub struct Download(Response);

impl Download {
    /// The body's chunks; an item fails when the registry sends less than
    /// [`deadline::MIN_RATE`] averaged over a window.
    pub fn bytes_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
        let url = self.0.url().to_string();
        deadline::RateChecked::new(Box::pin(self.0.bytes_stream()), &url)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.0.content_length()
    }
}

/// Reads a whole small answer of at most `limit` bytes (see [`bounded`]), mapping a transfer
/// past the request's deadline to the error that names it.
pub(crate) async fn read_body(
    resp: Response,
    limit: u64,
    what: &str,
    method: &str,
) -> Result<Bytes> {
    let url = resp.url().to_string();
    bounded::response(resp, limit, what)
        .await
        .map_err(|e| match e {
            bounded::BodyError::TooLarge(t) => Error::Bounded(t),
            bounded::BodyError::Transport(e) if e.is_timeout() => deadline::too_long(method, &url),
            bounded::BodyError::Transport(e) => connect_error(&url, &e),
        })
}

/// What [`Client::upload`] sends: `size` bytes of `digest`, in PATCH chunks of `chunk_size` when
/// larger than that.
#[derive(Debug, Clone, Copy)]
pub struct BlobUpload<'a> {
    pub digest: &'a Digest,
    pub size: u64,
    pub chunk_size: u64,
}

pub enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session at this location instead.
    Upload(Url),
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

const ATTEMPTS: u32 = 4;

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(250 * 2u64.pow(attempt)))
        .min(Duration::from_secs(10))
}

fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
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

/// The body of a registry error answer, for messages: `{"errors":[{"code","message"}]}`. Only
/// its first [`bounded::ERROR_BODY`] bytes are read, and the text is escaped: it is the
/// registry's, and it ends up on a terminal.
async fn error_message(resp: Response) -> String {
    let status = resp.status();
    let body = bounded::response_prefix(resp, bounded::ERROR_BODY).await;
    describe_error_body(status, &body)
}

/// The message of an error answer's (possibly cut) body: its `errors[]` when it is the
/// registry's JSON, else its first 200 characters; escaped either way.
fn describe_error_body(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !parts.is_empty() {
            return crate::text::escape(&parts.join("; ")).into_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(200).collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        crate::text::escape(&text).into_owned()
    }
}

impl Client {
    /// Connects to `registry` (`host[:port]`): HTTPS, with plain HTTP tried after it only for
    /// loopback registries or `--insecure` (as Docker treats them). The `/v2/` ping learns how the
    /// registry wants to be authenticated.
    pub async fn connect(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let mut tls = opts.tls.clone();
        tls.ca_files.extend(http::installed_cas(registry));
        let http = http::client(&tls)?;
        let direct = http::client_without_redirects(&tls)?;
        let creds = match &opts.credentials {
            Some(c) => Found {
                credentials: c.clone(),
                source: "--username/--password-stdin".into(),
            },
            None => auth::lookup(registry)?,
        };
        let mut schemes = vec!["https"];
        if tls.insecure || is_loopback(registry) {
            schemes.push("http");
        }
        let mut first_err: Option<Error> = None;
        for scheme in schemes {
            let base =
                Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| Error::Protocol {
                    url: registry.into(),
                    reason: e.to_string(),
                })?;
            let client = Client {
                http: http.clone(),
                direct: direct.clone(),
                policy: CredentialPolicy::new(base.clone(), tls.insecure, opts.debug),
                registry: registry.to_string(),
                base,
                creds: creds.clone(),
                state: Mutex::new(AuthState::default()),
                log_http: tls.log_http,
            };
            match (client.ping().await, first_err.take()) {
                (Ok(()), _) => return Ok(client),
                // A certificate problem is the answer: falling back to plain HTTP would hide it.
                (Err(e @ Error::Connect { hint, .. }), None) if hint.contains("CA") => {
                    return Err(e)
                }
                // A server that never finishes the TLS handshake may be plain HTTP that waits for
                // a request line: try plain HTTP where allowed, as after a refused handshake.
                (Err(e @ (Error::Connect { .. } | Error::Stalled { .. })), None) => {
                    first_err = Some(e)
                }
                (Err(e), None) => return Err(e),
                // HTTPS failed and plain HTTP did not work either: the HTTPS failure says more.
                (Err(_), Some(https_err)) => return Err(https_err),
            }
        }
        Err(first_err.expect("at least one scheme tried"))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Where the credentials came from, for messages.
    pub fn credentials_source(&self) -> &str {
        &self.creds.source
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds.credentials
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    async fn ping(&self) -> Result<()> {
        let url = self.base.join("v2/").expect("static path");
        let resp = self
            .send_raw(Method::GET, url.clone(), HeaderMap::new())
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                self.state.lock().await.challenge = challenge;
                Ok(())
            }
            s => Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: s.as_u16(),
                message: format!(
                    "{} is not an OCI registry here ({})",
                    self.registry,
                    error_message(resp).await
                ),
            }),
        }
    }

    /// One small request (its answer read whole, under [`deadline::request_timeout`]) with
    /// retries on transport errors and 408/429/5xx. No auth handling.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
    ) -> Result<Response> {
        self.send_raw_with(method, url, headers, true).await
    }

    /// [`Client::send_raw`]; `small: false` for blob streams, which the caller reads under a
    /// rate floor instead of a deadline.
    async fn send_raw_with(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        small: bool,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            if self.log_http {
                http::log_exchange(method.as_str(), url.as_str(), None, &headers);
            }
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if small {
                req = req.timeout(deadline::request_timeout());
            }
            let result = req.send().await;
            match result {
                Ok(resp) => {
                    if self.log_http {
                        http::log_exchange(
                            method.as_str(),
                            url.as_str(),
                            Some(resp.status().as_u16()),
                            resp.headers(),
                        );
                    }
                    if retryable(resp.status()) && attempt + 1 < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt, retry_after(&resp))).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) if small && e.is_timeout() && !e.is_connect() => {
                    return Err(deadline::too_long(method.as_str(), url.as_str()));
                }
                Err(e) => {
                    // A refused connection or a TLS failure will not heal by retrying.
                    let permanent = crate::http::is_permanent(&e);
                    if permanent || attempt + 1 >= ATTEMPTS {
                        return Err(connect_error(url.as_str(), &e));
                    }
                    tokio::time::sleep(backoff(attempt, None)).await;
                    attempt += 1;
                }
            }
        }
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
    async fn authorize(&self, url: &Url, scope: &Scope, headers: &mut HeaderMap) -> Result<()> {
        headers.remove(AUTHORIZATION);
        if !self.policy.is_registry(url) {
            if self.creds.credentials != Credentials::Anonymous
                || self.state.lock().await.challenge.is_some()
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

    /// The policy that decides which URLs get this registry's credentials.
    pub fn policy(&self) -> &CredentialPolicy {
        &self.policy
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        self.creds.credentials.basic_header()
    }

    /// Gets a bearer token: GET with Basic auth (Docker's way), falling back to the OAuth2 POST
    /// password grant where the GET form is not served; identity tokens use the refresh-token grant.
    /// The realm may be on another host (Docker's rule), but a password never goes to it over
    /// plain HTTP (see [`CredentialPolicy::realm_may_receive`]).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token> {
        let mut url = Url::parse(realm).map_err(|e| Error::Protocol {
            url: crate::text::escape(realm).into_owned(),
            reason: format!("bad token realm: {e}"),
        })?;
        if self.creds.credentials != Credentials::Anonymous {
            self.policy
                .realm_may_receive(&url, &format!("the credentials from {}", self.creds.source))?;
        }
        let scopes: Vec<&str> = scope.0.split(' ').collect();
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
        let resp = match &self.creds.credentials {
            Credentials::IdentityToken(rt) => {
                self.post_form(
                    &url,
                    form(vec![
                        ("grant_type", "refresh_token".into()),
                        ("refresh_token", rt.expose().to_string()),
                    ]),
                )
                .await?
            }
            creds => {
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
                if matches!(resp.status().as_u16(), 404 | 405) {
                    if let Credentials::Basic { username, password } = creds {
                        url.set_query(None);
                        self.post_form(
                            &url,
                            form(vec![
                                ("grant_type", "password".into()),
                                ("username", username.clone()),
                                ("password", password.expose().to_string()),
                            ]),
                        )
                        .await?
                    } else {
                        resp
                    }
                } else {
                    resp
                }
            }
        };
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::Token {
                realm: crate::text::escape(&http::redact_url(realm)).into_owned(),
                status: status.as_u16(),
                tried: self.creds.source.clone(),
            });
        }
        let what = format!(
            "the token answer from {}",
            crate::text::escape(&http::redact_url(realm))
        );
        let body = read_body(resp, bounded::TOKEN, &what, "GET").await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            url: crate::text::escape(&http::redact_url(realm)).into_owned(),
            reason: format!("token answer is not JSON: {e}"),
        })?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                url: crate::text::escape(&http::redact_url(realm)).into_owned(),
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

    /// POSTs a form holding a secret to the token realm: no redirects followed, small deadline.
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
                    connect_error(url.as_str(), &e)
                }
            })?;
        if self.log_http {
            http::log_exchange(
                "POST",
                url.as_str(),
                Some(resp.status().as_u16()),
                resp.headers(),
            );
        }
        Ok(resp)
    }

    /// An authenticated small request without a body. A 401 drops the cached token and retries
    /// once (the registry may have asked for another scope or the token expired).
    pub async fn request(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        headers: HeaderMap,
    ) -> Result<Response> {
        self.request_with(method, url, scope, headers, true).await
    }

    async fn request_with(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
        small: bool,
    ) -> Result<Response> {
        for round in 0..2 {
            self.authorize(&url, scope, &mut headers).await?;
            let resp = self
                .send_raw_with(method.clone(), url.clone(), headers.clone(), small)
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED && round == 0 {
                self.learn_challenge(&resp, scope).await;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns in its second round")
    }

    async fn learn_challenge(&self, resp: &Response, scope: &Scope) {
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let mut state = self.state.lock().await;
        state.tokens.remove(scope);
        if challenge.is_some() {
            state.challenge = challenge;
        }
    }

    /// Sends a request with a body. The body cannot be replayed, so auth is settled first; a 401
    /// here is reported, and the caller restarts the upload. A small body (a manifest) gets the
    /// small-request deadline; a streamed blob is watched by [`Client::upload`] instead.
    pub async fn send_body(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<Response> {
        self.send_body_with(method, url, scope, headers, body, true)
            .await
    }

    async fn send_body_with(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
        body: reqwest::Body,
        small: bool,
    ) -> Result<Response> {
        self.authorize(&url, scope, &mut headers).await?;
        if self.log_http {
            http::log_exchange(method.as_str(), url.as_str(), None, &headers);
        }
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(body);
        if small {
            req = req.timeout(deadline::request_timeout());
        }
        let resp = req.send().await.map_err(|e| {
            if small && e.is_timeout() && !e.is_connect() {
                deadline::too_long(method.as_str(), url.as_str())
            } else {
                connect_error(url.as_str(), &e)
            }
        })?;
        if self.log_http {
            http::log_exchange(
                method.as_str(),
                url.as_str(),
                Some(resp.status().as_u16()),
                resp.headers(),
            );
        }
        Ok(resp)
    }

    /// Sends a streamed blob body of `total` bytes, failing it when the registry takes less than
    /// [`deadline::MIN_RATE`] over a window.
    async fn send_stream<S>(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        headers: HeaderMap,
        stream: S,
        total: u64,
    ) -> Result<Response>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let counter = Arc::new(AtomicU64::new(0));
        let body = reqwest::Body::wrap_stream(deadline::counted(stream, counter.clone()));
        let send = self.send_body_with(method.clone(), url.clone(), scope, headers, body, false);
        deadline::watch_upload(send, counter, total, method.as_str(), url.as_str()).await
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("registry paths are valid")
    }

    /// Maps a failure status to our error, naming `what` (a reference, a blob).
    pub async fn fail(&self, method: &str, url: &Url, what: &str, resp: Response) -> Error {
        match resp.status() {
            StatusCode::UNAUTHORIZED => Error::Unauthorized {
                registry: self.registry.clone(),
                what: what.to_string(),
                tried: self.creds.source.clone(),
            },
            StatusCode::FORBIDDEN => Error::Denied {
                registry: self.registry.clone(),
                what: what.to_string(),
                tried: self.creds.source.clone(),
            },
            status => Error::Status {
                method: method.to_string(),
                url: http::redact_url(url.as_str()),
                status: status.as_u16(),
                message: error_message(resp).await,
            },
        }
    }

    /// Fetches a manifest or index by tag or digest, verifying the bytes against the digest asked for
    /// (or the one the registry claims).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&oci::MANIFEST_ACCEPT.join(", ")).expect("static"),
        );
        let resp = self
            .request(Method::GET, url.clone(), &Scope::pull(repo), headers)
            .await?;
        let what = format!(
            "{}/{repo}{}{reference}",
            self.registry,
            if reference.contains(':') { "@" } else { ":" }
        );
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::ManifestUnknown(format!(
                "{repo}{}{reference}",
                if reference.contains(':') { "@" } else { ":" }
            )));
        }
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, &what, resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Digest::parse(s).ok());
        let bytes = read_body(resp, MAX_MANIFEST_BYTES, &format!("manifest {what}"), "GET")
            .await?
            .to_vec();
        let actual = Digest::sha256_of(&bytes);
        let expected = Digest::parse(reference).ok().or(claimed);
        if let Some(expected) = expected {
            // In the algorithm asked for: a `@sha512:` reference is verified too.
            let got = expected.recompute(&bytes);
            if expected != got {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {what}"),
                    url: url.to_string(),
                    expected,
                    actual: got,
                });
            }
        }
        let media_type = match content_type.filter(|c| oci::is_index(c) || oci::is_manifest(c)) {
            Some(c) => c,
            None => match oci::AnyManifest::parse(None, &bytes)? {
                oci::AnyManifest::Index(i) => i.media_type.unwrap_or_else(|| oci::OCI_INDEX.into()),
                oci::AnyManifest::Image(m) => {
                    m.media_type.unwrap_or_else(|| oci::OCI_MANIFEST.into())
                }
            },
        };
        Ok(Fetched {
            bytes,
            media_type,
            digest: actual,
        })
    }

    /// Reads a small blob (a config) fully, verified against its digest.
    pub async fn get_small_blob(&self, repo: &str, desc: &oci::Descriptor) -> Result<Vec<u8>> {
        let what = format!("blob {} of {repo}", desc.digest);
        if desc.size > bounded::CONFIG {
            return Err(bounded::TooLarge {
                what,
                limit: bounded::CONFIG,
            }
            .into());
        }
        let (resp, _) = self.blob_response(repo, &desc.digest, 0, true).await?;
        let bytes = read_body(resp, bounded::CONFIG, &what, "GET")
            .await?
            .to_vec();
        let actual = desc.digest.recompute(&bytes);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what,
                url: self
                    .url(&format!("v2/{repo}/blobs/{}", desc.digest))
                    .to_string(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Starts a blob download at `offset` (HTTP Range). Returns the body and whether the
    /// registry honoured the range (206); on `false` the body starts at byte 0. The body fails
    /// when the registry sends less than [`deadline::MIN_RATE`] over a window.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Download, bool)> {
        let (resp, ranged) = self.blob_response(repo, digest, offset, false).await?;
        Ok((Download(resp), ranged))
    }

    async fn blob_response(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
        small: bool,
    ) -> Result<(Response, bool)> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"),
            );
        }
        let resp = self
            .request_with(Method::GET, url.clone(), &Scope::pull(repo), headers, small)
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => Ok((resp, true)),
            s if s.is_success() => Ok((resp, false)),
            StatusCode::NOT_FOUND => Err(Error::BlobUnknown {
                repository: repo.to_string(),
                digest: digest.clone(),
            }),
            _ => Err(self
                .fail("GET", &url, &format!("blob {digest} of {repo}"), resp)
                .await),
        }
    }

    /// The blob's size when the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<Option<u64>> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let resp = self
            .request(Method::HEAD, url.clone(), scope, HeaderMap::new())
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self
                .fail("HEAD", &url, &format!("blob {digest} of {repo}"), resp)
                .await),
        }
    }

    /// Opens an upload session, trying a cross-repository mount of `digest` first (from `from`
    /// when known; registries that support it may also mount without).
    pub async fn start_upload(
        &self,
        repo: &str,
        mount: Option<(&Digest, Option<&str>)>,
        scope: &Scope,
    ) -> Result<Mount> {
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        if let Some((digest, from)) = mount {
            let mut q = url.query_pairs_mut();
            q.append_pair("mount", &digest.to_string());
            if let Some(f) = from {
                q.append_pair("from", f);
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .request(Method::POST, url.clone(), scope, headers)
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Mount::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                Ok(Mount::Upload(self.location(&url, &resp)?))
            }
            _ => Err(self
                .fail("POST", &url, &format!("upload to {repo}"), resp)
                .await),
        }
    }

    /// Resolves a `Location` header against the request URL.
    pub fn location(&self, url: &Url, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol {
                url: url.to_string(),
                reason: "no Location header".into(),
            })?;
        url.join(loc).map_err(|e| Error::Protocol {
            url: url.to_string(),
            reason: format!("bad Location {loc:?}: {e}"),
        })
    }

    /// Uploads `size` bytes from `stream` to an open session: one streamed PUT when the blob fits in
    /// `chunk_size`, else PATCH chunks of `chunk_size` (with Content-Range) and a closing PUT.
    /// `chunks` yields exactly `size` bytes split at multiples of its item size.
    pub async fn upload<S>(
        &self,
        repo: &str,
        mut location: Url,
        blob: BlobUpload<'_>,
        scope: &Scope,
        stream: S,
    ) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let BlobUpload {
            digest,
            size,
            chunk_size,
        } = blob;
        let what = format!("blob {digest} to {repo}");
        if size <= chunk_size {
            let mut url = location.clone();
            url.query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            let resp = self
                .send_stream(Method::PUT, url.clone(), scope, headers, stream, size)
                .await?;
            if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
                return Err(self.fail("PUT", &url, &what, resp).await);
            }
            return Ok(());
        }
        let shared = std::sync::Arc::new(Mutex::new(stream));
        let mut sent = 0u64;
        while sent < size {
            let len = chunk_size.min(size - sent);
            let part = take_stream(shared.clone(), len);
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            headers.insert(
                "content-range",
                HeaderValue::from_str(&format!("{}-{}", sent, sent + len - 1)).expect("ascii"),
            );
            let resp = self
                .send_stream(Method::PATCH, location.clone(), scope, headers, part, len)
                .await?;
            if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
                return Err(self.fail("PATCH", &location, &what, resp).await);
            }
            location = self.location(&location, &resp)?;
            sent += len;
        }
        let mut url = location.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .request(Method::PUT, url.clone(), scope, headers)
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, &what, resp).await);
        }
        Ok(())
    }

    /// Uploads a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
                url: url.to_string(),
                reason: format!("bad media type {media_type:?}"),
            })?,
        );
        let resp = self
            .send_body(
                Method::PUT,
                url.clone(),
                &Scope::push(repo),
                headers.clone(),
                bytes.clone().into(),
            )
            .await?;
        let resp = if resp.status() == StatusCode::UNAUTHORIZED {
            self.learn_challenge(&resp, &Scope::push(repo)).await;
            self.send_body(
                Method::PUT,
                url.clone(),
                &Scope::push(repo),
                headers,
                bytes.into(),
            )
            .await?
        } else {
            resp
        };
        if !resp.status().is_success() {
            return Err(self
                .fail("PUT", &url, &format!("manifest {repo}:{reference}"), resp)
                .await);
        }
        Ok(())
    }

    /// Every tag of `repo`, following `Link` pagination on the registry itself: a page pointing
    /// elsewhere, back at a page already read, or past [`MAX_PAGES`] is an error.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(&format!("v2/{repo}/tags/list"));
        url.query_pairs_mut().append_pair("n", "1000");
        let what = format!("tags of {}/{repo}", self.registry);
        let mut all = Vec::new();
        let mut pages = Pages::new(&self.policy, &what);
        loop {
            let resp = self
                .request(
                    Method::GET,
                    url.clone(),
                    &Scope::pull(repo),
                    HeaderMap::new(),
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(Error::ManifestUnknown(format!(
                    "{repo} (no such repository)"
                )));
            }
            if !resp.status().is_success() {
                return Err(self
                    .fail("GET", &url, &format!("tags of {repo}"), resp)
                    .await);
            }
            let next = link_next(&url, &resp);
            let body =
                read_body(resp, bounded::LISTING, &format!("a page of {what}"), "GET").await?;
            let list: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                url: http::redact_url(url.as_str()),
                reason: e.to_string(),
            })?;
            let tags = list.tags.unwrap_or_default();
            // Tags go into URLs and onto terminals: a name outside the spec's grammar is the
            // registry's fault, not something to print or request.
            if let Some(bad) = tags.iter().find(|t| !super::reference::valid_tag(t)) {
                return Err(Error::Protocol {
                    url: http::redact_url(url.as_str()),
                    reason: format!(
                        "the tag list holds {}, which is not a valid tag name",
                        crate::text::escape(bad)
                    ),
                });
            }
            all.extend(tags);
            match pages.next(&url, next)? {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }
}

fn bearer(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}

/// A stream of exactly `len` bytes taken from `shared` (whose items never straddle the boundary).
fn take_stream<S>(
    shared: std::sync::Arc<Mutex<S>>,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold((shared, 0u64), move |(shared, taken)| async move {
        use futures_util::StreamExt;
        if taken >= len {
            return None;
        }
        let item = shared.lock().await.next().await;
        match item {
            Some(Ok(b)) => {
                let n = b.len() as u64;
                Some((Ok(b), (shared, taken + n)))
            }
            Some(Err(e)) => Some((Err(e), (shared, len))),
            None => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob source ended early",
                )),
                (shared, len),
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_escaped_and_cut() {
        let body = br#"{"errors":[{"code":"DENIED","message":"a\u001b[2J\nb"}]}"#;
        assert_eq!(
            describe_error_body(StatusCode::FORBIDDEN, body),
            "DENIED a\\x1b[2J\\nb"
        );
        let text = format!("oops\u{1b}]0;t\u{7}{}", "x".repeat(500));
        let msg = describe_error_body(StatusCode::BAD_REQUEST, text.as_bytes());
        assert!(msg.starts_with("oops\\x1b]0;t\\x07xx"), "{msg}");
        assert!(msg.len() < 220, "{}", msg.len());
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, b" "),
            "Not Found"
        );
    }
}
