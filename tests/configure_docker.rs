//! Integration tests of `gdcloud-auth configure-docker`: registering `docker-credential-gdcloud` in
//! `credHelpers` of Docker's `config.json` (and of the containers `auth.json` with `--containers`),
//! the untyped edit that keeps every other key, value, key order, file mode and symlink, the `.bak`
//! backup, idempotence, the refusals (malformed JSON, another helper without `--overwrite`, no
//! registry, a CA that is not PEM), `--dry-run`, the warnings (helper not on PATH, stored logins
//! shadowing the helper) and `--remove-stale-auths`, CA installation with `--config-cert`, the JSON
//! report, concurrent runs on one file, and the choice of registry through named configurations and
//! environment overrides. Every test runs the real, freshly built binaries as separate processes in a
//! private HOME (see `tests/util/env.rs`), so tests run in parallel and touch no real user files; the
//! only shared locations are the system `certs.d` directories a root run writes, which the CA tests
//! use with a unique fake host and clean up through a guard.

use crate::util;
use util::env::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `gdcloud-auth configure-docker ARGS` in `env`.
fn configure(env: &TestEnv, args: &[&str]) -> Output {
    let mut all = vec!["configure-docker"];
    all.extend_from_slice(args);
    env.run(AUTH, &all, b"")
}

/// `configure-docker ARGS` with extra environment variables.
fn configure_with(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = env.cmd(AUTH);
    c.arg("configure-docker").args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    run_with_stdin(c, b"")
}

/// Asserts failure with one `ERROR: …` line on stderr (warnings aside) and returns that line.
#[track_caller]
fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("WARNING:") && !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one error line on stderr, got: {err:?}"
    );
    assert!(
        lines[0].starts_with("ERROR:"),
        "error line does not start with ERROR: {err:?}"
    );
    lines[0].to_string()
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is not valid JSON ({e}): {bytes:?}", path.display()))
}

fn cred_helpers(path: &Path) -> Map<String, Value> {
    read_json(path)["credHelpers"]
        .as_object()
        .unwrap_or_else(|| panic!("{} has no credHelpers object", path.display()))
        .clone()
}

fn write_docker_config(env: &TestEnv, text: &str) -> PathBuf {
    fs::create_dir_all(&env.docker_config).unwrap();
    let p = env.docker_config_file();
    fs::write(&p, text).unwrap();
    p
}

fn backup_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Everything that tells whether a file was rewritten.
#[derive(Debug, PartialEq, Eq)]
struct FileState {
    bytes: Vec<u8>,
    ino: u64,
    mtime: (i64, i64),
    mode: u32,
}

