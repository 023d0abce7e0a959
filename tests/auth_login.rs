//! `gdcloud-auth login`, `print-identity-token`, `revoke` and the credential helper's token path,
//! end to end against a real OpenID provider (panva's oidc-provider, tests/util/oidc.rs) started
//! per test: authorization code + PKCE through `$BROWSER`, the device flow, TLS with our own CA,
//! refresh-token rotation under 20 parallel `docker-credential-gdcloud get`s (one refresh, counted
//! in the provider's log), audiences not granted, revocation online and offline, the Secret Service
//! session store, and skopeo pushing to a real Distribution registry whose token server accepts the
//! provider's JWT as the password. Needs `npm ci --prefix tests/oidc` once; tools that are missing
//! fail the test, never skip it.

use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use util::env::*;
use util::image::{tiny_image_layout, TAG};
use util::oidc::{
    browser_script, device_approve, jwt_header, jwt_payload, post_form, Provider, ProviderOptions,
    TestCa, CLIENT_ID, REGISTRY_AUDIENCE,
};
use util::registry::require_tool;
use util::token_server::{JwtPasswordCheck, TokenServer, ISSUER, SERVICE};

/// A registry host configured with the registry audience in tests that need no real registry.
const REGISTRY_HOST: &str = "127.0.0.1:5999";
/// An audience the provider knows but that the sign-in does not request.
const OTHER_AUDIENCE: &str = "https://other.test";
const ACCOUNT: &str = "alice@example.test";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A private environment whose commands use the file credential store.
fn file_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    env
}

fn session_path(env: &TestEnv) -> PathBuf {
    env.config_dir.join("oidc_session.json")
}

fn cache_path(env: &TestEnv) -> PathBuf {
    env.config_dir.join("oidc_token_cache.json")
}

fn config_file(env: &TestEnv) -> PathBuf {
    env.config_dir.join("configurations/config_default")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The refresh token of the stored session (file store).
fn stored_refresh_token(env: &TestEnv) -> String {
    read_json(&session_path(env))["refresh_token"]
        .as_str()
        .expect("refresh_token in the session file")
        .to_string()
}

fn cached(env: &TestEnv, key: &str) -> Value {
    read_json(&cache_path(env))["tokens"][key].clone()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `[section] key = value` of the default configuration's file.
fn property(env: &TestEnv, section: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(config_file(env)).unwrap_or_default();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            if current == section && k.trim() == key {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

fn configure_audience(env: &TestEnv, host: &str, audience: &str, extra: &[&str]) {
    let mut args = vec![
        "configure-docker",
        "--registries",
        host,
        "--audience",
        audience,
    ];
    args.extend_from_slice(extra);
    ok(&env.run(AUTH, &args, b""));
}

/// `gdcloud-auth login --issuer-url ISSUER --client-id CLIENT EXTRA…` with `$BROWSER` set to the
/// curl "browser" that signs in as alice and delivers the code to the product's listener.
fn login_cmd(env: &TestEnv, p: &Provider, extra: &[&str]) -> Command {
    let mut c = env.cmd(AUTH);
    c.args([
        "login",
        "--issuer-url",
        &p.issuer,
        "--client-id",
        &p.client_id,
        "--timeout",
        "120",
    ])
    .args(extra)
    .env("BROWSER", browser_script())
    .env("OIDC_TEST_USER", "alice")
    .env_remove("OIDC_TEST_CA");
    c
}

/// Logs in (code + PKCE through `$BROWSER`) and asserts success; returns the output.
#[track_caller]
fn login(env: &TestEnv, p: &Provider, extra: &[&str]) -> Output {
    let o = run_with_stdin(login_cmd(env, p, extra), b"");
    assert!(
        o.status.success(),
        "login failed ({}):\nstdout: {}\nstderr: {}\nprovider log:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        p.log()
    );
    o
}

/// `docker-credential-gdcloud get` for `host`, with the environment's variables.
fn helper_get(env: &TestEnv, host: &str) -> Output {
    env.run(HELPER, &["get"], host.as_bytes())
}

/// A successful `get`'s answer.
#[track_caller]
fn helper_get_ok(env: &TestEnv, p: &Provider, host: &str) -> Value {
    let o = helper_get(env, host);
    assert!(
        o.status.success(),
        "get {host} failed ({}):\nstdout: {}\nstderr: {}\nprovider log:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        p.log()
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("get answered {:?}: {e}", stdout(&o)))
}

/// Asserts the helper failed as the protocol wants: exit 1 and ONE line on stdout, which contains
/// every one of `needles`; returns that line.
#[track_caller]
fn assert_one_line_failure(o: &Output, needles: &[&str]) -> String {
    let out = stdout(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit 1 expected:\nstdout: {out}\nstderr: {}",
        stderr(o)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one stdout line expected: {out:?}");
    assert!(out.ends_with('\n'), "{out:?}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing from {:?}", lines[0]);
    }
    lines[0].to_string()
}

/// Token requests of `grant_type` the provider granted, from its log
/// (`[oidc] grant.success refresh_token`, logged by tests/oidc/provider.mjs for every success).
fn granted(p: &Provider, grant_type: &str) -> usize {
    p.log()
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("[oidc]")
                && w.next() == Some("grant.success")
                && w.next() == Some(grant_type)
                && w.next().is_none()
        })
        .count()
}

/// Token requests the provider refused (any grant type).
fn grant_errors(p: &Provider) -> Vec<String> {
    p.log()
        .lines()
        .filter(|l| l.contains("grant.error"))
        .map(str::to_string)
        .collect()
}

/// A refresh straight at the provider with `rt` (not through the product).
fn provider_refresh(p: &Provider, rt: &str, ca: Option<&Path>) -> (u16, Value) {
    post_form(
        &p.token_endpoint(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", CLIENT_ID),
            ("resource", REGISTRY_AUDIENCE),
        ],
        ca,
    )
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(files_under(&p));
        } else if ft.is_file() {
            out.push(p);
        }
    }
    out
}

