//! Integration tests of `gdcloud-storage cp` and `ls` against a real S3 server (Garage, which
//! checks SigV4 signatures and `Content-MD5`), with the aws CLI and curl as the independent peers
//! that put and inspect objects, our TCP proxy to cut downloads half-way and to record which byte
//! ranges were asked for, and a stunnel TLS front for the CA options. Hostile keys (`..`, a
//! leading `/`) are real Garage objects, which it stores literally. They check what the command
//! promises: round trips (small and multipart, sha256 equal on both sides and on the server),
//! naming into directories and
//! prefixes, `-n`, `-r` both ways, resumable downloads that never leave a partial file under the
//! final name and fetch only what is missing, keys that would escape the destination, `-c` with a
//! summary and a failing exit, TLS with and without the CA, refused keys, missing objects, and
//! `ls` in text and JSON.

use crate::util;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use util::env::{ok, run_timed, stderr, stdout, TestEnv};
use util::proxy::Proxy;
use util::s3::{aws_put, HostileS3, S3Server, TestCa};
use util::storage::{assert_contains, fails, storage, storage_cmd};

const MIB: usize = 1024 * 1024;

/// A test environment whose default configuration points at `s3` with its keys.
fn env_for(s3: &S3Server) -> TestEnv {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", &s3.access_key);
    env.set_property("storage", "s3_secret_access_key", &s3.secret_key);
    env.set_property("storage", "s3_endpoint", &s3.endpoint);
    env
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_file(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn url(s3: &S3Server, key: &str) -> String {
    format!("s3://{}/{key}", s3.bucket)
}

/// Every file under `dir` (relative paths, `/`-separated), recursively.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Temp files of interrupted downloads left under `dir`.
fn partials_under(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.contains("gdcloud-partial"))
        .collect()
}

/// Asserts that a successful run drew no progress bar (stderr is not a terminal) and kept
/// stdout free of control characters.
#[track_caller]
fn assert_no_progress(o: &Output) {
    for (name, text) in [("stdout", stdout(o)), ("stderr", stderr(o))] {
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "{name} carries progress output although it is not a terminal: {text:?}"
        );
    }
}

/// Every string in a JSON document (keys of objects included).
fn json_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                json_strings(x, out);
            }
        }
        _ => {}
    }
}

/// The JSON objects (at any depth) that hold a string value equal to `needle`.
fn json_objects_with<'a>(v: &'a Value, needle: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| json_objects_with(x, needle, out)),
        Value::Object(m) => {
            if m.values().any(|x| x.as_str() == Some(needle)) {
                out.push(v);
            }
            m.values().for_each(|x| json_objects_with(x, needle, out));
        }
        _ => {}
    }
}

/// Whether a JSON object has a number field equal to `n`.
fn has_number(v: &Value, n: u64) -> bool {
    v.as_object()
        .is_some_and(|m| m.values().any(|x| x.as_u64() == Some(n)))
}

/// `(start, end_inclusive)` of a `Range: bytes=A-B` header; `B` is `u64::MAX` for `bytes=A-`.
fn range_of(r: &util::proxy::ProxiedRequest) -> Option<(u64, u64)> {
    let spec = r
        .header("range")?
        .trim()
        .strip_prefix("bytes=")?
        .to_string();
    let (a, b) = spec.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() {
        u64::MAX
    } else {
        b.trim().parse().ok()?
    };
    Some((a, b))
}

/// The object GETs in a proxy log for `key`.
fn gets_of(proxy: &Proxy, key: &str) -> Vec<util::proxy::ProxiedRequest> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.target.split('?').next().unwrap().ends_with(key))
        .collect()
}

