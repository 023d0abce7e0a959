//! A real Kubernetes API server per test: Debian's kube-apiserver 1.20.2 (built and cached by
//! `scripts/testenv/kube-apiserver.sh`) on a private etcd 3.4, both on random loopback ports, with
//! static bearer tokens (`admin` in `system:masters`, `reader`, `nobody`), RBAC, a CA of our own
//! and all state in one temp dir that is removed on drop. It also owns the GDC objects the storage
//! and artifacts commands read (bucket key Secrets, the `dnssuffix` ConfigMap, the `HarborCluster`
//! CRD and its `harbor` object, the `harbor-admin` Secret) and the small PKI ([`TestCa`]) and
//! binary lookup ([`testenv_binary`]) that `super::s3` shares. Tests run against the real
//! apiserver, not a mock, so that authentication, 403s from RBAC, CRDs, custom resources and
//! kubeconfig/TLS handling are exactly what a cluster does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The users of the static token file. `admin` is in `system:masters`; [`KubeCluster::install_gdc_fixtures`]
/// lets `reader` get/list Secrets in [`KEYS_NAMESPACE`]; `nobody` has no binding at all.
pub const ADMIN: &str = "admin";
pub const READER: &str = "reader";
pub const NOBODY: &str = "nobody";
/// Where GDC keeps the bucket access keys.
pub const KEYS_NAMESPACE: &str = "object-storage-access-keys";

const READY_DEADLINE: Duration = Duration::from_secs(60);
const ETCD_DEADLINE: Duration = Duration::from_secs(40);
const START_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Shared with super::s3: binaries from the testenv scripts, child processes, ports, a CA.

