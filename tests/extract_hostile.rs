//! Hostile layers and artifacts: every known way a tar (or a manifest's title) tries to create,
//! change or remove something outside the destination. Each case runs in a fresh directory
//! `tmp/` holding the destination `tmp/root`, a sentinel file `tmp/sentinel` and a sentinel
//! directory `tmp/outside/`; the layers' symlinks point at those (by absolute and by relative
//! path). A case passes when the entry is refused with an error naming it, or the result is
//! confined to the root — and, either way, when `tmp/` outside the root is exactly as before
//! (paths, types, contents, modes, mtimes, link counts, inodes).
//!
//! The cases that name `/etc` itself (`link -> /etc` then `link/passwd`, `/etc/passwd` as a name,
//! whiteouts and hard links through `/etc`) run in a child process with a private mount namespace
//! whose `/etc` is a throwaway copy: a regression in the code under test must never be able to
//! damage the host it runs on.
//!
//! Tar entries are written byte by byte: `tar::Builder` would sanitise the very names under test.

use crate::util::xattr;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use gdcloud::extract::{self, Error, Layer, Options};
use gdcloud::oci::{self, Descriptor, Digest, Index, Manifest};

// ---------------------------------------------------------------- raw tar writer

#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    /// One header (+ data) with `name` and `link` copied verbatim into the ustar fields.
    fn raw(&mut self, name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    /// An entry with an owner and a mode.
    fn owned(&mut self, name: &str, kind: u8, mode: u32, owner: (u64, u64)) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(kind));
        if kind == b'2' {
            h.set_link_name("target").unwrap();
        }
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }

    /// A character device node.
    fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), b'0', b"", data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'5', b"", b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'2', target.as_bytes(), b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'1', target.as_bytes(), b"")
    }

    /// A GNU long-name record for the next entry.
    fn long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        self.raw(b"././@LongLink", b'L', b"", &data)
    }

    /// A PAX record set for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
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
        self.raw(b"PaxHeaders/x", b'x', b"", &body)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0; 1024]);
        out
    }
}

// ---------------------------------------------------------------- the sandbox

