//! `gdcloud-artifacts save DIRECTORY REF...`: many registry images into one OCI layout bundle,
//! against a real Distribution registry (token auth over TLS as production registries run, or
//! htpasswd over plain HTTP where the signer or the proxy needs it):
//!
//! - images sharing a base layer and a multi-platform index, from arguments and a list file:
//!   each blob is stored once and fetched once (counted in the registry's access log), the index
//!   keeps its exact bytes, `tree` lists every `PROJECT/REPO:TAG`, skopeo, umoci and podman read it;
//! - `--with-signatures`: cosign `.sig` tags (signed by sigstore-rs) of the images and of a
//!   platform manifest, and a referrer from the referrers tag schema (Distribution 2.8 has no
//!   referrers API: the save asks, gets 404, falls back); `verify DIR --key` accepts the bundle;
//!   referrers from the API (our proxy routes the API call to a tag holding the listing, which
//!   the real registry serves) are stored by digest, unnamed;
//! - a save killed mid-blob, run again: it resumes with HTTP Range and every digest is right;
//! - a registry serving a blob that is not its digest: nothing lands under a final name;
//! - two references that would share one bundle name: refused before anything is fetched.

use crate::util;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use util::cosign::{sign, SigningKey};
use util::env::*;
use util::image::{podman, skopeo_cmd};
use util::proxy::Proxy;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const PULL_MARKER: &str = ".gdcloud-pull-incomplete";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const BIG_FILE_SIZE: usize = 16 << 20;

// ---------------------------------------------------------------------------------- running

fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built: run `cargo build --workspace` first"
    );
    exe.to_str().unwrap().to_string()
}

fn artifacts(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = env.cmd(&artifacts_exe());
    c.args(args);
    run_timed(c, stdin, COMMAND_TIMEOUT)
}

#[track_caller]
fn ok_json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{text}"))
}

/// Logs `env` in to `reg` through our credential helper (file store), as `docker login` would,
/// and makes `reg` the default registry for references without a host.
fn login(env: &mut TestEnv, reg: &Registry) {
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    ok(&env.run(AUTH, &["configure-docker", "--registries", &reg.host], b""));
    let msg = json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));
    env.set_property("artifacts", "registry", &reg.host);
}

fn umoci(args: &[&str]) -> String {
    require_tool("umoci");
    String::from_utf8_lossy(&run_ok(Command::new("umoci").args(args))).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

// ----------------------------------------------------------------------------------- images

static IMAGES: OnceLock<PathBuf> = OnceLock::new();

/// Adds `tag` to `layout`, starting from `from` (a tag of the layout) or empty: one more layer
/// holding `file` = `content`, and `config` flags for `umoci config`.
fn umoci_image(
    layout: &Path,
    from: Option<&str>,
    tag: &str,
    config: &[&str],
    file: &str,
    content: &[u8],
) {
    let l = layout.display().to_string();
    let image = format!("{l}:{tag}");
    match from {
        Some(f) => umoci(&["tag", "--image", &format!("{l}:{f}"), tag]),
        None => umoci(&["new", "--image", &image]),
    };
    if !config.is_empty() {
        let mut args = vec!["config", "--image", &image];
        args.extend_from_slice(config);
        umoci(&args);
    }
    let bundle = layout.with_file_name(format!("bundle-{tag}"));
    let b = bundle.display().to_string();
    umoci(&["unpack", "--rootless", "--image", &image, &b]);
    fs::write(bundle.join("rootfs").join(file), content).unwrap();
    umoci(&["repack", "--image", &image, &b]);
    fs::remove_dir_all(&bundle).unwrap();
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .unwrap();
    v
}

/// One layout: `base` (a 256 KiB random layer), `app1` and `app2` on top of it, `amd64` and
/// `arm64` on top of it too, `multi` (an index of those two) and `big` (one 16 MiB random
/// layer, nothing shared). Built once per process.
fn images() -> &'static Path {
    IMAGES.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("save-images-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let layout = root.join("oci");
        let l = layout.display().to_string();
        umoci(&["init", "--layout", &l]);
        umoci_image(&layout, None, "base", &[], "base.bin", &random(256 << 10));
        for app in ["app1", "app2"] {
            umoci_image(&layout, Some("base"), app, &[], "app.txt", app.as_bytes());
        }
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let flags = ["--architecture", arch, "--os", "linux"];
            umoci_image(
                &layout,
                Some("base"),
                arch,
                &flags,
                "arch.txt",
                arch.as_bytes(),
            );
            let d = entry(&layout, arch);
            children.push(
                json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                "platform": {"architecture": arch, "os": "linux"}}),
            );
        }
        umoci_image(
            &layout,
            None,
            "big",
            &[],
            "random.bin",
            &random(BIG_FILE_SIZE),
        );
        umoci(&["gc", "--layout", &l]);
        let index = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}))
        .unwrap();
        add_entry(
            &layout,
            "multi",
            "application/vnd.oci.image.index.v1+json",
            &index,
            None,
        );
        layout
    })
}

