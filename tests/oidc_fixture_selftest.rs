//! Self-test of the OpenID provider fixture (tests/util/oidc.rs, tests/oidc/): against the real
//! oidc-provider it proves authorization code + PKCE with the curl "browser", RS256 JWT access
//! tokens for the registry audience, refresh-token rotation and reuse detection, `invalid_target`
//! for an audience not granted, device flow, revocation, short access-token lifetimes, TLS with our
//! own CA, and browser.sh as `$BROWSER`. When an OIDC product test fails, run this first.
//! Needs `npm ci --prefix tests/oidc`.

use crate::util::oidc;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use oidc::{
    browser_login, browser_script, device_approve, jwt_header, jwt_payload, post_form, Provider,
    ProviderOptions, TestCa, REGISTRY_AUDIENCE,
};

const OTHER_AUDIENCE: &str = "https://other.test";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A fresh PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// What a client sends to the authorization endpoint, and what it needs to redeem the code.
struct AuthRequest {
    url: String,
    verifier: String,
    redirect_uri: String,
}

/// An authorization URL as the product would build it. `prompt=consent` is what makes
/// oidc-provider keep `offline_access` (and so issue a refresh token).
fn auth_request(
    p: &Provider,
    resource: Option<&str>,
    prompt_consent: bool,
    port: u16,
) -> AuthRequest {
    let (verifier, challenge) = pkce();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut params = vec![
        ("client_id", p.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", "openid offline_access email"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "state-1"),
        ("nonce", "nonce-1"),
    ];
    if let Some(r) = resource {
        params.push(("resource", r));
    }
    if prompt_consent {
        params.push(("prompt", "consent"));
    }
    let url = url::Url::parse_with_params(&p.authorization_endpoint(), &params).expect("auth URL");
    AuthRequest {
        url: url.to_string(),
        verifier,
        redirect_uri,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).expect("callback URL");
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Logs in through the browser and redeems the code; returns the token response.
fn login_and_redeem(p: &Provider, user: &str, resource: Option<&str>, ca: Option<&Path>) -> Value {
    let req = auth_request(p, resource, true, free_port());
    let callback = browser_login(&req.url, user, ca);
    assert!(
        callback.starts_with(&req.redirect_uri),
        "callback {callback}\n{}",
        p.log()
    );
    assert_eq!(query_param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(p.issuer.as_str())
    );
    let code = query_param(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}"));
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", req.verifier.as_str()),
        ("redirect_uri", req.redirect_uri.as_str()),
        ("client_id", p.client_id.as_str()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let (status, tokens) = post_form(&p.token_endpoint(), &form, ca);
    assert_eq!(status, 200, "code exchange: {tokens}\n{}", p.log());
    tokens
}

fn refresh(p: &Provider, rt: &str, resource: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", p.client_id.as_str()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    post_form(&p.token_endpoint(), &form, None)
}

fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// Asserts `at` is an RS256 JWT access token for `aud`, issued by `p`, and returns its payload.
fn assert_jwt_for(p: &Provider, at: &str, aud: &str) -> Value {
    let header = jwt_header(at);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    let payload = jwt_payload(at);
    assert_eq!(payload["aud"], aud, "{payload}");
    assert_eq!(payload["iss"], p.issuer.as_str(), "{payload}");
    assert_eq!(payload["client_id"], p.client_id.as_str(), "{payload}");
    payload
}

fn assert_error(resp: &(u16, Value), error: &str) {
    assert_eq!(resp.0, 400, "{}", resp.1);
    assert_eq!(resp.1["error"], error, "{}", resp.1);
}

#[test]
fn code_flow_refresh_rotation_and_targets() {
    let p = Provider::start(ProviderOptions {
        audiences: vec![REGISTRY_AUDIENCE.into(), OTHER_AUDIENCE.into()],
        ..ProviderOptions::default()
    });
    let tokens = login_and_redeem(&p, "alice", Some(REGISTRY_AUDIENCE), None);
    let id = jwt_payload(str_field(&tokens, "id_token"));
    assert_eq!(jwt_header(str_field(&tokens, "id_token"))["alg"], "RS256");
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["email"], "alice@example.test");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["aud"], p.client_id.as_str());
    assert_jwt_for(&p, str_field(&tokens, "access_token"), REGISTRY_AUDIENCE);
    let rt0 = str_field(&tokens, "refresh_token").to_string();

    // Refresh for the registry: a JWT for it, and a new refresh token (rotation).
    let (status, r1) = refresh(&p, &rt0, Some(REGISTRY_AUDIENCE));
    assert_eq!(status, 200, "{r1}");
    let at = assert_jwt_for(&p, str_field(&r1, "access_token"), REGISTRY_AUDIENCE);
    assert_eq!(at["sub"], "alice");
    assert_eq!(r1["expires_in"], 300);
    let rt1 = str_field(&r1, "refresh_token").to_string();
    assert_ne!(rt1, rt0, "refresh tokens rotate");

    // Without `resource`: useGrantedResource gives a token for the one resource granted.
    let (status, r2) = refresh(&p, &rt1, None);
    assert_eq!(status, 200, "{r2}");
    assert_jwt_for(&p, str_field(&r2, "access_token"), REGISTRY_AUDIENCE);
    let rt2 = str_field(&r2, "refresh_token").to_string();

    // An audience the provider knows but that was not requested at login.
    assert_error(&refresh(&p, &rt2, Some(OTHER_AUDIENCE)), "invalid_target");
    // Pitfall: oidc-provider rotates BEFORE resolving the resource, so that failed request
    // consumed rt2; presenting it again is reuse and revokes the grant.
    assert_error(&refresh(&p, &rt2, Some(REGISTRY_AUDIENCE)), "invalid_grant");
}

#[test]
fn reusing_a_rotated_refresh_token_revokes_the_grant() {
    let p = Provider::start(ProviderOptions::default());
    let tokens = login_and_redeem(&p, "alice", Some(REGISTRY_AUDIENCE), None);
    let rt0 = str_field(&tokens, "refresh_token").to_string();
    let (status, r1) = refresh(&p, &rt0, Some(REGISTRY_AUDIENCE));
    assert_eq!(status, 200, "{r1}");
    let rt1 = str_field(&r1, "refresh_token").to_string();
    assert_error(&refresh(&p, &rt0, Some(REGISTRY_AUDIENCE)), "invalid_grant");
    // The whole grant is gone: the newest refresh token fails too.
    assert_error(&refresh(&p, &rt1, Some(REGISTRY_AUDIENCE)), "invalid_grant");
}

#[test]
fn unknown_audience_at_login_is_invalid_target() {
    let p = Provider::start(ProviderOptions::default());
    let req = auth_request(&p, Some(OTHER_AUDIENCE), true, free_port());
    let callback = browser_login(&req.url, "alice", None);
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("invalid_target"),
        "{callback}"
    );
}

