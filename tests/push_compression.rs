//! `gdcloud-artifacts push` compresses the plain-tar layers of its source (a `docker save`
//! tarball's, or an OCI archive's kept uncompressed) as docker and skopeo do, against a real
//! Distribution registry: the layers go up as gzip (several members for a layer over 1 MiB) or
//! zstd, smaller, with the config's diff_ids untouched; skopeo + umoci, and our own pull +
//! extract, read back the same files; a second push skips every blob and yields the same manifest
//! digest; `--compression none` keeps the old, uncompressed behaviour.
//!
//! Every test runs the real binaries (ours, skopeo, umoci) against its own registry
//! (`tests/util/registry.rs`); a missing tool fails the test with a message naming it.

use crate::util;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use util::env::*;
use util::image::skopeo_cmd;
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const TAG: &str = "v1";
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The second layer's log file: several compression chunks (1 MiB gzip, 2 MiB zstd) long.
const LOG_SIZE: usize = 5 << 20;

// ------------------------------------------------------------------------------------ fixture

/// The test image: an OCI layout (tag [`TAG`], two layers: `hello.txt`; then `data/app.log`, a
/// compressible 5 MiB) and the files it holds, path → content.
struct Image {
    layout: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        require_tool("umoci");
        let root = tempfile::Builder::new()
            .prefix("push-compression-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let layout = root.join("oci");
        let l = layout.display().to_string();
        let image = format!("{l}:{TAG}");
        let bundle = root.join("bundle");
        let b = bundle.display().to_string();
        umoci(&["init", "--layout", &l]);
        umoci(&["new", "--image", &image]);
        let mut files = BTreeMap::new();
        files.insert(
            "hello.txt".to_string(),
            b"hello, compressed world\n".to_vec(),
        );
        let mut log = Vec::with_capacity(LOG_SIZE);
        let mut x: u64 = 0x9e37_79b9;
        while log.len() < LOG_SIZE {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            log.extend_from_slice(
                format!(
                    "2026-12-03T08:{:02}:{:02}Z INFO request {} took {} ms\n",
                    (x >> 20) % 60,
                    (x >> 30) % 60,
                    x >> 44,
                    (x >> 8) % 997
                )
                .as_bytes(),
            );
        }
        files.insert("data/app.log".to_string(), log);
        for (i, (path, content)) in files.iter().enumerate() {
            umoci(&["unpack", "--rootless", "--image", &image, &b]);
            let p = bundle.join("rootfs").join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
            let note = format!("layer {i}");
            umoci(&[
                "repack",
                "--history.created_by",
                &note,
                "--image",
                &image,
                &b,
            ]);
            fs::remove_dir_all(&bundle).unwrap();
        }
        umoci(&["gc", "--layout", &l]);
        Image { layout, files }
    })
}

fn umoci(args: &[&str]) {
    run_ok(Command::new("umoci").args(args));
}

/// A `docker save`-style tarball (docker-archive: plain-tar layers) of the test image, in `dir`.
fn docker_archive(dir: &Path) -> PathBuf {
    let tar = dir.join("saved.tar");
    run_ok(skopeo_cmd().args([
        "copy",
        &format!("oci:{}:{TAG}", image().layout.display()),
        &format!("docker-archive:{}:proj/x:{TAG}", tar.display()),
    ]));
    tar
}

/// A docker-archive's entries (name → bytes) and its `manifest.json`.
fn read_archive(tar: &Path) -> (BTreeMap<String, Vec<u8>>, Value) {
    let mut entries = BTreeMap::new();
    let mut archive = tar::Archive::new(fs::File::open(tar).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        entries.insert(name, bytes);
    }
    let manifest = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    (entries, manifest)
}

/// Layers the archive holds as plain tars: (sha256 of each, total bytes), in manifest order.
fn archive_layers(tar: &Path) -> (Vec<String>, u64) {
    let (entries, manifest) = read_archive(tar);
    let mut total = 0;
    let digests = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let bytes = &entries[l.as_str().unwrap()];
            assert_ne!(
                &bytes[..2],
                &[0x1f, 0x8b],
                "the archive's layers are plain tar"
            );
            total += bytes.len() as u64;
            sha256(bytes)
        })
        .collect();
    (digests, total)
}