#[test]
fn small_file_round_trip_and_naming() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = b"hello, object storage\n".repeat(3);
    let src = env.path().join("small.txt");
    std::fs::write(&src, &content).unwrap();

    // Upload to an explicit key: the object on the server is the file.
    let out = storage(&env, &["cp", s(&src), &url(&s3, "dir/small-copy.txt")]);
    ok(&out);
    assert_no_progress(&out);
    assert_eq!(
        s3.object(&s3.bucket, "dir/small-copy.txt").unwrap(),
        content,
        "object on the server differs from the file"
    );

    // Upload to a prefix: prefix + basename.
    ok(&storage(&env, &["cp", s(&src), &url(&s3, "pre/")]));
    assert_eq!(
        s3.object(&s3.bucket, "pre/small.txt").unwrap_or_default(),
        content,
        "`cp FILE s3://b/pre/` should store s3://b/pre/small.txt; server has: {:?}",
        s3.keys(&s3.bucket)
    );

    // Download to a file path.
    let out_dir = env.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("back.txt");
    let out = storage(&env, &["cp", &url(&s3, "dir/small-copy.txt"), s(&target)]);
    ok(&out);
    assert_no_progress(&out);
    assert_eq!(sha256_file(&target), sha256_hex(&content));

    // Download into an existing directory: DIR/<basename of the key>.
    ok(&storage(
        &env,
        &["cp", &url(&s3, "dir/small-copy.txt"), s(&out_dir)],
    ));
    assert_eq!(
        std::fs::read(out_dir.join("small-copy.txt")).unwrap_or_default(),
        content,
        "download into a directory; it holds {:?}",
        files_under(&out_dir)
    );
    assert_eq!(
        files_under(&out_dir),
        ["back.txt", "small-copy.txt"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "unexpected files (temp files left?)"
    );

    // --format json: a machine-readable summary that names what was copied.
    let out = storage(
        &env,
        &[
            "cp",
            "--format",
            "json",
            &url(&s3, "dir/small-copy.txt"),
            s(&out_dir.join("json.txt")),
        ],
    );
    let text = ok(&out);
    let json: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("cp --format json is not one JSON document ({e}): {text:?}"));
    let mut strings = Vec::new();
    json_strings(&json, &mut strings);
    assert!(
        strings.iter().any(|s| s.contains("small-copy.txt")),
        "the JSON summary does not name the object: {json}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("json.txt")).unwrap(),
        content,
        "json run"
    );

    // gcloud's value(): one line per copy (the report's rows are its copies).
    let dest = out_dir.join("value.txt");
    let out = storage(
        &env,
        &[
            "cp",
            "--format",
            "value(source, destination)",
            &url(&s3, "dir/small-copy.txt"),
            s(&dest),
        ],
    );
    assert_eq!(
        ok(&out),
        format!("{}\t{}\n", url(&s3, "dir/small-copy.txt"), dest.display())
    );
}

#[test]
fn large_file_multipart_round_trip() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    // 40 MiB and an odd tail, so the last part is short.
    let content = data(40 * MIB + 12_345, 0x5eed);
    let want = sha256_hex(&content);
    let src = env.path().join("big.bin");
    std::fs::write(&src, &content).unwrap();

    let t0 = Instant::now();
    let out = storage(
        &env,
        &[
            "cp",
            "--part-size-mib",
            "8",
            "--concurrency",
            "4",
            s(&src),
            &url(&s3, "big/big.bin"),
        ],
    );
    ok(&out);
    assert_no_progress(&out);
    eprintln!("upload of 40 MiB took {:?}", t0.elapsed());
    let on_server = s3.object(&s3.bucket, "big/big.bin").unwrap();
    assert_eq!(sha256_hex(&on_server), want, "object on the server");
    // Multipart: S3's ETag for a completed multipart upload ends in `-<parts>` (6 parts of 8 MiB).
    let head = s3
        .aws(false)
        .args([
            "s3api",
            "head-object",
            "--bucket",
            &s3.bucket,
            "--key",
            "big/big.bin",
        ])
        .output()
        .unwrap();
    let head = stdout(&head);
    assert!(
        head.contains("-6\\\"") || head.contains("-6\""),
        "expected a multipart ETag with 6 parts: {head}"
    );
    let leftovers = s3.uploads(&s3.bucket);
    assert!(leftovers.is_empty(), "uploads left behind: {leftovers:?}");

    // Download through the proxy, to see the ranged GETs.
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let endpoint = format!("http://{}", proxy.host);
    let target = env.path().join("big.back");
    let out = storage(
        &env,
        &[
            "cp",
            "--endpoint",
            &endpoint,
            "--part-size-mib",
            "8",
            "--concurrency",
            "4",
            &url(&s3, "big/big.bin"),
            s(&target),
        ],
    );
    ok(&out);
    assert_no_progress(&out);
    assert_eq!(sha256_file(&target), want, "downloaded file");
    let ranged: Vec<_> = gets_of(&proxy, "big/big.bin")
        .into_iter()
        .filter_map(|r| range_of(&r))
        .collect();
    assert!(
        ranged.len() >= 6,
        "expected ≥ 6 ranged GETs of 8 MiB parts, saw {ranged:?}; log:\n{}",
        proxy.log()
    );
    assert!(partials_under(env.path()).is_empty());

    // An object uploaded by the aws CLI (its own multipart ETag) downloads equal too.
    let other = data(17 * MIB + 3, 0xabcd);
    let tmp = env.path().join("aws-src.bin");
    std::fs::write(&tmp, &other).unwrap();
    let up = s3
        .aws(false)
        .arg("s3")
        .arg("cp")
        .arg(&tmp)
        .arg(url(&s3, "big/aws.bin"))
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", stderr(&up));
    let target = env.path().join("aws.back");
    ok(&storage(
        &env,
        &[
            "cp",
            "--part-size-mib",
            "5",
            &url(&s3, "big/aws.bin"),
            s(&target),
        ],
    ));
    assert_eq!(sha256_file(&target), sha256_hex(&other));
}

