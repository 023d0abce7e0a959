//! An OCI distribution client for one registry: scheme discovery, Basic and Bearer token auth
//! (tokens cached per scope for the run), retries with backoff, and the manifest, blob, upload and
//! tag calls the artifacts operations need.
//!
//! Blobs are never held in memory: downloads are handed out as response streams, uploads take a
//! stream factory so a failed upload can start again from the source.

use std::collections::HashMap;
use std::net::IpAddr;
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
use super::error::{connect_error, Error, Result};
use crate::http::{self, TlsOptions};
use crate::oci::{self, Digest};

/// Manifests and configs are small; anything bigger is refused rather than loaded.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub tls: TlsOptions,
    /// Credentials given on the command line; else looked up as Docker does.
    pub credentials: Option<Credentials>,
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

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(registry);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
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

/// The body of a registry error answer, for messages: `{"errors":[{"code","message"}]}`.
async fn error_message(resp: Response) -> String {
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
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if let Ok(e) = serde_json::from_str::<Errs>(&text) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text: String = text.chars().take(200).collect();
    if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().replace('\n', " ")
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
                (Err(e @ Error::Connect { .. }), None) => first_err = Some(e),
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

    /// One request with retries on transport errors and 408/429/5xx. No auth handling.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            if self.log_http {
                http::log_exchange(method.as_str(), url.as_str(), None, &headers);
            }
            let result = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .send()
                .await;
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

    fn basic_header(&self) -> Option<HeaderValue> {
        self.creds.credentials.basic_header()
    }

    /// Gets a bearer token: GET with Basic auth (Docker's way), falling back to the OAuth2 POST
    /// password grant where the GET form is not served; identity tokens use the refresh-token grant.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token> {
        let mut url = Url::parse(realm).map_err(|e| Error::Protocol {
            url: realm.to_string(),
            reason: format!("bad token realm: {e}"),
        })?;
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
                realm: http::redact_url(realm),
                status: status.as_u16(),
                tried: self.creds.source.clone(),
            });
        }
        let answer: TokenAnswer = resp.json().await.map_err(|e| Error::Protocol {
            url: http::redact_url(realm),
            reason: format!("token answer is not JSON: {e}"),
        })?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                url: http::redact_url(realm),
                reason: "token answer holds no token".into(),
            })?;
        // Renew a little early so a token never expires mid-request.
        let life = answer.expires_in.unwrap_or(60).max(10);
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(life.saturating_sub(5)),
        })
    }

    async fn post_form(&self, url: &Url, form: Vec<(String, String)>) -> Result<Response> {
        if self.log_http {
            http::log_exchange("POST", url.as_str(), None, &HeaderMap::new());
        }
        let resp = self
            .http
            .post(url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| connect_error(url.as_str(), &e))?;
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

    /// An authenticated request without a body. A 401 drops the cached token and retries once (the
    /// registry may have asked for another scope or the token expired).
    pub async fn request(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
    ) -> Result<Response> {
        for round in 0..2 {
            if let Some(h) = self.authorization(scope).await? {
                headers.insert(AUTHORIZATION, h);
            }
            let resp = self
                .send_raw(method.clone(), url.clone(), headers.clone())
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

    /// Sends a request with a streaming body (uploads). The body cannot be replayed, so auth is
    /// settled first; a 401 here is reported, and the caller restarts the upload.
    pub async fn send_body(
        &self,
        method: Method,
        url: Url,
        scope: &Scope,
        mut headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<Response> {
        if let Some(h) = self.authorization(scope).await? {
            headers.insert(AUTHORIZATION, h);
        }
        if self.log_http {
            http::log_exchange(method.as_str(), url.as_str(), None, &headers);
        }
        let resp = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| connect_error(url.as_str(), &e))?;
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
        if resp.content_length().unwrap_or(0) > MAX_MANIFEST_BYTES {
            return Err(Error::TooLarge {
                what,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
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
        if desc.size > MAX_MANIFEST_BYTES {
            return Err(Error::TooLarge {
                what,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let (resp, _) = self.get_blob(repo, &desc.digest, 0).await?;
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
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

    /// Starts a blob download at `offset` (HTTP Range). Returns the response and whether the
    /// registry honoured the range (206); on `false` the body starts at byte 0.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
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
            .request(Method::GET, url.clone(), &Scope::pull(repo), headers)
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
                .send_body(
                    Method::PUT,
                    url.clone(),
                    scope,
                    headers,
                    reqwest::Body::wrap_stream(stream),
                )
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
                .send_body(
                    Method::PATCH,
                    location.clone(),
                    scope,
                    headers,
                    reqwest::Body::wrap_stream(part),
                )
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

    /// Every tag of `repo`, following `Link` pagination.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(&format!("v2/{repo}/tags/list"));
        url.query_pairs_mut().append_pair("n", "1000");
        let mut all = Vec::new();
        for _ in 0..10_000 {
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
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|l| url.join(&l).ok());
            let list: TagList = resp.json().await.map_err(|e| Error::Protocol {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            all.extend(list.tags.unwrap_or_default());
            match next {
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

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
        {
            Some(
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            )
        } else {
            None
        }
    })
}

async fn read_limited(resp: Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    use futures_util::StreamExt;
    let url = resp.url().to_string();
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| connect_error(&url, &e))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
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
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("harbor.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/p/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/p/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<a>; rel="prev""#), None);
    }
}
