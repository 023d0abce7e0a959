//! Garage nodes for the S3 tests: one node's configuration, process and CLI ([`Node`]), and a
//! three-node cluster ([`Cluster`]: one `rpc_secret`, replication factor 3, one zone per node,
//! the layout assigned and applied with the `garage` CLI). [`super::s3::S3Server`] runs one node
//! in `--single-node --default-bucket` mode on top of this.
//!
//! Garage (built and cached by `scripts/testenv/garage.sh`) is a real distributed S3 store: it
//! checks signatures and the signing region, refuses a wrong `Content-MD5`, stores `..` keys
//! literally and replicates across nodes, which is what the storage tests need from a server.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::kube::{free_port, http_get, lost_port_race, rand_u64, testenv_binary, Proc};

const READY_DEADLINE: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// The Garage binary (`$GDCLOUD_TEST_GARAGE`, else `scripts/testenv/garage.sh`).
pub fn binary() -> PathBuf {
    testenv_binary("GDCLOUD_TEST_GARAGE", "garage.sh")
}

/// `n` random bytes in hex.
pub fn hex(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&format!("{:016x}", rand_u64()));
    }
    s.truncate(bytes * 2);
    s
}

/// A fresh key pair in Garage's own format (`GK` + 24 hex digits, a 64-digit secret).
pub fn new_keys() -> (String, String) {
    (format!("GK{}", hex(12)), hex(32))
}

/// What one node is configured with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The region the node signs for and checks (`s3_api.s3_region`).
    pub region: String,
    /// `s3_api.root_domain`: `bucket.<root_domain>` hosts address buckets virtual-host style.
    pub root_domain: String,
    /// Copies of each block (1 for one node, 3 for the cluster).
    pub replication: usize,
    /// Shared by the nodes of one cluster.
    pub rpc_secret: String,
}

impl NodeConfig {
    pub fn single(region: &str) -> NodeConfig {
        NodeConfig {
            region: region.to_string(),
            root_domain: ".localhost".to_string(),
            replication: 1,
            rpc_secret: hex(32),
        }
    }
}

/// One running Garage node: its config file, ports and process.
pub struct Node {
    /// `http://127.0.0.1:PORT` of its S3 API.
    pub endpoint: String,
    pub s3_port: u16,
    /// `127.0.0.1:PORT` of its RPC.
    pub rpc_addr: String,
    pub config_file: PathBuf,
    pub dir: PathBuf,
    proc: Proc,
}

impl Node {
    /// Starts a node in `dir` (its `meta/`, `data/`, config and logs go there) with `args` after
    /// `server` and `env`; retries with other ports when one was taken meanwhile. Waits until its
    /// S3 API answers HTTP.
    pub fn start(dir: &Path, cfg: &NodeConfig, args: &[&str], env: &[(&str, &str)]) -> Node {
        let bin = binary();
        std::fs::create_dir_all(dir).expect("create node dir");
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let (s3_port, rpc_port) = (free_port(), free_port());
            let config_file = dir.join("garage.toml");
            std::fs::write(&config_file, config_text(dir, cfg, s3_port, rpc_port))
                .expect("write garage.toml");
            let mut cmd = Command::new(&bin);
            cmd.arg("-c")
                .arg(&config_file)
                .arg("server")
                .args(args)
                .envs(env.iter().copied())
                .env("RUST_LOG", "garage=info,garage_api_s3=info")
                .env("NO_COLOR", "1");
            let mut proc = Proc::spawn("garage", cmd, dir.join(format!("garage-{attempt}.log")));
            let addr: SocketAddr = format!("127.0.0.1:{s3_port}").parse().expect("address");
            let deadline = Instant::now() + READY_DEADLINE;
            loop {
                if let Some(status) = proc.exited() {
                    last = proc.output();
                    if lost_port_race(&last) && attempt < START_ATTEMPTS {
                        break;
                    }
                    panic!(
                        "garage exited ({status}) before answering on {addr}; its output:\n{last}"
                    );
                }
                if http_get(addr, "/").is_some() {
                    return Node {
                        endpoint: format!("http://{addr}"),
                        s3_port,
                        rpc_addr: format!("127.0.0.1:{rpc_port}"),
                        config_file,
                        dir: dir.to_path_buf(),
                        proc,
                    };
                }
                if Instant::now() >= deadline {
                    panic!(
                        "garage did not answer on {addr} within {READY_DEADLINE:?}; its output:\n{}",
                        proc.output()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("garage could not bind free ports in {START_ATTEMPTS} attempts:\n{last}");
    }

    /// `garage -c CONFIG args…` (the CLI talks to this node over RPC); its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .arg("-c")
            .arg(&self.config_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run garage CLI")
    }

    /// [`Node::cli`] that must succeed; its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {}: {}{}\n--- node log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.tail(40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `<full node id>@127.0.0.1:PORT`.
    pub fn id(&self) -> String {
        self.cli_ok(&["node", "id", "-q"]).trim().to_string()
    }

    pub fn tail(&self, n: usize) -> String {
        self.proc.tail(n)
    }

    pub fn rss_kib(&self) -> u64 {
        self.proc.rss_kib()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Kills the node (SIGKILL): what a crashed machine looks like to the others.
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

fn config_text(dir: &Path, cfg: &NodeConfig, s3_port: u16, rpc_port: u16) -> String {
    format!(
        "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
         replication_factor = {rep}\ncompression_level = \"none\"\n\
         rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
         rpc_secret = \"{secret}\"\n\n[s3_api]\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
         s3_region = \"{region}\"\nroot_domain = \"{root}\"\n",
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
        rep = cfg.replication,
        secret = cfg.rpc_secret,
        region = cfg.region,
        root = cfg.root_domain,
    )
}

/// Three Garage nodes, replication factor 3, one zone each, a key and a bucket it may use.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
    // Last, so that it is deleted after the processes are gone.
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(bucket: &str) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gdtest-garage3-")
            .tempdir()
            .expect("create cluster temp dir");
        let cfg = NodeConfig {
            replication: 3,
            ..NodeConfig::single("us-east-1")
        };
        let nodes: Vec<Node> = (1..=3)
            .map(|i| Node::start(&dir.path().join(format!("node{i}")), &cfg, &[], &[]))
            .collect();
        let ids: Vec<String> = nodes.iter().map(Node::id).collect();
        for id in &ids[1..] {
            nodes[0].cli_ok(&["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let hex_id = id.split('@').next().expect("node id");
            let zone = format!("zone{}", i + 1);
            nodes[0].cli_ok(&["layout", "assign", "-z", &zone, "-c", "1G", &hex_id[..16]]);
        }
        nodes[0].cli_ok(&["layout", "apply", "--version", "1"]);
        let (access_key, secret_key) = new_keys();
        nodes[0].cli_ok(&["key", "import", "--yes", &access_key, &secret_key]);
        // The layout spreads to the other nodes asynchronously: retry until the bucket exists.
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let out = nodes[0].cli(&["bucket", "create", bucket]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "garage bucket create {bucket}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        nodes[0].cli_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &access_key,
        ]);
        Cluster {
            nodes,
            access_key,
            secret_key,
            bucket: bucket.to_string(),
            region: cfg.region,
            dir,
        }
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ---\n{}\n", i + 1, n.tail(30)))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
