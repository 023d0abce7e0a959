//! Real clients using `docker-credential-gdcloud` against a real Distribution registry: the docker
//! CLI's `login`/`logout` drive `store`/`erase`; skopeo (inspect, copy) and podman (pull) get their
//! credentials from the helper through `credHelpers`, with htpasswd, with token auth (a token server
//! of ours, as Harbor does it) and over TLS with the CA installed by `configure-docker --config-cert`.
//! Each client's config holds no password: success proves the helper answered.

use crate::util;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use util::env::*;
use util::image::seed_image;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

fn configure(env: &TestEnv, reg: &Registry, extra: &[&str]) {
    let mut args = vec![
        "configure-docker",
        "--registries",
        &reg.host,
        "--containers",
    ];
    args.extend_from_slice(extra);
    ok(&env.run(AUTH, &args, b""));
}

/// Stores the registry's login in our helper (file store) the way `docker login` would.
fn store_login(env: &TestEnv, reg: &Registry) {
    let msg = serde_json::json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));
}

fn skopeo(env: &TestEnv, args: &[&str]) -> Output {
    let mut c = env.cmd("skopeo");
    c.args(["--command-timeout", "120s"]).args(args);
    c.env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file");
    run_with_stdin(c, b"")
}

/// Verification stays on for TLS registries: the CA must come from `configure-docker --config-cert`.
fn tls_flag(reg: &Registry, prefix: &str) -> String {
    format!("--{prefix}tls-verify={}", reg.tls())
}

/// Removes what `--config-cert` installed under /etc for this test's registry, even on panic.
struct CertsGuard(Vec<PathBuf>);

impl CertsGuard {
    fn for_host(host: &str) -> CertsGuard {
        CertsGuard(vec![
            PathBuf::from("/etc/docker/certs.d").join(host),
            PathBuf::from("/etc/containers/certs.d").join(host),
        ])
    }
}

impl Drop for CertsGuard {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn inspect_through_helper(auth: RegistryAuth, tls: bool) {
    let reg = Registry::start(RegistryOptions::new(auth, tls));
    seed_image(&reg, "proj/app", "v1");
    let env = TestEnv::new();
    let _certs = CertsGuard::for_host(&reg.host);
    if tls {
        let ca = reg.ca_cert.as_ref().unwrap().to_str().unwrap().to_string();
        configure(&env, &reg, &["--config-cert", "--ca-cert-path", &ca]);
        assert!(PathBuf::from(format!("/etc/containers/certs.d/{}/ca.crt", reg.host)).exists());
        assert!(PathBuf::from(format!("/etc/docker/certs.d/{}/ca.crt", reg.host)).exists());
    } else {
        configure(&env, &reg, &[]);
    }
    let image = format!("docker://{}/proj/app:v1", reg.host);

    // Before any login the helper says "not found" and the registry refuses.
    let o = skopeo(&env, &["inspect", &tls_flag(&reg, ""), &image]);
    assert!(!o.status.success(), "anonymous inspect must fail");

    store_login(&env, &reg);
    let o = skopeo(&env, &["inspect", &tls_flag(&reg, ""), &image]);
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert!(v["Digest"].as_str().unwrap().starts_with("sha256:"));

    // copy both ways through the helper: pull into a layout, push back under a new tag.
    let layout = env.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    ok(&skopeo(
        &env,
        &["copy", &tls_flag(&reg, "src-"), &image, &dest],
    ));
    let back = format!("docker://{}/proj/app:copied", reg.host);
    ok(&skopeo(
        &env,
        &["copy", &tls_flag(&reg, "dest-"), &dest, &back],
    ));
    ok(&skopeo(&env, &["inspect", &tls_flag(&reg, ""), &back]));

    if let Some(ts) = reg.token_server() {
        assert!(
            ts.requests()
                .iter()
                .any(|r| r.username.as_deref() == Some(reg.username.as_str()) && r.status == 200),
            "the token server saw the helper's user"
        );
    }
    // After erase the client is anonymous again.
    ok(&env.helper("erase", &reg.host));
    assert!(!skopeo(&env, &["inspect", &tls_flag(&reg, ""), &image])
        .status
        .success());
}

#[test]
fn skopeo_through_helper_htpasswd() {
    inspect_through_helper(RegistryAuth::Htpasswd, false);
}

#[test]
fn skopeo_through_helper_token_auth() {
    inspect_through_helper(RegistryAuth::Token, false);
}

#[test]
fn skopeo_through_helper_tls_with_ca_from_configure_docker() {
    inspect_through_helper(RegistryAuth::Htpasswd, true);
}

#[test]
fn skopeo_through_helper_token_auth_over_tls() {
    inspect_through_helper(RegistryAuth::Token, true);
}

#[test]
fn podman_pull_through_helper_token_auth_over_tls() {
    require_tool("podman");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    seed_image(&reg, "proj/app", "v1");
    let env = TestEnv::new();
    let _certs = CertsGuard::for_host(&reg.host);
    let ca = reg.ca_cert.as_ref().unwrap().to_str().unwrap().to_string();
    configure(&env, &reg, &["--config-cert", "--ca-cert-path", &ca]);
    store_login(&env, &reg);
    let root = env.path().join("podman-root");
    let runroot = env.path().join("podman-runroot");
    let mut c = env.cmd("podman");
    c.env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file")
        .arg("--storage-driver=vfs")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--runroot={}", runroot.display()))
        .args(["--cgroup-manager=cgroupfs", "--events-backend=none"])
        .args(["pull", "--quiet"])
        .arg(format!("{}/proj/app:v1", reg.host));
    let o = run_with_stdin(c, b"");
    let id = ok(&o);
    assert_eq!(id.trim().len(), 64, "podman printed the image id: {id}");
}

#[test]
fn docker_login_and_logout_drive_store_and_erase() {
    require_tool("docker");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let env = TestEnv::new();
    configure(&env, &reg, &[]);
    let mut c = env.cmd("docker");
    c.env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file").args([
        "login",
        "--username",
        &reg.username,
        "--password-stdin",
        &reg.host,
    ]);
    let o = run_with_stdin(c, reg.password.as_bytes());
    let text = ok(&o);
    assert!(text.contains("Login Succeeded"), "{text}{}", stderr(&o));
    let config = std::fs::read_to_string(env.docker_config_file()).unwrap();
    assert!(
        !config.contains(&reg.password),
        "docker kept no password in config.json"
    );
    let got: Value = serde_json::from_str(&ok(&env.helper("get", &reg.host))).unwrap();
    assert_eq!(got["Username"], reg.username.as_str());
    assert_eq!(got["Secret"], reg.password.as_str());

    let mut c = env.cmd("docker");
    c.env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file")
        .args(["logout", &reg.host]);
    ok(&run_with_stdin(c, b""));
    assert_eq!(env.helper("get", &reg.host).status.code(), Some(1));
}
