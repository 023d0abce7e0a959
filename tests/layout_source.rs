//! Integration tests of what push reads (`gdcloud::layout::open_source`), on sources made by the
//! real tools: an OCI layout built by umoci, an oci-archive and a docker-archive written by
//! skopeo, a hand-built legacy `docker save` tarball (`./`-prefixed names, a symlinked layer, a
//! gzip-compressed layer, `repositories`) and the Docker ≥ 25 form (OCI layout plus
//! `manifest.json`). Each checks the manifest, that every blob reads back with its digest, that
//! opening twice gives the same manifest digest, and for synthesised manifests that skopeo,
//! oci-image-tool and umoci accept the image once stored in a layout; plus the refusals: corrupted
//! layer, compressed tarball, several images without a name, hostile names.

use crate::util;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use gdcloud::layout::{self, Error, Layout, LocalImage};
use gdcloud::oci::{
    Descriptor, Digest, ImageConfig, Manifest, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST,
};
use serde_json::{json, Value};
use util::image::{tiny_image_layout, TAG};
use util::registry::require_tool;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> String {
    require_tool("skopeo");
    run(Command::new("skopeo").args(args))
}

fn tiny_ref() -> String {
    format!("oci:{}:{TAG}", tiny_image_layout().display())
}

/// The digest `index.json` of the tiny layout gives its image.
fn tiny_digest() -> Digest {
    Layout::open(tiny_image_layout())
        .unwrap()
        .resolve(Some(TAG))
        .unwrap()
        .digest
}

fn read_all(img: &LocalImage, d: &Digest) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    img.blobs.open(d).unwrap().read_to_end(&mut v).map(|_| v)
}

/// Checks the manifest bytes against their descriptor and that the manifest and every blob it
/// names read back with the right size and digest; returns the parsed manifest.
fn check_blobs(img: &LocalImage) -> Manifest {
    assert_eq!(Digest::sha256_of(&img.manifest_bytes), img.manifest.digest);
    assert_eq!(img.manifest_bytes.len() as u64, img.manifest.size);
    assert_eq!(
        read_all(img, &img.manifest.digest).unwrap(),
        img.manifest_bytes
    );
    let m: Manifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    assert_eq!(m.schema_version, 2);
    for d in std::iter::once(&m.config).chain(&m.layers) {
        let bytes = read_all(img, &d.digest).unwrap_or_else(|e| panic!("read {}: {e}", d.digest));
        assert_eq!(bytes.len() as u64, d.size, "{}", d.digest);
        assert_eq!(Digest::sha256_of(&bytes), d.digest);
        assert_eq!(img.blobs.size(&d.digest), Some(d.size));
    }
    m
}

/// Stores `img` in a new layout under `tag`, as pull would, and returns the layout directory.
fn store(img: &LocalImage, dest: &Path, tag: &str) {
    let m: Manifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    let l = Layout::create_for_pull(dest, "test").unwrap();
    for d in std::iter::once(&m.config).chain(&m.layers) {
        let mut w = l.blob_writer(d).unwrap();
        std::io::copy(&mut img.blobs.open(&d.digest).unwrap(), &mut w).unwrap();
        w.commit().unwrap();
    }
    assert_eq!(
        l.write_blob(&img.manifest_bytes).unwrap(),
        img.manifest.digest
    );
    let desc = Descriptor {
        annotations: None,
        ..img.manifest.clone()
    };
    l.set_ref(desc, tag).unwrap();
    l.finish_pull().unwrap();
}

/// Asserts skopeo, oci-image-tool and umoci accept the image stored at `layout:tag` with
/// `digest`.
fn check_with_tools(layout_dir: &Path, tag: &str, digest: &Digest) {
    for tool in ["oci-image-tool", "umoci"] {
        require_tool(tool);
    }
    let dir = layout_dir.display().to_string();
    let inspect: Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci:{dir}:{tag}")])).unwrap();
    assert_eq!(inspect["Digest"], digest.to_string());
    run(Command::new("oci-image-tool").args([
        "validate",
        "--type",
        "image",
        "--ref",
        &format!("name={tag}"),
        &dir,
    ]));
    let ls = run(Command::new("umoci").args(["ls", "--layout", &dir]));
    assert_eq!(ls.trim(), tag);
}

