//! The real `gdcloud-config` binary in a private HOME (`tests/util/env.rs`): gcloud's property verbs
//! (`set`, `get`, `unset`, `list`) and named configurations (`configurations create/activate/list/
//! describe/delete`), what they write (the same files the other plugins read, 0600, `active_config`
//! as gcloud keeps it), the errors for unknown properties and missing configurations, secrets masked
//! by `list`, and 20 concurrent writers losing nothing.

use crate::util;
use util::env::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const CONFIG: &str = "gdcloud-config";

fn exe() -> PathBuf {
    let exe = bin_dir().join(CONFIG);
    assert!(
        exe.exists(),
        "{CONFIG} is not built in {}: run `cargo build --workspace --bins` first",
        exe.display()
    );
    exe
}

fn cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = env.cmd(&exe().display().to_string());
    c.args(args);
    c
}

fn run(env: &TestEnv, args: &[&str]) -> Output {
    run_with_stdin(cmd(env, args), b"")
}

/// Asserts a failure with exit code 1, nothing on stdout, and returns stderr.
#[track_caller]
fn fails(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(stdout(o).is_empty(), "stdout: {}", stdout(o));
    stderr(o)
}

fn file_of(env: &TestEnv, name: &str) -> PathBuf {
    env.config_dir.join(format!("configurations/config_{name}"))
}

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn set_get_unset_in_the_active_configuration() {
    let env = TestEnv::new();
    let o = run(&env, &["set", "artifacts/registry", "harbor.example:8443"]);
    ok(&o);
    assert!(
        stderr(&o).contains("Updated property [artifacts/registry]."),
        "{}",
        stderr(&o)
    );
    let file = file_of(&env, "default");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "[artifacts]\nregistry = harbor.example:8443\n"
    );
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        ok(&run(&env, &["get", "artifacts/registry"])),
        "harbor.example:8443\n"
    );
    let json: Value = serde_json::from_str(&ok(&run(
        &env,
        &["get", "artifacts/registry", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(json, "harbor.example:8443");

    ok(&run(&env, &["unset", "artifacts/registry"]));
    let err = fails(&run(&env, &["get", "artifacts/registry"]));
    assert!(
        err.contains("artifacts/registry is not set in configuration default")
            && err.contains("gdcloud-config set artifacts/registry VALUE"),
        "{err}"
    );
}

#[test]
fn what_set_writes_the_other_plugins_read() {
    let env = TestEnv::new();
    ok(&run(
        &env,
        &["set", "artifacts/registry", "set-by-config.example"],
    ));
    ok(&env.run(AUTH, &["configure-docker"], b""));
    let docker: Value =
        serde_json::from_slice(&fs::read(env.docker_config_file()).unwrap()).unwrap();
    assert_eq!(
        docker["credHelpers"]["set-by-config.example"], "gdcloud",
        "{docker}"
    );
}

#[test]
fn unknown_properties_are_refused_with_the_closest_name() {
    let env = TestEnv::new();
    for (args, closest) in [
        (
            &["set", "storage/s3_endpiont", "https://s3"][..],
            "storage/s3_endpoint",
        ),
        (&["set", "registry", "h"][..], "artifacts/registry"),
        (&["get", "auth/issuer"][..], "auth/issuer_url"),
        (
            &["unset", "storage/secret_access_key"][..],
            "storage/s3_secret_access_key",
        ),
    ] {
        let err = fails(&run(&env, args));
        assert!(
            err.contains("unknown property") && err.contains(&format!("did you mean {closest}?")),
            "{args:?}: {err}"
        );
    }
    let err = fails(&run(&env, &["set", "auth/credential_store", "filez"]));
    assert!(err.contains("use auto,"), "{err}");
    assert!(
        !env.config_dir.join("configurations").exists(),
        "an error wrote something"
    );
    let help = ok(&run(&env, &["set", "--help"]));
    assert!(
        help.contains("storage/s3_custom_ca_certs_file  CA certificate"),
        "{help}"
    );
}

#[test]
fn list_masks_secrets_unless_asked() {
    let env = TestEnv::new();
    ok(&run(
        &env,
        &["set", "storage/s3_secret_access_key", "s3cr3t-value"],
    ));
    ok(&run(
        &env,
        &["set", "storage/s3_endpoint", "https://s3.example"],
    ));
    let o = run(&env, &["list"]);
    let text = ok(&o);
    assert_eq!(
        text,
        "[storage]\ns3_endpoint = https://s3.example\ns3_secret_access_key = ********\n"
    );
    assert!(
        stderr(&o).contains("Your active configuration is: [default]"),
        "{}",
        stderr(&o)
    );
    let shown = ok(&run(&env, &["list", "--show-secrets"]));
    assert!(
        shown.contains("s3_secret_access_key = s3cr3t-value"),
        "{shown}"
    );
    let all: Value =
        serde_json::from_str(&ok(&run(&env, &["list", "--all", "--format", "json"]))).unwrap();
    assert_eq!(all["storage"]["s3_secret_access_key"], "********");
    assert_eq!(all["storage"]["s3_endpoint"], "https://s3.example");
    assert_eq!(all["artifacts"]["registry"], Value::Null);
    assert!(!all.to_string().contains("s3cr3t"), "{all}");
    // The scripting verb prints the value itself.
    assert_eq!(
        ok(&run(&env, &["get", "storage/s3_secret_access_key"])),
        "s3cr3t-value\n"
    );
}

#[test]
fn environment_overrides_are_read_and_reported() {
    let env = TestEnv::new();
    let mut c = cmd(&env, &["set", "artifacts/registry", "file.example"]);
    c.env("GDCLOUD_ARTIFACTS_REGISTRY", "env.example");
    let o = run_with_stdin(c, b"");
    ok(&o);
    assert!(
        stderr(&o).contains("WARNING: GDCLOUD_ARTIFACTS_REGISTRY is set in this environment"),
        "{}",
        stderr(&o)
    );
    let mut c = cmd(&env, &["get", "artifacts/registry"]);
    c.env("GDCLOUD_ARTIFACTS_REGISTRY", "env.example");
    assert_eq!(ok(&run_with_stdin(c, b"")), "env.example\n");
    assert_eq!(
        ok(&run(&env, &["get", "artifacts/registry"])),
        "file.example\n"
    );
}

#[test]
fn named_configurations_lifecycle() {
    let env = TestEnv::new();
    let o = run(&env, &["configurations", "create", "work"]);
    ok(&o);
    assert!(stderr(&o).contains("Created [work]."), "{}", stderr(&o));
    assert_eq!(mode(&file_of(&env, "work")), 0o600);
    assert!(
        !env.config_dir.join("active_config").exists(),
        "create without --activate activated"
    );
    let err = fails(&run(&env, &["configurations", "create", "work"]));
    assert!(err.contains("configuration work already exists"), "{err}");

    // --configuration selects it for one invocation without activating it.
    ok(&run(
        &env,
        &[
            "--configuration",
            "work",
            "set",
            "artifacts/registry",
            "w.example",
        ],
    ));
    assert!(fails(&run(&env, &["get", "artifacts/registry"])).contains("configuration default"));
    let err = fails(&run(
        &env,
        &["--configuration", "nope", "set", "artifacts/registry", "x"],
    ));
    assert!(
        err.contains("gdcloud-config configurations create nope"),
        "{err}"
    );

    let o = run(&env, &["configurations", "activate", "work"]);
    ok(&o);
    assert!(stderr(&o).contains("Activated [work]."), "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(env.config_dir.join("active_config")).unwrap(),
        "work"
    );
    assert_eq!(mode(&env.config_dir.join("active_config")), 0o600);
    assert_eq!(
        ok(&run(&env, &["get", "artifacts/registry"])),
        "w.example\n"
    );
    assert!(fails(&run(&env, &["configurations", "activate", "nope"])).contains("does not exist"));

    let table = ok(&run(&env, &["configurations", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "IS_ACTIVE", "REGISTRY", "S3_ENDPOINT"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["default", "False"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["work", "True", "w.example"]
    );
    let json: Value = serde_json::from_str(&ok(&run(
        &env,
        &["configurations", "list", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(json[1]["name"], "work");
    assert_eq!(json[1]["is_active"], true);
    assert_eq!(json[1]["properties"]["artifacts"]["registry"], "w.example");

    let described = ok(&run(&env, &["configurations", "describe", "work"]));
    assert_eq!(
        described,
        "is_active: true\nname: work\nproperties:\n  artifacts:\n    registry: w.example\n"
    );

    let err = fails(&run(&env, &["configurations", "delete", "work"]));
    assert!(
        err.contains("configuration work is active and cannot be deleted"),
        "{err}"
    );
    assert!(file_of(&env, "work").exists());
    ok(&run(
        &env,
        &["configurations", "create", "other", "--activate"],
    ));
    assert_eq!(
        fs::read_to_string(env.config_dir.join("active_config")).unwrap(),
        "other"
    );
    let o = run(&env, &["configurations", "delete", "work"]);
    ok(&o);
    assert!(stderr(&o).contains("Deleted [work]."), "{}", stderr(&o));
    assert!(!file_of(&env, "work").exists());
    let err = fails(&run(&env, &["configurations", "describe", "work"]));
    assert!(err.contains("configuration work does not exist"), "{err}");
}

/// Twenty processes change one configuration file at once, each a different property: fourteen set
/// every known property, six remove stale entries. A lost update would drop a value or bring a
/// removed entry back.
#[test]
fn concurrent_writers_lose_nothing() {
    let env = TestEnv::new();
    let props: Vec<(String, String)> =
        serde_json::from_str::<Value>(&ok(&run(&env, &["list", "--all", "--format", "json"])))
            .unwrap()
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(section, keys)| {
                keys.as_object()
                    .unwrap()
                    .keys()
                    .map(|k| (section.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
    assert_eq!(props.len(), 14, "{props:?}");
    let file = file_of(&env, "default");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut seed = String::from("# kept\n[stale]\n");
    for i in 0..6 {
        seed.push_str(&format!("old{i} = x\n"));
    }
    fs::write(&file, &seed).unwrap();

    let value = |section: &str, key: &str| match (section, key) {
        ("auth", "credential_store") => "file".to_string(),
        ("storage", "s3_addressing_style") => "virtual".to_string(),
        _ => format!("v-{section}-{key}"),
    };
    let mut children = Vec::new();
    for (section, key) in &props {
        let mut c = cmd(
            &env,
            &["set", &format!("{section}/{key}"), &value(section, key)],
        );
        children.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for i in 0..6 {
        let mut c = cmd(&env, &["unset", &format!("stale/old{i}")]);
        children.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    assert_eq!(children.len(), 20);
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }

    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# kept\n[stale]\n"), "{text}");
    assert!(!text.contains("old"), "a removed entry came back:\n{text}");
    let all: Value = serde_json::from_str(&ok(&run(
        &env,
        &["list", "--show-secrets", "--format", "json"],
    )))
    .unwrap();
    for (section, key) in &props {
        assert_eq!(
            all[section][key],
            value(section, key),
            "{section}/{key} lost:\n{text}"
        );
    }
    assert_eq!(mode(&file), 0o600);
    let leftovers: Vec<_> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["config_default"], "temp files left behind");
}

/// A secret property's value comes from stdin (VALUE omitted or `-`), bounded; on the command
/// line it is still taken but warned about, with the piped form that works as typed.
#[test]
fn secret_values_come_from_stdin_and_argv_is_warned_about() {
    const KEY: &str = "storage/s3_secret_access_key";
    let env = TestEnv::new();
    let secret_of = |env: &TestEnv| {
        let all: Value = serde_json::from_str(&ok(&run(
            env,
            &["list", "--show-secrets", "--format", "json"],
        )))
        .unwrap();
        all["storage"]["s3_secret_access_key"].clone()
    };

    let o = run_with_stdin(cmd(&env, &["set", KEY]), b"from-stdin-1\n");
    ok(&o);
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    assert_eq!(secret_of(&env), "from-stdin-1");
    ok(&run_with_stdin(
        cmd(&env, &["set", KEY, "-"]),
        b"from-stdin-2\r\n",
    ));
    assert_eq!(secret_of(&env), "from-stdin-2");

    // Refused, not cut, past the bound; nothing written.
    let big = vec![b'k'; 1024 * 1024 + 1];
    let err = fails(&run_with_stdin(cmd(&env, &["set", KEY, "-"]), &big));
    assert!(
        err.contains("read the value of storage/s3_secret_access_key from stdin"),
        "{err}"
    );
    assert_eq!(secret_of(&env), "from-stdin-2");
    let err = fails(&run_with_stdin(cmd(&env, &["set", KEY]), b""));
    assert!(err.contains("stdin was empty"), "{err}");

    let o = run(&env, &["set", KEY, "on-argv"]);
    ok(&o);
    let warned = stderr(&o);
    assert!(
        warned.contains("WARNING: storage/s3_secret_access_key was given on the command line"),
        "{warned}"
    );
    let start = warned.find("`printf").expect("the piped form") + 1;
    let piped = &warned[start..start + warned[start..].find('`').unwrap()];
    assert_eq!(
        piped,
        "printf %s \"$KEY\" | gdcloud-config set storage/s3_secret_access_key -"
    );
    let mut sh = env.cmd("sh");
    sh.args(["-c", piped]).env("KEY", "piped-as-typed");
    ok(&run_with_stdin(sh, b""));
    assert_eq!(secret_of(&env), "piped-as-typed");
    // A property that is no secret takes argv without a warning.
    let o = run(&env, &["set", "storage/s3_endpoint", "https://s3.example"]);
    ok(&o);
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
}
