//! How `gdcloud-artifacts` reads its image arguments (issue 10): a path (`./x`, `../x`, `/x`,
//! `~/x`, or anything that exists on disk) is never taken for a registry reference, so a typo in a
//! bundle path says the directory is missing instead of "cannot reach https://./v2/";
//! `https://HOST/…` (the runbook's `HARBOR_URL` carries the scheme) is the registry HOST;
//! `http://HOST/…` speaks plain HTTP to HOST, and says so on stderr. Also `list-versions --latest`
//! when tags share the newest time: a version wins over `latest`, and the tie is reported.
//!
//! The real binary runs in a private environment (`tests/util/env.rs`) against a real Distribution
//! registry (`tests/util/registry.rs`) on a loopback port.

use crate::util;

use std::fs;
use std::process::Output;
use std::time::Duration;

/// Longer than any of these commands takes, so a hang fails the test instead of stalling it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

use serde_json::json;
use util::env::*;
use util::image::seed_image;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

fn artifacts(env: &TestEnv, args: &[&str]) -> Output {
    let mut c = env.cmd(&bin_dir().join("gdcloud-artifacts").display().to_string());
    c.args(args);
    run_timed(c, b"", COMMAND_TIMEOUT)
}

fn registry(tls: bool) -> Registry {
    Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, tls))
}

/// The registry's login stored in our helper, with `credHelpers` pointing at it.
fn login(env: &mut TestEnv, reg: &Registry) {
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    ok(&env.run(AUTH, &["configure-docker", "--registries", &reg.host], b""));
    let msg = json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));
}

// ------------------------------------------------------------------------------------ paths

#[test]
fn tree_of_a_mistyped_directory_says_it_does_not_exist() {
    let env = TestEnv::new();
    fs::create_dir(env.path().join("bundle")).unwrap();
    for arg in ["./bundel", "../bundel", "~/bundel", "./bundle/nope"] {
        let err = failed(&artifacts(&env, &["tree", arg]));
        assert!(err.contains("does not exist"), "{arg}: {err}");
        assert!(!err.contains("cannot reach"), "{arg}: {err}");
        assert!(!err.contains("v2"), "{arg}: {err}");
    }
    let abs = env.path().join("bundel").display().to_string();
    let err = failed(&artifacts(&env, &["tree", &abs]));
    assert!(
        err.contains("does not exist") && err.contains(&abs),
        "{err}"
    );
}

#[test]
fn tree_of_an_existing_file_says_it_is_not_a_directory() {
    let env = TestEnv::new();
    fs::write(env.path().join("notes.txt"), b"x").unwrap();
    let err = failed(&artifacts(&env, &["tree", "notes.txt"]));
    assert!(err.contains("is a file, not a directory"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
}

#[test]
fn pull_push_and_list_versions_refuse_paths_as_references() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path().join("proj/app")).unwrap();
    // Configured, so nothing would stop a path from being sent to this registry.
    env.set_property("artifacts", "registry", "127.0.0.1:9");
    let cases: [&[&str]; 5] = [
        &["pull", "./bundel/proj/app:1", "out"],
        &["pull", "proj/app", "out"],
        &["list-versions", "/srv/proj/app"],
        &["list-versions", "proj/app"],
        &["push", "proj/app", "~/proj/app:1"],
    ];
    for args in cases {
        let err = failed(&artifacts(&env, args));
        assert!(
            err.contains("is a local path, not a registry reference"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("127.0.0.1:9"), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------- schemes

#[test]
fn https_scheme_is_accepted_and_dropped() {
    require_tool("skopeo");
    let reg = registry(false);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    seed_image(&reg, "proj/app", "19c");
    let source = format!("https://{}/proj/app:19c", reg.host);
    let o = artifacts(&env, &["pull", &source, "out"]);
    let out = ok(&o);
    assert!(
        out.starts_with(&format!("{}/proj/app:19c sha256:", reg.host)),
        "{out}"
    );
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    assert!(env.path().join("out/index.json").is_file());
    let text = ok(&artifacts(
        &env,
        &["list-versions", &format!("HTTPS://{}/proj/app", reg.host)],
    ));
    assert!(text.starts_with("19c\t"), "{text}");
}

#[test]
fn http_scheme_means_plain_http_with_a_warning() {
    require_tool("skopeo");
    let reg = registry(false);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    seed_image(&reg, "proj/app", "1");
    let source = format!("http://{}/proj/app:1", reg.host);
    let o = artifacts(&env, &["pull", &source, "out"]);
    ok(&o);
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("WARNING")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("plain HTTP") && warnings[0].contains(&reg.host),
        "{err}"
    );
}

#[test]
fn http_scheme_never_falls_back_to_https() {
    require_tool("skopeo");
    // A TLS registry: `https://` (with its CA) reaches it; `http://` must not quietly use TLS.
    let reg = registry(true);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    seed_image(&reg, "proj/app", "1");
    let ca = reg.cert_dir().unwrap().join("ca.crt").display().to_string();
    let tls = format!("https://{}/proj/app:1", reg.host);
    ok(&artifacts(&env, &["tree", &tls, "--ca-cert-path", &ca]));
    let plain = format!("http://{}/proj/app:1", reg.host);
    let err = failed(&artifacts(&env, &["tree", &plain, "--ca-cert-path", &ca]));
    assert!(
        err.contains("WARNING") && err.contains("plain HTTP"),
        "{err}"
    );
    assert!(err.contains("ERROR"), "{err}");
    assert!(err.contains(&format!("http://{}/", reg.host)), "{err}");
}

// ------------------------------------------------------------------------------ --latest ties

#[test]
fn latest_prefers_a_version_over_latest_on_a_tie_and_says_so() {
    require_tool("skopeo");
    let reg = registry(false);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    // One image under two tags: the same config, the same `created`.
    seed_image(&reg, "proj/tie", "19c");
    seed_image(&reg, "proj/tie", "latest");
    let repo = format!("{}/proj/tie", reg.host);
    let o = artifacts(&env, &["list-versions", "--latest", &repo]);
    assert_eq!(ok(&o), "19c\n");
    let err = stderr(&o);
    assert!(
        err.contains("WARNING") && err.contains("19c, latest") && err.contains("newest time"),
        "{err}"
    );
    let text = ok(&artifacts(&env, &["list-versions", &repo]));
    let tags: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(tags, ["19c", "latest"], "{text}");
}