/// A tar entry for [`write_tar`]: name (written verbatim, `./` and all), symlink target, data.
struct TarEntry {
    name: String,
    link: Option<String>,
    data: Vec<u8>,
}

fn file(name: &str, data: impl Into<Vec<u8>>) -> TarEntry {
    TarEntry {
        name: name.into(),
        link: None,
        data: data.into(),
    }
}

fn symlink(name: &str, target: &str) -> TarEntry {
    TarEntry {
        name: name.into(),
        link: Some(target.into()),
        data: Vec::new(),
    }
}

/// Builds a tar with names written straight into the headers (the tar crate would clean `./`
/// and refuse `..`, which real and hostile archives have).
fn tar_bytes(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(e.data.len() as u64);
        match &e.link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(t).unwrap();
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.set_cksum();
        b.append(&h, e.data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn write_tar(path: &Path, entries: &[TarEntry]) {
    fs::write(path, tar_bytes(entries)).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn hex_of(s: &str) -> String {
    Digest::sha256_of(s.as_bytes()).hex().to_string()
}

/// A hand-built legacy `docker save` archive with three images:
/// `hand/a:1` (layers one, two), `hand/b:1` (layer one again, as a symlink) and `hand/gz:1`
/// (one gzip-compressed layer). Returns the archive bytes and the layer tars.
struct HandBuilt {
    archive: Vec<u8>,
    one: Vec<u8>,
    two: Vec<u8>,
    gz: Vec<u8>,
    config_a: Vec<u8>,
}

const TWO_CONTENT: &str = "layer-two-content-unique";

fn hand_built() -> HandBuilt {
    let one = tar_bytes(&[file("hello.txt", "layer one\n")]);
    let two = tar_bytes(&[file("two.txt", TWO_CONTENT)]);
    let three = tar_bytes(&[file("gz.txt", "gz layer\n")]);
    let gz = gzip(&three);
    let config = |layers: &[&Vec<u8>]| {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| Digest::sha256_of(l).to_string())
            .collect();
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    };
    let config_a = config(&[&one, &two]);
    let config_b = config(&[&one]);
    let config_g = config(&[&three]);
    let name = |c: &[u8]| format!("{}.json", Digest::sha256_of(c).hex());
    let (id1, id2, id3, id4) = (hex_of("1"), hex_of("2"), hex_of("3"), hex_of("4"));
    let manifest = json!([
        {"Config": name(&config_a), "RepoTags": ["hand/a:1"],
         "Layers": [format!("{id1}/layer.tar"), format!("{id2}/layer.tar")]},
        {"Config": name(&config_b), "RepoTags": ["hand/b:1"], "Layers": [format!("{id3}/layer.tar")]},
        {"Config": name(&config_g), "RepoTags": ["hand/gz:1"], "Layers": [format!("{id4}/layer.tar")]},
    ]);
    let archive = tar_bytes(&[
        file(&format!("./{id1}/VERSION"), "1.0"),
        file(&format!("./{id1}/json"), "{}"),
        file(&format!("./{id1}/layer.tar"), one.clone()),
        file(&format!("./{id2}/layer.tar"), two.clone()),
        symlink(
            &format!("./{id3}/layer.tar"),
            &format!("../{id1}/layer.tar"),
        ),
        file(&format!("./{id4}/layer.tar"), gz.clone()),
        file(&format!("./{}", name(&config_a)), config_a.clone()),
        file(&format!("./{}", name(&config_b)), config_b),
        file(&format!("./{}", name(&config_g)), config_g),
        file(
            "./repositories",
            serde_json::to_vec(&json!({"hand/a": {"1": id2}})).unwrap(),
        ),
        file("./manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ]);
    HandBuilt {
        archive,
        one,
        two,
        gz,
        config_a,
    }
}

// ---------------------------------------------------------------------------------------------
// OCI layouts
// ---------------------------------------------------------------------------------------------

#[test]
fn umoci_layout_is_read_by_name_or_alone() {
    let by_name = layout::open_source(tiny_image_layout(), Some(TAG)).unwrap();
    let alone = layout::open_source(tiny_image_layout(), None).unwrap();
    assert_eq!(by_name.name.as_deref(), Some(TAG));
    assert_eq!(alone.name.as_deref(), Some(TAG));
    assert_eq!(by_name.manifest.digest, tiny_digest());
    assert_eq!(alone.manifest.digest, by_name.manifest.digest);
    assert_eq!(by_name.manifest.media_type, OCI_MANIFEST);
    let m = check_blobs(&by_name);
    assert_eq!(m.layers.len(), 1);
}

#[test]
fn multi_image_layout_needs_a_name() {
    require_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let multi = dir.path().join("multi");
    run(Command::new("cp")
        .arg("-r")
        .arg(tiny_image_layout())
        .arg(&multi));
    run(Command::new("umoci").args(["new", "--image", &format!("{}:v2", multi.display())]));

    let err = layout::open_source(&multi, None).unwrap_err();
    match &err {
        Error::Ambiguous { available } => {
            assert_eq!(available.len(), 2, "{available:?}");
            assert!(available[0].starts_with("v1 (sha256:"), "{available:?}");
            assert!(available[1].starts_with("v2 (sha256:"), "{available:?}");
        }
        other => panic!("expected Ambiguous, got {other}"),
    }
    assert!(err.to_string().contains("choose one by name"), "{err}");

    let v2 = layout::open_source(&multi, Some("v2")).unwrap();
    assert_eq!(v2.name.as_deref(), Some("v2"));
    assert_ne!(v2.manifest.digest, tiny_digest());
    check_blobs(&v2);

    match layout::open_source(&multi, Some("v3")).unwrap_err() {
        Error::NoSuchImage { name, available } => {
            assert_eq!(name, "v3");
            assert_eq!(available.len(), 2);
        }
        other => panic!("expected NoSuchImage, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Archives written by skopeo
// ---------------------------------------------------------------------------------------------

#[test]
fn oci_archive_from_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("A.tar");
    skopeo(&[
        "copy",
        &tiny_ref(),
        &format!("oci-archive:{}", archive.display()),
    ]);
    let img = layout::open_source(&archive, None).unwrap();
    assert_eq!(img.manifest.digest, tiny_digest());
    check_blobs(&img);
    let again = layout::open_source(&archive, None).unwrap();
    assert_eq!(again.manifest.digest, img.manifest.digest);
}

#[test]
fn docker_archive_from_skopeo_gets_a_stable_oci_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("D.tar");
    let dest = format!("docker-archive:{}:repo/x:t", archive.display());
    skopeo(&["copy", &tiny_ref(), &dest]);

    let img = layout::open_source(&archive, Some("repo/x:t")).unwrap();
    assert_eq!(img.name.as_deref(), Some("docker.io/repo/x:t"));
    assert_eq!(img.manifest.media_type, OCI_MANIFEST);
    let m = check_blobs(&img);
    let config: ImageConfig =
        serde_json::from_slice(&read_all(&img, &m.config.digest).unwrap()).unwrap();
    let layer_digests: Vec<Digest> = m.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(layer_digests, config.rootfs.diff_ids);
    assert!(m.layers.iter().all(|l| l.media_type == OCI_LAYER_TAR));

    // skopeo sees the same (uncompressed) layers in the archive.
    let inspect: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", archive.display()),
    ]))
    .unwrap();
    let skopeo_layers: Vec<String> = serde_json::from_value(inspect["Layers"].clone()).unwrap();
    let ours: Vec<String> = layer_digests.iter().map(Digest::to_string).collect();
    assert_eq!(skopeo_layers, ours);

    // Same input, same manifest digest: opened again, and from a second archive of the image.
    let again = layout::open_source(&archive, None).unwrap();
    assert_eq!(again.manifest.digest, img.manifest.digest);
    assert_eq!(again.manifest_bytes, img.manifest_bytes);
    let archive2 = dir.path().join("D2.tar");
    skopeo(&[
        "copy",
        &tiny_ref(),
        &format!("docker-archive:{}:repo/x:t", archive2.display()),
    ]);
    let other = layout::open_source(&archive2, Some("docker.io/repo/x:t")).unwrap();
    assert_eq!(other.manifest.digest, img.manifest.digest);

    let stored = dir.path().join("stored");
    store(&img, &stored, "t");
    check_with_tools(&stored, "t", &img.manifest.digest);
}

#[test]
fn docker_25_archive_prefers_its_oci_index() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny_image_layout();
    let digest = tiny_digest();
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(tiny.join("blobs/sha256").join(digest.hex())).unwrap())
            .unwrap();
    let mut index: Value =
        serde_json::from_slice(&fs::read(tiny.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["annotations"] = json!({
        "io.containerd.image.name": "docker.io/library/hello:v1",
        "org.opencontainers.image.ref.name": "v1",
    });
    let mut entries = vec![
        file("oci-layout", fs::read(tiny.join("oci-layout")).unwrap()),
        file("index.json", serde_json::to_vec(&index).unwrap()),
        file(
            "manifest.json",
            serde_json::to_vec(&json!([{
                "Config": format!("blobs/sha256/{}", manifest.config.digest.hex()),
                "RepoTags": ["hello:v1"],
                "Layers": [format!("blobs/sha256/{}", manifest.layers[0].digest.hex())],
            }]))
            .unwrap(),
        ),
    ];
    for e in fs::read_dir(tiny.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        entries.push(file(&name, fs::read(e.path()).unwrap()));
    }
    let archive = dir.path().join("docker25.tar");
    write_tar(&archive, &entries);

    let img = layout::open_source(&archive, Some("hello:v1")).unwrap();
    assert_eq!(
        img.manifest.digest, digest,
        "the real manifest, not a synthesised one"
    );
    assert_eq!(img.name.as_deref(), Some("docker.io/library/hello:v1"));
    check_blobs(&img);
    assert_eq!(
        layout::open_source(&archive, None).unwrap().manifest.digest,
        digest
    );
}

// ---------------------------------------------------------------------------------------------
// A hand-built legacy `docker save`
// ---------------------------------------------------------------------------------------------

#[test]
fn hand_built_docker_save() {
    let dir = tempfile::tempdir().unwrap();
    let hb = hand_built();
    let archive = dir.path().join("oracle_db.tar");
    fs::write(&archive, &hb.archive).unwrap();

    match layout::open_source(&archive, None).unwrap_err() {
        Error::Ambiguous { available } => {
            assert_eq!(available, ["hand/a:1", "hand/b:1", "hand/gz:1"])
        }
        other => panic!("expected Ambiguous, got {other}"),
    }

    let a = layout::open_source(&archive, Some("hand/a:1")).unwrap();
    assert_eq!(a.name.as_deref(), Some("hand/a:1"));
    let m = check_blobs(&a);
    assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(m.config.digest, Digest::sha256_of(&hb.config_a));
    assert_eq!(m.config.media_type, gdcloud::oci::OCI_CONFIG);
    let layers: Vec<(&str, Digest, u64)> = m
        .layers
        .iter()
        .map(|l| (l.media_type.as_str(), l.digest.clone(), l.size))
        .collect();
    assert_eq!(
        layers,
        [
            (
                OCI_LAYER_TAR,
                Digest::sha256_of(&hb.one),
                hb.one.len() as u64
            ),
            (
                OCI_LAYER_TAR,
                Digest::sha256_of(&hb.two),
                hb.two.len() as u64
            ),
        ]
    );
    let again = layout::open_source(&archive, Some("hand/a:1")).unwrap();
    assert_eq!(again.manifest.digest, a.manifest.digest);
    assert_eq!(again.manifest_bytes, a.manifest_bytes);

    // The symlinked layer, chosen by the normalised name.
    let b = layout::open_source(&archive, Some("docker.io/hand/b:1")).unwrap();
    assert_eq!(b.name.as_deref(), Some("hand/b:1"));
    let mb = check_blobs(&b);
    assert_eq!(mb.layers[0].digest, Digest::sha256_of(&hb.one));

    // A layer stored gzip-compressed keeps its bytes: gzip media type, digest of those bytes.
    let g = layout::open_source(&archive, Some("hand/gz:1")).unwrap();
    let mg = check_blobs(&g);
    assert_eq!(mg.layers[0].media_type, OCI_LAYER_GZIP);
    assert_eq!(mg.layers[0].digest, Digest::sha256_of(&hb.gz));

    // Stored in a layout, the synthesised image is a valid OCI image with the right content.
    let stored = dir.path().join("stored");
    store(&a, &stored, "1");
    check_with_tools(&stored, "1", &a.manifest.digest);
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:1", stored.display()),
        &bundle.display().to_string(),
    ]));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/two.txt")).unwrap(),
        TWO_CONTENT
    );
}

