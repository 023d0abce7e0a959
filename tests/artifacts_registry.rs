//! The `gdcloud-artifacts` binary against real registries: `pull` of a single manifest, of a whole
//! multi-platform index and of one platform of it (`--single-manifest-repo --platform`), checked
//! blob by blob and read back by skopeo, umoci and podman; a non-empty DESTINATION refused
//! untouched; a pull cut off by a flaky network (a TCP proxy of ours) leaving `.partial` blobs and
//! resuming with HTTP `Range`; `push` from an OCI layout, a docker-archive and an oci-archive,
//! with skipped, mounted and chunked blobs, read back by skopeo and podman with the same digests;
//! credentials from our helper and from `--password-stdin`, token auth, TLS with `--ca-cert-path`,
//! and the one-line errors (401, unknown tag, missing CA); `list-versions` on a plain Distribution
//! registry (tags ordered by the image config's `created`, cosign tags hidden).
//!
//! Every test runs the real binaries (ours, skopeo, umoci, podman) against its own real
//! Distribution registry (`tests/util/registry.rs`) on a random loopback port, in its own private
//! HOME/DOCKER_CONFIG (`tests/util/env.rs`), so tests run in parallel; a missing tool fails the
//! test with a message naming it.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use util::env::*;
use util::image::{podman, skopeo_cmd, tiny_image_layout, TAG};
use util::proxy::Proxy;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

/// Longest any one command may run before the test fails (a hung command must not hang the suite).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The marker an interrupted pull leaves in its destination.
const PULL_MARKER: &str = ".gdcloud-pull-incomplete";
/// The ref-name annotation of an OCI layout's index.json.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Size of the random file in the large test image's only layer.
const BIG_FILE_SIZE: usize = 16 << 20;
/// Where the proxy cuts connections in the interrupted-pull tests: far less than the large layer,
/// so that the product's own retries cannot finish it.
const CUT_AFTER: u64 = 1 << 20;

// ------------------------------------------------------------------------------------ running

/// Our plugin binary, next to the helper cargo built.
fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built in {}: run `cargo build --workspace` first",
        exe.parent().unwrap().display()
    );
    exe.to_str().expect("UTF-8 target path").to_string()
}

/// Runs `gdcloud-artifacts ARGS` in `env` with `stdin`, bounded by [`COMMAND_TIMEOUT`].
fn artifacts_with_stdin(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = env.cmd(&artifacts_exe());
    c.args(args);
    run_timed(c, stdin, COMMAND_TIMEOUT)
}

fn artifacts(env: &TestEnv, args: &[&str]) -> Output {
    artifacts_with_stdin(env, args, b"")
}

/// Asserts success and parses stdout as JSON.
#[track_caller]
fn ok_json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{text}"))
}

// ----------------------------------------------------------------------- registries and logins

fn htpasswd_registry() -> Registry {
    Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false))
}

/// Logs `env` in to `reg` the gdcloud way: `configure-docker` points Docker's `credHelpers` at our
/// helper, and the registry password is stored in the helper (file store), as `docker login` would.
fn login(env: &mut TestEnv, reg: &Registry) {
    login_as(env, reg, &reg.password.clone());
}

fn login_as(env: &mut TestEnv, reg: &Registry, password: &str) {
    if !env
        .vars
        .iter()
        .any(|(k, _)| k == "GDCLOUD_AUTH_CREDENTIAL_STORE")
    {
        env.vars
            .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    }
    ok(&env.run(AUTH, &["configure-docker", "--registries", &reg.host], b""));
    let msg = json!({"ServerURL": reg.host, "Username": reg.username, "Secret": password});
    ok(&env.helper("store", &msg.to_string()));
}

// ------------------------------------------------------------------------------------ skopeo

fn oci_ref(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}