/// Waits (≤ `timeout`) for `child` to exit, collecting stdout; kills it on timeout.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let s = child.wait().unwrap();
            panic!("command did not finish within {timeout:?} ({s}); killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

// ---------------------------------------------------------------------------------------------
// 1. Authorization code + PKCE through $BROWSER
// ---------------------------------------------------------------------------------------------

#[test]
fn code_pkce_login_saves_settings_not_secrets_and_helper_serves_registry_token() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);

    let o = login(&env, &p, &[]);
    assert_eq!(
        stdout(&o),
        format!("You are now logged in as [{ACCOUNT}].\n")
    );

    // The authorization URL is printed on stderr, and is a code + PKCE (S256) request with
    // state, nonce, a loopback redirect on a random port and the registry audience as resource.
    let err = stderr(&o);
    let printed = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{}/auth?", p.issuer)))
        .unwrap_or_else(|| panic!("no authorization URL on stderr:\n{err}"));
    let url = url::Url::parse(printed).unwrap();
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        query(&url, "scope").as_deref(),
        Some("openid offline_access email")
    );
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert!(query(&url, "state").is_some_and(|s| s.len() >= 16), "{url}");
    let nonce = query(&url, "nonce").expect("nonce in the authorization URL");
    assert!(nonce.len() >= 16, "{url}");
    assert_eq!(query(&url, "prompt").as_deref(), Some("consent"));
    let resources: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(resources, vec![REGISTRY_AUDIENCE.to_string()]);
    let redirect = url::Url::parse(&query(&url, "redirect_uri").expect("redirect_uri")).unwrap();
    assert_eq!(redirect.scheme(), "http");
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert!(redirect.port().is_some_and(|port| port != 0), "{redirect}");
    assert_eq!(redirect.path(), "/callback");
    assert_eq!(granted(&p, "authorization_code"), 1, "{}", p.log());

    // Settings saved in the configuration file.
    assert_eq!(
        property(&env, "auth", "issuer_url").as_deref(),
        Some(p.issuer.as_str())
    );
    assert_eq!(
        property(&env, "auth", "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        property(&env, "auth", "registry_audiences"),
        Some(format!("{REGISTRY_HOST}={REGISTRY_AUDIENCE}"))
    );

    // The session: a 0600 file holding the refresh token; the ID token (cached) carries our nonce.
    let session = read_json(&session_path(&env));
    assert_eq!(mode(&session_path(&env)), 0o600);
    assert_eq!(session["account"], ACCOUNT);
    assert_eq!(session["issuer"], p.issuer.as_str());
    assert_eq!(session["client_id"], CLIENT_ID);
    let refresh_token = stored_refresh_token(&env);
    assert!(refresh_token.len() > 20, "{refresh_token}");
    let id_token = cached(&env, "")["token"]
        .as_str()
        .expect("ID token cached at login")
        .to_string();
    assert_eq!(mode(&cache_path(&env)), 0o600);
    let id = jwt_payload(&id_token);
    assert_eq!(id["nonce"], nonce.as_str(), "{id}");
    assert_eq!(id["iss"], p.issuer.as_str());

    // The helper answers for the registry with the account and an access token for its audience.
    let got = helper_get_ok(&env, &p, REGISTRY_HOST);
    assert_eq!(got["ServerURL"], REGISTRY_HOST);
    assert_eq!(got["Username"], ACCOUNT);
    let secret = got["Secret"].as_str().expect("Secret").to_string();
    assert_eq!(jwt_header(&secret)["alg"], "RS256");
    let claims = jwt_payload(&secret);
    assert_eq!(claims["aud"], REGISTRY_AUDIENCE, "{claims}");
    assert_eq!(claims["iss"], p.issuer.as_str(), "{claims}");
    assert_eq!(claims["sub"], "alice", "{claims}");

    // No token or secret anywhere but the session (refresh token) and the cache (short-lived
    // tokens): not in the configuration, not in Docker's config.
    let stored_refresh = stored_refresh_token(&env);
    let secrets = [
        ("refresh token", refresh_token.as_str()),
        ("rotated refresh token", stored_refresh.as_str()),
        ("ID token", id_token.as_str()),
        ("access token", secret.as_str()),
    ];
    let files = files_under(&env.home);
    assert!(files.contains(&config_file(&env)), "{files:?}");
    assert!(files.contains(&env.docker_config_file()), "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (what, value) in &secrets {
            let allowed = match name.as_str() {
                "oidc_session.json" => what.contains("refresh"),
                "oidc_token_cache.json" => !what.contains("refresh"),
                _ => false,
            };
            if !allowed {
                assert!(
                    !text.contains(value),
                    "{} holds the {what}:\n{text}",
                    f.display()
                );
            }
        }
    }
    let config_text = std::fs::read_to_string(config_file(&env)).unwrap();
    for word in ["token", "secret", "password"] {
        assert!(
            !config_text.to_ascii_lowercase().contains(word),
            "the configuration mentions {word}:\n{config_text}"
        );
    }
}