#[test]
fn corrupted_layer_fails_the_read_with_a_digest_error() {
    let dir = tempfile::tempdir().unwrap();
    let hb = hand_built();
    let mut bytes = hb.archive.clone();
    let at = bytes
        .windows(TWO_CONTENT.len())
        .position(|w| w == TWO_CONTENT.as_bytes())
        .unwrap();
    bytes[at] ^= 0x20;
    let archive = dir.path().join("corrupt.tar");
    fs::write(&archive, &bytes).unwrap();

    // Opening does not hash layers; reading the damaged one fails at its end.
    let img = layout::open_source(&archive, Some("hand/a:1")).unwrap();
    let good = read_all(&img, &Digest::sha256_of(&hb.one)).unwrap();
    assert_eq!(good, hb.one);
    let err = read_all(&img, &Digest::sha256_of(&hb.two)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    match Error::downcast_io(&err) {
        Some(Error::DigestMismatch { expected, path, .. }) => {
            assert_eq!(*expected, Digest::sha256_of(&hb.two));
            assert!(path.starts_with(&archive), "{}", path.display());
        }
        other => panic!("expected a digest mismatch, got {other:?} ({err})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn gzipped_tarball_gets_a_gunzip_hint() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("oracle_db.tar.gz");
    fs::write(&archive, gzip(&hand_built().archive)).unwrap();
    let err = layout::open_source(&archive, None).unwrap_err();
    assert!(
        matches!(err, Error::Compressed { format: "gzip", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("gunzip"), "{err}");
}

#[test]
fn things_that_are_not_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(&text, "just some text\n".repeat(100)).unwrap();
    assert!(matches!(
        layout::open_source(&text, None),
        Err(Error::InvalidArchive { .. })
    ));

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        layout::open_source(&empty, None),
        Err(Error::NotALayout { .. })
    ));

    let other_tar = dir.path().join("other.tar");
    write_tar(&other_tar, &[file("etc/hostname", "box\n")]);
    let err = layout::open_source(&other_tar, None).unwrap_err();
    assert!(matches!(err, Error::InvalidArchive { .. }), "{err}");
    assert!(err.to_string().contains("docker save"), "{err}");

    assert!(matches!(
        layout::open_source(&dir.path().join("missing.tar"), None),
        Err(Error::Io { .. })
    ));
}

#[test]
fn escaping_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let evil_entry = dir.path().join("evil-entry.tar");
    write_tar(
        &evil_entry,
        &[file("manifest.json", "[]"), file("../../tmp/evil", "x")],
    );
    let err = layout::open_source(&evil_entry, None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArchive { reason, .. } if reason.contains("escapes")),
        "{err}"
    );

    let evil_config = dir.path().join("evil-config.tar");
    write_tar(
        &evil_config,
        &[file(
            "manifest.json",
            r#"[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":[]}]"#,
        )],
    );
    let err = layout::open_source(&evil_config, None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArchive { reason, .. } if reason.contains("escapes")),
        "{err}"
    );
}