/// The docker-archive `tar` as an OCI layout at `dest` with plain-tar layers (as Docker ≥ 25's
/// `docker save` writes; skopeo 1.9 compresses whatever it writes); returns the manifest's bytes.
fn plain_oci_layout(tar: &Path, dest: &Path) -> Vec<u8> {
    let (entries, manifest) = read_archive(tar);
    let blobs = dest.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8], media_type: &str| {
        let digest = sha256(bytes);
        fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    };
    let config = put(
        &entries[manifest[0]["Config"].as_str().unwrap()],
        "application/vnd.oci.image.config.v1+json",
    );
    let layers: Vec<Value> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| put(&entries[l.as_str().unwrap()], OCI_TAR))
        .collect();
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers,
    }))
    .unwrap();
    let mut desc = put(&bytes, media_type);
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": TAG});
    fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dest.join("index.json"), index.to_string()).unwrap();
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ------------------------------------------------------------------------------------ running

fn registry() -> Registry {
    Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false))
}

/// `gdcloud-artifacts --format json push ARGS… SOURCE HOST/REFERENCE` with the registry's user;
/// compressed layers are staged in `env`'s `tmp`, which must be empty afterwards.
fn push(env: &TestEnv, reg: &Registry, source: &Path, reference: &str, args: &[&str]) -> Value {
    let tmp = env.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut c = env.cmd(&bin_dir().join("gdcloud-artifacts").display().to_string());
    c.env("TMPDIR", &tmp)
        .args(["--format", "json", "push"])
        .args(args)
        .arg(source)
        .arg(format!("{}/{reference}", reg.host))
        .args(["--username", &reg.username, "--password-stdin"]);
    let out = run_timed(c, reg.password.as_bytes(), COMMAND_TIMEOUT);
    let report: Value = serde_json::from_str(&ok(&out)).expect("a JSON report");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "push left files in its temp dir"
    );
    report
}

fn artifacts(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = env.cmd(&bin_dir().join("gdcloud-artifacts").display().to_string());
    c.args(args);
    run_timed(c, stdin, COMMAND_TIMEOUT)
}

