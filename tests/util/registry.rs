//! A real OCI registry (Distribution 2.8, Debian's `docker-registry` binary) started per test, with
//! htpasswd or token auth (via [`super::token_server`]), over plain HTTP or TLS with a freshly
//! generated self-signed certificate. It owns the registry process, its config, storage,
//! certificates and log in one temp dir, and kills the process on drop. Tests run against a real
//! registry, not a mock, so that auth challenges, token flows and TLS behave exactly as clients
//! (skopeo, podman, containerd, our code) will see them in production.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::token_server::{TokenServer, ISSUER, SERVICE};

/// How the registry authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Basic auth against a bcrypt htpasswd file holding one user.
    Htpasswd,
    /// Docker token auth (what Harbor uses), with a [`TokenServer`] as the realm.
    Token,
}

/// What to start; see [`Registry::start`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub auth: RegistryAuth,
    pub tls: bool,
    pub username: String,
    pub password: String,
}

impl RegistryOptions {
    /// `auth` and `tls` as given, with the default test user (see [`Default`]).
    pub fn new(auth: RegistryAuth, tls: bool) -> RegistryOptions {
        RegistryOptions {
            auth,
            tls,
            ..RegistryOptions::default()
        }
    }
}

impl Default for RegistryOptions {
    /// Htpasswd, plain HTTP, user `gdtest`, password `gdtest-pass`.
    fn default() -> RegistryOptions {
        RegistryOptions {
            auth: RegistryAuth::Htpasswd,
            tls: false,
            username: "gdtest".to_string(),
            password: "gdtest-pass".to_string(),
        }
    }
}

/// A running registry. Dropping it kills and reaps the process, stops the token server and
/// deletes the temp dir (storage, config, keys, log).
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// PEM of the registry's self-signed server certificate when `tls`; it is the only file in
    /// its directory (see [`Registry::cert_dir`]), as skopeo's `--cert-dir` requires.
    pub ca_cert: Option<PathBuf>,
    pub username: String,
    pub password: String,
    tls: bool,
    log_path: PathBuf,
    child: ChildGuard,
    token: Option<TokenServer>,
    // Last, so that it is deleted after the process is gone.
    dir: tempfile::TempDir,
}

/// Kills and reaps the child when dropped, including when `start` panics half-way.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

const START_ATTEMPTS: usize = 5;
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Panics with a one-line message unless `tool` is an executable file in `PATH`.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            let p = d.join(tool);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    });
    if !found {
        panic!(
            "`{tool}` not found in PATH: the integration tests need real tools; run tests/run.sh (it installs them)"
        );
    }
}

