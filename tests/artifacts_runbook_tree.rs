//! `gdcloud-artifacts tree` as the operators' runbook uses it: over a bundle folder of nested OCI
//! layouts (one per repository, several tags, cosign-style `sha256-<hex>.sig` tags, an untagged
//! entry, full references with a registry host and port as ref names), the exact pipeline
//! `gdcloud artifacts tree DIR | grep PROJECT/REPO | cut -d ":" -f2 | grep -v '.sig'` must print
//! exactly that repository's tags, one per line, nothing else; `--format json` lists every image;
//! layouts made by our own `pull` name their repository; and a remote `tree HOST/PROJECT/REPO:TAG`
//! starts with `PROJECT/REPO:TAG`.
//!
//! Everything runs the real binaries: our plugin (through `sh`, exactly as the runbook pipes it),
//! umoci to build the layouts, skopeo to seed a real Distribution registry started per test on a
//! random loopback port (`tests/util/registry.rs`), each test in its own private HOME/DOCKER_CONFIG
//! (`tests/util/env.rs`); a missing tool fails the test with a message naming it.

use crate::util;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use util::env::*;
use util::image::{skopeo_cmd, tiny_image_layout, TAG};
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The runbook's pipeline, with the directory (or reference) and the repository as `$1` and `$2`.
const RUNBOOK: &str =
    r#"gdcloud-artifacts tree "$1" | grep "$2" | cut -d ":" -f2 | grep -v '.sig'"#;

// ------------------------------------------------------------------------------------ running

fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built in {}: run `cargo build --workspace` first",
        exe.parent().unwrap().display()
    );
    exe.to_str().expect("UTF-8 target path").to_string()
}

/// `gdcloud-artifacts ARGS` in `env`.
fn artifacts(env: &TestEnv, args: &[&str]) -> Output {
    let mut c = env.cmd(&artifacts_exe());
    c.args(args);
    run_timed(c, b"", COMMAND_TIMEOUT)
}

/// The runbook's pipeline over `target` for `repo`, through `sh` with our binaries on PATH;
/// returns its stdout and stderr.
fn runbook(env: &TestEnv, target: &str, repo: &str) -> (String, String) {
    require_tool("sh");
    require_tool("grep");
    require_tool("cut");
    let mut c = env.cmd("sh");
    c.args(["-c", RUNBOOK, "sh", target, repo]);
    let o = run_timed(c, b"", COMMAND_TIMEOUT);
    (stdout(&o), stderr(&o))
}

/// Asserts the pipeline printed exactly `tags` (in any order), one per line, nothing else.
#[track_caller]
fn assert_runbook(env: &TestEnv, target: &str, repo: &str, tags: &[&str]) {
    let (out, err) = runbook(env, target, repo);
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    let mut want = tags.to_vec();
    want.sort_unstable();
    assert_eq!(
        got, want,
        "`tree {target} | grep {repo} | cut -d : -f2 | grep -v .sig` printed:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.is_empty() || out.ends_with('\n'),
        "one tag per line: {out:?}"
    );
}