/// The layout's index.json entry named `name`.
fn entry(layout: &Path, name: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"][REF_NAME] == name)
        .unwrap_or_else(|| panic!("{} has no {name}: {index}", layout.display()))
        .clone()
}

/// Stores `bytes` as a blob of `layout` and names it `name` in its index.json.
fn add_entry(layout: &Path, name: &str, media_type: &str, bytes: &[u8], artifact: Option<&str>) {
    let hex = sha256_hex(bytes);
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    let path = layout.join("index.json");
    let mut top = read_json(&path);
    let mut d = json!({"mediaType": media_type, "digest": format!("sha256:{hex}"),
        "size": bytes.len(), "annotations": {REF_NAME: name}});
    if let Some(a) = artifact {
        d["artifactType"] = json!(a);
    }
    top["manifests"].as_array_mut().unwrap().push(d);
    fs::write(&path, serde_json::to_vec(&top).unwrap()).unwrap();
}

/// The digest (`sha256:…`) of `name`'s single layer with the most bytes.
fn biggest_layer(name: &str) -> String {
    let l = images();
    let m = read_json(&blob_path(l, entry(l, name)["digest"].as_str().unwrap()));
    let layers = m["layers"].as_array().unwrap();
    let big = layers.iter().max_by_key(|d| d["size"].as_u64()).unwrap();
    big["digest"].as_str().unwrap().to_string()
}

// --------------------------------------------------------------------------------- registry

/// `skopeo copy --all oci:IMAGES:name docker://HOST/reference`.
fn push(reg: &Registry, layout: &Path, name: &str, reference: &str) {
    run_ok(
        skopeo_cmd()
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-creds",
                &reg.creds(),
            ])
            .arg(reg.skopeo_tls_flag("dest-"))
            .arg(format!("oci:{}:{name}", layout.display()))
            .arg(format!("docker://{}/{reference}", reg.host)),
    );
}

