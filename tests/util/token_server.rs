//! A Docker token-auth server (the scheme Harbor and Docker Hub use) for tests: it owns the RSA
//! signing key and certificate that Distribution trusts (`rootcertbundle`), issues RS256 JWTs for
//! `GET /token` (Basic auth) and `POST /token` (OAuth2 password grant, used by containerd and
//! oras-go), and records every request so tests can check *who* authenticated. It exists because
//! no real token server (Harbor, docker_auth) can be installed on the test machines, and because a
//! recorded request log is the only way to prove that a client really sent the credentials we
//! stored for it.
//!
//! Optionally ([`TokenServer::start_with`] and [`JwtPasswordCheck`]) it also accepts, as the
//! password, a JWT access token signed by an OpenID provider for the registry's audience, verified
//! against the provider's JWKS, as Harbor does for OIDC users' CLI secrets; each such password is
//! recorded (see [`TokenServer::jwt_passwords`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use sha2::{Digest, Sha256};

/// The `service` the registry is configured with (and the `aud` claim of every token).
pub const SERVICE: &str = "test-registry";
/// The `issuer` the registry is configured with (and the `iss` claim of every token).
pub const ISSUER: &str = "test-issuer";
/// Lifetime of issued tokens, in seconds.
pub const EXPIRES_IN: u64 = 300;

/// One request the token server saw, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST` (anything else is recorded too, and answered 405).
    pub method: String,
    /// The path without the query, e.g. `/token`.
    pub path: String,
    /// The raw (still percent-encoded) query string, without `?`; empty if none.
    pub query: String,
    /// Every requested scope (`repository:proj/repo:pull,push`), from the query and/or the form.
    pub scopes: Vec<String>,
    /// The `service` parameter, if given.
    pub service: Option<String>,
    /// `grant_type` of a `POST`, if given.
    pub grant_type: Option<String>,
    /// Whether credentials were presented (Basic `Authorization` header, or a password grant).
    pub auth_present: bool,
    /// The user name presented, if any (whether or not the password was right).
    pub username: Option<String>,
    /// The HTTP status the server answered with (200, 400, 401, 404, 405).
    pub status: u16,
}

/// Accept a JWT issued by an OpenID provider as the password (any user name): RS256, signed by a
/// key of the provider's JWKS (fetched with curl on every such request, so key rotation is seen),
/// `iss` equal to `issuer`, `aud` equal to (or, as a list, holding) `audience`, not expired.
#[derive(Debug, Clone)]
pub struct JwtPasswordCheck {
    /// The provider's `jwks_uri`, e.g. `http://127.0.0.1:PORT/jwks`.
    pub jwks_url: String,
    /// The registry's audience (RFC 8707 resource) the token must be for.
    pub audience: String,
    /// The provider's issuer (the `iss` claim).
    pub issuer: String,
    /// CA (PEM) for an `https` `jwks_url`; `None` uses curl's defaults.
    pub ca_file: Option<PathBuf>,
}

/// A password that looked like a JWT and was checked against the [`JwtPasswordCheck`].
#[derive(Debug, Clone)]
pub struct JwtPassword {
    /// The user name it came with.
    pub username: String,
    /// Its claims when it verified, else why it was refused.
    pub verdict: Result<serde_json::Value, String>,
}

/// A running token server; stops (and joins its thread) when dropped.
pub struct TokenServer {
    port: u16,
    cert_path: PathBuf,
    kid: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    jwt_passwords: Arc<Mutex<Vec<JwtPassword>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

struct Issuer {
    username: String,
    password: String,
    key: RsaKeyPair,
    kid: String,
    rng: SystemRandom,
    jwt_check: Option<JwtPasswordCheck>,
    jwt_passwords: Arc<Mutex<Vec<JwtPassword>>>,
}

impl TokenServer {
    /// Starts a token server on `127.0.0.1:<random port>` accepting `username`/`password`.
    /// The signing key (`token.key`, `token.pk8`) and self-signed certificate (`token.crt`,
    /// see [`TokenServer::cert_path`]) are written into `dir`, which must outlive the server.
    pub fn start(dir: &Path, username: &str, password: &str) -> TokenServer {
        TokenServer::start_with(dir, username, password, None)
    }

