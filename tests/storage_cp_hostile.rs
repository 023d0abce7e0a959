//! `gdcloud-storage cp` and `ls` against hostile surroundings: a destination directory where
//! someone else planted symlinks or files under our temp names (the command often runs as root
//! into shared directories), object names longer than the temp-name suffixes allow, servers that
//! never end a listing or never answer, and keys holding terminal control sequences. Objects come
//! from a real Garage (put by the aws CLI) or, where a real server cannot misbehave as needed, from
//! the scripted server of `util::hostile_s3`.

use crate::util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};

use util::env::{ok, run_timed, stderr, stdout, TestEnv};
use util::s3::{aws_put, HostileS3, S3Server, Script};
use util::storage::{assert_contains, fails, storage, storage_cmd};

/// A test environment whose default configuration points at `s3` with its keys.
fn env_for(s3: &S3Server) -> TestEnv {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", &s3.access_key);
    env.set_property("storage", "s3_secret_access_key", &s3.secret_key);
    env.set_property("storage", "s3_endpoint", &s3.endpoint);
    env
}

/// A test environment pointing at a scripted server (which checks no signature).
fn env_for_fake(fake: &HostileS3) -> TestEnv {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", "AKIDHOSTILE");
    env.set_property("storage", "s3_secret_access_key", "hostile-secret");
    env.set_property("storage", "s3_endpoint", &fake.endpoint);
    env
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A 0600 file outside the destination, as a symlink's target: it must never change.
fn victim(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.path().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("shadow");
    std::fs::write(&p, b"root:secret-hash:1:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[track_caller]
fn assert_victim_untouched(p: &Path, msg: &str) {
    assert_eq!(
        std::fs::read(p).unwrap(),
        b"root:secret-hash:1:0:99999:7:::\n",
        "the file outside the destination was written through a planted link; output: {msg}"
    );
}

#[track_caller]
fn assert_no_raw_escape(o: &Output) {
    for (name, text) in [("stdout", stdout(o)), ("stderr", stderr(o))] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{name} carries a raw control character from a key: {text:?}"
        );
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn planted_temp_files_are_refused_and_nothing_outside_changes() {
    assert!(
        is_root(),
        "this test plants files of another uid: run it as root"
    );
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = vec![0x5au8; 1 << 20];
    aws_put(&s3, "planted/blob.bin", &content);
    let etag = format!("\"{}\"", hex::encode(Md5::digest(&content)));
    let src = format!("s3://{}/planted/blob.bin", s3.bucket);
    let out_dir = env.path().join("dl");
    std::fs::create_dir(&out_dir).unwrap();
    let shadow = victim(&env);
    let target = out_dir.join("blob.bin");
    let partial = out_dir.join(".blob.bin.gdcloud-partial");
    let sidecar = out_dir.join(".blob.bin.gdcloud-partial.json");

    // 1. The temp file is a symlink to a file outside (with a sidecar that would make it be
    // taken up as it is): refused, nothing written through it, no final name.
    std::os::unix::fs::symlink(&shadow, &partial).unwrap();
    let state = format!(
        r#"{{"etag":{etag:?},"size":{},"part_size":8388608,"crc32":[null]}}"#,
        content.len()
    );
    std::fs::write(&sidecar, &state).unwrap();
    let o = storage(&env, &["cp", &src, s(&out_dir)]);
    assert_victim_untouched(&shadow, &format!("{}{}", stdout(&o), stderr(&o)));
    let msg = fails(&o);
    assert_contains(
        &msg,
        &[".blob.bin.gdcloud-partial", "symbolic link", "remove it"],
    );
    assert!(
        target.symlink_metadata().is_err(),
        "a final name appeared: {msg}"
    );
    assert_eq!(msg.trim_end().lines().count(), 1, "not one line: {msg}");

    // 1b. The temp file is a hard link to that file (possible where fs.protected_hardlinks is
    // off): refused too.
    std::fs::remove_file(&partial).unwrap();
    std::fs::hard_link(&shadow, &partial).unwrap();
    let o = storage(&env, &["cp", &src, s(&out_dir)]);
    assert_victim_untouched(&shadow, &format!("{}{}", stdout(&o), stderr(&o)));
    assert_contains(&fails(&o), &[".blob.bin.gdcloud-partial", "hard links"]);

    // 2. A sidecar of another user (claiming every part is done): refused, not trusted.
    std::fs::remove_file(&partial).unwrap();
    std::fs::write(&partial, vec![0u8; content.len()]).unwrap();
    // Its CRC is right for the zeros planted as the temp file: only its owner gives it away.
    let mut zeros = flate2::Crc::new();
    zeros.update(&vec![0u8; content.len()]);
    let state = state.replace("null", &zeros.sum().to_string());
    std::fs::write(&sidecar, &state).unwrap();
    std::os::unix::fs::chown(&sidecar, Some(12345), Some(12345)).unwrap();
    let msg = fails(&storage(&env, &["cp", &src, s(&out_dir)]));
    assert_contains(
        &msg,
        &[".blob.bin.gdcloud-partial.json", "uid 12345", "remove it"],
    );
    assert!(
        target.symlink_metadata().is_err(),
        "a final name appeared: {msg}"
    );

    // 3. The sidecar is a symlink to the file outside: refused, the file is not truncated.
    std::fs::remove_file(&sidecar).unwrap();
    std::os::unix::fs::symlink(&shadow, &sidecar).unwrap();
    let o = storage(&env, &["cp", &src, s(&out_dir)]);
    assert_victim_untouched(&shadow, &format!("{}{}", stdout(&o), stderr(&o)));
    let msg = fails(&o);
    assert_contains(&msg, &[".blob.bin.gdcloud-partial.json", "symbolic link"]);

    // 4. Cleaned up as the message says, with a symlink planted under the final name: the copy
    // replaces the link (never writes through it) and leaves no temp file.
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::remove_file(&partial).unwrap();
    std::os::unix::fs::symlink(&shadow, &target).unwrap();
    ok(&storage(&env, &["cp", &src, s(&out_dir)]));
    assert_victim_untouched(&shadow, "");
    let meta = target.symlink_metadata().unwrap();
    assert!(
        meta.file_type().is_file(),
        "the final name is not a regular file"
    );
    assert_eq!(meta.uid(), 0);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert!(!partial.exists() && sidecar.symlink_metadata().is_err());
}

#[test]
fn recursive_copies_do_not_follow_planted_directory_symlinks() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    aws_put(&s3, "tree/sub/x.txt", b"x\n");
    aws_put(&s3, "tree/top.txt", b"top\n");
    let out_dir = env.path().join("OUT");
    std::fs::create_dir(&out_dir).unwrap();
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out_dir.join("sub")).unwrap();
    let src = format!("s3://{}/tree/", s3.bucket);
    let msg = fails(&storage(&env, &["cp", "-r", "-c", &src, s(&out_dir)]));
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "`cp -r` wrote through the planted OUT/sub symlink: {msg}"
    );
    assert_contains(&msg, &["OUT/sub", "symbolic link"]);
    assert_eq!(std::fs::read(out_dir.join("top.txt")).unwrap(), b"top\n");
}

