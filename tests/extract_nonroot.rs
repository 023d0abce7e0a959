//! `gdcloud-artifacts extract` run by a user who is not root, on an image whose first layer makes
//! directories read-only (`0555`, as distribution images do for `usr/`) and whose later layers
//! write into them, white out inside them, and white out a read-only directory with its contents.
//! Without root, every such write fails with EACCES unless the extractor lends itself write
//! permission on the directories it owns for the length of the layer, as
//! `umoci unpack --rootless` does. The tree must equal umoci's, run as the same user.
//!
//! The real binary and umoci both run under an unused uid (`setuid` in `pre_exec`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use gdcloud::oci::{self, Digest};

/// An unused uid/gid: no account is needed to run as it.
const USER: u32 = 64_124;

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A layer of `(name, mode, content)`: a name ending in `/` is a directory.
fn layer(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, mode, data) in entries {
        let kind = if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        let mut h = header(kind, *mode, data.len() as u64);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn blob(layout: &Path, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    fs::write(layout.join("blobs/sha256").join(d.hex()), data).unwrap();
    d
}

/// An OCI layout (tag `t`) of these layers, readable by everyone.
fn write_layout(layout: &Path, layers: &[Vec<u8>]) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let descs: Vec<_> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType": oci::OCI_LAYER_TAR, "digest": blob(layout, l),
                "size": l.len()})
        })
        .collect();
    let diff_ids: Vec<_> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": oci::OCI_CONFIG, "digest": blob(layout, &config),
            "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = blob(layout, &manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": oci::OCI_MANIFEST, "digest": md, "size": manifest.len(),
        "annotations": {oci::ANNOTATION_REF_NAME: "t"}}]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(layout)
        .status()
        .unwrap();
}

fn image(layout: &Path) {
    let one = layer(&[
        ("usr/", 0o555, ""),
        ("usr/y", 0o644, "y"),
        ("usr/lib/", 0o555, ""),
        ("usr/lib/z", 0o644, "z"),
        ("opt/", 0o755, ""),
        ("opt/ro/", 0o555, ""),
        ("opt/ro/sub/", 0o555, ""),
        ("opt/ro/sub/f", 0o444, "f"),
        ("opt/ro2/", 0o555, ""),
        ("opt/ro2/g", 0o644, "g"),
        ("var/", 0o555, ""),
        ("var/d/", 0o555, ""),
        ("var/d/old", 0o644, "old"),
        ("var/e", 0o644, "e"),
        ("nx/", 0o666, ""),
        ("nx/sub/", 0o755, ""),
    ]);
    // No entries for `usr/` or `usr/lib/`: they stay 0555 from the first layer.
    let two = layer(&[
        ("usr/x", 0o644, "x"),
        ("nx/sub/h", 0o644, "h"),
        ("usr/.wh.y", 0o644, ""),
        ("usr/lib/.wh.z", 0o644, ""),
        ("usr/lib/new", 0o600, "new"),
        // A read-only directory whose read-only child has a file: all gone.
        ("opt/.wh.ro", 0o644, ""),
    ]);
    let three = layer(&[
        ("opt/ro2/.wh..wh..opq", 0o644, ""),
        ("opt/ro2/h", 0o644, "h"),
        ("usr/lib/more", 0o644, "more"),
        // Replacing what a lower layer put in a read-only directory: a file, then a directory.
        ("usr/x", 0o644, "x2"),
        ("usr/lib/new/", 0o755, ""),
    ]);
    // `var/d` is this layer's (an entry for it, nothing written into it), so the opaque whiteout
    // of `var/` spares it but empties it: a read-only directory below the one whited out.
    let four = layer(&[("var/d/", 0o555, ""), ("var/.wh..wh..opq", 0o644, "")]);
    write_layout(layout, &[one, two, three, four]);
}

fn as_user(c: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(USER) != 0
                || libc::setuid(USER) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn check(c: &mut Command, what: &str) {
    let out = as_user(c)
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed as uid {USER}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bin() -> PathBuf {
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_docker-credential-gdcloud"));
    let bin = helper.with_file_name("gdcloud-artifacts");
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

/// Path → (kind, mode, owner uid, content): what umoci and we must agree on.
fn snapshot(root: &Path) -> BTreeMap<String, (char, u32, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let (kind, data) = if m.is_dir() {
                ('d', vec![])
            } else if m.is_file() {
                ('f', fs::read(&path).unwrap())
            } else {
                ('?', vec![])
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.uid(), data));
            if m.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn non_root_extract_writes_and_whites_out_inside_read_only_dirs_as_umoci() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
    let layout = base.join("layout");
    image(&layout);
    // Everything the user writes goes under `work/`, which it owns.
    let work = base.join("work");
    fs::create_dir(&work).unwrap();
    chown(&work, Some(USER), Some(USER)).unwrap();

    check(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:t", layout.display()))
            .arg(work.join("umoci")),
        "umoci unpack --rootless",
    );
    let want = snapshot(&work.join("umoci/rootfs"));
    for (path, kind, mode) in [
        ("usr", 'd', 0o555),
        ("usr/lib", 'd', 0o555),
        ("var/d", 'd', 0o555),
    ] {
        let got = &want[path];
        assert_eq!((got.0, got.1), (kind, mode), "umoci's {path}");
    }
    for gone in [
        "usr/y",
        "usr/lib/z",
        "opt/ro",
        "opt/ro2/g",
        "var/e",
        "var/d/old",
    ] {
        assert!(!want.contains_key(gone), "umoci kept {gone}");
    }

    for rootless in [false, true] {
        let dest = work.join(format!("ours-rootless-{rootless}"));
        let home = work.join(format!("home-{rootless}"));
        let mut c = Command::new(bin());
        c.env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .args(["extract", "--quiet", "--image-name", "t"])
            .arg(&layout)
            .arg(&dest);
        if rootless {
            c.arg("--rootless");
        }
        check(&mut c, &format!("extract (--rootless: {rootless})"));
        let got = snapshot(&dest);
        if got != want {
            let keys: std::collections::BTreeSet<_> = want.keys().chain(got.keys()).collect();
            let diffs: Vec<String> = keys
                .into_iter()
                .filter(|k| want.get(*k) != got.get(*k))
                .map(|k| format!("{k}: umoci {:?}, ours {:?}", want.get(k), got.get(k)))
                .collect();
            panic!(
                "--rootless {rootless}: tree differs from umoci's:\n{}",
                diffs.join("\n")
            );
        }
    }
}