    /// As [`TokenServer::start`]; with `jwt_check`, a password that is a JWT passing the check is
    /// accepted too, whatever the user name (`username`/`password` keep working).
    pub fn start_with(
        dir: &Path,
        username: &str,
        password: &str,
        jwt_check: Option<JwtPasswordCheck>,
    ) -> TokenServer {
        super::registry::require_tool("openssl");
        if jwt_check.is_some() {
            super::registry::require_tool("curl");
        }
        let key_pem = dir.join("token.key");
        let key_der = dir.join("token.pk8");
        let spki_der = dir.join("token.spki");
        let cert_path = dir.join("token.crt");
        let p = |p: &Path| p.to_str().expect("temp path is UTF-8").to_string();
        run_openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p(&key_pem),
        ]);
        // ring wants unencrypted PKCS#8 DER.
        run_openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &p(&key_pem),
            "-outform",
            "DER",
            "-out",
            &p(&key_der),
        ]);
        // DER SubjectPublicKeyInfo, which is what libtrust hashes for the key id.
        run_openssl(&[
            "pkey",
            "-in",
            &p(&key_pem),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &p(&spki_der),
        ]);
        run_openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &p(&key_pem),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ISSUER}"),
            "-out",
            &p(&cert_path),
        ]);

        let pkcs8 = std::fs::read(&key_der).expect("read token.pk8");
        let key = RsaKeyPair::from_pkcs8(&pkcs8).expect("ring accepts the openssl PKCS#8 key");
        let spki = std::fs::read(&spki_der).expect("read token.spki");
        let kid = libtrust_key_id(&spki);

        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("token server: cannot bind 127.0.0.1:0: {e}")),
        );
        let port = server
            .server_addr()
            .to_ip()
            .expect("token server listens on TCP")
            .port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let jwt_passwords = Arc::new(Mutex::new(Vec::new()));
        let issuer = Issuer {
            username: username.to_string(),
            password: password.to_string(),
            key,
            kid: kid.clone(),
            rng: SystemRandom::new(),
            jwt_check,
            jwt_passwords: Arc::clone(&jwt_passwords),
        };
        let thread = {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            std::thread::Builder::new()
                .name(format!("token-server-{port}"))
                .spawn(move || serve(&server, &issuer, &requests))
                .expect("spawn token server thread")
        };
        TokenServer {
            port,
            cert_path,
            kid,
            requests,
            jwt_passwords,
            server,
            thread: Some(thread),
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The realm to configure in the registry: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// PEM certificate of the signing key (Distribution's `rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The libtrust key id put in the `kid` header of every token.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// A snapshot of every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every JWT password checked so far (only with a [`JwtPasswordCheck`]), in arrival order.
    pub fn jwt_passwords(&self) -> Vec<JwtPassword> {
        self.jwt_passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}; run tests/run.sh"));
    if !out.status.success() {
        panic!(
            "openssl {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// libtrust's key id: base32 (RFC 4648, no padding) of the first 30 bytes of the SHA-256 of the
/// DER SubjectPublicKeyInfo, in groups of 4 characters joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let b32 = base32_nopad(&digest[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 (upper case) without `=` padding.
pub fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u64, 0u32);
    for &b in data {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn serve(server: &tiny_http::Server, issuer: &Issuer, log: &Mutex<Vec<TokenRequest>>) {
    // `recv` returns an error once `unblock` was called by Drop.
    while let Ok(mut req) = server.recv() {
        let (record, status, body, extra) = handle(&mut req, issuer);
        log.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
        resp.add_header(header("Content-Type", "application/json"));
        if let Some((k, v)) = extra {
            resp.add_header(header(k, v));
        }
        let _ = req.respond(resp);
    }
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

type Handled = (
    TokenRequest,
    u16,
    String,
    Option<(&'static str, &'static str)>,
);

fn handle(req: &mut tiny_http::Request, issuer: &Issuer) -> Handled {
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let query_params = parse_form(&query);
    let mut record = TokenRequest {
        method: method.clone(),
        path: path.clone(),
        query,
        scopes: Vec::new(),
        service: None,
        grant_type: None,
        auth_present: false,
        username: None,
        status: 0,
    };
    let error = |record: &mut TokenRequest, status: u16, code: &str, msg: &str| {
        record.status = status;
        let body = serde_json::json!({"errors": [{"code": code, "message": msg}]}).to_string();
        let extra = (status == 401).then_some(("WWW-Authenticate", "Basic realm=\"token\""));
        (record.clone(), status, body, extra)
    };
    if path != "/token" {
        return error(&mut record, 404, "NOT_FOUND", "only /token is served");
    }

    // Gather service, scopes and credentials from the query, the Authorization header and the form.
    let mut params = query_params;
    let mut creds: Option<(String, String)> = None;
    if let Some(h) = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
    {
        record.auth_present = true;
        let v = h.value.as_str();
        match v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            }) {
            Some(c) => creds = Some(c),
            None => {
                return error(
                    &mut record,
                    401,
                    "UNAUTHORIZED",
                    "unsupported Authorization header",
                )
            }
        }
    }
    match method.as_str() {
        "GET" => {}
        "POST" => {
            let mut body = String::new();
            if req.as_reader().read_to_string(&mut body).is_err() {
                return error(&mut record, 400, "BAD_REQUEST", "unreadable body");
            }
            let form = parse_form(&body);
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            record.grant_type = get("grant_type");
            match record.grant_type.as_deref() {
                Some("password") => match (get("username"), get("password")) {
                    (Some(u), Some(p)) => {
                        record.auth_present = true;
                        creds = Some((u, p));
                    }
                    _ => {
                        return error(
                            &mut record,
                            400,
                            "BAD_REQUEST",
                            "password grant needs username and password",
                        )
                    }
                },
                Some(other) => {
                    let msg = format!("unsupported grant_type {other:?}");
                    return error(&mut record, 400, "unsupported_grant_type", &msg);
                }
                None => {
                    return error(&mut record, 400, "invalid_request", "missing grant_type");
                }
            }
            // OAuth2 sends scopes space-separated in one `scope` field.
            for (k, v) in form {
                if k == "scope" {
                    params.extend(v.split(' ').map(|s| ("scope".to_string(), s.to_string())));
                } else if k == "service" {
                    params.push((k, v));
                }
            }
        }
        _ => return error(&mut record, 405, "UNSUPPORTED", "use GET or POST"),
    }
    for (k, v) in &params {
        match k.as_str() {
            "scope" => record.scopes.extend(
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_string()),
            ),
            "service" => record.service = Some(v.clone()),
            _ => {}
        }
    }
    record.username = creds.as_ref().map(|(u, _)| u.clone());

    let subject = match &creds {
        Some((u, p)) if *u == issuer.username && *p == issuer.password => Some(u.clone()),
        Some((u, p)) if issuer.jwt_password_ok(u, p) => Some(u.clone()),
        Some(_) => return error(&mut record, 401, "UNAUTHORIZED", "invalid credentials"),
        None => None,
    };
    // Right credentials: every requested action; anonymous: nothing.
    let access: Vec<serde_json::Value> = if subject.is_some() {
        record
            .scopes
            .iter()
            .filter_map(|s| parse_scope(s))
            .collect()
    } else {
        Vec::new()
    };
    let service = record
        .service
        .clone()
        .unwrap_or_else(|| SERVICE.to_string());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let token = issuer.sign(subject.as_deref().unwrap_or(""), &service, access, now);
    let issued_at = rfc3339(now);
    record.status = 200;
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": EXPIRES_IN,
        "issued_at": issued_at,
    })
    .to_string();
    (record, 200, body, None)
}