struct Sandbox {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

/// Everything under `dir` but its `root`, as comparable text.
fn outside_state(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let abs = dir.join(rel);
        let m = fs::symlink_metadata(&abs).unwrap();
        let content = if m.is_file() {
            format!("{:?}", Digest::sha256_of(&fs::read(&abs).unwrap()))
        } else if m.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(&abs).unwrap())
        } else {
            String::new()
        };
        out.insert(
            rel.to_path_buf(),
            format!(
                "{:o} {} {} ino={} nlink={} {content}",
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.nlink()
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(&abs).unwrap() {
                let name = e.unwrap().file_name();
                if rel.as_os_str().is_empty() && name == "root" {
                    continue;
                }
                walk(dir, &rel.join(name), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let root = dir.join("root");
        let outside = dir.join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(dir.join("sentinel"), "sentinel").unwrap();
        fs::write(outside.join("file"), "outside file").unwrap();
        fs::write(outside.join("passwd"), "outside passwd").unwrap();
        fs::create_dir(outside.join("sub")).unwrap();
        fs::write(outside.join("sub/deep"), "deep").unwrap();
        let before = outside_state(&dir);
        Sandbox {
            _tmp: tmp,
            dir,
            root,
            outside,
            before,
        }
    }

    fn outside(&self) -> &str {
        self.outside.to_str().unwrap()
    }

    fn apply(&self, tar: &Tar) -> Result<(), Error> {
        extract::apply_layer(
            &self.root,
            &tar.bytes()[..],
            &Options::default(),
            "test-layer",
        )
    }

    fn assert_untouched(&self, case: &str) {
        let after = outside_state(&self.dir);
        assert_eq!(
            self.before, after,
            "{case}: something outside the root changed"
        );
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("{rel} in the root: {e}"))
    }
}

fn assert_refused(result: Result<(), Error>, entry: &str, case: &str) {
    match result {
        Err(e @ Error::HostileEntry { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{entry:?}")),
                "{case}: the error does not name the entry {entry:?}: {msg}"
            );
            assert!(!msg.contains('\n'), "{case}: multi-line message: {msg}");
        }
        Err(e) => panic!("{case}: expected a refusal naming {entry:?}, got: {e}"),
        Ok(()) => panic!("{case}: the hostile entry {entry:?} was accepted"),
    }
}

/// An error (any kind) that names the entry.
fn assert_error_names(result: Result<(), Error>, entry: &str, case: &str) {
    let e = result.expect_err(case);
    assert!(
        e.to_string().contains(&format!("{entry:?}")),
        "{case}: the error does not name {entry:?}: {e}"
    );
}

// ---------------------------------------------------------------- names

#[test]
fn dotdot_names_are_refused() {
    for (case, name) in [
        ("parent", "../escape"),
        ("parent of root dir", "./../sentinel"),
        ("climb after descend", "a/../../x"),
        ("deep climb", "a/b/../../../outside/file"),
        ("dotdot dir", "../outside/"),
    ] {
        let sb = Sandbox::new();
        let mut tar = Tar::default();
        tar.file("ok-before", b"fine").file(name, b"evil");
        assert_refused(sb.apply(&tar), name, case);
        sb.assert_untouched(case);
    }
}

#[test]
fn long_and_pax_names_are_checked_too() {
    let sb = Sandbox::new();
    let long = format!("{}{}sentinel", "d/".repeat(30), "../".repeat(31));
    let mut tar = Tar::default();
    tar.long_name(long.as_bytes()).file("short", b"evil");
    assert_refused(sb.apply(&tar), &long, "GNU long name");
    sb.assert_untouched("GNU long name");

    let mut tar = Tar::default();
    tar.pax(&[("path", b"../outside/file")])
        .file("innocent", b"evil");
    assert_refused(sb.apply(&tar), "../outside/file", "PAX path");
    sb.assert_untouched("PAX path");

    let mut tar = Tar::default();
    tar.pax(&[("path", b"a\0b")]).file("innocent", b"evil");
    assert_refused(sb.apply(&tar), "a\0b", "NUL in a PAX path");
    sb.assert_untouched("NUL in a PAX path");
}

#[test]
fn absolute_names_are_rooted() {
    let sb = Sandbox::new();
    let abs = format!("{}/file", sb.outside());
    let mut tar = Tar::default();
    tar.file("/abs/path", b"rooted").file(&abs, b"rooted too");
    sb.apply(&tar).unwrap();
    assert_eq!(sb.read("abs/path"), "rooted");
    assert_eq!(sb.read(&abs[1..]), "rooted too");
    sb.assert_untouched("absolute names");
}

#[test]
fn the_root_cannot_change_type() {
    for (case, kind, link) in [
        ("symlink", b'2', "/"),
        ("file", b'0', ""),
        ("hardlink", b'1', "x"),
    ] {
        for name in [".", "./", "/"] {
            let sb = Sandbox::new();
            let mut tar = Tar::default();
            tar.file("x", b"x")
                .raw(name.as_bytes(), kind, link.as_bytes(), b"");
            assert_refused(sb.apply(&tar), name, case);
            assert!(fs::symlink_metadata(&sb.root).unwrap().is_dir());
            sb.assert_untouched(case);
        }
    }
}

// ---------------------------------------------------------------- symlinks

#[test]
fn writes_through_symlinks_stay_inside() {
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    let mut tar = Tar::default();
    tar.symlink("abs", &out)
        .file("abs/file", b"confined abs")
        .dir("abs/sub/")
        .file("abs/sub/deep", b"confined deep")
        .symlink("up", "../../..")
        .file("up/sentinel", b"confined up")
        .symlink("dir/up", "../..")
        .file("dir/up/outside/passwd", b"confined rel")
        .symlink("chain", "up/up/abs")
        .file("chain/new", b"confined chain");
    sb.apply(&tar).unwrap();
    assert_eq!(sb.read(&format!("{}/file", &out[1..])), "confined abs");
    assert_eq!(sb.read(&format!("{}/sub/deep", &out[1..])), "confined deep");
    assert_eq!(sb.read("sentinel"), "confined up");
    assert_eq!(sb.read("outside/passwd"), "confined rel");
    assert_eq!(sb.read(&format!("{}/new", &out[1..])), "confined chain");
    // The symlinks themselves are kept as written.
    assert_eq!(fs::read_link(sb.root.join("abs")).unwrap(), sb.outside);
    assert_eq!(
        fs::read_link(sb.root.join("up")).unwrap(),
        Path::new("../../..")
    );
    sb.assert_untouched("writes through symlinks");
}

#[test]
fn entries_replace_symlinks_rather_than_follow_them() {
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    let mut tar = Tar::default();
    tar.symlink("f", &format!("{out}/file"))
        .file("f", b"replaced the link")
        .symlink("d", &out)
        .dir("d/")
        .symlink("h", &format!("{out}/passwd"))
        .file("real", b"real")
        .hardlink("h", "real")
        .symlink("s", "../sentinel")
        .symlink("s", "/etc/shadow");
    sb.apply(&tar).unwrap();
    assert_eq!(sb.read("f"), "replaced the link");
    assert!(fs::symlink_metadata(sb.root.join("d")).unwrap().is_dir());
    assert_eq!(fs::metadata(sb.root.join("h")).unwrap().nlink(), 2);
    assert_eq!(
        fs::read_link(sb.root.join("s")).unwrap(),
        Path::new("/etc/shadow")
    );
    sb.assert_untouched("replace symlinks");
}

#[test]
fn a_symlink_replacing_a_dir_then_a_write_into_it() {
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    let mut tar = Tar::default();
    tar.dir("d/")
        .file("d/f", b"first")
        .symlink("d", &out)
        .file("d/file", b"confined after swap")
        .dir("e/")
        .dir("e/sub/")
        .symlink("e", "..")
        .file("e/sentinel", b"confined relative swap")
        .dir("e/sub/")
        .file("e/sub/x", b"x");
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read_link(sb.root.join("d")).unwrap(), sb.outside);
    assert_eq!(
        sb.read(&format!("{}/file", &out[1..])),
        "confined after swap"
    );
    assert_eq!(sb.read("sentinel"), "confined relative swap");
    assert_eq!(sb.read("sub/x"), "x");
    sb.assert_untouched("symlink replacing a dir");
}

