//! A real OpenID Connect provider started per test: panva's `oidc-provider` 9.x on Node
//! (tests/oidc/provider.mjs, pinned by tests/oidc/package-lock.json), not a mock, so that login,
//! PKCE, device flow, refresh-token rotation and reuse detection, resource indicators and
//! revocation behave as a production IdP's do. One public native client; RS256 JWT access tokens
//! for the configured audiences. The user's browser is played by tests/oidc/browser.sh (curl with
//! a cookie jar), which is also usable as `$BROWSER` for the product.
//!
//! Needs `node` and `curl` in PATH and `npm ci --prefix tests/oidc` once.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The one registered client: native (loopback redirects on any port), public, PKCE required.
pub const CLIENT_ID: &str = "gdcloud-test";
/// The audience configured by default (see [`ProviderOptions`]).
pub const REGISTRY_AUDIENCE: &str = "https://registry.test";

const READY_DEADLINE: Duration = Duration::from_secs(40);
/// Fresh starts tried before a test fails.
const ATTEMPTS: usize = 3;

/// What to start; see [`Provider::start`].
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Resource indicators (RFC 8707) for which RS256 JWT access tokens are issued, with `aud`
    /// equal to the indicator. Any other `resource` is `invalid_target`.
    pub audiences: Vec<String>,
    /// Lifetime of access tokens, seconds (`expires_in` and the JWT's `exp - iat`).
    pub access_token_ttl: u64,
    /// Server certificate and key (PEM): serve HTTPS, issuer `https://127.0.0.1:PORT`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// When a refresh request has no `resource`: `true` (default) gives a JWT for the single
    /// resource granted at login; `false` gives an opaque access token for userinfo only.
    pub use_granted_resource: bool,
}

impl Default for ProviderOptions {
    /// Audience [`REGISTRY_AUDIENCE`], 300 s access tokens, plain HTTP, `use_granted_resource`.
    fn default() -> ProviderOptions {
        ProviderOptions {
            audiences: vec![REGISTRY_AUDIENCE.to_string()],
            access_token_ttl: 300,
            tls: None,
            use_granted_resource: true,
        }
    }
}

/// A running provider. Dropping it closes its stdin (it exits), then kills and reaps it.
pub struct Provider {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`; discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    log_path: PathBuf,
    // Last, so that it is deleted after the process is gone.
    dir: tempfile::TempDir,
}

/// `tests/oidc` of this checkout.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The curl "browser" script; usable as `$BROWSER` (see its header, `OIDC_TEST_USER`,
/// `OIDC_TEST_CA`).
pub fn browser_script() -> PathBuf {
    oidc_dir().join("browser.sh")
}

fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
    if !found {
        panic!("`{tool}` not found in PATH: the OpenID provider tests need it");
    }
}

impl Provider {
    /// Starts a provider on a free port of 127.0.0.1 and waits for its ready line (up to 40 s per start, three starts).
    /// Panics with its log if it cannot start, or with instructions if node, curl or
    /// tests/oidc/node_modules are missing.
    pub fn start(opts: ProviderOptions) -> Provider {
        // A node start has been seen to hang before its ready line, rarely and on a quiet machine:
        // a fresh process is the cure, so a stuck start is retried instead of failing the test.
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match Provider::try_start(&opts, READY_DEADLINE) {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn try_start(opts: &ProviderOptions, ready_deadline: Duration) -> Result<Provider, String> {
        require_tool("node");
        require_tool("curl");
        let oidc = oidc_dir();
        if !oidc
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            panic!(
                "{}/node_modules is missing: run: npm ci --prefix tests/oidc",
                oidc.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("gdtest-oidc-")
            .tempdir()
            .expect("create oidc temp dir");
        let log_path = dir.path().join("provider.log");
        let log = std::fs::File::create(&log_path).expect("create provider log");

        let mut cmd = Command::new("node");
        cmd.arg(oidc.join("provider.mjs"))
            .current_dir(&oidc)
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_AUDIENCES", opts.audiences.join(" "))
            .env("OIDC_ACCESS_TOKEN_TTL", opts.access_token_ttl.to_string())
            .env(
                "OIDC_USE_GRANTED_RESOURCE",
                if opts.use_granted_resource { "1" } else { "0" },
            )
            .env_remove("OIDC_TLS_CERT")
            .env_remove("OIDC_TLS_KEY")
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some((cert, key)) = &opts.tls {
            cmd.env("OIDC_TLS_CERT", cert).env("OIDC_TLS_KEY", key);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut provider = Provider {
            issuer: String::new(),
            client_id: CLIENT_ID.to_string(),
            port: 0,
            child: Some(child),
            stdin,
            log_path,
            dir,
        };

        // The ready line, read on a thread that then drains stdout so node never blocks on it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let deadline = Instant::now() + ready_deadline;
        let line = loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                break line;
            }
            let status = provider
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("try_wait node");
            if let Some(status) = status {
                panic!(
                    "oidc provider exited ({status}) before ready; its log:\n{}",
                    provider.log()
                );
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "oidc provider not ready within {ready_deadline:?} ({ATTEMPTS} attempts); its log:\n{}",
                    provider.log()
                ));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "oidc provider's ready line {line:?} is not JSON ({e}); its log:\n{}",
                provider.log()
            )
        });
        provider.issuer = ready["issuer"]
            .as_str()
            .expect("issuer in ready line")
            .to_string();
        provider.port = ready["port"].as_u64().expect("port in ready line") as u16;
        Ok(provider)
    }

    /// `{issuer}/auth`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/auth", self.issuer)
    }

    /// `{issuer}/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// `{issuer}/device/auth`.
    pub fn device_authorization_endpoint(&self) -> String {
        format!("{}/device/auth", self.issuer)
    }