fn remote_raw(reg: &Registry, reference: &str) -> Vec<u8> {
    run_ok(
        skopeo_cmd()
            .args(["inspect", "--raw", "--creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag(""))
            .arg(format!("docker://{}/{reference}", reg.host)),
    )
}

fn remote_digest(reg: &Registry, reference: &str) -> String {
    format!("sha256:{}", sha256_hex(&remote_raw(reg, reference)))
}

// ------------------------------------------------------------------------------ the bundle

/// Every blob under `bundle` has the content its name says, no `.partial` is left, no marker.
fn check_blobs(bundle: &Path) -> BTreeSet<String> {
    assert!(!bundle.join(PULL_MARKER).exists(), "the save finished");
    let mut names = BTreeSet::new();
    for e in fs::read_dir(bundle.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!name.ends_with(".partial"), "left over: {}", p.display());
        assert_eq!(sha256_hex(&fs::read(&p).unwrap()), name, "{}", p.display());
        names.insert(format!("sha256:{name}"));
    }
    names
}

fn ref_names(bundle: &Path) -> Vec<String> {
    read_json(&bundle.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["annotations"][REF_NAME].as_str().map(str::to_string))
        .collect()
}

// ==================================================================================== tests

#[test]
fn bundle_of_images_sharing_layers_and_an_index_stores_each_blob_once() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    let l = images();
    push(&reg, l, "app1", "proj/app1:v1");
    push(&reg, l, "app2", "proj/app2:v1");
    push(&reg, l, "app2", "other/app2:v2");
    push(&reg, l, "multi", "proj/multi:v1");
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let list = env.path().join("images.txt");
    fs::write(
        &list,
        "# shared base layer\nproj/app1:v1\n\n  proj/app2:v1\nother/app2:v2\n",
    )
    .unwrap();
    let ca = reg.ca_cert.as_ref().unwrap().display().to_string();
    let multi = format!("{}/proj/multi:v1", reg.host);
    let before = reg.log().len();
    let out = artifacts(
        &env,
        &[
            "--format",
            "json",
            "save",
            "--ca-cert-path",
            &ca,
            "--with-signatures",
            "bundle",
            &multi,
            "--from-file",
            list.to_str().unwrap(),
            "--concurrency",
            "4",
        ],
        b"",
    );
    let report = ok_json(&out);
    let bundle = env.path().join("bundle");
    assert!(
        out.stderr.is_empty(),
        "no progress without a terminal: {}",
        stderr(&out)
    );
    let images = report["images"].as_array().unwrap();
    let names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "proj/multi:v1",
            "proj/app1:v1",
            "proj/app2:v1",
            "other/app2:v2"
        ]
    );
    for i in images {
        let name = i["name"].as_str().unwrap();
        assert_eq!(i["digest"], remote_digest(&reg, name), "{name}");
    }
    assert_eq!(images[0]["manifests"], 3, "the index and both platforms");
    // Nothing is signed here: every cosign tag and the referrers API answer 404 (through the
    // token dance), which is "none".
    assert!(images
        .iter()
        .all(|i| i["signatures"] == json!([]) && i["referrers"] == 0));
    assert_eq!(
        ref_names(&bundle),
        names,
        "index.json names exactly the images"
    );

    // The index is kept byte for byte, with every platform.
    let multi_digest = images[0]["digest"].as_str().unwrap();
    assert_eq!(
        fs::read(blob_path(&bundle, multi_digest)).unwrap(),
        remote_raw(&reg, "proj/multi:v1")
    );

    // Each blob once on disk and once over the wire: the base layer is in all four images.
    let blobs = check_blobs(&bundle);
    let base = biggest_layer("base");
    assert!(blobs.contains(&base));
    let log = &reg.log()[before..];
    let gets = |d: &str| {
        log.lines()
            .filter(|l| {
                l.contains("\"GET /v2/")
                    && l.contains(&format!("/blobs/{d} "))
                    && (l.contains("\" 200 ") || l.contains("\" 206 "))
            })
            .count()
    };
    assert_eq!(
        gets(&base),
        1,
        "the shared base layer is fetched once:\n{log}"
    );
    let layers_and_configs = report["blobs"].as_u64().unwrap() as usize;
    // amd64, arm64, app1, app2 layers and 4 configs, plus the base layer.
    assert_eq!(layers_and_configs, 9);
    let fetched: usize = blobs.iter().map(|d| gets(d)).sum();
    assert_eq!(
        fetched, layers_and_configs,
        "every blob fetched exactly once:\n{log}"
    );
    // 3 manifests of the index + app1 + app2 (twice the same digest) = 5 manifests; 14 files.
    assert_eq!(blobs.len(), layers_and_configs + 5);

    // tree lists each image as the runbook greps it.
    let tree = ok(&artifacts(&env, &["tree", "bundle"], b""));
    for n in &names {
        assert!(
            tree.lines().any(|l| l.contains(n)),
            "tree lists {n}:\n{tree}"
        );
    }
    // skopeo and umoci read it.
    for n in &names {
        run_ok(
            skopeo_cmd()
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:{n}", bundle.display())),
        );
    }
    let copy = env.path().join("copy");
    run_ok(
        skopeo_cmd()
            .args(["copy", "--all"])
            .arg(format!("oci:{}:proj/multi:v1", bundle.display()))
            .arg(format!("oci:{}:multi", copy.display())),
    );
    let ls = umoci(&["ls", "--layout", bundle.to_str().unwrap()]);
    for n in &names {
        assert!(ls.lines().any(|l| l == *n), "umoci ls lists {n}:\n{ls}");
    }
    let unpacked = env.path().join("unpacked");
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:proj/app1:v1", bundle.display()),
        unpacked.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(unpacked.join("rootfs/app.txt")).unwrap(), b"app1");
    assert_eq!(
        fs::read(unpacked.join("rootfs/base.bin")).unwrap().len(),
        256 << 10
    );
    // podman too (a path relative to the test's directory: podman wants a lower-case name).
    let pulled = ok(&podman(
        &env,
        &["pull", "--quiet", "oci:bundle:proj/app1:v1"],
    ));
    assert_eq!(
        pulled.trim().len(),
        64,
        "podman printed an image id: {pulled}"
    );
    let listed = ok(&podman(
        &env,
        &["images", "--format", "{{.ID}}", "--no-trunc"],
    ));
    assert!(listed.contains(&pulled.trim()[..12]), "{listed}");
}

