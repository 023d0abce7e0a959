//! A real S3 server per test: `s3s-fs` 0.14.1 (built and cached by `scripts/testenv/s3s-fs.sh`),
//! which checks SigV4 signatures, serving a temp dir on a random loopback port, optionally behind
//! a stunnel TLS front whose certificate is issued by a [`TestCa`]. It owns the processes, the
//! data dir (a bucket is a directory) and the logs, and removes everything on drop. It also
//! prepares the CLI peers (`aws`, `rclone`) with this server's endpoint and keys. Tests talk to a
//! real server over real HTTP(S), not a mock, so that signing, TLS and error replies are the ones
//! clients see in production.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use super::kube::TestCa;
use super::kube::{free_port, http_get, lost_port_race, require_tool, testenv_binary, Proc};

/// The bucket every server starts with.
pub const BUCKET: &str = "gdtest-bucket";
const READY_DEADLINE: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// A running s3s-fs (and its TLS front, when started with [`S3Server::start_tls`]). Dropping it
/// kills both and deletes the temp dir.
pub struct S3Server {
    /// `http://127.0.0.1:PORT` (s3s-fs itself; path-style requests).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The served directory: `root/<bucket>/<key>`.
    pub root: PathBuf,
    /// The bucket created at start ([`BUCKET`]).
    pub bucket: String,
    /// With TLS: `https://127.0.0.1:PORT` of the stunnel front (certificate for IP:127.0.0.1 and
    /// localhost).
    pub tls_endpoint: Option<String>,
    /// With TLS: a copy of the CA certificate that issued the front's certificate.
    pub ca_cert: Option<PathBuf>,
    /// How long `start` took until the server (and front) answered.
    pub started_in: Duration,
    s3s: Proc,
    tls: Option<Proc>,
    // Last, so that it is deleted after the processes are gone.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// s3s-fs over plain HTTP on a random port with fresh keys and bucket [`BUCKET`]; waits
    /// (≤ 15 s) until it answers. Panics, with its log, if it cannot be started.
    pub fn start() -> S3Server {
        let t0 = Instant::now();
        let bin = testenv_binary("GDCLOUD_TEST_S3S_FS", "s3s-fs.sh");
        let dir = tempfile::Builder::new()
            .prefix("gdtest-s3-")
            .tempdir()
            .expect("create S3 temp dir");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(BUCKET)).expect("create bucket dir");
        let access_key = format!("GDTEST{:012X}", super::kube::rand_u64() >> 16);
        let secret_key = format!(
            "gdtest-{:016x}{:016x}",
            super::kube::rand_u64(),
            super::kube::rand_u64()
        );
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(&root)
                .env("RUST_LOG", "s3s_fs=info,s3s=info")
                .env("NO_COLOR", "1");
            let mut s3s = Proc::spawn(
                "s3s-fs",
                cmd,
                dir.path().join(format!("s3s-fs-{attempt}.log")),
            );
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
            let deadline = Instant::now() + READY_DEADLINE;
            loop {
                if let Some(status) = s3s.exited() {
                    last = s3s.output();
                    if lost_port_race(&last) && attempt < START_ATTEMPTS {
                        break;
                    }
                    panic!(
                        "s3s-fs exited ({status}) before answering on {addr}; its output:\n{last}"
                    );
                }
                // Any HTTP answer will do (an unsigned GET / gets an S3 error document).
                if http_get(addr, "/").is_some() {
                    return S3Server {
                        endpoint: format!("http://{addr}"),
                        access_key,
                        secret_key,
                        root,
                        bucket: BUCKET.to_string(),
                        tls_endpoint: None,
                        ca_cert: None,
                        started_in: t0.elapsed(),
                        s3s,
                        tls: None,
                        dir,
                    };
                }
                if Instant::now() >= deadline {
                    panic!(
                        "s3s-fs did not answer on {addr} within {READY_DEADLINE:?}; its output:\n{}",
                        s3s.output()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("s3s-fs could not bind a free port in {START_ATTEMPTS} attempts:\n{last}");
    }

    /// [`S3Server::start`] plus a TLS front (stunnel4) on another random port, with a server
    /// certificate for `IP:127.0.0.1,DNS:localhost` issued by `ca`; waits until a TLS request
    /// verified against `ca` gets an HTTP answer through it.
    pub fn start_tls(ca: &TestCa) -> S3Server {
        let mut s = S3Server::start();
        s.add_tls_front(ca);
        s
    }

    fn add_tls_front(&mut self, ca: &TestCa) {
        let t0 = Instant::now();
        require_tool(
            "stunnel4",
            "install Debian's stunnel4 (scripts/testenv/s3s-fs.sh does)",
        );
        require_tool("curl", "install curl (tests/run.sh does)");
        let d = self.dir.path().join("tls");
        std::fs::create_dir(&d).expect("create TLS dir");
        let ca_cert = d.join("ca.crt");
        std::fs::copy(&ca.cert, &ca_cert).expect("copy CA certificate");
        let (crt, key) = ca.issue(&d, "s3-front", "IP:127.0.0.1,DNS:localhost");
        let backend = self.endpoint.trim_start_matches("http://").to_string();
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let conf = d.join(format!("stunnel-{attempt}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "foreground = yes\npid =\nsyslog = no\ndebug = notice\n\n[s3]\naccept = 127.0.0.1:{port}\n\
                     connect = {backend}\ncert = {}\nkey = {}\n",
                    crt.display(),
                    key.display()
                ),
            )
            .expect("write stunnel config");
            let mut cmd = Command::new("stunnel4");
            cmd.arg(&conf);
            let mut front = Proc::spawn("stunnel4", cmd, d.join(format!("stunnel-{attempt}.log")));
            let url = format!("https://127.0.0.1:{port}");
            let deadline = Instant::now() + READY_DEADLINE;
            loop {
                if let Some(status) = front.exited() {
                    last = front.output();
                    if lost_port_race(&last) && attempt < START_ATTEMPTS {
                        break;
                    }
                    panic!("stunnel4 exited ({status}) before serving {url}; its output:\n{last}");
                }
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        "3",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg("--cacert")
                    .arg(&ca_cert)
                    .arg(format!("{url}/"))
                    .output()
                    .expect("run curl");
                let code = String::from_utf8_lossy(&out.stdout).into_owned();
                if !code.is_empty() && code != "000" {
                    self.tls_endpoint = Some(url);
                    self.ca_cert = Some(ca_cert);
                    self.tls = Some(front);
                    self.started_in += t0.elapsed();
                    return;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "the TLS front did not answer on {url} within {READY_DEADLINE:?} (curl exit {}); its output:\n{}",
                        out.status,
                        front.output()
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("stunnel4 could not bind a free port in {START_ATTEMPTS} attempts:\n{last}");
    }

    /// Creates bucket `name` (a directory under [`S3Server::root`]).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("create bucket dir");
    }

    /// The path an object is stored at.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The endpoint to use: the TLS front when `tls` (panics if there is none), else plain HTTP.
    pub fn url(&self, tls: bool) -> &str {
        if tls {
            self.tls_endpoint
                .as_deref()
                .expect("this S3Server has no TLS front: start it with S3Server::start_tls")
        } else {
            &self.endpoint
        }
    }

    /// The environment that gives an AWS SDK/CLI these keys and nothing from the caller's
    /// profile: keys, region `us-east-1`, no IMDS, no config files, and `AWS_CA_BUNDLE` when `tls`.
    pub fn aws_env(&self, tls: bool) -> Vec<(String, String)> {
        let nowhere = self.dir.path().join("no-aws-config");
        let mut v: Vec<(String, String)> = [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for k in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
            v.push((k.to_string(), nowhere.display().to_string()));
        }
        if tls {
            let ca = self.ca_cert.as_ref().expect("no TLS front");
            v.push(("AWS_CA_BUNDLE".to_string(), ca.display().to_string()));
        }
        v
    }

    /// `aws --endpoint-url <url(tls)>` with [`S3Server::aws_env`] and no other `AWS_*` variable
    /// (these machines export `AWS_CA_BUNDLE` = the system bundle); add e.g. `s3 cp a s3://b/k`.
    pub fn aws(&self, tls: bool) -> Command {
        require_tool(
            "aws",
            "install the aws CLI (scripts/testenv/s3s-fs.sh installs Debian's awscli)",
        );
        let mut c = Command::new("aws");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.envs(self.aws_env(tls))
            .arg("--endpoint-url")
            .arg(self.url(tls));
        c
    }

    /// `rclone` configured through the environment with a remote `gdtest:` for this server
    /// (path style, these keys, the CA when `tls`) and no config file; add e.g.
    /// `copy FILE gdtest:bucket/`. Pitfall: rclone's recursive listings (`ls`, `lsf -R`, sync)
    /// send `delimiter=` (empty), which s3s-fs 0.14.1 treats as a real delimiter: they come back
    /// empty or wrong with exit 0. List one level at a time (`lsf remote:bucket/prefix/`).
    pub fn rclone(&self, tls: bool) -> Command {
        require_tool(
            "rclone",
            "install Debian's rclone (scripts/testenv/s3s-fs.sh does)",
        );
        let mut c = Command::new("rclone");
        // AWS_* too: these machines export AWS_CA_BUNDLE, which rclone's AWS SDK then fails to load
        // ("LoadCustomCABundleError ... unsupported transport").
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if k_str.starts_with("RCLONE_") || k_str.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("RCLONE_CONFIG", self.dir.path().join("no-rclone.conf"))
            .env("RCLONE_CONFIG_GDTEST_TYPE", "s3")
            .env("RCLONE_CONFIG_GDTEST_PROVIDER", "Other")
            .env("RCLONE_CONFIG_GDTEST_ACCESS_KEY_ID", &self.access_key)
            .env("RCLONE_CONFIG_GDTEST_SECRET_ACCESS_KEY", &self.secret_key)
            .env("RCLONE_CONFIG_GDTEST_ENDPOINT", self.url(tls))
            .env("RCLONE_CONFIG_GDTEST_REGION", "us-east-1")
            .env("RCLONE_CONFIG_GDTEST_FORCE_PATH_STYLE", "true");
        if tls {
            c.arg("--ca-cert")
                .arg(self.ca_cert.as_ref().expect("no TLS front"));
        }
        c
    }

    /// The output of s3s-fs and of the TLS front, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- s3s-fs ---\n{}", self.s3s.tail(60));
        if let Some(t) = &self.tls {
            s.push_str(&format!("\n--- stunnel4 ---\n{}", t.tail(30)));
        }
        s
    }

    /// Resident memory (KiB) of s3s-fs and of the TLS front (0 without one).
    pub fn rss_kib(&self) -> (u64, u64) {
        (
            self.s3s.rss_kib(),
            self.tls.as_ref().map_or(0, Proc::rss_kib),
        )
    }

    /// The temp dir (data, certificates, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(t) = &mut self.tls {
            t.stop();
        }
        self.s3s.stop();
    }
}