/// `skopeo copy [extra] SRC docker://HOST/REFERENCE` with the registry's user.
fn skopeo_push(reg: &Registry, src: &str, reference: &str, extra: &[&str]) {
    run_ok(
        skopeo_cmd()
            .arg("copy")
            .args(extra)
            .args(["--dest-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("dest-"))
            .arg(src)
            .arg(format!("docker://{}/{reference}", reg.host)),
    );
}

/// `skopeo copy docker://HOST/REFERENCE DEST` with the registry's user.
fn skopeo_pull(reg: &Registry, reference: &str, dest: &str) {
    run_ok(
        skopeo_cmd()
            .arg("copy")
            .args(["--src-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("src-"))
            .arg(format!("docker://{}/{reference}", reg.host))
            .arg(dest),
    );
}

/// The exact manifest (or index) bytes the registry serves for `reference`.
fn remote_raw(reg: &Registry, reference: &str) -> Vec<u8> {
    run_ok(
        skopeo_cmd()
            .args(["inspect", "--raw", "--creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag(""))
            .arg(format!("docker://{}/{reference}", reg.host)),
    )
}

/// The digest of what the registry serves for `reference`, computed from the bytes.
fn remote_digest(reg: &Registry, reference: &str) -> String {
    format!("sha256:{}", sha256_hex(&remote_raw(reg, reference)))
}

/// The image config the registry serves for `reference`.
fn remote_config(reg: &Registry, reference: &str) -> Value {
    let raw = run_ok(
        skopeo_cmd()
            .args(["inspect", "--config", "--raw", "--creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag(""))
            .arg(format!("docker://{}/{reference}", reg.host)),
    );
    serde_json::from_slice(&raw).expect("config JSON")
}

/// `skopeo inspect TRANSPORT:REF` (a local layout or archive) as JSON.
fn skopeo_inspect_local(image: &str) -> Value {
    serde_json::from_slice(&run_ok(skopeo_cmd().args(["inspect", image]))).expect("inspect JSON")
}

// --------------------------------------------------------------------------- podman and umoci

/// `podman pull --quiet SOURCE` → the image id it printed.
fn podman_pull(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["pull", "--quiet"];
    all.extend_from_slice(args);
    let id = ok(&podman(env, &all)).trim().to_string();
    assert_eq!(id.len(), 64, "podman printed an image id: {id}");
    id
}

fn umoci(args: &[&str]) -> String {
    require_tool("umoci");
    String::from_utf8_lossy(&run_ok(Command::new("umoci").args(args))).into_owned()
}

// ------------------------------------------------------------------------------------ hashing

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ------------------------------------------------------------------------------------ layouts

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("algorithm:hex digest");
    layout.join("blobs").join(alg).join(hex)
}

/// The index.json entry named `tag`.
fn layout_entry(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"][REF_NAME] == tag)
        .unwrap_or_else(|| panic!("{} has no image named {tag}: {index}", layout.display()))
        .clone()
}

/// The manifest named `tag` in a layout.
fn layout_manifest(layout: &Path, tag: &str) -> Value {
    let entry = layout_entry(layout, tag);
    read_json(&blob_path(layout, entry["digest"].as_str().unwrap()))
}

fn is_index_type(media_type: &str) -> bool {
    media_type.contains("index") || media_type.contains("manifest.list")
}

/// Adds `desc` and everything it references to `out`, checking each file exists with its size.
fn walk_descriptor(layout: &Path, desc: &Value, out: &mut BTreeSet<String>) {
    let digest = desc["digest"]
        .as_str()
        .expect("descriptor digest")
        .to_string();
    let size = desc["size"].as_u64().expect("descriptor size");
    let path = blob_path(layout, &digest);
    let meta = fs::metadata(&path).unwrap_or_else(|e| {
        panic!(
            "{} references {digest}, missing from the layout: {e}",
            layout.display()
        )
    });
    assert_eq!(meta.len(), size, "size of {digest}");
    out.insert(digest);
    let media_type = desc["mediaType"].as_str().unwrap_or("");
    if is_index_type(media_type) {
        let index = read_json(&path);
        for child in index["manifests"].as_array().unwrap() {
            walk_descriptor(layout, child, out);
        }
    } else if media_type.contains("manifest") {
        let manifest = read_json(&path);
        walk_descriptor(layout, &manifest["config"], out);
        for layer in manifest["layers"].as_array().unwrap() {
            walk_descriptor(layout, layer, out);
        }
    }
}

/// Checks a finished layout blob by blob: no marker and no `.partial` left, every file under
/// `blobs/sha256/` hashes to its name, and the blobs are exactly those the index reaches. Returns
/// index.json and the set of digests.
#[track_caller]
fn verify_layout(layout: &Path) -> (Value, BTreeSet<String>) {
    assert!(
        !layout.join(PULL_MARKER).exists(),
        "a finished pull leaves no {PULL_MARKER}"
    );
    let version = read_json(&layout.join("oci-layout"));
    assert_eq!(version["imageLayoutVersion"], "1.0.0");
    let mut on_disk = BTreeSet::new();
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".partial"),
            "a finished pull leaves no partial blob: {name}"
        );
        assert_eq!(
            sha256_file(&e.path()),
            name,
            "blob file {name} holds other content"
        );
        on_disk.insert(format!("sha256:{name}"));
    }
    let index = read_json(&layout.join("index.json"));
    let mut reachable = BTreeSet::new();
    for d in index["manifests"].as_array().expect("index.json manifests") {
        walk_descriptor(layout, d, &mut reachable);
    }
    assert_eq!(
        reachable, on_disk,
        "the layout holds exactly the blobs its index reaches"
    );
    (index, reachable)
}

/// Every digest an image of a layout (named `tag`) reaches: itself, children, configs, layers.
fn closure(layout: &Path, tag: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk_descriptor(layout, &layout_entry(layout, tag), &mut out);
    out
}

fn ref_names(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"][REF_NAME]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Every file under `dir` (relative path → content, `None` for directories).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
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

// ------------------------------------------------------------------------------ test images

fn image_root(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create image temp dir")
        .keep()
}

/// Adds image `tag` to `layout` (created if needed): one layer holding `file` = `content`, and
/// `config` flags for `umoci config` (e.g. `--architecture arm64`).
fn umoci_image(layout: &Path, tag: &str, config: &[&str], file: &str, content: &[u8]) {
    let l = layout.display().to_string();
    if !layout.join("index.json").exists() {
        umoci(&["init", "--layout", &l]);
    }
    let image = format!("{l}:{tag}");
    umoci(&["new", "--image", &image]);
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

static MULTI: OnceLock<PathBuf> = OnceLock::new();

/// A layout with two single-platform images (`amd64`, `arm64`: linux, each with its own layer)
/// and `multi`, an OCI image index of both with their platforms; built once per process.
fn multi_layout() -> &'static Path {
    MULTI
        .get_or_init(|| {
            let layout = image_root("multi-image-").join("oci");
            for arch in ["amd64", "arm64"] {
                umoci_image(
                    &layout,
                    arch,
                    &["--architecture", arch, "--os", "linux"],
                    "arch.txt",
                    arch.as_bytes(),
                );
            }
            umoci(&["gc", "--layout", &layout.display().to_string()]);
            let index_path = layout.join("index.json");
            let mut top = read_json(&index_path);
            let children: Vec<Value> = ["amd64", "arm64"]
                .iter()
                .map(|arch| {
                    let d = layout_entry(&layout, arch);
                    json!({
                        "mediaType": d["mediaType"],
                        "digest": d["digest"],
                        "size": d["size"],
                        "platform": {"architecture": arch, "os": "linux"},
                    })
                })
                .collect();
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": children,
            }))
            .unwrap();
            let hex = sha256_hex(&index);
            fs::write(layout.join("blobs/sha256").join(&hex), &index).unwrap();
            top["manifests"].as_array_mut().unwrap().push(json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": format!("sha256:{hex}"),
                "size": index.len(),
                "annotations": {REF_NAME: "multi"},
            }));
            fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();
            layout
        })
        .as_path()
}

static BIG: OnceLock<PathBuf> = OnceLock::new();

/// A layout with image `v1` whose only layer holds [`BIG_FILE_SIZE`] random bytes (so the gzip
/// layer is as large); built once per process.
fn big_layout() -> &'static Path {
    BIG.get_or_init(|| {
        let layout = image_root("big-image-").join("oci");
        let mut random = vec![0u8; BIG_FILE_SIZE];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .expect("read /dev/urandom");
        umoci_image(&layout, "v1", &[], "random.bin", &random);
        umoci(&["gc", "--layout", &layout.display().to_string()]);
        layout
    })
    .as_path()
}

/// The largest layer of the large image: (digest, size).
fn big_layer() -> (String, u64) {
    let m = layout_manifest(big_layout(), "v1");
    let l = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()
        .clone();
    let size = l["size"].as_u64().unwrap();
    assert!(
        size >= BIG_FILE_SIZE as u64,
        "random data does not compress"
    );
    (l["digest"].as_str().unwrap().to_string(), size)
}

