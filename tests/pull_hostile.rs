//! `gdcloud-artifacts pull` into a DESTINATION someone else prepared, and the references and
//! indexes the ordinary pull tests do not cover, against a real Distribution registry:
//!
//! - a planted `.gdcloud-pull-incomplete` marker with a `.partial` (or `blobs/`) symlinked to a
//!   file outside: the outside file is never written, and the pull refuses in one line;
//! - resume state owned by another user (marker, `.partial`) is refused the same way;
//! - a blob of the right size but wrong content planted in an interrupted pull is not trusted;
//! - a pull by digest (`HOST/REPO@sha256:…`) of an image and of an artifact;
//! - an OCI index whose child is a Docker schema 2 manifest gives a layout skopeo and
//!   oci-image-tool read;
//! - `@sha512:` references are verified: the right digest pulls, a wrong one is refused. Distribution
//!   2.8 does not serve manifests by sha512, so our proxy forwards the sha512 request as a tag
//!   request and the registry's real bytes are what the client checks.
//!
//! The tests run as root (the attack is on a root pull); each has its own registry and HOME.

use crate::util;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};
use util::env::*;
use util::image::{skopeo_cmd, tiny_image_layout, TAG};
use util::proxy::Proxy;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const PULL_MARKER: &str = ".gdcloud-pull-incomplete";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const SECRET: &[u8] = b"root-only secret\n";

fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built in {}: run `cargo build --workspace` first",
        exe.parent().unwrap().display()
    );
    exe.to_str().unwrap().to_string()
}

/// `gdcloud-artifacts ARGS` with the registry's user (password on stdin) for any host.
fn artifacts(env: &TestEnv, reg: &Registry, args: &[&str]) -> Output {
    let mut c = env.cmd(&artifacts_exe());
    c.args(args)
        .args(["--username", &reg.username, "--password-stdin"]);
    run_timed(c, reg.password.as_bytes(), COMMAND_TIMEOUT)
}

fn registry() -> Registry {
    Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false))
}

/// Pushes the tiny test image as `reference` (`repo:tag`), with skopeo `extra` flags.
fn push_tiny(reg: &Registry, reference: &str, extra: &[&str]) {
    run_ok(
        skopeo_cmd()
            .arg("copy")
            .args(extra)
            .args(["--dest-creds", &reg.creds(), "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{TAG}", tiny_image_layout().display()))
            .arg(format!("docker://{}/{reference}", reg.host)),
    );
}

/// The exact manifest bytes the registry serves for `reference`.
fn remote_raw(reg: &Registry, reference: &str) -> Vec<u8> {
    run_ok(
        skopeo_cmd()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &reg.creds(),
            ])
            .arg(format!("docker://{}/{reference}", reg.host)),
    )
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

/// The tiny image's layer digest and size.
fn tiny_layer() -> (String, u64) {
    let layout = tiny_image_layout();
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob_path(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

/// Checks every blob index.json reaches exists with its size and digest, and no pull state is
/// left; returns index.json.
fn verify_layout(layout: &Path) -> Value {
    fn walk(layout: &Path, desc: &Value) {
        let digest = desc["digest"].as_str().unwrap();
        let path = blob_path(layout, digest);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            bytes.len() as u64,
            desc["size"].as_u64().unwrap(),
            "{digest}"
        );
        assert_eq!(sha256(&bytes), digest, "content of {}", path.display());
        let mt = desc["mediaType"].as_str().unwrap_or("");
        if mt.contains("manifest") || mt.contains("index") {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            for child in v["manifests"].as_array().into_iter().flatten() {
                walk(layout, child);
            }
            if v.get("config").is_some() {
                walk(layout, &v["config"]);
            }
            for l in v["layers"].as_array().into_iter().flatten() {
                walk(layout, l);
            }
        }
    }
    assert!(!layout.join(PULL_MARKER).exists(), "the marker is gone");
    let index = read_json(&layout.join("index.json"));
    for d in index["manifests"].as_array().unwrap() {
        walk(layout, d);
    }
    index
}

/// The planted state is chowned to another uid, which only root can do.
fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests plant other users' files: run them as root"
    );
}