/// A redirect that does not carry this sign-in's `state` (a forged or stale one) is refused; other
/// requests to the listener are ignored; a browser that never comes back times out. Nothing is
/// saved in any of these cases.
#[test]
fn login_refuses_a_forged_state_and_times_out_without_a_browser() {
    require_tool("curl");
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    // A "browser" that first requests another path, then delivers a forged redirect.
    let evil = env.path().join("evil-browser.sh");
    write_executable(
        &evil,
        "#!/bin/sh\n\
         redirect=$(printf '%s' \"$1\" | sed -n 's/.*[?&]redirect_uri=\\([^&]*\\).*/\\1/p' \
         | sed 's/%3A/:/g; s/%2F/\\//g')\n\
         base=${redirect%/callback}\n\
         curl -s -o /dev/null \"$base/favicon.ico\"\n\
         curl -s -o /dev/null \"$redirect?code=forged-code&state=forged-state\"\n",
    );
    let mut c = login_cmd(&env, &p, &[]);
    c.env("BROWSER", &evil);
    let o = run_with_stdin(c, b"");
    assert!(!o.status.success(), "stdout: {}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("state does not match"), "{err}");
    assert_eq!(granted(&p, "authorization_code"), 0, "{}", p.log());
    assert_eq!(property(&env, "auth", "issuer_url"), None);
    assert!(!session_path(&env).exists());

    // A browser that never delivers anything.
    let mut c = env.cmd(AUTH);
    c.args(["login", "--issuer-url", &p.issuer, "--client-id", CLIENT_ID])
        .args(["--timeout", "2"])
        .env("BROWSER", "true");
    let started = Instant::now();
    let o = run_with_stdin(c, b"");
    assert!(!o.status.success(), "stdout: {}", stdout(&o));
    assert!(
        stderr(&o).contains("timed out waiting for the browser"),
        "{}",
        stderr(&o)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!session_path(&env).exists());
}

/// The provider refuses an audience it does not know (`invalid_target` on the redirect): the
/// login fails with the provider's reason and saves nothing.
#[test]
fn login_refused_by_the_provider_saves_nothing() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    let o = run_with_stdin(
        login_cmd(&env, &p, &["--audiences", "https://unknown.test"]),
        b"",
    );
    assert!(!o.status.success(), "stdout: {}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("invalid_target"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("ERROR")).count(), 1);
    assert_eq!(property(&env, "auth", "issuer_url"), None);
    assert!(!session_path(&env).exists());
    assert!(!cache_path(&env).exists());
}

/// Without flags, login reads `auth/issuer_url` and `auth/client_id`; flags override them and are
/// saved; with neither, a clear error.
#[test]
fn login_uses_configured_settings_and_flags_override_them() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    let o = env.run(AUTH, &["login"], b"");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--issuer-url"), "{}", stderr(&o));

    std::fs::create_dir_all(config_file(&env).parent().unwrap()).unwrap();
    std::fs::write(
        config_file(&env),
        "[auth]\nissuer_url = http://127.0.0.1:9\nclient_id = wrong-client\n",
    )
    .unwrap();
    login(&env, &p, &[]); // login_cmd passes --issuer-url and --client-id
    assert_eq!(
        property(&env, "auth", "issuer_url").as_deref(),
        Some(p.issuer.as_str())
    );
    assert_eq!(
        property(&env, "auth", "client_id").as_deref(),
        Some(CLIENT_ID)
    );

    // Now from the configuration alone.
    let mut c = env.cmd(AUTH);
    c.args(["login", "--timeout", "120"])
        .env("BROWSER", browser_script())
        .env("OIDC_TEST_USER", "carol");
    let o = run_with_stdin(c, b"");
    assert_eq!(
        ok(&o),
        "You are now logged in as [carol@example.test].\n",
        "{}",
        stderr(&o)
    );
    assert_eq!(
        read_json(&session_path(&env))["account"],
        "carol@example.test"
    );
}

/// `get` for a token registry before any sign-in: exit 1, one line saying to sign in.
#[test]
fn get_without_sign_in_says_run_login() {
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    let line = assert_one_line_failure(
        &helper_get(&env, REGISTRY_HOST),
        &["run: gdcloud auth login"],
    );
    assert!(line.contains("not signed in"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// 2. Device authorization grant (--no-browser)
// ---------------------------------------------------------------------------------------------

#[test]
fn device_flow_login_with_no_browser() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    let mut c = env.cmd(AUTH);
    c.args([
        "--format",
        "json",
        "login",
        "--no-browser",
        "--issuer-url",
        &p.issuer,
        "--client-id",
        CLIENT_ID,
        "--audiences",
        REGISTRY_AUDIENCE,
        "--timeout",
        "120",
    ])
    // Were a browser started anyway, it would sign in as mallory: the account proves it was not.
    .env("BROWSER", browser_script())
    .env("OIDC_TEST_USER", "mallory")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = c.spawn().expect("spawn gdcloud-auth login --no-browser");
    let stderr_pipe = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });

    // "To sign in, open URI and enter the code: CODE"
    let deadline = Instant::now() + Duration::from_secs(30);
    let (uri, code) = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(line) => {
                if let Some((head, code)) = line.split_once(" and enter the code: ") {
                    let uri = head
                        .rsplit_once(" open ")
                        .map(|(_, u)| u)
                        .unwrap_or_else(|| panic!("no URI in {line:?}"));
                    break (uri.trim().to_string(), code.trim().to_string());
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no device code line on stderr within 30 s:\n{}\nprovider log:\n{}",
                    stderr_thread.join().unwrap(),
                    p.log()
                );
            }
        }
    };
    assert_eq!(uri, format!("{}/device", p.issuer));
    assert!(!code.is_empty());

    device_approve(&uri, &code, "bob", None);
    let (status, out) = wait_with_timeout(child, Duration::from_secs(90));
    let err = stderr_thread.join().unwrap();
    assert!(
        status.success(),
        "device login failed ({status}):\nstdout: {out}\nstderr: {err}\nprovider log:\n{}",
        p.log()
    );
    eprintln!("device login took {:?}", started.elapsed());
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    assert_eq!(report["account"], "bob@example.test", "{report}");
    assert_eq!(report["method"], "device", "{report}");
    assert_eq!(report["audiences"], serde_json::json!([REGISTRY_AUDIENCE]));
    assert!(
        !err.contains("/auth?"),
        "no authorization URL in device mode:\n{err}"
    );
    assert_eq!(granted(&p, "authorization_code"), 0, "{}", p.log());
    assert_eq!(
        granted(&p, "urn:ietf:params:oauth:grant-type:device_code"),
        1,
        "{}",
        p.log()
    );
    assert_eq!(
        property(&env, "auth", "issuer_url").as_deref(),
        Some(p.issuer.as_str())
    );
    assert_eq!(mode(&session_path(&env)), 0o600);

    // The device-flow session refreshes to a registry token for bob.
    let token = ok(&env.run(
        AUTH,
        &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
        b"",
    ));
    let claims = jwt_payload(token.trim());
    assert_eq!(claims["sub"], "bob", "{claims}");
    assert_eq!(claims["aud"], REGISTRY_AUDIENCE, "{claims}");
}