#[test]
fn no_clobber_keeps_existing_targets() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    aws_put(&s3, "k.txt", b"from the server\n");
    let target = env.path().join("k.txt");
    std::fs::write(&target, b"local, keep me\n").unwrap();

    let out = storage(&env, &["cp", "-n", &url(&s3, "k.txt"), s(&target)]);
    ok(&out);
    assert_eq!(std::fs::read(&target).unwrap(), b"local, keep me\n");
    // Into a directory as well.
    let out = storage(&env, &["cp", "-n", &url(&s3, "k.txt"), s(env.path())]);
    ok(&out);
    assert_eq!(std::fs::read(&target).unwrap(), b"local, keep me\n");

    // Upload onto an existing object.
    let src = env.path().join("new.txt");
    std::fs::write(&src, b"new content\n").unwrap();
    ok(&storage(&env, &["cp", "-n", s(&src), &url(&s3, "k.txt")]));
    assert_eq!(
        s3.object(&s3.bucket, "k.txt").unwrap(),
        b"from the server\n",
        "-n upload overwrote the object"
    );

    // Without -n both are replaced.
    ok(&storage(&env, &["cp", &url(&s3, "k.txt"), s(&target)]));
    assert_eq!(std::fs::read(&target).unwrap(), b"from the server\n");
    ok(&storage(&env, &["cp", s(&src), &url(&s3, "k.txt")]));
    assert_eq!(s3.object(&s3.bucket, "k.txt").unwrap(), b"new content\n");
}

#[test]
fn a_prefix_without_r_says_add_r_and_writes_nothing() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    aws_put(&s3, "g/a.txt", b"a\n");
    let dest = env.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    for prefix in ["g/", ""] {
        let e = fails(&storage(&env, &["cp", &url(&s3, prefix), s(&dest)]));
        assert!(e.contains("is a prefix, not an object: add -r"), "{e}");
        assert!(
            files_under(&dest).is_empty(),
            "wrote {:?}",
            files_under(&dest)
        );
    }
    // The usage line names the two kinds of argument once each.
    let help = storage(&env, &["cp", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("cp [OPTIONS] <SOURCE>... <DESTINATION>"),
        "{help}"
    );
}

