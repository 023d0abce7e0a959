//! `extract` against the reference: a real image built with `umoci` (layers that add, delete and
//! replace files, dirs, symlinks, hard links, with odd modes and fixed mtimes), plus a hand-built
//! layer with opaque and same-layer whiteouts, writes through symlinks and PAX records, and a
//! variant whose first layer is recompressed with zstd. `umoci unpack --rootless` and our
//! `unpack_rootfs` must produce the same tree: type, content, symlink target, permission bits,
//! mtime (seconds) and hard-link groups of every path.
//!
//! The same image then goes through `write_docker_archive`, and `skopeo` and `podman` must accept
//! the tarball. Missing tools fail the test with a message; nothing is skipped.

use crate::util::xattr;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use filetime::FileTime;
use gdcloud::extract::{self, Layer, Options};
use gdcloud::oci::{self, Descriptor, Digest, ImageConfig, Index, Manifest};

const TAG: &str = "t";
const TAG_ZSTD: &str = "t-zstd";

// ---------------------------------------------------------------- tools

fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
    });
    assert!(
        found,
        "`{tool}` not found in PATH: this test needs it; run tests/run.sh (it installs the tools)"
    );
}

fn run(tool: &str, args: &[&str]) -> String {
    require_tool(tool);
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------- layout I/O

fn blob_path(layout: &Path, d: &Digest) -> PathBuf {
    layout.join("blobs").join(d.algorithm()).join(d.hex())
}

fn write_blob(layout: &Path, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    fs::write(blob_path(layout, &d), data).unwrap();
    d
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The manifest, config (parsed and raw) of `tag`.
fn image(layout: &Path, tag: &str) -> (Manifest, ImageConfig, Vec<u8>) {
    let index: Index = read_json(&layout.join("index.json"));
    let desc = index
        .manifests
        .iter()
        .find(|m| m.annotation(oci::ANNOTATION_REF_NAME) == Some(tag))
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()));
    let manifest: Manifest = read_json(&blob_path(layout, &desc.digest));
    let raw = fs::read(blob_path(layout, &manifest.config.digest)).unwrap();
    let config: ImageConfig = serde_json::from_slice(&raw).unwrap();
    (manifest, config, raw)
}

fn layers(layout: &Path, tag: &str) -> Vec<Result<Layer<File>, extract::Error>> {
    let (manifest, config, _) = image(layout, tag);
    assert_eq!(manifest.layers.len(), config.rootfs.diff_ids.len());
    manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(d, diff_id)| {
            Ok(Layer {
                descriptor: d.clone(),
                diff_id: Some(diff_id.clone()),
                reader: File::open(blob_path(layout, &d.digest)).unwrap(),
            })
        })
        .collect()
}

fn descriptor(media_type: &str, data: &[u8], digest: Digest) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size: data.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
        artifact_type: None,
    }
}

/// Stores `manifest` and points `tag` at it in `index.json`.
fn tag_manifest(layout: &Path, tag: &str, manifest: &Manifest) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = write_blob(layout, &bytes);
    let mut index: Index = read_json(&layout.join("index.json"));
    index
        .manifests
        .retain(|m| m.annotation(oci::ANNOTATION_REF_NAME) != Some(tag));
    let mut desc = descriptor(oci::OCI_MANIFEST, &bytes, digest);
    desc.annotations = Some(BTreeMap::from([(
        oci::ANNOTATION_REF_NAME.to_string(),
        tag.to_string(),
    )]));
    index.manifests.push(desc);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// Appends an uncompressed tar layer to `tag`'s image (config diff_ids and history too).
fn append_layer(layout: &Path, tag: &str, tar: &[u8]) {
    let (mut manifest, mut config, _) = image(layout, tag);
    let digest = write_blob(layout, tar);
    config.rootfs.diff_ids.push(digest.clone());
    if let Some(serde_json::Value::Array(history)) = config.extra.get_mut("history") {
        history.push(serde_json::json!({"created_by": "hand-built test layer"}));
    }
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = write_blob(layout, &config_bytes);
    manifest.config = descriptor(oci::OCI_CONFIG, &config_bytes, config_digest);
    manifest
        .layers
        .push(descriptor(oci::OCI_LAYER_TAR, tar, digest));
    tag_manifest(layout, tag, &manifest);
}