    /// `{issuer}/token/revocation`.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }

    /// Everything the provider logged so far (useful in assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the provider exits by itself
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_browser(args: &[&str], user: &str, ca: Option<&Path>) -> String {
    require_tool("curl");
    let mut cmd = Command::new("bash");
    cmd.arg(browser_script())
        .args(args)
        .env("OIDC_TEST_USER", user);
    match ca {
        Some(ca) => cmd.env("OIDC_TEST_CA", ca),
        None => cmd.env_remove("OIDC_TEST_CA"),
    };
    let out = cmd.output().expect("run tests/oidc/browser.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser.sh {args:?} failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Plays the user's browser for an authorization URL: logs in as `user`, consents, and returns
/// the final redirect URL (`http://127.0.0.1:PORT/callback?code=…&state=…&iss=…`, or `?error=…`)
/// WITHOUT requesting it, so a test can deliver it to a listener or paste it.
/// Note: oidc-provider drops `offline_access` (no refresh token) unless the URL has
/// `prompt=consent`.
pub fn browser_login(auth_url: &str, user: &str, ca: Option<&Path>) -> String {
    run_browser(&["--print", auth_url], user, ca)
}

/// Completes a device-flow user step: opens `verification_uri` (or `verification_uri_complete`),
/// enters `user_code`, confirms, logs in as `user` and consents.
pub fn device_approve(verification_uri: &str, user_code: &str, user: &str, ca: Option<&Path>) {
    run_browser(&["--device", verification_uri, user_code], user, ca);
}

/// POSTs a form with curl (`--cacert ca` for HTTPS) and returns the HTTP status and the JSON
/// body (`Null` when empty, e.g. revocation's 200).
pub fn post_form(
    url: &str,
    params: &[(&str, &str)],
    ca: Option<&Path>,
) -> (u16, serde_json::Value) {
    require_tool("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    for (k, v) in params {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl POST {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, status) = text.rsplit_once('\n').expect("curl status line");
    let status = status.trim().parse().expect("HTTP status");
    let json = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("POST {url}: {status} {body:?}: {e}"))
    };
    (status, json)
}

/// The JSON payload of a JWT (signature NOT verified).
pub fn jwt_payload(jwt: &str) -> serde_json::Value {
    jwt_part(jwt, 1)
}

/// The JSON header of a JWT (`alg`, `kid`, `typ`).
pub fn jwt_header(jwt: &str) -> serde_json::Value {
    jwt_part(jwt, 0)
}

fn jwt_part(jwt: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt
        .split('.')
        .nth(i)
        .unwrap_or_else(|| panic!("not a JWT: {jwt:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {i} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {i} is not JSON: {e}"))
}

/// A throw-away CA and a server certificate for 127.0.0.1/localhost signed by it (openssl), for
/// [`ProviderOptions::tls`]; clients trust `ca_cert`.
pub struct TestCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    /// Writes `ca.{key,crt}` and `server.{key,crt}` into `dir`.
    pub fn generate(dir: &Path) -> TestCa {
        require_tool("openssl");
        let p = |n: &str| dir.join(n);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=gdcloud-kit test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            p("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ]);
        TestCa {
            ca_cert: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
        }
    }
}