#[test]
fn recursive_copies_keep_relative_paths() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let tree = env.path().join("tree");
    let files: &[(&str, Vec<u8>)] = &[
        ("a.txt", b"a\n".to_vec()),
        ("sub/b.txt", b"b\n".to_vec()),
        ("sub/deep/c.bin", data(300_000, 7)),
        ("other/d.txt", b"d\n".to_vec()),
    ];
    for (rel, bytes) in files {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    // Upload: every file lands under up/ with its relative path (either up/<rel>, as `aws s3 cp
    // --recursive` does, or up/tree/<rel>, as gsutil does).
    ok(&storage(&env, &["cp", "-r", s(&tree), &url(&s3, "up/")]));
    let stored: BTreeSet<String> = s3
        .keys(&s3.bucket)
        .iter()
        .filter_map(|k| k.strip_prefix("up/").map(str::to_string))
        .collect();
    let base = if stored.contains("a.txt") {
        "up/"
    } else {
        "up/tree/"
    };
    for (rel, bytes) in files {
        let key = format!("{base}{rel}");
        assert_eq!(
            s3.object(&s3.bucket, &key).as_ref(),
            Some(bytes),
            "{key} missing or different; stored under up/: {stored:?}"
        );
    }
    assert_eq!(stored.len(), files.len(), "extra objects: {stored:?}");

    // Download a prefix: OUT/<paths relative to the prefix>.
    let out = env.path().join("OUT");
    ok(&storage(
        &env,
        &["cp", "-r", &url(&s3, &format!("{base}sub/")), s(&out)],
    ));
    let got = files_under(&out);
    assert_eq!(
        got,
        ["b.txt", "deep/c.bin"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "`cp -r s3://b/{base}sub/ OUT`"
    );
    assert_eq!(std::fs::read(out.join("deep/c.bin")).unwrap(), files[2].1);

    // The whole tree, into a fresh directory.
    let all = env.path().join("ALL");
    ok(&storage(&env, &["cp", "-r", &url(&s3, base), s(&all)]));
    for (rel, bytes) in files {
        assert_eq!(
            std::fs::read(all.join(rel)).ok().as_ref(),
            Some(bytes),
            "{rel}; got {:?}",
            files_under(&all)
        );
    }
}

#[test]
fn uploads_carry_content_md5_and_bytes_damaged_on_the_way_are_refused() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let endpoint = format!("http://{}", proxy.host);

    // One PUT whose first byte a middlebox flips: Garage checks Content-MD5 and refuses it.
    let small = data(3 * MIB + 5, 0xbad);
    let src = env.path().join("small.bin");
    std::fs::write(&src, &small).unwrap();
    proxy.corrupt_request_bodies(1);
    let msg = fails(&storage(
        &env,
        &[
            "cp",
            "--endpoint",
            &endpoint,
            s(&src),
            &url(&s3, "md5/small.bin"),
        ],
    ));
    assert_contains(
        &msg,
        &["BadDigest", "changed on the way", "run the copy again"],
    );
    // Refused means stored nothing (as S3; s3s-fs used to keep the damaged bytes).
    assert_eq!(s3.object(&s3.bucket, "md5/small.bin"), None);
    // Run again: stored, byte for byte.
    ok(&storage(
        &env,
        &[
            "cp",
            "--endpoint",
            &endpoint,
            s(&src),
            &url(&s3, "md5/small.bin"),
        ],
    ));
    assert_eq!(
        sha256_hex(&s3.object(&s3.bucket, "md5/small.bin").unwrap()),
        sha256_hex(&small)
    );

    // Multipart: every part carries the MD5 of exactly its bytes.
    proxy.clear_requests();
    let big = data(20 * MIB + 99, 0xb16);
    let src = env.path().join("big.bin");
    std::fs::write(&src, &big).unwrap();
    ok(&storage(
        &env,
        &[
            "cp",
            "--endpoint",
            &endpoint,
            "--part-size-mib",
            "8",
            s(&src),
            &url(&s3, "md5/big.bin"),
        ],
    ));
    let parts: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.target.contains("partNumber="))
        .collect();
    assert_eq!(parts.len(), 3, "{}", proxy.log());
    for r in &parts {
        let n: usize = r
            .target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("partNumber="))
            .and_then(|v| v.parse().ok())
            .expect("part number");
        let start = (n - 1) * 8 * MIB;
        let end = (start + 8 * MIB).min(big.len());
        let want = {
            use base64::Engine as _;
            use md5::Digest as _;
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&big[start..end]))
        };
        assert_eq!(r.header("content-md5"), Some(want.as_str()), "part {n}");
    }
    assert_eq!(
        sha256_hex(&s3.object(&s3.bucket, "md5/big.bin").unwrap()),
        sha256_hex(&big)
    );
}