/// A root-only file outside DESTINATION, as the attack's target.
fn secret_file(dir: &Path) -> PathBuf {
    let p = dir.join("root-only");
    fs::write(&p, SECRET).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// DESTINATION prepared as an interrupted pull of `source`: marker and `blobs/sha256/`.
fn planted_dest(env: &TestEnv, source: &str) -> PathBuf {
    let dest = env.path().join("shared/dest");
    fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    fs::write(dest.join(PULL_MARKER), format!("{source}\n")).unwrap();
    dest
}

#[test]
fn planted_symlinks_are_never_written_through() {
    let reg = registry();
    push_tiny(&reg, "proj/tiny:v1", &[]);
    let env = TestEnv::new();
    let source = format!("{}/proj/tiny:v1", reg.host);
    let secret = secret_file(env.path());
    let (layer, _) = tiny_layer();
    let hex = layer.trim_start_matches("sha256:");

    // The .partial of the layer points at the secret.
    let dest = planted_dest(&env, &source);
    let partial = dest.join(format!("blobs/sha256/{hex}.partial"));
    symlink(&secret, &partial).unwrap();
    let e = error_line(&artifacts(
        &env,
        &reg,
        &["pull", &source, dest.to_str().unwrap()],
    ));
    assert_eq!(
        fs::read(&secret).unwrap(),
        SECRET,
        "the outside file is untouched"
    );
    assert!(
        e.contains(&format!("{} is a symlink", partial.display()))
            && e.contains("refusing to resume from it; remove it or pull into a fresh directory"),
        "{e}"
    );

    // `blobs/sha256` itself is a symlink to the secret's directory, where the blob would land.
    fs::remove_dir_all(env.path().join("shared")).unwrap();
    let dest = planted_dest(&env, &source);
    fs::remove_dir(dest.join("blobs/sha256")).unwrap();
    symlink(env.path(), dest.join("blobs/sha256")).unwrap();
    let e = error_line(&artifacts(
        &env,
        &reg,
        &["pull", &source, dest.to_str().unwrap()],
    ));
    assert!(e.contains("blobs/sha256 is a symlink"), "{e}");
    assert!(
        !env.path().join(hex).exists(),
        "nothing written through the link"
    );
    assert_eq!(fs::read(&secret).unwrap(), SECRET);
}

#[test]
fn resume_state_of_another_user_is_refused() {
    require_root();
    let reg = registry();
    push_tiny(&reg, "proj/tiny:v1", &[]);
    let env = TestEnv::new();
    let source = format!("{}/proj/tiny:v1", reg.host);
    let (layer, _) = tiny_layer();
    let hex = layer.trim_start_matches("sha256:");

    let dest = planted_dest(&env, &source);
    std::os::unix::fs::chown(dest.join(PULL_MARKER), Some(1000), Some(1000)).unwrap();
    let e = error_line(&artifacts(
        &env,
        &reg,
        &["pull", &source, dest.to_str().unwrap()],
    ));
    assert!(
        e.contains(&format!(
            "{} is owned by uid 1000, not by you",
            dest.join(PULL_MARKER).display()
        )) && e.contains("refusing to resume from it"),
        "{e}"
    );
    assert!(!dest.join("index.json").exists(), "nothing was pulled");

    // Our marker, another user's partial blob.
    fs::remove_dir_all(env.path().join("shared")).unwrap();
    let dest = planted_dest(&env, &source);
    let partial = dest.join(format!("blobs/sha256/{hex}.partial"));
    fs::write(&partial, b"x").unwrap();
    std::os::unix::fs::chown(&partial, Some(1000), Some(1000)).unwrap();
    let e = error_line(&artifacts(
        &env,
        &reg,
        &["pull", &source, dest.to_str().unwrap()],
    ));
    assert!(e.contains("is owned by uid 1000, not by you"), "{e}");
    assert_eq!(fs::read(&partial).unwrap(), b"x");
    assert_eq!(fs::metadata(&partial).unwrap().uid(), 1000);

    // Our marker, another user's blob directory (they could swap its files while we write).
    fs::remove_dir_all(env.path().join("shared")).unwrap();
    let dest = planted_dest(&env, &source);
    std::os::unix::fs::chown(dest.join("blobs/sha256"), Some(1000), Some(1000)).unwrap();
    let e = error_line(&artifacts(
        &env,
        &reg,
        &["pull", &source, dest.to_str().unwrap()],
    ));
    assert!(
        e.contains("blobs/sha256 is owned by uid 1000, not by you"),
        "{e}"
    );
    assert!(fs::read_dir(dest.join("blobs/sha256"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn planted_blob_of_the_right_size_is_not_trusted() {
    let reg = registry();
    push_tiny(&reg, "proj/tiny:v1", &[]);
    let env = TestEnv::new();
    let source = format!("{}/proj/tiny:v1", reg.host);
    let (layer, size) = tiny_layer();
    let dest = planted_dest(&env, &source);
    fs::write(blob_path(&dest, &layer), vec![b'A'; size as usize]).unwrap();

    let out = artifacts(
        &env,
        &reg,
        &["--format", "json", "pull", &source, dest.to_str().unwrap()],
    );
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["blobs_present"], 0, "{report}");
    verify_layout(&dest);
}

#[test]
fn pull_by_digest_of_an_image_and_an_artifact() {
    let reg = registry();
    push_tiny(&reg, "proj/tiny:v1", &[]);
    let env = TestEnv::new();
    let digest = sha256(&remote_raw(&reg, "proj/tiny:v1"));
    let source = format!("{}/proj/tiny@{digest}", reg.host);
    let out = artifacts(&env, &reg, &["pull", &source, "image"]);
    assert_eq!(ok(&out), format!("{source} {digest}\n"));
    let dest = env.path().join("image");
    let index = verify_layout(&dest);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let inspect: Value = serde_json::from_slice(&run_ok(
        skopeo_cmd().args(["inspect", &format!("oci:{}", dest.display())]),
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    // Run again: the finished layout is refused like any non-empty directory, not "interrupted".
    let e = error_line(&artifacts(&env, &reg, &["pull", &source, "image"]));
    assert!(e.contains("exists and is not empty"), "{e}");

    // An artifact (empty config, one titled layer), pushed by us and pulled back by digest.
    let art = env.path().join("art-src");
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        let p = blob_path(&art, &d);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
        (d, bytes.len())
    };
    let (cfg, cfg_size) = put(b"{}");
    let (payload, payload_size) = put(b"an artifact's payload\n");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.gdcloud.test+type",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": cfg_size},
        "layers": [{"mediaType": "text/plain", "digest": payload, "size": payload_size,
                    "annotations": {"org.opencontainers.image.title": "payload.txt"}}]
    }))
    .unwrap();
    let (m, m_size) = put(&manifest);
    fs::write(art.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size,
        "artifactType": "application/vnd.gdcloud.test+type", "annotations": {REF_NAME: "v1"}}]});
    fs::write(art.join("index.json"), index.to_string()).unwrap();
    let dest_ref = format!("{}/proj/art:v1", reg.host);
    ok(&artifacts(
        &env,
        &reg,
        &["push", art.to_str().unwrap(), &dest_ref],
    ));

    let source = format!("{}/proj/art@{m}", reg.host);
    ok(&artifacts(&env, &reg, &["pull", &source, "artifact"]));
    let index = verify_layout(&env.path().join("artifact"));
    assert_eq!(index["manifests"][0]["digest"], m.as_str(), "{index}");
    assert_eq!(
        fs::read(blob_path(&env.path().join("artifact"), &payload)).unwrap(),
        b"an artifact's payload\n"
    );
}