#[test]
fn symlink_loops_are_errors() {
    let sb = Sandbox::new();
    let mut tar = Tar::default();
    tar.symlink("a", "b").symlink("b", "a").file("a/x", b"x");
    assert_error_names(sb.apply(&tar), "a/x", "loop");
    let mut tar = Tar::default();
    tar.symlink("self", "/self").file("self/x", b"x");
    assert_error_names(sb.apply(&tar), "self/x", "absolute self loop");
    sb.assert_untouched("symlink loops");
}

// ---------------------------------------------------------------- /etc, in a private namespace

const FAKE_ETC: &str = "GDCLOUD_EXTRACT_TEST_PRIVATE_ETC";

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

/// Runs `etc_cases_inner` in a child with its own mount namespace, where `/etc` is a bind mount
/// of a copy: the cases aim at the real `/etc`, and a bug must not be able to reach it.
#[test]
fn etc_cases_run_against_a_private_copy_of_etc() {
    require_tool("unshare");
    require_tool("mount");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("etc");
    let host_before = outside_state(Path::new("/etc/ssl"));
    let host_passwd = fs::read("/etc/passwd").ok();
    let script =
        r#"cp -a /etc "$1" 2>/dev/null; mount --bind "$1" /etc || exit 97; shift; exec "$@""#;
    let mut cmd = std::process::Command::new("unshare");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--map-root-user");
    }
    let out = cmd
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&copy)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "extract_hostile::etc_cases_inner",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAKE_ETC, &copy)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the /etc cases failed in their namespace ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        fs::read("/etc/passwd").ok(),
        host_passwd,
        "the host's /etc/passwd changed"
    );
    assert_eq!(outside_state(Path::new("/etc/ssl")), host_before);
}

/// The `/etc` cases proper; only ever run by the test above, inside its namespace.
#[test]
#[ignore = "run by etc_cases_run_against_a_private_copy_of_etc, in a private mount namespace"]
fn etc_cases_inner() {
    let copy = std::env::var_os(FAKE_ETC)
        .expect("run through etc_cases_run_against_a_private_copy_of_etc, never on its own");
    let (etc, copy) = (fs::metadata("/etc").unwrap(), fs::metadata(&copy).unwrap());
    assert!(
        (etc.dev(), etc.ino()) == (copy.dev(), copy.ino()),
        "/etc is not the private copy: refusing to aim hostile layers at the host's /etc"
    );
    let etc_before = outside_state(Path::new("/etc"));
    let sb = Sandbox::new();

    let mut tar = Tar::default();
    tar.symlink("link", "/etc")
        .file("link/passwd", b"confined")
        .file("/etc/hostname", b"rooted")
        .hardlink("h", "/etc/passwd")
        .hardlink("via-link", "link/passwd");
    sb.apply(&tar).unwrap();
    assert_eq!(sb.read("etc/passwd"), "confined");
    assert_eq!(sb.read("etc/hostname"), "rooted");
    let ino = fs::metadata(sb.root.join("etc/passwd")).unwrap().ino();
    assert_eq!(fs::metadata(sb.root.join("h")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(sb.root.join("via-link")).unwrap().ino(), ino);

    let mut tar = Tar::default();
    tar.file("link/.wh.passwd", b"")
        .file("/etc/.wh.hostname", b"")
        .file("link/.wh..wh..opq", b"")
        .symlink("up", "../../../../../../../..")
        .file("up/etc/.wh.group", b"");
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read_dir(sb.root.join("etc")).unwrap().count(), 0);

    let mut tar = Tar::default();
    tar.hardlink("h2", "/etc/shadow");
    assert_error_names(sb.apply(&tar), "h2", "hard link to the image's /etc/shadow");
    let mut tar = Tar::default();
    tar.hardlink("h3", "../../../../../etc/passwd");
    assert_refused(sb.apply(&tar), "h3", "hard link climbing to /etc");

    assert!(
        outside_state(Path::new("/etc")) == etc_before,
        "/etc changed"
    );
    sb.assert_untouched("/etc cases");
}

// ---------------------------------------------------------------- hard links