#[test]
fn interrupted_download_resumes_with_only_the_missing_ranges() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = data(24 * MIB + 777, 0xfeed);
    aws_put(&s3, "resume/blob.bin", &content);
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let endpoint = format!("http://{}", proxy.host);
    let out_dir = env.path().join("dl");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("blob.bin");
    let args = [
        "cp",
        "--endpoint",
        &endpoint,
        "--part-size-mib",
        "4",
        "--concurrency",
        "1",
        &url(&s3, "resume/blob.bin"),
        s(&target),
    ];

    // First run: every connection is cut after 10 MiB of response; once the first cut happened,
    // nothing more gets through, so the run must fail with about two parts on disk.
    proxy.cut_after(Some(10 * MIB as u64));
    let child_cmd = storage_cmd(&env, &args);
    let watcher = {
        let deadline = Instant::now() + Duration::from_secs(120);
        let proxy_cuts = &proxy;
        std::thread::scope(|sc| {
            let h = sc.spawn(|| run_timed(child_cmd, b"", Duration::from_secs(150)));
            while proxy_cuts.cuts() == 0 && Instant::now() < deadline && !h.is_finished() {
                std::thread::sleep(Duration::from_millis(5));
            }
            proxy_cuts.refuse_connections(true);
            proxy_cuts.cut_after(Some(0));
            h.join().unwrap()
        })
    };
    let first_log = proxy.log();
    let msg = fails(&watcher);
    assert!(
        proxy.cuts() > 0,
        "the proxy never cut the download; log:\n{first_log}"
    );
    assert!(
        !target.exists(),
        "a failed download left a file under the final name ({} bytes); error: {msg}",
        std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0)
    );
    let partials = partials_under(&out_dir);
    assert!(
        partials
            .iter()
            .any(|p| p.contains(".blob.bin.gdcloud-partial")),
        "no `.blob.bin.gdcloud-partial` beside the target after the failed run: {:?}",
        files_under(&out_dir)
    );

    // The first part, recorded done, is changed on disk (what a crash can leave when the sidecar
    // reached the disk before the part's bytes): the resume must read the parts back, not trust
    // the sidecar. The object's ETag is multipart, so no MD5 check at the end would catch it.
    let partial = out_dir.join(".blob.bin.gdcloud-partial");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .unwrap();
        f.write_all_at(&[0u8; 4096], 12_345).unwrap();
    }

    // Second run through a healthy proxy, with other transfer flags (which would pick 8 MiB
    // parts): completes, equal, and asks only for what is missing or changed, in the first
    // run's parts.
    proxy.cut_after(None);
    proxy.refuse_connections(false);
    proxy.clear_requests();
    let rerun = [
        "cp",
        "--endpoint",
        &endpoint,
        "--concurrency",
        "4",
        &url(&s3, "resume/blob.bin"),
        s(&target),
    ];
    let out = storage(&env, &rerun);
    ok(&out);
    assert_eq!(sha256_file(&target), sha256_hex(&content), "resumed file");
    assert!(
        partials_under(&out_dir).is_empty(),
        "temp files left after completion: {:?}",
        files_under(&out_dir)
    );
    let second = gets_of(&proxy, "resume/blob.bin");
    let log = proxy.log();
    assert!(!second.is_empty(), "no GETs on the second run:\n{log}");
    let ranges: Vec<(u64, u64)> = second.iter().filter_map(range_of).collect();
    assert_eq!(
        ranges.len(),
        second.len(),
        "the second run sent a GET without Range (a full re-download):\n{log}"
    );
    let size = content.len() as u64;
    let requested: u64 = ranges
        .iter()
        .map(|&(a, b)| b.min(size - 1).saturating_sub(a) + 1)
        .sum();
    assert!(
        requested < size,
        "the second run asked for {requested} of {size} bytes: nothing was resumed:\n{log}"
    );
    // The first two 4 MiB parts were complete before the first cut (10 MiB per connection):
    // the changed first one is fetched again, the intact second one is not.
    let part = 4 * MIB as u64;
    assert!(
        ranges.iter().any(|&(a, b)| a == 0 && b == part - 1),
        "the changed part 0 was trusted, not fetched again: {ranges:?}\n{log}"
    );
    assert!(
        ranges.iter().all(|&(a, _)| a != part),
        "the intact part 1 was requested again: {ranges:?}\n{log}"
    );
    assert!(
        ranges.iter().all(|&(a, _)| a % (4 * MIB as u64) == 0),
        "the resumed run did not keep the first run's 4 MiB parts: {ranges:?}\n{log}"
    );
}

#[test]
fn hostile_keys_never_escape_the_destination() {
    // 1. Keys with `..` stored by the aws CLI (Garage keeps them literally).
    let s3 = S3Server::start();
    let env = env_for(&s3);
    aws_put(&s3, "../evil", b"evil\n");
    aws_put(&s3, "a/../../evil2", b"evil2\n");
    let out_dir = env.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for key in ["../evil", "a/../../evil2"] {
        let o = storage(&env, &["cp", &url(&s3, key), s(&out_dir)]);
        // Refused, or at most written inside out/ under its basename; never outside.
        let inside = files_under(&out_dir);
        assert!(
            !o.status.success() || inside.len() == 1,
            "{key}: {inside:?}"
        );
        eprintln!("{key}: {}{}", stdout(&o), stderr(&o));
    }
    for escaped in ["evil", "evil2", "../evil", "../evil2"] {
        assert!(
            !env.path().join(escaped).exists(),
            "{escaped} was written outside the destination"
        );
    }

    // 2. A listing with hostile keys, stored in Garage as they are (`..` segments, and `//`
    // after a prefix, kept literally): `cp -r` must refuse them and write nothing outside OUT. The absolute
    // key points into this test's own temp dir, so a naive `OUT.join(key)` would be seen (and
    // harmless).
    let env = env_for(&s3);
    let escape_abs = env.path().join("escaped-abs.txt");
    let objects = vec![
        ("pre/ok.txt".to_string(), b"fine\n".to_vec()),
        (
            "pre/../../escaped-dotdot.txt".to_string(),
            b"bad1\n".to_vec(),
        ),
        (
            "pre/sub/../../../escaped-deep.txt".to_string(),
            b"bad2\n".to_vec(),
        ),
        (format!("pre/{}", s(&escape_abs)), b"bad3\n".to_vec()),
    ];
    for (k, v) in &objects {
        s3.put(&s3.bucket, k, v);
    }
    let stored = s3.keys(&s3.bucket);
    for (k, _) in &objects {
        assert!(stored.contains(k), "Garage does not list {k:?}: {stored:?}");
    }
    let work = env.path().join("a/b");
    std::fs::create_dir_all(&work).unwrap();
    let whole = format!("s3://{}", s3.bucket);
    for (src, name) in [(url(&s3, "pre/"), "OUT"), (whole, "OUT2")] {
        let src = src.as_str();
        let dest = work.join(name);
        let o = storage(&env, &["cp", "-r", "-c", src, s(&dest)]);
        let msg = fails(&o);
        let everything = files_under(env.path());
        let outside: Vec<_> = everything
            .iter()
            .filter(|f| f.contains("escaped"))
            .filter(|f| !env.path().join(f).starts_with(&dest))
            .collect();
        assert!(
            outside.is_empty(),
            "`cp -r {src}` wrote outside {}: {outside:?}\n{msg}",
            dest.display()
        );
        assert!(
            !escape_abs.exists(),
            "`cp -r {src}` followed an absolute key to {}",
            escape_abs.display()
        );
        assert_contains(&msg, &["escaped-dotdot.txt"]);
    }
    // 3. A key that starts with `/` (Garage drops the slash when storing it): the scripted
    // server lists it.
    let fake = HostileS3::start(
        "hostile",
        vec![(s(&escape_abs).to_string(), b"bad4\n".to_vec())],
    );
    let env3 = TestEnv::new();
    env3.set_property("storage", "s3_access_key_id", "AKIDHOSTILE");
    env3.set_property("storage", "s3_secret_access_key", "hostile-secret");
    env3.set_property("storage", "s3_endpoint", &fake.endpoint);
    let msg = fails(&storage(
        &env3,
        &["cp", "-r", "s3://hostile", s(&env3.path().join("OUT3"))],
    ));
    assert_contains(&msg, &["absolute path"]);
    assert!(!escape_abs.exists(), "followed an absolute key: {msg}");
    // The good key next to them was copied (-c).
    assert_eq!(
        std::fs::read(work.join("OUT/ok.txt")).ok().as_deref(),
        Some(&b"fine\n"[..]),
        "{:?}",
        files_under(&work)
    );
}