/// Tags as `to` a copy of `from` whose layer `n` is recompressed with zstd (same diff_ids).
fn zstd_variant(layout: &Path, from: &str, to: &str, n: usize) {
    let (mut manifest, _, _) = image(layout, from);
    let gz = fs::read(blob_path(layout, &manifest.layers[n].digest)).unwrap();
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let digest = write_blob(layout, &zst);
    manifest.layers[n] = descriptor(oci::OCI_LAYER_ZSTD, &zst, digest);
    tag_manifest(layout, to, &manifest);
}

// ---------------------------------------------------------------- raw tar writer

/// Writes tar entries byte by byte (names are not sanitised), with PAX records when asked.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn raw(&mut self, name: &[u8], kind: u8, mode: u32, link: &[u8], data: &[u8], mtime: u64) {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.raw(b"PaxHeaders/entry", b'x', 0o644, b"", &body, 0);
    }

    fn dir(&mut self, name: &str, mode: u32, mtime: u64) {
        self.raw(name.as_bytes(), b'5', mode, b"", b"", mtime);
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32, mtime: u64) {
        self.raw(name.as_bytes(), b'0', mode, b"", data, mtime);
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

// ---------------------------------------------------------------- the image

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog 0123456789\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::write(&path, data).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(root: &Path, rel: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn symlink(root: &Path, target: &str, rel: &str) {
    std::os::unix::fs::symlink(target, root.join(rel)).unwrap();
}

fn mkfifo(path: &Path, mode: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), mode) }, 0);
}

/// Sets the mtime of everything under `dir` modified after `since` (children first, so
/// directories keep theirs) to fixed times from `base` on.
fn stamp(dir: &Path, base: i64, since: i64) {
    fn walk(dir: &Path, base: i64, since: i64, n: &mut i64) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), base, since, n);
            }
            *n += 1;
            if fs::symlink_metadata(e.path()).unwrap().mtime() > since {
                let t = FileTime::from_unix_time(base + *n * 3600, 0);
                filetime::set_symlink_file_times(e.path(), t, t).unwrap();
            }
        }
    }
    walk(dir, base, since, &mut 0);
}

const LONG_DIR: &str = "a-directory-name-that-is-much-longer-than-the-hundred-bytes-a-ustar-name-field-holds-so-pax-or-gnu-is-needed";