/// The path of a binary the project's testenv scripts provide: `$var` when set (tests/run.sh sets
/// it), else the last stdout line of `bash scripts/testenv/<script>` (cached, so cheap when warm;
/// a cold build takes minutes). Panics with the script's output when neither works.
pub fn testenv_binary(var: &str, script: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "${var} = {} is not an executable file; unset it or run scripts/testenv/{script}",
            p.display()
        );
        return p;
    }
    // One script run per binary per test process; concurrent tests wait for the first.
    static FOUND: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = found.get(script) {
        return p.clone();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/testenv")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout.lines().last().map(|l| PathBuf::from(l.trim()));
    match bin {
        Some(bin) if out.status.success() && is_executable(&bin) => {
            found.insert(script.to_string(), bin.clone());
            bin
        }
        _ => panic!(
            "${var} is unset and {} failed ({}), so there is no binary to test with; its output:\n{}{}",
            path.display(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Panics with a one-line message unless `tool` is an executable in `PATH`.
pub fn require_tool(tool: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| is_executable(&d.join(tool))));
    assert!(found, "`{tool}` not found in PATH: {hint}");
}

/// A child process whose output goes to a log file; killed and reaped on drop (also when the
/// start-up panics half-way).
pub struct Proc {
    pub name: &'static str,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log fd"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name,
            log,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `Some(status)` once the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of [`Proc::output`], for panic messages.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Resident memory in KiB (from /proc), 0 when gone.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port of 127.0.0.1 that was free a moment ago (bind port 0, read it, release it). Starters
/// retry with another port when a process then reports the address in use.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether a process's log says it lost the race for its port.
pub fn lost_port_race(log: &str) -> bool {
    log.contains("address already in use") || log.contains("Address already in use")
}

/// `GET path` over plain HTTP/1.0; the response (head and body) when one came back.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.starts_with("HTTP/").then_some(text)
}

/// Runs `openssl args` and panics with its stderr on failure.
pub fn openssl<I, S>(what: &str, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({what}): {e}"));
    assert!(
        out.status.success(),
        "openssl ({what}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority generated with openssl (EC P-256, CA:TRUE) in its own temp dir, that
/// issues server certificates. Real verifiers (Go, rustls/webpki, Python) accept what it issues,
/// which a self-signed leaf would not give us everywhere.
pub struct TestCa {
    /// PEM of the CA certificate (the file to trust).
    pub cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn generate(name: &str) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("gdtest-ca-")
            .tempdir()
            .expect("create CA temp dir");
        let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        let subj = format!("/CN={name}");
        openssl(
            "CA certificate",
            [
                "req",
                "-x509",
                "-nodes",
                "-days",
                "3",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]
            .map(OsStr::new)
            .into_iter()
            .chain([
                OsStr::new("-keyout"),
                key.as_os_str(),
                OsStr::new("-out"),
                cert.as_os_str(),
            ]),
        );
        TestCa { cert, key, dir }
    }

    /// Issues a server certificate for `sans` (e.g. `IP:127.0.0.1,DNS:localhost`) and writes
    /// `<dir>/<name>.crt` and `<dir>/<name>.key`; returns their paths.
    pub fn issue(&self, dir: &Path, name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let (crt, key, csr, ext) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"
            ),
        )
        .expect("write extension file");
        let subj = format!("/CN={name}");
        openssl(
            "server key and CSR",
            [
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-subj",
                &subj,
            ]
            .map(OsStr::new)
            .into_iter()
            .chain([
                OsStr::new("-keyout"),
                key.as_os_str(),
                OsStr::new("-out"),
                csr.as_os_str(),
            ]),
        );
        let serial = format!("{}", rand_u64() >> 1);
        openssl(
            "sign server certificate",
            [
                OsStr::new("x509"),
                "-req".as_ref(),
                "-days".as_ref(),
                "3".as_ref(),
                "-set_serial".as_ref(),
                serial.as_ref(),
                "-in".as_ref(),
                csr.as_os_str(),
                "-CA".as_ref(),
                self.cert.as_os_str(),
                "-CAkey".as_ref(),
                self.key.as_os_str(),
                "-extfile".as_ref(),
                ext.as_os_str(),
                "-out".as_ref(),
                crt.as_os_str(),
            ],
        );
        (crt, key)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// 64 random bits from the kernel (tokens, serials).
pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    u64::from_le_bytes(b)
}

// ---------------------------------------------------------------------------------------------
// The cluster.

/// A running etcd + kube-apiserver. Dropping it kills both and removes the temp dir.
pub struct KubeCluster {
    /// A kubeconfig for `admin` (system:masters), CA data embedded.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// PEM of the CA that issued the apiserver's serving certificate (IP:127.0.0.1, localhost).
    pub ca_cert: PathBuf,
    /// `http://127.0.0.1:PORT` of the private etcd.
    pub etcd_endpoint: String,
    /// How long `start` took until `/readyz` said ok.
    pub started_in: Duration,
    tokens: Vec<(String, String)>,
    apiserver: Proc,
    etcd: Proc,
    ca: TestCa,
    // Last, so that it is deleted after the processes are gone.
    dir: tempfile::TempDir,
}

impl KubeCluster {
    /// Starts etcd and kube-apiserver with the users [`ADMIN`], [`READER`] and [`NOBODY`] and waits
    /// (≤ 60 s) for `/readyz`. Panics, with both logs, if the cluster does not come up.
    pub fn start() -> KubeCluster {
        KubeCluster::start_with_users(&[])
    }

    /// [`KubeCluster::start`] plus more token users: `(name, groups)`.
    pub fn start_with_users(extra: &[(&str, &[&str])]) -> KubeCluster {
        let t0 = Instant::now();
        let apiserver_bin = testenv_binary("GDCLOUD_TEST_KUBE_APISERVER", "kube-apiserver.sh");
        require_tool(
            "etcd",
            "install Debian's etcd-server (scripts/testenv/kube-apiserver.sh does)",
        );
        require_tool("openssl", "install openssl");
        require_tool("curl", "install curl (tests/run.sh does)");
        let dir = tempfile::Builder::new()
            .prefix("gdtest-kube-")
            .tempdir()
            .expect("create cluster temp dir");
        let d = dir.path();

        // PKI: our CA and the serving certificate; the service-account signing key pair.
        let ca = TestCa::generate("gdtest-kube-ca");
        let ca_cert = d.join("ca.crt");
        std::fs::copy(&ca.cert, &ca_cert).expect("copy CA certificate");
        let (tls_crt, tls_key) = ca.issue(
            d,
            "apiserver",
            "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc",
        );
        let (sa_key, sa_pub) = (d.join("sa.key"), d.join("sa.pub"));
        openssl(
            "service-account key",
            [OsStr::new("genpkey"), "-algorithm".as_ref(), "RSA".as_ref()]
                .into_iter()
                .chain(["-pkeyopt", "rsa_keygen_bits:2048", "-out"].map(OsStr::new))
                .chain([sa_key.as_os_str()]),
        );
        openssl(
            "service-account public key",
            ["pkey", "-pubout", "-in"]
                .map(OsStr::new)
                .into_iter()
                .chain([sa_key.as_os_str(), "-out".as_ref(), sa_pub.as_os_str()]),
        );

        // Static tokens: `token,user,uid,"group1,group2"`.
        let mut users: Vec<(&str, Vec<&str>)> = vec![
            (ADMIN, vec!["system:masters"]),
            (READER, vec![]),
            (NOBODY, vec![]),
        ];
        users.extend(extra.iter().map(|(u, g)| (*u, g.to_vec())));
        let mut tokens = Vec::new();
        let mut csv = String::new();
        for (i, (user, groups)) in users.iter().enumerate() {
            let token = format!("{user}-{:016x}{:016x}", rand_u64(), rand_u64());
            csv.push_str(&format!(
                "{token},{user},{},\"{}\"\n",
                1000 + i,
                groups.join(",")
            ));
            tokens.push((user.to_string(), token));
        }
        let token_file = d.join("tokens.csv");
        std::fs::write(&token_file, csv).expect("write token file");
        let cert_dir = d.join("certs");
        std::fs::create_dir(&cert_dir).expect("create cert dir");

        let (etcd, etcd_endpoint) = start_etcd(d);
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let server = format!("https://127.0.0.1:{port}");
            let mut cmd = Command::new(&apiserver_bin);
            cmd.arg(format!("--etcd-servers={etcd_endpoint}"))
                .args([
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    "--insecure-port=0",
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    "--profiling=false",
                ])
                .arg(format!("--secure-port={port}"))
                .arg(arg("--cert-dir", &cert_dir))
                .arg(arg("--tls-cert-file", &tls_crt))
                .arg(arg("--tls-private-key-file", &tls_key))
                .arg(arg("--token-auth-file", &token_file))
                .arg(arg("--service-account-key-file", &sa_pub))
                .arg(arg("--service-account-signing-key-file", &sa_key))
                .env_remove("KUBECONFIG");
            let mut apiserver = Proc::spawn(
                "kube-apiserver",
                cmd,
                d.join(format!("kube-apiserver-{attempt}.log")),
            );
            let admin_token = &tokens[0].1;
            match wait_ready(&mut apiserver, &server, &ca_cert, admin_token) {
                Ok(()) => {
                    let cluster = KubeCluster {
                        kubeconfig: d.join("admin.kubeconfig"),
                        server,
                        ca_cert,
                        etcd_endpoint,
                        started_in: t0.elapsed(),
                        tokens,
                        apiserver,
                        etcd,
                        ca,
                        dir,
                    };
                    cluster.write_kubeconfig(ADMIN, &cluster.kubeconfig);
                    return cluster;
                }
                Err(log) if lost_port_race(&log) && attempt < START_ATTEMPTS => last = log,
                Err(log) => panic!(
                    "kube-apiserver did not become ready on {server}: {log}\n--- etcd (last lines) ---\n{}",
                    etcd.tail(30)
                ),
            }
        }
        panic!("kube-apiserver could not bind a free port in {START_ATTEMPTS} attempts:\n{last}");
    }

    /// The bearer token of `user` (one of the users the cluster was started with).
    pub fn token(&self, user: &str) -> &str {
        self.tokens
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no token user {user:?} in this cluster"))
    }

    /// Writes (once) and returns `<dir>/<user>.kubeconfig`: this server, its CA
    /// (`certificate-authority-data`) and `user`'s token; context `gdtest-<user>`, namespace `default`.
    pub fn kubeconfig_for(&self, user: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        if !path.exists() {
            self.write_kubeconfig(user, &path);
        }
        path
    }

    fn write_kubeconfig(&self, user: &str, path: &Path) {
        let ca = std::fs::read(&self.ca_cert).expect("read CA certificate");
        let q = |s: &str| Value::from(s).to_string(); // a JSON string is a YAML double-quoted scalar
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gdtest\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: {}\n  user:\n    token: {}\ncontexts:\n- name: {}\n  \
             context:\n    cluster: gdtest\n    user: {}\n    namespace: default\ncurrent-context: {}\n",
            q(&self.server),
            q(&base64::engine::general_purpose::STANDARD.encode(ca)),
            q(user),
            q(self.token(user)),
            q(&format!("gdtest-{user}")),
            q(user),
            q(&format!("gdtest-{user}")),
        );
        std::fs::write(path, yaml).expect("write kubeconfig");
    }

    /// Runs `kubectl args` as admin.
    pub fn kubectl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_as(ADMIN, args)
    }

    /// Runs `kubectl --kubeconfig <user's> args` (with `KUBECONFIG` cleared and a private
    /// discovery cache).
    pub fn kubectl_as<I, S>(&self, user: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_cmd(user, args, &[])
    }

    /// Runs `kubectl args` as admin, panics on failure (with both streams) and returns stdout.
    #[track_caller]
    pub fn kubectl_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_cmd<I, S>(&self, user: &str, args: I, stdin: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        require_tool(
            "kubectl",
            "install kubectl (scripts/testenv/kube-apiserver.sh installs Debian's kubernetes-client)",
        );
        let mut c = Command::new("kubectl");
        c.arg(arg("--kubeconfig", &self.kubeconfig_for(user)))
            .arg(arg("--cache-dir", &self.dir.path().join("kubectl-cache")))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run kubectl");
        let mut input = child.stdin.take().expect("kubectl stdin");
        input.write_all(stdin).expect("write kubectl stdin");
        drop(input);
        child.wait_with_output().expect("wait for kubectl")
    }

    /// `kubectl apply -f -` as admin; panics with kubectl's output on failure. Retries a few
    /// times when a kind is not (yet) in discovery, which happens right after a CRD is created.
    #[track_caller]
    pub fn apply_yaml(&self, yaml: &str) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let out = self.kubectl_cmd(ADMIN, ["apply", "-f", "-"], yaml.as_bytes());
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if attempt < 10 && (err.contains("no matches for kind") || err.contains("ensure CRDs"))
            {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            panic!(
                "kubectl apply failed ({}): {}{err}\n--- the input ---\n{yaml}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Lets `user` do `verbs` on `resources` (core API group) in `namespace`: a Role and a
    /// RoleBinding named `gdtest-<user>-<resources>`.
    pub fn grant(&self, user: &str, namespace: &str, resources: &[&str], verbs: &[&str]) {
        let name = format!("gdtest-{user}-{}", resources.join("-"));
        self.apply_yaml(&rbac(&name, user, namespace, resources, verbs).to_string());
    }

    /// [`KubeCluster::install_gdc_fixtures_with`] the defaults.
    pub fn install_gdc_fixtures(&self) {
        self.install_gdc_fixtures_with(&GdcFixtures::default());
    }

    /// Creates what a GDC org cluster holds for the storage and artifacts commands: namespace
    /// [`KEYS_NAMESPACE`] with the bucket key Secrets and a Role/RoleBinding letting
    /// `fx.reader` get/list Secrets there; namespace `gpc-system` with ConfigMap `dnssuffix`
    /// (`dnsSuffix`); the `HarborCluster` CRD, and in `harbor-system` the HarborCluster `harbor`
    /// (`spec.externalURL`) and Secret `harbor-admin` (key `secret`); then `fx.extra_yaml`.
    pub fn install_gdc_fixtures_with(&self, fx: &GdcFixtures) {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut items = vec![
            namespace(KEYS_NAMESPACE),
            namespace("gpc-system"),
            namespace("harbor-system"),
            harbor_cluster_crd(),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "dnssuffix", "namespace": "gpc-system"},
                "data": {"dnsSuffix": fx.dns_suffix},
            }),
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "harbor-admin", "namespace": "harbor-system"},
                "data": {"secret": b64(&fx.harbor_admin_password)},
            }),
        ];
        for k in &fx.access_keys {
            let mut annotations =
                BTreeMap::from([("object.gdc.goog/subject".to_string(), k.subject.clone())]);
            annotations.extend(k.annotations.iter().cloned());
            items.push(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {
                    "name": k.name, "namespace": KEYS_NAMESPACE,
                    "labels": k.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                    "annotations": annotations,
                },
                "data": {
                    "access-key-id": b64(&k.access_key_id),
                    "secret-access-key": b64(&k.secret_access_key),
                },
            }));
        }
        if let Some(reader) = &fx.reader {
            let name = "gdtest-object-storage-key-reader";
            items.extend(rbac_items(
                name,
                reader,
                KEYS_NAMESPACE,
                &["secrets"],
                &["get", "list"],
            ));
        }
        self.apply_yaml(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string());
        self.kubectl_ok([
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/harborclusters.goharbor.io",
        ]);
        self.apply_yaml(
            &json!({
                "apiVersion": "goharbor.io/v1beta1", "kind": "HarborCluster",
                "metadata": {"name": "harbor", "namespace": "harbor-system"},
                "spec": {"externalURL": fx.harbor_external_url},
            })
            .to_string(),
        );
        for y in &fx.extra_yaml {
            self.apply_yaml(y);
        }
    }

    /// Both processes' output, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- kube-apiserver ---\n{}\n--- etcd ---\n{}",
            self.apiserver.tail(80),
            self.etcd.tail(40)
        )
    }

    /// Resident memory (KiB) of etcd and kube-apiserver.
    pub fn rss_kib(&self) -> (u64, u64) {
        (self.etcd.rss_kib(), self.apiserver.rss_kib())
    }

    /// The CA behind [`KubeCluster::ca_cert`], e.g. to issue a certificate for another local
    /// server that clients should trust with the same bundle.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The temp dir (certificates, tokens, kubeconfigs, etcd data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        self.apiserver.stop();
        self.etcd.stop();
    }
}

