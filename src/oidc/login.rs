//! `gdcloud auth login`: the authorization code flow with PKCE through the user's browser and a
//! one-shot listener on `127.0.0.1`, or with `--no-browser` the device authorization grant (or, where
//! the provider has none, a redirect URL pasted back). The ID token is verified before anything is
//! saved.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use super::cache::{self, CachedToken, TokenCache};
use super::session::{Session, SessionStore};
use super::{
    jwt, pkce_challenge, random_token, token_request, Error, Provider, Result, Settings,
    TokenResponse,
};
use crate::config::Config;
use crate::secret::Secret;

/// What the flow needs from the person at the terminal; the plugin implements it.
pub trait Interaction {
    /// The authorization URL, for a person to open by hand (also when a browser was started).
    fn show_url(&self, url: &str, browser_started: bool);
    /// The device flow's code and where to enter it.
    fn show_device_code(&self, verification_uri: &str, user_code: &str, complete_uri: Option<&str>);
    /// Reads the redirect URL the person pasted (no device flow at this provider).
    fn read_redirect(&self) -> std::io::Result<String>;
}

#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    pub audiences: Vec<String>,
    pub no_browser: bool,
    /// The program `$BROWSER` names, else the desktop's opener.
    pub browser: Option<String>,
    pub log_http: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub account: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    /// `browser`, `device` or `paste`.
    pub method: &'static str,
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn auth_url(p: &Provider, o: &Options, redirect: &str, attempt: &Attempt) -> Result<String> {
    let mut url = Url::parse(&p.authorization_endpoint).map_err(|e| Error::Protocol {
        what: "authorization endpoint".into(),
        reason: e.to_string(),
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &o.settings.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", &o.settings.scopes)
            .append_pair("state", &attempt.state)
            .append_pair("nonce", &attempt.nonce)
            .append_pair("code_challenge", &attempt.challenge)
            .append_pair("code_challenge_method", "S256");
        // offline_access needs consent (OpenID Connect Core §11).
        if o.settings
            .scopes
            .split_whitespace()
            .any(|s| s == "offline_access")
        {
            q.append_pair("prompt", "consent");
        }
        // RFC 8707: every audience the registries need, granted now so refreshes may ask for them.
        for a in &o.audiences {
            q.append_pair("resource", a);
        }
    }
    Ok(url.into())
}

/// Starts `browser` (or the desktop opener) on `url` without waiting for it.
fn open_browser(browser: Option<&str>, url: &str) -> bool {
    let candidates: Vec<String> = match browser.filter(|b| !b.trim().is_empty()) {
        // $BROWSER may list several programs separated by ':'.
        Some(b) => b.split(':').map(str::to_string).collect(),
        None => vec!["xdg-open".into(), "sensible-browser".into()],
    };
    candidates.iter().any(|program| {
        let mut parts = program.split_whitespace();
        let Some(exe) = parts.next() else {
            return false;
        };
        std::process::Command::new(exe)
            .args(parts)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}

/// Waits for the provider's redirect on `listener`; answers the browser with a short page.
async fn wait_for_callback(listener: TcpListener) -> Result<Url> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| Error::Login(format!("the local listener failed: {e}")))?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut n = 0;
        while n < buf.len() {
            let read = stream.read(&mut buf[n..]).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            n += read;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let request = String::from_utf8_lossy(&buf[..n]);
        let target = request
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        if !target.starts_with("/callback") {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        // Neutral on purpose: the code exchange and the ID token check happen after this page.
        let body = "<html><body><h3>gdcloud received the sign-in response.</h3><p>Return to the terminal to see the result; you can close this window.</p></body></html>";
        let _ = stream
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
            .await;
        return Url::parse(&format!("http://127.0.0.1{target}"))
            .map_err(|e| Error::Login(e.to_string()));
    }
}

/// The `code` of a redirect URL, after checking its `state` (and surfacing a provider error).
fn code_from_redirect(url: &Url, state: &str) -> Result<String> {
    let get = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(err) = get("error") {
        return Err(Error::Login(
            format!(
                "the provider refused: {err} {}",
                get("error_description").unwrap_or_default()
            )
            .trim()
            .to_string(),
        ));
    }
    if get("state").as_deref() != Some(state) {
        return Err(Error::Login("the redirect's state does not match this sign-in (a stale or forged redirect); run the command again".into()));
    }
    get("code").ok_or_else(|| Error::Login("the redirect carries no code".into()))
}

/// The PKCE verifier and the values that tie a redirect to this sign-in.
struct Attempt {
    verifier: String,
    challenge: String,
    state: String,
    nonce: String,
}

impl Attempt {
    fn new() -> Attempt {
        let verifier = random_token(32);
        Attempt {
            challenge: pkce_challenge(&verifier),
            verifier,
            state: random_token(16),
            nonce: random_token(16),
        }
    }
}

/// What the provider answered and how the person signed in.
struct Grant {
    /// `browser`, `device` or `paste`.
    method: &'static str,
    tokens: TokenResponse,
    /// The nonce the ID token must carry (the device flow sends none).
    nonce: Option<String>,
}

/// Signs in: the browser with a loopback redirect, else the device flow, else a pasted redirect
/// URL; then checks the ID token and keeps the session and the ID token.
pub async fn run(config: &Config, o: &Options, ui: &dyn Interaction) -> Result<Report> {
    let client = o.settings.http(o.log_http)?;
    let provider = Provider::discover(&client, &o.settings.issuer).await?;
    let grant = if !o.no_browser {
        browser_flow(&client, &provider, o, ui).await?
    } else if let Some(device_endpoint) = &provider.device_authorization_endpoint {
        Grant {
            method: "device",
            tokens: device_flow(&client, &provider, device_endpoint, o, ui).await?,
            nonce: None,
        }
    } else {
        paste_flow(&client, &provider, o, ui).await?
    };

    let id_token = grant.tokens.id_token.clone().ok_or_else(|| {
        Error::Login("the provider returned no ID token; include openid in auth/scopes".into())
    })?;
    let decoded = jwt::decode(&id_token)?;
    decoded.verify_signature(&provider.jwks(&client).await?)?;
    decoded.verify_id_token(
        &provider.issuer,
        &o.settings.client_id,
        grant.nonce.as_deref(),
        cache::now(),
    )?;
    let refresh = grant.tokens.refresh_token.clone().ok_or_else(|| {
        Error::Login(
            "the provider issued no refresh token; include offline_access in auth/scopes".into(),
        )
    })?;
    let account = decoded
        .claim_str("email")
        .or_else(|| decoded.claim_str("sub"))
        .unwrap_or("")
        .to_string();
    let session = Session {
        issuer: provider.issuer.trim_end_matches('/').to_string(),
        client_id: o.settings.client_id.clone(),
        account: account.clone(),
        refresh_token: Secret::new(refresh),
        audiences: o.audiences.clone(),
        scopes: o.settings.scopes.clone(),
        token_endpoint: provider.token_endpoint.clone(),
        revocation_endpoint: provider.revocation_endpoint.clone(),
        jwks_uri: Some(provider.jwks_uri.clone()),
        ca_file: o.settings.ca_file.clone(),
    };
    SessionStore::open(config)?.save(&session)?;
    cache_id_token(config, &session, &decoded, id_token)?;
    Ok(Report {
        account,
        issuer: session.issuer,
        audiences: o.audiences.clone(),
        method: grant.method,
    })
}

/// The browser flow: a one-shot listener on 127.0.0.1 receives the redirect.
async fn browser_flow(
    client: &reqwest::Client,
    provider: &Provider,
    o: &Options,
    ui: &dyn Interaction,
) -> Result<Grant> {
    let attempt = Attempt::new();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Login(format!("cannot listen on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Login(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let url = auth_url(provider, o, &redirect, &attempt)?;
    let started = open_browser(o.browser.as_deref(), &url);
    ui.show_url(&url, started);
    let callback = tokio::time::timeout(o.timeout, wait_for_callback(listener))
        .await
        .map_err(|_| Error::Timeout)??;
    redeem(
        client, provider, o, &callback, &redirect, attempt, "browser",
    )
    .await
}

/// Trades the code of a redirect that belongs to `attempt` for tokens.
async fn redeem(
    client: &reqwest::Client,
    provider: &Provider,
    o: &Options,
    callback: &Url,
    redirect: &str,
    attempt: Attempt,
    method: &'static str,
) -> Result<Grant> {
    let code = code_from_redirect(callback, &attempt.state)?;
    Ok(Grant {
        method,
        tokens: exchange(client, provider, o, &code, redirect, &attempt.verifier).await?,
        nonce: Some(attempt.nonce),
    })
}

/// No browser and no device flow at this provider: the person opens the URL anywhere and pastes
/// the address the browser ended on.
async fn paste_flow(
    client: &reqwest::Client,
    provider: &Provider,
    o: &Options,
    ui: &dyn Interaction,
) -> Result<Grant> {
    let attempt = Attempt::new();
    let redirect = "http://127.0.0.1/callback".to_string();
    let url = auth_url(provider, o, &redirect, &attempt)?;
    ui.show_url(&url, false);
    let pasted = ui
        .read_redirect()
        .map_err(|e| Error::Login(format!("read the redirect URL: {e}")))?;
    let callback = Url::parse(pasted.trim()).map_err(|_| {
        Error::Login("that is not the redirect URL; copy the whole address from the browser".into())
    })?;
    redeem(client, provider, o, &callback, &redirect, attempt, "paste").await
}

/// Keeps the verified ID token in the token cache, so `print-identity-token` needs no refresh.
fn cache_id_token(
    config: &Config,
    session: &Session,
    decoded: &jwt::Decoded,
    id_token: String,
) -> Result<()> {
    let now = cache::now();
    let mut cache = TokenCache {
        account: session.account.clone(),
        issuer: session.issuer.clone(),
        tokens: Default::default(),
    };
    cache.tokens.insert(
        cache::ID_TOKEN.into(),
        CachedToken {
            token: Secret::new(id_token),
            issued_at: decoded
                .claims
                .get("iat")
                .and_then(|v| v.as_u64())
                .unwrap_or(now),
            expires_at: decoded.expires_at().unwrap_or(now),
        },
    );
    cache.save(config.dir()).map_err(|source| Error::Io {
        action: "write",
        path: cache::path(config.dir()),
        source,
    })
}

async fn exchange(
    client: &reqwest::Client,
    p: &Provider,
    o: &Options,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> Result<TokenResponse> {
    let t = token_request(
        client,
        &p.token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", &o.settings.client_id),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    if let Some(e) = &t.error {
        return Err(Error::Login(
            format!(
                "the provider refused the code: {e} {}",
                t.error_description.clone().unwrap_or_default()
            )
            .trim()
            .to_string(),
        ));
    }
    Ok(t)
}

/// RFC 8628: show the code, poll at the given interval, slow down when told.
async fn device_flow(
    client: &reqwest::Client,
    p: &Provider,
    endpoint: &str,
    o: &Options,
    ui: &dyn Interaction,
) -> Result<TokenResponse> {
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", &o.settings.client_id),
        ("scope", &o.settings.scopes),
    ];
    for a in &o.audiences {
        form.push(("resource", a));
    }
    let resp = client
        .post(endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| super::connect_error(endpoint, &e))?;
    let status = resp.status();
    let body = super::read_answer(
        resp,
        endpoint,
        crate::bounded::TOKEN,
        "device authorization answer",
    )
    .await?;
    let da: DeviceAuthorization = serde_json::from_slice(&body).map_err(|_| Error::Provider {
        url: endpoint.to_string(),
        status: status.as_u16(),
        message: super::quoted(&body),
    })?;
    ui.show_device_code(
        &da.verification_uri,
        &da.user_code,
        da.verification_uri_complete.as_deref(),
    );
    let mut interval = Duration::from_secs(da.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(da.expires_in.unwrap_or(600)).min(o.timeout);
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Timeout);
        }
        let t = token_request(
            client,
            &p.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &da.device_code),
                ("client_id", &o.settings.client_id),
            ],
        )
        .await?;
        match t.error.as_deref() {
            None => return Ok(t),
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("expired_token") => return Err(Error::Timeout),
            Some(other) => {
                return Err(Error::Login(
                    format!(
                        "the provider refused: {other} {}",
                        t.error_description.clone().unwrap_or_default()
                    )
                    .trim()
                    .to_string(),
                ))
            }
        }
    }
}
