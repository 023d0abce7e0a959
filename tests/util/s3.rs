//! A real S3 server per test: one Garage 2.5 node (built and cached by
//! `scripts/testenv/garage.sh`, run by [`super::garage`]) started with `--single-node
//! --default-bucket`, so its key and bucket exist when it answers, on random loopback ports with
//! its data in a temp dir, optionally behind a stunnel TLS front whose certificate is issued by a
//! [`TestCa`]. Garage checks SigV4 signatures and the signing region (configured per server:
//! [`S3Server::start_in_region`]), refuses a wrong `Content-MD5` and serves virtual-host style
//! requests under its `root_domain` (`.localhost`). It owns the processes, the data and the logs,
//! and removes everything on drop. Objects are read back with curl's own SigV4 signing
//! ([`S3Server::object`], [`S3Server::keys`], [`S3Server::uploads`]), independent of our client,
//! and the CLI peers (`aws`, `rclone`) are prepared with this server's endpoint and keys. Tests talk
//! to a real server over real HTTP(S), not a mock, so that signing, TLS and error replies are the
//! ones clients see in production.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::garage::{new_keys, Node, NodeConfig};
#[allow(unused_imports)]
pub use super::hostile_s3::{HostileS3, Script};
pub use super::kube::TestCa;
use super::kube::{free_port, lost_port_race, require_tool, Proc};

/// The bucket every server starts with.
pub const BUCKET: &str = "gdtest-bucket";
/// The region [`S3Server::start`] signs for (what clients assume when told nothing).
pub const REGION: &str = "us-east-1";
/// Garage's `root_domain`: `BUCKET.localhost` addresses a bucket virtual-host style.
pub const ROOT_DOMAIN: &str = ".localhost";
const READY_DEADLINE: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// A running Garage node (and its TLS front, when started with [`S3Server::start_tls`]).
/// Dropping it kills both and deletes the temp dir.
pub struct S3Server {
    /// `http://127.0.0.1:PORT` (Garage's S3 API).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The bucket created at start ([`BUCKET`]).
    pub bucket: String,
    /// The region Garage signs for and checks.
    pub region: String,
    /// With TLS: `https://127.0.0.1:PORT` of the stunnel front (certificate for IP:127.0.0.1 and
    /// localhost).
    pub tls_endpoint: Option<String>,
    /// With TLS: a copy of the CA certificate that issued the front's certificate.
    pub ca_cert: Option<PathBuf>,
    /// How long `start` took until the server (and front) answered.
    pub started_in: Duration,
    node: Node,
    tls: Option<Proc>,
    // Last, so that it is deleted after the processes are gone.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Garage over plain HTTP in region [`REGION`] with fresh keys and bucket [`BUCKET`]; waits
    /// until a signed request for the bucket succeeds. Panics, with its log, if it cannot start.
    pub fn start() -> S3Server {
        S3Server::start_in_region(REGION)
    }