fn state(path: &Path) -> FileState {
    let m = fs::metadata(path).unwrap();
    FileState {
        bytes: fs::read(path).unwrap(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        mode: m.mode() & 0o7777,
    }
}

/// The names in `dir` (empty when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every object key path of `v` in document order, e.g. `["a", "a/b", "c"]`.
fn key_order(v: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let p = format!("{prefix}/{k}");
                    out.push(p.clone());
                    walk(child, &p, out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{prefix}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn without_cred_helpers(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().shift_remove("credHelpers");
    v
}

/// A name no other test (or earlier run) uses: pid, clock and a counter.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{:x}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

const NOT_ON_PATH: &str = "not on PATH";

// ---------------------------------------------------------------------------------------------
// Registries and the basic write
// ---------------------------------------------------------------------------------------------

#[test]
fn creates_config_with_cred_helper_mode_0600() {
    let env = TestEnv::new();
    let file = env.docker_config_file();
    assert!(!file.exists());
    let out = ok(&configure(&env, &["--registries", "harbor.example.com"]));
    assert!(out.contains("harbor.example.com"), "stdout: {out}");
    assert_eq!(
        read_json(&file),
        json!({"credHelpers": {"harbor.example.com": "gdcloud"}})
    );
    assert_eq!(mode(&file), 0o600, "a new config.json must be private");
    assert!(
        !backup_of(&file).exists(),
        "no .bak when there was no previous file"
    );
    assert_eq!(
        names_in(&env.docker_config),
        ["config.json"],
        "no temp or lock file left behind"
    );
}

#[test]
fn several_registries_comma_separated_and_repeated() {
    let env = TestEnv::new();
    ok(&configure(
        &env,
        &[
            "--registries",
            "a.example.com,b.example.com:8443",
            "--registries",
            "c.example.com",
        ],
    ));
    let helpers = cred_helpers(&env.docker_config_file());
    let keys: Vec<&str> = helpers.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["a.example.com", "b.example.com:8443", "c.example.com"]
    );
    assert!(helpers.values().all(|v| v == "gdcloud"), "{helpers:?}");
}

#[test]
fn registry_urls_are_normalised_to_host_port() {
    let env = TestEnv::new();
    ok(&configure(
        &env,
        &[
            "--registries",
            "https://Host.Example:5000/,HTTP://Other.Example.COM/v2/proj",
        ],
    ));
    let helpers = cred_helpers(&env.docker_config_file());
    assert_eq!(
        Value::Object(helpers),
        json!({"host.example:5000": "gdcloud", "other.example.com": "gdcloud"})
    );
}

#[test]
fn same_host_in_two_spellings_is_one_entry() {
    let env = TestEnv::new();
    let out = configure(
        &env,
        &[
            "--registries",
            "https://Host.Example:5000/,host.example:5000",
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["registries"], json!(["host.example:5000"]));
    assert_eq!(
        read_json(&env.docker_config_file()),
        json!({"credHelpers": {"host.example:5000": "gdcloud"}})
    );
}

#[test]
fn default_registry_comes_from_property() {
    let env = TestEnv::new();
    env.set_property("artifacts", "registry", "https://Prop.Example:443/");
    ok(&configure(&env, &[]));
    assert_eq!(
        read_json(&env.docker_config_file()),
        json!({"credHelpers": {"prop.example:443": "gdcloud"}})
    );
}

#[test]
fn no_registry_is_a_one_line_error_and_writes_nothing() {
    let env = TestEnv::new();
    let line = fails(&configure(&env, &[]));
    assert!(line.contains("--registries"), "{line}");
    assert!(!env.docker_config_file().exists());
    assert!(names_in(&env.docker_config).is_empty(), "nothing written");

    // An empty flag is the same as none.
    let line = fails(&configure(&env, &["--registries", ""]));
    assert!(line.contains("registr"), "{line}");
    assert!(!env.docker_config_file().exists());
}

#[test]
fn invalid_registry_is_refused() {
    let env = TestEnv::new();
    let original = r#"{"auths":{}}"#;
    let file = write_docker_config(&env, original);
    let line = fails(&configure(&env, &["--registries", "good.example,bad host"]));
    assert!(line.contains("bad host"), "{line}");
    assert_eq!(fs::read_to_string(&file).unwrap(), original);
    assert!(!backup_of(&file).exists());
}

#[test]
fn dot_segments_are_not_registry_hosts() {
    // `..` and `.` are not host names; accepted, they would become `credHelpers[".."]` and, with
    // --config-cert, the path `<certs.d>/../ca.crt`.
    for bad in ["..", "../x", ".", "https://../v2/"] {
        let env = TestEnv::new();
        let line = fails(&configure(&env, &["--registries", bad]));
        assert!(line.contains("invalid registry"), "{bad:?}: {line}");
        assert!(
            !env.docker_config_file().exists(),
            "{bad:?}: config.json written: {:?}",
            fs::read_to_string(env.docker_config_file())
        );
    }
}

#[test]
fn registry_with_malformed_port_is_refused() {
    // The documented form is HOST[:PORT]; a colon must be followed by a port number.
    for bad in ["h.example:", "h.example:port", "h.example:50:00"] {
        let env = TestEnv::new();
        let o = configure(&env, &["--registries", bad]);
        assert!(
            !o.status.success(),
            "{bad:?} accepted: {}",
            fs::read_to_string(env.docker_config_file()).unwrap_or_default()
        );
        assert!(!env.docker_config_file().exists());
    }
    // IPv6 literals with a port are fine.
    let env = TestEnv::new();
    ok(&configure(&env, &["--registries", "[::1]:5000"]));
    assert_eq!(
        cred_helpers(&env.docker_config_file())["[::1]:5000"],
        "gdcloud"
    );
}

// ---------------------------------------------------------------------------------------------
// The untyped edit
// ---------------------------------------------------------------------------------------------

const RICH_CONFIG: &str = r#"{
  "zeta": {"nested": [1, 2.5, {"b": null, "a": true}], "empty": {}},
  "auths": {
    "other.example.com": {"auth": "dXNlcjpwYXNz", "email": "x@example.com"},
    "https://index.docker.io/v1/": {}
  },
  "credHelpers": {"ecr.example.com": "ecr-login", "gcr.io": "gcloud"},
  "credsStore": "secretservice",
  "proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "*.local"}},
  "HttpHeaders": {"User-Agent": "me"},
  "psFormat": "table {{.ID}}\t{{.Names}}",
  "unicode": "héllo ✓ \u0000 \"quoted\"",
  "bigint": 12345678901234567890,
  "alpha": "last"
}"#;

#[test]
fn every_other_key_and_value_survives_in_order() {
    let env = TestEnv::new();
    let file = write_docker_config(&env, RICH_CONFIG);
    let before: Value = serde_json::from_str(RICH_CONFIG).unwrap();
    ok(&configure(&env, &["--registries", "harbor.example.com"]));
    let after = read_json(&file);

    assert_eq!(
        without_cred_helpers(&after),
        without_cred_helpers(&before),
        "keys other than credHelpers changed"
    );
    assert_eq!(
        key_order(&after),
        {
            let mut k = key_order(&before);
            let at = k.iter().position(|p| p == "/credHelpers/gcr.io").unwrap() + 1;
            k.insert(at, "/credHelpers/harbor.example.com".into());
            k
        },
        "key order changed"
    );
    assert_eq!(
        after["credHelpers"],
        json!({"ecr.example.com": "ecr-login", "gcr.io": "gcloud", "harbor.example.com": "gdcloud"})
    );
    // Big numbers are not rounded through f64.
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("12345678901234567890"), "{text}");
}

#[test]
fn malformed_json_is_refused_and_untouched() {
    for (i, bad) in [
        "{\"auths\": {",
        "{\"auths\": {}} trailing",
        "not json at all",
        "[1, 2]",
        "{\"credHelpers\": \"gdcloud\"}",
        "{\"auths\": [\"x\"]}",
    ]
    .into_iter()
    .enumerate()
    {
        let env = TestEnv::new();
        let file = write_docker_config(&env, bad);
        let before = state(&file);
        let line = fails(&configure(&env, &["--registries", "harbor.example.com"]));
        assert!(
            line.contains("config.json"),
            "case {i}: the error names the file: {line}"
        );
        assert_eq!(state(&file), before, "case {i}: {bad:?} was modified");
        assert_eq!(
            names_in(&env.docker_config),
            ["config.json"],
            "case {i}: no .bak or temp file"
        );
    }
}

#[test]
fn malformed_json_error_says_so() {
    let env = TestEnv::new();
    write_docker_config(&env, "{\"auths\": {");
    let line = fails(&configure(&env, &["--registries", "harbor.example.com"]));
    assert!(line.contains("not valid JSON"), "{line}");
    assert!(line.contains("nothing was changed"), "{line}");
}

#[test]
fn existing_file_mode_is_kept() {
    let env = TestEnv::new();
    let file = write_docker_config(&env, r#"{"auths":{}}"#);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    ok(&configure(&env, &["--registries", "harbor.example.com"]));
    assert_eq!(mode(&file), 0o640);
    assert_eq!(cred_helpers(&file)["harbor.example.com"], "gdcloud");
    // The backup holds the same bytes and is no more readable than the file.
    assert_eq!(fs::read(backup_of(&file)).unwrap(), br#"{"auths":{}}"#);
    assert_eq!(mode(&backup_of(&file)) & !0o640, 0);
}

#[test]
fn symlinked_config_stays_a_symlink() {
    let env = TestEnv::new();
    let real_dir = env.path().join("dotfiles/docker");
    fs::create_dir_all(&real_dir).unwrap();
    let real = real_dir.join("config.json");
    let original = br#"{"auths":{"x.example":{}}}"#;
    fs::write(&real, original).unwrap();
    fs::create_dir_all(&env.docker_config).unwrap();
    let link = env.docker_config_file();
    std::os::unix::fs::symlink(&real, &link).unwrap();

    ok(&configure(&env, &["--registries", "harbor.example.com"]));
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "config.json is no longer a symlink"
    );
    assert_eq!(fs::read_link(&link).unwrap(), real);
    assert_eq!(cred_helpers(&real)["harbor.example.com"], "gdcloud");
    assert_eq!(read_json(&real)["auths"], json!({"x.example": {}}));
    // The original bytes are backed up somewhere beside the file or its target.
    let bak_link = backup_of(&link);
    let bak_real = backup_of(&real);
    let bak = if bak_real.exists() {
        bak_real
    } else {
        bak_link
    };
    assert_eq!(fs::read(&bak).unwrap(), original);
}

#[test]
fn relative_symlink_chain_is_followed() {
    let env = TestEnv::new();
    fs::create_dir_all(&env.docker_config).unwrap();
    let real = env.docker_config.join("real.json");
    fs::write(&real, b"{}").unwrap();
    std::os::unix::fs::symlink("real.json", env.docker_config.join("middle.json")).unwrap();
    std::os::unix::fs::symlink("middle.json", env.docker_config_file()).unwrap();
    ok(&configure(&env, &["--registries", "harbor.example.com"]));
    for l in ["config.json", "middle.json"] {
        assert!(fs::symlink_metadata(env.docker_config.join(l))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(cred_helpers(&real)["harbor.example.com"], "gdcloud");
}

#[test]
fn first_change_backs_up_and_second_does_not_overwrite_backup() {
    let env = TestEnv::new();
    let original = "{\n\t\"auths\" : { }  ,\"x\":1}\n";
    let file = write_docker_config(&env, original);
    let bak = backup_of(&file);

    ok(&configure(&env, &["--registries", "one.example"]));
    assert_eq!(
        fs::read_to_string(&bak).unwrap(),
        original,
        "bak holds the original bytes"
    );
    let after_first = fs::read(&file).unwrap();
    assert_ne!(after_first, original.as_bytes());

    ok(&configure(&env, &["--registries", "two.example"]));
    assert_eq!(
        fs::read_to_string(&bak).unwrap(),
        original,
        "a second change must not overwrite the backup"
    );
    let helpers = cred_helpers(&file);
    assert_eq!(helpers["one.example"], "gdcloud");
    assert_eq!(helpers["two.example"], "gdcloud");
    assert_eq!(read_json(&file)["x"], 1);
}

#[test]
fn nothing_to_change_writes_nothing() {
    let env = TestEnv::new();
    let file = write_docker_config(
        &env,
        r#"{"credHelpers":{"harbor.example.com":"gdcloud"},"auths":{}}"#,
    );
    let before = state(&file);
    let dir_before = names_in(&env.docker_config);
    let out = ok(&configure(
        &env,
        &["--registries", "https://Harbor.Example.com/"],
    ));
    assert!(out.contains("already configured"), "stdout: {out}");
    assert_eq!(
        state(&file),
        before,
        "file rewritten although nothing changed"
    );
    assert_eq!(names_in(&env.docker_config), dir_before, "no .bak made");
}

#[test]
fn second_identical_run_is_a_no_op() {
    let env = TestEnv::new();
    let file = env.docker_config_file();
    ok(&configure(&env, &["--registries", "a.example,b.example"]));
    let before = state(&file);
    let out = ok(&configure(&env, &["--registries", "b.example,a.example"]));
    assert!(out.contains("already configured"), "stdout: {out}");
    assert_eq!(state(&file), before);
    assert!(!backup_of(&file).exists());
}

#[test]
fn other_helper_is_refused_without_overwrite() {
    let env = TestEnv::new();
    let original = r#"{"credHelpers":{"h.example":"gcloud"}}"#;
    let file = write_docker_config(&env, original);
    let before = state(&file);
    let line = fails(&configure(&env, &["--registries", "h.example"]));
    assert!(line.contains("--overwrite"), "{line}");
    assert!(
        line.contains("gcloud"),
        "the error names the other helper: {line}"
    );
    assert_eq!(state(&file), before);
    assert_eq!(names_in(&env.docker_config), ["config.json"]);

    // Nothing changes either when the refusal comes after a host that could be added.
    let line = fails(&configure(&env, &["--registries", "new.example,h.example"]));
    assert!(line.contains("--overwrite"), "{line}");
    assert_eq!(state(&file), before);

    let out = ok(&configure(
        &env,
        &["--registries", "h.example", "--overwrite"],
    ));
    assert!(out.contains("h.example"), "{out}");
    assert_eq!(
        read_json(&file),
        json!({"credHelpers": {"h.example": "gdcloud"}})
    );
    assert_eq!(fs::read_to_string(backup_of(&file)).unwrap(), original);
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    let env = TestEnv::new();
    let file = write_docker_config(&env, r#"{"credHelpers":{"h.example":"gcloud"}}"#);
    let before = state(&file);
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            "h.example,new.example",
            "--overwrite",
            "--dry-run",
        ],
    ));
    assert!(out.contains("new.example"), "stdout: {out}");
    assert!(out.contains("h.example"), "stdout: {out}");
    assert_eq!(state(&file), before);
    assert_eq!(names_in(&env.docker_config), ["config.json"]);

    // With no file at all, not even the directory appears.
    let env = TestEnv::new();
    let out = ok(&configure(
        &env,
        &["--registries", "new.example", "--containers", "--dry-run"],
    ));
    assert!(out.contains("new.example"), "stdout: {out}");
    assert!(
        !env.docker_config.exists(),
        "dry run created {}",
        env.docker_config.display()
    );
    assert!(
        names_in(&env.runtime_dir).is_empty(),
        "dry run wrote in the runtime dir"
    );
}

#[test]
fn dry_run_json_report_lists_changes() {
    let env = TestEnv::new();
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            "new.example",
            "--dry-run",
            "--format",
            "json",
        ],
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        report["files"][0]["changes"],
        json!([{"change": "add-helper", "host": "new.example"}])
    );
    assert_eq!(report["files"][0]["written"], false);
    assert!(!env.docker_config_file().exists());
}

