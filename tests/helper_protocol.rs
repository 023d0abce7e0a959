//! `docker-credential-gdcloud` as its clients see it: the real binary, driven over argv, stdin and
//! stdout with the file store, covering every protocol vector, the key rules, the diagnostics log and
//! concurrent writers. (The Secret Service store has its own file; real clients are in
//! `registry_clients.rs`.)

use crate::util;

use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

use serde_json::{json, Value};
use util::env::*;

fn store_msg(url: &str, user: &str, secret: &str) -> String {
    json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string()
}

#[test]
fn get_store_erase_list_round_trip() {
    let env = TestEnv::new();
    let o = env.helper("get", "127.0.0.1:5000");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "credentials not found in native keychain\n");
    assert_eq!(stderr(&o), "", "nothing on stderr");

    ok(&env.helper("store", &store_msg("127.0.0.1:5000", "alice", "s3cret")));
    let got: Value = serde_json::from_str(&ok(&env.helper("get", "127.0.0.1:5000"))).unwrap();
    assert_eq!(
        got,
        json!({"ServerURL":"127.0.0.1:5000","Username":"alice","Secret":"s3cret"})
    );
    let list: Value = serde_json::from_str(&ok(&env.helper("list", ""))).unwrap();
    assert_eq!(list, json!({"127.0.0.1:5000": "alice"}));

    ok(&env.helper("erase", "127.0.0.1:5000"));
    assert_eq!(env.helper("get", "127.0.0.1:5000").status.code(), Some(1));
    // Erasing what is not there succeeds.
    ok(&env.helper("erase", "127.0.0.1:5000"));
    assert_eq!(ok(&env.helper("list", "")), "{}");
}

#[test]
fn every_form_of_a_host_finds_the_same_entry() {
    let env = TestEnv::new();
    ok(&env.helper(
        "store",
        &store_msg("https://Registry.Example.com:5000/", "u", "p"),
    ));
    for q in [
        "registry.example.com:5000",
        "registry.example.com:5000\n",
        "  https://registry.example.com:5000  ",
        "http://REGISTRY.example.com:5000/v2/",
        "registry.example.com:5000/proj/repo/path",
    ] {
        let got: Value = serde_json::from_str(&ok(&env.helper("get", q))).unwrap();
        assert_eq!(got["ServerURL"], q.trim(), "ServerURL is echoed as given");
        assert_eq!(got["Username"], "u", "query {q:?}");
    }
    // A different port is a different registry.
    assert_eq!(
        env.helper("get", "registry.example.com").status.code(),
        Some(1)
    );
}

#[test]
fn docker_hub_forms_share_one_entry() {
    let env = TestEnv::new();
    ok(&env.helper(
        "store",
        &store_msg("https://index.docker.io/v1/", "hubuser", "p"),
    ));
    for q in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
    ] {
        let got: Value = serde_json::from_str(&ok(&env.helper("get", q))).unwrap();
        assert_eq!(got["Username"], "hubuser", "query {q}");
    }
    ok(&env.helper("erase", "docker.io"));
    assert_eq!(
        env.helper("get", "https://index.docker.io/v1/")
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn protocol_errors_are_one_line_on_stdout() {
    let env = TestEnv::new();
    let cases = [
        ("get", String::new(), "no credentials server URL\n"),
        ("erase", "   ".to_string(), "no credentials server URL\n"),
        (
            "store",
            json!({"ServerURL":"h","Secret":"x"}).to_string(),
            "no credentials username\n",
        ),
        (
            "store",
            json!({"ServerURL":"","Username":"u","Secret":"x"}).to_string(),
            "no credentials server URL\n",
        ),
    ];
    for (action, input, want) in cases {
        let o = env.helper(action, &input);
        assert_eq!(o.status.code(), Some(1), "{action} {input}");
        assert_eq!(stdout(&o), want);
        assert_eq!(stderr(&o), "");
    }
    let o = env.helper("store", "{not json, secret: hunter2");
    assert_eq!(o.status.code(), Some(1));
    let line = stdout(&o);
    assert!(line.starts_with("invalid credentials on stdin"), "{line}");
    assert!(!line.contains("hunter2"), "input is never echoed: {line}");
    assert_eq!(line.lines().count(), 1);
    let o = env.helper("get", "ftp://host");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("unsupported scheme"));
}