/// `type:name:actions`; the name may itself contain `:` (e.g. a port), so split on the first and
/// last colon.
fn parse_scope(scope: &str) -> Option<serde_json::Value> {
    let (typ, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(serde_json::json!({"type": typ, "name": name, "actions": actions}))
}

impl Issuer {
    /// Whether `password` is a JWT passing the [`JwtPasswordCheck`]; records the verdict of every
    /// JWT-shaped password.
    fn jwt_password_ok(&self, username: &str, password: &str) -> bool {
        let Some(check) = &self.jwt_check else {
            return false;
        };
        if password.split('.').count() != 3 {
            return false;
        }
        let verdict = verify_jwt(check, password);
        let ok = verdict.is_ok();
        self.jwt_passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(JwtPassword {
                username: username.to_string(),
                verdict,
            });
        ok
    }

    fn sign(&self, sub: &str, aud: &str, access: Vec<serde_json::Value>, now: u64) -> String {
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).expect("system RNG");
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": sub,
            "aud": aud,
            "exp": now + EXPIRES_IN,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": jti,
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Parses `a=b&c=d` (query string or `application/x-www-form-urlencoded` body).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// UTC RFC 3339 timestamp (`2024-01-02T03:04:05Z`) of a Unix time.
fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(unix)).to_string()
}

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

/// GETs the provider's JWKS with curl.
fn fetch_jwks(check: &JwtPasswordCheck) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "10"]);
    if let Some(ca) = &check.ca_file {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd
        .arg(&check.jwks_url)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "GET {}: {}",
            check.jwks_url,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("JWKS is not JSON: {e}"))
}

/// Verifies an RS256 JWT against the provider's JWKS and the check's issuer and audience; returns
/// its claims.
fn verify_jwt(check: &JwtPasswordCheck, jwt: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("not a JWT (three parts)".into());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64url(h)?).map_err(|e| format!("header is not JSON: {e}"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&b64url(p)?).map_err(|e| format!("payload is not JSON: {e}"))?;
    let signature = b64url(s)?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {} is not RS256", header["alg"]));
    }
    let jwks = fetch_jwks(check)?;
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    let kid = header["kid"].as_str();
    let candidates: Vec<&serde_json::Value> = keys
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .filter(|k| kid.is_none() || k["kid"].as_str() == kid)
        .collect();
    if candidates.is_empty() {
        return Err(format!("no RSA key {kid:?} in the JWKS"));
    }
    let signed = format!("{h}.{p}");
    let verified = candidates.iter().any(|k| {
        let (Some(n), Some(e)) = (k["n"].as_str(), k["e"].as_str()) else {
            return false;
        };
        let (Ok(n), Ok(e)) = (b64url(n), b64url(e)) else {
            return false;
        };
        RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err("the signature does not verify against the JWKS".into());
    }
    if claims["iss"].as_str() != Some(check.issuer.as_str()) {
        return Err(format!("iss {} is not {:?}", claims["iss"], check.issuer));
    }
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => *a == check.audience,
        serde_json::Value::Array(list) => list
            .iter()
            .any(|a| a.as_str() == Some(check.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud {} is not {:?}", claims["aud"], check.audience));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    match claims["exp"].as_u64() {
        Some(exp) if exp > now => {}
        other => return Err(format!("expired or no exp ({other:?}, now {now})")),
    }
    if claims["nbf"].as_u64().is_some_and(|nbf| nbf > now + 60) {
        return Err("not valid yet (nbf)".into());
    }
    Ok(claims)
}
