//! gcloud's `--format` through the real binaries, on commands that need no server: `gdcloud-config`
//! `list`/`get`/`configurations`, `version` in every plugin, `storage env` from the configuration,
//! and `artifacts tree` on an OCI layout. Each check is the exact stdout a script would read, plus
//! the usage error for a format that is not one.

use crate::util;
use util::env::*;

use std::process::Output;

const PLUGINS: [&str; 4] = [
    "gdcloud-auth",
    "gdcloud-artifacts",
    "gdcloud-storage",
    "gdcloud-config",
];

fn run(env: &TestEnv, program: &str, args: &[&str]) -> Output {
    assert!(
        bin_dir().join(program).is_file(),
        "{program} is not built: run `cargo build --workspace --bins` first"
    );
    env.run(program, args, b"")
}

fn config(env: &TestEnv, args: &[&str]) -> String {
    ok(&run(env, "gdcloud-config", args))
}

/// A configuration `default` (active, with a registry and an endpoint) and `second` (an
/// endpoint only).
fn two_configurations() -> TestEnv {
    let env = TestEnv::new();
    config(&env, &["set", "artifacts/registry", "harbor.example:8443"]);
    config(&env, &["set", "storage/s3_endpoint", "https://s3.example"]);
    config(&env, &["configurations", "create", "second"]);
    config(
        &env,
        &[
            "set",
            "storage/s3_endpoint",
            "https://other.example",
            "--configuration",
            "second",
        ],
    );
    env
}

#[test]
fn config_list_and_get_print_what_the_format_asks() {
    let env = two_configurations();
    assert_eq!(
        config(&env, &["list", "--format", "value(artifacts.registry)"]),
        "harbor.example:8443\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "list",
                "--format=value(artifacts.registry, storage.s3_endpoint, core.missing)"
            ]
        ),
        "harbor.example:8443\thttps://s3.example\t\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "list",
                "--format",
                "csv(artifacts.registry,storage.s3_endpoint)"
            ]
        ),
        "registry,s3_endpoint\nharbor.example:8443,https://s3.example\n"
    );
    assert_eq!(
        config(&env, &["list", "--format", "yaml"]),
        "artifacts:\n  registry: harbor.example:8443\nstorage:\n  s3_endpoint: https://s3.example\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "list",
                "--configuration",
                "second",
                "--format",
                "value(storage.s3_endpoint)"
            ]
        ),
        "https://other.example\n"
    );
    assert_eq!(
        config(&env, &["get", "storage/s3_endpoint", "--format", "yaml"]),
        "https://s3.example\n"
    );
    assert_eq!(config(&env, &["list", "--format", "none"]), "");
}

#[test]
fn configurations_list_rows_are_the_configurations() {
    let env = two_configurations();
    assert_eq!(
        config(
            &env,
            &[
                "configurations",
                "list",
                "--format",
                "table(name, is_active, properties.artifacts.registry:label=REGISTRY, properties.storage.s3_endpoint)"
            ]
        ),
        "NAME     IS_ACTIVE  REGISTRY             S3_ENDPOINT\n\
         default  True       harbor.example:8443  https://s3.example\n\
         second   False                           https://other.example\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "configurations",
                "list",
                "--format",
                "table[no-heading](name, is_active)"
            ]
        ),
        "default  True\nsecond   False\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "configurations",
                "list",
                "--format",
                "csv[no-heading,separator=';'](name,is_active)"
            ]
        ),
        "default;True\nsecond;False\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "configurations",
                "list",
                "--format",
                "value(name:sort=1:reverse)"
            ]
        ),
        "second\ndefault\n"
    );
    assert_eq!(
        config(&env, &["configurations", "list", "--format", "yaml"]),
        "---\nname: default\nis_active: true\nproperties:\n  artifacts:\n    registry: harbor.example:8443\n  storage:\n    s3_endpoint: https://s3.example\n\
         ---\nname: second\nis_active: false\nproperties:\n  storage:\n    s3_endpoint: https://other.example\n"
    );
    assert_eq!(
        config(
            &env,
            &[
                "configurations",
                "describe",
                "second",
                "--format",
                "value(name, is_active, properties.storage.s3_endpoint)"
            ]
        ),
        "second\tFalse\thttps://other.example\n"
    );
}

