//! Integration tests of the layout pull writes (`gdcloud::layout::Layout`, `BlobWriter`): which
//! destinations `create_for_pull` accepts, refuses (untouched) and resumes; that a blob written in
//! two sessions continues where the first stopped and is verified on commit; and that the finished
//! layout is read by the real tools (`oci-image-tool validate --type image`, `skopeo inspect oci:`, `umoci ls`,
//! `podman pull oci:`). The image pulled is the tiny umoci-built test image (`tests/util/image.rs`),
//! copied blob by blob as the pull op would, with an interruption in the middle of every blob.

use crate::util;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use gdcloud::layout::{self, Error, Layout, PULL_MARKER};
use gdcloud::oci::{Descriptor, Digest, Manifest, ANNOTATION_REF_NAME, OCI_LAYER_TAR};
use util::image::{tiny_image_layout, TAG};
use util::registry::require_tool;

fn desc_of(bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: OCI_LAYER_TAR.into(),
        digest: Digest::sha256_of(bytes),
        size: bytes.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
        artifact_type: None,
    }
}

/// Every entry under `dir` (relative path → file content, `None` for directories), to show a
/// refused destination was left exactly as it was.
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

/// Runs `cmd`, panicking with its stderr unless it succeeds; returns stdout.
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

#[test]
fn create_for_pull_refuses_a_non_empty_directory_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("notes.txt"), "mine").unwrap();
    let before = snapshot(&dest);
    let err = Layout::create_for_pull(&dest, "reg.example/x:1").unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(snapshot(&dest), before);

    // A finished layout (no marker) is not ours to write into either.
    let finished = dir.path().join("finished");
    run(Command::new("cp")
        .arg("-r")
        .arg(tiny_image_layout())
        .arg(&finished));
    let before = snapshot(&finished);
    let err = Layout::create_for_pull(&finished, "reg.example/x:1").unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
    assert_eq!(snapshot(&finished), before);

    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = Layout::create_for_pull(&file, "reg.example/x:1").unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn create_for_pull_accepts_absent_and_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("a/b/c");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for dest in [&absent, &empty] {
        let l = Layout::create_for_pull(dest, "reg.example/x:1").unwrap();
        assert_eq!(l.root(), dest.as_path());
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(dest.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(v["imageLayoutVersion"], "1.0.0");
        assert!(dest.join("blobs/sha256").is_dir());
        assert_eq!(
            fs::read_to_string(dest.join(PULL_MARKER)).unwrap().trim(),
            "reg.example/x:1"
        );
        // An interrupted pull cannot be pushed: it says so instead of "no index.json".
        assert!(matches!(
            layout::open_source(dest, None),
            Err(Error::IncompletePull { .. })
        ));
    }
}

#[test]
fn interrupted_blob_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let desc = desc_of(&data);

    let l = Layout::create_for_pull(&dest, "reg.example/x:1").unwrap();
    let mut w = l.blob_writer(&desc).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&data[..123_457]).unwrap();
    drop(w);
    drop(l);
    assert!(!l_has(&dest, &desc));

    // Another source is refused, touching nothing.
    let before = snapshot(&dest);
    let err = Layout::create_for_pull(&dest, "reg.example/other:2").unwrap_err();
    assert!(
        matches!(&err, Error::OtherPull { source_ref, .. } if source_ref == "reg.example/x:1"),
        "{err}"
    );
    assert_eq!(snapshot(&dest), before);

    // The same source resumes: the partial bytes are re-hashed and the offset continues.
    let l = Layout::create_for_pull(&dest, "reg.example/x:1").unwrap();
    let mut w = l.blob_writer(&desc).unwrap();
    assert_eq!(w.offset(), 123_457);
    w.write_all(&data[w.offset() as usize..]).unwrap();
    w.commit().unwrap();
    assert!(l.has_blob(&desc));
    assert_eq!(fs::read(l.blob_path(&desc.digest)).unwrap(), data);
    let mut back = Vec::new();
    l.open_blob(&desc.digest)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}

fn l_has(dest: &Path, desc: &Descriptor) -> bool {
    dest.join("blobs/sha256").join(desc.digest.hex()).exists()
}