impl Registry {
    /// Starts a registry on a random free port of 127.0.0.1 and waits (≤ 30 s) until `GET /v2/`
    /// answers. Panics, with the registry's output, if it cannot be started.
    pub fn start(opts: RegistryOptions) -> Registry {
        require_tool("docker-registry");
        require_tool("openssl");
        if opts.auth == RegistryAuth::Htpasswd {
            require_tool("htpasswd");
        }
        let dir = tempfile::Builder::new()
            .prefix("gdtest-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let d = dir.path();
        let data = d.join("data");
        std::fs::create_dir(&data).expect("create registry data dir");

        let auth = match opts.auth {
            RegistryAuth::Htpasswd => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", &opts.username, &opts.password])
                    .output()
                    .expect("run htpasswd");
                assert!(
                    out.status.success(),
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let path = d.join("htpasswd");
                std::fs::write(&path, &out.stdout).expect("write htpasswd");
                serde_json::json!({"htpasswd": {"realm": "basic-realm", "path": path}})
            }
            RegistryAuth::Token => serde_json::Value::Null, // filled below, needs the server
        };
        let token = (opts.auth == RegistryAuth::Token)
            .then(|| TokenServer::start(d, &opts.username, &opts.password));
        let auth = match &token {
            Some(ts) => serde_json::json!({"token": {
                "realm": ts.realm(),
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": ts.cert_path(),
            }}),
            None => auth,
        };

        let (tls, ca_cert) = if opts.tls {
            let (key, crt) = (d.join("server.key"), d.join("server.crt"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .args(["-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl req (server cert) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ca_dir = d.join("certs.d");
            std::fs::create_dir(&ca_dir).expect("create cert dir");
            let ca = ca_dir.join("ca.crt");
            std::fs::copy(&crt, &ca).expect("copy ca.crt");
            (
                Some(serde_json::json!({"certificate": crt, "key": key})),
                Some(ca),
            )
        } else {
            (None, None)
        };

        let mut last_log = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let mut http = serde_json::json!({
                "addr": host,
                "secret": format!("gdtest-secret-{port}-{}", std::process::id()),
            });
            if let Some(tls) = &tls {
                http["tls"] = tls.clone();
            }
            // JSON is YAML, and serde quotes paths safely.
            let config = serde_json::json!({
                "version": "0.1",
                "log": {"level": "info"},
                "storage": {
                    "filesystem": {"rootdirectory": data},
                    "delete": {"enabled": true},
                    "maintenance": {"uploadpurging": {"enabled": false}},
                },
                "http": http,
                "auth": auth,
            });
            let cfg_path = d.join("config.yml");
            std::fs::write(&cfg_path, config.to_string()).expect("write registry config");
            // Output goes to a file: a pipe nobody drains would block the registry when full.
            let log_path = d.join(format!("registry-{attempt}.log"));
            let log = std::fs::File::create(&log_path).expect("create registry log");
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log fd"))
                .stderr(log);
            // REGISTRY_* variables override the config file; keep the test hermetic.
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            let mut child =
                ChildGuard(Some(cmd.spawn().unwrap_or_else(|e| {
                    panic!("cannot run docker-registry: {e}; run tests/run.sh")
                })));
            let addr: SocketAddr = host.parse().expect("socket address");
            let deadline = Instant::now() + READY_DEADLINE;
            loop {
                let exited = child
                    .0
                    .as_mut()
                    .expect("child present")
                    .try_wait()
                    .expect("try_wait registry");
                if let Some(status) = exited {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if last_log.contains("address already in use") && attempt < START_ATTEMPTS {
                        break; // someone took the port between our probe and its bind: retry
                    }
                    panic!(
                        "docker-registry exited ({status}) before answering on {host}; its output:\n{last_log}"
                    );
                }
                if answers_http(addr) {
                    return Registry {
                        host,
                        ca_cert,
                        username: opts.username,
                        password: opts.password,
                        tls: opts.tls,
                        log_path,
                        child,
                        token,
                        dir,
                    };
                }
                if Instant::now() >= deadline {
                    child.stop();
                    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "docker-registry did not answer GET /v2/ on {host} within {READY_DEADLINE:?}; its output:\n{out}"
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!(
            "docker-registry could not bind a free port in {START_ATTEMPTS} attempts; last output:\n{last_log}"
        );
    }

    /// `http://HOST` or `https://HOST`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// Whether the registry serves TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The directory holding only `ca.crt` (for skopeo/podman `--cert-dir`, or as a
    /// `certs.d/HOST` directory), when TLS.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.ca_cert.as_deref().and_then(Path::parent)
    }

    /// The skopeo flag that makes it trust this registry: `--{prefix}tls-verify=false` for plain
    /// HTTP, `--{prefix}cert-dir=DIR` (verification on) for TLS. `prefix` is `""`, `"src-"` or
    /// `"dest-"`.
    pub fn skopeo_tls_flag(&self, prefix: &str) -> String {
        match self.cert_dir() {
            Some(dir) => format!("--{prefix}cert-dir={}", dir.display()),
            None => format!("--{prefix}tls-verify=false"),
        }
    }

    /// `USER:PASSWORD`, for skopeo's `--creds`.
    pub fn creds(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }

    /// The token server, when started with [`RegistryAuth::Token`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// Everything the registry printed so far (useful in assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The registry's temp dir (config, storage under `data/`, keys, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.child.stop();
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Sends `GET /v2/` in plain HTTP and reports whether any HTTP response came back. A Go TLS
/// server answers plain HTTP with `HTTP/1.0 400 Bad Request`, so this works for TLS too.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}