#[test]
fn version_answers_every_format_in_every_plugin() {
    let env = TestEnv::new();
    let version = env!("CARGO_PKG_VERSION");
    for plugin in PLUGINS {
        let format = |f: &str| ok(&run(&env, plugin, &["version", "--format", f]));
        assert_eq!(format("value(version)"), format!("{version}\n"), "{plugin}");
        assert_eq!(
            format("yaml"),
            // Quoted: an unquoted 0.1.0 is not a string to every YAML reader.
            format!("version: \"{version}\"\nbinary: {plugin}\n"),
            "{plugin}"
        );
        assert_eq!(
            format("csv(binary,version)"),
            format!("binary,version\n{plugin},{version}\n"),
            "{plugin}"
        );
        assert_eq!(format("text"), format!("{plugin} {version}\n"), "{plugin}");
        let json: serde_json::Value = serde_json::from_str(&format("json")).unwrap();
        assert_eq!(json["version"], version, "{plugin}");
    }
}

#[test]
fn storage_env_projects_the_variables_and_quotes_csv() {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", "AKIA-FORMAT");
    env.set_property("storage", "s3_secret_access_key", "se,cret \"x\"");
    env.set_property("storage", "s3_endpoint", "https://s3.example:9000");
    let storage = |f: &str| ok(&run(&env, "gdcloud-storage", &["env", "--format", f]));
    assert_eq!(
        storage("value(AWS_ENDPOINT_URL)"),
        "https://s3.example:9000\n"
    );
    assert_eq!(
        storage("value[separator=' '](AWS_ACCESS_KEY_ID,AWS_ENDPOINT_URL)"),
        "AKIA-FORMAT https://s3.example:9000\n"
    );
    assert_eq!(
        storage("csv(AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY)"),
        "aws_access_key_id,aws_secret_access_key\nAKIA-FORMAT,\"se,cret \"\"x\"\"\"\n"
    );
}

#[test]
fn artifacts_tree_rows_are_the_images_of_the_layout() {
    let layout = util::image::tiny_image_layout();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifest = &index["manifests"][0];
    let env = TestEnv::new();
    let dir = layout.display().to_string();
    let tree = |f: &str| {
        ok(&run(
            &env,
            "gdcloud-artifacts",
            &["tree", &dir, "--format", f],
        ))
    };
    assert_eq!(
        tree("value(tag, root.kind, root.digest, root.size)"),
        format!(
            "{}\tmanifest\t{}\t{}\n",
            util::image::TAG,
            manifest["digest"].as_str().unwrap(),
            manifest["size"]
        )
    );
    // The manifest's children: its config and its one layer.
    assert_eq!(
        tree("table(tag, root.children.len():label=BLOBS, root.children[].kind.join(','):label=KINDS)"),
        "TAG  BLOBS  KINDS\nv1   2      config,layer\n"
    );
    let yaml = tree("yaml");
    assert!(yaml.starts_with("---\nrepository: "), "{yaml}");
    assert!(yaml.contains("\ntag: v1\n"), "{yaml}");
}

#[test]
fn a_format_that_is_not_one_is_a_usage_error_naming_what_is_accepted() {
    let env = TestEnv::new();
    for (format, says) in [
        ("tabel(name)", "unknown format \"tabel\""),
        (
            "value(name",
            "expected ')' after the keys at the end of the format",
        ),
        ("table", "table needs the keys to print"),
        ("value(name.upper())", "unknown transform upper()"),
    ] {
        let o = run(&env, "gdcloud-config", &["list", "--format", format]);
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{format}: {}", stdout(&o));
        let first = stderr(&o).lines().next().unwrap_or_default().to_string();
        assert!(
            first.starts_with(&format!(
                "error: invalid value '{format}' for '--format <FORMAT>'"
            )),
            "{first}"
        );
        assert!(first.contains(says), "{format}: {first}");
        assert!(
            first.contains(
                "--format takes json, yaml, text, none, table(KEY,…), value(KEY,…) or csv(KEY,…)"
            ),
            "{first}"
        );
    }
}