/// The tiny image's layout (tag [`TAG`]) and its manifest digest.
fn tiny() -> (&'static Path, String) {
    let layout = tiny_image_layout();
    let digest = layout_entry(layout, TAG)["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (layout, digest)
}

// ==================================================================================== pull

#[test]
fn pull_of_a_single_manifest_is_a_layout_skopeo_umoci_and_podman_read() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, tiny_digest) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let remote = remote_digest(&reg, "proj/app:v1");
    assert_eq!(remote, tiny_digest, "skopeo pushed the manifest unchanged");

    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/app:v1", reg.host);
    let out = artifacts(&env, &["pull", &source, "pulled"]);
    assert_eq!(
        ok(&out),
        format!("{source} {remote}\n"),
        "stdout is the one result line: REFERENCE DIGEST"
    );

    let dest = env.path().join("pulled");
    let (index, blobs) = verify_layout(&dest);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], remote.as_str());
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(ref_names(&index), ["v1"]);
    assert_eq!(
        blobs,
        closure(tiny_layout, TAG),
        "manifest, config and layer of the image, nothing else"
    );

    let inspect = skopeo_inspect_local(&oci_ref(&dest, "v1"));
    assert_eq!(inspect["Digest"], remote.as_str());
    assert_eq!(
        umoci(&["ls", "--layout", &dest.display().to_string()]),
        "v1\n"
    );
    umoci(&["stat", "--image", &format!("{}:v1", dest.display())]);
    let config = layout_manifest(&dest, "v1")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let id = podman_pull(&env, &["oci:pulled:v1"]);
    assert_eq!(
        format!("sha256:{id}"),
        config,
        "podman's image id is the config digest"
    );
}

#[test]
fn pull_of_a_multi_platform_index_takes_every_child_manifest_and_blob() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let multi = multi_layout();
    skopeo_push(
        &reg,
        &oci_ref(multi, "multi"),
        "proj/multi:v1",
        &["--all", "--format", "oci"],
    );
    let remote = remote_digest(&reg, "proj/multi:v1");
    assert_eq!(remote, layout_entry(multi, "multi")["digest"]);

    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/multi:v1", reg.host);
    let report = ok_json(&artifacts(
        &env,
        &[
            "--format",
            "json",
            "pull",
            &source,
            "multi",
            "--concurrency",
            "1",
        ],
    ));
    assert_eq!(report["digest"], remote.as_str(), "{report}");
    assert_eq!(
        report["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        report["manifests"], 3,
        "the index and its two images: {report}"
    );
    assert_eq!(report["blobs"], 4, "two configs and two layers: {report}");

    let dest = env.path().join("multi");
    let (index, blobs) = verify_layout(&dest);
    assert_eq!(ref_names(&index), ["v1"]);
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], remote.as_str());
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        blobs,
        closure(multi, "multi"),
        "every child manifest and blob"
    );
    assert_eq!(blobs.len(), 7);

    skopeo_inspect_local(&oci_ref(&dest, "v1"));
    assert_eq!(
        umoci(&["ls", "--layout", &dest.display().to_string()]),
        "v1\n"
    );
    podman_pull(&env, &["oci:multi:v1"]);

    // The pulled index pushes back whole, byte for byte, its blobs mounted from where they came.
    let copy = format!("{}/proj/multi-copy:v1", reg.host);
    let report = ok_json(&artifacts(
        &env,
        &["--format", "json", "push", "multi", &copy],
    ));
    assert_eq!(report["digest"], remote.as_str(), "{report}");
    assert_eq!(report["blobs_mounted"], 4, "{report}");
    assert_eq!(remote_digest(&reg, "proj/multi-copy:v1"), remote);
    for arch in ["amd64", "arm64"] {
        let child = layout_entry(multi, arch)["digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            remote_digest(&reg, &format!("proj/multi-copy@{child}")),
            child
        );
    }
}

#[test]
fn pull_single_manifest_repo_with_platform_takes_only_that_image() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let multi = multi_layout();
    skopeo_push(
        &reg,
        &oci_ref(multi, "multi"),
        "proj/multi:v1",
        &["--all", "--format", "oci"],
    );
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/multi:v1", reg.host);
    let arm = layout_entry(multi, "arm64")["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let out = artifacts(
        &env,
        &[
            "pull",
            "--single-manifest-repo",
            "--platform",
            "linux/arm64",
            &source,
            "arm",
        ],
    );
    assert_eq!(ok(&out), format!("{source} {arm}\n"));
    let dest = env.path().join("arm");
    let (index, blobs) = verify_layout(&dest);
    assert_eq!(ref_names(&index), ["v1"]);
    assert_eq!(index["manifests"][0]["digest"], arm.as_str());
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        blobs,
        closure(multi, "arm64"),
        "only the arm64 image: no index, no amd64 manifest, config or layer"
    );
    let inspect = skopeo_inspect_local(&oci_ref(&dest, "v1"));
    assert_eq!(inspect["Architecture"], "arm64", "{inspect}");
    assert_eq!(inspect["Digest"], arm.as_str());

    // A platform the index does not have: named, with what it has.
    let o = artifacts(
        &env,
        &[
            "pull",
            "--single-manifest-repo",
            "--platform",
            "linux/s390x",
            &source,
            "s390x",
        ],
    );
    let e = error_line(&o);
    assert!(e.contains("linux/s390x"), "{e}");
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64"),
        "{e}"
    );

    // A single image of another platform than asked: said so, with what it is.
    skopeo_push(&reg, &oci_ref(multi, "arm64"), "proj/arm-only:v1", &[]);
    let o = artifacts(
        &env,
        &[
            "pull",
            "--single-manifest-repo",
            "--platform",
            "linux/amd64",
            &format!("{}/proj/arm-only:v1", reg.host),
            "amd",
        ],
    );
    let e = error_line(&o);
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64"),
        "{e}"
    );
}

#[test]
fn pull_single_manifest_repo_of_an_index_without_platform_is_a_clear_error() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    skopeo_push(
        &reg,
        &oci_ref(multi_layout(), "multi"),
        "proj/multi:v1",
        &["--all", "--format", "oci"],
    );
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/multi:v1", reg.host);
    let o = artifacts(&env, &["pull", "--single-manifest-repo", &source, "one"]);
    let e = error_line(&o);
    assert!(e.contains(&source), "names the reference: {e}");
    assert!(e.contains("index"), "says it is an index: {e}");
    assert!(e.contains("--platform"), "says what to do: {e}");
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64"),
        "lists the platforms: {e}"
    );
    let dest = env.path().join("one");
    assert!(
        !dest.join("index.json").exists(),
        "nothing was pulled into {}",
        dest.display()
    );
}

#[test]
fn a_pull_that_fails_before_downloading_leaves_the_destination_reusable() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, tiny_digest) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let typo = format!("{}/proj/app:v1.0", reg.host);
    let right = format!("{}/proj/app:v1", reg.host);

    // A mistyped tag into an absent directory, then into the operator's empty one.
    let e = error_line(&artifacts(&env, &["pull", &typo, "absent"]));
    assert!(e.contains("manifest unknown: proj/app:v1.0"), "{e}");
    let given = env.path().join("given");
    fs::create_dir(&given).unwrap();
    error_line(&artifacts(&env, &["pull", &typo, "given"]));

    // The corrected command, into the same directories, must work.
    for dest in ["absent", "given"] {
        let o = artifacts(&env, &["pull", &right, dest]);
        assert!(
            o.status.success(),
            "after a pull of {typo} failed (nothing downloaded), `pull {right} {dest}` is refused: \
             {}\n{dest} holds: {:?}",
            stderr(&o),
            fs::read_dir(env.path().join(dest))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
        assert_eq!(stdout(&o), format!("{right} {tiny_digest}\n"));
        verify_layout(&env.path().join(dest));
    }
}

