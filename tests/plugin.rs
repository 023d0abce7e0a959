//! Integration tests of the plugin plumbing: what `gdcloud-auth gdcloud-plugin-metadata` reports
//! (and that it has no side effects), shell completion, the global flags accepted before and after
//! the subcommand, the `Examples` in `--help`, and how a host finds, lists and runs a plugin through
//! the core library (`gdcloud::plugin::{locate, list, command}`), passing its configuration down.
//! Every test runs the real, freshly built binaries as separate processes in a private HOME (see
//! `tests/util/env.rs`), so tests run in parallel and touch no real user files. The library
//! functions read this process's PATH, which the tests never change: their assertions hold whatever
//! PATH holds (the gdcloud `plugins` folder wins, unknown names are unique).

use crate::util;
use util::env::*;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{:x}x{:x}x{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every entry under `root` with what would show a change: type, size, mtime, inode, mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (bool, u64, i64, i64, u64, u32)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (bool, u64, i64, i64, u64, u32)>) {
        let Ok(rd) = fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.insert(
                p.clone(),
                (
                    m.is_dir(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ino(),
                    m.mode(),
                ),
            );
            if m.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn helper_hosts(env: &TestEnv) -> Vec<String> {
    read_json(&env.docker_config_file())["credHelpers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn write_configuration(config_dir: &Path, name: &str, registry: &str) {
    let dir = config_dir.join("configurations");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("config_{name}")),
        format!("[artifacts]\nregistry = {registry}\n"),
    )
    .unwrap();
}

fn real_plugin() -> PathBuf {
    bin_dir().join(AUTH)
}

/// Puts the real `gdcloud-auth` into `<config_dir>/plugins`, as a symlink or a copy.
fn install_plugin(config_dir: &Path, symlink: bool) -> PathBuf {
    let plugins = config_dir.join("plugins");
    fs::create_dir_all(&plugins).unwrap();
    let p = plugins.join(AUTH);
    if symlink {
        std::os::unix::fs::symlink(real_plugin(), &p).unwrap();
    } else {
        install_executable(&real_plugin(), &p);
    }
    p
}

/// Confines a host-built command to `env` like `TestEnv::cmd` does, keeping the two variables
/// `gdcloud::plugin::command` sets.
fn confine(mut c: Command, env: &TestEnv) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("GDCLOUD_") && k != "GDCLOUD_CONFIG" && k != "GDCLOUD_ACTIVE_CONFIG_NAME" {
            c.env_remove(k);
        }
    }
    for v in [
        "DBUS_SESSION_BUS_ADDRESS",
        "REGISTRY_AUTH_FILE",
        "DISPLAY",
        "WAYLAND_DISPLAY",
    ] {
        c.env_remove(v);
    }
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("HOME", &env.home)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env("XDG_RUNTIME_DIR", &env.runtime_dir)
        .env("XDG_CONFIG_HOME", env.home.join(".config"))
        .env("PATH", path)
        .current_dir(env.path());
    c
}