fn first_layer(r: &Path) {
    mkdir(r, "etc", 0o755);
    write(r, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    write(r, "etc/hosts", b"127.0.0.1 localhost\n", 0o644);
    mkdir(r, "bin", 0o755);
    write(r, "bin/tool", &noise(300_000, 1), 0o755);
    fs::hard_link(r.join("bin/tool"), r.join("bin/tool-link")).unwrap();
    write(r, "bin/suid", &noise(1000, 2), 0o4755);
    write(r, "bin/sgid", &noise(1000, 3), 0o2711);
    mkdir(r, "usr/lib", 0o755);
    write(r, "usr/lib/libx.so", &noise(50_000, 4), 0o644);
    symlink(r, "usr/lib", "lib");
    symlink(r, "/etc/passwd", "abs-link");
    symlink(r, "does/not/exist", "dangling");
    mkdir(r, "data", 0o750);
    write(r, "data/big.bin", &noise(2_000_000, 5), 0o640);
    write(r, "data/text.txt", &text(100_000), 0o644);
    write(r, "data/empty", b"", 0o600);
    mkdir(r, &format!("data/{LONG_DIR}"), 0o755);
    write(
        r,
        &format!("data/{LONG_DIR}/{LONG_DIR}.txt"),
        b"long names\n",
        0o644,
    );
    fs::write(
        r.join(OsStr::from_bytes(b"data/caf\xe9.txt")),
        b"latin-1 name\n",
    )
    .unwrap();
    mkdir(r, "tmp", 0o1777);
    mkdir(r, "shared", 0o2775);
    write(r, "shared/doc", b"doc\n", 0o664);
    write(r, "shared/other", b"other\n", 0o664);
    mkdir(r, "private", 0o700);
    write(r, "private/key", b"secret\n", 0o600);
    mkdir(r, "locked", 0o555);
    write(r, "locked/ro", b"ro\n", 0o444);
    mkdir(r, "opaque-me/sub", 0o755);
    write(r, "opaque-me/x", b"x\n", 0o644);
    write(r, "opaque-me/y", b"y\n", 0o644);
    write(r, "opaque-me/sub/z", b"z\n", 0o644);
    mkdir(r, "replace-dir", 0o755);
    write(r, "replace-dir/f", b"f\n", 0o644);
    write(r, "replace-file", b"file\n", 0o644);
    symlink(r, "etc", "replace-link");
    mkfifo(&r.join("fifo"), 0o644);
    write(r, "to-delete", b"bye\n", 0o644);
    mkdir(r, "to-delete-dir/b", 0o755);
    write(r, "to-delete-dir/a", b"a\n", 0o644);
    write(r, "to-delete-dir/b/c", b"c\n", 0o644);
    mkdir(r, "recreate", 0o755);
    write(r, "recreate/old-1", b"1\n", 0o644);
    write(r, "recreate/old-2", b"2\n", 0o644);
    stamp(r, 1_000_000_000, 0);
}

fn second_layer(r: &Path) {
    fs::remove_file(r.join("to-delete")).unwrap();
    fs::remove_dir_all(r.join("to-delete-dir")).unwrap();
    fs::remove_file(r.join("replace-file")).unwrap();
    mkdir(r, "replace-file", 0o711);
    write(r, "replace-file/inside", b"inside\n", 0o644);
    fs::remove_file(r.join("replace-link")).unwrap();
    write(r, "replace-link", b"no longer a link\n", 0o644);
    fs::remove_dir_all(r.join("recreate")).unwrap();
    mkdir(r, "recreate", 0o700);
    write(r, "recreate/new", b"new\n", 0o644);
    fs::remove_dir_all(r.join("opaque-me/sub")).unwrap();
    mkdir(r, "opaque-me/sub", 0o755);
    write(r, "opaque-me/sub/w", b"w\n", 0o644);
    write(
        r,
        "etc/hosts",
        b"127.0.0.1 localhost\n::1 localhost\n",
        0o644,
    );
    // Rewriting a hard-linked file keeps the link: both names change.
    fs::write(r.join("bin/tool"), noise(200_000, 6)).unwrap();
    fs::set_permissions(r.join("bin"), fs::Permissions::from_mode(0o711)).unwrap();
    write(r, "data/new.txt", &text(5000), 0o644);
    stamp(r, 1_100_000_000, 1_050_000_000);
}

/// A layer umoci's generator never writes: opaque whiteouts, whiteouts after (and before) this
/// layer's own entries, writes and hard links through symlinks, PAX names, times and xattrs.
fn third_layer() -> Vec<u8> {
    let t = 1_200_000_000;
    let mut tar = Tar::default();
    tar.dir("./", 0o755, t);
    tar.dir("opaque-me/", 0o755, t + 1);
    tar.file(
        "opaque-me/new-file",
        b"written before the opaque\n",
        0o644,
        t + 2,
    );
    tar.file("opaque-me/.wh..wh..opq", b"", 0o644, t);
    tar.dir("opaque-me/sub2/", 0o755, t + 3);
    tar.file("opaque-me/sub2/f", b"after the opaque\n", 0o644, t + 4);
    tar.file("shared/.wh.doc", b"", 0o644, t);
    tar.file("data/extra", b"kept: written by this layer\n", 0o644, t + 5);
    tar.file("data/.wh.extra", b"", 0o644, t);
    tar.file("etc/.wh.hosts", b"", 0o644, t);
    tar.file("etc/hosts", b"replaced after its whiteout\n", 0o600, t + 6);
    tar.file("lib/libz.so", &noise(10_000, 7), 0o755, t + 7);
    tar.raw(b"newlink", b'1', 0o644, b"lib/libx.so", b"", t);
    tar.file(".wh.fifo", b"", 0o644, t);
    tar.dir("private/", 0o750, t + 8);
    // A directory replaced by a file (umoci would also white out its children).
    tar.file("replace-dir", b"now a file\n", 0o600, t + 10);
    let long = format!("data/{}-pax.txt", "p".repeat(150));
    tar.pax(&[
        ("path", long.as_bytes()),
        ("mtime", b"1200000009.75"),
        ("SCHILY.xattr.user.test", b"value"),
    ]);
    tar.file("data/truncated-by-pax", b"pax named\n", 0o644, 0);
    tar.file("usr/lib/.wh..wh.plnk", b"", 0o644, t);
    tar.finish()
}

/// The test image, built once per process: `t` (gzip, gzip, tar) and `t-zstd`.
fn test_image() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("extract-umoci-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let layout = dir.join("oci");
        let bundle = dir.join("bundle");
        let image = format!("{}:{TAG}", p(&layout));
        run("umoci", &["init", "--layout", p(&layout)]);
        run("umoci", &["new", "--image", &image]);
        run(
            "umoci",
            &["unpack", "--rootless", "--image", &image, p(&bundle)],
        );
        first_layer(&bundle.join("rootfs"));
        run(
            "umoci",
            &["repack", "--refresh-bundle", "--image", &image, p(&bundle)],
        );
        second_layer(&bundle.join("rootfs"));
        run(
            "umoci",
            &["repack", "--refresh-bundle", "--image", &image, p(&bundle)],
        );
        fs::remove_dir_all(&bundle).unwrap();
        append_layer(&layout, TAG, &third_layer());
        zstd_variant(&layout, TAG, TAG_ZSTD, 0);
        layout
    })
}