/// What a [`HostileS3`] does besides serving its objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Script {
    /// Lists its objects in one page.
    #[default]
    Plain,
    /// Every listing page carries the same continuation token (a listing without end).
    SameToken,
    /// Every listing page carries a new continuation token and one more object (a listing that
    /// grows without end).
    FreshTokens,
    /// Answers nothing for this many seconds (HEAD and listings), then as [`Script::Plain`].
    Silent(u64),
}

/// A scripted S3 server that lists `keys` under bucket `bucket` (ignoring delimiters), answers
/// HEAD and (ranged) GET with each key's bytes, and never checks signatures. It exists because
/// s3s-fs lists its directory tree, so it can never list a key with `..` or a leading `/` (or
/// one with control characters), and never misbehaves as [`Script`] asks.
pub struct HostileS3 {
    pub endpoint: String,
    /// Listing requests answered so far.
    pub listings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileS3 {
    pub fn start(bucket: &str, objects: Vec<(String, Vec<u8>)>) -> HostileS3 {
        HostileS3::start_with(bucket, objects, Script::Plain)
    }

    pub fn start_with(bucket: &str, objects: Vec<(String, Vec<u8>)>, script: Script) -> HostileS3 {
        use std::sync::atomic::Ordering::SeqCst;
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, count) = (stop.clone(), listings.clone());
        let bucket = bucket.to_string();
        let thread = std::thread::spawn(move || {
            while !st.load(SeqCst) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                if let Script::Silent(secs) = script {
                    let until = Instant::now() + Duration::from_secs(secs);
                    while Instant::now() < until && !st.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let page = count.load(SeqCst);
                let resp = hostile_answer(&bucket, &objects, &req, script, page, &count);
                let _ = req.respond(resp);
            }
        });
        HostileS3 {
            endpoint,
            listings,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileS3 {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with XML's special characters as entities, and control characters as character
/// references (as S3 sends keys that hold them).
fn xml_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push_str(&format!("&#x{:x};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn hostile_answer(
    bucket: &str,
    objects: &[(String, Vec<u8>)],
    req: &tiny_http::Request,
    script: Script,
    page: usize,
    listings: &std::sync::atomic::AtomicUsize,
) -> tiny_http::ResponseBox {
    let raw = req.url().to_string();
    let (path, query) = raw.split_once('?').unwrap_or((raw.as_str(), ""));
    let path = percent_decode(path);
    let rest = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(bucket))
        .unwrap_or("");
    const DATE: &str = "Mon, 02 Nov 2026 10:00:00 GMT";
    const ETAG: &str = "&quot;0123456789abcdef0123456789abcdef-1&quot;";
    if rest.is_empty() || rest == "/" {
        listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("prefix="))
            .map(percent_decode)
            .unwrap_or_default();
        let (truncated, token) = match script {
            Script::SameToken => (
                true,
                "<NextContinuationToken>again</NextContinuationToken>".to_string(),
            ),
            Script::FreshTokens => (
                true,
                format!("<NextContinuationToken>t{page}</NextContinuationToken>"),
            ),
            _ => (false, String::new()),
        };
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{bucket}</Name><Prefix>{}</Prefix><IsTruncated>{truncated}</IsTruncated>{token}",
            xml_escape(&prefix)
        );
        let mut entry = |k: &str, len: usize| {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>2026-11-02T10:00:00.000Z</LastModified><ETag>{ETAG}</ETag><Size>{len}</Size></Contents>",
                xml_escape(k)
            ))
        };
        if script == Script::FreshTokens {
            entry(&format!("{prefix}page-{page}"), 1);
        } else {
            for (k, v) in objects.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                entry(k, v.len());
            }
        }
        xml.push_str("</ListBucketResult>");
        return tiny_http::Response::from_string(xml)
            .with_header(header("Content-Type", "application/xml"))
            .boxed();
    }
    let key = &rest[1..];
    let Some((_, bytes)) = objects.iter().find(|(k, _)| k == key) else {
        return tiny_http::Response::from_string(format!(
            "<Error><Code>NoSuchKey</Code><Key>{}</Key></Error>",
            xml_escape(key)
        ))
        .with_status_code(404)
        .boxed();
    };
    let etag = "\"0123456789abcdef0123456789abcdef-1\"";
    let range = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .map(|h| h.value.as_str().to_string());
    let (status, body, content_range) = match range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
    {
        Some((a, b)) if !bytes.is_empty() => {
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
            (
                206,
                bytes[a..=b].to_vec(),
                Some(format!("bytes {a}-{b}/{}", bytes.len())),
            )
        }
        _ => (200, bytes.clone(), None),
    };
    let mut resp = tiny_http::Response::from_data(body)
        .with_status_code(status)
        .with_header(header("ETag", etag))
        .with_header(header("Last-Modified", DATE))
        .with_header(header("Accept-Ranges", "bytes"));
    if let Some(cr) = content_range {
        resp = resp.with_header(header("Content-Range", &cr));
    }
    resp.boxed()
}

/// Puts `bytes` as `key` with the aws CLI (one PUT: its ETag is the plain MD5).
pub fn aws_put(s3: &S3Server, key: &str, bytes: &[u8]) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    let out = s3
        .aws(false)
        .args(["s3api", "put-object", "--bucket", &s3.bucket, "--key", key])
        .arg("--body")
        .arg(tmp.path())
        .output()
        .expect("run aws");
    assert!(
        out.status.success(),
        "aws put-object {key}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