#[test]
fn hardlinks_cannot_reach_outside() {
    let sb = Sandbox::new();
    let mut tar = Tar::default();
    tar.hardlink("h", "../outside/file");
    assert_refused(sb.apply(&tar), "h", "dotdot hard link");
    let mut tar = Tar::default();
    tar.hardlink("h", "a/../../sentinel");
    assert_refused(sb.apply(&tar), "h", "climbing hard link");

    // Absolute targets are image paths: the image has no such file.
    let out = sb.outside().to_string();
    let mut tar = Tar::default();
    tar.hardlink("h", &format!("{out}/file"));
    assert_error_names(sb.apply(&tar), "h", "absolute outside hard link");
    // Through a symlinked directory: resolved inside the root, so nothing to link to.
    let mut tar = Tar::default();
    tar.symlink("l", &out).hardlink("h", "l/file");
    assert_error_names(sb.apply(&tar), "h", "hard link through a symlink");
    let mut tar = Tar::default();
    tar.symlink("up", "../..").hardlink("h2", "up/sentinel");
    assert_error_names(sb.apply(&tar), "h2", "hard link through a relative symlink");
    sb.assert_untouched("hard links");

    // When the image has the file, the link is to the image's copy.
    let sb = Sandbox::new();
    let mut tar = Tar::default();
    let out = sb.outside().to_string();
    tar.raw(format!("{out}/").as_bytes(), b'5', b"", b"")
        .file(&format!("{out}/passwd"), b"image passwd")
        .hardlink("h", &format!("{out}/passwd"))
        .symlink("l", &out)
        .hardlink("via-link", "l/passwd")
        .symlink("to-passwd", &format!("{out}/passwd"))
        .hardlink("link-to-symlink", "to-passwd");
    sb.apply(&tar).unwrap();
    let ino = fs::metadata(sb.root.join(&out[1..]).join("passwd"))
        .unwrap()
        .ino();
    assert_eq!(fs::metadata(sb.root.join("h")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(sb.root.join("via-link")).unwrap().ino(), ino);
    // The last component is not followed: a hard link to the symlink itself.
    assert!(fs::symlink_metadata(sb.root.join("link-to-symlink"))
        .unwrap()
        .file_type()
        .is_symlink());
    sb.assert_untouched("image hard links");
}

#[test]
fn rewriting_a_hardlinked_name_does_not_write_through_it() {
    let sb = Sandbox::new();
    let mut tar = Tar::default();
    tar.file("a", b"original")
        .hardlink("b", "a")
        .file("b", b"new content");
    sb.apply(&tar).unwrap();
    assert_eq!(sb.read("a"), "original");
    assert_eq!(sb.read("b"), "new content");
    sb.assert_untouched("rewrite a hard link");
}

// ---------------------------------------------------------------- whiteouts

#[test]
fn hostile_whiteouts_are_refused() {
    for (case, name) in [
        ("whiteout of ..", ".wh..."),
        ("whiteout of .", ".wh.."),
        ("nested whiteout of ..", "d/.wh..."),
        ("empty whiteout", ".wh."),
        ("empty nested whiteout", "d/.wh."),
        ("whiteout outside", "../.wh.sentinel"),
        ("whiteout outside dir", "../outside/.wh.file"),
        ("opaque outside", "../outside/.wh..wh..opq"),
    ] {
        let sb = Sandbox::new();
        fs::create_dir(sb.root.join("d")).unwrap();
        let mut tar = Tar::default();
        tar.file(name, b"");
        assert_refused(sb.apply(&tar), name, case);
        assert!(sb.root.join("d").is_dir(), "{case}");
        sb.assert_untouched(case);
    }
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    fs::write(sb.root.join("sentinel"), "inside").unwrap();
    let mut tar = Tar::default();
    tar.symlink("abs", &out)
        .file("abs/.wh.file", b"")
        .file("abs/.wh.sub", b"")
        .file("abs/.wh..wh..opq", b"")
        .symlink("up", "../..")
        .file("up/.wh.outside", b"")
        .file("up/outside/.wh..wh..opq", b"")
        .file("up/.wh.sentinel", b"")
        .file(&format!("{out}/.wh.file"), b"")
        .file(".wh.nothing-here", b"");
    sb.apply(&tar).unwrap();
    // `up/.wh.sentinel` is the root's own sentinel.
    assert!(!sb.root.join("sentinel").exists());
    assert!(fs::symlink_metadata(sb.root.join("abs")).is_ok());
    sb.assert_untouched("whiteouts through symlinks");
}

#[test]
fn whiteout_of_a_symlink_removes_the_link_not_its_target() {
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    let mut first = Tar::default();
    first
        .symlink("l", &out)
        .symlink("m", "../outside")
        .dir("d/")
        .symlink("d/l", &out);
    sb.apply(&first).unwrap();
    let mut second = Tar::default();
    second
        .file(".wh.l", b"")
        .file(".wh.m", b"")
        .file("d/.wh..wh..opq", b"");
    sb.apply(&second).unwrap();
    assert!(fs::symlink_metadata(sb.root.join("l")).is_err());
    assert!(fs::symlink_metadata(sb.root.join("m")).is_err());
    assert_eq!(fs::read_dir(sb.root.join("d")).unwrap().count(), 0);
    sb.assert_untouched("whiteout of a symlink");
}

// ---------------------------------------------------------------- other entries

#[test]
fn devices_truncation_and_unknown_types() {
    let sb = Sandbox::new();
    let mut tar = Tar::default();
    tar.raw(b"dev/null", b'3', b"", b"");
    let no_devices = Options {
        same_owner: false,
        allow_devices: false,
        drop_privileges: false,
    };
    extract::apply_layer(&sb.root, &tar.bytes()[..], &no_devices, "no-devices").unwrap();
    assert!(
        !sb.root.join("dev/null").exists(),
        "devices are skipped when not allowed"
    );
    if Options::default().allow_devices {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_path("dev/null").unwrap();
        h.set_cksum();
        let mut tar = Tar::default();
        tar.0.extend_from_slice(h.as_bytes());
        sb.apply(&tar).unwrap();
        let t = fs::symlink_metadata(sb.root.join("dev/null"))
            .unwrap()
            .file_type();
        assert!(t.is_char_device());
    }

    // A file whose data stops short of its header's size.
    let mut tar = Tar::default();
    tar.file("short", &[b'x'; 2000]);
    let mut bytes = tar.0.clone();
    bytes.truncate(512 + 1000);
    let err = extract::apply_layer(&sb.root, &bytes[..], &Options::default(), "short").unwrap_err();
    assert!(
        matches!(err, Error::ShortEntry { .. } | Error::Read { .. }),
        "{err}"
    );

    let mut tar = Tar::default();
    tar.raw(b"volume", b'V', b"", b"");
    let err = sb.apply(&tar).unwrap_err();
    assert!(matches!(err, Error::UnsupportedEntry { .. }), "{err}");
    assert!(err.to_string().contains("\"volume\""), "{err}");
    sb.assert_untouched("other entries");
}

#[test]
fn unpack_rootfs_removes_what_it_built_on_a_hostile_layer() {
    let sb = Sandbox::new();
    let mut good = Tar::default();
    good.dir("etc/")
        .file("etc/hosts", b"hosts")
        .symlink("l", sb.outside());
    let mut evil = Tar::default();
    evil.file("l/ok", b"fine").file("../escape", b"evil");
    let layer = |tar: &Tar| {
        let bytes = tar.bytes();
        let descriptor = descriptor(oci::OCI_LAYER_TAR, &bytes, None);
        Ok(Layer {
            diff_id: Some(descriptor.digest.clone()),
            descriptor,
            reader: std::io::Cursor::new(bytes),
        })
    };
    let root = sb.dir.join("root/new");
    let err = extract::unpack_rootfs(&root, [layer(&good), layer(&evil)], &Options::default())
        .unwrap_err();
    assert_refused(Err(err), "../escape", "unpack_rootfs");
    assert!(!root.exists());
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 0);
    sb.assert_untouched("unpack_rootfs");
}