// ---------------------------------------------------------------------------------------------
// Warnings and stale logins
// ---------------------------------------------------------------------------------------------

#[test]
fn warns_when_helper_not_on_path() {
    let env = TestEnv::new();
    let mut c = env.cmd(AUTH);
    c.args(["configure-docker", "--registries", "h.example"])
        .env("PATH", "/usr/bin:/bin");
    let o = run_with_stdin(c, b"");
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("WARNING"), "stderr: {err}");
    assert!(err.contains("docker-credential-gdcloud"), "stderr: {err}");
    assert!(err.contains(NOT_ON_PATH), "stderr: {err}");
    assert_eq!(
        cred_helpers(&env.docker_config_file())["h.example"],
        "gdcloud"
    );
}

#[test]
fn no_warning_when_helper_on_path() {
    let env = TestEnv::new();
    let o = configure(&env, &["--registries", "h.example"]);
    ok(&o);
    let err = stderr(&o);
    assert!(!err.contains(NOT_ON_PATH), "stderr: {err}");
    assert!(!err.contains("WARNING"), "stderr: {err}");
}

#[test]
fn warns_about_auths_entry_for_same_host() {
    for key in [
        "https://h.example:5000/",
        "h.example:5000",
        "http://H.Example:5000/v2/",
    ] {
        let env = TestEnv::new();
        let file = write_docker_config(
            &env,
            &json!({"auths": {key: {"auth": "dTpw"}, "other.example": {"auth": "eDp5"}}})
                .to_string(),
        );
        let o = configure(&env, &["--registries", "h.example:5000"]);
        ok(&o);
        let err = stderr(&o);
        assert!(err.contains("WARNING"), "key {key}: stderr: {err}");
        assert!(
            err.contains(key),
            "key {key}: the warning names the entry: {err}"
        );
        assert!(err.contains("--remove-stale-auths"), "key {key}: {err}");
        assert!(!err.contains("other.example"), "key {key}: {err}");
        let after = read_json(&file);
        assert_eq!(
            after["auths"],
            json!({key: {"auth": "dTpw"}, "other.example": {"auth": "eDp5"}}),
            "without --remove-stale-auths the logins stay"
        );
        assert_eq!(after["credHelpers"]["h.example:5000"], "gdcloud");
    }
}