#[test]
fn pull_refuses_a_non_empty_destination_and_leaves_it_untouched() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/app:v1", reg.host);

    // A directory holding someone's file.
    let dest = env.path().join("mine");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("notes.txt"), b"keep me\n").unwrap();
    let before = snapshot(&dest);
    let e = error_line(&artifacts(&env, &["pull", &source, "mine"]));
    assert!(e.contains("not empty"), "{e}");
    assert!(e.contains("mine"), "names the destination: {e}");
    assert_eq!(snapshot(&dest), before, "nothing added, nothing changed");

    // A file.
    let file = env.path().join("file.tar");
    fs::write(&file, b"not a directory").unwrap();
    let e = error_line(&artifacts(&env, &["pull", &source, "file.tar"]));
    assert!(e.contains("file.tar"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");

    // A finished pull is not reopened either.
    ok(&artifacts(&env, &["pull", &source, "done"]));
    let done = env.path().join("done");
    let before = snapshot(&done);
    let e = error_line(&artifacts(&env, &["pull", &source, "done"]));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(snapshot(&done), before);

    // An empty directory is fine.
    fs::create_dir(env.path().join("empty")).unwrap();
    ok(&artifacts(&env, &["pull", &source, "empty"]));
    verify_layout(&env.path().join("empty"));
}

/// Pulls the large image through `proxy` (`--format json`, credentials on stdin).
fn pull_big_through(env: &TestEnv, reg: &Registry, proxy: &Proxy) -> Output {
    let source = format!("{}/proj/big:v1", proxy.host);
    artifacts_with_stdin(
        env,
        &[
            "--format",
            "json",
            "pull",
            &source,
            "big",
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        reg.password.as_bytes(),
    )
}

/// [`pull_big_through`] with every connection cut after [`CUT_AFTER`] bytes of response.
fn pull_big_through_cutting_proxy(env: &TestEnv, reg: &Registry, proxy: &Proxy) -> Output {
    proxy.cut_after(Some(CUT_AFTER));
    let o = pull_big_through(env, reg, proxy);
    proxy.cut_after(None);
    o
}

/// Runs the cut pull, asserts it failed (a 1 MiB cut cannot finish a 16 MiB layer in the
/// product's few retries) and returns the bytes kept in the layer's `.partial`.
fn interrupted_big_pull(env: &TestEnv, reg: &Registry, proxy: &Proxy) -> u64 {
    let first = pull_big_through_cutting_proxy(env, reg, proxy);
    assert!(
        !first.status.success(),
        "a pull cut every {CUT_AFTER} bytes cannot finish a {BIG_FILE_SIZE}-byte layer: {}",
        stderr(&first)
    );
    let (layer, _) = big_layer();
    let partial = env
        .path()
        .join("big/blobs/sha256")
        .join(format!("{}.partial", layer.trim_start_matches("sha256:")));
    fs::metadata(&partial)
        .unwrap_or_else(|e| panic!("{} is kept: {e}", partial.display()))
        .len()
}

/// GET requests for `digest` that asked for `Range: bytes=N-`, with their N.
fn range_starts(proxy: &Proxy, digest: &str) -> Vec<u64> {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.ends_with(digest))
        .filter_map(|r| r.range_start())
        .collect()
}

#[test]
fn interrupted_pull_leaves_partial_blobs_and_resumes_with_range() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    skopeo_push(&reg, &oci_ref(big_layout(), "v1"), "proj/big:v1", &[]);
    let (layer, layer_size) = big_layer();
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let dest = env.path().join("big");

    let first = pull_big_through_cutting_proxy(&env, &reg, &proxy);
    assert!(
        proxy.cuts() > 0,
        "the proxy cut connections:\n{}",
        proxy.log()
    );
    if first.status.success() {
        // Resumed internally, within one run: it must have used Range to do so.
        eprintln!("note: the cut pull succeeded by resuming internally");
        let starts = range_starts(&proxy, &layer);
        assert!(
            starts.iter().any(|&n| n > 0),
            "the pull continued with Range: bytes=N- (N>0); requests:\n{}",
            proxy.log()
        );
        verify_layout(&dest);
        return;
    }
    let e = error_line(&first);
    assert!(e.contains(&layer), "names the blob: {e}");
    assert!(e.contains("again"), "says a re-run resumes: {e}");
    // Internal retries already continued where each connection stopped.
    assert!(
        range_starts(&proxy, &layer).iter().any(|&n| n > 0),
        "retries within the run used Range; requests:\n{}",
        proxy.log()
    );
    assert!(dest.join(PULL_MARKER).is_file(), "the marker stays");
    let hex = layer.trim_start_matches("sha256:");
    let partial = dest.join("blobs/sha256").join(format!("{hex}.partial"));
    let kept = fs::metadata(&partial)
        .unwrap_or_else(|e| panic!("{} is kept: {e}", partial.display()))
        .len();
    assert!(kept > 0 && kept < layer_size, "partial holds {kept} bytes");
    assert!(
        !dest.join("blobs/sha256").join(hex).exists(),
        "an incomplete blob never gets its final name"
    );
    assert!(
        !dest.join("index.json").exists(),
        "no index before every blob is there"
    );

    // Another reference is not pulled into the interrupted directory.
    let before = snapshot(&dest);
    let other = format!("{}/proj/other:v1", reg.host);
    let e = error_line(&artifacts_with_stdin(
        &env,
        &[
            "pull",
            &other,
            "big",
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        reg.password.as_bytes(),
    ));
    assert!(e.contains("interrupted pull"), "{e}");
    assert_eq!(snapshot(&dest), before, "refused untouched");

    // The same pull again, on a healthy network: it continues from the partial blob.
    proxy.clear_requests();
    let report = ok_json(&pull_big_through(&env, &reg, &proxy));
    assert!(
        range_starts(&proxy, &layer).contains(&kept),
        "the re-run asked for Range: bytes={kept}-; requests:\n{}",
        proxy.log()
    );
    assert_eq!(
        report["bytes_downloaded"].as_u64(),
        Some(layer_size - kept),
        "only the missing bytes were downloaded: {report}"
    );
    let (index, blobs) = verify_layout(&dest);
    assert_eq!(ref_names(&index), ["v1"]);
    assert!(blobs.contains(&layer));
    assert_eq!(sha256_file(&dest.join("blobs/sha256").join(hex)), hex);
    skopeo_inspect_local(&oci_ref(&dest, "v1"));
}

#[test]
fn corrupted_partial_blob_never_lands_under_its_name() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    skopeo_push(&reg, &oci_ref(big_layout(), "v1"), "proj/big:v1", &[]);
    let (layer, _) = big_layer();
    let hex = layer.trim_start_matches("sha256:").to_string();
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let dest = env.path().join("big");
    interrupted_big_pull(&env, &reg, &proxy);

    // Damage what was downloaded so far (same length: only the hash can tell).
    let partial = dest.join("blobs/sha256").join(format!("{hex}.partial"));
    let mut bytes = fs::read(&partial).unwrap();
    assert!(!bytes.is_empty());
    for b in bytes.iter_mut().take(4096) {
        *b = !*b;
    }
    fs::write(&partial, &bytes).unwrap();

    let final_blob = dest.join("blobs/sha256").join(&hex);
    let second = pull_big_through(&env, &reg, &proxy);
    if second.status.success() {
        eprintln!("note: the corrupted partial was detected and downloaded again in one run");
    } else {
        let e = error_line(&second);
        eprintln!("note: the corrupted partial failed one run: {e}");
        assert!(e.contains("digest"), "says the content did not match: {e}");
        assert!(
            !final_blob.exists(),
            "a blob whose digest did not match never gets its name"
        );
        ok(&pull_big_through(&env, &reg, &proxy));
    }
    verify_layout(&dest);
    assert_eq!(sha256_file(&final_blob), hex);
}