fn remote(reg: &Registry, reference: &str, what: &[&str]) -> Vec<u8> {
    run_ok(
        skopeo_cmd()
            .arg("inspect")
            .args(what)
            .args(["--creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag(""))
            .arg(format!("docker://{}/{reference}", reg.host)),
    )
}

/// The manifest the registry serves for `reference` and its digest.
fn remote_manifest(reg: &Registry, reference: &str) -> (Value, String) {
    let raw = remote(reg, reference, &["--raw"]);
    (serde_json::from_slice(&raw).unwrap(), sha256(&raw))
}

fn diff_ids(reg: &Registry, reference: &str) -> Vec<String> {
    let config: Value =
        serde_json::from_slice(&remote(reg, reference, &["--config", "--raw"])).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// `skopeo copy` of `reference` into a new OCI layout `dest` (blobs kept as the registry has them).
fn skopeo_pull(reg: &Registry, reference: &str, dest: &Path) {
    run_ok(
        skopeo_cmd()
            .args(["copy", "--dest-oci-accept-uncompressed-layers"])
            .args(["--src-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("src-"))
            .arg(format!("docker://{}/{reference}", reg.host))
            .arg(format!("oci:{}:{TAG}", dest.display())),
    );
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').unwrap();
    let path = layout.join("blobs").join(alg).join(hex);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decompress(media_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match media_type {
        OCI_GZIP => flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out),
        OCI_ZSTD => zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out),
        OCI_TAR => {
            out = bytes.to_vec();
            Ok(out.len())
        }
        other => panic!("unexpected layer type {other}"),
    }
    .unwrap();
    out
}

/// Asserts `root` holds the image's files with their contents.
#[track_caller]
fn assert_files(root: &Path, who: &str) {
    for (path, content) in &image().files {
        let got = fs::read(root.join(path)).unwrap_or_else(|e| panic!("{who}: {path}: {e}"));
        assert!(got == *content, "{who}: {path} differs from the original");
    }
}

/// Checks the pushed image layer by layer against the archive's plain tars, then reads it back
/// with skopeo + umoci (Go's gzip/zstd readers) and with our pull + extract.
fn check_pushed(
    env: &TestEnv,
    reg: &Registry,
    reference: &str,
    media_type: &str,
    archive: &(Vec<String>, u64),
) {
    let (manifest, _) = remote_manifest(reg, reference);
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = diff_ids(reg, reference);
    assert_eq!(
        diff_ids, archive.0,
        "the config's diff_ids are the plain tars' digests"
    );
    let copy = env
        .path()
        .join(format!("copy-{}", reference.replace([':', '/'], "-")));
    skopeo_pull(reg, reference, &copy);
    let mut sent = 0;
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        assert_eq!(layer["mediaType"], media_type, "{manifest}");
        let digest = layer["digest"].as_str().unwrap();
        let bytes = blob(&copy, digest);
        assert_eq!(sha256(&bytes), digest);
        assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
        sent += bytes.len() as u64;
        match media_type {
            OCI_GZIP => assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8], "gzip magic"),
            OCI_ZSTD => assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic"),
            _ => assert_eq!(
                digest, diff_id,
                "an uncompressed layer is named by its diff_id"
            ),
        }
        assert_eq!(&sha256(&decompress(media_type, &bytes)), diff_id);
    }
    if media_type != OCI_TAR {
        assert!(
            sent * 4 < archive.1,
            "compressed {sent} bytes of {} is not much smaller",
            archive.1
        );
    }

    // Go's readers: skopeo decompresses into a `dir:` copy; umoci (gzip only in 0.4.7) checks
    // every layer's diff_id as it unpacks.
    let dir = env
        .path()
        .join(format!("dir-{}", reference.replace([':', '/'], "-")));
    run_ok(
        skopeo_cmd()
            .args(["copy", "--dest-decompress", "--src-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("src-"))
            .arg(format!("docker://{}/{reference}", reg.host))
            .arg(format!("dir:{}", dir.display())),
    );
    let decompressed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| sha256(&fs::read(e.unwrap().path()).unwrap()))
        .collect();
    for diff_id in &archive.0 {
        assert!(
            decompressed.contains(diff_id),
            "skopeo decompressed no layer to {diff_id}"
        );
    }
    if media_type != OCI_ZSTD {
        let bundle = env
            .path()
            .join(format!("bundle-{}", reference.replace([':', '/'], "-")));
        umoci(&[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{TAG}", copy.display()),
            &bundle.display().to_string(),
        ]);
        assert_files(&bundle.join("rootfs"), "umoci unpack");
    }

    // Ours.
    let pulled = env
        .path()
        .join(format!("pulled-{}", reference.replace([':', '/'], "-")));
    let p = pulled.display().to_string();
    ok(&artifacts(
        env,
        &[
            "pull",
            &format!("{}/{reference}", reg.host),
            &p,
            "--username",
            &reg.username,
            "--password-stdin",
        ],
        reg.password.as_bytes(),
    ));
    let root = env
        .path()
        .join(format!("root-{}", reference.replace([':', '/'], "-")));
    ok(&artifacts(
        env,
        &["extract", "--rootless", &p, &root.display().to_string()],
        b"",
    ));
    assert_files(&root, "gdcloud-artifacts extract");
}

// -------------------------------------------------------------------------------------- tests

#[test]
fn docker_archive_layers_go_up_as_multi_member_gzip_and_read_back() {
    let reg = registry();
    let env = TestEnv::new();
    let tar = docker_archive(env.path());
    let archive = archive_layers(&tar);
    let report = push(&env, &reg, &tar, "proj/da:v1", &[]);
    check_pushed(&env, &reg, "proj/da:v1", OCI_GZIP, &archive);
    assert_eq!(report["layers_compressed"], 2, "{report}");
    assert_eq!(
        report["blobs_uploaded"], 3,
        "config and two layers: {report}"
    );
    let (manifest, digest) = remote_manifest(&reg, "proj/da:v1");
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let layer_bytes: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert_eq!(
        report["bytes_uploaded"].as_u64().unwrap(),
        layer_bytes + manifest["config"]["size"].as_u64().unwrap(),
        "the report counts the compressed bytes: {report}"
    );

    // The 5 MiB layer is independent gzip members, one per MiB (pigz-style), each with no mtime.
    let big = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap();
    let copy = env.path().join("copy-proj-da-v1");
    let bytes = blob(&copy, big);
    let members = bytes
        .windows(10)
        .filter(|w| w[..4] == [0x1f, 0x8b, 8, 0] && w[4..8] == [0; 4])
        .count();
    assert!(members >= 5, "{members} gzip members for a 5 MiB layer");

    // Again, to the same repository and to another: nothing is uploaded twice, same digest.
    let again = push(&env, &reg, &tar, "proj/da:v1", &[]);
    assert_eq!(again["blobs_skipped"], 3, "{again}");
    assert_eq!(again["blobs_uploaded"], 0, "{again}");
    assert_eq!(again["bytes_uploaded"], 0, "{again}");
    assert_eq!(again["digest"], digest.as_str());
    let other = push(
        &env,
        &reg,
        &tar,
        "proj/da-other:v1",
        &["--concurrency", "1"],
    );
    assert_eq!(
        other["digest"],
        digest.as_str(),
        "the bytes do not depend on concurrency"
    );
    assert_eq!(remote_manifest(&reg, "proj/da-other:v1").1, digest);
}

#[test]
fn zstd_and_none_compression() {
    let reg = registry();
    let env = TestEnv::new();
    let tar = docker_archive(env.path());
    let archive = archive_layers(&tar);

    let report = push(&env, &reg, &tar, "proj/zst:v1", &["--compression", "zstd"]);
    assert_eq!(report["layers_compressed"], 2, "{report}");
    check_pushed(&env, &reg, "proj/zst:v1", OCI_ZSTD, &archive);
    let again = push(&env, &reg, &tar, "proj/zst:v1", &["--compression", "zstd"]);
    assert_eq!(again["blobs_uploaded"], 0, "{again}");
    assert_eq!(again["digest"], report["digest"]);

    let plain = push(
        &env,
        &reg,
        &tar,
        "proj/plain:v1",
        &["--compression", "none"],
    );
    assert_eq!(plain["layers_compressed"], 0, "{plain}");
    check_pushed(&env, &reg, "proj/plain:v1", OCI_TAR, &archive);
    assert_ne!(plain["digest"], report["digest"]);
}

#[test]
fn oci_layout_and_archive_with_plain_tar_layers_are_compressed_too() {
    // What Docker ≥ 25's `docker save` writes: an OCI layout (in a tar) whose layers are plain.
    let reg = registry();
    let env = TestEnv::new();
    let tar = docker_archive(env.path());
    let archive = archive_layers(&tar);
    let layout = env.path().join("plain-layout");
    let raw = plain_oci_layout(&tar, &layout);
    let layout_ref = format!("oci:{}:{TAG}", layout.display());
    let read: Value =
        serde_json::from_slice(&run_ok(skopeo_cmd().args(["inspect", &layout_ref]))).unwrap();
    assert_eq!(
        read["Layers"].as_array().unwrap().len(),
        2,
        "skopeo reads the fixture: {read}"
    );
    let local_digest = sha256(&raw);
    let oci_tar = env.path().join("plain.oci.tar");
    let mut builder = tar::Builder::new(fs::File::create(&oci_tar).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.into_inner().unwrap();

    let from_dir = push(&env, &reg, &layout, "proj/ol:v1", &[]);
    assert_eq!(from_dir["layers_compressed"], 2, "{from_dir}");
    assert_ne!(
        from_dir["digest"],
        local_digest.as_str(),
        "the manifest names gzip layers"
    );
    check_pushed(&env, &reg, "proj/ol:v1", OCI_GZIP, &archive);

    let from_tar = push(&env, &reg, &oci_tar, "proj/ol:v1", &[]);
    assert_eq!(from_tar["digest"], from_dir["digest"], "{from_tar}");
    assert_eq!(
        from_tar["blobs_uploaded"], 0,
        "same repository, same blobs: {from_tar}"
    );

    // Without compression the layout's manifest goes up byte for byte.
    let kept = push(
        &env,
        &reg,
        &oci_tar,
        "proj/oa-kept:v1",
        &["--compression", "none"],
    );
    assert_eq!(kept["digest"], local_digest.as_str(), "{kept}");
}

#[test]
fn a_corrupt_archive_layer_is_named_and_nothing_is_tagged() {
    // The registry can check only the compressed digest, so push checks the plain tar against
    // its diff_id while compressing it.
    let reg = registry();
    let env = TestEnv::new();
    let tar = docker_archive(env.path());
    let (diff_ids, _) = archive_layers(&tar);
    let mut bytes = fs::read(&tar).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"INFO request")
        .expect("the log file is in the archive");
    bytes[at] ^= 0x20;
    fs::write(&tar, &bytes).unwrap();

    let mut c = env.cmd(&bin_dir().join("gdcloud-artifacts").display().to_string());
    c.arg("push")
        .arg(&tar)
        .arg(format!("{}/proj/bad:v1", reg.host))
        .args(["--username", &reg.username, "--password-stdin"]);
    let out = run_timed(c, reg.password.as_bytes(), COMMAND_TIMEOUT);
    assert!(!out.status.success(), "a corrupt layer was pushed");
    let err = stderr(&out);
    assert!(
        err.contains("is corrupt") && diff_ids.iter().any(|d| err.contains(d.as_str())),
        "the error does not name the corrupt layer: {err}"
    );
    let tags = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &reg.creds(),
        ])
        .arg(format!("http://{}/v2/proj/bad/manifests/v1", reg.host))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tags.stdout),
        "404",
        "the tag was pushed"
    );
}