#[test]
fn no_auths_warning_for_other_hosts() {
    let env = TestEnv::new();
    write_docker_config(
        &env,
        r#"{"auths":{"h.example:5001":{},"https://h.example.org/":{},"sub.h.example:5000":{}}}"#,
    );
    let o = configure(&env, &["--registries", "h.example:5000"]);
    ok(&o);
    assert!(!stderr(&o).contains("WARNING"), "stderr: {}", stderr(&o));
}

#[test]
fn no_auths_warning_for_the_empty_entry_docker_login_leaves_with_a_helper() {
    // `docker login` through a credential helper leaves `"HOST": {}` in auths: nothing in it
    // bypasses the helper, so no warning; a real login beside it still warns.
    let env = TestEnv::new();
    let file = write_docker_config(
        &env,
        r#"{"auths":{"h.example:5000":{},"k.example":{"auth":"azpr"}}}"#,
    );
    let o = configure(&env, &["--registries", "h.example:5000,k.example"]);
    ok(&o);
    let err = stderr(&o);
    assert!(!err.contains(r#"auths["h.example:5000"]"#), "stderr: {err}");
    assert!(err.contains(r#"auths["k.example"]"#), "stderr: {err}");
    assert_eq!(err.matches("WARNING").count(), 1, "stderr: {err}");
    assert_eq!(read_json(&file)["auths"]["h.example:5000"], json!({}));
}

const STALE_AUTHS: &str = r#"{
  "auths": {
    "a.example": {"auth": "YTph"},
    "https://h.example:5000/": {"auth": "aDox"},
    "b.example": {"auth": "Yjpi"},
    "h.example:5000": {"auth": "aDoy"},
    "c.example": {"auth": "Yzpj"},
    "https://h.example:5000/other-path": {"auth": "aDoz"},
    "d.example": {"auth": "ZDpk"}
  },
  "after": true
}"#;

#[test]
fn remove_stale_auths_removes_exactly_those_entries() {
    let env = TestEnv::new();
    let file = write_docker_config(&env, STALE_AUTHS);
    let o = configure(
        &env,
        &["--registries", "h.example:5000", "--remove-stale-auths"],
    );
    let out = ok(&o);
    assert!(
        !stderr(&o).contains("--remove-stale-auths"),
        "no warning once removed: {}",
        stderr(&o)
    );
    assert!(
        out.contains("https://h.example:5000/"),
        "stdout reports the removal: {out}"
    );
    let after = read_json(&file);
    let auths = after["auths"].as_object().unwrap();
    let mut keys: Vec<&str> = auths.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["a.example", "b.example", "c.example", "d.example"]);
    assert_eq!(auths["a.example"]["auth"], "YTph");
    assert_eq!(auths["b.example"]["auth"], "Yjpi");
    assert_eq!(auths["c.example"]["auth"], "Yzpj");
    assert_eq!(auths["d.example"]["auth"], "ZDpk");
    assert_eq!(after["after"], true);
    assert_eq!(after["credHelpers"], json!({"h.example:5000": "gdcloud"}));
    assert_eq!(fs::read_to_string(backup_of(&file)).unwrap(), STALE_AUTHS);
}

#[test]
fn remove_stale_auths_keeps_order_of_other_auths() {
    let env = TestEnv::new();
    let file = write_docker_config(&env, STALE_AUTHS);
    ok(&configure(
        &env,
        &["--registries", "h.example:5000", "--remove-stale-auths"],
    ));
    let after = read_json(&file);
    let keys: Vec<&str> = after["auths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["a.example", "b.example", "c.example", "d.example"],
        "the remaining auths entries must keep their order"
    );
    let top: Vec<&str> = after
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["auths", "after", "credHelpers"]);
}

#[test]
fn remove_stale_auths_alone_on_configured_host() {
    // The helper is already registered: the stale login is still removed.
    let env = TestEnv::new();
    let file = write_docker_config(
        &env,
        r#"{"credHelpers":{"h.example":"gdcloud"},"auths":{"h.example":{},"k.example":{}}}"#,
    );
    ok(&configure(
        &env,
        &["--registries", "h.example", "--remove-stale-auths"],
    ));
    assert_eq!(read_json(&file)["auths"], json!({"k.example": {}}));
}

// ---------------------------------------------------------------------------------------------
// --containers
// ---------------------------------------------------------------------------------------------

#[test]
fn containers_writes_auth_json_in_runtime_dir() {
    let env = TestEnv::new();
    ok(&configure(
        &env,
        &["--registries", "a.example,b.example:5000", "--containers"],
    ));
    let want = json!({"credHelpers": {"a.example": "gdcloud", "b.example:5000": "gdcloud"}});
    let auth = env.runtime_dir.join("containers/auth.json");
    assert_eq!(read_json(&auth), want);
    assert_eq!(mode(&auth), 0o600);
    assert_eq!(read_json(&env.docker_config_file()), want);
}

#[test]
fn containers_keeps_existing_auth_json_content() {
    let env = TestEnv::new();
    let dir = env.runtime_dir.join("containers");
    fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("auth.json");
    let original =
        r#"{"auths":{"quay.io":{"auth":"cTpx"}},"credHelpers":{"quay.io":"secretservice"}}"#;
    fs::write(&auth, original).unwrap();
    ok(&configure(
        &env,
        &["--registries", "a.example", "--containers"],
    ));
    assert_eq!(
        read_json(&auth),
        json!({"auths":{"quay.io":{"auth":"cTpx"}},"credHelpers":{"quay.io":"secretservice","a.example":"gdcloud"}})
    );
    assert_eq!(fs::read_to_string(backup_of(&auth)).unwrap(), original);
}

#[test]
fn containers_uses_registry_auth_file_when_set() {
    let env = TestEnv::new();
    let custom = env.path().join("custom/dir/auth.json");
    let o = configure_with(
        &env,
        &[("REGISTRY_AUTH_FILE", custom.to_str().unwrap())],
        &["--registries", "a.example", "--containers"],
    );
    ok(&o);
    assert_eq!(
        read_json(&custom),
        json!({"credHelpers": {"a.example": "gdcloud"}})
    );
    assert!(
        !env.runtime_dir.join("containers/auth.json").exists(),
        "REGISTRY_AUTH_FILE wins over XDG_RUNTIME_DIR"
    );
    assert_eq!(
        cred_helpers(&env.docker_config_file())["a.example"],
        "gdcloud"
    );
}

#[test]
fn without_containers_auth_json_is_not_written() {
    let env = TestEnv::new();
    ok(&configure(&env, &["--registries", "a.example"]));
    assert!(names_in(&env.runtime_dir).is_empty());
}

#[test]
fn containers_refusal_leaves_docker_config_untouched() {
    let env = TestEnv::new();
    let dir = env.runtime_dir.join("containers");
    fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("auth.json");
    fs::write(&auth, r#"{"credHelpers":{"a.example":"other"}}"#).unwrap();
    let docker = write_docker_config(&env, "{}");
    let before = state(&docker);
    let line = fails(&configure(
        &env,
        &["--registries", "a.example", "--containers"],
    ));
    assert!(line.contains("--overwrite"), "{line}");
    assert_eq!(
        state(&docker),
        before,
        "config.json changed although auth.json was refused"
    );
    assert_eq!(names_in(&env.docker_config), ["config.json"]);
}

#[test]
fn docker_config_and_auth_file_in_same_directory() {
    let env = TestEnv::new();
    let auth = env.docker_config.join("auth.json");
    ok(&configure_with(
        &env,
        &[("REGISTRY_AUTH_FILE", auth.to_str().unwrap())],
        &["--registries", "a.example", "--containers"],
    ));
    assert_eq!(cred_helpers(&auth)["a.example"], "gdcloud");
    assert_eq!(
        cred_helpers(&env.docker_config_file())["a.example"],
        "gdcloud"
    );
}

// ---------------------------------------------------------------------------------------------
// --config-cert
// ---------------------------------------------------------------------------------------------

/// The `certs.d` roots the tool writes for this user (root: system ones).
fn certs_roots(env: &TestEnv) -> Vec<PathBuf> {
    let uid = fs::metadata("/proc/self").unwrap().uid();
    if uid == 0 {
        vec![
            PathBuf::from("/etc/docker/certs.d"),
            PathBuf::from("/etc/containers/certs.d"),
        ]
    } else {
        vec![
            env.home.join(".docker/certs.d"),
            env.home.join(".config/containers/certs.d"),
        ]
    }
}

/// Serialises the tests that write system `certs.d` (so none removes a parent another still needs)
/// and removes what they created, even when a test panics.
struct CertGuard {
    host_dirs: Vec<PathBuf>,
    created: Vec<PathBuf>,
    _lock: MutexGuard<'static, ()>,
}

static CERTS_LOCK: Mutex<()> = Mutex::new(());

impl CertGuard {
    fn new(env: &TestEnv, host: &str) -> CertGuard {
        let lock = CERTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut created = Vec::new();
        let mut host_dirs = Vec::new();
        for root in certs_roots(env) {
            host_dirs.push(root.join(host));
            // Remember the ancestors that do not exist yet, deepest first, to remove them if empty.
            let mut p = Some(root.as_path());
            while let Some(dir) = p {
                if dir.exists() {
                    break;
                }
                created.push(dir.to_path_buf());
                p = dir.parent();
            }
        }
        CertGuard {
            host_dirs,
            created,
            _lock: lock,
        }
    }
}

impl Drop for CertGuard {
    fn drop(&mut self) {
        for d in &self.host_dirs {
            let _ = fs::remove_dir_all(d);
        }
        for d in &self.created {
            let _ = fs::remove_dir(d); // only when empty
        }
    }
}

fn fake_host() -> String {
    format!("{}.invalid:5000", unique("gdk-test"))
}

/// A real self-signed CA in PEM form when openssl is present, else a PEM-shaped block.
fn ca_pem(dir: &Path) -> PathBuf {
    let cert = dir.join("ca.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=gdk-test-ca", "-days", "1", "-keyout"])
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUZ2RrLXRlc3QtY2E=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
    }
    cert
}