// ---------------------------------------------------------------- artifacts

fn descriptor(media_type: &str, data: &[u8], title: Option<&str>) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::sha256_of(data),
        size: data.len() as u64,
        urls: None,
        annotations: title
            .map(|t| BTreeMap::from([(oci::ANNOTATION_TITLE.to_string(), t.to_string())])),
        platform: None,
        artifact_type: None,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes an OCI layout holding one artifact manifest with these layers (blob, descriptor).
fn artifact_layout(dir: &Path, layers: &[(Vec<u8>, Descriptor)]) -> PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = Digest::sha256_of(data);
        fs::write(blobs.join(d.hex()), data).unwrap();
        d
    };
    // Stored under the descriptor's digest, so a test can describe a corrupt blob.
    for (blob, d) in layers {
        fs::write(blobs.join(d.digest.hex()), blob).unwrap();
    }
    let config = b"{}";
    put(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": "application/vnd.example.bundle",
        "config": descriptor(oci::OCI_EMPTY, config, None),
        "layers": layers.iter().map(|(_, d)| d).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": oci::OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "annotations": {oci::ANNOTATION_REF_NAME: "v1"},
        }],
    });
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
    layout
}

/// The layers of the layout's `v1` manifest, as `write_artifact_files` takes them.
fn artifact_layers(layout: &Path) -> Vec<Result<Layer<fs::File>, Error>> {
    let index: Index =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &Digest| layout.join("blobs/sha256").join(d.hex());
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(blob(&index.manifests[0].digest)).unwrap()).unwrap();
    manifest
        .layers
        .into_iter()
        .map(|d| {
            let reader = fs::File::open(blob(&d.digest)).unwrap();
            Ok(Layer {
                descriptor: d,
                diff_id: None,
                reader,
            })
        })
        .collect()
}

fn oras_dir(title: &str, extra: &[(&str, &str)]) -> (Vec<u8>, Descriptor) {
    let mut tar = Tar::default();
    tar.dir(&format!("{title}/"))
        .file(&format!("{title}/a.txt"), b"packed a")
        .dir(&format!("{title}/sub/"))
        .file(&format!("{title}/sub/b.txt"), b"packed b");
    for (name, target) in extra {
        tar.symlink(name, target);
    }
    let blob = gzip(&tar.bytes());
    let mut d = descriptor(oci::OCI_LAYER_GZIP, &blob, Some(title));
    d.annotations
        .as_mut()
        .unwrap()
        .insert(extract::ANNOTATION_UNPACK.into(), "true".into());
    (blob, d)
}