/// (The scripted server: s3s-fs cannot store a 250-byte name, its own temp names are longer.)
#[test]
fn names_too_long_for_the_temp_suffix_still_download() {
    let name = format!("{}.bin", "n".repeat(246));
    assert_eq!(name.len(), 250);
    let fake = HostileS3::start(
        "hostile",
        vec![(format!("long/{name}"), b"long name\n".to_vec())],
    );
    let env = env_for_fake(&fake);
    let out_dir = env.path().join("dl");
    std::fs::create_dir(&out_dir).unwrap();
    ok(&storage(
        &env,
        &["cp", &format!("s3://hostile/long/{name}"), s(&out_dir)],
    ));
    assert_eq!(std::fs::read(out_dir.join(&name)).unwrap(), b"long name\n");
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "temp files left: {left:?}");
}

#[test]
fn endless_listings_end_with_an_error() {
    let fake = HostileS3::start_with(
        "hostile",
        vec![("pre/a.txt".to_string(), b"a\n".to_vec())],
        Script::SameToken,
    );
    let env = env_for_fake(&fake);
    let out_dir = env.path().join("OUT");
    for args in [
        vec!["cp", "-r", "s3://hostile/pre/", s(&out_dir)],
        vec!["ls", "-r", "s3://hostile/pre/"],
    ] {
        let t0 = Instant::now();
        let o = run_timed(storage_cmd(&env, &args), b"", Duration::from_secs(60));
        let msg = fails(&o);
        assert_contains(&msg, &["continuation token", "s3://hostile/pre/"]);
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    }
    assert!(fake.listings.load(std::sync::atomic::Ordering::SeqCst) <= 6);

    // New tokens every time, one more key a page: ends at the page limit, not out of memory.
    let fake = HostileS3::start_with("hostile", Vec::new(), Script::FreshTokens);
    let env = env_for_fake(&fake);
    let t0 = Instant::now();
    let o = run_timed(
        storage_cmd(&env, &["ls", "-r", "s3://hostile/pre/"]),
        b"",
        Duration::from_secs(300),
    );
    let msg = fails(&o);
    assert_contains(&msg, &["more than 10000 pages", "narrower prefixes"]);
    eprintln!("10000 pages in {:?}", t0.elapsed());
}

#[test]
fn small_requests_have_a_deadline() {
    let fake = HostileS3::start_with(
        "hostile",
        vec![("k.txt".to_string(), b"k\n".to_vec())],
        Script::Silent(20),
    );
    let env = env_for_fake(&fake);
    let out_dir = env.path().join("OUT");
    std::fs::create_dir(&out_dir).unwrap();
    let mut c = storage_cmd(&env, &["cp", "s3://hostile/k.txt", s(&out_dir)]);
    c.env("GDCLOUD_S3_REQUEST_TIMEOUT", "1");
    let t0 = Instant::now();
    let msg = fails(&run_timed(c, b"", Duration::from_secs(60)));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "{:?}: {msg}",
        t0.elapsed()
    );
    assert_contains(
        &msg,
        &[
            "HEAD s3://hostile/k.txt",
            "no answer within 1 s",
            "GDCLOUD_S3_REQUEST_TIMEOUT",
        ],
    );
}

#[test]
fn control_characters_in_keys_reach_the_terminal_escaped() {
    let keys = ["esc/\u{1b}]0;pwned\u{7}.txt", "esc/red\u{1b}[31m.txt"];
    let fake = HostileS3::start(
        "hostile",
        keys.iter()
            .map(|k| (k.to_string(), b"x\n".to_vec()))
            .collect(),
    );
    let env = env_for_fake(&fake);
    let out_dir = env.path().join("OUT");
    let o = storage(&env, &["cp", "-r", "s3://hostile/esc/", s(&out_dir)]);
    ok(&o);
    assert_no_raw_escape(&o);
    assert_contains(&stdout(&o), &["\\x1b]0;pwned\\x07.txt", "red\\x1b[31m.txt"]);
    let o = storage(&env, &["ls", "-r", "s3://hostile/esc/"]);
    ok(&o);
    assert_no_raw_escape(&o);
    let o = storage(&env, &["cp", "s3://hostile/esc/gone\u{1b}[2J", s(&out_dir)]);
    let msg = fails(&o);
    assert_no_raw_escape(&o);
    assert_contains(&msg, &["gone\\x1b[2J"]);
}