#[test]
fn continue_on_error_summarises_and_fails() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let a = env.path().join("a.txt");
    let b = env.path().join("b.txt");
    std::fs::write(&a, b"a\n").unwrap();
    std::fs::write(&b, b"b\n").unwrap();
    let missing = env.path().join("missing.txt");

    let o = storage(
        &env,
        &["cp", "-c", s(&a), s(&missing), s(&b), &url(&s3, "multi/")],
    );
    let msg = fails(&o);
    assert_contains(&stderr(&o), &["missing.txt"]);
    assert!(
        !stdout(&o).contains("ERROR"),
        "errors belong on stderr: {}",
        stdout(&o)
    );
    for (name, bytes) in [("a.txt", b"a\n"), ("b.txt", b"b\n")] {
        assert_eq!(
            s3.object(&s3.bucket, &format!("multi/{name}")).as_deref(),
            Some(&bytes[..]),
            "{name} not uploaded despite -c: {msg}"
        );
    }
    // A summary: counts of copied and failed sources (2 and 1).
    let err = stderr(&o);
    assert!(
        err.contains('2') && err.contains('1'),
        "no summary with 2 copied / 1 failed on stderr: {err}"
    );

    // Downloads: one missing key among several.
    let out_dir = env.path().join("dl");
    std::fs::create_dir(&out_dir).unwrap();
    let o = storage(
        &env,
        &[
            "cp",
            "-c",
            &url(&s3, "multi/a.txt"),
            &url(&s3, "multi/nope.txt"),
            &url(&s3, "multi/b.txt"),
            s(&out_dir),
        ],
    );
    let msg = fails(&o);
    assert_contains(&stderr(&o), &["multi/nope.txt"]);
    assert_eq!(
        files_under(&out_dir),
        ["a.txt", "b.txt"].iter().map(|s| s.to_string()).collect(),
        "{msg}"
    );

    // Without -c the run fails too (whether or not it went on).
    fails(&storage(
        &env,
        &["cp", s(&missing), s(&a), &url(&s3, "multi2/")],
    ));
}