#[test]
fn artifact_files_are_written_by_title() {
    let sb = Sandbox::new();
    let plain = b"hello artifact\n".to_vec();
    let nested = gzip(b"kept compressed: files are written as stored");
    let untitled = b"no title".to_vec();
    let layout = artifact_layout(
        &sb.dir.join("root"),
        &[
            (
                plain.clone(),
                descriptor("text/plain", &plain, Some("hello.txt")),
            ),
            (
                nested.clone(),
                descriptor(oci::OCI_LAYER_GZIP, &nested, Some("dir/nested.gz")),
            ),
            (untitled.clone(), descriptor("text/plain", &untitled, None)),
            oras_dir("bundle", &[]),
        ],
    );
    let dest = sb.dir.join("root/out");
    let written = extract::write_artifact_files(&dest, artifact_layers(&layout)).unwrap();
    assert_eq!(
        written,
        ["hello.txt", "dir/nested.gz", "bundle"].map(|t| dest.join(t))
    );
    assert_eq!(fs::read(dest.join("hello.txt")).unwrap(), plain);
    assert_eq!(fs::read(dest.join("dir/nested.gz")).unwrap(), nested);
    assert_eq!(
        fs::read_to_string(dest.join("bundle/a.txt")).unwrap(),
        "packed a"
    );
    assert_eq!(
        fs::read_to_string(dest.join("bundle/sub/b.txt")).unwrap(),
        "packed b"
    );
    let mut names: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["bundle", "dir", "hello.txt"]);
    sb.assert_untouched("artifact files");
}

#[test]
fn hostile_titles_are_refused() {
    for n in 0..8 {
        let sb = Sandbox::new();
        // Absolute titles name the sandbox, never a host path.
        let title = match n {
            0 => "../x".to_string(),
            1 => format!("{}/x", sb.outside()),
            2 => "a/../../x".into(),
            3 => "..".into(),
            4 => ".".into(),
            5 => "".into(),
            6 => "a\0b".into(),
            _ => "../outside/file".into(),
        };
        let ok = b"first".to_vec();
        let evil = b"evil".to_vec();
        let layout = artifact_layout(
            &sb.dir.join("root"),
            &[
                (ok.clone(), descriptor("text/plain", &ok, Some("first.txt"))),
                (evil.clone(), descriptor("text/plain", &evil, Some(&title))),
            ],
        );
        let dest = sb.dir.join("root/out");
        let err = extract::write_artifact_files(&dest, artifact_layers(&layout)).unwrap_err();
        assert!(matches!(err, Error::Title { .. }), "{title:?}: {err}");
        assert!(err.to_string().contains(&format!("{title:?}")), "{err}");
        assert!(
            !dest.join("first.txt").exists(),
            "{title:?}: not cleaned up"
        );
        sb.assert_untouched(&title);
    }
}

#[test]
fn artifact_titles_and_packed_dirs_cannot_escape() {
    // A packed directory plants symlinks; later titles go through them; then a layer fails,
    // and the clean-up must not follow them either.
    let sb = Sandbox::new();
    let out = sb.outside().to_string();
    let bad = b"corrupt".to_vec();
    let mut bad_desc = descriptor("text/plain", &bad, Some("last.txt"));
    bad_desc.digest = Digest::sha256_of(b"something else");
    let layout = artifact_layout(
        &sb.dir.join("root"),
        &[
            oras_dir("pkg", &[("pkg/out", &out), ("pkg/up", "../../..")]),
            (
                b"via abs".to_vec(),
                descriptor("text/plain", b"via abs", Some("pkg/out/file")),
            ),
            (
                b"via up".to_vec(),
                descriptor("text/plain", b"via up", Some("pkg/up/sentinel")),
            ),
            (bad, bad_desc),
        ],
    );
    let dest = sb.dir.join("root/out");
    let err = extract::write_artifact_files(&dest, artifact_layers(&layout)).unwrap_err();
    assert!(matches!(err, Error::Digest { .. }), "{err}");
    sb.assert_untouched("titles through symlinks");

    // A packed directory with an entry outside its title is refused.
    let sb = Sandbox::new();
    let layout = artifact_layout(&sb.dir.join("root"), &[oras_dir("pkg", &[("other", "x")])]);
    let err = extract::write_artifact_files(&sb.dir.join("root/out"), artifact_layers(&layout))
        .unwrap_err();
    assert!(matches!(err, Error::HostileEntry { .. }), "{err}");
    assert!(err.to_string().contains("\"other\""), "{err}");
    sb.assert_untouched("packed entry outside its title");

    // The same title twice is refused; so is a title that names an existing file.
    let sb = Sandbox::new();
    let a = b"a".to_vec();
    let layout = artifact_layout(
        &sb.dir.join("root"),
        &[
            (a.clone(), descriptor("text/plain", &a, Some("same"))),
            (a.clone(), descriptor("text/plain", &a, Some("./same"))),
        ],
    );
    let err = extract::write_artifact_files(&sb.dir.join("root/out"), artifact_layers(&layout))
        .unwrap_err();
    assert!(matches!(err, Error::Title { .. }), "{err}");
    let mut s = String::new();
    let _ = fs::File::open(sb.dir.join("root/out/same")).map(|mut f| f.read_to_string(&mut s));
    assert!(s.is_empty(), "not cleaned up");
    sb.assert_untouched("duplicate titles");
}