// ---------------------------------------------------------------- tree comparison

#[derive(Debug, PartialEq)]
enum Kind {
    Dir,
    File(Digest),
    Symlink(PathBuf),
    Fifo,
    Other(u32),
}

#[derive(Debug, PartialEq)]
struct Node {
    kind: Kind,
    perm: u32,
    mtime: i64,
}

struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
    links: BTreeSet<Vec<PathBuf>>,
}

fn snapshot(root: &Path) -> Tree {
    fn walk(
        root: &Path,
        rel: &Path,
        nodes: &mut BTreeMap<PathBuf, Node>,
        inodes: &mut HashMap<u64, Vec<PathBuf>>,
    ) {
        let abs = root.join(rel);
        let m = fs::symlink_metadata(&abs).unwrap();
        let t = m.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink(fs::read_link(&abs).unwrap())
        } else if t.is_file() {
            Kind::File(Digest::sha256_of(&fs::read(&abs).unwrap()))
        } else if t.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Other(m.mode() & libc::S_IFMT)
        };
        if !t.is_dir() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_default().push(rel.to_path_buf());
        }
        nodes.insert(
            rel.to_path_buf(),
            Node {
                kind,
                perm: if t.is_symlink() { 0 } else { m.mode() & 0o7777 },
                mtime: m.mtime(),
            },
        );
        if t.is_dir() {
            for e in fs::read_dir(&abs).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), nodes, inodes);
            }
        }
    }
    let mut nodes = BTreeMap::new();
    let mut inodes = HashMap::new();
    walk(root, Path::new(""), &mut nodes, &mut inodes);
    let links = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    Tree { nodes, links }
}

fn assert_same_tree(want: &Path, got: &Path) {
    let (a, b) = (snapshot(want), snapshot(got));
    let mut diffs = Vec::new();
    for path in a
        .nodes
        .keys()
        .chain(b.nodes.keys())
        .collect::<BTreeSet<_>>()
    {
        match (a.nodes.get(path), b.nodes.get(path)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!(
                "{}:\n  umoci: {x:?}\n  ours:  {y:?}",
                path.display()
            )),
        }
    }
    if a.links != b.links {
        diffs.push(format!(
            "hard links:\n  umoci: {:?}\n  ours:  {:?}",
            a.links, b.links
        ));
    }
    assert!(
        diffs.is_empty(),
        "{} differs from {}:\n{}",
        got.display(),
        want.display(),
        diffs.join("\n")
    );
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let image = format!("{}:{tag}", p(layout));
    run(
        "umoci",
        &["unpack", "--rootless", "--image", &image, p(bundle)],
    );
    bundle.join("rootfs")
}

// ---------------------------------------------------------------- tests