#[test]
fn config_cert_installs_ca_for_docker_and_containers() {
    let env = TestEnv::new();
    let host = fake_host();
    let guard = CertGuard::new(&env, &host);
    let ca = ca_pem(env.path());
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            &host,
            "--config-cert",
            "--ca-cert-path",
            ca.to_str().unwrap(),
        ],
    ));
    let want = fs::read(&ca).unwrap();
    for d in &guard.host_dirs {
        let f = d.join("ca.crt");
        assert_eq!(fs::read(&f).unwrap_or_default(), want, "{}", f.display());
        assert_eq!(mode(&f), 0o644, "{}", f.display());
        assert!(
            out.contains(&f.display().to_string()),
            "stdout names {}: {out}",
            f.display()
        );
    }
    assert_eq!(cred_helpers(&env.docker_config_file())[&host], "gdcloud");

    // Again: same content, still fine, and reported in JSON.
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            &host,
            "--config-cert",
            "--ca-cert-path",
            ca.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    let want_paths: Vec<Value> = guard
        .host_dirs
        .iter()
        .map(|d| Value::String(d.join("ca.crt").display().to_string()))
        .collect();
    assert_eq!(report["certificates"], Value::Array(want_paths));
    drop(guard);
}

#[test]
fn config_cert_dry_run_installs_nothing() {
    let env = TestEnv::new();
    let host = fake_host();
    let guard = CertGuard::new(&env, &host);
    let ca = ca_pem(env.path());
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            &host,
            "--config-cert",
            "--ca-cert-path",
            ca.to_str().unwrap(),
            "--dry-run",
        ],
    ));
    for d in &guard.host_dirs {
        assert!(!d.exists(), "dry run created {}", d.display());
        assert!(
            out.contains(&d.join("ca.crt").display().to_string()),
            "{out}"
        );
    }
    assert!(!env.docker_config_file().exists());
}

