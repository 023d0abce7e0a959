//! The Secret Service store against a real gnome-keyring in a private, headless D-Bus session per
//! test: the real helper binary stores, finds, lists and erases entries there, `auto` picks it when
//! it runs, the items carry attributes that say gdcloud, server and user (checked with libsecret's
//! own `secret-tool`), and items written by the helper before it moved to keyring-core are found.

use crate::util;

use serde_json::{json, Value};
use util::env::*;
use util::keyring::Keyring;

fn helper(env: &TestEnv, store: Option<&str>, action: &str, stdin: &str) -> std::process::Output {
    let mut c = env.cmd(HELPER);
    c.arg(action);
    if let Some(s) = store {
        c.env("GDCLOUD_AUTH_CREDENTIAL_STORE", s);
    }
    run_with_stdin(c, stdin.as_bytes())
}

fn msg(url: &str, user: &str, secret: &str) -> String {
    json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string()
}

#[test]
fn secret_service_round_trip() {
    let mut env = TestEnv::new();
    let _kr = Keyring::start(&mut env);
    let ss = Some("secret-service");
    assert_eq!(
        stdout(&helper(&env, ss, "get", "127.0.0.1:5000")),
        "credentials not found in native keychain\n"
    );
    ok(&helper(
        &env,
        ss,
        "store",
        &msg("https://127.0.0.1:5000/", "alice", "pw1"),
    ));
    ok(&helper(
        &env,
        ss,
        "store",
        &msg("other.example", "<token>", "tok"),
    ));
    let got: Value =
        serde_json::from_str(&ok(&helper(&env, ss, "get", "127.0.0.1:5000/proj/repo"))).unwrap();
    assert_eq!(got["Username"], "alice");
    assert_eq!(got["Secret"], "pw1");
    assert_eq!(got["ServerURL"], "127.0.0.1:5000/proj/repo");

    // Storing again replaces: one item per server, whatever the user.
    ok(&helper(
        &env,
        ss,
        "store",
        &msg("127.0.0.1:5000", "bob", "pw2"),
    ));
    let list: Value = serde_json::from_str(&ok(&helper(&env, ss, "list", ""))).unwrap();
    assert_eq!(
        list,
        json!({"127.0.0.1:5000": "bob", "other.example": "<token>"})
    );

    // The item says what it is to anyone browsing the keyring.
    let o = env.run(
        "secret-tool",
        &[
            "search",
            "--all",
            "xdg:schema",
            "com.google.gdcloud.RegistryCredential",
            "server",
            "127.0.0.1:5000",
        ],
        b"",
    );
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(text.contains("attribute.application = gdcloud"), "{text}");
    assert!(text.contains("attribute.username = bob"), "{text}");
    assert!(
        text.contains("label = gdcloud registry credential for bob"),
        "{text}"
    );
    assert_eq!(
        text.matches("attribute.server = 127.0.0.1:5000").count(),
        1,
        "{text}"
    );

    ok(&helper(&env, ss, "erase", "127.0.0.1:5000"));
    ok(&helper(&env, ss, "erase", "127.0.0.1:5000"));
    assert_eq!(
        helper(&env, ss, "get", "127.0.0.1:5000").status.code(),
        Some(1)
    );
    assert!(
        !env.config_dir.join("docker_credentials.json").exists(),
        "nothing went to the file store"
    );
}

/// An item exactly as the helper wrote it through dbus-secret-service, before keyring-core (no
/// `service` attribute), written here with `secret-tool`: found, listed, replaced and erased.
#[test]
fn items_written_before_keyring_core_are_found_replaced_and_erased() {
    util::registry::require_tool("secret-tool");
    let mut env = TestEnv::new();
    let _kr = Keyring::start(&mut env);
    ok(&env.run(
        "secret-tool",
        &[
            "store",
            "--label=gdcloud registry credential for olduser (old.example:5000)",
            "xdg:schema",
            "com.google.gdcloud.RegistryCredential",
            "application",
            "gdcloud",
            "server",
            "old.example:5000",
            "username",
            "olduser",
            "server_url",
            "https://old.example:5000/",
        ],
        b"oldpw",
    ));
    let ss = Some("secret-service");
    let got: Value =
        serde_json::from_str(&ok(&helper(&env, ss, "get", "old.example:5000"))).unwrap();
    assert_eq!(got["Username"], "olduser");
    assert_eq!(got["Secret"], "oldpw");
    let list: Value = serde_json::from_str(&ok(&helper(&env, None, "list", ""))).unwrap();
    assert_eq!(list, json!({"https://old.example:5000/": "olduser"}));

    let servers = |env: &TestEnv| {
        let o = env.run(
            "secret-tool",
            &[
                "search",
                "--all",
                "xdg:schema",
                "com.google.gdcloud.RegistryCredential",
                "server",
                "old.example:5000",
            ],
            b"",
        );
        format!("{}{}", stdout(&o), stderr(&o))
            .matches("attribute.server = old.example:5000")
            .count()
    };
    ok(&helper(
        &env,
        ss,
        "store",
        &msg("old.example:5000", "newuser", "newpw"),
    ));
    assert_eq!(
        servers(&env),
        1,
        "the old item was replaced, not kept beside"
    );
    let got: Value =
        serde_json::from_str(&ok(&helper(&env, ss, "get", "old.example:5000"))).unwrap();
    assert_eq!(got["Username"], "newuser");

    // An old item is erased too.
    ok(&env.run(
        "secret-tool",
        &[
            "store",
            "--label=gdcloud registry credential for u (other.example)",
            "xdg:schema",
            "com.google.gdcloud.RegistryCredential",
            "application",
            "gdcloud",
            "server",
            "other.example",
            "username",
            "u",
            "server_url",
            "other.example",
        ],
        b"pw",
    ));
    ok(&helper(&env, ss, "erase", "other.example"));
    assert_eq!(
        helper(&env, ss, "get", "other.example").status.code(),
        Some(1)
    );
}

