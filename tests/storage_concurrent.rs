//! Two `cp` runs into the same file, Ctrl-C and resuming (issues 10 and 12), with real processes
//! against Garage: the second run waits for the first (saying so) and both end with the right
//! bytes, no temp file or sidecar left and no broken rename; a run that waits too long says that
//! another copy is in progress and leaves the first run's files alone; Ctrl-C ends a download
//! with status 130 and a message naming the kept partial file and how to resume; the resumed run
//! says what it reused.

use crate::util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::env::{ok, run_timed, stderr, TestEnv};
use util::proxy::Proxy;
use util::s3::S3Server;
use util::storage::{
    assert_contains, env_with_keys, fails, path_str, pseudo_random, storage, storage_cmd,
};

const MIB: usize = 1024 * 1024;

fn env_for(s3: &S3Server) -> TestEnv {
    env_with_keys(&s3.access_key, &s3.secret_key, &s3.endpoint)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `cp` started with its output in files (read while it runs).
struct Running {
    child: Child,
    err: std::path::PathBuf,
}

impl Running {
    fn start(mut cmd: Command, dir: &Path, name: &str) -> Running {
        let err = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("start cp");
        Running { child, err }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    }

    fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("cp did not end within {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_second_copy_to_the_same_file_waits_for_the_first() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = pseudo_random(96 * MIB + 3, 0xc0c0);
    s3.put(&s3.bucket, "same/big.bin", &content);
    let out = env.path().join("dl");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("big.bin");
    let sidecar = out.join(".big.bin.gdcloud-partial.json");
    let args = [
        "cp",
        "--concurrency",
        "1",
        "--part-size-mib",
        "4",
        &format!("s3://{}/same/big.bin", s3.bucket),
        path_str(&target),
    ];

    // The first run is frozen (SIGSTOP) while it holds the temp file: it has written its sidecar.
    let first = Running::start(storage_cmd(&env, &args), env.path(), "first");
    wait_until("the first run's sidecar", Duration::from_secs(60), || {
        sidecar.exists()
    });
    first.signal("-STOP");
    // The second run sees the lock, says it waits, and does not touch the first run's files.
    let second = Running::start(storage_cmd(&env, &args), env.path(), "second");
    wait_until("the waiting notice", Duration::from_secs(60), || {
        second.stderr().contains("another copy is writing it")
    });
    assert!(!target.exists(), "{:?}", names_in(&out));
    first.signal("-CONT");
    let (st1, err1) = first.wait(Duration::from_secs(120));
    let (st2, err2) = second.wait(Duration::from_secs(120));
    assert!(st1.success(), "first: {err1}");
    assert!(st2.success(), "second: {err2}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert_eq!(names_in(&out), ["big.bin"], "temp files or sidecars left");

    // Both at once, several times: never a broken rename, never a stray sidecar.
    for round in 0..3 {
        std::fs::remove_file(&target).unwrap();
        let a = Running::start(storage_cmd(&env, &args), env.path(), &format!("a{round}"));
        let b = Running::start(storage_cmd(&env, &args), env.path(), &format!("b{round}"));
        let (sa, ea) = a.wait(Duration::from_secs(120));
        let (sb, eb) = b.wait(Duration::from_secs(120));
        assert!(sa.success() && sb.success(), "round {round}:\n{ea}\n{eb}");
        assert_eq!(std::fs::read(&target).unwrap(), content, "round {round}");
        assert_eq!(names_in(&out), ["big.bin"], "round {round}");
    }
}

#[test]
fn waiting_too_long_says_another_copy_is_in_progress() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = pseudo_random(64 * MIB, 0xbeef);
    s3.put(&s3.bucket, "busy/blob.bin", &content);
    let target = env.path().join("blob.bin");
    let sidecar = env.path().join(".blob.bin.gdcloud-partial.json");
    let args = [
        "cp",
        "--concurrency",
        "1",
        "--part-size-mib",
        "4",
        &format!("s3://{}/busy/blob.bin", s3.bucket),
        path_str(&target),
    ];
    let first = Running::start(storage_cmd(&env, &args), env.path(), "first");
    wait_until("the first run's sidecar", Duration::from_secs(60), || {
        sidecar.exists()
    });
    first.signal("-STOP");
    let before = std::fs::read(&sidecar).unwrap();
    let mut c = storage_cmd(&env, &args);
    c.env("GDCLOUD_S3_LOCK_WAIT", "1");
    let o = run_timed(c, b"", Duration::from_secs(60));
    assert_eq!(
        std::fs::read(&sidecar).unwrap(),
        before,
        "the waiting run touched the first run's sidecar"
    );
    first.signal("-CONT");
    let msg = fails(&o);
    assert_contains(
        &msg,
        &[
            "another `gdcloud-storage cp` is still writing it",
            "GDCLOUD_S3_LOCK_WAIT",
        ],
    );
    assert!(!target.exists());
    let (st, err) = first.wait(Duration::from_secs(120));
    assert!(st.success(), "the first run was disturbed: {err}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert!(!sidecar.exists());
}

#[test]
fn ctrl_c_says_how_to_resume_and_the_resumed_run_says_what_it_reused() {
    let s3 = S3Server::start();
    let env = env_for(&s3);
    let content = pseudo_random(32 * MIB + 5, 0x1234);
    s3.put(&s3.bucket, "int/blob.bin", &content);
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let target = env.path().join("blob.bin");
    let partial = env.path().join(".blob.bin.gdcloud-partial");
    let args = [
        "cp",
        "--endpoint",
        &format!("http://{}", proxy.host),
        "--concurrency",
        "1",
        "--part-size-mib",
        "4",
        &format!("s3://{}/int/blob.bin", s3.bucket),
        path_str(&target),
    ];
    // Cut after 10 MiB: two parts are done, then the run retries what is left; Ctrl-C then.
    proxy.cut_after(Some(10 * MIB as u64));
    let run = Running::start(storage_cmd(&env, &args), env.path(), "interrupted");
    wait_until("the first cut", Duration::from_secs(60), || {
        proxy.cuts() > 0
    });
    proxy.refuse_connections(true);
    run.signal("-INT");
    let (st, err) = run.wait(Duration::from_secs(30));
    assert_eq!(st.code(), Some(130), "{err}");
    assert_contains(
        &err,
        &[
            "interrupted",
            ".blob.bin.gdcloud-partial",
            "run the same command again to resume",
        ],
    );
    assert!(partial.exists() && !target.exists());

    proxy.refuse_connections(false);
    proxy.cut_after(None);
    let o = storage(&env, &args);
    ok(&o);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    // 32 MiB + 5 bytes in 4 MiB parts: 9 parts, at least the first two kept.
    let e = stderr(&o);
    assert_contains(&e, &["resumed: ", " of 9 parts (", "MiB) already there"]);
    assert!(!e.contains("resumed: 0 of"), "{e}");
}