fn env_of(c: &Command, key: &str) -> Option<String> {
    c.get_envs()
        .find(|(k, _)| *k == OsStr::new(key))
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_is_one_json_object() {
    let env = TestEnv::new();
    let o = env.run(AUTH, &["gdcloud-plugin-metadata"], b"");
    let out = ok(&o);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}): {out}"));
    let obj = v.as_object().expect("a JSON object");
    assert_eq!(v["SchemaVersion"], "0.1.0");
    assert_eq!(v["SchemaVersion"], gdcloud::plugin::SCHEMA_VERSION);
    assert!(v["Vendor"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["Version"], gdcloud::VERSION);
    assert!(
        v["ShortDescription"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let commands = v["Commands"].as_array().expect("Commands is an array");
    let configure = commands
        .iter()
        .find(|c| c["Name"] == "configure-docker")
        .unwrap_or_else(|| panic!("no configure-docker in {commands:?}"));
    assert!(configure.is_object());
    assert!(
        configure["ShortDescription"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{configure}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c["Name"] == gdcloud::plugin::METADATA_COMMAND),
        "the hidden metadata command is not listed: {commands:?}"
    );
    for key in [
        "SchemaVersion",
        "Vendor",
        "Version",
        "ShortDescription",
        "Commands",
    ] {
        assert!(obj.contains_key(key), "{key} missing from {v}");
    }
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
}

#[test]
fn metadata_writes_nothing() {
    let env = TestEnv::new();
    let before = snapshot(env.path());
    // Both with nothing in HOME and with the helper missing from PATH (no warning path either).
    ok(&env.run(AUTH, &["gdcloud-plugin-metadata"], b""));
    let mut c = env.cmd(AUTH);
    c.arg("gdcloud-plugin-metadata")
        .env("PATH", "/usr/bin:/bin");
    let o = run_with_stdin(c, b"");
    ok(&o);
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
    assert_eq!(
        snapshot(env.path()),
        before,
        "metadata changed the temp HOME"
    );
    assert!(!env.config_dir.exists());
    assert!(!env.docker_config.exists());
}

#[test]
fn metadata_with_global_flags_is_still_one_object() {
    let env = TestEnv::new();
    for args in [
        &["--quiet", "gdcloud-plugin-metadata"][..],
        &["gdcloud-plugin-metadata", "--format", "json"][..],
        &["--configuration", "work", "gdcloud-plugin-metadata"][..],
    ] {
        let out = ok(&env.run(AUTH, args, b""));
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(v["SchemaVersion"], "0.1.0", "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------------------------

#[test]
fn completion_scripts_for_each_shell() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = env.run(AUTH, &["completion", shell], b"");
        let script = ok(&o);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        assert!(
            script.contains("configure-docker"),
            "{shell}: script does not mention configure-docker"
        );
        assert!(script.contains("gdcloud-auth"), "{shell}: no program name");
        assert!(stderr(&o).is_empty(), "{shell}: stderr {}", stderr(&o));
    }
}

#[test]
fn bash_completion_script_parses() {
    let env = TestEnv::new();
    let script = ok(&env.run(AUTH, &["completion", "bash"], b""));
    let file = env.path().join("gdcloud-auth.bash");
    fs::write(&file, &script).unwrap();
    let Ok(o) = Command::new("bash").arg("-n").arg(&file).output() else {
        eprintln!("bash not found: skipping the syntax check");
        return;
    };
    assert!(
        o.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn completion_unknown_shell_fails() {
    let env = TestEnv::new();
    for shell in ["tcsh", "pwsh", ""] {
        let o = env.run(AUTH, &["completion", shell], b"");
        assert!(!o.status.success(), "completion {shell:?} succeeded");
        assert!(stdout(&o).is_empty(), "{shell:?}: stdout {}", stdout(&o));
        assert!(!stderr(&o).is_empty(), "{shell:?}: no error message");
    }
    let o = env.run(AUTH, &["completion"], b"");
    assert!(!o.status.success(), "completion without a shell succeeded");
}

// ---------------------------------------------------------------------------------------------
// Global flags
// ---------------------------------------------------------------------------------------------

/// `configure-docker ARGS` with `flags` placed before or after the subcommand.
fn with_flags(flags: &[&str], before: bool, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if before {
        v.extend(flags.iter().map(|s| s.to_string()));
    }
    v.push("configure-docker".into());
    v.extend(args.iter().map(|s| s.to_string()));
    if !before {
        v.extend(flags.iter().map(|s| s.to_string()));
    }
    v
}

fn run_strings(env: &TestEnv, args: &[String], path: Option<&str>) -> Output {
    let mut c = env.cmd(AUTH);
    c.args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    run_with_stdin(c, b"")
}

#[test]
fn format_json_before_and_after() {
    for before in [true, false] {
        let env = TestEnv::new();
        let args = with_flags(
            &["--format", "json"],
            before,
            &["--registries", "h.example"],
        );
        let out = ok(&run_strings(&env, &args, None));
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(
            v["registries"],
            serde_json::json!(["h.example"]),
            "{args:?}"
        );
    }
}

#[test]
fn format_rejects_unknown_value() {
    let env = TestEnv::new();
    // yaml is a format now (issue 10); xml is not.
    let o = env.run(
        AUTH,
        &[
            "--format",
            "xml",
            "configure-docker",
            "--registries",
            "h.example",
        ],
        b"",
    );
    assert!(!o.status.success());
    assert!(!env.docker_config_file().exists());
}

#[test]
fn quiet_before_and_after_hides_status() {
    // Baseline: a change to an existing file reports its backup on stderr.
    let env = TestEnv::new();
    fs::create_dir_all(&env.docker_config).unwrap();
    fs::write(env.docker_config_file(), "{}").unwrap();
    let o = env.run(
        AUTH,
        &["configure-docker", "--registries", "h.example"],
        b"",
    );
    ok(&o);
    assert!(
        stderr(&o).contains("Backup"),
        "baseline stderr: {}",
        stderr(&o)
    );

    for before in [true, false] {
        for flag in ["--quiet", "-q"] {
            let env = TestEnv::new();
            fs::create_dir_all(&env.docker_config).unwrap();
            fs::write(env.docker_config_file(), "{}").unwrap();
            let args = with_flags(&[flag], before, &["--registries", "h.example"]);
            let o = run_strings(&env, &args, None);
            ok(&o);
            assert!(!stderr(&o).contains("Backup"), "{args:?}: {}", stderr(&o));
            assert_eq!(helper_hosts(&env), ["h.example"], "{args:?}");
        }
    }
}

#[test]
fn verbosity_error_before_and_after_hides_warning() {
    let no_helper_path = "/usr/bin:/bin";
    // Baseline: without our bin dir on PATH, the run warns.
    let env = TestEnv::new();
    let o = run_strings(
        &env,
        &with_flags(&[], true, &["--registries", "h.example"]),
        Some(no_helper_path),
    );
    ok(&o);
    assert!(stderr(&o).contains("WARNING"), "baseline: {}", stderr(&o));

    for before in [true, false] {
        let env = TestEnv::new();
        let args = with_flags(
            &["--verbosity", "error"],
            before,
            &["--registries", "h.example"],
        );
        let o = run_strings(&env, &args, Some(no_helper_path));
        ok(&o);
        assert!(!stderr(&o).contains("WARNING"), "{args:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("not on PATH"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(helper_hosts(&env), ["h.example"], "{args:?}");
    }
}

#[test]
fn verbosity_rejects_unknown_level() {
    let env = TestEnv::new();
    let o = env.run(
        AUTH,
        &[
            "configure-docker",
            "--verbosity",
            "loud",
            "--registries",
            "h.example",
        ],
        b"",
    );
    assert!(!o.status.success());
    assert!(!env.docker_config_file().exists());
}

#[test]
fn configuration_before_and_after() {
    for before in [true, false] {
        let env = TestEnv::new();
        write_configuration(&env.config_dir, "default", "default.example");
        write_configuration(&env.config_dir, "work", "work.example");
        let args = with_flags(&["--configuration", "work"], before, &[]);
        ok(&run_strings(&env, &args, None));
        assert_eq!(helper_hosts(&env), ["work.example"], "{args:?}");
    }
}

#[test]
fn log_http_before_and_after() {
    for before in [true, false] {
        let env = TestEnv::new();
        let args = with_flags(&["--log-http"], before, &["--registries", "h.example"]);
        ok(&run_strings(&env, &args, None));
        assert_eq!(helper_hosts(&env), ["h.example"], "{args:?}");
    }
}

#[test]
fn all_global_flags_together_after_subcommand() {
    let env = TestEnv::new();
    write_configuration(&env.config_dir, "work", "work.example");
    let o = run_strings(
        &env,
        &with_flags(
            &[
                "--format",
                "json",
                "--quiet",
                "--verbosity",
                "error",
                "--configuration",
                "work",
                "--log-http",
            ],
            false,
            &[],
        ),
        Some("/usr/bin:/bin"),
    );
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["registries"], serde_json::json!(["work.example"]));
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------------------------

#[test]
fn help_shows_examples() {
    let env = TestEnv::new();
    for args in [
        &["--help"][..],
        &["configure-docker", "--help"][..],
        &["help", "configure-docker"][..],
    ] {
        let out = ok(&env.run(AUTH, args, b""));
        assert!(
            out.contains("Examples"),
            "{args:?}: no Examples section:\n{out}"
        );
        assert!(out.contains("configure-docker"), "{args:?}:\n{out}");
    }
    let out = ok(&env.run(AUTH, &["configure-docker", "--help"], b""));
    for flag in [
        "--registries",
        "--overwrite",
        "--dry-run",
        "--remove-stale-auths",
        "--containers",
        "--config-cert",
        "--ca-cert-path",
    ] {
        assert!(
            out.contains(flag),
            "configure-docker --help lacks {flag}:\n{out}"
        );
    }
    let out = ok(&env.run(AUTH, &["--help"], b""));
    for flag in [
        "--format",
        "--quiet",
        "--verbosity",
        "--configuration",
        "--log-http",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}:\n{out}");
    }
}

#[test]
fn no_subcommand_is_an_error() {
    let env = TestEnv::new();
    let o = env.run(AUTH, &[], b"");
    assert!(!o.status.success());
    let o = env.run(AUTH, &["no-such-command"], b"");
    assert!(!o.status.success());
}

// ---------------------------------------------------------------------------------------------
// Host dispatch through the library
// ---------------------------------------------------------------------------------------------

#[test]
fn locate_finds_symlinked_plugin_in_plugins_folder() {
    let env = TestEnv::new();
    let installed = install_plugin(&env.config_dir, true);
    assert_eq!(
        gdcloud::plugin::locate("auth", &env.config_dir),
        Some(installed)
    );
}

#[test]
fn locate_finds_copied_plugin_and_it_runs() {
    let env = TestEnv::new();
    let installed = install_plugin(&env.config_dir, false);
    let found = gdcloud::plugin::locate("auth", &env.config_dir).expect("plugin found");
    assert_eq!(found, installed);
    let o = confine(
        gdcloud::plugin::command(
            &found,
            &env.config_dir,
            "default",
            ["gdcloud-plugin-metadata"],
        ),
        &env,
    )
    .output()
    .unwrap();
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["SchemaVersion"], "0.1.0");
}

#[test]
fn locate_unknown_group_is_none() {
    let env = TestEnv::new();
    install_plugin(&env.config_dir, true);
    let group = unique("nosuchgroup");
    assert_eq!(gdcloud::plugin::locate(&group, &env.config_dir), None);
}

#[test]
fn locate_skips_non_executables_and_directories() {
    let env = TestEnv::new();
    let plugins = env.config_dir.join("plugins");
    fs::create_dir_all(&plugins).unwrap();
    let plain = unique("plain");
    let f = plugins.join(format!("gdcloud-{plain}"));
    fs::write(&f, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let dir = unique("dir");
    fs::create_dir_all(plugins.join(format!("gdcloud-{dir}"))).unwrap();
    assert_eq!(gdcloud::plugin::locate(&plain, &env.config_dir), None);
    assert_eq!(gdcloud::plugin::locate(&dir, &env.config_dir), None);
    // A dangling symlink is no plugin either.
    let dangling = unique("dangling");
    std::os::unix::fs::symlink(
        env.path().join("missing"),
        plugins.join(format!("gdcloud-{dangling}")),
    )
    .unwrap();
    assert_eq!(gdcloud::plugin::locate(&dangling, &env.config_dir), None);
}

#[test]
fn command_sets_configuration_variables() {
    let env = TestEnv::new();
    let plugin = install_plugin(&env.config_dir, true);
    let c = gdcloud::plugin::command(
        &plugin,
        &env.config_dir,
        "work",
        ["configure-docker", "--registries", "h"],
    );
    assert_eq!(c.get_program(), plugin.as_os_str());
    let args: Vec<_> = c.get_args().collect();
    assert_eq!(args, ["configure-docker", "--registries", "h"]);
    assert_eq!(
        env_of(&c, "GDCLOUD_CONFIG").as_deref(),
        env.config_dir.to_str()
    );
    assert_eq!(
        env_of(&c, "GDCLOUD_ACTIVE_CONFIG_NAME").as_deref(),
        Some("work")
    );
}

#[test]
fn command_runs_plugin_with_registries() {
    let env = TestEnv::new();
    let plugin = install_plugin(&env.config_dir, true);
    let c = gdcloud::plugin::command(
        &plugin,
        &env.config_dir,
        "work",
        ["configure-docker", "--registries", "h"],
    );
    ok(&confine(c, &env).output().unwrap());
    assert_eq!(helper_hosts(&env), ["h"]);
}

#[test]
fn command_passes_config_dir_and_configuration_down() {
    let env = TestEnv::new();
    // The host's configuration directory is not where the plugin would look by itself
    // (HOME/.config/gdcloud), so only GDCLOUD_CONFIG can lead it there.
    let host_config = env.path().join("host-config");
    write_configuration(&host_config, "default", "default.example");
    write_configuration(&host_config, "work", "work.example:8443");
    fs::write(host_config.join("active_config"), "default\n").unwrap();
    write_configuration(&env.config_dir, "work", "wrong-dir.example");
    let plugin = install_plugin(&host_config, false);
    assert_eq!(
        gdcloud::plugin::locate("auth", &host_config),
        Some(plugin.clone())
    );

    let c = gdcloud::plugin::command(&plugin, &host_config, "work", ["configure-docker"]);
    let o = confine(c, &env).output().unwrap();
    ok(&o);
    assert_eq!(
        helper_hosts(&env),
        ["work.example:8443"],
        "the plugin did not use configuration work of the host's directory"
    );

    // And the other configuration, through the same directory.
    let c = gdcloud::plugin::command(&plugin, &host_config, "default", ["configure-docker"]);
    ok(&confine(c, &env).output().unwrap());
    assert_eq!(helper_hosts(&env), ["work.example:8443", "default.example"]);
}

#[test]
fn list_includes_plugins_folder_entry_first() {
    let env = TestEnv::new();
    let installed = install_plugin(&env.config_dir, true);
    let plugins = env.config_dir.join("plugins");
    let extra = unique("extra");
    let extra_path = plugins.join(format!("gdcloud-{extra}"));
    write_executable(&extra_path, "#!/bin/sh\nexit 0\n");
    let noexec = unique("noexec");
    let noexec_path = plugins.join(format!("gdcloud-{noexec}"));
    fs::write(&noexec_path, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&noexec_path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(plugins.join("not-a-plugin"), "").unwrap();
    fs::set_permissions(
        plugins.join("not-a-plugin"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let list = gdcloud::plugin::list(&env.config_dir);
    let auth: Vec<_> = list.iter().filter(|(g, _)| g == "auth").collect();
    assert_eq!(auth.len(), 1, "each group listed once: {list:?}");
    assert_eq!(auth[0].1, installed, "the plugins folder wins: {list:?}");
    assert!(
        list.iter().any(|(g, p)| *g == extra && *p == extra_path),
        "{list:?}"
    );
    assert!(!list.iter().any(|(g, _)| *g == noexec), "{list:?}");
    assert!(
        !list.iter().any(|(_, p)| p.ends_with("not-a-plugin")),
        "{list:?}"
    );
    let mut groups: Vec<&String> = list.iter().map(|(g, _)| g).collect();
    let n = groups.len();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), n, "duplicate groups in {list:?}");
}

#[test]
fn list_without_plugins_folder_does_not_fail() {
    let env = TestEnv::new();
    let list = gdcloud::plugin::list(&env.path().join("no-such-config-dir"));
    assert!(
        list.iter()
            .all(|(g, p)| !g.is_empty() && p.file_name().is_some()),
        "{list:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A closed stdout (`| head`)
// ---------------------------------------------------------------------------------------------

/// Runs `gdcloud-auth ARGS` with stdout a pipe whose reading end is already closed, as when the
/// reader (`head`) has exited: every write gets EPIPE.
fn run_into_closed_pipe(env: &TestEnv, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = env.cmd(AUTH);
    c.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Drop our copy of `c` (and its writer) so only the child holds the pipe.
    drop(c);
    child.wait_with_output().unwrap()
}

/// Asserts that every run of `cases` into a closed pipe exits 0 without a panic.
fn assert_closed_stdout_ok(cases: &[&[&str]]) {
    // src/plugin/cli.rs: "a closed stdout (`| head`) counted as success", with no panic message.
    let mut failures = Vec::new();
    for args in cases {
        let env = TestEnv::new();
        let o = run_into_closed_pipe(&env, args);
        let err = stderr(&o);
        if !o.status.success() || err.contains("panicked") {
            failures.push(format!("{args:?}: {} stderr: {err}", o.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn closed_stdout_configure_docker_is_success() {
    assert_closed_stdout_ok(&[
        &["configure-docker", "--registries", "h.example"],
        &[
            "configure-docker",
            "--registries",
            "j.example",
            "--format",
            "json",
        ],
    ]);
}

#[test]
fn closed_stdout_metadata_and_completion_is_success() {
    assert_closed_stdout_ok(&[
        &["gdcloud-plugin-metadata"],
        &["completion", "bash"],
        &["completion", "zsh"],
        &["completion", "fish"],
    ]);
}

// ---------------------------------------------------------------------------------------------
// Every plugin
// ---------------------------------------------------------------------------------------------

/// Each plugin `install.sh` installs answers the host's metadata question the same way.
#[test]
fn every_plugin_reports_metadata() {
    let env = TestEnv::new();
    for (plugin, commands) in [
        (AUTH, &["configure-docker", "login"][..]),
        ("gdcloud-artifacts", &["pull", "push", "tree"][..]),
        ("gdcloud-storage", &["configure", "cp"][..]),
        (
            "gdcloud-config",
            &["set", "get", "unset", "list", "configurations"][..],
        ),
    ] {
        let exe = bin_dir().join(plugin);
        assert!(
            exe.exists(),
            "{plugin} is not built: run `cargo build --workspace --bins` first"
        );
        let o = env.run(
            &exe.display().to_string(),
            &["gdcloud-plugin-metadata"],
            b"",
        );
        let v: Value = serde_json::from_str(&ok(&o)).unwrap_or_else(|e| panic!("{plugin}: {e}"));
        assert_eq!(
            v["SchemaVersion"],
            gdcloud::plugin::SCHEMA_VERSION,
            "{plugin}"
        );
        assert_eq!(v["Version"], gdcloud::VERSION, "{plugin}");
        let names: Vec<&str> = v["Commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Name"].as_str().unwrap())
            .collect();
        for c in commands {
            assert!(names.contains(c), "{plugin}: no {c} in {names:?}");
        }
        assert!(stderr(&o).is_empty(), "{plugin}: {}", stderr(&o));
    }
}
