//! Running the freshly built `gdcloud-storage` in a test environment, with nothing of the
//! machine's S3, TLS or Kubernetes settings leaking in.

use std::process::{Command, Output};

use super::env::{run_with_stdin, stderr, stdout, TestEnv};

/// The freshly built plugin binary.
pub fn storage_bin() -> String {
    let bin = super::env::bin_dir().join("gdcloud-storage");
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace` first",
        bin.display()
    );
    bin.display().to_string()
}

/// Removes what the machine exports globally (CA bundles, AWS settings, a kubeconfig) so that
/// only what the test passes reaches the command and its children.
pub fn hermetic(c: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    for k in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "KUBECONFIG",
    ] {
        c.env_remove(k);
    }
    c
}

/// `gdcloud-storage ARGS` in `env`, hermetic, not started.
pub fn storage_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = env.cmd(&storage_bin());
    hermetic(&mut c).args(args);
    c
}

/// `gdcloud-storage ARGS` in `env`, hermetic, stdin empty, cwd = the env's root.
pub fn storage(env: &TestEnv, args: &[&str]) -> Output {
    run_with_stdin(storage_cmd(env, args), b"")
}

/// Asserts failure and returns stdout + stderr.
#[track_caller]
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command succeeded but should have failed:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    format!("{}{}", stdout(o), stderr(o))
}

#[track_caller]
pub fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "expected {p:?} in:\n{text}");
    }
}

/// A test environment whose default configuration holds `endpoint` and the key pair, as
/// `gdcloud-storage configure` would leave it.
pub fn env_with_keys(access_key: &str, secret_key: &str, endpoint: &str) -> TestEnv {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", access_key);
    env.set_property("storage", "s3_secret_access_key", secret_key);
    env.set_property("storage", "s3_endpoint", endpoint);
    env
}

/// Fresh pseudo-random bytes (xorshift from `seed`): Garage de-duplicates identical blocks, so
/// each object gets its own.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A test path as the `&str` argument a command line takes.
pub fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