#[test]
fn argv_handling() {
    let env = TestEnv::new();
    for args in [&[][..], &["bogus"][..], &["get", "extra"][..]] {
        let o = env.run(HELPER, args, b"");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stdout(&o).starts_with("Usage: docker-credential-gdcloud"),
            "{args:?}"
        );
        assert_eq!(stderr(&o), "");
    }
    for v in ["version", "--version"] {
        let o = env.run(HELPER, &[v], b"");
        assert!(ok(&o).starts_with("docker-credential-gdcloud (gdcloud-kit) "));
    }
    assert!(ok(&env.run(HELPER, &["--help"], b"")).contains("store"));
}

#[test]
fn identity_token_and_large_secrets_round_trip() {
    let env = TestEnv::new();
    let token: String = (0..100 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    ok(&env.helper("store", &store_msg("h.example", "<token>", &token)));
    let got: Value = serde_json::from_str(&ok(&env.helper("get", "h.example"))).unwrap();
    assert_eq!(got["Username"], "<token>");
    assert_eq!(got["Secret"].as_str().unwrap(), token);
}

#[test]
fn file_store_is_private_and_atomic() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    ok(&env.helper("store", &store_msg("h", "u", "p")));
    let file = env.config_dir.join("docker_credentials.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&env.config_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn corrupt_store_is_reported_and_kept() {
    let env = TestEnv::new();
    std::fs::create_dir_all(&env.config_dir).unwrap();
    let file = env.config_dir.join("docker_credentials.json");
    std::fs::write(
        &file,
        b"{\"version\":1,\"credentials\":{\"h\":{\"Secret\":\"keepme\"",
    )
    .unwrap();
    let o = env.helper("store", &store_msg("other", "u", "p"));
    assert_eq!(o.status.code(), Some(1));
    let msg = stdout(&o);
    assert!(
        msg.contains("is not valid") && msg.contains("log in again"),
        "{msg}"
    );
    assert!(!msg.contains("keepme"));
    assert!(
        std::fs::read(&file).unwrap().ends_with(b"\"keepme\""),
        "nothing clobbered"
    );
}

#[test]
fn store_property_selects_the_store() {
    let env = TestEnv::new();
    env.set_property("auth", "credential_store", "file");
    let mut c = env.cmd(HELPER);
    c.arg("store");
    ok(&run_with_stdin(c, store_msg("h", "u", "p").as_bytes()));
    assert!(env.config_dir.join("docker_credentials.json").exists());

    let mut c = env.cmd(HELPER);
    c.arg("list").env("GDCLOUD_AUTH_CREDENTIAL_STORE", "bogus");
    let o = run_with_stdin(c, b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("use auto, secret-service or file"),
        "{}",
        stdout(&o)
    );

    // Explicit secret-service with no session bus: a clear error at once, never a hang.
    let mut c = env.cmd(HELPER);
    c.arg("get")
        .env("GDCLOUD_AUTH_CREDENTIAL_STORE", "secret-service");
    let started = std::time::Instant::now();
    let o = run_with_stdin(c, b"h");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no Secret Service"), "{}", stdout(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    // auto with no session bus falls back to the file store.
    let mut c = env.cmd(HELPER);
    c.arg("get");
    let got = ok(&run_with_stdin(c, b"h"));
    assert!(got.contains("\"Username\":\"u\""));
}

#[test]
fn named_configuration_selects_the_store_directory_settings() {
    let env = TestEnv::new();
    let work = env.config_dir.join("configurations/config_work");
    std::fs::create_dir_all(work.parent().unwrap()).unwrap();
    let log = env.path().join("helper.log");
    std::fs::write(&work, format!("[auth]\nhelper_log = {}\n", log.display())).unwrap();
    let mut c = env.cmd(HELPER);
    c.arg("get").env("GDCLOUD_ACTIVE_CONFIG_NAME", "work");
    run_with_stdin(c, b"h");
    assert!(
        log.exists(),
        "the named configuration's helper_log was used"
    );
}

#[test]
fn helper_log_records_calls_without_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let log = env.path().join("logs/helper.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    env.set_property("auth", "helper_log", log.to_str().unwrap());
    ok(&env.helper("store", &store_msg("h.example:5000", "alice", "TOPSECRET")));
    ok(&env.helper("get", "h.example:5000"));
    env.helper("get", "missing.example");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("action=store") && lines[0].contains("server=h.example:5000"));
    assert!(lines[1].contains("result=ok"));
    assert!(lines[2].contains("result=not-found"));
    assert!(!text.contains("TOPSECRET"));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A log that cannot be written is skipped silently: the call still works, nothing on stderr.
    env.set_property("auth", "helper_log", "/proc/forbidden/helper.log");
    let o = env.helper("get", "h.example:5000");
    ok(&o);
    assert_eq!(stderr(&o), "");
}