#[test]
fn resume_from_a_registry_that_ignores_range_starts_the_blob_over() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    skopeo_push(&reg, &oci_ref(big_layout(), "v1"), "proj/big:v1", &[]);
    let (layer, layer_size) = big_layer();
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let kept = interrupted_big_pull(&env, &reg, &proxy);

    // A middlebox that drops Range: the registry answers 200 with the whole blob.
    proxy.drop_request_headers(&["range"]);
    proxy.clear_requests();
    let report = ok_json(&pull_big_through(&env, &reg, &proxy));
    assert!(
        range_starts(&proxy, &layer).contains(&kept),
        "the client asked for Range: bytes={kept}-; requests:\n{}",
        proxy.log()
    );
    assert_eq!(
        report["bytes_downloaded"].as_u64(),
        Some(layer_size),
        "the whole layer came again and replaced the partial bytes: {report}"
    );
    let dest = env.path().join("big");
    let (_, blobs) = verify_layout(&dest);
    assert!(blobs.contains(&layer));
}

#[test]
fn pull_of_a_docker_format_image_is_a_layout_skopeo_umoci_and_podman_read() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    // What `docker push` makes: a Docker schema 2 manifest.
    skopeo_push(
        &reg,
        &oci_ref(tiny_layout, TAG),
        "proj/docker-made:v1",
        &["--format", "v2s2"],
    );
    let remote = remote_digest(&reg, "proj/docker-made:v1");
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/docker-made:v1", reg.host);
    ok(&artifacts(&env, &["pull", &source, "dockerimg"]));
    let dest = env.path().join("dockerimg");
    let (index, _) = verify_layout(&dest);
    assert_eq!(ref_names(&index), ["v1"]);

    // The layout must be one the OCI tools read; they look up OCI descriptors only.
    let inspect = skopeo_cmd()
        .args(["inspect", &oci_ref(&dest, "v1")])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo cannot read the pulled layout of {source} ({remote}); index.json: {index}\n{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    umoci(&["stat", "--image", &format!("{}:v1", dest.display())]);
    podman_pull(&env, &["oci:dockerimg:v1"]);
}

// ==================================================================================== push

#[test]
fn push_of_a_umoci_layout_keeps_its_digest_and_is_pullable_by_skopeo_and_podman() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, tiny_digest) = tiny();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let dest = format!("{}/proj/from-umoci:v1", reg.host);
    let out = artifacts(&env, &["push", &tiny_layout.display().to_string(), &dest]);
    assert_eq!(ok(&out), format!("{dest} {tiny_digest}\n"));
    assert_eq!(
        remote_raw(&reg, "proj/from-umoci:v1"),
        fs::read(blob_path(tiny_layout, &tiny_digest)).unwrap(),
        "the registry serves the layout's manifest byte for byte"
    );

    let copy = env.path().join("skopeo-copy");
    skopeo_pull(&reg, "proj/from-umoci:v1", &oci_ref(&copy, "v1"));
    verify_layout(&copy);
    let config = layout_manifest(tiny_layout, TAG)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let id = podman_pull(
        &env,
        &[
            "--tls-verify=false",
            "--creds",
            &reg.creds(),
            &format!("{}/proj/from-umoci:v1", reg.host),
        ],
    );
    assert_eq!(format!("sha256:{id}"), config);
}

#[test]
fn push_of_a_corrupt_layout_blob_is_refused_and_the_local_file_named() {
    // The upload does not hash the layout's blobs itself (the registry must, and does); when the
    // registry refuses one, the local copy is checked and named.
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let layout = env.path().join("corrupt-layout");
    copy_dir(tiny_layout, &layout);
    let layer = layout_manifest(&layout, TAG)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = blob_path(&layout, &layer);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();

    let dest = format!("{}/proj/corrupt:v1", reg.host);
    let out = artifacts(&env, &["push", &layout.display().to_string(), &dest]);
    let msg = error_line(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains(&layer) && msg.contains("is corrupt"),
        "the error does not name the corrupt local blob: {msg}"
    );
    let head = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &reg.creds(),
        ])
        .arg(format!("http://{}/v2/proj/corrupt/manifests/v1", reg.host))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&head.stdout),
        "404",
        "the tag was pushed"
    );
}