#[test]
fn failed_multipart_upload_is_aborted() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let src = env.path().join("shrinking.bin");
    std::fs::write(&src, data(64 * MIB, 3)).unwrap();
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let endpoint = format!("http://{}", proxy.host);
    let cmd = storage_cmd(
        &env,
        &[
            "cp",
            "--endpoint",
            &endpoint,
            "--part-size-mib",
            "5",
            "--concurrency",
            "1",
            s(&src),
            &url(&s3, "mp/shrinking.bin"),
        ],
    );
    // Once the first part is on its way, the file shrinks under the upload: reading it fails.
    let out = std::thread::scope(|sc| {
        let h = sc.spawn(|| run_timed(cmd, b"", Duration::from_secs(120)));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !proxy
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.target.contains("partNumber="))
            && Instant::now() < deadline
            && !h.is_finished()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
        f.set_len(MIB as u64).unwrap();
        h.join().unwrap()
    });
    let log = proxy.log();
    if out.status.success() {
        panic!(
            "the upload finished before the file shrank (or ignored it); stored {} bytes:\n{log}",
            s3.object(&s3.bucket, "mp/shrinking.bin")
                .map_or(0, |b| b.len())
        );
    }
    assert!(
        log.contains("uploads"),
        "no multipart upload was started:\n{log}"
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.target.contains("uploadId=")),
        "the failed multipart upload was not aborted (no DELETE ?uploadId=):\n{log}\n{}",
        stderr(&out)
    );
    let leftovers = s3.uploads(&s3.bucket);
    assert!(leftovers.is_empty(), "orphaned uploads: {leftovers:?}");
    assert!(s3.object(&s3.bucket, "mp/shrinking.bin").is_none());
}

#[test]
fn tls_needs_the_ca() {
    let ca = TestCa::generate("gdtest-storage-cp-ca");
    let s3 = S3Server::start_tls(&ca);
    let env = env_for(&s3);
    let tls = s3.tls_endpoint.clone().unwrap();
    let ca_cert = s3.ca_cert.clone().unwrap();
    env.set_property("storage", "s3_endpoint", &tls);
    aws_put(&s3, "tls/k.txt", b"over tls\n");
    let target = env.path().join("k.txt");

    let msg = fails(&storage(&env, &["cp", &url(&s3, "tls/k.txt"), s(&target)]));
    assert_contains(&msg.to_lowercase(), &["certificate"]);
    assert_contains(&msg, &["--ca-cert-path"]);
    assert!(!target.exists());
    let msg = fails(&storage(&env, &["ls", &url(&s3, "")]));
    assert_contains(&msg, &["--ca-cert-path"]);

    ok(&storage(
        &env,
        &[
            "cp",
            "--ca-cert-path",
            s(&ca_cert),
            &url(&s3, "tls/k.txt"),
            s(&target),
        ],
    ));
    assert_eq!(std::fs::read(&target).unwrap(), b"over tls\n");

    let t2 = env.path().join("k2.txt");
    ok(&storage(
        &env,
        &["cp", "--insecure", &url(&s3, "tls/k.txt"), s(&t2)],
    ));
    assert_eq!(std::fs::read(&t2).unwrap(), b"over tls\n");

    // The property does the same; uploads too.
    env.set_property("storage", "s3_custom_ca_certs_file", s(&ca_cert));
    let t3 = env.path().join("k3.txt");
    ok(&storage(&env, &["cp", &url(&s3, "tls/k.txt"), s(&t3)]));
    assert_eq!(std::fs::read(&t3).unwrap(), b"over tls\n");
    ok(&storage(&env, &["cp", s(&t3), &url(&s3, "tls/up.txt")]));
    assert_eq!(s3.object(&s3.bucket, "tls/up.txt").unwrap(), b"over tls\n");
    assert_contains(&ok(&storage(&env, &["ls", &url(&s3, "tls/")])), &["up.txt"]);
}