#[test]
fn oci_index_with_a_docker_child_gives_a_layout_skopeo_and_oci_image_tool_read() {
    require_tool("oci-image-tool");
    let reg = registry();
    push_tiny(&reg, "proj/mixed:child", &["--format", "v2s2"]);
    let child = remote_raw(&reg, "proj/mixed:child");
    let child_v: Value = serde_json::from_slice(&child).unwrap();
    assert_eq!(
        child_v["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": sha256(&child), "size": child.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    }))
    .unwrap();
    let env = TestEnv::new();
    let body = env.path().join("index.json");
    fs::write(&body, &index).unwrap();
    run_ok(Command::new("curl").args([
        "-sSf",
        "-u",
        &reg.creds(),
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("http://{}/v2/proj/mixed/manifests/v1", reg.host),
    ]));

    let source = format!("{}/proj/mixed:v1", reg.host);
    ok(&artifacts(&env, &reg, &["pull", &source, "mixed"]));
    let dest = env.path().join("mixed");
    let top = verify_layout(&dest);
    let root = read_json(&blob_path(
        &dest,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    assert_eq!(
        root["manifests"][0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "the child is the converted OCI manifest: {root}"
    );
    let dest_s = dest.display().to_string();
    run_ok(skopeo_cmd().args([
        "--override-os",
        "linux",
        "--override-arch",
        "amd64",
        "inspect",
        &format!("oci:{dest_s}:v1"),
    ]));
    run_ok(
        Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=v1", &dest_s]),
    );
}

#[test]
fn sha512_references_are_verified() {
    let reg = registry();
    push_tiny(&reg, "proj/tiny:v1", &[]);
    let raw = remote_raw(&reg, "proj/tiny:v1");
    let right = format!("sha512:{}", hex::encode(Sha512::digest(&raw)));
    let wrong = format!("sha512:{}", hex::encode(Sha512::digest(b"something else")));
    let proxy = Proxy::start(&reg.host);
    for d in [&right, &wrong] {
        proxy.rewrite_target(
            &format!("/v2/proj/tiny/manifests/{d}"),
            "/v2/proj/tiny/manifests/v1",
        );
    }
    let env = TestEnv::new();
    let source = format!("{}/proj/tiny@{right}", proxy.host);
    ok(&artifacts(&env, &reg, &["pull", &source, "right"]));
    let index = verify_layout(&env.path().join("right"));
    assert_eq!(index["manifests"][0]["digest"], sha256(&raw).as_str());

    let source = format!("{}/proj/tiny@{wrong}", proxy.host);
    let e = error_line(&artifacts(&env, &reg, &["pull", &source, "wrong"]));
    assert!(e.contains(&wrong) && e.contains("digest"), "{e}");
    assert!(
        !env.path().join("wrong").exists(),
        "nothing is written for a manifest that failed its digest"
    );

    let e = error_line(&artifacts(
        &env,
        &reg,
        &[
            "pull",
            &format!("{}/proj/tiny@blake3:{}", proxy.host, "0".repeat(64)),
            "x",
        ],
    ));
    assert!(e.contains("unsupported digest algorithm \"blake3\""), "{e}");
}