#[test]
fn push_of_a_layout_with_several_images_picks_one_by_name() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let multi = multi_layout();
    let l = multi.display().to_string();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let digest = |tag: &str| {
        layout_entry(multi, tag)["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // No name: the destination's tag picks the image of that name.
    let dest = format!("{}/proj/pick:arm64", reg.host);
    assert_eq!(
        ok(&artifacts(&env, &["push", &l, &dest])),
        format!("{dest} {}\n", digest("arm64"))
    );
    assert_eq!(remote_digest(&reg, "proj/pick:arm64"), digest("arm64"));

    // LAYOUT:NAME picks the index; children go with it.
    let dest = format!("{}/proj/pick:all", reg.host);
    assert_eq!(
        ok(&artifacts(&env, &["push", &format!("{l}:multi"), &dest])),
        format!("{dest} {}\n", digest("multi"))
    );
    assert_eq!(remote_digest(&reg, "proj/pick:all"), digest("multi"));
    for arch in ["amd64", "arm64"] {
        let d = digest(arch);
        assert_eq!(remote_digest(&reg, &format!("proj/pick@{d}")), d);
    }

    // LAYOUT:NAME without a destination tag: the name becomes the tag.
    let dest = format!("{}/proj/named", reg.host);
    assert_eq!(
        ok(&artifacts(&env, &["push", &format!("{l}:amd64"), &dest])),
        format!("{dest}:amd64 {}\n", digest("amd64"))
    );
    assert_eq!(remote_digest(&reg, "proj/named:amd64"), digest("amd64"));

    // One platform of the index.
    let dest = format!("{}/proj/one:v1", reg.host);
    assert_eq!(
        ok(&artifacts(
            &env,
            &[
                "push",
                "--single-manifest-repo",
                "--platform",
                "linux/arm64",
                &format!("{l}:multi"),
                &dest
            ]
        )),
        format!("{dest} {}\n", digest("arm64"))
    );
    assert_eq!(remote_digest(&reg, "proj/one:v1"), digest("arm64"));
    let e = error_line(&artifacts(
        &env,
        &[
            "push",
            "--single-manifest-repo",
            &format!("{l}:multi"),
            &format!("{}/proj/one:v2", reg.host),
        ],
    ));
    assert!(e.contains("--platform"), "{e}");

    // Neither: ambiguous, with the names to choose from.
    let e = error_line(&artifacts(
        &env,
        &["push", &l, &format!("{}/proj/pick:nope", reg.host)],
    ));
    for name in ["amd64", "arm64", "multi"] {
        assert!(e.contains(name), "lists {name}: {e}");
    }
}

#[test]
fn push_of_a_docker_archive_twice_gives_the_same_digest_and_reads_back() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let tar = env.path().join("saved.tar");
    run_ok(skopeo_cmd().args([
        "copy",
        &oci_ref(tiny_layout, TAG),
        &format!("docker-archive:{}:proj/x:v1", tar.display()),
    ]));
    let tar_s = tar.display().to_string();

    let one = ok_json(&artifacts(
        &env,
        &[
            "--format",
            "json",
            "push",
            // As the archive holds them: compression has its own tests (push_compression.rs).
            "--compression",
            "none",
            &tar_s,
            &format!("{}/proj/da-one:v1", reg.host),
        ],
    ));
    let two = ok_json(&artifacts(
        &env,
        &[
            "--format",
            "json",
            "push",
            // As the archive holds them: compression has its own tests (push_compression.rs).
            "--compression",
            "none",
            &tar_s,
            &format!("{}/proj/da-two:v1", reg.host),
        ],
    ));
    assert_eq!(one["digest"], two["digest"], "same input, same manifest");
    let digest = one["digest"].as_str().unwrap().to_string();
    assert_eq!(remote_digest(&reg, "proj/da-one:v1"), digest);
    assert_eq!(remote_digest(&reg, "proj/da-two:v1"), digest);

    // Uncompressed, the layers are the archive's tars, named by the config's diff_ids.
    let manifest: Value = serde_json::from_slice(&remote_raw(&reg, "proj/da-one:v1")).unwrap();
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let config = remote_config(&reg, "proj/da-one:v1");
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(layers, diff_ids);

    let copy = env.path().join("da-copy");
    skopeo_pull(&reg, "proj/da-one:v1", &oci_ref(&copy, "v1"));
    verify_layout(&copy);
    let id = podman_pull(
        &env,
        &[
            "--tls-verify=false",
            "--creds",
            &reg.creds(),
            &format!("{}/proj/da-two:v1", reg.host),
        ],
    );
    assert_eq!(
        format!("sha256:{id}"),
        manifest["config"]["digest"].as_str().unwrap()
    );
}

#[test]
fn push_of_an_oci_archive_keeps_its_digest() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let tar = env.path().join("image.oci.tar");
    let archive = format!("oci-archive:{}", tar.display());
    run_ok(skopeo_cmd().args(["copy", &oci_ref(tiny_layout, TAG), &archive]));
    let raw = run_ok(skopeo_cmd().args(["inspect", "--raw", &archive]));
    let digest = format!("sha256:{}", sha256_hex(&raw));

    let dest = format!("{}/proj/oarch:v1", reg.host);
    let out = artifacts(&env, &["push", &tar.display().to_string(), &dest]);
    assert_eq!(ok(&out), format!("{dest} {digest}\n"));
    assert_eq!(remote_raw(&reg, "proj/oarch:v1"), raw);
    let copy = env.path().join("oarch-copy");
    skopeo_pull(&reg, "proj/oarch:v1", &oci_ref(&copy, "v1"));
    verify_layout(&copy);

    // skopeo's archive names no image and the destination no tag: pushed by digest.
    let untagged = format!("{}/proj/oarch-digest", reg.host);
    let out = artifacts(&env, &["push", &tar.display().to_string(), &untagged]);
    assert_eq!(ok(&out), format!("{untagged}@{digest} {digest}\n"));
    assert_eq!(
        remote_raw(&reg, &format!("proj/oarch-digest@{digest}")),
        raw
    );
}

#[test]
fn second_push_skips_blobs_and_push_of_a_pulled_layout_mounts_them() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, tiny_digest) = tiny();
    let l = tiny_layout.display().to_string();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let dest = format!("{}/proj/again:v1", reg.host);

    let first = ok_json(&artifacts(&env, &["--format", "json", "push", &l, &dest]));
    assert_eq!(first["blobs_uploaded"], 2, "config and layer: {first}");
    assert_eq!(first["blobs_skipped"], 0, "{first}");
    let second = ok_json(&artifacts(&env, &["--format", "json", "push", &l, &dest]));
    assert_eq!(second["blobs_skipped"], 2, "both already there: {second}");
    assert_eq!(second["blobs_uploaded"], 0, "{second}");
    assert_eq!(second["bytes_uploaded"], 0, "{second}");
    assert_eq!(second["digest"], tiny_digest.as_str());

    // A layout our pull made remembers where it came from: pushing it to another repository of
    // the same registry mounts the blobs instead of uploading them.
    ok(&artifacts(&env, &["pull", &dest, "pulled"]));
    let other = format!("{}/proj/mounted:v1", reg.host);
    let third = ok_json(&artifacts(
        &env,
        &["--format", "json", "push", "pulled", &other],
    ));
    assert!(
        third["blobs_mounted"].as_u64().unwrap() > 0,
        "blobs were mounted: {third}"
    );
    assert_eq!(third["blobs_uploaded"], 0, "{third}");
    assert_eq!(remote_digest(&reg, "proj/mounted:v1"), tiny_digest);
    let copy = env.path().join("mounted-copy");
    skopeo_pull(&reg, "proj/mounted:v1", &oci_ref(&copy, "v1"));
    verify_layout(&copy);
}