#[test]
fn wrong_keys_and_missing_objects_are_named() {
    let s3 = S3Server::start();
    aws_put(&s3, "k.txt", b"x\n");
    let env = TestEnv::new();
    let wrong_secret = "gdtest-wrong-secret-0123456789";
    env.set_property("storage", "s3_access_key_id", &s3.access_key);
    env.set_property("storage", "s3_secret_access_key", wrong_secret);
    env.set_property("storage", "s3_endpoint", &s3.endpoint);
    let target = env.path().join("k.txt");
    let src = env.path().join("up.txt");
    std::fs::write(&src, b"up\n").unwrap();
    for args in [
        vec!["cp".to_string(), url(&s3, "k.txt"), s(&target).to_string()],
        vec!["cp".to_string(), s(&src).to_string(), url(&s3, "up.txt")],
        vec!["ls".to_string(), url(&s3, "")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = storage(&env, &args);
        let msg = fails(&o);
        let err = stderr(&o);
        let error_lines: Vec<_> = err.lines().filter(|l| l.starts_with("ERROR:")).collect();
        assert_eq!(
            error_lines.len(),
            1,
            "{args:?}: expected one ERROR: line:\n{err}"
        );
        assert_contains(error_lines[0], &["refused", "`gdcloud-storage configure`"]);
        assert!(
            !msg.contains(wrong_secret) && !msg.contains(&s3.secret_key),
            "{args:?} printed a secret:\n{msg}"
        );
    }
    assert!(!target.exists());
    assert!(s3.object(&s3.bucket, "up.txt").is_none());

    // A missing object is named.
    let env = env_for(&s3);
    let msg = fails(&storage(
        &env,
        &["cp", &url(&s3, "dir/nope.txt"), s(&target)],
    ));
    assert_contains(&msg, &["dir/nope.txt"]);
    assert!(!target.exists());
    // A missing local source is named.
    let msg = fails(&storage(
        &env,
        &["cp", s(&env.path().join("absent.bin")), &url(&s3, "x")],
    ));
    assert_contains(&msg, &["absent.bin"]);
}

#[test]
fn ls_plain_recursive_and_json() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    aws_put(&s3, "top.txt", b"12345");
    aws_put(&s3, "dir/a.txt", b"abc");
    aws_put(&s3, "dir/sub/b.txt", &data(1234, 1));

    let root = ok(&storage(&env, &["ls", &format!("s3://{}", s3.bucket)]));
    assert_contains(&root, &["top.txt", "dir/"]);
    assert!(
        !root.contains("a.txt") && !root.contains("b.txt"),
        "plain ls is not recursive:\n{root}"
    );
    let top = root.lines().find(|l| l.contains("top.txt")).unwrap();
    assert!(
        top.split_whitespace().any(|w| w == "5"),
        "no size on {top:?}"
    );
    assert!(
        top.contains("20") && top.contains(':'),
        "no time on {top:?}"
    );

    let dir = ok(&storage(&env, &["ls", &url(&s3, "dir/")]));
    assert_contains(&dir, &["a.txt", "sub/"]);
    assert!(!dir.contains("top.txt") && !dir.contains("b.txt"), "{dir}");

    let all = ok(&storage(
        &env,
        &["ls", "-r", &format!("s3://{}", s3.bucket)],
    ));
    assert_contains(&all, &["top.txt", "dir/a.txt", "dir/sub/b.txt"]);
    let b_line = all.lines().find(|l| l.contains("dir/sub/b.txt")).unwrap();
    assert!(b_line.split_whitespace().any(|w| w == "1234"), "{b_line}");

    let text = ok(&storage(
        &env,
        &[
            "ls",
            "-r",
            "--format",
            "json",
            &format!("s3://{}", s3.bucket),
        ],
    ));
    let json: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("ls --format json is not JSON ({e}): {text}"));
    for (key, size) in [("top.txt", 5), ("dir/a.txt", 3), ("dir/sub/b.txt", 1234)] {
        let mut found = Vec::new();
        json_objects_with(&json, key, &mut found);
        assert!(
            found.iter().any(|o| has_number(o, size)),
            "no JSON entry for {key} with size {size}: {json}"
        );
    }
    let text = ok(&storage(
        &env,
        &["ls", "--format", "json", &url(&s3, "dir/")],
    ));
    let json: Value = serde_json::from_str(text.trim()).expect("JSON");
    let mut strings = Vec::new();
    json_strings(&json, &mut strings);
    assert!(
        strings.iter().any(|s| s == "dir/sub/"),
        "the common prefix dir/sub/ is missing: {json}"
    );
    assert!(!strings.iter().any(|s| s.ends_with("b.txt")), "{json}");

    // gcloud's csv(): one row per object, sorted by key.
    assert_eq!(
        ok(&storage(
            &env,
            &[
                "ls",
                "-r",
                "--format",
                "csv(key:sort=1,size)",
                &format!("s3://{}", s3.bucket),
            ],
        )),
        "key,size\ndir/a.txt,3\ndir/sub/b.txt,1234\ntop.txt,5\n"
    );

    // An empty prefix lists nothing and succeeds; a missing bucket is an error naming it.
    let empty = ok(&storage(&env, &["ls", &url(&s3, "nothing-here/")]));
    assert!(!empty.contains(".txt"), "{empty}");
    let msg = fails(&storage(&env, &["ls", "s3://no-such-bucket-gdtest"]));
    assert_contains(&msg, &["no-such-bucket-gdtest"]);
}

#[test]
fn ls_of_bare_s3_lists_the_buckets() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    s3.create_bucket("gdtest-second");
    let text = ok(&storage(&env, &["ls", "s3://"]));
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(names.contains(&s3.bucket.as_str()), "{text}");
    assert!(names.contains(&"gdtest-second"), "{text}");
    let json: Value =
        serde_json::from_str(&ok(&storage(&env, &["ls", "--format", "json", "s3://"]))).unwrap();
    let buckets: Vec<&str> = json
        .as_array()
        .expect("a JSON list")
        .iter()
        .filter(|b| b["bucket"] == true)
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert!(buckets.contains(&"gdtest-second"), "{json}");
}