#[test]
fn config_cert_never_targets_outside_certs_d() {
    // A dry run only plans, so this probe writes nothing even if a bad host were accepted.
    let env = TestEnv::new();
    let ca = ca_pem(env.path());
    let roots = certs_roots(&env);
    for host in ["..", "../x"] {
        let o = configure(
            &env,
            &[
                "--registries",
                host,
                "--config-cert",
                "--ca-cert-path",
                ca.to_str().unwrap(),
                "--dry-run",
                "--format",
                "json",
            ],
        );
        if o.status.success() {
            let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
            for c in report["certificates"].as_array().unwrap() {
                let p = PathBuf::from(c.as_str().unwrap());
                let host_dir = p.parent().unwrap();
                assert!(
                    roots.iter().any(|r| host_dir.parent() == Some(r.as_path())
                        && host_dir.file_name().is_some_and(|n| n != ".." && n != ".")),
                    "--registries {host:?} would install a CA at {} (outside {roots:?})",
                    p.display()
                );
            }
        }
    }
    assert!(!env.docker_config_file().exists());
}

#[test]
fn config_cert_rejects_non_pem_file() {
    let env = TestEnv::new();
    let host = fake_host();
    let guard = CertGuard::new(&env, &host);
    let bad = env.path().join("not-a-cert.der");
    fs::write(
        &bad,
        b"\x30\x82\x01\x0a binary DER-ish junk -----BEGIN PRIVATE KEY-----",
    )
    .unwrap();
    let line = fails(&configure(
        &env,
        &[
            "--registries",
            &host,
            "--config-cert",
            "--ca-cert-path",
            bad.to_str().unwrap(),
        ],
    ));
    assert!(line.contains("PEM"), "{line}");
    assert!(line.contains("not-a-cert.der"), "{line}");
    for d in &guard.host_dirs {
        assert!(!d.exists(), "{} created", d.display());
    }
    assert!(
        !env.docker_config_file().exists(),
        "config.json written despite the error"
    );
    assert!(names_in(&env.docker_config).is_empty());
}