// ---------------------------------------------------------------- owners

#[test]
fn owners_modes_and_setgid_groups() {
    let sb = Sandbox::new();
    let mut first = Tar::default();
    first
        .owned("g/", b'5', 0o2775, (0, 50))
        .owned("g/user", b'0', 0o644, (1000, 50))
        .owned("g/root", b'0', 0o644, (0, 0))
        .owned("g/suid", b'0', 0o4755, (1000, 1000))
        .owned("g/link", b'2', 0o777, (1000, 1000));
    let mut second = Tar::default();
    second.owned("g/later", b'0', 0o640, (0, 0));
    let opts = Options::default();
    for tar in [&first, &second] {
        extract::apply_layer(&sb.root, &tar.bytes()[..], &opts, "owners").unwrap();
    }
    let stat = |p: &str| fs::symlink_metadata(sb.root.join(p)).unwrap();
    assert_eq!(stat("g").mode() & 0o7777, 0o2775);
    assert_eq!(
        stat("g/suid").mode() & 0o7777,
        0o4755,
        "chown must come before chmod"
    );
    assert_eq!(stat("g/later").mode() & 0o7777, 0o640);
    if opts.same_owner {
        let owner = |p: &str| (stat(p).uid(), stat(p).gid());
        assert_eq!(owner("g"), (0, 50));
        assert_eq!(owner("g/user"), (1000, 50));
        assert_eq!(owner("g/root"), (0, 0));
        assert_eq!(owner("g/suid"), (1000, 1000));
        assert_eq!(owner("g/link"), (1000, 1000));
        // Created in a setgid directory of group 50, but the tar says group 0.
        assert_eq!(owner("g/later"), (0, 0));
    }
    sb.assert_untouched("owners");
}

// ---------------------------------------------------------------- size

/// A tar stream of one file of `size` zero bytes, generated as it is read.
struct ZeroTar {
    header: Vec<u8>,
    pos: u64,
    total: u64,
}

impl ZeroTar {
    fn new(size: u64) -> ZeroTar {
        let mut h = tar::Header::new_gnu();
        h.set_path("big.bin").unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        ZeroTar {
            header: h.as_bytes().to_vec(),
            pos: 0,
            total: 512 + size.next_multiple_of(512) + 1024,
        }
    }
}

impl Read for ZeroTar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.total - self.pos) as usize);
        buf[..n].fill(0);
        if self.pos < 512 {
            let (start, end) = (self.pos as usize, (self.pos as usize + n).min(512));
            buf[..end - start].copy_from_slice(&self.header[start..end]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Runs the ignored test `name` of this binary alone in a child process: a peak RSS measured
/// there is that test's own (the integration tests share one process, where other tests' peaks
/// would count).
fn in_own_process(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed in its own process ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn memory_stays_flat_for_a_huge_layer() {
    in_own_process("extract_hostile::memory_stays_flat_for_a_huge_layer_inner");
}

#[test]
#[ignore = "run by memory_stays_flat_for_a_huge_layer in a process of its own"]
fn memory_stays_flat_for_a_huge_layer_inner() {
    // A 512 MiB file, generated as it is read: nothing may hold it. Then a gzip-compressed one
    // through `decompress` (smaller: the debug build's deflate is slow).
    const SIZE: u64 = 512 << 20;
    let sb = Sandbox::new();
    extract::apply_layer(&sb.root, ZeroTar::new(SIZE), &Options::default(), "huge").unwrap();
    assert_eq!(fs::metadata(sb.root.join("big.bin")).unwrap().len(), SIZE);
    let gz = flate2::read::GzEncoder::new(ZeroTar::new(SIZE / 32), flate2::Compression::fast());
    let stream = extract::decompress(oci::OCI_LAYER_GZIP, gz).unwrap();
    extract::apply_layer(&sb.root, stream, &Options::default(), "huge-gzip").unwrap();
    assert_eq!(
        fs::metadata(sb.root.join("big.bin")).unwrap().len(),
        SIZE / 32
    );
    let peak = peak_rss_kib();
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB for a {SIZE}-byte layer: something buffered it"
    );
    sb.assert_untouched("huge layer");
}

/// A tar stream whose first record (GNU long name `L` or PAX `x`) declares `size` bytes of zeros,
/// generated as it is read, followed by a file the record would describe.
fn huge_record(kind: u8, size: u64) -> impl Read {
    let mut h = tar::Header::new_gnu();
    h.set_path("././@LongLink").unwrap();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut rest = Tar::default();
    rest.file("after", b"data");
    std::io::Cursor::new(h.as_bytes().to_vec())
        .chain(std::io::repeat(0).take(size.next_multiple_of(512)))
        .chain(std::io::Cursor::new(rest.bytes()))
}

#[test]
fn oversized_long_name_and_pax_records_are_refused_without_buffering() {
    in_own_process(
        "extract_hostile::oversized_long_name_and_pax_records_are_refused_without_buffering_inner",
    );
}

#[test]
#[ignore = "run by oversized_long_name_and_pax_records_are_refused_without_buffering in a process of its own"]
fn oversized_long_name_and_pax_records_are_refused_without_buffering_inner() {
    // Go's archive/tar (containerd, umoci) refuses these records over 1 MiB; the tar crate alone
    // would read all 256 MiB into memory before yielding the entry.
    for (kind, case) in [
        (b'L', "GNU long name"),
        (b'K', "GNU long link"),
        (b'x', "PAX"),
    ] {
        let sb = Sandbox::new();
        let err = extract::apply_layer(
            &sb.root,
            huge_record(kind, 256 << 20),
            &Options::default(),
            "records",
        )
        .expect_err(case);
        assert!(
            matches!(err, Error::HostileRecords { .. }),
            "{case}: unexpected error: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("exceed 1 MiB") && msg.contains("records"),
            "{case}: {msg}"
        );
        assert!(!sb.root.join("after").exists(), "{case}");
        sb.assert_untouched(case);
    }
    let peak = peak_rss_kib();
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB: a record was buffered"
    );

    // A name under the record limit but past PATH_MAX (a quarter of a million nested directories)
    // is refused before any work is done for it, and named briefly.
    let sb = Sandbox::new();
    let name = format!("{}file", "a/".repeat(250_000));
    let mut tar = Tar::default();
    tar.long_name(name.as_bytes()).file("short", b"evil");
    let msg = sb.apply(&tar).expect_err("500 KB name").to_string();
    assert!(msg.len() < 1000, "{} bytes of error message", msg.len());
    assert!(
        msg.contains("bytes left out") && msg.contains("PATH_MAX"),
        "{msg}"
    );
    assert!(!sb.root.join("a").exists());
    sb.assert_untouched("long name");

    // Records under the limit pass: a 900 KiB PAX comment, and a long name.
    let sb = Sandbox::new();
    let name = format!("{}/file", "d".repeat(250));
    let comment = vec![b'c'; 900 << 10];
    let mut tar = Tar::default();
    tar.pax(&[("comment", &comment)])
        .file("commented", b"ok")
        .long_name(name.as_bytes())
        .file("short", b"long-named");
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.root.join("commented")).unwrap(), b"ok");
    assert_eq!(fs::read(sb.root.join(&name)).unwrap(), b"long-named");
}