#[test]
fn with_signatures_brings_sig_tags_and_referrers_and_verify_accepts_the_bundle() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let l = images();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let key = SigningKey::new(env.path(), "cosign");
    // The amd64 image is signed under the name the index will have (its payload names
    // HOST/proj/multi:v1), as a signer of each platform does.
    push(&reg, l, "amd64", "proj/multi:v1");
    sign(&reg, "proj/multi:v1", &key);
    push(&reg, l, "app1", "proj/app1:v1");
    push(&reg, l, "multi", "proj/multi:v1");
    push(&reg, l, "app2", "proj/app2:v1");
    let app1 = remote_digest(&reg, "proj/app1:v1");
    let multi = remote_digest(&reg, "proj/multi:v1");
    let amd64 = entry(l, "amd64")["digest"].as_str().unwrap().to_string();
    let arm64 = entry(l, "arm64")["digest"].as_str().unwrap().to_string();
    sign(&reg, "proj/app1:v1", &key);
    sign(&reg, "proj/multi:v1", &key);
    let tag = |d: &str| d.replacen(':', "-", 1);

    // A referrer of app1 by the referrers tag schema (what oras writes where the registry has no
    // referrers API): an index under the `sha256-<hex>` tag listing an artifact, here the .sig
    // manifest itself (without an `artifactType`, which skopeo 1.9 cannot copy unchanged).
    let refl = env.path().join("referrers");
    let sig_tag = format!("{}.sig", tag(&app1));
    run_ok(
        skopeo_cmd()
            .args([
                "copy",
                "--preserve-digests",
                "--src-creds",
                &reg.creds(),
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}/proj/app1:{sig_tag}", reg.host))
            .arg(format!("oci:{}:sig", refl.display())),
    );
    let sig = entry(&refl, "sig");
    let listing = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": sig["mediaType"], "digest": sig["digest"], "size": sig["size"]}]})).unwrap();
    add_entry(
        &refl,
        "listing",
        "application/vnd.oci.image.index.v1+json",
        &listing,
        None,
    );
    push(&reg, &refl, "listing", &format!("proj/app1:{}", tag(&app1)));

    // The references come on stdin; proj/app2 has no signature.
    let list = "proj/app1:v1\nproj/multi:v1\nproj/app2:v1\n";
    let out = artifacts(
        &env,
        &[
            "--format",
            "json",
            "save",
            "--with-signatures",
            "bundle",
            "--from-file",
            "-",
        ],
        list.as_bytes(),
    );
    let report = ok_json(&out);
    let bundle = env.path().join("bundle");
    check_blobs(&bundle);
    let images = report["images"].as_array().unwrap();
    assert_eq!(
        images[0]["signatures"],
        json!([format!("{}.sig", tag(&app1))])
    );
    assert_eq!(images[0]["referrers"], 1, "{report}");
    assert_eq!(
        images[1]["signatures"],
        json!([
            format!("{}.sig", tag(&multi)),
            format!("{}.sig", tag(&amd64))
        ])
    );
    assert_eq!(images[2]["signatures"], json!([]));
    let names = ref_names(&bundle);
    for n in [
        format!("proj/app1:{}.sig", tag(&app1)),
        format!("proj/app1:{}", tag(&app1)),
        format!("proj/multi:{}.sig", tag(&multi)),
        format!("proj/multi:{}.sig", tag(&amd64)),
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains(&tag(&arm64))), "{names:?}");
    // The referrers API was asked first (Distribution 2.8 answers 404), then the tag schema.
    assert!(
        reg.log()
            .contains(&format!("/v2/proj/app1/referrers/{app1}")),
        "{}",
        reg.log()
    );
    // Saved signature manifests keep their bytes.
    let saved_sig = blob_path(&bundle, sig["digest"].as_str().unwrap());
    assert_eq!(
        fs::read(saved_sig).unwrap(),
        remote_raw(&reg, &format!("proj/app1:{sig_tag}"))
    );

    let pubkey = key.public.to_str().unwrap();
    let verify = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "--format",
            "json",
            "verify",
            "bundle",
            "--image-name",
            name,
            "--key",
            pubkey,
        ];
        args.extend_from_slice(extra);
        let out = artifacts(&env, &args, b"");
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (out.status.success(), v)
    };
    let (accepted, v) = verify("proj/app1:v1", &[]);
    assert!(accepted, "{v}");
    let (accepted, v) = verify("proj/multi:v1", &["--all-platforms"]);
    assert!(!accepted, "arm64 is unsigned: {v}");
    let verdicts: Vec<(String, bool)> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["digest"].as_str().unwrap().to_string(),
                x["verified"] == true,
            )
        })
        .collect();
    assert_eq!(verdicts, [(multi, true), (amd64, true), (arm64, false)]);
    let (accepted, _) = verify("proj/app2:v1", &[]);
    assert!(!accepted, "proj/app2 is unsigned");

    // The saved images are the rows of a projection.
    let out = artifacts(
        &env,
        &[
            "--format",
            "value(name,digest)",
            "save",
            "again",
            "proj/app2:v1",
        ],
        b"",
    );
    let app2 = remote_digest(&reg, "proj/app2:v1");
    assert_eq!(ok(&out), format!("proj/app2:v1\t{app2}\n"));

    // The other side of the air gap: `load` pushes the saved bundle, signatures verified first,
    // into another registry, every image, index and signature at its digest.
    let other = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    login(&mut env, &other);
    let out = artifacts(
        &env,
        &[
            "--format",
            "json",
            "load",
            "bundle",
            &other.host,
            "--verify",
            "--key",
            pubkey,
            "--ref",
            "proj/app1:*",
            "--quiet",
        ],
        b"",
    );
    let loaded = ok_json(&out);
    let refs = loaded["refs"].as_array().unwrap();
    assert!(refs.iter().all(|r| r["status"] == "pushed"), "{loaded}");
    assert!(
        refs.iter().any(|r| r["reference"] == "proj/app1:v1"),
        "{loaded}"
    );
    let sig = format!("proj/app1:{}.sig", app1.replace(':', "-"));
    assert!(
        refs.iter().any(|r| r["reference"] == sig.as_str()),
        "{loaded}"
    );
    for r in refs {
        let reference = r["reference"].as_str().unwrap();
        assert_eq!(
            remote_digest(&other, reference),
            remote_digest(&reg, reference)
        );
    }
}