#[test]
fn config_cert_missing_file_is_an_error() {
    let env = TestEnv::new();
    let host = fake_host();
    let guard = CertGuard::new(&env, &host);
    let missing = env.path().join("nope.pem");
    let line = fails(&configure(
        &env,
        &[
            "--registries",
            &host,
            "--config-cert",
            "--ca-cert-path",
            missing.to_str().unwrap(),
        ],
    ));
    assert!(line.contains("nope.pem"), "{line}");
    for d in &guard.host_dirs {
        assert!(!d.exists());
    }
    assert!(!env.docker_config_file().exists());
}

#[test]
fn config_cert_without_ca_cert_path_is_an_error() {
    let env = TestEnv::new();
    let line = fails(&configure(
        &env,
        &["--registries", "h.example", "--config-cert"],
    ));
    assert!(line.contains("--ca-cert-path"), "{line}");
    assert!(!env.docker_config_file().exists());
    assert!(names_in(&env.docker_config).is_empty());
}

// ---------------------------------------------------------------------------------------------
// JSON report
// ---------------------------------------------------------------------------------------------

#[test]
fn json_report_describes_files_changes_and_warnings() {
    let env = TestEnv::new();
    let file = write_docker_config(
        &env,
        r#"{"credHelpers":{"old.example":"gcloud"},"auths":{"https://stale.example/":{"auth":"eDp5"}}}"#,
    );
    let mut c = env.cmd(AUTH);
    c.args([
        "configure-docker",
        "--registries",
        "new.example,old.example,stale.example",
        "--overwrite",
        "--containers",
        "--format",
        "json",
    ])
    .env("PATH", "/usr/bin:/bin");
    let o = run_with_stdin(c, b"");
    let report: Value = serde_json::from_str(&ok(&o))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(&o)));

    assert_eq!(
        report["registries"],
        json!(["new.example", "old.example", "stale.example"])
    );
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{report:#}");
    assert_eq!(files[0]["path"], file.display().to_string());
    assert_eq!(
        files[0]["changes"],
        json!([
            {"change": "add-helper", "host": "new.example"},
            {"change": "replace-helper", "host": "old.example", "previous": "gcloud"},
            {"change": "add-helper", "host": "stale.example"},
        ])
    );
    assert_eq!(files[0]["written"], true);
    assert_eq!(files[0]["backup"], backup_of(&file).display().to_string());
    let auth = env.runtime_dir.join("containers/auth.json");
    assert_eq!(files[1]["path"], auth.display().to_string());
    assert_eq!(files[1]["changes"].as_array().unwrap().len(), 3);
    assert_eq!(report["certificates"], json!([]));

    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["warning"] == "helper-not-on-path"),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w["warning"] == "shadowing-auth"
            && w["host"] == "stale.example"
            && w["key"] == "https://stale.example/"),
        "{warnings:?}"
    );
    // Warnings also go to stderr; stdout holds only the JSON document.
    assert!(stderr(&o).contains("WARNING"));
}