// ---------------------------------------------------------------------------------------------
// 3. Refresh and rotation under 20 parallel gets
// ---------------------------------------------------------------------------------------------

/// Counting method: tests/oidc/provider.mjs logs `[oidc] grant.success <grant_type>` for every
/// token the provider grants, so the number of refresh_token lines before and after the burst is
/// the number of refreshes that reached the provider. On top of that: no `grant.error` (a second
/// process spending the rotated-away token would be one, and would revoke the grant), the session's
/// refresh token changed, and a forced refresh afterwards still succeeds (the grant is intact).
#[test]
fn parallel_gets_past_half_life_refresh_once_and_rotate_the_refresh_token() {
    let p = Provider::start(ProviderOptions {
        access_token_ttl: 20,
        ..ProviderOptions::default()
    });
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);
    let rt_login = stored_refresh_token(&env);

    // The first get refreshes (login caches the ID token only).
    let first = helper_get_ok(&env, &p, REGISTRY_HOST)["Secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(granted(&p, "refresh_token"), 1, "{}", p.log());
    let rt_before = stored_refresh_token(&env);
    assert_ne!(rt_before, rt_login, "the refresh token rotated");
    let entry = cached(&env, REGISTRY_AUDIENCE);
    let issued = entry["issued_at"].as_u64().unwrap();
    let expires = entry["expires_at"].as_u64().unwrap();
    assert_eq!(expires - issued, 20, "{entry}");

    // A warm get (before half life) is served from the cache.
    let warm = helper_get_ok(&env, &p, REGISTRY_HOST);
    assert_eq!(warm["Secret"], first.as_str());
    assert_eq!(granted(&p, "refresh_token"), 1, "{}", p.log());

    // Past half its life (~11 s), still valid.
    let stale_at = issued + (expires - issued) / 2 + 1;
    while unix_now() < stale_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        unix_now() + 4 < expires,
        "the machine is too slow: the token is nearly expired"
    );

    const N: usize = 20;
    let barrier = Arc::new(Barrier::new(N));
    let env = Arc::new(env);
    let started = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                let mut c = env.cmd(HELPER);
                c.arg("get");
                barrier.wait();
                run_with_stdin(c, REGISTRY_HOST.as_bytes())
            })
        })
        .collect();
    let outputs: Vec<Output> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let burst = started.elapsed();
    eprintln!("{N} parallel gets took {burst:?}");

    let mut secrets = Vec::new();
    for o in &outputs {
        assert!(
            o.status.success(),
            "a parallel get failed:\nstdout: {}\nstderr: {}\nprovider log:\n{}",
            stdout(o),
            stderr(o),
            p.log()
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Username"], ACCOUNT);
        secrets.push(v["Secret"].as_str().unwrap().to_string());
    }
    assert!(
        secrets.iter().all(|s| *s == secrets[0]),
        "every get answered the same token"
    );
    assert_ne!(secrets[0], first, "the stale token was replaced");
    assert_eq!(jwt_payload(&secrets[0])["aud"], REGISTRY_AUDIENCE);
    assert!(
        unix_now() < expires,
        "the burst outlived the old token ({burst:?}): the test proves nothing about 'stale but valid'"
    );

    assert_eq!(
        granted(&p, "refresh_token"),
        2,
        "exactly one refresh for {N} parallel gets; provider log:\n{}",
        p.log()
    );
    assert!(grant_errors(&p).is_empty(), "{}", p.log());
    let rt_after = stored_refresh_token(&env);
    assert_ne!(rt_after, rt_before, "the rotated refresh token was saved");
    assert_eq!(
        cached(&env, REGISTRY_AUDIENCE)["token"],
        secrets[0].as_str()
    );

    // The grant survived (no reuse was detected): a forced refresh with the saved token works.
    std::fs::remove_file(cache_path(&env)).unwrap();
    let again = ok(&env.run(
        AUTH,
        &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
        b"",
    ));
    assert_eq!(jwt_payload(again.trim())["aud"], REGISTRY_AUDIENCE);
    assert_eq!(granted(&p, "refresh_token"), 3, "{}", p.log());
    assert!(grant_errors(&p).is_empty(), "{}", p.log());
}

