//! CVE-2018-15664-class race against a root extraction: a REAL attacker process, running under
//! another uid, swaps a directory it controls with a symlink to a root-only directory outside the
//! destination (atomically, `renameat2(RENAME_EXCHANGE)`, in a tight loop) while root extracts a
//! layer of many files into that directory. Two ways an attacker gets such a directory:
//! - the destination is an empty directory the attacker created (and owns);
//! - the image's own world-writable `tmp/` (mode 1777), where the attacker makes `tmp/d` itself
//!   before the layer's files for `tmp/d/…` arrive.
//!
//! Nothing may ever appear in the root-only directory. Before the fd-relative rewrite, a
//! parent resolved once and reopened by path sent tens of thousands of files there.
//!
//! The attacker is this test binary re-executed (`attacker_process`, ignored when run directly)
//! after `setgid`/`setuid` to an unused uid in `pre_exec`.

use std::ffi::CString;
use std::fs;
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gdcloud::extract::{self, Layer, Options};
use gdcloud::oci::{Descriptor, Digest};

/// An unused uid/gid for the attacker: no account is needed to run as it.
const ATTACKER: u32 = 64_123;
/// Files per layer, and extractions per scenario: ~10 s in all on a debug build.
const FILES: usize = 20_000;
const ROUNDS: usize = 3;