fn umoci(args: &[&str]) -> String {
    require_tool("umoci");
    let out = Command::new("umoci")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run umoci: {e}"));
    assert!(
        out.status.success(),
        "umoci {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

// ------------------------------------------------------------------------------------ layouts

/// The digest of the image named `tag` in `layout`.
fn digest_of(layout: &Path, tag: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"][REF_NAME] == tag)
        .unwrap_or_else(|| panic!("{} has no {tag}: {index}", layout.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The cosign tag of the image `digest`: `sha256-<hex>.sig`.
fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

/// A copy of the tiny image's layout at `dir` holding one image per name of `tags` (each its own
/// manifest: a distinct config label) and not the original [`TAG`] unless asked.
fn layout_with_tags(dir: &Path, tags: &[&str]) {
    copy_dir(tiny_image_layout(), dir);
    let l = dir.display().to_string();
    let base = format!("{l}:{TAG}");
    for t in tags {
        if *t == TAG {
            continue;
        }
        umoci(&[
            "config",
            "--image",
            &base,
            "--tag",
            t,
            "--config.label",
            &format!("gdcloud.test.tag={t}"),
        ]);
    }
    if !tags.contains(&TAG) {
        umoci(&["rm", "--image", &base]);
    }
}

/// Rewrites a layout's index.json with `f`.
fn edit_index(layout: &Path, f: impl FnOnce(&mut Vec<Value>)) {
    let path = layout.join("index.json");
    let mut index = read_json(&path);
    f(index["manifests"].as_array_mut().unwrap());
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// What the test bundle holds: `(repository, tag or None, signature)` per image.
type Expected = BTreeSet<(String, Option<String>, bool)>;

/// Builds the runbook's bundle folder under `root`:
/// - `proj-a/app/`: tags `v1`, `v2` and the cosign tag of `v1`;
/// - `proj-b/db/`: tags `19c`, `21c`, the cosign tag of `19c` and an untagged entry;
/// - `vendor/api-images/`: images named by full references (`harbor.example.com:8443/proj-d/api:1.0`,
///   `proj-d/api:1.1`), so the folder does not name the repository.
fn build_bundle(root: &Path) -> (PathBuf, Expected) {
    let bundle = root.join("bundle");
    let app = bundle.join("proj-a/app");
    layout_with_tags(&app, &["v1", "v2"]);
    let app_sig = sig_tag(&digest_of(&app, "v1"));
    umoci(&[
        "config",
        "--image",
        &format!("{}:v1", app.display()),
        "--tag",
        &app_sig,
        "--config.label",
        "dev.cosign=signature",
    ]);

    let db = bundle.join("proj-b/db");
    layout_with_tags(&db, &["19c", "21c"]);
    let db_sig = sig_tag(&digest_of(&db, "19c"));
    umoci(&[
        "config",
        "--image",
        &format!("{}:19c", db.display()),
        "--tag",
        &db_sig,
        "--config.label",
        "dev.cosign=signature",
    ]);
    edit_index(&db, |entries| {
        let mut untagged = entries[0].clone();
        untagged.as_object_mut().unwrap().remove("annotations");
        entries.push(untagged);
    });

    let api = bundle.join("vendor/api-images");
    layout_with_tags(&api, &["a", "b"]);
    edit_index(&api, |entries| {
        for e in entries.iter_mut() {
            let name = match e["annotations"][REF_NAME].as_str() {
                Some("a") => "harbor.example.com:8443/proj-d/api:1.0",
                Some("b") => "proj-d/api:1.1",
                other => panic!("unexpected entry {other:?}"),
            };
            e["annotations"] = json!({ REF_NAME: name });
        }
    });

    let s = |x: &str| x.to_string();
    let expected: Expected = [
        (s("proj-a/app"), Some(s("v1")), false),
        (s("proj-a/app"), Some(s("v2")), false),
        (s("proj-a/app"), Some(app_sig), true),
        (s("proj-b/db"), Some(s("19c")), false),
        (s("proj-b/db"), Some(s("21c")), false),
        (s("proj-b/db"), Some(db_sig), true),
        (s("proj-b/db"), None, false),
        (s("proj-d/api"), Some(s("1.0")), false),
        (s("proj-d/api"), Some(s("1.1")), false),
    ]
    .into_iter()
    .collect();
    (bundle, expected)
}

/// Lines of the text tree that are not image headers (`REPO:TAG`, `(untagged)`).
fn is_tree_line(line: &str) -> bool {
    ["└", "├", "│", " "].iter().any(|p| line.starts_with(p))
}

// ================================================================================ local bundles

#[test]
fn runbook_pipeline_prints_exactly_the_tags_of_each_repository_of_a_bundle() {
    let env = TestEnv::new();
    let (bundle, expected) = build_bundle(env.path());
    let dir = bundle.display().to_string();

    assert_runbook(&env, &dir, "proj-a/app", &["v1", "v2"]);
    assert_runbook(&env, &dir, "proj-b/db", &["19c", "21c"]);
    assert_runbook(&env, &dir, "proj-d/api", &["1.0", "1.1"]);
    assert_runbook(&env, &dir, "proj-c/none", &[]);
    // With a trailing slash, as shells complete directory names.
    assert_runbook(&env, &format!("{dir}/"), "proj-a/app", &["v1", "v2"]);

    // The text form: a header line per image, naming only PROJECT/REPO:TAG; every other line a
    // tree line that names no repository (so the grep cannot pick it up).
    let text = ok(&artifacts(&env, &["tree", &dir]));
    let headers: BTreeSet<String> = text
        .lines()
        .filter(|l| !is_tree_line(l))
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = expected
        .iter()
        .map(|(repo, tag, _)| match tag {
            Some(t) => format!("{repo}:{t}"),
            None => "(untagged)".to_string(),
        })
        .collect();
    assert_eq!(headers, want, "{text}");
    for line in text.lines().filter(|l| is_tree_line(l)) {
        for repo in ["proj-a", "proj-b", "proj-d", "harbor.example.com", "vendor"] {
            assert!(!line.contains(repo), "tree line names {repo}: {line}");
        }
    }
    // Each header is followed by its tree.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !is_tree_line(l) {
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                next.starts_with("└── manifest sha256:") || next.starts_with("└── index sha256:"),
                "{l} is followed by its tree, not {next:?}"
            );
        }
    }
}

#[test]
fn tree_escapes_ref_names_that_would_forge_lines_or_drive_the_terminal() {
    let env = TestEnv::new();
    let layout = env.path().join("proj-e/app");
    layout_with_tags(&layout, &["v1"]);
    // A ref name with a newline would print a second header line, `proj-e/app:forged`, that the
    // runbook's grep then reports as a tag; an ESC sequence would act on the terminal.
    let hostile = "proj-e/app:v1\nproj-e/app:forged\u{1b}[2J";
    edit_index(&layout, |m| {
        m[0]["annotations"][REF_NAME] = Value::String(hostile.to_string());
    });
    let dir = layout.display().to_string();
    let text = ok(&artifacts(&env, &["tree", &dir]));
    assert!(
        !text.contains('\u{1b}'),
        "ESC reached the terminal: {text:?}"
    );
    assert!(
        text.contains("proj-e/app:v1\\nproj-e/app:forged\\x1b[2J"),
        "the name is shown escaped on one line: {text}"
    );
    let (out, _) = runbook(&env, &dir, "proj-e/app");
    assert!(!out.lines().any(|l| l == "forged"), "forged a tag: {out:?}");
}

#[test]
fn tree_json_lists_every_image_of_the_bundle() {
    let env = TestEnv::new();
    let (bundle, expected) = build_bundle(env.path());
    let out = artifacts(
        &env,
        &["--format", "json", "tree", &bundle.display().to_string()],
    );
    let text = ok(&out);
    let images: Vec<Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("tree --format json is not a JSON array ({e}):\n{text}"));
    assert_eq!(images.len(), expected.len(), "{text}");
    let got: Expected = images
        .iter()
        .map(|i| {
            (
                i["repository"].as_str().unwrap().to_string(),
                i["tag"].as_str().map(str::to_string),
                i["signature"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    for i in &images {
        let location = PathBuf::from(i["location"].as_str().unwrap());
        assert!(location.starts_with(&bundle), "{i}");
        let root = &i["root"];
        assert_eq!(root["kind"], "manifest", "{i}");
        let children = root["children"].as_array().unwrap();
        assert_eq!(children[0]["kind"], "config", "{i}");
        assert!(children[1..].iter().all(|c| c["kind"] == "layer"), "{i}");
        // The root is the entry the layout's index names by this tag (bare or full reference).
        if let Some(tag) = i["tag"].as_str() {
            let index = read_json(&location.join("index.json"));
            let entry = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| {
                    d["annotations"][REF_NAME]
                        .as_str()
                        .is_some_and(|n| n == tag || n.ends_with(&format!(":{tag}")))
                })
                .unwrap_or_else(|| panic!("no entry named {tag} in {index}"));
            assert_eq!(root["digest"], entry["digest"], "{i}");
        }
    }
}

// ============================================================================= with a registry

fn login(env: &mut TestEnv, reg: &Registry) {
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    ok(&env.run(AUTH, &["configure-docker", "--registries", &reg.host], b""));
    let msg = json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));
}

fn skopeo_push(reg: &Registry, layout: &Path, tag: &str, reference: &str) {
    let out = skopeo_cmd()
        .args(["copy", "--dest-creds", &reg.creds()])
        .arg(reg.skopeo_tls_flag("dest-"))
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/{reference}", reg.host))
        .output()
        .expect("run skopeo copy");
    assert!(
        out.status.success(),
        "skopeo copy to {reference} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seeds `proj/web` with `v3`, `v4` and the cosign tags of both; returns v3's.
fn seed_web(reg: &Registry, scratch: &Path) -> String {
    let images = scratch.join("images");
    layout_with_tags(&images, &["v3", "v4", "signature"]);
    skopeo_push(reg, &images, "v3", "proj/web:v3");
    skopeo_push(reg, &images, "v4", "proj/web:v4");
    let sig = sig_tag(&digest_of(&images, "v3"));
    skopeo_push(reg, &images, "signature", &format!("proj/web:{sig}"));
    // v4's signature too: it belongs to another image, a remote tree of v3 must not show it.
    let other = sig_tag(&digest_of(&images, "v4"));
    skopeo_push(reg, &images, "signature", &format!("proj/web:{other}"));
    sig
}

#[test]
fn runbook_pipeline_over_a_bundle_made_by_our_pull() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let sig = seed_web(&reg, env.path());

    // One folder per pulled tag; the folder names are the operator's, not the repository's.
    for (tag, folder) in [("v3", "web-3"), ("v4", "web-4"), (sig.as_str(), "web-sig")] {
        let source = format!("{}/proj/web:{tag}", reg.host);
        ok(&artifacts(
            &env,
            &["pull", &source, &format!("bundle/site/{folder}")],
        ));
    }
    let bundle = env.path().join("bundle").display().to_string();
    assert_runbook(&env, &bundle, "proj/web", &["v3", "v4"]);
    // A single pulled layout given directly.
    let one = env.path().join("bundle/site/web-4").display().to_string();
    assert_runbook(&env, &one, "proj/web", &["v4"]);

    let text = ok(&artifacts(&env, &["tree", &bundle]));
    for line in text.lines() {
        assert!(
            !line.contains(&reg.host),
            "no line names the registry host (its port would be `cut -f2`'s field): {line}"
        );
    }
}

#[test]
fn remote_tree_starts_with_the_reference_and_feeds_the_runbook() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let sig = seed_web(&reg, env.path());
    let reference = format!("{}/proj/web:v3", reg.host);

    let text = ok(&artifacts(&env, &["tree", &reference]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "proj/web:v3", "{text}");
    assert!(lines[1].starts_with("└── manifest sha256:"), "{text}");
    let headers: Vec<&str> = lines.iter().copied().filter(|l| !is_tree_line(l)).collect();
    assert_eq!(
        headers,
        ["proj/web:v3".to_string(), format!("proj/web:{sig}")],
        "the image, then its signature: {text}"
    );
    assert_runbook(&env, &reference, "proj/web", &["v3"]);

    let json_out = ok(&artifacts(&env, &["--format", "json", "tree", &reference]));
    let images: Vec<Value> = serde_json::from_str(&json_out).unwrap();
    assert_eq!(images.len(), 2, "{json_out}");
    assert_eq!(images[0]["repository"], "proj/web");
    assert_eq!(images[0]["tag"], "v3");
    assert_eq!(images[0]["signature"], false);
    assert_eq!(images[0]["location"], reg.host.as_str());
    assert_eq!(images[1]["tag"], sig.as_str());
    assert_eq!(images[1]["signature"], true);
}

#[test]
fn tree_of_a_folder_without_layouts_is_a_clear_error() {
    let env = TestEnv::new();
    let empty = env.path().join("no-bundle");
    fs::create_dir_all(empty.join("proj-a/app")).unwrap();
    let o = artifacts(&env, &["tree", &empty.display().to_string()]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.starts_with("ERROR: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no-bundle") && err.contains("oci-layout"),
        "{err}"
    );
}