#[test]
fn auto_uses_the_running_keyring_and_still_finds_file_entries() {
    let mut env = TestEnv::new();
    // An entry written earlier, while no keyring ran.
    ok(&env.helper("store", &msg("old.example", "olduser", "oldpw")));
    let _kr = Keyring::start(&mut env);
    ok(&helper(
        &env,
        None,
        "store",
        &msg("new.example", "newuser", "newpw"),
    ));
    let file = std::fs::read_to_string(env.config_dir.join("docker_credentials.json")).unwrap();
    assert!(!file.contains("new.example"), "auto stored in the keyring");
    let got: Value = serde_json::from_str(&ok(&helper(&env, None, "get", "old.example"))).unwrap();
    assert_eq!(got["Username"], "olduser", "file entries are still found");
    let list: Value = serde_json::from_str(&ok(&helper(&env, None, "list", ""))).unwrap();
    assert_eq!(
        list,
        json!({"new.example": "newuser", "old.example": "olduser"})
    );
    // logout removes it wherever it is.
    ok(&helper(&env, None, "erase", "old.example"));
    assert_eq!(env.helper("get", "old.example").status.code(), Some(1));
}

#[test]
fn concurrent_stores_into_the_keyring_keep_every_host_and_one_item_per_host() {
    let mut env = TestEnv::new();
    let _kr = Keyring::start(&mut env);
    let spawn = |url: String, user: String| {
        let mut c = env.cmd(HELPER);
        c.arg("store")
            .env("GDCLOUD_AUTH_CREDENTIAL_STORE", "secret-service")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(msg(&url, &user, "p").as_bytes())
            .unwrap();
        child
    };
    let mut children: Vec<_> = (0..10)
        .map(|i| spawn(format!("h{i}.example"), format!("u{i}")))
        .collect();
    children.extend((0..10).map(|i| spawn("same.example".into(), format!("s{i}"))));
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
    let list: Value =
        serde_json::from_str(&ok(&helper(&env, Some("secret-service"), "list", ""))).unwrap();
    assert_eq!(list.as_object().unwrap().len(), 11, "{list}");
}

#[test]
fn no_secret_service_on_the_bus_falls_back_to_file_fast() {
    // A session bus with nobody owning org.freedesktop.secrets: auto must not activate or wait.
    let mut env = TestEnv::new();
    let kr = Keyring::start(&mut env);
    drop(kr);
    let started = std::time::Instant::now();
    let o = helper(&env, None, "store", &msg("h.example", "u", "p"));
    ok(&o);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(env.config_dir.join("docker_credentials.json").exists());
}

/// A sign-in session exactly as it was stored before keyring-core (no `service` attribute) is
/// found, and removed by `gdcloud-auth revoke` (offline: the session names no revocation endpoint).
#[test]
fn sessions_written_before_keyring_core_are_found_and_removed() {
    util::registry::require_tool("secret-tool");
    let mut env = TestEnv::new();
    let _kr = Keyring::start(&mut env);
    let session = json!({
        "issuer": "https://idp.invalid",
        "client_id": "gdcloud",
        "account": "old@example.test",
        "refresh_token": "old-refresh-token",
        "token_endpoint": "https://idp.invalid/token",
    });
    ok(&env.run(
        "secret-tool",
        &[
            "store",
            "--label=gdcloud sign-in of old@example.test at https://idp.invalid",
            "xdg:schema",
            "com.google.gdcloud.OidcSession",
            "application",
            "gdcloud",
            "issuer",
            "https://idp.invalid",
            "account",
            "old@example.test",
        ],
        session.to_string().as_bytes(),
    ));
    let o = env.run(AUTH, &["revoke"], b"");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("the sign-in was removed here only"),
        "the old session was found: {}",
        stderr(&o)
    );
    let o = env.run(
        "secret-tool",
        &[
            "search",
            "--all",
            "xdg:schema",
            "com.google.gdcloud.OidcSession",
        ],
        b"",
    );
    let found = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!found.contains("attribute.account"), "{found}");
}