/// A registry with the OCI 1.1 referrers API: Distribution 2.8 has none, so the proxy routes
/// the API request to a tag holding the listing (an index, as the API answers), and the real
/// registry serves it.
#[test]
fn referrers_from_the_api_are_stored_by_digest() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let l = images();
    push(&reg, l, "app1", "proj/app1:v1");
    let app1 = remote_digest(&reg, "proj/app1:v1");
    let env = TestEnv::new();
    let refl = env.path().join("referrers");
    run_ok(
        skopeo_cmd()
            .args(["copy", "--preserve-digests"])
            .arg(format!("oci:{}:app2", l.display()))
            .arg(format!("oci:{}:app2", refl.display())),
    );
    let referrer = entry(&refl, "app2");
    let listing = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": referrer["mediaType"], "digest": referrer["digest"],
            "size": referrer["size"]}]}))
    .unwrap();
    add_entry(
        &refl,
        "listing",
        "application/vnd.oci.image.index.v1+json",
        &listing,
        None,
    );
    push(&reg, &refl, "listing", "proj/app1:listing");
    let proxy = Proxy::start(&reg.host);
    proxy.rewrite_target(
        &format!("/v2/proj/app1/referrers/{app1}"),
        "/v2/proj/app1/manifests/listing",
    );

    let mut c = env.cmd(&artifacts_exe());
    c.args(["--format", "json", "save", "--with-signatures", "bundle"])
        .arg(format!("{}/proj/app1:v1", proxy.host))
        .args(["--username", &reg.username, "--password-stdin"]);
    let report = ok_json(&run_timed(c, reg.password.as_bytes(), COMMAND_TIMEOUT));
    assert_eq!(report["images"][0]["referrers"], 1, "{report}");
    let bundle = env.path().join("bundle");
    let blobs = check_blobs(&bundle);
    let index = read_json(&bundle.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "the image and its referrer: {index}");
    assert_eq!(entries[1]["digest"], referrer["digest"]);
    assert!(
        entries[1]["annotations"].get(REF_NAME).is_none(),
        "stored by digest: {index}"
    );
    let m = read_json(&blob_path(&bundle, referrer["digest"].as_str().unwrap()));
    for d in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
        assert!(blobs.contains(d["digest"].as_str().unwrap()), "{d}");
    }
    let tag_schema = format!("/manifests/{}", app1.replacen(':', "-", 1));
    assert!(
        !proxy
            .requests()
            .iter()
            .any(|r| r.target.ends_with(&tag_schema)),
        "no fallback to the tag schema when the API answers"
    );
}