#[test]
fn push_of_a_large_blob_in_one_mib_chunks_reads_back() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let big = big_layout();
    let big_digest = layout_entry(big, "v1")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (layer, layer_size) = big_layer();
    // Through the proxy, whose log shows how the blob went up.
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let dest = format!("{}/proj/chunked:v1", proxy.host);
    let report = ok_json(&artifacts_with_stdin(
        &env,
        &[
            "--format",
            "json",
            "push",
            &big.display().to_string(),
            &dest,
            "--chunk-size-mib",
            "1",
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        reg.password.as_bytes(),
    ));
    assert_eq!(report["digest"], big_digest.as_str(), "{report}");
    assert_eq!(report["blobs_uploaded"], 2, "{report}");

    let patches: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    let chunk = 1u64 << 20;
    let expected = layer_size.div_ceil(chunk);
    assert_eq!(
        patches.len() as u64,
        expected,
        "a {layer_size}-byte layer goes up in {expected} chunks of 1 MiB; requests:\n{}",
        proxy.log()
    );
    for (i, p) in patches.iter().enumerate() {
        let start = i as u64 * chunk;
        let end = (start + chunk).min(layer_size) - 1;
        let range = p.header("content-range").unwrap_or("");
        assert!(
            range == format!("{start}-{end}") || range == format!("bytes {start}-{end}"),
            "chunk {i} has Content-Range {range:?}, expected {start}-{end}"
        );
        assert_eq!(
            p.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    assert!(
        proxy.requests().iter().any(|r| r.method == "PUT"
            && r.target
                .contains(&format!("digest={}", layer.replace(':', "%3A")))),
        "the upload was closed with PUT ?digest=; requests:\n{}",
        proxy.log()
    );

    assert_eq!(remote_digest(&reg, "proj/chunked:v1"), big_digest);
    let copy = env.path().join("chunked-copy");
    skopeo_pull(&reg, "proj/chunked:v1", &oci_ref(&copy, "v1"));
    let (_, blobs) = verify_layout(&copy);
    assert!(
        blobs.contains(&layer),
        "the layer reads back whole and intact"
    );
}

// ======================================================================= credentials and TLS

#[test]
fn token_auth_over_tls_with_ca_cert_path_and_helper_credentials() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    let (tiny_layout, tiny_digest) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let ca = reg.ca_cert.as_ref().unwrap().display().to_string();
    let source = format!("{}/proj/app:v1", reg.host);

    let out = artifacts(&env, &["pull", "--ca-cert-path", &ca, &source, "pulled"]);
    assert_eq!(ok(&out), format!("{source} {tiny_digest}\n"));
    verify_layout(&env.path().join("pulled"));
    let dest = format!("{}/proj/copy:v1", reg.host);
    ok(&artifacts(
        &env,
        &["push", "--ca-cert-path", &ca, "pulled", &dest],
    ));
    assert_eq!(remote_digest(&reg, "proj/copy:v1"), tiny_digest);
    let ts = reg.token_server().unwrap();
    assert!(
        ts.requests()
            .iter()
            .any(|r| r.username.as_deref() == Some(reg.username.as_str()) && r.status == 200),
        "the token server saw the helper's user"
    );
}

#[test]
fn tls_registry_without_its_ca_is_a_clear_error() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, true));
    let (tiny_layout, _) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let source = format!("{}/proj/app:v1", reg.host);
    let e = error_line(&artifacts(&env, &["pull", &source, "pulled"]));
    assert!(e.contains(&reg.host), "names the registry: {e}");
    assert!(
        e.contains("certificate") || e.contains(" CA"),
        "says the certificate is not trusted: {e}"
    );
    assert!(e.contains("--ca-cert-path"), "says how to trust it: {e}");
}

#[test]
fn token_auth_credentials_from_helper_and_password_stdin_and_their_errors() {
    require_tool("skopeo");
    // TLS with verification off: this test is about credentials, the CA has its own tests.
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    let (tiny_layout, tiny_digest) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);
    let source = format!("{}/proj/app:v1", reg.host);
    let ts = reg.token_server().unwrap();

    // From our helper.
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let out = artifacts(&env, &["pull", "--insecure", &source, "helper"]);
    assert_eq!(ok(&out), format!("{source} {tiny_digest}\n"));
    verify_layout(&env.path().join("helper"));
    // Mounting asks the token server for two scopes at once.
    let copy = format!("{}/proj/copy:v1", reg.host);
    let report = ok_json(&artifacts(
        &env,
        &["--format", "json", "push", "--insecure", "helper", &copy],
    ));
    assert_eq!(report["blobs_mounted"], 2, "{report}");
    assert_eq!(remote_digest(&reg, "proj/copy:v1"), tiny_digest);

    // From --username/--password-stdin, with no Docker config at all.
    let bare = TestEnv::new();
    let before = ts.requests().len();
    let out = artifacts_with_stdin(
        &bare,
        &[
            "pull",
            "--insecure",
            &source,
            "stdin",
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        format!("{}\n", reg.password).as_bytes(),
    );
    assert_eq!(ok(&out), format!("{source} {tiny_digest}\n"));
    assert!(
        ts.requests()[before..]
            .iter()
            .any(|r| r.username.as_deref() == Some(reg.username.as_str()) && r.status == 200),
        "the token server saw the user from stdin"
    );

    // A wrong password: which credentials, and how to log in.
    let e = error_line(&artifacts_with_stdin(
        &bare,
        &[
            "pull",
            "--insecure",
            &source,
            "wrong",
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        b"not-the-password\n",
    ));
    assert!(e.contains("401"), "{e}");
    assert!(
        e.contains("--password-stdin"),
        "names the credentials tried: {e}"
    );
    assert!(e.contains("docker login"), "says how to log in: {e}");

    // No login at all.
    let e = error_line(&artifacts(&bare, &["pull", "--insecure", &source, "anon"]));
    assert!(e.contains("401"), "{e}");
    assert!(e.contains("docker login"), "says how to log in: {e}");
    assert!(e.contains("proj/app"), "names the reference: {e}");
}

#[test]
fn htpasswd_errors_name_the_reference_and_what_to_do() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let (tiny_layout, _) = tiny();
    skopeo_push(&reg, &oci_ref(tiny_layout, TAG), "proj/app:v1", &[]);

    // Wrong password in our helper.
    let mut env = TestEnv::new();
    login_as(&mut env, &reg, "wrong-password");
    let source = format!("{}/proj/app:v1", reg.host);
    let e = error_line(&artifacts(&env, &["pull", &source, "x"]));
    assert!(e.contains("401"), "{e}");
    assert!(e.contains(&source), "names the reference: {e}");
    assert!(
        e.contains("credHelpers") && e.contains("gdcloud"),
        "names the credentials tried: {e}"
    );
    assert!(
        e.contains(&format!("docker login {}", reg.host)),
        "says how to log in: {e}"
    );

    // Right password; unknown tag and unknown repository.
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    let e = error_line(&artifacts(
        &env,
        &["pull", &format!("{}/proj/app:nope", reg.host), "y"],
    ));
    assert!(e.contains("manifest unknown: proj/app:nope"), "{e}");
    let e = error_line(&artifacts(
        &env,
        &["pull", &format!("{}/proj/none:v1", reg.host), "z"],
    ));
    assert!(e.contains("manifest unknown: proj/none:v1"), "{e}");
    let e = error_line(&artifacts(
        &env,
        &["tree", &format!("{}/proj/app:nope", reg.host)],
    ));
    assert!(e.contains("manifest unknown: proj/app:nope"), "{e}");
}