/// A refresh that fails (provider down) serves the old token while it is still valid; once it has
/// expired, `get` fails with one line.
#[test]
fn helper_serves_the_old_token_while_the_provider_is_down() {
    let p = Provider::start(ProviderOptions {
        access_token_ttl: 20,
        ..ProviderOptions::default()
    });
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);
    let first = helper_get_ok(&env, &p, REGISTRY_HOST)["Secret"]
        .as_str()
        .unwrap()
        .to_string();
    let entry = cached(&env, REGISTRY_AUDIENCE);
    let issued = entry["issued_at"].as_u64().unwrap();
    let expires = entry["expires_at"].as_u64().unwrap();
    drop(p);

    while unix_now() < issued + (expires - issued) / 2 + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = helper_get(&env, REGISTRY_HOST);
    assert!(
        o.status.success(),
        "stale but valid token must be served:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Secret"], first.as_str());

    while unix_now() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = helper_get(&env, REGISTRY_HOST);
    let line = assert_one_line_failure(&o, &["identity provider"]);
    assert!(!line.contains(&first), "no token in the error: {line}");
}

// ---------------------------------------------------------------------------------------------
// 4. print-identity-token
// ---------------------------------------------------------------------------------------------

#[test]
fn print_identity_token_id_token_access_token_and_audience_not_granted() {
    let p = Provider::start(ProviderOptions {
        audiences: vec![REGISTRY_AUDIENCE.into(), OTHER_AUDIENCE.into()],
        ..ProviderOptions::default()
    });
    let env = file_env();
    login(&env, &p, &["--audiences", REGISTRY_AUDIENCE]);

    // Without an audience: the ID token, from the cache (no refresh).
    let id = ok(&env.run(AUTH, &["print-identity-token"], b""));
    assert_eq!(id.lines().count(), 1, "{id:?}");
    let id = id.trim().to_string();
    let claims = jwt_payload(&id);
    assert_eq!(claims["iss"], p.issuer.as_str(), "{claims}");
    let aud_ok = claims["aud"] == CLIENT_ID
        || claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == CLIENT_ID));
    assert!(aud_ok, "{claims}");
    assert_eq!(claims["email"], ACCOUNT);
    assert_eq!(cached(&env, "")["token"], id.as_str());
    assert_eq!(granted(&p, "refresh_token"), 0, "{}", p.log());

    // With the registry audience: an access token for it (one refresh, RFC 8707 resource).
    let at = ok(&env.run(
        AUTH,
        &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
        b"",
    ));
    let at = at.trim().to_string();
    assert_eq!(jwt_header(&at)["typ"], "at+jwt");
    let claims = jwt_payload(&at);
    assert_eq!(claims["aud"], REGISTRY_AUDIENCE, "{claims}");
    assert_eq!(claims["client_id"], CLIENT_ID, "{claims}");
    assert_ne!(at, id);
    assert_eq!(granted(&p, "refresh_token"), 1, "{}", p.log());
    // Again: served from the cache (300 s token, 5 min margin capped at half its life).
    let at2 = ok(&env.run(
        AUTH,
        &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
        b"",
    ));
    assert_eq!(at2.trim(), at);
    assert_eq!(granted(&p, "refresh_token"), 1, "{}", p.log());

    // An audience the sign-in did not cover: one line saying how to get it, and the refresh token
    // is not spent (a refresh for it would burn the token at this provider).
    let rt = stored_refresh_token(&env);
    let o = env.run(
        AUTH,
        &["print-identity-token", "--audiences", OTHER_AUDIENCE],
        b"",
    );
    assert!(!o.status.success());
    assert_eq!(stdout(&o), "", "nothing on stdout");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains(&format!(
            "run: gdcloud-auth login --audiences {OTHER_AUDIENCE}"
        )),
        "{err}"
    );
    assert_eq!(stored_refresh_token(&env), rt);
    assert!(grant_errors(&p).is_empty(), "{}", p.log());

    // The same through the helper, for a registry configured with that audience.
    configure_audience(&env, "127.0.0.1:5998", OTHER_AUDIENCE, &[]);
    let o = helper_get(&env, "127.0.0.1:5998");
    assert_one_line_failure(
        &o,
        &[&format!(
            "run: gdcloud auth login --audiences {OTHER_AUDIENCE}"
        )],
    );
    assert!(grant_errors(&p).is_empty(), "{}", p.log());

    // The session is intact: a forced refresh works.
    std::fs::remove_file(cache_path(&env)).unwrap();
    ok(&env.run(
        AUTH,
        &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
        b"",
    ));

    // An ID token that is not cached is refreshed too (no resource in that refresh).
    std::fs::remove_file(cache_path(&env)).unwrap();
    let before = granted(&p, "refresh_token");
    let id2 = ok(&env.run(AUTH, &["print-identity-token"], b""));
    let claims = jwt_payload(id2.trim());
    assert_eq!(claims["iss"], p.issuer.as_str(), "{claims}");
    assert_eq!(claims["email"], ACCOUNT, "{claims}");
    // (It may equal the first one byte for byte: RS256 is deterministic and `iat` has 1 s
    // resolution; the provider's log proves the refresh.)
    assert_eq!(granted(&p, "refresh_token"), before + 1, "{}", p.log());
}