#[test]
fn same_tree_as_umoci_unpack() {
    let layout = test_image();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let reference = umoci_unpack(layout, TAG, &tmp.path().join("umoci"));
    // Sanity: the image exercises what it should.
    let tree = snapshot(&reference);
    for path in [
        "opaque-me/new-file",
        "data/extra",
        "usr/lib/libz.so",
        "newlink",
        "etc/hosts",
    ] {
        assert!(
            tree.nodes.contains_key(Path::new(path)),
            "{path} missing from umoci's tree"
        );
    }
    for path in [
        "opaque-me/x",
        "opaque-me/sub",
        "shared/doc",
        "fifo",
        "to-delete",
        "recreate/old-1",
        "replace-dir/f",
    ] {
        assert!(
            !tree.nodes.contains_key(Path::new(path)),
            "{path} still in umoci's tree"
        );
    }
    let node = |path: &str| &tree.nodes[Path::new(path)];
    assert_eq!(node("bin/suid").perm, 0o4755);
    assert_eq!(node("shared").perm, 0o2775);
    assert_eq!(node("tmp").perm, 0o1777);
    assert_eq!(node("locked").perm, 0o555);
    assert_eq!(node("private").perm, 0o750);
    assert_eq!(node("").mtime, 1_200_000_000);
    assert_eq!(
        node(&format!("data/{}-pax.txt", "p".repeat(150))).mtime,
        1_200_000_009
    );
    // Directories a layer changes without listing keep their times.
    assert!(node("shared").mtime < 1_200_000_000, "{:?}", node("shared"));
    assert!(
        node("usr/lib").mtime < 1_200_000_000,
        "{:?}",
        node("usr/lib")
    );

    for tag in [TAG, TAG_ZSTD] {
        let root = tmp.path().join(format!("ours-{tag}"));
        let stats = extract::unpack_rootfs(&root, layers(layout, tag), &Options::default())
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert!(stats.files > 20 && stats.whiteouts >= 5, "{stats:?}");
        assert_same_tree(&reference, &root);
        let pax_file = root.join(format!("data/{}-pax.txt", "p".repeat(150)));
        assert_eq!(
            xattr::get(&pax_file, "user.test").as_deref(),
            Some(&b"value"[..])
        );
    }
}

#[test]
fn a_corrupt_layer_leaves_nothing_behind() {
    let layout = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let mut bad = layers(layout, TAG);
    // The right blob, announced with another layer's diff_id: refused after extraction.
    if let Ok(l) = &mut bad[1] {
        l.diff_id = Some(Digest::sha256_of(b"not this layer"));
    }
    let err = extract::unpack_rootfs(&root, bad, &Options::default()).unwrap_err();
    assert!(
        matches!(err, extract::Error::Digest { .. }),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains("diff_id"), "{err}");
    assert!(!root.exists(), "the half-built rootfs was left behind");

    // An existing, non-empty destination is refused and left alone.
    fs::create_dir(&root).unwrap();
    fs::write(root.join("mine"), "mine").unwrap();
    let err = extract::unpack_rootfs(&root, layers(layout, TAG), &Options::default()).unwrap_err();
    assert!(matches!(err, extract::Error::NotEmpty { .. }), "{err}");
    assert_eq!(fs::read_to_string(root.join("mine")).unwrap(), "mine");

    // An existing empty destination is emptied again on error, and kept.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut bad = layers(layout, TAG);
    if let Ok(l) = &mut bad[2] {
        l.descriptor.size += 1;
    }
    let err = extract::unpack_rootfs(&empty, bad, &Options::default()).unwrap_err();
    assert!(matches!(err, extract::Error::Size { .. }), "{err}");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

fn docker_archive(layout: &Path, dir: &Path) -> PathBuf {
    let (_, _, config) = image(layout, TAG_ZSTD);
    let file = dir.join("image.tar");
    let out = File::create(&file).unwrap();
    gdcloud::layout::write_docker_archive(
        out,
        &["localhost/extract-test:v1".to_string()],
        &config,
        layers(layout, TAG_ZSTD),
        dir,
    )
    .unwrap();
    file
}

#[test]
fn docker_archive_is_accepted_by_skopeo() {
    let layout = test_image();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = docker_archive(layout, tmp.path());
    let source = format!("docker-archive:{}", p(&file));
    let inspect: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", &source])).unwrap();
    let (_, config, _) = image(layout, TAG);
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(config.rootfs.diff_ids.len()),
        "{inspect}"
    );

    // Copied back to an OCI layout, the image unpacks to the same tree as the original.
    let copy = tmp.path().join("copy");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &source,
            &format!("oci:{}:{TAG}", p(&copy)),
        ],
    );
    let (_, copied, _) = image(&copy, TAG);
    assert_eq!(copied.rootfs.diff_ids, config.rootfs.diff_ids);
    let reference = umoci_unpack(layout, TAG, &tmp.path().join("umoci"));
    let root = tmp.path().join("ours");
    extract::unpack_rootfs(&root, layers(&copy, TAG), &Options::default()).unwrap();
    assert_same_tree(&reference, &root);
}