/// `security.capability` granting cap_net_bind_service (a VFS_CAP_REVISION_2 value).
const NET_BIND_CAP: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn rootless_gives_no_owner_device_or_privilege() {
    let mut tar = Tar::default();
    tar.owned("d", b'5', 0o2775, (0, 50))
        .owned("d/suid", b'0', 0o4755, (1000, 1000))
        .owned("d/sgid", b'0', 0o2755, (0, 50))
        .char_device("d/null", 1, 3)
        .pax(&[
            ("SCHILY.xattr.security.capability", &NET_BIND_CAP),
            ("SCHILY.xattr.user.note", b"kept"),
        ])
        .file("d/cap", b"binary");
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;

    let sb = Sandbox::new();
    extract::apply_layer(&sb.root, &tar.bytes()[..], &Options::rootless(), "rootless").unwrap();
    let stat = |p: &str| fs::symlink_metadata(sb.root.join(p)).unwrap();
    let me = fs::metadata(&sb.dir).unwrap();
    for p in ["d", "d/suid", "d/sgid", "d/cap"] {
        assert_eq!((stat(p).uid(), stat(p).gid()), (me.uid(), me.gid()), "{p}");
    }
    assert!(!sb.root.join("d/null").exists(), "a device node was made");
    assert_eq!(stat("d").mode() & 0o7777, 0o2775, "directories keep setgid");
    if root {
        assert_eq!(
            stat("d/suid").mode() & 0o7777,
            0o755,
            "setuid-root file made"
        );
        assert_eq!(
            stat("d/sgid").mode() & 0o7777,
            0o755,
            "setgid-root file made"
        );
        assert_eq!(
            xattr::get(&sb.root.join("d/cap"), "security.capability"),
            None
        );
    } else {
        // As umoci --rootless: the caller's own setuid bits grant nothing new.
        assert_eq!(stat("d/suid").mode() & 0o7777, 0o4755);
    }
    if let Some(note) = xattr::get(&sb.root.join("d/cap"), "user.note") {
        assert_eq!(note, b"kept");
    }
    sb.assert_untouched("rootless");

    // The default, as root, is umoci's: owners, devices, setuid and capabilities as the tar says.
    if root {
        let sb = Sandbox::new();
        extract::apply_layer(&sb.root, &tar.bytes()[..], &Options::default(), "default").unwrap();
        let stat = |p: &str| fs::symlink_metadata(sb.root.join(p)).unwrap();
        assert_eq!(
            (stat("d/suid").uid(), stat("d/suid").mode() & 0o7777),
            (1000, 0o4755)
        );
        assert!(stat("d/null").file_type().is_char_device());
        assert_eq!(
            xattr::get(&sb.root.join("d/cap"), "security.capability").as_deref(),
            Some(&NET_BIND_CAP[..]),
            "the filesystem under the test's temp dir cannot hold capabilities"
        );
        sb.assert_untouched("default as root");
    }
}