// ============================================================================== list-versions

/// Pushes image `tag` of `layout` as `proj/REPO:AS`.
fn push_tag(reg: &Registry, layout: &Path, tag: &str, reference: &str) {
    skopeo_push(reg, &oci_ref(layout, tag), reference, &[]);
}

/// A copy of the tiny image's layout in `dir`, with one tag per `(tag, created)`.
fn dated_images(dir: &Path, dates: &[(&str, &str)]) -> PathBuf {
    let layout = dir.join("dated");
    copy_dir(tiny_image_layout(), &layout);
    let l = layout.display().to_string();
    for (tag, created) in dates {
        umoci(&[
            "config",
            "--image",
            &format!("{l}:{TAG}"),
            "--created",
            created,
            "--tag",
            tag,
        ]);
    }
    layout
}

#[test]
fn list_versions_orders_tags_by_image_creation_and_hides_signatures() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    // Tag names in another order than their dates, so the order can only come from `created`.
    let layout = dated_images(
        env.path(),
        &[
            ("alpha", "2026-01-03T00:00:00Z"),
            ("beta", "2026-01-01T00:00:00Z"),
            ("gamma", "2026-01-02T00:00:00Z"),
            ("signature", "2025-06-01T00:00:00Z"),
        ],
    );
    for tag in ["alpha", "beta", "gamma"] {
        push_tag(&reg, &layout, tag, &format!("proj/lv:{tag}"));
    }
    // An index is dated by its linux/amd64 image (built today, so the newest).
    let multi = multi_layout();
    skopeo_push(
        &reg,
        &oci_ref(multi, "multi"),
        "proj/lv:zeta",
        &["--all", "--format", "oci"],
    );
    let amd_config = layout_manifest(multi, "amd64")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let zeta_created = read_json(&blob_path(multi, &amd_config))["created"]
        .as_str()
        .unwrap()
        .to_string();
    let alpha = remote_digest(&reg, "proj/lv:alpha");
    let sig_tag = format!("sha256-{}.sig", alpha.trim_start_matches("sha256:"));
    push_tag(&reg, &layout, "signature", &format!("proj/lv:{sig_tag}"));
    let repo = format!("{}/proj/lv", reg.host);

    let text = ok(&artifacts(&env, &["list-versions", &repo]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let tags: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        tags,
        ["zeta", "alpha", "gamma", "beta"],
        "newest first, no .sig:\n{text}"
    );
    assert_eq!(rows[0][1], zeta_created, "{text}");
    assert_eq!(rows[1], ["alpha", "2026-01-03T00:00:00Z", alpha.as_str()]);
    for (row, tag) in rows.iter().zip(["zeta", "alpha", "gamma", "beta"]) {
        assert_eq!(row.len(), 3, "TAG<TAB>TIME<TAB>DIGEST: {row:?}");
        assert_eq!(row[2], remote_digest(&reg, &format!("proj/lv:{tag}")));
    }

    let text = ok(&artifacts(
        &env,
        &["list-versions", "--include-signatures", &repo],
    ));
    let tags: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["zeta", "alpha", "gamma", "beta", sig_tag.as_str()],
        "{text}"
    );

    assert_eq!(
        ok(&artifacts(&env, &["list-versions", "--latest", &repo])),
        "zeta\n"
    );

    let v = ok_json(&artifacts(
        &env,
        &["--format", "json", "list-versions", &repo],
    ));
    assert_eq!(v["repository"], repo.as_str());
    assert_eq!(v["source"], "registry");
    let tags: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["zeta", "alpha", "gamma", "beta"]);
    assert_eq!(v["versions"][1]["digest"], alpha.as_str());
    assert_eq!(v["versions"][1]["time"], "2026-01-03T00:00:00Z");
    let v = ok_json(&artifacts(
        &env,
        &["--format", "json", "list-versions", "--latest", &repo],
    ));
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert_eq!(v["versions"][0]["tag"], "zeta");

    // gcloud's value(): one line per version (the listing's rows are its versions).
    assert_eq!(
        ok(&artifacts(
            &env,
            &["list-versions", &repo, "--format", "value(tag)"]
        )),
        "zeta\nalpha\ngamma\nbeta\n"
    );
    assert_eq!(
        ok(&artifacts(
            &env,
            &["list-versions", "--latest", &repo, "--format", "value(tag)"]
        )),
        "zeta\n"
    );
    assert_eq!(
        ok(&artifacts(
            &env,
            &[
                "list-versions",
                &repo,
                "--format",
                "csv[no-heading](tag,time,digest)"
            ]
        ))
        .lines()
        .nth(1),
        Some(format!("alpha,2026-01-03T00:00:00Z,{alpha}").as_str())
    );

    // A tag is not a repository; an unknown repository is named.
    let e = error_line(&artifacts(
        &env,
        &["list-versions", &format!("{repo}:alpha")],
    ));
    assert!(e.contains("takes no tag"), "{e}");
    let e = error_line(&artifacts(
        &env,
        &["list-versions", &format!("{}/proj/none", reg.host)],
    ));
    assert!(e.contains("proj/none"), "{e}");
}

#[test]
fn list_versions_orders_by_the_instant_of_creation_not_its_spelling() {
    require_tool("skopeo");
    let reg = htpasswd_registry();
    let mut env = TestEnv::new();
    login(&mut env, &reg);
    // Valid RFC 3339 times as image tools write them: with a zone offset, with a fraction.
    let dates = [
        ("fraction", "2026-01-04T00:00:00.5Z"),
        ("whole", "2026-01-04T00:00:00Z"),
        ("west", "2026-01-02T22:00:00Z"),
        ("east", "2026-01-03T01:00:00+05:00"), // 2026-01-02T20:00:00Z
        ("early", "2026-01-02T00:00:00Z"),
    ];
    let layout = dated_images(env.path(), &dates);
    for (tag, _) in dates {
        push_tag(&reg, &layout, tag, &format!("proj/tz:{tag}"));
    }
    let text = ok(&artifacts(
        &env,
        &["list-versions", &format!("{}/proj/tz", reg.host)],
    ));
    let tags: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["fraction", "whole", "west", "east", "early"],
        "newest first by instant:\n{text}"
    );
}