#[test]
fn wrong_bytes_fail_the_commit_and_leave_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create_for_pull(&dir.path().join("dest"), "r").unwrap();
    let desc = desc_of(b"the right bytes");
    let mut w = l.blob_writer(&desc).unwrap();
    w.write_all(b"the wrong bytes").unwrap();
    let err = w.commit().unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if *expected == desc.digest),
        "{err}"
    );
    assert!(!l.has_blob(&desc));
    let left: Vec<_> = fs::read_dir(l.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Too many bytes are refused as they arrive.
    let mut w = l.blob_writer(&desc).unwrap();
    let err = w.write_all(b"the right bytes, and more").unwrap_err();
    assert!(
        matches!(Error::downcast_io(&err), Some(Error::SizeMismatch { .. })),
        "{err}"
    );
}

/// Copies the tiny test image into a new layout the way pull does: manifest children through
/// `BlobWriter` (each interrupted halfway and resumed by a new writer), the manifest with
/// `write_blob`, then the ref name and `finish_pull`.
fn pull_tiny_image(dest: &Path, tag: &str) -> Descriptor {
    let src = layout::open_source(tiny_image_layout(), Some(TAG)).unwrap();
    let manifest: Manifest = serde_json::from_slice(&src.manifest_bytes).unwrap();
    let l = Layout::create_for_pull(dest, "oci:tiny:v1").unwrap();
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let mut all = Vec::new();
        src.blobs
            .open(&d.digest)
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        let half = all.len() / 2;
        let mut w = l.blob_writer(d).unwrap();
        w.write_all(&all[..half]).unwrap();
        drop(w);
        let mut w = l.blob_writer(d).unwrap();
        assert_eq!(w.offset(), half as u64);
        io::copy(&mut &all[half..], &mut w).unwrap();
        w.commit().unwrap();
        assert!(l.has_blob(d));
    }
    assert_eq!(
        l.write_blob(&src.manifest_bytes).unwrap(),
        src.manifest.digest
    );
    let desc = Descriptor {
        annotations: None,
        ..src.manifest.clone()
    };
    l.set_ref(desc.clone(), tag).unwrap();
    // A stale partial of a blob the finished pull did not need is cleaned up.
    fs::write(l.root().join("blobs/sha256/0123.partial"), b"x").unwrap();
    l.finish_pull().unwrap();
    assert!(!dest.join(PULL_MARKER).exists());
    assert!(!dest.join("blobs/sha256/0123.partial").exists());
    let index = Layout::open(dest).unwrap().index().unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(
        index.manifests[0].annotation(ANNOTATION_REF_NAME),
        Some(tag)
    );
    desc
}

#[test]
fn written_layout_is_read_by_oci_image_tool_skopeo_umoci_and_podman() {
    for tool in ["oci-image-tool", "skopeo", "umoci", "podman"] {
        require_tool(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("pulled");
    let tag = "v1.0";
    let desc = pull_tiny_image(&dest, tag);
    let dest_s = dest.display().to_string();

    // oci-image-tool 1.0.0-rc1 calls `--type imageLayout` "unimplemented"; `--type image` on a
    // directory validates the layout (index, ref, manifest, config and layer digests and sizes).
    run(Command::new("oci-image-tool").args([
        "validate",
        "--type",
        "image",
        "--ref",
        &format!("name={tag}"),
        &dest_s,
    ]));

    let inspect = run(Command::new("skopeo").args(["inspect", &format!("oci:{dest_s}:{tag}")]));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], desc.digest.to_string());

    let ls = run(Command::new("umoci").args(["ls", "--layout", &dest_s]));
    assert_eq!(ls.lines().collect::<Vec<_>>(), [tag]);

    let store = dir.path().join("podman");
    let podman = |args: &[&str]| {
        run(Command::new("podman")
            .arg("--storage-driver=vfs")
            .arg(format!("--root={}", store.join("root").display()))
            .arg(format!("--runroot={}", store.join("run").display()))
            .args(args)
            .current_dir(dir.path()))
    };
    // podman names the image after the layout path, which must be lower-case: pull it relative.
    podman(&["pull", "-q", &format!("oci:pulled:{tag}")]);
    let digests = podman(&["images", "--format", "{{.Digest}}"]);
    assert!(
        digests.contains(&desc.digest.to_string()),
        "podman lists {digests}"
    );
}