/// `print-identity-token` serves a cached token only while more than its safety margin (5 min,
/// capped at half the token's life: 10 s here) is left, then refreshes.
#[test]
fn print_identity_token_refreshes_within_the_safety_margin() {
    let p = Provider::start(ProviderOptions {
        access_token_ttl: 20,
        ..ProviderOptions::default()
    });
    let env = file_env();
    login(&env, &p, &["--audiences", REGISTRY_AUDIENCE]);
    let print = || {
        ok(&env.run(
            AUTH,
            &["print-identity-token", "--audiences", REGISTRY_AUDIENCE],
            b"",
        ))
        .trim()
        .to_string()
    };
    let t1 = print();
    let issued = cached(&env, REGISTRY_AUDIENCE)["issued_at"]
        .as_u64()
        .unwrap();
    let t2 = print();
    assert_eq!(
        t2, t1,
        "served from the cache with more than the margin left"
    );
    assert_eq!(granted(&p, "refresh_token"), 1, "{}", p.log());
    while unix_now() < issued + 11 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let t3 = print();
    assert_ne!(t3, t1, "refreshed with less than the margin left");
    assert_eq!(granted(&p, "refresh_token"), 2, "{}", p.log());
}

// ---------------------------------------------------------------------------------------------
// 5. revoke
// ---------------------------------------------------------------------------------------------

#[test]
fn revoke_revokes_at_the_provider_and_get_then_says_run_login() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);
    helper_get_ok(&env, &p, REGISTRY_HOST);
    let rt = stored_refresh_token(&env);
    assert!(cache_path(&env).exists());

    let o = env.run(AUTH, &["revoke"], b"");
    let out = ok(&o);
    assert!(
        out.contains(&format!("Revoked credentials for [{ACCOUNT}]")),
        "{out}"
    );
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    assert!(!session_path(&env).exists(), "session file removed");
    assert!(!cache_path(&env).exists(), "token cache removed");

    // Revoked at the provider (RFC 7009): the refresh token no longer works there.
    let (status, body) = provider_refresh(&p, &rt, None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    let o = helper_get(&env, REGISTRY_HOST);
    assert_one_line_failure(&o, &["run: gdcloud auth login"]);
    let o = env.run(AUTH, &["print-identity-token"], b"");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("run: gdcloud-auth login"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn revoke_offline_removes_locally_with_a_warning() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);
    helper_get_ok(&env, &p, REGISTRY_HOST);
    drop(p); // offline

    let o = env.run(AUTH, &["revoke"], b"");
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("WARNING:"), "{err}");
    assert!(err.contains("could not reach the provider"), "{err}");
    assert!(!session_path(&env).exists(), "session file removed");
    assert!(!cache_path(&env).exists(), "token cache removed");
    assert_one_line_failure(
        &helper_get(&env, REGISTRY_HOST),
        &["run: gdcloud auth login"],
    );
}

#[test]
fn a_session_revoked_elsewhere_makes_get_say_expired_and_run_login() {
    let p = Provider::start(ProviderOptions::default());
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);
    // Revoked behind the product's back (another machine, an administrator).
    let rt = stored_refresh_token(&env);
    let (status, body) = post_form(
        &p.revocation_endpoint(),
        &[
            ("token", rt.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLIENT_ID),
        ],
        None,
    );
    assert_eq!(status, 200, "{body}");
    // Login cached the ID token only, so this get must refresh.
    let line = assert_one_line_failure(
        &helper_get(&env, REGISTRY_HOST),
        &["expired or was revoked", "run: gdcloud auth login"],
    );
    assert!(!line.contains(&rt), "no refresh token in the error: {line}");
}

// ---------------------------------------------------------------------------------------------
// 6. TLS provider with our own CA
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_provider_needs_login_config_cert() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let p = Provider::start(ProviderOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderOptions::default()
    });
    assert!(p.issuer.starts_with("https://"), "{}", p.issuer);

    // Without the CA: a clear certificate error, nothing saved.
    let env = file_env();
    let mut c = login_cmd(&env, &p, &[]);
    c.env("OIDC_TEST_CA", &ca.ca_cert);
    let o = run_with_stdin(c, b"");
    assert!(!o.status.success(), "stdout: {}", stdout(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one error line: {err:?}");
    assert!(err.starts_with("ERROR: "), "{err}");
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    assert!(err.contains("--login-config-cert"), "{err}");
    assert_eq!(property(&env, "auth", "issuer_url"), None);
    assert!(!session_path(&env).exists());

    // With it: signed in, the CA path saved, and refreshes (a later process) trust it too.
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    let cert = ca.ca_cert.to_str().unwrap();
    let mut c = login_cmd(&env, &p, &["--login-config-cert", cert]);
    c.env("OIDC_TEST_CA", &ca.ca_cert);
    let o = run_with_stdin(c, b"");
    assert!(
        o.status.success(),
        "TLS login failed:\nstdout: {}\nstderr: {}\nprovider log:\n{}",
        stdout(&o),
        stderr(&o),
        p.log()
    );
    assert!(stdout(&o).contains(ACCOUNT), "{}", stdout(&o));
    let saved = property(&env, "auth", "login_config_cert_path").expect("CA path saved");
    assert_eq!(
        Path::new(&saved),
        std::fs::canonicalize(&ca.ca_cert).unwrap()
    );
    let got = helper_get_ok(&env, &p, REGISTRY_HOST);
    assert_eq!(
        jwt_payload(got["Secret"].as_str().unwrap())["aud"],
        REGISTRY_AUDIENCE
    );
}

/// `--login-config-cert` given as a relative path: the helper, which docker runs from anywhere,
/// must still find the CA when it refreshes, and so must `revoke`.
#[test]
fn tls_login_with_a_relative_ca_path_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let p = Provider::start(ProviderOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderOptions::default()
    });
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    let mut c = login_cmd(&env, &p, &["--login-config-cert", "ca.crt"]);
    c.current_dir(dir.path()).env("OIDC_TEST_CA", &ca.ca_cert);
    let o = run_with_stdin(c, b"");
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let saved = property(&env, "auth", "login_config_cert_path").expect("CA path saved");
    assert!(Path::new(&saved).is_absolute(), "{saved}");

    // From the environment's own directory (not the CA's).
    let got = helper_get_ok(&env, &p, REGISTRY_HOST);
    assert_eq!(
        jwt_payload(got["Secret"].as_str().unwrap())["aud"],
        REGISTRY_AUDIENCE
    );
    let o = env.run(AUTH, &["revoke"], b"");
    ok(&o);
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    assert!(!session_path(&env).exists());
}