#[test]
fn without_prompt_consent_there_is_no_refresh_token() {
    let p = Provider::start(ProviderOptions::default());
    let req = auth_request(&p, Some(REGISTRY_AUDIENCE), false, free_port());
    let callback = browser_login(&req.url, "alice", None);
    let code = query_param(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", req.verifier.as_str()),
        ("redirect_uri", req.redirect_uri.as_str()),
        ("client_id", p.client_id.as_str()),
        ("resource", REGISTRY_AUDIENCE),
    ];
    let (status, tokens) = post_form(&p.token_endpoint(), &form, None);
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("id_token").is_some(), "{tokens}");
}

#[test]
fn pkce_is_required() {
    let p = Provider::start(ProviderOptions::default());
    let url = url::Url::parse_with_params(
        &p.authorization_endpoint(),
        [
            ("client_id", p.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
        ],
    )
    .unwrap();
    let callback = browser_login(url.as_str(), "alice", None);
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("invalid_request"),
        "{callback}"
    );
}

#[test]
fn revocation_revokes_the_refresh_token() {
    let p = Provider::start(ProviderOptions::default());
    let tokens = login_and_redeem(&p, "alice", Some(REGISTRY_AUDIENCE), None);
    let rt = str_field(&tokens, "refresh_token");
    let form = [
        ("token", rt),
        ("token_type_hint", "refresh_token"),
        ("client_id", p.client_id.as_str()),
    ];
    let (status, body) = post_form(&p.revocation_endpoint(), &form, None);
    assert_eq!(status, 200, "{body}\n{}", p.log());
    assert_error(&refresh(&p, rt, Some(REGISTRY_AUDIENCE)), "invalid_grant");
}