#[test]
fn json_report_already_configured() {
    let env = TestEnv::new();
    ok(&configure(&env, &["--registries", "a.example"]));
    let out = ok(&configure(
        &env,
        &["--registries", "a.example", "--format", "json"],
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"][0]["changes"], json!([]));
    assert_eq!(report["files"][0]["written"], false);
    assert_eq!(report["warnings"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn parallel_runs_keep_every_host() {
    let env = TestEnv::new();
    let file = write_docker_config(
        &env,
        r#"{"auths":{"keep.example":{"auth":"a2VlcA=="}},"keep":[1]}"#,
    );
    let children: Vec<_> = (0..10)
        .map(|i| {
            let mut c = env.cmd(AUTH);
            c.args([
                "configure-docker",
                "--registries",
                &format!("host{i}.example"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    let after = read_json(&file);
    let helpers = after["credHelpers"].as_object().unwrap();
    for i in 0..10 {
        assert_eq!(
            helpers.get(&format!("host{i}.example")),
            Some(&json!("gdcloud")),
            "host{i} lost: {after:#}"
        );
    }
    assert_eq!(helpers.len(), 10);
    assert_eq!(
        after["auths"],
        json!({"keep.example": {"auth": "a2VlcA=="}})
    );
    assert_eq!(after["keep"], json!([1]));
    let mut left = names_in(&env.docker_config);
    left.retain(|n| n != "config.json" && n != "config.json.bak");
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn parallel_runs_with_containers_keep_every_host() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..10)
        .map(|i| {
            let mut c = env.cmd(AUTH);
            c.args([
                "configure-docker",
                "--containers",
                "--registries",
                &format!("host{i}.example"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    for f in [
        env.docker_config_file(),
        env.runtime_dir.join("containers/auth.json"),
    ] {
        let helpers = cred_helpers(&f);
        assert_eq!(helpers.len(), 10, "{}: {helpers:?}", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Named configurations and overrides
// ---------------------------------------------------------------------------------------------

fn write_configuration(env: &TestEnv, name: &str, registry: &str) {
    let dir = env.config_dir.join("configurations");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("config_{name}")),
        format!("[core]\naccount = someone@example.com\n\n[artifacts]\nregistry = {registry}\n"),
    )
    .unwrap();
}

fn helper_hosts(env: &TestEnv) -> Vec<String> {
    cred_helpers(&env.docker_config_file())
        .keys()
        .cloned()
        .collect()
}

#[test]
fn configuration_flag_reads_named_configuration() {
    let env = TestEnv::new();
    write_configuration(&env, "default", "default.example");
    write_configuration(&env, "work", "work.example:8443");
    ok(&configure(&env, &["--configuration", "work"]));
    assert_eq!(helper_hosts(&env), ["work.example:8443"]);
}

#[test]
fn configuration_flag_after_and_before_subcommand() {
    let env = TestEnv::new();
    write_configuration(&env, "work", "work.example");
    ok(&env.run(AUTH, &["--configuration", "work", "configure-docker"], b""));
    assert_eq!(helper_hosts(&env), ["work.example"]);
}

#[test]
fn active_config_env_selects_named_configuration() {
    let env = TestEnv::new();
    write_configuration(&env, "default", "default.example");
    write_configuration(&env, "work", "work.example");
    ok(&configure_with(
        &env,
        &[("GDCLOUD_ACTIVE_CONFIG_NAME", "work")],
        &[],
    ));
    assert_eq!(helper_hosts(&env), ["work.example"]);
}

#[test]
fn configuration_flag_wins_over_active_config_env() {
    let env = TestEnv::new();
    write_configuration(&env, "work", "work.example");
    write_configuration(&env, "home", "home.example");
    ok(&configure_with(
        &env,
        &[("GDCLOUD_ACTIVE_CONFIG_NAME", "home")],
        &["--configuration", "work"],
    ));
    assert_eq!(helper_hosts(&env), ["work.example"]);
}

#[test]
fn default_configuration_when_none_named() {
    let env = TestEnv::new();
    write_configuration(&env, "default", "default.example");
    write_configuration(&env, "work", "work.example");
    ok(&configure(&env, &[]));
    assert_eq!(helper_hosts(&env), ["default.example"]);
}

#[test]
fn named_configuration_without_registry_is_an_error() {
    let env = TestEnv::new();
    write_configuration(&env, "default", "default.example");
    let line = fails(&configure(&env, &["--configuration", "empty"]));
    assert!(line.contains("registr"), "{line}");
    assert!(!env.docker_config_file().exists());
}

#[test]
fn env_override_wins_over_file() {
    let env = TestEnv::new();
    env.set_property("artifacts", "registry", "file.example");
    ok(&configure_with(
        &env,
        &[("GDCLOUD_ARTIFACTS_REGISTRY", "https://Env.Example:5000/")],
        &[],
    ));
    assert_eq!(helper_hosts(&env), ["env.example:5000"]);
}

#[test]
fn env_override_wins_over_named_configuration() {
    let env = TestEnv::new();
    write_configuration(&env, "work", "work.example");
    ok(&configure_with(
        &env,
        &[("GDCLOUD_ARTIFACTS_REGISTRY", "env.example")],
        &["--configuration", "work"],
    ));
    assert_eq!(helper_hosts(&env), ["env.example"]);
}

#[test]
fn registries_flag_wins_over_property() {
    let env = TestEnv::new();
    env.set_property("artifacts", "registry", "file.example");
    ok(&configure_with(
        &env,
        &[("GDCLOUD_ARTIFACTS_REGISTRY", "env.example")],
        &["--registries", "flag.example"],
    ));
    assert_eq!(helper_hosts(&env), ["flag.example"]);
}

#[test]
fn invalid_configuration_name_is_an_error() {
    let env = TestEnv::new();
    let line = fails(&configure(
        &env,
        &["--configuration", "../etc", "--registries", "h.example"],
    ));
    assert!(line.contains("configuration"), "{line}");
    assert!(!env.docker_config_file().exists());
}

#[test]
fn json_report_remove_auth_change() {
    let env = TestEnv::new();
    write_docker_config(&env, r#"{"auths":{"h.example":{}}}"#);
    let out = ok(&configure(
        &env,
        &[
            "--registries",
            "h.example",
            "--remove-stale-auths",
            "--format",
            "json",
        ],
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    let changes: BTreeMap<String, Value> = report["files"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    assert_eq!(
        changes["remove-auth"],
        json!({"change": "remove-auth", "host": "h.example", "key": "h.example"})
    );
    assert!(changes.contains_key("add-helper"));
}