/// Polls `GET /readyz` (as admin) until it answers `ok`; `Err(message with the log)` when the
/// process exits or the deadline passes.
fn wait_ready(
    apiserver: &mut Proc,
    server: &str,
    ca_cert: &Path,
    admin_token: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = apiserver.exited() {
            return Err(format!(
                "kube-apiserver exited ({status}); its output (last lines):\n{}",
                apiserver.tail(60)
            ));
        }
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "3", "-w", "\n%{http_code}", "--cacert"])
            .arg(ca_cert)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", admin_token))
            .arg(format!("{}/readyz", server))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.ends_with("\n200") && text.starts_with("ok") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let last = format!("{text} {}", String::from_utf8_lossy(&out.stderr));
            apiserver.stop();
            return Err(format!(
                "no ok from /readyz within {READY_DEADLINE:?} (last answer: {}); its output (last lines):\n{}",
                last.trim(),
                apiserver.tail(60)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--flag=path`.
fn arg(flag: &str, path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(format!("{flag}="));
    s.push(path);
    s
}

/// Starts etcd (data in `d/etcd`) on two free ports and waits until `/health` is true; retries
/// on a lost port race. Returns it and its client URL.
fn start_etcd(d: &Path) -> (Proc, String) {
    let data = d.join("etcd");
    let mut last = String::new();
    for attempt in 1..=START_ATTEMPTS {
        let (client, peer) = (free_port(), free_port());
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new("etcd");
        cmd.args([
            "--name",
            "gdtest",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ])
        .arg(arg("--data-dir", &data))
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args(["--initial-cluster", &format!("gdtest={purl}")])
        // A single member elects itself after one election timeout: 100 ms, not the default
        // 1 s (ready in ~0.15 s instead of ~0.95 s).
        .args(["--heartbeat-interval", "10", "--election-timeout", "100"]);
        // ETCD_* variables are flags to etcd; keep the test hermetic.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        let mut etcd = Proc::spawn("etcd", cmd, d.join(format!("etcd-{attempt}.log")));
        let addr: SocketAddr = format!("127.0.0.1:{client}").parse().expect("address");
        let deadline = Instant::now() + ETCD_DEADLINE;
        loop {
            if let Some(status) = etcd.exited() {
                last = etcd.output();
                if lost_port_race(&last) && attempt < START_ATTEMPTS {
                    let _ = std::fs::remove_dir_all(&data);
                    break;
                }
                panic!("etcd exited ({status}) before it was healthy; its output:\n{last}");
            }
            if http_get(addr, "/health").is_some_and(|r| r.contains("\"health\":\"true\"")) {
                return (etcd, curl);
            }
            if Instant::now() >= deadline {
                panic!(
                    "etcd was not healthy on {curl} within {ETCD_DEADLINE:?}; its output:\n{}",
                    etcd.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("etcd could not bind free ports in {START_ATTEMPTS} attempts:\n{last}");
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn rbac_items(name: &str, user: &str, ns: &str, resources: &[&str], verbs: &[&str]) -> [Value; 2] {
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }),
    ]
}

fn rbac(name: &str, user: &str, ns: &str, resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": rbac_items(name, user, ns, resources, verbs)})
}

/// The `HarborCluster` CRD (`goharbor.io/v1beta1`, namespaced), reduced to what we read:
/// `spec.externalURL`; everything else is preserved unvalidated.
pub fn harbor_cluster_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "harborclusters.goharbor.io"},
        "spec": {
            "group": "goharbor.io",
            "scope": "Namespaced",
            "names": {
                "kind": "HarborCluster", "listKind": "HarborClusterList",
                "plural": "harborclusters", "singular": "harborcluster", "shortNames": ["hc"],
            },
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"externalURL": {"type": "string"}},
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// One bucket key Secret in [`KEYS_NAMESPACE`].
#[derive(Debug, Clone)]
pub struct AccessKey {
    /// e.g. `object-storage-key-std-user-1`.
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The `object.gdc.goog/subject` annotation (the user the key belongs to).
    pub subject: String,
    /// Default: `object.gdc.goog/storage-class: standard` (the `std` in the name).
    pub labels: Vec<(String, String)>,
    /// More annotations besides the subject.
    pub annotations: Vec<(String, String)>,
}

impl AccessKey {
    pub fn new(name: &str, access_key_id: &str, secret_access_key: &str) -> AccessKey {
        AccessKey {
            name: name.to_string(),
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            subject: "user:std-user-1".to_string(),
            labels: vec![(
                "object.gdc.goog/storage-class".to_string(),
                "standard".to_string(),
            )],
            annotations: Vec::new(),
        }
    }
}

/// The values [`KubeCluster::install_gdc_fixtures_with`] writes; [`Default`] gives an org with
/// DNS suffix `org.example.test`. Tests point them at their local servers (e.g. the access key of
/// a `super::s3::S3Server`, a registry's URL as `harbor_external_url`).
#[derive(Debug, Clone)]
pub struct GdcFixtures {
    /// ConfigMap `gpc-system/dnssuffix`, key `dnsSuffix`.
    pub dns_suffix: String,
    /// `.spec.externalURL` of HarborCluster `harbor-system/harbor`.
    pub harbor_external_url: String,
    /// Secret `harbor-system/harbor-admin`, key `secret`.
    pub harbor_admin_password: String,
    pub access_keys: Vec<AccessKey>,
    /// The user allowed to get/list Secrets in [`KEYS_NAMESPACE`] (None: nobody).
    pub reader: Option<String>,
    /// Applied last, one `kubectl apply` each.
    pub extra_yaml: Vec<String>,
}

impl Default for GdcFixtures {
    fn default() -> GdcFixtures {
        GdcFixtures {
            dns_suffix: "org.example.test".to_string(),
            harbor_external_url: "https://harbor.org.example.test".to_string(),
            harbor_admin_password: "gdtest-harbor-admin".to_string(),
            access_keys: vec![AccessKey::new(
                "object-storage-key-std-user-1",
                "GDTESTACCESSKEY1",
                "gdtest-secret-key-1",
            )],
            reader: Some(READER.to_string()),
            extra_yaml: Vec::new(),
        }
    }
}

impl GdcFixtures {
    /// The defaults, with the first access key's id and secret set to `access_key_id` and
    /// `secret_access_key` (e.g. those of a local S3 server).
    pub fn with_access_key(access_key_id: &str, secret_access_key: &str) -> GdcFixtures {
        let mut fx = GdcFixtures::default();
        fx.access_keys[0].access_key_id = access_key_id.to_string();
        fx.access_keys[0].secret_access_key = secret_access_key.to_string();
        fx
    }
}