#[test]
fn helper_log_cannot_be_forged_or_stained_by_a_server_url() {
    let env = TestEnv::new();
    let log = env.path().join("helper.log");
    env.set_property("auth", "helper_log", log.to_str().unwrap());
    // A ServerURL with a newline would otherwise forge a second log line; an ESC sequence would
    // act on the terminal of whoever reads the log with `cat`.
    let forged = "h.example\n2026-01-01T00:00:00.000Z pid=1 action=erase server=victim result=ok";
    env.helper("store", &store_msg(forged, "u", "p"));
    env.helper("get", "h.example\u{1b}[2J:5000");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "one line per call:\n{text}");
    assert!(!text.contains('\u{1b}'), "ESC reached the log: {text:?}");
    assert!(
        text.contains("\\n2026-01-01"),
        "the newline is shown escaped: {text}"
    );
    assert!(!text
        .lines()
        .any(|l| l.contains("server=victim") && !l.contains("\\n")));
    assert!(
        text.to_lowercase().contains("\\x1b[2j"),
        "ESC is shown escaped: {text}"
    );
}

#[test]
fn helper_log_on_a_fifo_is_skipped_without_hanging() {
    let env = TestEnv::new();
    let fifo = env.path().join("helper.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    ok(&env.helper("store", &store_msg("h.example:5000", "u", "p")));
    env.set_property("auth", "helper_log", fifo.to_str().unwrap());
    let mut c = env.cmd(HELPER);
    c.arg("get");
    // Without a reader, a blocking open of the FIFO never returns.
    let o = run_timed(c, b"h.example:5000", std::time::Duration::from_secs(10));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    // With a reader holding it open, the FIFO is still not written to (not a regular file).
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut c = env.cmd(HELPER);
    c.arg("get");
    let o = run_timed(c, b"h.example:5000", std::time::Duration::from_secs(10));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut &reader, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "nothing written into the FIFO");
}

#[test]
fn twenty_writers_of_different_hosts_keep_all_twenty() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = env.cmd(HELPER);
            c.arg("store")
                .env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            let msg = store_msg(&format!("host{i}.example"), &format!("user{i}"), "p");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(msg.as_bytes())
                .unwrap();
            child
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let list: Value = serde_json::from_str(&ok(&env.helper("list", ""))).unwrap();
    let list = list.as_object().unwrap();
    assert_eq!(list.len(), 20, "{list:?}");
    for i in 0..20 {
        assert_eq!(list[&format!("host{i}.example")], format!("user{i}"));
    }
}

#[test]
fn twenty_writers_of_one_host_leave_one_valid_entry_and_readers_never_see_a_torn_file() {
    let env = TestEnv::new();
    ok(&env.helper("store", &store_msg("same.example", "seed", "seed")));
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let mut c = env.cmd(HELPER);
            c.arg("store")
                .env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            let msg = store_msg("same.example", &format!("user{i}"), &format!("pw{i}"));
            child
                .stdin
                .take()
                .unwrap()
                .write_all(msg.as_bytes())
                .unwrap();
            child
        })
        .collect();
    // Read while the writers run: every read must find a complete, consistent entry.
    for _ in 0..30 {
        let got: Value = serde_json::from_str(&ok(&env.helper("get", "same.example"))).unwrap();
        let user = got["Username"].as_str().unwrap();
        let secret = got["Secret"].as_str().unwrap();
        let want = if user == "seed" {
            "seed".to_string()
        } else {
            user.replace("user", "pw")
        };
        assert_eq!(secret, want, "user and secret belong together");
    }
    for c in writers {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let list: Value = serde_json::from_str(&ok(&env.helper("list", ""))).unwrap();
    assert_eq!(list.as_object().unwrap().len(), 1);
    let got: Value = serde_json::from_str(&ok(&env.helper("get", "same.example"))).unwrap();
    let n = got["Username"]
        .as_str()
        .unwrap()
        .trim_start_matches("user")
        .to_string();
    assert_eq!(got["Secret"], format!("pw{n}"));
}