/// `revoke` removes the sign-in here even when the provider cannot be contacted because its CA
/// file is gone.
#[test]
fn revoke_removes_locally_when_the_provider_ca_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let p = Provider::start(ProviderOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderOptions::default()
    });
    let env = file_env();
    let copy = env.path().join("org-ca.pem");
    std::fs::copy(&ca.ca_cert, &copy).unwrap();
    let mut c = login_cmd(&env, &p, &["--login-config-cert", copy.to_str().unwrap()]);
    c.env("OIDC_TEST_CA", &ca.ca_cert);
    ok(&run_with_stdin(c, b""));
    assert!(session_path(&env).exists());
    std::fs::remove_file(&copy).unwrap();

    let o = env.run(AUTH, &["revoke"], b"");
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stderr(&o).contains("WARNING:"), "{}", stderr(&o));
    assert!(!session_path(&env).exists(), "session file removed");
    assert!(!cache_path(&env).exists(), "token cache removed");
}

// ---------------------------------------------------------------------------------------------
// Two registries, two audiences
// ---------------------------------------------------------------------------------------------

/// Every audience of `auth/registry_audiences` is requested at sign-in; gets for two registries
/// run in parallel, each gets a token for its own audience, with one refresh per audience and no
/// refresh token spent twice.
#[test]
fn two_registries_with_two_audiences_refresh_in_parallel() {
    let p = Provider::start(ProviderOptions {
        audiences: vec![REGISTRY_AUDIENCE.into(), OTHER_AUDIENCE.into()],
        ..ProviderOptions::default()
    });
    let env = file_env();
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    configure_audience(&env, "127.0.0.1:5998", OTHER_AUDIENCE, &[]);
    let o = login(&env, &p, &[]);
    let err = stderr(&o);
    let printed = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{}/auth?", p.issuer)))
        .unwrap_or_else(|| panic!("no URL:\n{err}"));
    let url = url::Url::parse(printed).unwrap();
    let mut resources: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned())
        .collect();
    resources.sort();
    assert_eq!(resources, vec![OTHER_AUDIENCE, REGISTRY_AUDIENCE]);

    let env = Arc::new(env);
    let hosts: Vec<&'static str> = (0..10)
        .flat_map(|_| [REGISTRY_HOST, "127.0.0.1:5998"])
        .collect();
    let barrier = Arc::new(Barrier::new(hosts.len()));
    let handles: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (env, barrier, host) = (Arc::clone(&env), Arc::clone(&barrier), *host);
            std::thread::spawn(move || {
                let mut c = env.cmd(HELPER);
                c.arg("get");
                barrier.wait();
                (host, run_with_stdin(c, host.as_bytes()))
            })
        })
        .collect();
    for h in handles {
        let (host, o) = h.join().unwrap();
        assert!(
            o.status.success(),
            "get {host}: {}\n{}\n{}",
            stdout(&o),
            stderr(&o),
            p.log()
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want = if host == REGISTRY_HOST {
            REGISTRY_AUDIENCE
        } else {
            OTHER_AUDIENCE
        };
        assert_eq!(jwt_payload(v["Secret"].as_str().unwrap())["aud"], want);
    }
    assert_eq!(granted(&p, "refresh_token"), 2, "{}", p.log());
    assert!(grant_errors(&p).is_empty(), "{}", p.log());
}

// ---------------------------------------------------------------------------------------------
// 7. Secret Service session store
// ---------------------------------------------------------------------------------------------