#[test]
fn device_flow_with_short_access_tokens() {
    let p = Provider::start(ProviderOptions {
        access_token_ttl: 20,
        ..ProviderOptions::default()
    });
    let form = [
        ("client_id", p.client_id.as_str()),
        ("scope", "openid offline_access email"),
        ("resource", REGISTRY_AUDIENCE),
    ];
    let (status, dev) = post_form(&p.device_authorization_endpoint(), &form, None);
    assert_eq!(status, 200, "{dev}");
    assert!(dev.get("interval").is_none(), "{dev}");
    let device_code = str_field(&dev, "device_code");
    let poll = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code),
        ("client_id", p.client_id.as_str()),
    ];
    assert_error(
        &post_form(&p.token_endpoint(), &poll, None),
        "authorization_pending",
    );

    device_approve(
        str_field(&dev, "verification_uri"),
        str_field(&dev, "user_code"),
        "bob",
        None,
    );
    // oidc-provider 9 sends no `interval` (clients default to 5 s, RFC 8628) and never answers
    // `slow_down`, so the test may poll again at once.
    let (status, tokens) = post_form(&p.token_endpoint(), &poll, None);
    assert_eq!(status, 200, "{tokens}\n{}", p.log());
    let at = assert_jwt_for(&p, str_field(&tokens, "access_token"), REGISTRY_AUDIENCE);
    assert_eq!(at["sub"], "bob");
    assert_eq!(tokens["expires_in"], 20);
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        20
    );
    assert_eq!(
        jwt_payload(str_field(&tokens, "id_token"))["email"],
        "bob@example.test"
    );
    let (status, r1) = refresh(
        &p,
        str_field(&tokens, "refresh_token"),
        Some(REGISTRY_AUDIENCE),
    );
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["expires_in"], 20);

    // verification_uri_complete (code in the URL) works too.
    let (_, dev2) = post_form(&p.device_authorization_endpoint(), &form, None);
    device_approve(
        str_field(&dev2, "verification_uri_complete"),
        "",
        "carol",
        None,
    );
    let poll2 = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", str_field(&dev2, "device_code")),
        ("client_id", p.client_id.as_str()),
    ];
    let (status, tokens2) = post_form(&p.token_endpoint(), &poll2, None);
    assert_eq!(status, 200, "{tokens2}");
    assert_eq!(
        jwt_payload(str_field(&tokens2, "access_token"))["sub"],
        "carol"
    );
}

#[test]
fn tls_with_our_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let p = Provider::start(ProviderOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderOptions::default()
    });
    assert_eq!(p.issuer, format!("https://127.0.0.1:{}", p.port));
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca.ca_cert)
        .arg(format!("{}/.well-known/openid-configuration", p.issuer))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disco: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(disco["issuer"], p.issuer.as_str());
    assert_eq!(disco["token_endpoint"], p.token_endpoint().as_str());

    let tokens = login_and_redeem(&p, "alice", Some(REGISTRY_AUDIENCE), Some(&ca.ca_cert));
    assert_jwt_for(&p, str_field(&tokens, "access_token"), REGISTRY_AUDIENCE);
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
}

#[test]
fn browser_sh_delivers_the_code_to_the_loopback_listener() {
    let p = Provider::start(ProviderOptions::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let req = auth_request(
        &p,
        Some(REGISTRY_AUDIENCE),
        true,
        listener.local_addr().unwrap().port(),
    );
    // As the product would: `$BROWSER <url>`, not waited for.
    let browser = std::process::Command::new(browser_script())
        .arg(&req.url)
        .env("OIDC_TEST_USER", "dave")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut request_line = String::new();
    BufReader::new(&conn).read_line(&mut request_line).unwrap();
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    drop(conn);
    let out = browser.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "browser.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        request_line.starts_with("GET /callback?code="),
        "{request_line}"
    );
    assert!(request_line.contains("state=state-1"), "{request_line}");
}

#[test]
fn without_use_granted_resource_a_bare_refresh_is_opaque() {
    let p = Provider::start(ProviderOptions {
        use_granted_resource: false,
        ..ProviderOptions::default()
    });
    let tokens = login_and_redeem(&p, "alice", Some(REGISTRY_AUDIENCE), None);
    let (status, r1) = refresh(&p, str_field(&tokens, "refresh_token"), None);
    assert_eq!(status, 200, "{r1}");
    let at = str_field(&r1, "access_token");
    assert!(
        !at.contains('.'),
        "opaque (userinfo) access token expected, got {at}"
    );
    assert!(r1["id_token"].is_string(), "{r1}");
    let (status, r2) = refresh(&p, str_field(&r1, "refresh_token"), Some(REGISTRY_AUDIENCE));
    assert_eq!(status, 200, "{r2}");
    assert_jwt_for(&p, str_field(&r2, "access_token"), REGISTRY_AUDIENCE);
}