    /// [`S3Server::start`] with Garage checking signatures for `region`.
    pub fn start_in_region(region: &str) -> S3Server {
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("gdtest-s3-")
            .tempdir()
            .expect("create S3 temp dir");
        let (access_key, secret_key) = new_keys();
        let node = Node::start(
            &dir.path().join("garage"),
            &NodeConfig::single(region),
            &["--single-node", "--default-bucket"],
            &[
                ("GARAGE_DEFAULT_ACCESS_KEY", &access_key),
                ("GARAGE_DEFAULT_SECRET_KEY", &secret_key),
                ("GARAGE_DEFAULT_BUCKET", BUCKET),
            ],
        );
        let mut s = S3Server {
            endpoint: node.endpoint.clone(),
            access_key,
            secret_key,
            bucket: BUCKET.to_string(),
            region: region.to_string(),
            tls_endpoint: None,
            ca_cert: None,
            started_in: Duration::ZERO,
            node,
            tls: None,
            dir,
        };
        s.write_curl_config();
        let deadline = Instant::now() + READY_DEADLINE;
        while s.curl("HEAD", &format!("/{BUCKET}"), &[]).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "garage did not serve bucket {BUCKET} within {READY_DEADLINE:?}:\n{}",
                s.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        s.started_in = t0.elapsed();
        s
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
            "install Debian's stunnel4 (scripts/testenv/garage.sh does)",
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

    /// Creates bucket `name` with the `garage` CLI and lets this server's key use it.
    pub fn create_bucket(&self, name: &str) {
        self.node.cli_ok(&["bucket", "create", name]);
        self.node.cli_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            name,
            "--key",
            &self.access_key,
        ]);
    }

    /// The keys and region for curl, in a file rather than argv.
    fn write_curl_config(&self) {
        let conf = format!(
            "user = \"{}:{}\"\naws-sigv4 = \"aws:amz:{}:s3\"\n",
            self.access_key, self.secret_key, self.region
        );
        std::fs::write(self.dir.path().join("curl.conf"), conf).expect("write curl.conf");
    }

    /// One request signed by curl (`--aws-sigv4`, independent of our signer) to `path_query`
    /// (already encoded); its status and body.
    pub fn curl(&self, method: &str, path_query: &str, extra: &[&str]) -> (u16, Vec<u8>) {
        require_tool("curl", "install curl (scripts/testenv/garage.sh does)");
        let body = self
            .dir
            .path()
            .join(format!("curl-{}.out", super::kube::rand_u64()));
        let mut c = Command::new("curl");
        c.arg("-K")
            .arg(self.dir.path().join("curl.conf"))
            .args(["-s", "--path-as-is", "--max-time", "30", "-o"])
            .arg(&body)
            .args([
                "-w",
                "%{http_code}",
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            ]);
        if method == "HEAD" {
            c.arg("-I");
        } else {
            c.args(["-X", method]);
        }
        let out = c
            .args(extra)
            .arg(format!("{}{path_query}", self.endpoint))
            .output()
            .expect("run curl");
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let bytes = std::fs::read(&body).unwrap_or_default();
        let _ = std::fs::remove_file(&body);
        (status, bytes)
    }

    /// The bytes of object `key` as the server holds them (`None` when there is no such object).
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self.curl("GET", &format!("/{bucket}/{}", encode_key(key)), &[]) {
            (200, b) => Some(b),
            (404, _) => None,
            (s, b) => panic!(
                "GET s3://{bucket}/{key}: HTTP {s}: {}",
                String::from_utf8_lossy(&b)
            ),
        }
    }

    /// Stores `bytes` as `key` with one PUT signed by curl.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let file = self
            .dir
            .path()
            .join(format!("put-{}.bin", super::kube::rand_u64()));
        std::fs::write(&file, bytes).expect("write the object's bytes");
        let (status, body) = self.curl(
            "PUT",
            &format!("/{bucket}/{}", encode_key(key)),
            &["-T", file.to_str().expect("UTF-8 temp path")],
        );
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            status,
            200,
            "PUT s3://{bucket}/{key}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Every key in `bucket` (ListObjectsV2, all pages).
    pub fn keys(&self, bucket: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let q = match &token {
                Some(t) => format!(
                    "?continuation-token={}&list-type=2",
                    encode_key(t).replace('/', "%2F")
                ),
                None => "?list-type=2".to_string(),
            };
            let (s, b) = self.curl("GET", &format!("/{bucket}{q}"), &[]);
            let xml = String::from_utf8_lossy(&b).into_owned();
            assert_eq!(s, 200, "list {bucket}: {xml}");
            keys.extend(xml_values(&xml, "Key"));
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                return keys;
            }
        }
    }

    /// The keys of the multipart uploads in progress in `bucket` (neither completed nor aborted).
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        let (s, b) = self.curl("GET", &format!("/{bucket}?uploads="), &[]);
        let xml = String::from_utf8_lossy(&b).into_owned();
        assert_eq!(s, 200, "list uploads of {bucket}: {xml}");
        xml_values(&xml, "Key")
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
            ("AWS_DEFAULT_REGION", self.region.as_str()),
            ("AWS_REGION", self.region.as_str()),
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
            "install the aws CLI (scripts/testenv/garage.sh installs Debian's awscli)",
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
    /// `copy FILE gdtest:bucket/`.
    pub fn rclone(&self, tls: bool) -> Command {
        require_tool(
            "rclone",
            "install Debian's rclone (scripts/testenv/garage.sh does)",
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
            .env("RCLONE_CONFIG_GDTEST_REGION", &self.region)
            .env("RCLONE_CONFIG_GDTEST_FORCE_PATH_STYLE", "true");
        if tls {
            c.arg("--ca-cert")
                .arg(self.ca_cert.as_ref().expect("no TLS front"));
        }
        c
    }

    /// Garage's output and the TLS front's, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- garage ---\n{}", self.node.tail(60));
        if let Some(t) = &self.tls {
            s.push_str(&format!("\n--- stunnel4 ---\n{}", t.tail(30)));
        }
        s
    }

    /// Resident memory (KiB) of Garage and of the TLS front (0 without one).
    pub fn rss_kib(&self) -> (u64, u64) {
        (
            self.node.rss_kib(),
            self.tls.as_ref().map_or(0, Proc::rss_kib),
        )
    }

    /// The temp dir (Garage's data, certificates, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(t) = &mut self.tls {
            t.stop();
        }
        self.node.stop();
    }
}

/// `key` percent-encoded for a URL path as SigV4 canonicalises it (`/` kept).
pub fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in `xml`, entities decoded.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(xml_unescape(&after[..j]));
        rest = &after[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(';') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let ent = &rest[i + 1..i + j];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..=i + j]),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
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