#[test]
fn session_in_secret_service_when_the_keyring_runs() {
    require_tool("secret-tool");
    let p = Provider::start(ProviderOptions::default());
    // No GDCLOUD_AUTH_CREDENTIAL_STORE: `auto` must pick the running keyring.
    let mut env = TestEnv::new();
    let _keyring = util::keyring::Keyring::start(&mut env);
    configure_audience(&env, REGISTRY_HOST, REGISTRY_AUDIENCE, &[]);
    login(&env, &p, &[]);

    let sessions: Vec<PathBuf> = files_under(env.path())
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "oidc_session.json"))
        .collect();
    assert!(sessions.is_empty(), "no session file: {sessions:?}");
    let search = |env: &TestEnv| {
        let o = env.run(
            "secret-tool",
            &[
                "search",
                "--all",
                "--unlock",
                "xdg:schema",
                "com.google.gdcloud.OidcSession",
            ],
            b"",
        );
        format!("{}{}", stdout(&o), stderr(&o))
    };
    let found = search(&env);
    assert!(
        found.contains(&format!("attribute.account = {ACCOUNT}")),
        "{found}"
    );
    assert!(found.contains("refresh_token"), "{found}");

    let got = helper_get_ok(&env, &p, REGISTRY_HOST);
    assert_eq!(got["Username"], ACCOUNT);
    assert_eq!(
        jwt_payload(got["Secret"].as_str().unwrap())["aud"],
        REGISTRY_AUDIENCE
    );

    ok(&env.run(AUTH, &["revoke"], b""));
    let found = search(&env);
    assert!(
        !found.contains("attribute.account"),
        "revoke removed the keyring item: {found}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. End to end: skopeo → Distribution → token server accepting the provider's JWT
// ---------------------------------------------------------------------------------------------

/// A Distribution registry with token auth whose token server (ours) accepts the provider's JWT
/// as the password. Started here because the shared `Registry` fixture cannot take a
/// [`JwtPasswordCheck`] (its options live in tests/util/registry.rs).
struct JwtRegistry {
    host: String,
    token: TokenServer,
    _child: KillOnDrop,
    log_path: PathBuf,
    // Last, so that it is deleted after the process is gone.
    _dir: tempfile::TempDir,
}

/// Kills and reaps the child when dropped, including when a test panics half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl JwtRegistry {
    fn start(check: JwtPasswordCheck) -> JwtRegistry {
        require_tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("gdtest-jwtreg-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        let data = d.join("data");
        std::fs::create_dir(&data).unwrap();
        // A user/password pair nobody presents: only the JWT gets in.
        let token = TokenServer::start_with(&d, "static-user", "static-pass-unused", Some(check));
        let mut last_log = String::new();
        for attempt in 1..=5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let host = format!("127.0.0.1:{port}");
            let config = serde_json::json!({
                "version": "0.1",
                "log": {"level": "info"},
                "storage": {"filesystem": {"rootdirectory": data}},
                "http": {"addr": host, "secret": format!("jwtreg-{port}")},
                "auth": {"token": {
                    "realm": token.realm(),
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": token.cert_path(),
                }},
            });
            let cfg = d.join("config.yml");
            std::fs::write(&cfg, config.to_string()).unwrap();
            let log_path = d.join(format!("registry-{attempt}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            let mut child = KillOnDrop(cmd.spawn().expect("run docker-registry"));
            let addr: SocketAddr = host.parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = loop {
                if let Some(status) = child.0.try_wait().unwrap() {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if last_log.contains("address already in use") {
                        break false; // someone took the port meanwhile: retry
                    }
                    panic!("docker-registry exited ({status}):\n{last_log}");
                }
                if answers_http(addr) {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "docker-registry did not answer on {host}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(25));
            };
            if up {
                return JwtRegistry {
                    host,
                    token,
                    _child: child,
                    log_path,
                    _dir: dir,
                };
            }
        }
        panic!("docker-registry could not bind a port:\n{last_log}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

#[test]
fn skopeo_pushes_with_the_provider_jwt_through_the_helper() {
    require_tool("skopeo");
    let p = Provider::start(ProviderOptions::default());
    let reg = JwtRegistry::start(JwtPasswordCheck {
        jwks_url: format!("{}/jwks", p.issuer),
        audience: REGISTRY_AUDIENCE.into(),
        issuer: p.issuer.clone(),
        ca_file: None,
    });
    let env = file_env();
    login(&env, &p, &["--audiences", REGISTRY_AUDIENCE]);
    configure_audience(&env, &reg.host, REGISTRY_AUDIENCE, &["--containers"]);

    let layout = tiny_image_layout();
    let src = format!("oci:{}:{TAG}", layout.display());
    let dest = format!("docker://{}/proj/app:v1", reg.host);
    let mut c = env.cmd("skopeo");
    c.args([
        "--command-timeout",
        "120s",
        "copy",
        "--dest-tls-verify=false",
    ])
    .args([&src, &dest]);
    let o = run_with_stdin(c, b"");
    assert!(
        o.status.success(),
        "skopeo copy failed:\nstderr: {}\njwt passwords: {:#?}\ntoken requests: {:#?}\nregistry log:\n{}",
        stderr(&o),
        reg.token.jwt_passwords(),
        reg.token.requests(),
        reg.log()
    );

    // The token server saw the provider's JWT as alice's password, and verified it.
    let jwts = reg.token.jwt_passwords();
    assert!(!jwts.is_empty(), "{:#?}", reg.token.requests());
    for j in &jwts {
        assert_eq!(j.username, ACCOUNT);
        let claims = j
            .verdict
            .as_ref()
            .unwrap_or_else(|e| panic!("JWT refused: {e}"));
        assert_eq!(claims["aud"], REGISTRY_AUDIENCE);
        assert_eq!(claims["iss"], p.issuer.as_str());
    }
    assert!(
        reg.token
            .requests()
            .iter()
            .any(|r| r.username.as_deref() == Some(ACCOUNT)
                && r.status == 200
                && r.scopes
                    .iter()
                    .any(|s| s.contains("proj/app") && s.contains("push"))),
        "{:#?}",
        reg.token.requests()
    );

    // Read back through the helper.
    let mut c = env.cmd("skopeo");
    c.args([
        "--command-timeout",
        "120s",
        "inspect",
        "--tls-verify=false",
        &dest,
    ]);
    let v: Value = serde_json::from_str(&ok(&run_with_stdin(c, b""))).unwrap();
    assert!(v["Digest"].as_str().unwrap().starts_with("sha256:"));

    // The check is real: the same JWT with a forged payload is refused.
    let token = cached(&env, REGISTRY_AUDIENCE)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = jwt_payload(&token);
    forged["sub"] = "mallory".into();
    use base64::Engine as _;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("mallory:{forged}"))
        .arg(format!(
            "{}?service={SERVICE}&scope=repository:proj/app:pull",
            reg.token.realm()
        ))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    let last = reg.token.jwt_passwords().pop().unwrap();
    assert_eq!(last.username, "mallory");
    assert!(
        last.verdict
            .as_ref()
            .is_err_and(|e| e.contains("signature")),
        "{last:?}"
    );
}