#[test]
fn docker_archive_is_accepted_by_podman_load() {
    let layout = test_image();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = docker_archive(layout, tmp.path());
    let store = tmp.path().join("storage");
    let runroot = tmp.path().join("run");
    let podman = |args: &[&str]| {
        let mut all = vec![
            "--storage-driver",
            "vfs",
            "--root",
            p(&store),
            "--runroot",
            p(&runroot),
            "--cgroup-manager=cgroupfs",
            "--events-backend=none",
        ];
        all.extend_from_slice(args);
        run("podman", &all)
    };
    let loaded = podman(&["load", "-i", p(&file)]);
    assert!(
        loaded.contains("localhost/extract-test:v1"),
        "podman load said: {loaded}"
    );
    let images = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("localhost/extract-test:v1"), "{images}");
    let _ = fs::remove_dir_all(&store);
}

/// `GDCLOUD_EXTRACT_BENCH=<oci layout>:<tag> cargo test --release --test integration -- --ignored
/// --nocapture extract_umoci::bench_against_umoci`: times `umoci unpack --rootless` and `unpack_rootfs` on the same image.
#[test]
#[ignore = "benchmark: needs GDCLOUD_EXTRACT_BENCH=<layout>:<tag>"]
fn bench_against_umoci() {
    let spec = std::env::var("GDCLOUD_EXTRACT_BENCH")
        .expect("set GDCLOUD_EXTRACT_BENCH=<oci layout>:<tag> to run the benchmark");
    let (layout, tag) = spec.rsplit_once(':').expect("<layout>:<tag>");
    let layout = Path::new(layout);
    let rounds: usize = std::env::var("GDCLOUD_EXTRACT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // `ours` skips umoci (to trace our system calls alone).
    let only_ours = std::env::var("GDCLOUD_EXTRACT_BENCH_ONLY").as_deref() == Ok("ours");
    // Outputs stay until the end: ext4 makes creating files slow while it avoids reusing inodes
    // deleted in the last minutes, which would penalise whichever run follows a clean-up.
    let base = std::env::var_os("GDCLOUD_EXTRACT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| layout.parent().unwrap().join("bench-out"));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    let (mut umoci_wall, mut umoci_cpu) = (vec![], vec![]);
    let (mut our_wall, mut our_cpu) = (vec![], vec![]);
    for round in 0..rounds {
        let bundle = base.join(format!("umoci-{round}"));
        let root = base.join(format!("ours-{round}"));
        // Alternate who goes first.
        for ours in [round % 2 == 0, round % 2 != 0] {
            run("sync", &[]);
            if ours {
                let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_THREAD));
                let stats = extract::unpack_rootfs(&root, layers(layout, tag), &Options::default())
                    .unwrap();
                our_wall.push(t.elapsed().as_secs_f64());
                our_cpu.push(cpu_seconds(libc::RUSAGE_THREAD) - cpu);
                if round == 0 {
                    println!("{stats:?}");
                }
            } else if !only_ours {
                let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
                umoci_unpack(layout, tag, &bundle);
                umoci_wall.push(t.elapsed().as_secs_f64());
                umoci_cpu.push(cpu_seconds(libc::RUSAGE_CHILDREN) - cpu);
            }
        }
        if round == 0 && !only_ours {
            assert_same_tree(&bundle.join("rootfs"), &root);
        }
    }
    fs::remove_dir_all(&base).unwrap();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (ow, oc) = (median(&mut our_wall), median(&mut our_cpu));
    println!("unpack_rootfs:           wall {ow:.2}s cpu {oc:.2}s (wall runs {our_wall:.2?})");
    if !only_ours {
        let (uw, uc) = (median(&mut umoci_wall), median(&mut umoci_cpu));
        println!(
            "umoci unpack --rootless: wall {uw:.2}s cpu {uc:.2}s (wall runs {umoci_wall:.2?})"
        );
        println!("ratio (medians): wall {:.2}, cpu {:.2}", ow / uw, oc / uc);
    }
    let _ = std::io::stdout().flush();
}

/// User + system CPU seconds of this thread (or of the children waited for).
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage only fills the zeroed struct we own.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(who, &mut r) }, 0);
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}