fn layer(tar: Vec<u8>) -> Layer<Cursor<Vec<u8>>> {
    Layer {
        descriptor: Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: Digest::sha256_of(&tar),
            size: tar.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        },
        diff_id: None,
        reader: Cursor::new(tar),
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// `prefix/` entries first (`tmp/` at 1777 when asked), `pad` files elsewhere to give the attacker
/// time to set up, then `FILES` small files under `under/` (no entry for `under` itself, so the
/// extractor only ever resolves it).
fn image(sticky_tmp: bool, pad: usize, under: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if sticky_tmp {
        let mut h = header(tar::EntryType::Directory, 0o1777, 0);
        b.append_data(&mut h, "tmp/", &b""[..]).unwrap();
    }
    for i in 0..pad {
        let mut h = header(tar::EntryType::Regular, 0o644, 1);
        b.append_data(&mut h, format!("pad/p{i:05}"), &b"p"[..])
            .unwrap();
    }
    for i in 0..FILES {
        let mut h = header(tar::EntryType::Regular, 0o4755, 4);
        b.append_data(&mut h, format!("{under}/f{i:05}"), &b"evil"[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Starts the attacker as uid/gid `ATTACKER`: in `dir`, it keeps making `d` (a directory it owns,
/// unless it exists) and `s` (a symlink to `target`) and exchanges them, until `secs` pass.
/// It starts once `wait_for` exists (the extraction is under way: the destination must be empty
/// when it starts).
fn attacker(dir: &Path, wait_for: &Path, target: &Path, secs: u64) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.args([
        "--exact",
        "extract_race::attacker_process",
        "--ignored",
        "--nocapture",
    ])
    .env("GDCLOUD_RACE_DIR", dir)
    .env("GDCLOUD_RACE_TARGET", target)
    .env("GDCLOUD_RACE_WAIT_FOR", wait_for)
    .env("GDCLOUD_RACE_SECS", secs.to_string())
    .stdout(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(ATTACKER) != 0
                || libc::setuid(ATTACKER) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn().expect("cannot start the attacker process")
}

/// The attacker's body; does nothing unless started by [`attacker`].
#[test]
#[ignore = "the attacker process of the race tests: started by them under another uid"]
fn attacker_process() {
    let Some(dir) = std::env::var_os("GDCLOUD_RACE_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let target = PathBuf::from(std::env::var_os("GDCLOUD_RACE_TARGET").unwrap());
    let secs: u64 = std::env::var("GDCLOUD_RACE_SECS").unwrap().parse().unwrap();
    assert_ne!(
        unsafe { libc::geteuid() },
        0,
        "the attacker must not be root"
    );
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
    let (d, s) = (c(&dir.join("d")), c(&dir.join("s")));
    let t = c(&target);
    let end = Instant::now() + Duration::from_secs(secs);
    let wait_for = PathBuf::from(std::env::var_os("GDCLOUD_RACE_WAIT_FOR").unwrap());
    while fs::symlink_metadata(&wait_for).is_err() && Instant::now() < end {
        std::hint::spin_loop();
    }
    while Instant::now() < end {
        // SAFETY: NUL-terminated strings that outlive the calls; failures are expected and ignored.
        unsafe {
            libc::mkdir(d.as_ptr(), 0o777);
            libc::symlink(t.as_ptr(), s.as_ptr());
            for _ in 0..64 {
                libc::renameat2(
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::AT_FDCWD,
                    s.as_ptr(),
                    libc::RENAME_EXCHANGE,
                );
            }
        }
    }
}

/// A root-only directory outside every destination, and a world-searchable place for them.
struct Arena {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    secret: PathBuf,
}

fn arena() -> Arena {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the race tests need root: run them as root (tests/run.sh does)"
    );
    let tmp = tempfile::Builder::new()
        .prefix("gdk-race-")
        .tempdir()
        .unwrap();
    let base = tmp.path().to_path_buf();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let secret = base.join("root-only");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    Arena {
        _tmp: tmp,
        base,
        secret,
    }
}

fn leaked(secret: &Path) -> usize {
    fs::read_dir(secret).unwrap().count()
}

/// `setup` gives the destination, the directory the attacker works in, and the layer.
/// `contested` is the directory the attacker swaps (`d`, `tmp/d`).
fn run_rounds(
    name: &str,
    contested: &str,
    setup: impl Fn(&Arena, usize) -> (PathBuf, PathBuf, Vec<Vec<u8>>),
) {
    let a = arena();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let (dest, attack_dir, tars) = setup(&a, round);
        let mut child = attacker(&attack_dir, &dest.join("pad"), &a.secret, 30);
        let result = extract::unpack_rootfs(
            &dest,
            tars.into_iter().map(|t| Ok(layer(t))),
            &Options::default(),
        );
        let _ = child.kill();
        let _ = child.wait();
        let outcome = match result {
            Ok(stats) => format!("ok ({} files)", stats.files),
            Err(e) => format!("refused: {e}"),
        };
        // Under attack an extraction may fail, but only at the contested directory or below it
        // (the attacker may have swapped it before its own entry came): anything else means the
        // race never ran.
        assert!(
            outcome.starts_with("ok") || outcome.contains(&format!("\"{contested}")),
            "{name}: round {round} stopped before the race: {outcome}"
        );
        outcomes.push(outcome);
        let n = leaked(&a.secret);
        assert_eq!(
            n, 0,
            "{name}: round {round}: {n} files written into the root-only directory {} (outcomes: {outcomes:?})",
            a.secret.display()
        );
    }
    eprintln!("{name}: {:?} in {:?}", outcomes, started.elapsed());
}

#[test]
fn a_destination_the_attacker_owns_cannot_redirect_writes() {
    run_rounds("attacker-owned destination", "d", |a, round| {
        let dest = a.base.join(format!("dest-{round}"));
        fs::create_dir(&dest).unwrap();
        chown(&dest, Some(ATTACKER), Some(ATTACKER)).unwrap();
        let tar = image(false, 2_000, "d");
        (dest.clone(), dest, vec![tar])
    });
}

#[test]
fn the_images_sticky_tmp_cannot_redirect_writes() {
    // Layer 1 makes `tmp/` 1777 (a directory's mode is applied when its layer ends); layer 2
    // writes under `tmp/d`, which the attacker makes first.
    run_rounds("image tmp/ 1777", "tmp/d", |a, round| {
        let dest = a.base.join(format!("rootfs-{round}"));
        fs::create_dir(&dest).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Directory, 0o1777, 0);
        b.append_data(&mut h, "tmp/", &b""[..]).unwrap();
        let lower = b.into_inner().unwrap();
        (
            dest.clone(),
            dest.join("tmp"),
            vec![lower, image(false, 2_000, "tmp/d")],
        )
    });
}