/// Runs `save` of the big image and app1 through `proxy` (which cuts every connection after
/// 1 MiB, so the big layer keeps retrying) and kills it once its `.partial` holds bytes.
fn killed_save(env: &TestEnv, reg: &Registry, proxy: &Proxy, refs: &[String]) -> u64 {
    let big = biggest_layer("big");
    let partial = env
        .path()
        .join("bundle/blobs/sha256")
        .join(format!("{}.partial", big.trim_start_matches("sha256:")));
    proxy.cut_after(Some(1 << 20));
    let mut c = env.cmd(&artifacts_exe());
    c.args(["save", "bundle"])
        .args(refs)
        .args(["--username", &reg.username, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(reg.password.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = loop {
        let len = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            break len;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the save ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no partial blob appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.cut_after(None);
    kept
}

#[test]
fn a_save_killed_mid_way_resumes_and_every_digest_is_right() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let l = images();
    push(&reg, l, "big", "proj/big:v1");
    push(&reg, l, "app1", "proj/app1:v1");
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let refs = [
        format!("{}/proj/app1:v1", proxy.host),
        format!("{}/proj/big:v1", proxy.host),
    ];
    let kept = killed_save(&env, &reg, &proxy, &refs);
    let bundle = env.path().join("bundle");
    assert!(
        bundle.join(PULL_MARKER).exists(),
        "the killed save left its marker"
    );
    assert!(
        !bundle.join("index.json").exists(),
        "no index.json before the end"
    );

    let mut c = env.cmd(&artifacts_exe());
    c.args(["--format", "json", "save", "bundle"])
        .args(&refs)
        .args(["--username", &reg.username, "--password-stdin"]);
    let report = ok_json(&run_timed(c, reg.password.as_bytes(), COMMAND_TIMEOUT));
    let big = biggest_layer("big");
    let starts: Vec<u64> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.ends_with(&big))
        .filter_map(|r| r.range_start())
        .collect();
    assert!(
        starts.iter().any(|s| *s >= kept),
        "the re-run resumed at or after byte {kept}: {starts:?}"
    );
    let blobs = check_blobs(&bundle);
    assert!(blobs.contains(&big));
    for (i, name) in ["proj/app1:v1", "proj/big:v1"].iter().enumerate() {
        let d = report["images"][i]["digest"].as_str().unwrap();
        assert_eq!(d, remote_digest(&reg, name));
        assert!(blobs.contains(d));
    }
    assert_eq!(ref_names(&bundle), ["proj/app1:v1", "proj/big:v1"]);
}

#[test]
fn a_blob_that_is_not_its_digest_never_gets_a_final_name() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    push(&reg, images(), "app1", "proj/app1:v1");
    // The registry's stored copy of app1's own layer is altered (same size): it now answers
    // with bytes that do not hash to the digest asked for.
    let layer = {
        let m = read_json(&blob_path(
            images(),
            entry(images(), "app1")["digest"].as_str().unwrap(),
        ));
        m["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let hex = layer.trim_start_matches("sha256:");
    let stored = reg
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = fs::read(&stored).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&stored, bytes).unwrap();

    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let out = artifacts(&env, &["save", "bundle", "proj/app1:v1"], b"");
    let line = error_line(&out);
    assert!(line.contains(hex) && line.contains("digest"), "{line}");
    let bundle = env.path().join("bundle");
    assert!(
        !blob_path(&bundle, &layer).exists(),
        "the bad blob has no final name"
    );
    assert!(!blob_path(&bundle, &layer)
        .with_extension("partial")
        .exists());
    assert!(!bundle.join("index.json").exists(), "nothing is named");
    assert!(bundle.join(PULL_MARKER).exists(), "a re-run may resume");
}

#[test]
fn clashing_names_no_references_and_a_foreign_directory_are_refused_before_any_fetch() {
    let env = TestEnv::new();
    let out = artifacts(
        &env,
        &[
            "save",
            "bundle",
            "one.invalid/proj/app:1",
            "two.invalid/proj/app:1",
        ],
        b"",
    );
    let line = error_line(&out);
    assert!(
        line.contains("one.invalid/proj/app:1")
            && line.contains("two.invalid/proj/app:1")
            && line.contains("proj/app:1"),
        "{line}"
    );
    assert!(!env.path().join("bundle").exists());
    let out = artifacts(&env, &["save", "bundle"], b"");
    assert!(
        error_line(&out).contains("no images to save"),
        "{}",
        stderr(&out)
    );
}
